//! The roster's bounds per origin: how many guests each other node may have on it, how many
//! members other nodes may have on it in all, how much of their signed announcements it keeps
//! (all of which a new peer is handed at once), and how much memory all members may take
//! together, so that what one peer announces cannot grow a node without limit (2 000 invented
//! members once grew a hub by 125 MiB) nor make it cut off every new peer as too slow (20 invented
//! nodes of 1024 guests each once made the welcome 4.6 MB, past the default `--max-backlog`).
//!
//! [`Bounds`] is bookkeeping the roster keeps in step with its members: it is told of each member
//! added and removed, and of each announcement kept or dropped, and says whether a new one fits.
//! Past a bound a new member is refused; members already known are never evicted to make room.
//! This node and its own guests always fit (`--max-conns` bounds them). Must not hold the members
//! themselves nor decide what a refusal means to the chat (the roster and the relay do).

use std::collections::HashMap;
use std::fmt;
use std::mem::size_of;
use std::rc::Rc;

use log::debug;

use crate::protocol::{skeleton_key, Frame, MemberId, NodeId, Signed};

/// Guests of one other node the roster holds at once, at most.
pub(super) const MAX_GUESTS_PER_NODE: usize = 1024;

/// Wire bytes of the announcements kept for other nodes' members, at most. A new peer is handed
/// every kept announcement in one turn (`handshake::welcome`), queued before it can read any, so
/// these, with this node's own (itself and its guests, bounded by `--max-conns`) and a `PEERS`
/// frame, are what it must be able to take at once. Half the default `--max-backlog` (4 MiB)
/// leaves the other half for this node's own members and for what else is queued to it in that
/// turn, so that no new peer is cut off as too slow by its welcome however many nodes a hostile
/// peer invents (node ids cost nothing: one key, many runs). A kept `JOIN` of a guest with a short
/// nick and an address is about 226 bytes (a 155-byte `SIGNED` head, then its line), so this
/// holds about 9 300 announced members; fewer with long nicks or kept nick changes (5 600 of the
/// widest `JOIN`s, 375 bytes).
pub(super) const MAX_KEPT_WIRE: usize = 2 << 20;

/// Members of other nodes the roster holds at once, at most, announced or not. Those it keeps no
/// announcement for (learnt of from a message, or a peer whose own announcement has not come yet)
/// add nothing to the welcome, so [`MAX_KEPT_WIRE`] does not bound them; this does, a little past
/// what that cap admits of the smallest announcements (a one-letter guest with no address: 202
/// bytes, 10 400 of them), so that announced members meet the welcome's cap first.
pub(super) const MAX_MEMBERS: usize = 12_000;

/// Bytes the roster's members may take together, as [`cost`] and [`kept_cost`] count them, at
/// most. A member with a short nick and its announcement kept is counted 1 370 bytes (measured:
/// 1 250 live on the heap a member, in a chat that took 9 300 of them), so the 9 300 the welcome's
/// cap admits take 12 MiB, and with 2 700 more known only from messages the member cap is reached
/// at 13.5 MiB; the widest nicks and addresses come to about the same (14.5 MiB). So this is seldom
/// the first cap reached, and bounds the memory of whatever mix the others let in (nicks with long
/// look-alike keys, say). It was 32 MiB when a member was counted about 290 bytes but held 2 170
/// (its announcement was not counted, and a kept bundle held room for four decoded frames): with
/// 100 000 members, over 200 MiB.
pub(super) const MAX_ROSTER_BYTES: usize = 16 << 20;

/// What a member costs beyond the bytes of its nick and address: its entry in the member map
/// (the member itself, 136 bytes, and its share of a B-tree node), in the index by nick (ids,
/// string and vector headers, hash slots) and the key fingerprint it shows (measured: 435 bytes a
/// member), rounded up for the hash table's growth.
pub(super) const MEMBER_OVERHEAD: usize = 512;

/// What a kept bundle costs beyond its wire bytes and its frames: its box (the reference counts
/// and the bundle's own fields).
const BUNDLE_OVERHEAD: usize = 2 * size_of::<usize>() + size_of::<Signed>();

