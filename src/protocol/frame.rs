//! Frames: the lines peers exchange after their hellos, the hello itself, and the peer encoding
//! of both (`encode`, `parse_frame`, `parse_hello`). docs/PROTOCOL.md describes the same format
//! for people.
//!
//! Pure code: one line in, one frame out, and back. Must not split byte streams into lines
//! (`decoder.rs` does), format lines for guests (`guest.rs`), or decide what a frame means to the
//! chat.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use super::addr::{listen_port, valid_addr};
use super::ids::{parse_node, MemberId, MsgId, NodeId};
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
        self.head().map(|h| h.id)
    }

    /// The head, for flooded frames: the one place that names each flooded kind's verb.
    fn head(&self) -> Option<Head<'_>> {
        let (verb, id, member, nick) = match self {
            Frame::Msg { id, from, nick, .. } => ("MSG", id, from, nick),
            Frame::Me { id, from, nick, .. } => ("ME", id, from, nick),
            Frame::Dm { id, from, nick, .. } => ("DM", id, from, nick),
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
        flooded => write_flooded(&mut s, flooded),
    };
    out.push(b'\n');
}

fn write_hello(s: &mut Appender<'_>, h: &Hello) -> fmt::Result {
    write!(
        s,
        "peerchat/{VERSION} hello from {} (node={:016x} ",
        h.nick, h.node
    )?;
    match h.listen {
        Some(port) => write!(s, "listen={port})"),
        None => s.write_str("listen=-)"),
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
        Frame::Nick { nick, .. } => write!(s, " {nick}"),
        Frame::Join { addr, .. } | Frame::Here { addr, .. } => {
            write!(s, " {}", addr.as_deref().unwrap_or("-"))
        }
        Frame::Leave {
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
            Some(("listen", v)) => listen = Some(listen_port(v)?),
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
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "PING" => Ok(Frame::Ping),
        "PONG" => Ok(Frame::Pong),
        "CLOSE" => Ok(Frame::Close(rest.to_string())),
        "PEERS" => parse_peers(rest),
        "MSG" => parse_msg(rest),
        "ME" => parse_me(rest),
        "DM" => parse_dm(rest),
        "NICK" => parse_nick(rest),
        "JOIN" => parse_join(rest),
        "HERE" => parse_here(rest),
        "LEAVE" => parse_leave(rest),
        // A kind from a later version: taken, and ignored.
        _ if !verb.is_empty() && verb.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(Frame::Unknown(line.to_string()))
        }
        _ => Err(Malformed("not a frame")),
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

/// An address field: `-` when the announcing node does not know it; free text is refused.
fn addr_field(f: &mut Fields<'_>) -> Result<Option<String>, ProtocolError> {
    match f.tail() {
        Some(a) if !valid_addr(a) => Err(Malformed("bad address")),
        a => Ok(a.filter(|a| *a != "-").map(str::to_string)),
    }
}

fn parse_join(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 0)?;
    let addr = addr_field(&mut f)?;
    Ok(Frame::Join {
        id: f.id,
        member: f.member,
        nick: f.nick,
        addr,
    })
}

fn parse_here(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 0)?;
    let addr = addr_field(&mut f)?;
    Ok(Frame::Here {
        id: f.id,
        member: f.member,
        nick: f.nick,
        addr,
    })
}

fn parse_leave(rest: &str) -> Result<Frame, ProtocolError> {
    let mut f = Fields::read(rest, 0)?;
    let reason = f.tail().filter(|r| !r.is_empty()).map(str::to_string);
    Ok(Frame::Leave {
        id: f.id,
        member: f.member,
        nick: f.nick,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::{id, m};

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
}
