//! Frames: the lines peers exchange after their hellos, the hello itself, and the peer encoding
//! of both (`encode`, `parse_frame`, `parse_hello`). docs/PROTOCOL.md describes the same format
//! for people.
//!
//! Pure code: one line in, one frame out, and back. Must not split byte streams into lines
//! (`decoder.rs` does), format lines for guests (`guest.rs`), or decide what a frame means to the
//! chat.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::rc::Rc;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use super::addr::{listen_port, valid_addr};
use super::ids::{parse_node, MemberId, MsgId, NodeId};
use super::seal;
use super::sign::{self, Nonce, Run};
use super::{check_nick, ProtocolError, VERSION};
use ProtocolError::Malformed;

/// The first line a peerchat node sends on every connection. It reads as a sentence, because the
/// other side may be a person at `nc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub nick: String,
    pub node: NodeId,
    /// The port the node listens on, if it listens.
    pub listen: Option<u16>,
    /// The node's public key and run: `node` is derived from them ([`sign::node_id`]).
    pub key: NodeKey,
    /// Fresh for this connection: the other side's proof signs it.
    pub nonce: Nonce,
}

/// A node's public key and the per-run part of its id, which together give its node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeKey {
    pub key: VerifyingKey,
    pub run: Run,
}

impl NodeKey {
    /// The node id these make.
    pub fn node(&self) -> NodeId {
        sign::node_id(&self.key, &self.run)
    }
}

/// The head of a bundle: `SIGNED <node> <count> <signature>`, followed by `count` frame lines
/// that node `node` originated and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleHead {
    pub node: NodeId,
    pub count: usize,
    pub sig: Signature,
}

/// The most frames one bundle carries, and the most bytes its frame lines take.
pub const MAX_BUNDLE_FRAMES: usize = 64;
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// The head of a bundle of history: `HIST <at> <from> <key> <run>`, followed by one signed
/// bundle (its `SIGNED` head and frame lines) that the sender kept, for a peer that may have
/// missed it. `at` is when the sender first had the bundle (unix milliseconds, its own clock):
/// shown, never trusted (it is not signed). `from` is the first counter of the bundle that is
/// history: the sender keeps the last messages, and a bundle may hold older ones too. `key`
/// and `run` are the bundle's origin's, so that a bundle of a node the receiver never heard of
/// (gone before it came) can still be checked: they must give the bundle's node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistHead {
    pub at: u64,
    pub from: u64,
    pub key: NodeKey,
}

/// A kept bundle, with its history head: what `HIST` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub head: HistHead,
    pub bundle: Rc<Signed>,
}

/// Flooded frames as they travel between peers: signed by their origin, and passed on as the
/// very bytes the origin sent (`wire`), so every node can check the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub node: NodeId,
    pub frames: Vec<Frame>,
    /// The head line and the frame lines, each with its `\n`.
    pub wire: Vec<u8>,
}

impl Signed {
    /// Signs `frames`, which this node (`node`, with `key`) originates.
    pub fn seal(key: &SigningKey, node: NodeId, frames: Vec<Frame>) -> Signed {
        let mut lines = Vec::new();
        for f in &frames {
            encode(f, &mut lines);
        }
        let sig = sign::sign_frames(key, node, &lines);
        Signed::assemble(node, &sig, frames, &lines)
    }

    /// A bundle read from a peer, whose signature was checked: kept as it came, to pass on.
    /// Without spare capacity: a node keeps one for each member of the chat (its announcement),
    /// and a decoded frame is about 300 bytes, so room for the four frames a vector grown by
    /// pushes holds would triple what a member takes.
    pub fn assemble(node: NodeId, sig: &Signature, mut frames: Vec<Frame>, lines: &[u8]) -> Signed {
        let head = format!(
            "SIGNED {node:016x} {} {}\n",
            frames.len(),
            sign::to_hex(&sig.to_bytes())
        );
        let mut wire = Vec::with_capacity(head.len() + lines.len());
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(lines);
        frames.shrink_to_fit();
        Signed { node, frames, wire }
    }
}