/// The bytes member called `nick` at `addr` is counted for, beside its kept announcements: the
/// nick once, the key it is told apart by (`skeleton_key`, which may be longer) twice (the member
/// and the index by it), the address once.
pub(super) fn cost(nick: &str, addr: Option<&str>) -> usize {
    nick.len() + 2 * skeleton_key(nick).len() + addr.map_or(0, str::len) + MEMBER_OVERHEAD
}

/// The bytes a kept bundle takes: its wire bytes (what a new peer is sent), its decoded frames
/// and the strings they hold (no longer than their lines, so counted as the wire bytes again),
/// and its box. A node announces each member alone, and only such bundles are kept, so the whole
/// bundle is its member's.
pub(super) fn kept_cost(b: &Signed) -> usize {
    BUNDLE_OVERHEAD + b.wire.capacity() + b.wire.len() + b.frames.capacity() * size_of::<Frame>()
}

/// What a member holds, as the bounds count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Weight {
    /// Its bytes in memory: [`cost`] and the [`kept_cost`] of each kept announcement.
    pub(super) bytes: usize,
    /// The wire bytes of its kept announcements: what a new peer is sent for it.
    pub(super) wire: usize,
}

impl Weight {
    /// A member called `nick` at `addr`, keeping the announcements `kept`.
    pub(super) fn of<'a>(
        nick: &str,
        addr: Option<&str>,
        kept: impl IntoIterator<Item = &'a Rc<Signed>>,
    ) -> Weight {
        kept.into_iter().fold(
            Weight {
                bytes: cost(nick, addr),
                wire: 0,
            },
            |w, b| Weight {
                bytes: w.bytes + kept_cost(b),
                wire: w.wire + b.wire.len(),
            },
        )
    }
}

/// Why a member, or its announcement, was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its node has [`MAX_GUESTS_PER_NODE`] guests on the roster already.
    TooManyGuests,
    /// It would take the roster past [`MAX_ROSTER_BYTES`], [`MAX_MEMBERS`] or
    /// [`MAX_KEPT_WIRE`].
    Full,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyGuests => write!(f, "its node has {MAX_GUESTS_PER_NODE} guests here"),
            Refusal::Full => write!(
                f,
                "the roster is full ({MAX_ROSTER_BYTES} bytes, {MAX_MEMBERS} members of other \
                 nodes or {MAX_KEPT_WIRE} bytes of their announcements)"
            ),
        }
    }
}

/// The caps [`Bounds`] holds the roster to.
#[derive(Clone, Copy, Debug)]
struct Caps {
    guests: usize,
    members: usize,
    bytes: usize,
    wire: usize,
}

/// The roster's totals: bytes, other nodes' members and their kept announcements, and guests by
/// node.
#[derive(Debug)]
pub(super) struct Bounds {
    /// This node: it and its guests are always recorded.
    me: NodeId,
    /// Bytes of all members, this node's included.
    bytes: usize,
    /// Other nodes' members, and the wire bytes of their kept announcements.
    others: usize,
    wire: usize,
    /// Guests on the roster by their node; nodes with none are not kept.
    guests: HashMap<NodeId, usize>,
    caps: Caps,
}

impl Bounds {
    /// Bounds for the roster of node `me`, with the caps above.
    pub(super) fn new(me: NodeId) -> Bounds {
        Bounds::with_caps(
            me,
            Caps {
                guests: MAX_GUESTS_PER_NODE,
                members: MAX_MEMBERS,
                bytes: MAX_ROSTER_BYTES,
                wire: MAX_KEPT_WIRE,
            },
        )
    }

    fn with_caps(me: NodeId, caps: Caps) -> Bounds {
        Bounds {
            me,
            bytes: 0,
            others: 0,
            wire: 0,
            guests: HashMap::new(),
            caps,
        }
    }

    fn is_mine(&self, member: MemberId) -> bool {
        member.node == self.me
    }

