//! Guest lines: what a person at `nc` (or a script) is shown for a frame — plain text such as
//! `<nick> text` or `* nick joined`, with a peer's words made terminal-safe and a guest's name
//! after `~`, as every node shows it.
//!
//! Pure code: frames in, bytes out. Must not parse what a guest types (the chat takes that as
//! text) or decide who is shown what (the chat and the shared log do).

use super::frame::{encode, Frame};
use super::{MemberId, GUEST_MARK};
use crate::safe::sanitize;

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

/// `HH:MM:SS` of unix milliseconds `ms`, `offset` seconds east of UTC: the time a guest's
/// history line is dated with.
pub fn clock(ms: u64, offset: i32) -> String {
    let secs = (ms / 1000) as i64 + i64::from(offset);
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
}

/// Part of a guest line: our own words, or a peer's, which are made terminal-safe.
enum Piece<'a> {
    Plain(&'a str),
    Peer(&'a str),
}

/// What goes before `member`'s nick: `~` for a guest, so that it never reads as a node's.
fn mark(member: &MemberId) -> &'static str {
    if member.guest == 0 {
        ""
    } else {
        GUEST_MARK
    }
}

/// Appends what a guest (nc, telnet, a script) is shown for `frame`: a plain, terminal-safe line,
/// or nothing for frames that mean nothing to a person or are not for every guest (a direct
/// message; see [`encode_guest_direct`]). Returns whether anything was appended.
pub fn encode_guest(frame: &Frame, out: &mut Vec<u8>) -> bool {
    use Piece::{Peer, Plain};
    match frame {
        Frame::Hello(_) => encode(frame, out),
        Frame::Msg {
            from, nick, text, ..
        } => push_line(
            out,
            &[
                Plain("<"),
                Plain(mark(from)),
                Peer(nick),
                Plain("> "),
                Peer(text),
            ],
        ),
        Frame::Me {
            from, nick, text, ..
        } => push_line(
            out,
            &[
                Plain("* "),
                Plain(mark(from)),
                Peer(nick),
                Plain(" "),
                Peer(text),
            ],
        ),
        Frame::Nick {
            member, old, nick, ..
        } => push_line(
            out,
            &[
                Plain("* "),
                Plain(mark(member)),
                Peer(old),
                Plain(" is now known as "),
                Plain(mark(member)),
                Peer(nick),
            ],
        ),
        Frame::Join { member, nick, .. } => push_line(
            out,
            &[
                Plain("* "),
                Plain(mark(member)),
                Peer(nick),
                Plain(" joined"),
            ],
        ),
        Frame::Leave {
            member,
            nick,
            reason: None,
            ..
        } => push_line(
            out,
            &[Plain("* "), Plain(mark(member)), Peer(nick), Plain(" left")],
        ),
        Frame::Leave {
            member,
            nick,
            reason: Some(r),
            ..
        } => push_line(
            out,
            &[
                Plain("* "),
                Plain(mark(member)),
                Peer(nick),
                Plain(" left ("),
                Peer(r),
                Plain(")"),
            ],
        ),
        // A node saying it is here, or a claim about another, is news only for peers: guests
        // are told of joins and leaves when this node decides them.
        Frame::Here { .. }
        | Frame::Lost { .. }
        | Frame::Proof(_)
        | Frame::Bundle(_)
        | Frame::Signed(_)
        | Frame::HistHead(_)
        | Frame::Hist(_)
        | Frame::Dm { .. }
        | Frame::Sdm { .. }
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
        Frame::Dm {
            from, nick, text, ..
        } => {
            use Piece::{Peer, Plain};
            push_line(
                out,
                &[
                    Plain("[dm] <"),
                    Plain(mark(from)),
                    Peer(nick),
                    Plain("> "),
                    Peer(text),
                ],
            );
            true
        }
        _ => encode_guest(frame, out),
    }
}

/// True for the lines [`encode_guest`] makes (`<nick> text`, `* event`): what a peerchat node
/// sends to a connection it has not (yet) recognised as a peer.
pub fn is_guest_text(line: &str) -> bool {
    line.starts_with('<') || line.starts_with("* ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::{id, m};

    #[test]
    fn a_clock_is_the_time_of_day_at_the_offset() {
        // 2026-11-21T14:04:12.310Z
        let at = 1_795_269_852_310;
        assert_eq!(clock(at, 0), "14:04:12");
        assert_eq!(clock(at, -3 * 3600), "11:04:12");
        assert_eq!(clock(at, 10 * 3600 + 1800), "00:34:12", "past midnight");
        assert_eq!(clock(0, -60), "23:59:00", "before the epoch's midnight");
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
    fn a_guests_name_is_shown_after_a_tilde_in_every_line() {
        let guest = m(1, 3);
        let frames = [
            Frame::Msg {
                id: id(1),
                from: guest,
                nick: "bob".into(),
                text: "hi".into(),
            },
            Frame::Me {
                id: id(2),
                from: guest,
                nick: "bob".into(),
                text: "waves".into(),
            },
            Frame::Nick {
                id: id(3),
                member: guest,
                old: "guest-3".into(),
                nick: "bob".into(),
            },
            Frame::Join {
                id: id(4),
                member: guest,
                nick: "bob".into(),
                addr: None,
                key: None,
            },
            Frame::Leave {
                id: id(5),
                member: guest,
                nick: "bob".into(),
                reason: Some("bye".into()),
            },
            Frame::Dm {
                id: id(6),
                from: guest,
                nick: "bob".into(),
                to: m(2, 0),
                text: "psst".into(),
            },
        ];
        let mut buf = Vec::new();
        for frame in &frames {
            assert!(encode_guest_direct(frame, &mut buf));
        }
        assert_eq!(
            String::from_utf8_lossy(&buf),
            "<~bob> hi\n* ~bob waves\n* ~guest-3 is now known as ~bob\n* ~bob joined\n\
             * ~bob left (bye)\n[dm] <~bob> psst\n"
        );
    }
}