/// One line on a peer connection.
///
/// Frames with an `id` are flooded: every node handles each id once and passes it on to its
/// other peers. `Peers`, `Ping`, `Pong` and `Close` concern one connection only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    /// A chat message from member `from` (called `nick`), first sent by node `id.node`.
    Msg {
        id: MsgId,
        from: MemberId,
        nick: String,
        text: String,
    },
    /// An action (`/me waves`): shown as `* nick waves`.
    Me {
        id: MsgId,
        from: MemberId,
        nick: String,
        text: String,
    },
    /// A direct message for member `to` only; other nodes pass it on without showing it.
    Dm {
        id: MsgId,
        from: MemberId,
        nick: String,
        to: MemberId,
        text: String,
    },
    /// A direct message for member `to`, its text sealed to `to`'s node (`protocol::seal`):
    /// the nodes that pass it on cannot read it. Hex on the wire.
    Sdm {
        id: MsgId,
        from: MemberId,
        nick: String,
        to: MemberId,
        sealed: Vec<u8>,
    },
    /// Member `member` changed its nick from `old` to `nick`.
    Nick {
        id: MsgId,
        member: MemberId,
        old: String,
        nick: String,
    },
    /// `member`, called `nick`, is in the chat (at `addr`, when its node knows it). Sent by the
    /// member's own node; for a node itself it carries the node's key.
    Join {
        id: MsgId,
        member: MemberId,
        nick: String,
        addr: Option<String>,
        key: Option<NodeKey>,
    },
    /// As `Join`, and fresh: the node says it is here now (after a connection of its own came
    /// up, in answer to a claim that it was lost, and now and then while it runs).
    Here {
        id: MsgId,
        member: MemberId,
        nick: String,
        addr: Option<String>,
        key: Option<NodeKey>,
    },
    /// `member` left the chat for good: its own node says so (it left, or its guest did).
    Leave {
        id: MsgId,
        member: MemberId,
        nick: String,
        reason: Option<String>,
    },
    /// Node `id.node` lost its own connection to node `member` (`reason` says how). A claim,
    /// not a leave: others drop `member` only if nothing fresh comes from it soon.
    Lost {
        id: MsgId,
        member: MemberId,
        nick: String,
        reason: Option<String>,
    },
    /// The proof of the key in the hello (see [`sign::sign_proof`]).
    Proof(Signature),
    /// The head of a bundle of signed frames, as read; the frame lines follow.
    Bundle(BundleHead),
    /// A bundle of signed frames to send.
    Signed(Rc<Signed>),
    /// The head of a bundle of history, as read; the bundle follows.
    HistHead(HistHead),
    /// A bundle of history to send: its head, then the bundle.
    Hist(Rc<Kept>),
    /// The peers the sender is connected to, by node and listening address (peer exchange).
    Peers(Vec<(NodeId, SocketAddr)>),
    /// Keepalive: answer with `Pong`.
    Ping,
    Pong,
    /// The sender closes this connection on purpose (`reason`); nobody left the chat.
    Close(String),
    /// A well-formed frame of a kind this version does not know; ignored for forward compatibility.
    Unknown(String),
}

impl Frame {
    /// At least the bytes of this frame's line (flooded frames): what a bundle's size cap
    /// counts before encoding.
    pub fn wire_len(&self) -> usize {
        // Ids, member ids, a key and a run, the verb and the spaces take less than this.
        const FIXED: usize = 400;
        FIXED
            + match self {
                Frame::Msg { nick, text, .. }
                | Frame::Me { nick, text, .. }
                | Frame::Dm { nick, text, .. } => nick.len() + text.len(),
                Frame::Sdm { nick, sealed, .. } => nick.len() + 2 * sealed.len(),
                Frame::Nick { old, nick, .. } => old.len() + nick.len(),
                Frame::Join { nick, addr, .. } | Frame::Here { nick, addr, .. } => {
                    nick.len() + addr.as_ref().map_or(0, String::len)
                }
                Frame::Leave { nick, reason, .. } | Frame::Lost { nick, reason, .. } => {
                    nick.len() + reason.as_ref().map_or(0, String::len)
                }
                _ => 0,
            }
    }

