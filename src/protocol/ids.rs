//! Who and what a frame names: node ids, message ids (`<16 hex>:<decimal>`) and member ids
//! (`<16 hex>` or `<16 hex>.<guest>`), with their strict text forms.
//!
//! Pure code. Must not know about frames or lines: `frame.rs` reads and writes those.

use std::fmt;

/// A node's identity: random per run, so a restarted node is a new origin.
pub type NodeId = u64;

/// Reads exactly 16 hex digits (no sign, no prefix).
pub(super) fn parse_node(s: &str) -> Option<NodeId> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

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

impl MsgId {
    pub(super) fn parse(s: &str) -> Option<MsgId> {
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

    pub(super) fn parse(s: &str) -> Option<MemberId> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::m;
    use crate::protocol::{parse_frame, ProtocolError};

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
}