    /// Whether totals grown by `more` (and `others` more members of other nodes) stay within
    /// the byte caps: this node's own always do.
    fn fits(&self, member: MemberId, more: Weight) -> bool {
        self.is_mine(member)
            || (self.bytes.saturating_add(more.bytes) <= self.caps.bytes
                && self.wire.saturating_add(more.wire) <= self.caps.wire)
    }

    /// Counts `member`, holding `weight`, if it fits; why not otherwise.
    pub(super) fn admit(&mut self, member: MemberId, weight: Weight) -> Result<(), Refusal> {
        let mine = self.is_mine(member);
        let refusal = if mine {
            None
        } else if member.guest > 0 && self.guests_of(member.node) >= self.caps.guests {
            Some(Refusal::TooManyGuests)
        } else if self.others >= self.caps.members || !self.fits(member, weight) {
            Some(Refusal::Full)
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(why);
        }
        self.bytes += weight.bytes;
        if !mine {
            self.others += 1;
            self.wire += weight.wire;
        }
        if member.guest > 0 {
            *self.guests.entry(member.node).or_default() += 1;
        }
        Ok(())
    }

    /// `member`, counted as holding `weight`, is off the roster.
    pub(super) fn release(&mut self, member: MemberId, weight: Weight) {
        self.bytes = self.bytes.saturating_sub(weight.bytes);
        if !self.is_mine(member) {
            self.others = self.others.saturating_sub(1);
            self.wire = self.wire.saturating_sub(weight.wire);
        }
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

    /// Known `member` would hold `to` instead of `from` (a new nick, a new announcement kept):
    /// counted if the growth fits (this node's always does); why not otherwise (logged), and
    /// then the member keeps what it held.
    pub(super) fn reweigh(
        &mut self,
        member: MemberId,
        from: Weight,
        to: Weight,
    ) -> Result<(), Refusal> {
        let grows = Weight {
            bytes: to.bytes.saturating_sub(from.bytes),
            wire: to.wire.saturating_sub(from.wire),
        };
        // Only what grows is checked: a member that shrinks in one total and grows in the other
        // never frees room it does not give back.
        if !self.fits(member, grows) {
            debug!("{member} keeps what it held: {}", Refusal::Full);
            return Err(Refusal::Full);
        }
        self.bytes = self.bytes.saturating_sub(from.bytes) + to.bytes;
        if !self.is_mine(member) {
            self.wire = self.wire.saturating_sub(from.wire) + to.wire;
        }
        Ok(())
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

    /// Wire bytes of other nodes' kept announcements counted now.
    #[cfg(test)]
    pub(super) fn wire(&self) -> usize {
        self.wire
    }

    /// Other nodes' members counted now.
    #[cfg(test)]
    pub(super) fn others(&self) -> usize {
        self.others
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MsgId;
    use ed25519_dalek::SigningKey;

    const ME: NodeId = 1;

    const NO_CAPS: Caps = Caps {
        guests: usize::MAX,
        members: usize::MAX,
        bytes: usize::MAX,
        wire: usize::MAX,
    };

    fn guest(node: NodeId, n: u32) -> MemberId {
        MemberId { node, guest: n }
    }

    fn w(nick: &str, addr: Option<&str>) -> Weight {
        Weight::of(nick, addr, [])
    }

    /// `member`'s announcement, called `nick`, as its node signs it.
    fn announcement(member: MemberId, nick: &str) -> Rc<Signed> {
        signed_join(member, nick, None, 1)
    }

    /// `member`'s `JOIN` as number `seq`, called `nick` at `addr`, signed by its node.
    fn signed_join(member: MemberId, nick: &str, addr: Option<&str>, seq: u64) -> Rc<Signed> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let join = Frame::Join {
            id: MsgId {
                node: member.node,
                seq,
            },
            member,
            nick: nick.into(),
            addr: addr.map(str::to_string),
            key: None,
        };
        Rc::new(Signed::seal(&key, member.node, vec![join]))
    }

    #[test]
    fn each_other_node_has_a_bounded_number_of_guests() {
        let mut b = Bounds::with_caps(
            ME,
            Caps {
                guests: 3,
                ..NO_CAPS
            },
        );
        for n in 1..=3 {
            assert_eq!(b.admit(guest(7, n), w("g", None)), Ok(()));
        }
        assert_eq!(
            b.admit(guest(7, 4), w("g", None)),
            Err(Refusal::TooManyGuests)
        );
        assert_eq!(
            b.admit(MemberId::node(7), w("n7", None)),
            Ok(()),
            "the node"
        );
        assert_eq!(b.admit(guest(8, 1), w("g", None)), Ok(()), "another node");
        // One leaves: room for one more.
        b.release(guest(7, 2), w("g", None));
        assert_eq!(b.admit(guest(7, 4), w("g", None)), Ok(()));
        assert_eq!(b.guests_of(7), 3);
        // This node's own guests are bounded by --max-conns, not here.
        for n in 1..=10 {
            assert_eq!(b.admit(guest(ME, n), w("g", None)), Ok(()));
        }
    }

    #[test]
    fn the_total_is_capped_and_freed_members_make_room() {
        let one = cost("bob", Some("10.0.0.2:5000"));
        assert_eq!(one, 9 + 13 + MEMBER_OVERHEAD);
        let bob = |a| w("bob", Some(a));
        let mut b = Bounds::with_caps(
            ME,
            Caps {
                bytes: 2 * one,
                ..NO_CAPS
            },
        );
        assert_eq!(b.admit(MemberId::node(2), bob("10.0.0.2:5000")), Ok(()));
        assert_eq!(b.admit(MemberId::node(3), bob("10.0.0.3:5000")), Ok(()));
        assert_eq!(b.admit(MemberId::node(4), w("b", None)), Err(Refusal::Full));
        assert_eq!(
            b.admit(MemberId::node(ME), w("me", None)),
            Ok(()),
            "this node"
        );
        b.release(MemberId::node(ME), w("me", None));
        b.release(MemberId::node(2), bob("10.0.0.2:5000"));
        assert_eq!(b.bytes(), one);
        assert_eq!(b.admit(MemberId::node(4), w("b", None)), Ok(()));
    }

    #[test]
    fn other_nodes_members_are_capped_in_number_and_this_nodes_are_not_counted() {
        let mut b = Bounds::with_caps(
            ME,
            Caps {
                members: 2,
                ..NO_CAPS
            },
        );
        assert_eq!(b.admit(MemberId::node(2), w("bob", None)), Ok(()));
        assert_eq!(b.admit(guest(2, 1), w("g", None)), Ok(()));
        assert_eq!(
            b.admit(MemberId::node(3), w("cat", None)),
            Err(Refusal::Full)
        );
        for n in 0..5 {
            assert_eq!(b.admit(guest(ME, n), w("mine", None)), Ok(()));
        }
        assert_eq!(b.others(), 2);
        b.release(guest(2, 1), w("g", None));
        assert_eq!(b.admit(MemberId::node(3), w("cat", None)), Ok(()));
    }

    #[test]
    fn a_kept_announcement_counts_its_wire_bytes_its_frames_and_its_box() {
        let bundle = announcement(MemberId::node(2), "bob");
        assert_eq!(bundle.wire.capacity(), bundle.wire.len(), "no slack kept");
        assert_eq!(bundle.frames.capacity(), 1, "no slack kept");
        let each = kept_cost(&bundle);
        assert_eq!(
            each,
            2 * bundle.wire.len() + size_of::<Frame>() + BUNDLE_OVERHEAD
        );
        let weight = Weight::of("bob", None, [&bundle]);
        assert_eq!(
            weight,
            Weight {
                bytes: cost("bob", None) + each,
                wire: bundle.wire.len()
            }
        );
    }

    #[test]
    fn other_nodes_kept_announcements_are_capped_in_wire_bytes() {
        let bob = announcement(MemberId::node(2), "bob");
        let one = Weight::of("bob", None, [&bob]);
        let mut b = Bounds::with_caps(
            ME,
            Caps {
                wire: 2 * one.wire,
                ..NO_CAPS
            },
        );
        assert_eq!(b.admit(MemberId::node(2), one), Ok(()));
        assert_eq!(b.admit(MemberId::node(3), one), Ok(()));
        assert_eq!(b.wire(), 2 * one.wire);
        assert_eq!(b.admit(MemberId::node(4), one), Err(Refusal::Full));
        // Known, and nothing kept for it: not counted in the welcome's cap.
        let bare = w("dan", None);
        assert_eq!(b.admit(MemberId::node(4), bare), Ok(()));
        // ...until its announcement comes, which does not fit: it keeps what it held.
        assert_eq!(b.reweigh(MemberId::node(4), bare, one), Err(Refusal::Full));
        // This node's own announcements always fit, and are not counted in that cap.
        let mine = MemberId::node(ME);
        assert_eq!(b.admit(mine, one), Ok(()));
        assert_eq!(b.wire(), 2 * one.wire);
        // One leaves: room for the announcement.
        b.release(MemberId::node(2), one);
        assert_eq!(b.reweigh(MemberId::node(4), bare, one), Ok(()));
        assert_eq!(b.wire(), 2 * one.wire);
        assert_eq!(b.bytes(), 3 * one.bytes);
    }

    /// `member`'s announcement as a peer sends it: called `nick` at `addr`.
    fn guest_join(nick: &str, addr: Option<&str>) -> Rc<Signed> {
        let member = MemberId {
            node: 0x0123_4567_89ab_cdef,
            guest: 1000,
        };
        signed_join(member, nick, addr, 12_345)
    }

    /// Bytes counted for other nodes' members at the caps: as many of them as the welcome's cap
    /// admits announced like `bundle`, then the rest to the member cap known from messages.
    fn at_the_caps(nick: &str, addr: Option<&str>, bundle: &Rc<Signed>) -> usize {
        let announced = (MAX_KEPT_WIRE / bundle.wire.len()).min(MAX_MEMBERS);
        announced * Weight::of(nick, addr, [bundle]).bytes
            + (MAX_MEMBERS - announced) * cost(nick, addr)
    }

    #[test]
    fn the_caps_agree_announced_members_meet_the_welcomes_cap_first() {
        let typical = guest_join("g12-345", Some("10.1.1.96:40000"));
        assert!(
            (200..240).contains(&typical.wire.len()),
            "{}",
            typical.wire.len()
        );
        let smallest = guest_join("a", None);
        assert!(MAX_KEPT_WIRE / smallest.wire.len() <= MAX_MEMBERS);
        assert!(MAX_KEPT_WIRE / typical.wire.len() >= 9_000);
        // The byte cap is not the first reached, with short nicks or the widest.
        let wide = format!("{:06}{}", 0, "\u{1d4d0}".repeat(26));
        let v6 = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535";
        for (nick, addr) in [("g12-345", Some("10.1.1.96:40000")), ("a", None)] {
            let b = guest_join(nick, addr);
            assert!(at_the_caps(nick, addr, &b) <= MAX_ROSTER_BYTES, "{nick}");
        }
        assert!(at_the_caps(&wide, Some(v6), &guest_join(&wide, Some(v6))) <= MAX_ROSTER_BYTES);
    }

    #[test]
    fn a_new_address_is_counted() {
        let mut b = Bounds::new(ME);
        assert_eq!(b.admit(MemberId::node(2), w("bob", None)), Ok(()));
        b.readdress(None, Some("10.0.0.2:5000"));
        assert_eq!(b.bytes(), cost("bob", Some("10.0.0.2:5000")));
        b.readdress(Some("10.0.0.2:5000"), Some("[::1]:5000"));
        b.release(MemberId::node(2), w("bob", Some("[::1]:5000")));
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn refusals_say_which_bound() {
        assert_eq!(
            Refusal::TooManyGuests.to_string(),
            "its node has 1024 guests here"
        );
        assert_eq!(
            Refusal::Full.to_string(),
            "the roster is full (16777216 bytes, 12000 members of other nodes or 2097152 bytes \
             of their announcements)"
        );
    }
}