    /// The flood id, for frames that have one.
    pub fn id(&self) -> Option<MsgId> {
        self.head().map(|h| h.id)
    }

    /// The head, for flooded frames: the one place that names each flooded kind's verb.
    fn head(&self) -> Option<Head<'_>> {
        let (verb, id, member, nick) = match self {
            Frame::Msg { id, from, nick, .. } => ("MSG", id, from, nick),
            Frame::Me { id, from, nick, .. } => ("ME", id, from, nick),
            Frame::Dm { id, from, nick, .. } => ("DM", id, from, nick),
            Frame::Sdm { id, from, nick, .. } => ("SDM", id, from, nick),
            Frame::Nick {
                id, member, old, ..
            } => ("NICK", id, member, old),
            Frame::Join {
                id, member, nick, ..
            } => ("JOIN", id, member, nick),
            Frame::Here {
                id, member, nick, ..
            } => ("HERE", id, member, nick),
            Frame::Leave {
                id, member, nick, ..
            } => ("LEAVE", id, member, nick),
            Frame::Lost {
                id, member, nick, ..
            } => ("LOST", id, member, nick),
            _ => return None,
        };
        Some(Head {
            verb,
            id: *id,
            member: *member,
            nick,
        })
    }
}

/// What every flooded frame starts with on the wire: `VERB <id> <member> <nick>`.
struct Head<'a> {
    verb: &'static str,
    id: MsgId,
    member: MemberId,
    /// The member's nick as the frame starts: for `NICK`, the old one.
    nick: &'a str,
}

/// The most addresses one `PEERS` frame carries (and the most taken from one).
pub const MAX_PEERS_LISTED: usize = 64;

/// Appends the peer encoding of `frame`, `\n` included.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let mut s = Appender(out);
    // Appending to a Vec cannot fail.
    let _ = match frame {
        Frame::Hello(h) => write_hello(&mut s, h),
        Frame::Peers(peers) => write_peers(&mut s, peers),
        Frame::Ping => s.write_str("PING"),
        Frame::Pong => s.write_str("PONG"),
        Frame::Close(reason) => write!(s, "CLOSE {reason}"),
        Frame::Unknown(line) => s.write_str(line),
        Frame::Proof(sig) => write!(s, "PROOF {}", sign::to_hex(&sig.to_bytes())),
        Frame::Bundle(h) => write!(
            s,
            "SIGNED {:016x} {} {}",
            h.node,
            h.count,
            sign::to_hex(&h.sig.to_bytes())
        ),
        Frame::Signed(b) => {
            // Already whole lines, as the origin signed them.
            out.extend_from_slice(&b.wire);
            return;
        }
        Frame::HistHead(h) => write_hist(&mut s, h),
        Frame::Hist(p) => {
            let _ = write_hist(&mut s, &p.head);
            out.push(b'\n');
            out.extend_from_slice(&p.bundle.wire);
            return;
        }
        flooded => write_flooded(&mut s, flooded),
    };
    out.push(b'\n');
}

/// Appends what a peer is sent for `frame`: a flooded frame goes to peers only inside a signed
/// bundle ([`Frame::Signed`]), so on its own it is nothing here (it is there for guests).
pub fn encode_peer(frame: &Frame, out: &mut Vec<u8>) {
    if frame.id().is_none() {
        encode(frame, out);
    }
}

fn write_hello(s: &mut Appender<'_>, h: &Hello) -> fmt::Result {
    write!(
        s,
        "peerchat/{VERSION} hello from {} (node={:016x} ",
        h.nick, h.node
    )?;
    match h.listen {
        Some(port) => write!(s, "listen={port} ")?,
        None => s.write_str("listen=- ")?,
    }
    write!(
        s,
        "key={} run={} nonce={})",
        sign::to_hex(h.key.key.as_bytes()),
        sign::to_hex(&h.key.run),
        sign::to_hex(&h.nonce)
    )
}

fn write_hist(s: &mut Appender<'_>, h: &HistHead) -> fmt::Result {
    write!(
        s,
        "HIST {} {} {} {}",
        h.at,
        h.from,
        sign::to_hex(h.key.key.as_bytes()),
        sign::to_hex(&h.key.run)
    )
}

