//! The roster's bounds per origin: how many guests each other node may have on it, and how much
//! memory all members may take together, so that what one peer announces cannot grow a node
//! without limit (2 000 invented members once grew a hub by 125 MiB).
//!
//! [`Bounds`] is bookkeeping the roster keeps in step with its members: it is told of each member
//! added and removed, and says whether a new one fits. Past a bound a new member is refused;
//! members already known are never evicted to make room. This node and its own guests always fit
//! (`--max-conns` bounds them). Must not hold the members themselves nor decide what a refusal
//! means to the chat (the roster and the relay do).

use std::collections::HashMap;
use std::fmt;

use log::debug;

use crate::protocol::{skeleton_key, MemberId, NodeId};

/// Guests of one other node the roster holds at once, at most.
pub(super) const MAX_GUESTS_PER_NODE: usize = 1024;

/// Bytes the roster's members may take together, as [`cost`] counts them, at most.
pub(super) const MAX_ROSTER_BYTES: usize = 32 << 20;

/// What a member costs beyond the bytes of its nick and address: its entry in the member map
/// and in the index by nick (ids, string and vector headers, hash slots), rounded up.
pub(super) const MEMBER_OVERHEAD: usize = 256;

/// The bytes member called `nick` at `addr` is counted for: the nick once, the key it is told
/// apart by (`skeleton_key`, which may be longer) twice (the member and the index by it), the
/// address once.
pub(super) fn cost(nick: &str, addr: Option<&str>) -> usize {
    nick.len() + 2 * skeleton_key(nick).len() + addr.map_or(0, str::len) + MEMBER_OVERHEAD
}

/// Why a member was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its node has [`MAX_GUESTS_PER_NODE`] guests on the roster already.
    TooManyGuests,
    /// The roster takes [`MAX_ROSTER_BYTES`] already.
    Full,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyGuests => write!(f, "its node has {MAX_GUESTS_PER_NODE} guests here"),
            Refusal::Full => write!(f, "the roster holds {MAX_ROSTER_BYTES} bytes"),
        }
    }
}

/// The roster's totals: bytes, and guests by node.
#[derive(Debug)]
pub(super) struct Bounds {
    /// This node: it and its guests are always recorded.
    me: NodeId,
    bytes: usize,
    /// Guests on the roster by their node; nodes with none are not kept.
    guests: HashMap<NodeId, usize>,
    max_guests: usize,
    max_bytes: usize,
}

impl Bounds {
    /// Bounds for the roster of node `me`, with the caps above.
    pub(super) fn new(me: NodeId) -> Bounds {
        Bounds::with_caps(me, MAX_GUESTS_PER_NODE, MAX_ROSTER_BYTES)
    }

    fn with_caps(me: NodeId, max_guests: usize, max_bytes: usize) -> Bounds {
        Bounds {
            me,
            bytes: 0,
            guests: HashMap::new(),
            max_guests,
            max_bytes,
        }
    }

    /// Counts `member`, called `nick` at `addr`, if it fits; why not otherwise (logged).
    pub(super) fn admit(
        &mut self,
        member: MemberId,
        nick: &str,
        addr: Option<&str>,
    ) -> Result<(), Refusal> {
        let cost = cost(nick, addr);
        let refusal = if member.node == self.me {
            None
        } else if member.guest > 0 && self.guests_of(member.node) >= self.max_guests {
            Some(Refusal::TooManyGuests)
        } else if self.bytes.saturating_add(cost) > self.max_bytes {
            Some(Refusal::Full)
        } else {
            None
        };
        if let Some(why) = refusal {
            debug!("{member} ({nick}) not recorded: {why}");
            return Err(why);
        }
        self.bytes += cost;
        if member.guest > 0 {
            *self.guests.entry(member.node).or_default() += 1;
        }
        Ok(())
    }

