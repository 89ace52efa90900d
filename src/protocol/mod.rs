//! Wire protocol v1: frames, their encodings (peer frames and plain guest lines), and the line
//! decoder with its hard length cap.
//!
//! Pure code: bytes in, frames out. Must not import `std::io` or `mio`. docs/PROTOCOL.md
//! describes the same format for people.

use std::fmt;
use std::net::SocketAddr;

use crate::safe::{is_unsafe, sanitize};

/// The protocol version this build speaks. A hello with another major version is not a hello.
pub const VERSION: u32 = 1;

/// Hard cap on one line, without its `\n`. A longer line closes the connection that sent it.
pub const MAX_LINE: usize = 64 * 1024;

/// The most text one message carries, so that `MSG <id> <nick> ` plus the text fits in
/// [`MAX_LINE`]. Longer input is split into several messages, never cut.
pub const MAX_TEXT: usize = MAX_LINE - 512;

/// Longest nick, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// A node's identity: random per run, so a restarted node is a new origin.
pub type NodeId = u64;

/// A message's unique id: its origin node and that node's counter. Written `<16 hex>:<decimal>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsgId {
    pub node: NodeId,
    pub seq: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.node, self.seq)
    }
}

/// Reads exactly 16 hex digits (no sign, no prefix).
fn parse_node(s: &str) -> Option<NodeId> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl MsgId {
    fn parse(s: &str) -> Option<MsgId> {
        let (node, seq) = s.split_once(':')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(MsgId {
            node: parse_node(node)?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The first line a peerchat node sends on every connection. It reads as a sentence, because the
/// other side may be a person at `nc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub nick: String,
    pub node: NodeId,
    /// The port the node listens on, if it listens.
    pub listen: Option<u16>,
}

/// A member of the chat: a node (`guest == 0`), or guest number `guest` of node `node` (a person
/// at `nc` connected to that node). Written `<16 hex>` or `<16 hex>.<guest>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId {
    pub node: NodeId,
    pub guest: u32,
}

impl MemberId {
    /// The node itself.
    pub fn node(node: NodeId) -> MemberId {
        MemberId { node, guest: 0 }
    }

    /// Short, stable tag used to tell apart members with the same nick: `#` and the first four
    /// hex digits of the node id, plus `.N` for a guest.
    pub fn tag(&self) -> String {
        self.tag_of(4)
    }

    /// [`MemberId::tag`] with the first `len` (at most 16) hex digits.
    pub fn tag_of(&self, len: usize) -> String {
        let hex = format!("{:016x}", self.node);
        let digits = &hex[..len.min(16)];
        match self.guest {
            0 => format!("#{digits}"),
            g => format!("#{digits}.{g}"),
        }
    }

    fn parse(s: &str) -> Option<MemberId> {
        let (node, guest) = match s.split_once('.') {
            Some((n, g)) => {
                if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (n, g.parse().ok().filter(|&g| g > 0)?)
            }
            None => (s, 0),
        };
        Some(MemberId {
            node: parse_node(node)?,
            guest,
        })
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.guest {
            0 => write!(f, "{:016x}", self.node),
            g => write!(f, "{:016x}.{g}", self.node),
        }
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
    /// Member `member` changed its nick from `old` to `nick`.
    Nick {
        id: MsgId,
        member: MemberId,
        old: String,
        nick: String,
    },
    /// `member`, called `nick`, is in the chat (at `addr`, when the announcing node knows it).
    Join {
        id: MsgId,
        member: MemberId,
        nick: String,
        addr: Option<String>,
    },
    /// `member` is in the chat, and the sender has just heard from it (a `PONG` on its own
    /// connection, or it is the member's own node): unlike `Join`, it overrides a recent loss.
    Here {
        id: MsgId,
        member: MemberId,
        nick: String,
        addr: Option<String>,
    },
    /// `member` left the chat. Sent by the member's own node (it left, or its guest did), or by a
    /// neighbour that lost its connection to it (`reason` says how).
    Leave {
        id: MsgId,
        member: MemberId,
        nick: String,
        reason: Option<String>,
    },
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
    /// The flood id, for frames that have one.
    pub fn id(&self) -> Option<MsgId> {
        match self {
            Frame::Msg { id, .. }
            | Frame::Me { id, .. }
            | Frame::Dm { id, .. }
            | Frame::Nick { id, .. }
            | Frame::Join { id, .. }
            | Frame::Here { id, .. }
            | Frame::Leave { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// The most addresses one `PEERS` frame carries (and the most taken from one).
pub const MAX_PEERS_LISTED: usize = 64;

/// Why bytes from a peer could not be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A line grew past [`MAX_LINE`] bytes.
    LineTooLong,
    /// A frame of a known kind with missing or bad fields.
    Malformed(&'static str),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::LineTooLong => write!(f, "line longer than {MAX_LINE} bytes"),
            ProtocolError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

/// Why a nick is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NickError {
    Empty,
    TooLong,
    BadChar,
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NickError::Empty => write!(f, "a nick cannot be empty"),
            NickError::TooLong => write!(f, "a nick has at most {MAX_NICK_CHARS} characters"),
            NickError::BadChar => write!(f, "a nick cannot hold spaces or control characters"),
        }
    }
}

/// Checks the nick rules: 1 to 32 characters, no white space, no control or invisible characters.
pub fn check_nick(nick: &str) -> Result<(), NickError> {
    if nick.is_empty() {
        Err(NickError::Empty)
    } else if nick.chars().count() > MAX_NICK_CHARS {
        Err(NickError::TooLong)
    } else if nick.chars().any(|c| c.is_whitespace() || is_unsafe(c)) {
        Err(NickError::BadChar)
    } else {
        Ok(())
    }
}

/// Appends the peer encoding of `frame`, `\n` included.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let mut s = Appender(out);
    // Appending to a Vec cannot fail.
    let _ = match frame {
        Frame::Hello(h) => {
            let listen = h.listen.map_or_else(|| "-".to_string(), |p| p.to_string());
            write!(
                s,
                "peerchat/{VERSION} hello from {} (node={:016x} listen={listen})",
                h.nick, h.node
            )
        }
        Frame::Msg {
            id,
            from,
            nick,
            text,
        } => write!(s, "MSG {id} {from} {nick} {text}"),
        Frame::Me {
            id,
            from,
            nick,
            text,
        } => write!(s, "ME {id} {from} {nick} {text}"),
        Frame::Dm {
            id,
            from,
            nick,
            to,
            text,
        } => write!(s, "DM {id} {from} {nick} {to} {text}"),
        Frame::Nick {
            id,
            member,
            old,
            nick,
        } => write!(s, "NICK {id} {member} {old} {nick}"),
        Frame::Join {
            id,
            member,
            nick,
            addr,
        } => write!(
            s,
            "JOIN {id} {member} {nick} {}",
            addr.as_deref().unwrap_or("-")
        ),
        Frame::Here {
            id,
            member,
            nick,
            addr,
        } => write!(
            s,
            "HERE {id} {member} {nick} {}",
            addr.as_deref().unwrap_or("-")
        ),
        Frame::Leave {
            id,
            member,
            nick,
            reason,
        } => match reason {
            Some(r) => write!(s, "LEAVE {id} {member} {nick} {r}"),
            None => write!(s, "LEAVE {id} {member} {nick}"),
        },
        Frame::Peers(peers) => {
            let _ = s.write_str("PEERS");
            for (node, addr) in peers.iter().take(MAX_PEERS_LISTED) {
                let _ = write!(s, " {node:016x}@{addr}");
            }
            Ok(())
        }
        Frame::Ping => write!(s, "PING"),
        Frame::Pong => write!(s, "PONG"),
        Frame::Close(reason) => write!(s, "CLOSE {reason}"),
        Frame::Unknown(line) => write!(s, "{line}"),
    };
    out.push(b'\n');
}

/// Formats straight into a byte buffer (no `String` in between).
struct Appender<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `pieces`, each terminal-safe where marked, then `\n`.
fn push_line(out: &mut Vec<u8>, pieces: &[Piece<'_>]) {
    for piece in pieces {
        match piece {
            Piece::Plain(s) => out.extend_from_slice(s.as_bytes()),
            Piece::Peer(s) => out.extend_from_slice(sanitize(s).as_bytes()),
        }
    }
    out.push(b'\n');
}

/// Part of a guest line: our own words, or a peer's, which are made terminal-safe.
enum Piece<'a> {
    Plain(&'a str),
    Peer(&'a str),
}

/// Appends what a guest (nc, telnet, a script) is shown for `frame`: a plain, terminal-safe line,
/// or nothing for frames that mean nothing to a person or are not for every guest (a direct
/// message; see [`encode_guest_direct`]). Returns whether anything was appended.
pub fn encode_guest(frame: &Frame, out: &mut Vec<u8>) -> bool {
    use Piece::{Peer, Plain};
    match frame {
        Frame::Hello(_) => encode(frame, out),
        Frame::Msg { nick, text, .. } => {
            push_line(out, &[Plain("<"), Peer(nick), Plain("> "), Peer(text)])
        }
        Frame::Me { nick, text, .. } => {
            push_line(out, &[Plain("* "), Peer(nick), Plain(" "), Peer(text)])
        }
        Frame::Nick { old, nick, .. } => push_line(
            out,
            &[
                Plain("* "),
                Peer(old),
                Plain(" is now known as "),
                Peer(nick),
            ],
        ),
        Frame::Join { nick, .. } | Frame::Here { nick, .. } => {
            push_line(out, &[Plain("* "), Peer(nick), Plain(" joined")])
        }
        Frame::Leave {
            nick, reason: None, ..
        } => push_line(out, &[Plain("* "), Peer(nick), Plain(" left")]),
        Frame::Leave {
            nick,
            reason: Some(r),
            ..
        } => push_line(
            out,
            &[
                Plain("* "),
                Peer(nick),
                Plain(" left ("),
                Peer(r),
                Plain(")"),
            ],
        ),
        Frame::Dm { .. }
        | Frame::Peers(_)
        | Frame::Ping
        | Frame::Pong
        | Frame::Close(_)
        | Frame::Unknown(_) => return false,
    }
    true
}

/// What one guest is shown for a frame meant for it alone: a direct message reads
/// `[dm] <nick> text`; anything else as in [`encode_guest`].
pub fn encode_guest_direct(frame: &Frame, out: &mut Vec<u8>) -> bool {
    match frame {
        Frame::Dm { nick, text, .. } => {
            use Piece::{Peer, Plain};
            push_line(out, &[Plain("[dm] <"), Peer(nick), Plain("> "), Peer(text)]);
            true
        }
        _ => encode_guest(frame, out),
    }
}

/// Reads a hello line. Anything else — another program's first line, another major version —
/// is `None`, and the connection is a guest.
pub fn parse_hello(line: &str) -> Option<Hello> {
    let rest = line.strip_prefix("peerchat/")?;
    let (version, rest) = rest.split_once(' ')?;
    let major = version.split('.').next()?.parse::<u32>().ok()?;
    if major != VERSION {
        return None;
    }
    let rest = rest.strip_prefix("hello from ")?;
    let (nick, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    check_nick(nick).ok()?;
    let fields = rest.strip_prefix('(')?.strip_suffix(')')?;
    let mut node = None;
    let mut listen = None;
    for field in fields.split(' ') {
        match field.split_once('=') {
            Some(("node", v)) => node = parse_node(v),
            Some(("listen", "-")) => listen = None,
            Some(("listen", v)) => listen = Some(v.parse().ok()?),
            // Unknown keys are room for later versions.
            _ => {}
        }
    }
    Some(Hello {
        nick: nick.to_string(),
        node: node?,
        listen,
    })
}

/// Reads one frame from a peer that has sent its hello.
pub fn parse_frame(line: &str) -> Result<Frame, ProtocolError> {
    use ProtocolError::Malformed;
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "PING" => return Ok(Frame::Ping),
        "PONG" => return Ok(Frame::Pong),
        "CLOSE" => return Ok(Frame::Close(rest.to_string())),
        "PEERS" => {
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
            return Ok(Frame::Peers(peers));
        }
        "MSG" | "ME" | "DM" | "NICK" | "JOIN" | "HERE" | "LEAVE" => {}
        _ if !verb.is_empty() && verb.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Ok(Frame::Unknown(line.to_string()))
        }
        _ => return Err(Malformed("not a frame")),
    }
    // <id> <member> <nick> and, for DM and NICK, one more word, then the rest of the line.
    let words = if matches!(verb, "DM" | "NICK") { 4 } else { 3 };
    let mut parts = rest.splitn(words + 1, ' ');
    let id = parts
        .next()
        .and_then(MsgId::parse)
        .ok_or(Malformed("bad message id"))?;
    let member = parts
        .next()
        .and_then(MemberId::parse)
        .ok_or(Malformed("bad member id"))?;
    let nick = parts.next().unwrap_or("");
    check_nick(nick).map_err(|_| Malformed("bad nick"))?;
    let nick = nick.to_string();
    let fourth = if words == 4 {
        Some(parts.next().ok_or(Malformed("missing field"))?)
    } else {
        None
    };
    let tail = parts.next().map(str::to_string);
    Ok(match verb {
        "MSG" => Frame::Msg {
            id,
            from: member,
            nick,
            text: tail.unwrap_or_default(),
        },
        "ME" => Frame::Me {
            id,
            from: member,
            nick,
            text: tail.unwrap_or_default(),
        },
        "DM" => Frame::Dm {
            id,
            from: member,
            nick,
            to: fourth
                .and_then(MemberId::parse)
                .ok_or(Malformed("bad member id"))?,
            text: tail.unwrap_or_default(),
        },
        "NICK" => {
            let new = fourth.unwrap_or("");
            check_nick(new).map_err(|_| Malformed("bad nick"))?;
            if tail.is_some() {
                return Err(Malformed("extra words"));
            }
            Frame::Nick {
                id,
                member,
                old: nick,
                nick: new.to_string(),
            }
        }
        "JOIN" => Frame::Join {
            id,
            member,
            nick,
            addr: tail.filter(|a| a != "-"),
        },
        "HERE" => Frame::Here {
            id,
            member,
            nick,
            addr: tail.filter(|a| a != "-"),
        },
        _ => Frame::Leave {
            id,
            member,
            nick,
            reason: tail.filter(|r| !r.is_empty()),
        },
    })
}

/// How a listener that is full starts the one line it sends before closing.
pub const FULL: &str = "peerchat: this chat is full";

/// True for a full listener's line (see [`FULL`]): a peerchat node that dialled it tries again
/// later instead of taking it for something else.
pub fn is_refusal(line: &str) -> bool {
    line.starts_with(FULL)
}

/// True for the lines [`encode_guest`] makes (`<nick> text`, `* event`): what a peerchat node
/// sends to a connection it has not (yet) recognised as a peer.
pub fn is_guest_text(line: &str) -> bool {
    line.starts_with('<') || line.starts_with("* ")
}

/// Splits `text` into pieces of at most `max` bytes, at character boundaries, so that a long
/// line becomes several messages instead of being cut.
pub fn split_text(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        if r.len() <= max {
            rest = None;
            return Some(r);
        }
        let mut cut = max.max(1);
        while !r.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // `max` is shorter than the first character: it goes whole.
            cut = r.chars().next().map_or(r.len(), char::len_utf8);
        }
        let (head, tail) = r.split_at(cut);
        rest = Some(tail).filter(|t| !t.is_empty());
        Some(head)
    })
}

/// Splits a byte stream into lines. Feed it with [`LineDecoder::push`], then call
/// [`LineDecoder::next_line`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    start: usize,
    /// Bytes before this offset (from `start`) hold no `\n`: no need to scan them again.
    scanned: usize,
    max: usize,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder whose lines may hold at most `max` bytes (without the `\n`).
    pub fn new(max: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, without `\n` or `\r\n`. An error means the stream is unusable.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ProtocolError> {
        if self.start > 0 && self.start == self.buf.len() {
            // All taken: start over, and give back what one long line made the buffer grow to.
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            self.buf.shrink_to(16 * 1024);
        }
        let pending = &self.buf[self.scanned..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i;
                let line_start = self.start;
                self.start = end + 1;
                self.scanned = self.start;
                if end - line_start > self.max {
                    return Err(ProtocolError::LineTooLong);
                }
                let mut line = &self.buf[line_start..end];
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
                Ok(Some(line))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max {
                    Err(ProtocolError::LineTooLong)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Bytes received after the last complete line.
    pub fn partial(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Takes the bytes after the last complete line, as if a `\n` had followed them.
    pub fn take_partial(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> MsgId {
        MsgId {
            node: 0x0123_4567_89ab_cdef,
            seq,
        }
    }

    fn m(node: u64, guest: u32) -> MemberId {
        MemberId { node, guest }
    }

    fn lines_of(dec: &mut LineDecoder) -> Result<Vec<Vec<u8>>, ProtocolError> {
        // Every line ends in a byte already pushed: more lines than that means the decoder is
        // handing the same bytes out again (fail here rather than loop forever).
        let most = dec.partial().len();
        let mut out = Vec::new();
        while let Some(line) = dec.next_line()? {
            out.push(line.to_vec());
            assert!(out.len() <= most, "more lines than bytes pushed");
        }
        Ok(out)
    }

    #[test]
    fn decoder_gives_the_same_lines_whatever_the_split() {
        let input = "one\r\ntwo\n\nação 你好 👋\nlast\n".as_bytes();
        let want: Vec<Vec<u8>> = ["one", "two", "", "ação 你好 👋", "last"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        for cut in 0..=input.len() {
            for cut2 in cut..=input.len() {
                let mut dec = LineDecoder::default();
                let mut got = Vec::new();
                for part in [&input[..cut], &input[cut..cut2], &input[cut2..]] {
                    dec.push(part);
                    got.extend(lines_of(&mut dec).unwrap());
                }
                assert_eq!(got, want, "split at {cut},{cut2}");
                assert!(dec.partial().is_empty());
            }
        }
    }

    #[test]
    fn decoder_byte_by_byte() {
        let mut dec = LineDecoder::default();
        let mut got = Vec::new();
        for b in b"ab\ncd\r\nef" {
            dec.push(&[*b]);
            got.extend(lines_of(&mut dec).unwrap());
        }
        assert_eq!(got, vec![b"ab".to_vec(), b"cd".to_vec()]);
        assert_eq!(dec.take_partial(), b"ef");
        assert!(dec.partial().is_empty());
    }

    #[test]
    fn decoder_refuses_an_overlong_line_with_or_without_newline() {
        let mut dec = LineDecoder::new(10);
        dec.push(b"0123456789");
        assert_eq!(lines_of(&mut dec), Ok(vec![]));
        dec.push(b"x");
        assert_eq!(lines_of(&mut dec), Err(ProtocolError::LineTooLong));

        let mut dec = LineDecoder::new(10);
        dec.push(b"ok\n0123456789ab\n");
        assert_eq!(dec.next_line(), Ok(Some(&b"ok"[..])));
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));

        let mut dec = LineDecoder::new(10);
        dec.push(b"0123456789\n");
        assert_eq!(lines_of(&mut dec), Ok(vec![b"0123456789".to_vec()]));
    }

    #[test]
    fn decoder_refuses_one_byte_past_the_cap_with_a_newline() {
        let mut dec = LineDecoder::new(10);
        dec.push(b"0123456789x\n");
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));
    }

    #[test]
    fn default_cap_is_64_kib_a_line_of_exactly_that_passes_whole_one_more_byte_is_refused() {
        // The promise is 64 KiB a line, without its newline; pinned here by value, not by
        // MAX_LINE, so that moving the cap fails a test.
        const CAP: usize = 64 * 1024;
        let full = vec![b'x'; CAP];
        let over = vec![b'y'; CAP + 1];

        let mut dec = LineDecoder::default();
        dec.push(&full);
        assert_eq!(
            dec.next_line(),
            Ok(None),
            "exactly the cap waits for its newline"
        );
        dec.push(b"\nnext\n");
        assert_eq!(dec.next_line(), Ok(Some(&full[..])));
        assert_eq!(dec.next_line(), Ok(Some(&b"next"[..])));

        let mut dec = LineDecoder::default();
        dec.push(&full);
        dec.push(b"\n");
        assert_eq!(lines_of(&mut dec), Ok(vec![full.clone()]));

        // One byte more is refused at once, before any newline comes...
        let mut dec = LineDecoder::default();
        dec.push(&over);
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));

        // ...and with its newline too, even after a line that was fine.
        let mut dec = LineDecoder::default();
        dec.push(b"ok\n");
        dec.push(&over);
        dec.push(b"\n");
        assert_eq!(dec.next_line(), Ok(Some(&b"ok"[..])));
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));
    }

    #[test]
    fn decoder_gives_short_and_empty_lines_whole_in_every_chunk_size() {
        // Lines no longer than the cap, many of them empty or one byte long, so that the buffer
        // is compacted with a partial line of every length left in it.
        let input = b"\na\nb\n\ncd\n\n\nefg\nh\r\n\nij\nk\n";
        let want: Vec<Vec<u8>> = ["", "a", "b", "", "cd", "", "", "efg", "h", "", "ij", "k"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        for size in 1..=input.len() {
            let mut dec = LineDecoder::new(3);
            let mut got = Vec::new();
            for chunk in input.chunks(size) {
                dec.push(chunk);
                match lines_of(&mut dec) {
                    Ok(lines) => got.extend(lines),
                    Err(e) => panic!("chunks of {size}: {e:?} after {got:?}"),
                }
            }
            assert_eq!(got, want, "chunks of {size}");
            assert!(dec.partial().is_empty(), "chunks of {size}");
        }
    }

    #[test]
    fn a_short_partial_line_after_taken_lines_is_not_refused() {
        let mut dec = LineDecoder::new(5);
        dec.push(b"ok\nabc");
        assert_eq!(dec.next_line(), Ok(Some(&b"ok"[..])));
        assert_eq!(dec.next_line(), Ok(None));
        dec.push(b"de");
        assert_eq!(dec.next_line(), Ok(None));
        assert_eq!(dec.partial(), b"abcde");
        dec.push(b"\n");
        assert_eq!(dec.next_line(), Ok(Some(&b"abcde"[..])));
    }

    #[test]
    fn message_text_up_to_64_kib_less_512_bytes_goes_whole_and_its_frame_fits_the_cap() {
        // Pinned by value: a typed line this long is one message, a byte more makes two.
        const TEXT: usize = 64 * 1024 - 512;
        let text = "t".repeat(TEXT);
        assert_eq!(split_text(&text, MAX_TEXT).count(), 1);
        let longer = "t".repeat(TEXT + 1);
        assert_eq!(split_text(&longer, MAX_TEXT).count(), 2);

        // The widest fields a frame carrying text can have: the longest nick in four-byte
        // characters, the largest ids.
        let nick = "\u{1d4d0}".repeat(MAX_NICK_CHARS);
        assert_eq!(check_nick(&nick), Ok(()));
        let widest = m(u64::MAX, u32::MAX);
        let id = MsgId {
            node: u64::MAX,
            seq: u64::MAX,
        };
        for frame in [
            Frame::Msg {
                id,
                from: widest,
                nick: nick.clone(),
                text: text.clone(),
            },
            Frame::Me {
                id,
                from: widest,
                nick: nick.clone(),
                text: text.clone(),
            },
            Frame::Dm {
                id,
                from: widest,
                nick: nick.clone(),
                to: widest,
                text: text.clone(),
            },
        ] {
            let mut buf = Vec::new();
            encode(&frame, &mut buf);
            let mut dec = LineDecoder::default();
            dec.push(&buf);
            // Read whole by a peer's decoder, which refuses lines over the cap.
            assert_eq!(dec.next_line(), Ok(Some(&buf[..buf.len() - 1])));
        }
    }

    #[test]
    fn decoder_passes_invalid_utf8_bytes_through() {
        let mut dec = LineDecoder::default();
        dec.push(b"\xff\xfeok\n");
        let line = dec.next_line().unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(line), "\u{fffd}\u{fffd}ok");
    }

    #[test]
    fn decoder_memory_is_reclaimed_as_lines_are_taken() {
        let mut dec = LineDecoder::new(100);
        for _ in 0..10_000 {
            dec.push(b"0123456789\n");
            assert!(dec.next_line().unwrap().is_some());
        }
        assert!(dec.buf.capacity() < 1000, "{}", dec.buf.capacity());
        dec = LineDecoder::default();
        dec.push(&[b'x'; 60_000]);
        dec.push(b"\n");
        assert!(dec.next_line().unwrap().is_some());
        assert_eq!(dec.next_line(), Ok(None));
        assert!(dec.buf.capacity() <= 16 * 1024, "{}", dec.buf.capacity());
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Hello(Hello {
                nick: "alice".into(),
                node: 42,
                listen: Some(5000),
            }),
            Frame::Hello(Hello {
                nick: "bob".into(),
                node: u64::MAX,
                listen: None,
            }),
            Frame::Msg {
                id: id(1),
                from: m(7, 0),
                nick: "ação".into(),
                text: "  spaced  text 你好 ".into(),
            },
            Frame::Msg {
                id: id(2),
                from: m(7, 3),
                nick: "a".into(),
                text: String::new(),
            },
            Frame::Me {
                id: id(2),
                from: m(7, 0),
                nick: "a".into(),
                text: "waves at everyone".into(),
            },
            Frame::Dm {
                id: id(2),
                from: m(7, 0),
                nick: "a".into(),
                to: m(u64::MAX, 12),
                text: "psst  two spaces".into(),
            },
            Frame::Nick {
                id: id(9),
                member: m(7, 0),
                old: "a".into(),
                nick: "b".into(),
            },
            Frame::Join {
                id: id(3),
                member: m(7, 2),
                nick: "c".into(),
                addr: Some("127.0.0.1:40522".into()),
            },
            Frame::Join {
                id: id(4),
                member: m(7, 0),
                nick: "c".into(),
                addr: None,
            },
            Frame::Here {
                id: id(4),
                member: m(7, 2),
                nick: "c".into(),
                addr: Some("10.0.0.1:5000".into()),
            },
            Frame::Leave {
                id: id(5),
                member: m(7, 0),
                nick: "c".into(),
                reason: Some("line too long".into()),
            },
            Frame::Leave {
                id: id(6),
                member: m(7, 1),
                nick: "c".into(),
                reason: None,
            },
            Frame::Peers(vec![
                (1, "127.0.0.1:5000".parse().unwrap()),
                (u64::MAX, "[::1]:6000".parse().unwrap()),
            ]),
            Frame::Peers(vec![]),
            Frame::Ping,
            Frame::Pong,
            Frame::Close("duplicate connection".into()),
        ];
        for frame in frames {
            let mut buf = Vec::new();
            encode(&frame, &mut buf);
            assert_eq!(buf.last(), Some(&b'\n'));
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            let line = std::str::from_utf8(&buf[..buf.len() - 1]).unwrap();
            let back = match &frame {
                Frame::Hello(_) => Frame::Hello(parse_hello(line).unwrap()),
                _ => parse_frame(line).unwrap(),
            };
            assert_eq!(back, frame, "{line}");
        }
    }

    #[test]
    fn hello_reads_as_a_sentence_and_rejects_other_lines() {
        let mut buf = Vec::new();
        encode(
            &Frame::Hello(Hello {
                nick: "alice".into(),
                node: 0xab,
                listen: Some(5000),
            }),
            &mut buf,
        );
        assert_eq!(
            buf,
            b"peerchat/1 hello from alice (node=00000000000000ab listen=5000)\n"
        );
        assert!(parse_hello("peerchat/1 hello from alice (node=00000000000000ab)").is_some());
        assert!(parse_hello("peerchat/1.3 hello from a (node=00000000000000ab x=y)").is_some());
        for other in [
            "hello",
            "bob: hi ",
            "peerchat/2 hello from alice (node=00000000000000ab)",
            "peerchat/1 hello from alice",
            "peerchat/1 hello from alice (listen=5)",
            "peerchat/1 hello from  (node=00000000000000ab)",
        ] {
            assert_eq!(parse_hello(other), None, "{other}");
        }
    }

    #[test]
    fn malformed_and_unknown_frames() {
        assert_eq!(
            parse_frame("WHOIS 1 2"),
            Ok(Frame::Unknown("WHOIS 1 2".into()))
        );
        for bad in [
            "",
            "hello there",
            "MSG",
            "MSG 12:3 0123456789abcdef bob hi",
            "MSG 0123456789abcdef:x 0123456789abcdef bob hi",
            "MSG 0123456789abcdef:1 0123456789abcdef",
            "MSG 0123456789abcdef:1 bob hi",
            "MSG 0123456789abcdef:1 0123456789abcdef.0 bob hi",
            "MSG 0123456789abcdef:1 0123456789abcdef.x bob hi",
            "MSG +123456789abcdef:1 0123456789abcdef bob hi",
            "MSG 0123456789abcdef:+1 0123456789abcdef bob hi",
            "JOIN 0123456789abcdef:1 0123456789abcdef \x1b[2J",
            "DM 0123456789abcdef:1 0123456789abcdef bob",
            "DM 0123456789abcdef:1 0123456789abcdef bob carol hi",
            "NICK 0123456789abcdef:1 0123456789abcdef bob",
            "NICK 0123456789abcdef:1 0123456789abcdef bob x y",
            "PEERS 0123456789abcdef@nowhere",
            "PEERS 127.0.0.1:5000",
        ] {
            assert!(
                matches!(parse_frame(bad), Err(ProtocolError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn guest_lines_are_plain_and_safe() {
        let mut buf = Vec::new();
        let msg = Frame::Msg {
            id: id(1),
            from: m(1, 0),
            nick: "bob".into(),
            text: "hi \x1b[2J".into(),
        };
        assert!(encode_guest(&msg, &mut buf));
        assert_eq!(buf, b"<bob> hi ^[[2J\n");
        buf.clear();
        let dm = Frame::Dm {
            id: id(1),
            from: m(1, 0),
            nick: "bob".into(),
            to: m(2, 1),
            text: "psst".into(),
        };
        for quiet in [Frame::Unknown("WHOIS".into()), Frame::Ping, dm.clone()] {
            assert!(!encode_guest(&quiet, &mut buf));
        }
        assert!(buf.is_empty());
        assert!(encode_guest_direct(&dm, &mut buf));
        assert_eq!(buf, b"[dm] <bob> psst\n");
    }

    #[test]
    fn member_ids_and_tags() {
        let node = 0xabcd_0000_0000_0001;
        assert_eq!(m(node, 0).to_string(), "abcd000000000001");
        assert_eq!(m(node, 4).to_string(), "abcd000000000001.4");
        assert_eq!(m(node, 0).tag(), "#abcd");
        assert_eq!(m(node, 4).tag(), "#abcd.4");
        assert_eq!(MemberId::parse("abcd000000000001.4"), Some(m(node, 4)));
        assert_eq!(MemberId::parse("abcd000000000001.0"), None);
        assert_eq!(MemberId::parse("abcd000000000001."), None);
    }

    #[test]
    fn a_guest_number_is_plain_digits() {
        assert_eq!(
            MemberId::parse("abcd000000000001.12"),
            Some(m(0xabcd_0000_0000_0001, 12))
        );
        for bad in [
            "abcd000000000001.+4",
            "abcd000000000001.-4",
            "abcd000000000001. 4",
        ] {
            assert_eq!(MemberId::parse(bad), None, "{bad:?}");
        }
        assert!(matches!(
            parse_frame("MSG 0123456789abcdef:1 0123456789abcdef.+1 bob hi"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn a_refused_nick_is_told_which_rule_it_broke() {
        assert_eq!(NickError::Empty.to_string(), "a nick cannot be empty");
        assert_eq!(
            NickError::TooLong.to_string(),
            "a nick has at most 32 characters"
        );
        assert_eq!(
            NickError::BadChar.to_string(),
            "a nick cannot hold spaces or control characters"
        );
    }

    #[test]
    fn nick_rules() {
        assert_eq!(check_nick("alice"), Ok(()));
        assert_eq!(check_nick("ação-你好"), Ok(()));
        assert_eq!(check_nick(&"x".repeat(32)), Ok(()));
        assert_eq!(check_nick(""), Err(NickError::Empty));
        assert_eq!(check_nick(&"é".repeat(33)), Err(NickError::TooLong));
        for bad in ["a b", "a\tb", "a\x1bb", "a\u{202e}b", "a\u{85}"] {
            assert_eq!(check_nick(bad), Err(NickError::BadChar), "{bad:?}");
        }
    }

    #[test]
    fn split_text_keeps_every_byte_and_char_boundaries() {
        let text = "ação".repeat(1000);
        let pieces: Vec<&str> = split_text(&text, 7).collect();
        assert!(pieces.iter().all(|p| p.len() <= 7 && !p.is_empty()));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split_text("short", 100).collect::<Vec<_>>(), vec!["short"]);
        assert_eq!(split_text("", 100).collect::<Vec<_>>(), vec![""]);
        // A limit under one character still moves on, a character at a time.
        assert_eq!(
            split_text("çç", 1).take(3).collect::<Vec<_>>(),
            vec!["ç", "ç"]
        );
    }
}