/// Appends ` KEY RUN` for a frame that carries a node's key.
fn write_key(s: &mut Appender<'_>, key: &Option<NodeKey>) -> fmt::Result {
    match key {
        Some(k) => write!(
            s,
            " {} {}",
            sign::to_hex(k.key.as_bytes()),
            sign::to_hex(&k.run)
        ),
        None => Ok(()),
    }
}

fn write_peers(s: &mut Appender<'_>, peers: &[(NodeId, SocketAddr)]) -> fmt::Result {
    s.write_str("PEERS")?;
    for (node, addr) in peers.iter().take(MAX_PEERS_LISTED) {
        write!(s, " {node:016x}@{addr}")?;
    }
    Ok(())
}

/// Writes a flooded frame: its head, then what its kind adds after the nick.
fn write_flooded(s: &mut Appender<'_>, frame: &Frame) -> fmt::Result {
    let Some(Head {
        verb,
        id,
        member,
        nick,
    }) = frame.head()
    else {
        return Ok(());
    };
    write!(s, "{verb} {id} {member} {nick}")?;
    match frame {
        Frame::Msg { text, .. } | Frame::Me { text, .. } => write!(s, " {text}"),
        Frame::Dm { to, text, .. } => write!(s, " {to} {text}"),
        Frame::Sdm { to, sealed, .. } => write!(s, " {to} {}", sign::to_hex(sealed)),
        Frame::Nick { nick, .. } => write!(s, " {nick}"),
        Frame::Join { addr, key, .. } | Frame::Here { addr, key, .. } => {
            write!(s, " {}", addr.as_deref().unwrap_or("-"))?;
            write_key(s, key)
        }
        Frame::Leave {
            reason: Some(r), ..
        }
        | Frame::Lost {
            reason: Some(r), ..
        } => write!(s, " {r}"),
        // A `LEAVE` without a reason ends at the nick.
        _ => Ok(()),
    }
}

/// Formats straight into a byte buffer (no `String` in between).
struct Appender<'a>(&'a mut Vec<u8>);

impl fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The protocol version a hello line speaks (`peerchat/N hello from ...`), whatever it is: a
/// node of another version is told so instead of being taken for a guest.
pub fn hello_version(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("peerchat/")?;
    let (version, rest) = rest.split_once(' ')?;
    rest.starts_with("hello from ").then_some(())?;
    version.split('.').next()?.parse::<u32>().ok()
}

/// Reads a hello line of this version. Anything else — another program's first line, another
/// major version, a node id that its key and run do not give — is `None`.
pub fn parse_hello(line: &str) -> Option<Hello> {
    if hello_version(line)? != VERSION {
        return None;
    }
    let rest = line.split_once(" hello from ")?.1;
    let (nick, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    check_nick(nick).ok()?;
    let fields = rest.strip_prefix('(')?.strip_suffix(')')?;
    let (mut node, mut listen, mut key, mut run, mut nonce) = (None, None, None, None, None);
    for field in fields.split(' ') {
        match field.split_once('=') {
            Some(("node", v)) => node = parse_node(v),
            Some(("listen", "-")) => listen = None,
            Some(("listen", v)) => listen = Some(listen_port(v)?),
            Some(("key", v)) => key = sign::parse_key(v),
            Some(("run", v)) => run = sign::from_hex::<8>(v),
            Some(("nonce", v)) => nonce = sign::from_hex::<16>(v),
            // Unknown keys are room for later versions.
            _ => {}
        }
    }
    let key = NodeKey {
        key: key?,
        run: run?,
    };
    let node = node.filter(|&n| n == key.node())?;
    Some(Hello {
        nick: nick.to_string(),
        node,
        listen,
        key,
        nonce: nonce?,
    })
}

/// Reads one frame from a peer that has sent its hello.
pub fn parse_frame(line: &str) -> Result<Frame, ProtocolError> {
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "PING" => Ok(Frame::Ping),
        "PONG" => Ok(Frame::Pong),
        "CLOSE" => Ok(Frame::Close(rest.to_string())),
        "PEERS" => parse_peers(rest),
        "MSG" => parse_msg(rest),
        "ME" => parse_me(rest),
        "DM" => parse_dm(rest),
        "SDM" => parse_sdm(rest),
        "NICK" => parse_nick(rest),
        "JOIN" => parse_join(rest, false),
        "HERE" => parse_join(rest, true),
        "LEAVE" => parse_leave(rest, false),
        "LOST" => parse_leave(rest, true),
        "PROOF" => sign::parse_signature(rest)
            .map(Frame::Proof)
            .ok_or(Malformed("bad proof")),
        "SIGNED" => parse_bundle_head(rest),
        "HIST" => parse_hist_head(rest),
        // A kind from a later version: taken, and ignored.
        _ if !verb.is_empty() && verb.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(Frame::Unknown(line.to_string()))
        }
        _ => Err(Malformed("not a frame")),
    }
}