    /// `member`, counted as `nick` at `addr`, is off the roster.
    pub(super) fn release(&mut self, member: MemberId, nick: &str, addr: Option<&str>) {
        self.bytes = self.bytes.saturating_sub(cost(nick, addr));
        if member.guest == 0 {
            return;
        }
        if let Some(n) = self.guests.get_mut(&member.node) {
            *n -= 1;
            if *n == 0 {
                self.guests.remove(&member.node);
            }
        }
    }

    /// A member's address changed from `old` to `new`: counted, never refused (an address is a
    /// few dozen bytes at most, and the member is known already).
    pub(super) fn readdress(&mut self, old: Option<&str>, new: Option<&str>) {
        let len = |a: Option<&str>| a.map_or(0, str::len);
        self.bytes = self.bytes.saturating_sub(len(old)) + len(new);
    }

    /// Guests of `node` counted now.
    pub(super) fn guests_of(&self, node: NodeId) -> usize {
        self.guests.get(&node).copied().unwrap_or(0)
    }

    /// Bytes counted now.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = 1;

    fn guest(node: NodeId, n: u32) -> MemberId {
        MemberId { node, guest: n }
    }

    #[test]
    fn each_other_node_has_a_bounded_number_of_guests() {
        let mut b = Bounds::with_caps(ME, 3, usize::MAX);
        for n in 1..=3 {
            assert_eq!(b.admit(guest(7, n), "g", None), Ok(()));
        }
        assert_eq!(b.admit(guest(7, 4), "g", None), Err(Refusal::TooManyGuests));
        assert_eq!(b.admit(MemberId::node(7), "n7", None), Ok(()), "the node");
        assert_eq!(b.admit(guest(8, 1), "g", None), Ok(()), "another node");
        // One leaves: room for one more.
        b.release(guest(7, 2), "g", None);
        assert_eq!(b.admit(guest(7, 4), "g", None), Ok(()));
        assert_eq!(b.guests_of(7), 3);
        // This node's own guests are bounded by --max-conns, not here.
        for n in 1..=10 {
            assert_eq!(b.admit(guest(ME, n), "g", None), Ok(()));
        }
    }

    #[test]
    fn the_total_is_capped_and_freed_members_make_room() {
        let one = cost("bob", Some("10.0.0.2:5000"));
        assert_eq!(one, 9 + 13 + MEMBER_OVERHEAD);
        let mut b = Bounds::with_caps(ME, usize::MAX, 2 * one);
        assert_eq!(
            b.admit(MemberId::node(2), "bob", Some("10.0.0.2:5000")),
            Ok(())
        );
        assert_eq!(
            b.admit(MemberId::node(3), "bob", Some("10.0.0.3:5000")),
            Ok(())
        );
        assert_eq!(b.admit(MemberId::node(4), "b", None), Err(Refusal::Full));
        assert_eq!(b.admit(MemberId::node(ME), "me", None), Ok(()), "this node");
        b.release(MemberId::node(ME), "me", None);
        b.release(MemberId::node(2), "bob", Some("10.0.0.2:5000"));
        assert_eq!(b.bytes(), one);
        assert_eq!(b.admit(MemberId::node(4), "b", None), Ok(()));
    }

    #[test]
    fn a_new_address_is_counted() {
        let mut b = Bounds::new(ME);
        assert_eq!(b.admit(MemberId::node(2), "bob", None), Ok(()));
        b.readdress(None, Some("10.0.0.2:5000"));
        assert_eq!(b.bytes(), cost("bob", Some("10.0.0.2:5000")));
        b.readdress(Some("10.0.0.2:5000"), Some("[::1]:5000"));
        b.release(MemberId::node(2), "bob", Some("[::1]:5000"));
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn refusals_say_which_bound() {
        assert_eq!(
            Refusal::TooManyGuests.to_string(),
            "its node has 1024 guests here"
        );
        assert_eq!(Refusal::Full.to_string(), "the roster holds 33554432 bytes");
    }
}
