//! Wire protocol v2: the limits every part shares, and the rooms below, each re-exported here so
//! callers write `protocol::X`:
//! - `nick.rs`: the nick rules and the key under which look-alike nicks are one;
//! - `ids.rs`: node, message and member ids and their text forms;
//! - `addr.rs`: the address fields a frame may carry;
//! - `frame.rs`: frames and hellos, their peer encoding and parsing;
//! - `guest.rs`: the plain lines a guest is shown;
//! - `decoder.rs`: the line decoder with its hard length cap;
//! - `beacon.rs`: the UDP beacons of `--lan`.
//!
//! Pure code: bytes in, frames out. Must not import `std::io` or `mio`. docs/PROTOCOL.md
//! describes the same format for people.

use std::fmt;

mod addr;
pub mod beacon;
mod decoder;
mod frame;
mod guest;
mod ids;
mod nick;
pub mod seal;
pub mod sign;

pub use addr::{valid_addr, MAX_ADDR};
pub use decoder::LineDecoder;
pub use frame::{
    encode, encode_peer, hello_version, parse_frame, parse_hello, BundleHead, Frame, Hello,
    HistHead, Kept, NodeKey, Signed, MAX_BUNDLE_BYTES, MAX_BUNDLE_FRAMES, MAX_PEERS_LISTED,
};
pub use guest::{clock, encode_guest, encode_guest_direct, is_guest_text};
pub use ids::{MemberId, MsgId, NodeId};
pub use nick::{check_nick, skeleton_key, NickError, GUEST_MARK};

/// The protocol version this build speaks. A hello with another major version is not a hello.
pub const VERSION: u32 = 4;

/// Hard cap on one line, without its `\n`. A longer line closes the connection that sent it.
pub const MAX_LINE: usize = 64 * 1024;

/// The most text one message carries, so that `MSG <id> <nick> ` plus the text fits in
/// [`MAX_LINE`]. Longer input is split into several messages, never cut.
pub const MAX_TEXT: usize = MAX_LINE - 512;

/// Longest nick, in characters.
pub const MAX_NICK_CHARS: usize = 32;

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

/// How a listener that is full starts the one line it sends before closing.
pub const FULL: &str = "peerchat: this chat is full";

/// The one line a private group's node sends a guest (text where a Noise handshake was due)
/// before closing, unless it lets guests in. Names no nick, node or room.
pub const PRIVATE: &str =
    "peerchat: this is a private group; guests are not allowed (the host may use --allow-guests)";

/// What both ends of a link that failed its handshake show: a wrong secret, or one end
/// without a secret (the other cannot tell which).
pub const CANNOT_JOIN: &str = "cannot join: wrong secret, or not a private group";

/// True for a full listener's line (see [`FULL`]), or a private group's to a node without its
/// secret (see [`PRIVATE`]): a peerchat node that dialled it gives the dial up (and tries again
/// later) instead of taking it for something else.
pub fn is_refusal(line: &str) -> bool {
    line.starts_with(FULL) || line.starts_with(PRIVATE)
}

/// Why a dial was refused with `line` (see [`is_refusal`]), as the user is told.
pub fn refusal_reason(line: &str) -> &'static str {
    if line.starts_with(PRIVATE) {
        CANNOT_JOIN
    } else {
        "the chat is full"
    }
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

/// Small builders shared by the rooms' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{MemberId, MsgId, NodeKey};

    /// The test key made from `seed` (the same bytes each run).
    pub(crate) fn signing_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    /// The public key and a run of the test key `seed`: the node id is `node_key(seed).node()`.
    pub(crate) fn node_key(seed: u8) -> NodeKey {
        NodeKey {
            key: signing_key(seed).verifying_key(),
            run: [seed; 8],
        }
    }

    pub(super) fn id(seq: u64) -> MsgId {
        MsgId {
            node: 0x0123_4567_89ab_cdef,
            seq,
        }
    }

    pub(super) fn m(node: u64, guest: u32) -> MemberId {
        MemberId { node, guest }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::m;
    use super::*;

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
            // The longest sealed DM: its text is shorter (split sooner), its hex as long.
            Frame::Sdm {
                id,
                from: widest,
                nick: nick.clone(),
                to: widest,
                sealed: vec![0xa5; seal::MAX_SEALED],
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