/// `SIGNED <node> <count> <signature>`.
fn parse_bundle_head(rest: &str) -> Result<Frame, ProtocolError> {
    let mut words = rest.split(' ');
    let node = words.next().and_then(parse_node);
    let count = words
        .next()
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| (1..=MAX_BUNDLE_FRAMES).contains(c));
    let sig = words.next().and_then(sign::parse_signature);
    match (node, count, sig, words.next()) {
        (Some(node), Some(count), Some(sig), None) => {
            Ok(Frame::Bundle(BundleHead { node, count, sig }))
        }
        _ => Err(Malformed("bad bundle head")),
    }
}

/// `HIST <at> <from> <key> <run>`: a time and a counter in decimal digits, the origin's key
/// and run in hex.
fn parse_hist_head(rest: &str) -> Result<Frame, ProtocolError> {
    let mut words = rest.split(' ');
    let mut number = || {
        words
            .next()
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.parse::<u64>().ok())
    };
    let (at, from) = (number(), number());
    let key = words.next().and_then(sign::parse_key);
    let run = words.next().and_then(sign::from_hex::<8>);
    match (at, from, key, run, words.next()) {
        (Some(at), Some(from), Some(key), Some(run), None) => Ok(Frame::HistHead(HistHead {
            at,
            from,
            key: NodeKey { key, run },
        })),
        _ => Err(Malformed("bad history head")),
    }
}

fn parse_peers(rest: &str) -> Result<Frame, ProtocolError> {
    let peers = rest
        .split(' ')
        .filter(|w| !w.is_empty())
        .take(MAX_PEERS_LISTED)
        .map(|w| {
            let (node, addr) = w.split_once('@')?;
            Some((parse_node(node)?, addr.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(Malformed("bad peer address"))?;
    Ok(Frame::Peers(peers))
}

/// A flooded frame's fields, read left to right: `<id> <member> <nick>`, then the single words
/// its kind adds, then the rest of the line.
struct Fields<'a> {
    id: MsgId,
    member: MemberId,
    nick: String,
    more: std::str::SplitN<'a, char>,
}

impl<'a> Fields<'a> {
    /// Reads the head from `rest`, where the kind adds `words` single words before the rest of
    /// the line (which may hold spaces).
    fn read(rest: &'a str, words: usize) -> Result<Self, ProtocolError> {
        let mut more = rest.splitn(3 + words + 1, ' ');
        let id = more
            .next()
            .and_then(MsgId::parse)
            .ok_or(Malformed("bad message id"))?;
        let member = more
            .next()
            .and_then(MemberId::parse)
            .ok_or(Malformed("bad member id"))?;
        let nick = nick_field(more.next().unwrap_or(""))?.to_string();
        Ok(Fields {
            id,
            member,
            nick,
            more,
        })
    }

    /// The next single word, which the kind requires.
    fn word(&mut self) -> Result<&'a str, ProtocolError> {
        self.more.next().ok_or(Malformed("missing field"))
    }

    /// The rest of the line, if there is one.
    fn tail(&mut self) -> Option<&'a str> {
        self.more.next()
    }

    /// The rest of the line as a message's text (empty if there is none).
    fn text(&mut self) -> String {
        self.tail().unwrap_or("").to_string()
    }
}

fn nick_field(nick: &str) -> Result<&str, ProtocolError> {
    check_nick(nick).map_err(|_| Malformed("bad nick"))?;
    Ok(nick)
}

fn parse_msg(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 0)?;
    let text = f.text();
    Ok(Frame::Msg {
        id: f.id,
        from: f.member,
        nick: f.nick,
        text,
    })
}

