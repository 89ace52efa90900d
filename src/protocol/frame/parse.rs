//! Reading frames and hellos from a peer's lines: one line in, one frame out or the reason it
//! is refused. Every field is checked (ids, nicks, addresses, hex, lengths) before a frame is
//! made.
//!
//! Pure code. Must not encode (`encode.rs` does) nor check signatures (the chat does).

use super::{BundleHead, Frame, Hello, HistHead, NodeKey, MAX_BUNDLE_FRAMES, MAX_PEERS_LISTED};
use crate::protocol::addr::{listen_port, valid_addr};
use crate::protocol::ids::{parse_node, MemberId, MsgId};
use crate::protocol::seal;
use crate::protocol::sign;
use crate::protocol::{check_nick, ProtocolError, VERSION};
use ProtocolError::Malformed;

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