fn parse_me(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 0)?;
    let text = f.text();
    Ok(Frame::Me {
        id: f.id,
        from: f.member,
        nick: f.nick,
        text,
    })
}

/// `DM <id> <from> <nick> <to> <text>`.
fn parse_dm(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 1)?;
    let to = MemberId::parse(f.word()?).ok_or(Malformed("bad member id"))?;
    let text = f.text();
    Ok(Frame::Dm {
        id: f.id,
        from: f.member,
        nick: f.nick,
        to,
        text,
    })
}

/// `SDM <id> <from> <nick> <to> <sealed>`: the sealed bytes in lower-case hex, one word, at
/// least a sealed empty text and at most [`seal::MAX_SEALED`] bytes.
fn parse_sdm(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 1)?;
    let to = MemberId::parse(f.word()?).ok_or(Malformed("bad member id"))?;
    let sealed = f
        .tail()
        .and_then(|hex| {
            (hex.len() >= 2 * seal::OVERHEAD && hex.len() <= 2 * seal::MAX_SEALED)
                .then(|| sign::from_hex_vec(hex))
                .flatten()
        })
        .ok_or(Malformed("bad sealed text"))?;
    Ok(Frame::Sdm {
        id: f.id,
        from: f.member,
        nick: f.nick,
        to,
        sealed,
    })
}

/// `NICK <id> <member> <old> <new>`, and nothing after.
fn parse_nick(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 1)?;
    let new = nick_field(f.word()?)?.to_string();
    if f.tail().is_some() {
        return Err(Malformed("extra words"));
    }
    Ok(Frame::Nick {
        id: f.id,
        member: f.member,
        old: f.nick,
        nick: new,
    })
}

/// An address field: `-` when the node does not know it, else a `host:port`.
fn addr_field(f: &mut Fields<'_>) -> Result<Option<String>, ProtocolError> {
    match f.word()? {
        "-" => Ok(None),
        a if valid_addr(a) => Ok(Some(a.to_string())),
        _ => Err(Malformed("bad address")),
    }
}

/// `JOIN`/`HERE <id> <member> <nick> <addr>`, then `<key> <run>` for a node itself (none for a
/// guest), and nothing after.
fn parse_join(rest: &str, here: bool) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 3)?;
    let addr = addr_field(&mut f)?;
    let key = match f.member.guest {
        0 => {
            let key = f.word().ok().and_then(sign::parse_key);
            let run = f.word().ok().and_then(sign::from_hex::<8>);
            let key = NodeKey {
                key: key.ok_or(Malformed("bad key"))?,
                run: run.ok_or(Malformed("bad key"))?,
            };
            if key.node() != f.member.node {
                return Err(Malformed("node id not of its key"));
            }
            Some(key)
        }
        _ => None,
    };
    if f.tail().is_some() {
        return Err(Malformed("extra words"));
    }
    let (id, member, nick) = (f.id, f.member, f.nick);
    Ok(if here {
        Frame::Here {
            id,
            member,
            nick,
            addr,
            key,
        }
    } else {
        Frame::Join {
            id,
            member,
            nick,
            addr,
            key,
        }
    })
}

/// `LEAVE` (or `LOST`, a claim) `<id> <member> <nick> [reason]`.
fn parse_leave(rest: &str, claim: bool) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 0)?;
    let reason = f.tail().filter(|r| !r.is_empty()).map(str::to_string);
    let (id, member, nick) = (f.id, f.member, f.nick);
    Ok(if claim {
        Frame::Lost {
            id,
            member,
            nick,
            reason,
        }
    } else {
        Frame::Leave {
            id,
            member,
            nick,
            reason,
        }
    })
}

#[cfg(test)]
mod tests;
