//! The roster: everyone in the chat as far as this node knows (itself included), their nicks
//! and addresses, how each is shown, and who left for good or was lost.
//!
//! How a member is shown depends on member ids alone, so every node shows it alike: a guest's
//! name starts with `~` (no nick may), and members whose nicks look alike (the same
//! `protocol::skeleton_key`: `bob`, `Bob`, Cyrillic `bоb`) each carry a tag.
//!
//! Owns the members and the index by nick. Must not queue actions or know connections: it
//! returns the [`Event`]s to show and the chat decides when.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::RangeInclusive;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::bounds::{Bounds, Weight};
use super::recent::Recent;
use crate::event::{Event, Found, Name};
use crate::protocol::{skeleton_key, MemberId, NodeId, Signed, GUEST_MARK};

/// Members with the same nick (or nicks that look alike) known at once, at most: joins past it
/// are not recorded (a peer flooding joins under one nick cannot make every lookup slow).
pub(super) const MAX_SAME_NICK: usize = 64;

/// How long a member announced lost stays lost: joins relayed by other nodes in that time do not
/// bring it back (they may be older than the loss); only fresh evidence does.
const LOST_AGE: Duration = Duration::from_secs(600);

/// Members gone for good remembered at once, at most.
const GONE_CAP: usize = 100_000;

/// One member as the roster knows it.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) nick: String,
    pub(super) addr: Option<String>,
    /// Its node's own signed announcement of it, and its last signed nick change after that:
    /// what a new peer is handed, as they came (nobody can sign for another node).
    pub(super) signed: Kept,
    /// The fingerprint of its node's key, once known (guests share their node's).
    pub(super) key: Option<String>,
    /// Another key was remembered for this nick: that key's fingerprint.
    pub(super) key_was: Option<String>,
    /// `skeleton_key(nick)`, kept so that showing a name costs no Unicode work.
    look: String,
}

/// Why a nick may not be taken: someone else goes by it, or by one that looks like it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// The same nick, in some case; the holder's shown name.
    Same(String),
    /// A nick that looks like it; the holder's shown name.
    LooksLike(String),
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Taken::Same(who) => write!(f, "{who} is taken"),
            Taken::LooksLike(who) => write!(f, "it looks like {who}, who is here"),
        }
    }
}

/// A member's kept announcements (see [`Member::signed`]).
#[derive(Clone, Debug, Default)]
pub(super) struct Kept {
    announce: Option<Rc<Signed>>,
    rename: Option<Rc<Signed>>,
}

impl Kept {
    /// The bundles kept, the announcement first.
    fn bundles(&self) -> impl Iterator<Item = &Rc<Signed>> {
        self.announce.iter().chain(self.rename.iter())
    }
}

impl Member {
    /// What it holds, as the roster's bounds count it.
    fn weight(&self) -> Weight {
        Weight::of(&self.nick, self.addr.as_deref(), self.signed.bundles())
    }
}

/// The member ids of `node` and of the guests it hosts, in roster order.
fn hosted_by(node: NodeId) -> RangeInclusive<MemberId> {
    MemberId { node, guest: 0 }..=MemberId {
        node,
        guest: u32::MAX,
    }
}

/// Everyone in the chat, as this node knows it.
#[derive(Debug)]
pub(super) struct Roster {
    me: MemberId,
    /// Ordered, so that a node's guests (same node id) are found as a range.
    members: BTreeMap<MemberId, Member>,
    /// Members by the key of their nick (`skeleton_key`), to tell apart nicks that look alike
    /// quickly. An index of `members`, kept in step by `insert` and `forget` alone.
    by_look: HashMap<String, Vec<MemberId>>,
    /// Members that left for good (their own node said so): late joins for them are stale.
    gone: Recent<MemberId>,
    /// Members dropped because a neighbour lost them (see [`LOST_AGE`]).
    lost: Recent<MemberId>,
    /// Guests per node, other nodes' members and their kept announcements, and bytes in all,
    /// kept in step by `insert`, `forget`, `update` and `keep`.
    bounds: Bounds,
    /// The group is private: its guests (who cannot encrypt) are shown as unencrypted.
    private: bool,
}

impl Roster {
    /// A roster with only this node, `me`, called `nick`.
    /// `private`: the group is private, and its guests are shown as unencrypted.
    pub(super) fn new(me: MemberId, nick: &str, private: bool) -> Roster {
        let mut roster = Roster {
            me,
            members: BTreeMap::new(),
            by_look: HashMap::new(),
            gone: Recent::new(GONE_CAP, None),
            lost: Recent::new(GONE_CAP, Some(LOST_AGE)),
            bounds: Bounds::new(me.node),
            private,
        };
        roster.insert(me, nick, None, None);
        roster
    }

    pub(super) fn contains(&self, member: &MemberId) -> bool {
        self.members.contains_key(member)
    }

    /// Where `member` is shown to be, if known.
    pub(super) fn addr_of(&self, member: &MemberId) -> Option<String> {
        self.members.get(member).and_then(|m| m.addr.clone())
    }

    /// True if some member goes by `nick` in any case, or by a nick that looks like it.
    pub(super) fn holds_any_case(&self, nick: &str) -> bool {
        self.by_look.contains_key(&skeleton_key(nick))
    }

    /// How many members go by `nick` or a nick that looks like it, in any case.
    #[cfg(test)]
    pub(super) fn same_nick(&self, nick: &str) -> usize {
        self.same_look(&skeleton_key(nick))
    }

    fn same_look(&self, look: &str) -> usize {
        self.by_look.get(look).map_or(0, Vec::len)
    }

    /// `member` left for good, its own node said at `now`: later joins for it are stale.
    pub(super) fn mark_gone(&mut self, member: MemberId, now: Instant) {
        self.gone.insert(member, now);
    }

    /// `member` was lost at `now` (a neighbour of it said so, or we were that neighbour).
    pub(super) fn mark_lost(&mut self, member: MemberId, now: Instant) {
        self.lost.insert(member, now);
    }

    /// Fresh evidence that `member` is here: it is no longer taken for lost.
    pub(super) fn found(&mut self, member: &MemberId) {
        self.lost.remove(member);
    }

    /// `member` said hello on a connection of ours: back, whether it had left or was lost.
    pub(super) fn mark_back(&mut self, member: &MemberId) {
        self.gone.remove(member);
        self.lost.remove(member);
    }

    /// True if `member` left for good or was lost, by `now`.
    pub(super) fn is_away(&self, member: &MemberId, now: Instant) -> bool {
        self.gone.contains(member, now) || self.lost.contains(member, now)
    }

    /// Adds `member` to the roster, with its node's signed announcement of it if it came alone
    /// (it is counted with the member: one that does not fit is refused whole), within the caps;
    /// false if it did not fit.
    fn insert(
        &mut self,
        member: MemberId,
        nick: &str,
        addr: Option<String>,
        announce: Option<Rc<Signed>>,
    ) -> bool {
        let look = skeleton_key(nick);
        if self.same_look(&look) >= MAX_SAME_NICK {
            return false;
        }
        let signed = Kept {
            announce,
            rename: None,
        };
        let weight = Weight::of(nick, addr.as_deref(), signed.bundles());
        if let Err(why) = self.bounds.admit(member, weight) {
            log::debug!("{member} ({nick}) not recorded: {why}");
            return false;
        }
        self.by_look.entry(look.clone()).or_default().push(member);
        self.members.insert(
            member,
            Member {
                nick: nick.to_string(),
                addr,
                signed,
                key: None,
                key_was: None,
                look,
            },
        );
        true
    }

    /// Adds `member`, with `announce`, its node's signed announcement of it, to keep (see
    /// [`Roster::insert`]); the join to show if it fitted.
    pub(super) fn add(
        &mut self,
        member: MemberId,
        nick: &str,
        addr: Option<String>,
        announce: Option<Rc<Signed>>,
    ) -> Option<Event> {
        self.insert(member, nick, addr.clone(), announce)
            .then(|| Event::Join {
                nick: self.display(member),
                addr,
                unencrypted: self.unencrypted(member),
            })
    }

    /// Takes `member` off the roster.
    pub(super) fn forget(&mut self, member: MemberId) {
        let Some(m) = self.members.remove(&member) else {
            return;
        };
        self.bounds.release(member, m.weight());
        self.unindex(member, &m.look);
    }

    /// Records the fingerprint of `member`'s key, and the one remembered for its nick if that
    /// was another (then it is shown with a warning wherever it is named).
    pub(super) fn set_key(&mut self, member: MemberId, key: String, was: Option<String>) {
        if let Some(m) = self.members.get_mut(&member) {
            m.key = Some(key);
            m.key_was = was;
        }
    }

    /// The member's record, if known.
    pub(super) fn get(&self, member: &MemberId) -> Option<&Member> {
        self.members.get(member)
    }

    /// Keeps `bundle`, its node's signed announcement of `member` (which replaces a nick
    /// change kept before it), if it fits the caps; else what was kept stays.
    pub(super) fn keep_announcement(&mut self, member: MemberId, bundle: Rc<Signed>) {
        self.keep(
            member,
            Kept {
                announce: Some(bundle),
                rename: None,
            },
        );
    }

    /// Keeps `bundle`, its node's signed nick change of `member`, if it fits the caps; else
    /// what was kept stays.
    pub(super) fn keep_rename(&mut self, member: MemberId, bundle: Rc<Signed>) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let signed = Kept {
            announce: m.signed.announce.clone(),
            rename: Some(bundle),
        };
        self.keep(member, signed);
    }

    /// `member` keeps `signed` instead of what it kept, if that fits the caps.
    fn keep(&mut self, member: MemberId, signed: Kept) {
        let Some(m) = self.members.get_mut(&member) else {
            return;
        };
        let from = m.weight();
        let to = Weight::of(&m.nick, m.addr.as_deref(), signed.bundles());
        if self.bounds.reweigh(member, from, to).is_ok() {
            m.signed = signed;
        }
    }

    /// The kept announcements of every member but those of node `except`, in roster order
    /// (a node before its guests, whose bundles its key checks).
    pub(super) fn announcements(&self, except: NodeId) -> Vec<Rc<Signed>> {
        self.members
            .iter()
            .filter(|(m, _)| m.node != except)
            .flat_map(|(_, v)| v.signed.bundles())
            .cloned()
            .collect()
    }

    /// A known member's new nick and, when given, address.
    pub(super) fn update(&mut self, member: MemberId, nick: &str, addr: Option<String>) {
        let Some(m) = self.members.get_mut(&member) else {
            return;
        };
        if addr.is_some() {
            self.bounds.readdress(m.addr.as_deref(), addr.as_deref());
            m.addr = addr;
        }
        if m.nick == nick {
            return;
        }
        // Too many with the new nick (or it does not fit): the old one stays.
        let look = skeleton_key(nick);
        let from = m.weight();
        let to = Weight::of(nick, m.addr.as_deref(), m.signed.bundles());
        let old_look = m.look.clone();
        let crowded = look != old_look && self.same_look(&look) >= MAX_SAME_NICK;
        if crowded || self.bounds.reweigh(member, from, to).is_err() {
            return;
        }
        self.unindex(member, &old_look);
        self.by_look.entry(look.clone()).or_default().push(member);
        if let Some(m) = self.members.get_mut(&member) {
            m.nick = nick.to_string();
            m.look = look;
        }
    }

    /// `member` is no longer in the index by nick under `look`.
    fn unindex(&mut self, member: MemberId, look: &str) {
        if let Some(list) = self.by_look.get_mut(look) {
            list.retain(|&x| x != member);
            if list.is_empty() {
                self.by_look.remove(look);
            }
        }
    }

    /// Records a member learnt of from one of its messages (its join went by unseen), unless
    /// it or, for a guest, its node left or was lost (a late message brings back neither).
    /// True if it was recorded now (its key is then to be learnt).
    pub(super) fn note(&mut self, member: MemberId, nick: &str, now: Instant) -> bool {
        let host = MemberId::node(member.node);
        if member.node == self.me.node || self.is_away(&member, now) || self.is_away(&host, now) {
            return false;
        }
        // A member known already keeps its nick: only its node's signed NICK renames it, so
        // that a message cannot pass for another's under a nick never announced (nor skip the
        // check of the key remembered for that nick).
        !self.contains(&member) && self.insert(member, nick, None, None)
    }

    /// The leave of `member` as shown (its name is taken while it is still on the roster).
    pub(super) fn leave(
        &self,
        member: MemberId,
        addr: Option<String>,
        reason: Option<String>,
    ) -> Event {
        Event::Leave {
            nick: self.display(member),
            addr,
            reason,
        }
    }

    /// Removes `member` (and, for a node, the guests it hosted, marked lost at `now`); the
    /// leaves to show, none if it was not known.
    pub(super) fn remove(
        &mut self,
        member: MemberId,
        addr: Option<String>,
        reason: Option<String>,
    ) -> Vec<Event> {
        if !self.contains(&member) {
            return Vec::new();
        }
        let mut leaves = vec![self.leave(member, addr, reason)];
        self.forget(member);
        if member.guest == 0 {
            for (guest, m) in self.hosted(member.node) {
                leaves.push(self.leave(guest, m.addr, Some("its node left".into())));
                // Not marked away one by one: their node is (gone or lost, by the caller), which
                // keeps a late message of theirs out, and once their node is back, their next
                // message brings them back with it.
                self.forget(guest);
            }
        }
        leaves
    }

    /// Node `node` and the guests it hosts, in roster order.
    pub(super) fn hosted(&self, node: NodeId) -> Vec<(MemberId, Member)> {
        self.members
            .range(hosted_by(node))
            .map(|(&m, v)| (m, v.clone()))
            .collect()
    }

    /// Whether `member` is a guest of a private group: its last hop is plain text.
    fn unencrypted(&self, member: MemberId) -> bool {
        self.private && member.guest != 0
    }

    /// How `member` is shown: its nick, after `~` for a guest, with its tag when another member
    /// has the same nick or one that looks like it.
    pub(super) fn display(&self, member: MemberId) -> String {
        let Some(m) = self.members.get(&member) else {
            return format!("?{}", member.tag());
        };
        let mark = if member.guest == 0 { "" } else { GUEST_MARK };
        let twins: Vec<MemberId> = self
            .by_look
            .get(&m.look)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&other| other != member)
            .collect();
        if twins.is_empty() {
            return format!("{mark}{}", m.nick);
        }
        // The shortest tag (4 hex digits at least) that none of the twins shares.
        let len = (4..16)
            .find(|&len| twins.iter().all(|t| t.tag_of(len) != member.tag_of(len)))
            .unwrap_or(16);
        format!("{mark}{}{}", m.nick, member.tag_of(len))
    }

    /// How `member` is shown as the author of a message: as [`Roster::display`], with a warning
    /// when its nick was seen before with another key.
    pub(super) fn shown(&self, member: MemberId) -> String {
        let name = self.display(member);
        match self.members.get(&member).and_then(|m| m.key_was.as_ref()) {
            Some(_) => format!("{name} (key changed!)"),
            None => name,
        }
    }

    /// The member a typed nick means: a shown name (`bob#1a2b`, `~guest-1`), else a nick
    /// (with or without a guest's `~`) that only one member has or looks like. Errors are
    /// messages for the user.
    pub(super) fn resolve(&self, nick: &str) -> Result<MemberId, String> {
        let ids: Vec<MemberId> = self.members.keys().copied().collect();
        if let Some(&m) = ids.iter().find(|&&m| self.display(m) == nick) {
            return Ok(m);
        }
        let look = skeleton_key(nick.strip_prefix(GUEST_MARK).unwrap_or(nick));
        let mut same = self.by_look.get(&look).cloned().unwrap_or_default();
        same.sort();
        match same.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no one called {nick} is here; nothing was sent")),
            many => Err(format!(
                "{nick} is ambiguous ({}); nothing was sent",
                many.iter()
                    .map(|&m| self.display(m))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The `/names` list, sorted by shown name.
    #[cfg(test)]
    pub(super) fn names(&self) -> Vec<Name> {
        self.names_as(self.me)
    }

    /// The `/names` list as member `you` (this node, or a guest of it) is shown it.
    pub(super) fn names_as(&self, you: MemberId) -> Vec<Name> {
        self.names_with(you, |_| None)
    }

    /// The `/names` list as member `you` is shown it, `found` saying how each member's node
    /// became a neighbour.
    pub(super) fn names_with(
        &self,
        you: MemberId,
        found: impl Fn(MemberId) -> Option<Found>,
    ) -> Vec<Name> {
        let mut names: Vec<Name> = self
            .members
            .iter()
            .map(|(&m, member)| Name {
                nick: self.display(m),
                addr: member.addr.clone(),
                you: m == you,
                key: member.key.clone(),
                key_was: member.key_was.clone(),
                unencrypted: self.unencrypted(m),
                found: found(m),
            })
            .collect();
        names.sort_by(|a, b| a.nick.cmp(&b.nick));
        names
    }

    /// How many members are known, this node included.
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether a member other than `except` goes by `nick` in any case, or by a nick that looks
    /// like it: a guest may not take it (`/msg` would no longer know whom it means, and a reader
    /// could not tell the two apart).
    pub(super) fn taken(&self, nick: &str, except: MemberId) -> Option<Taken> {
        let mut holders = self.by_look.get(&skeleton_key(nick))?.clone();
        holders.retain(|&m| m != except);
        holders.sort();
        let folded = nick.to_lowercase();
        let same = |m: &MemberId| {
            self.members
                .get(m)
                .is_some_and(|v| v.nick.to_lowercase() == folded)
        };
        if let Some(&m) = holders.iter().find(|m| same(m)) {
            return Some(Taken::Same(self.display(m)));
        }
        holders.first().map(|&m| Taken::LooksLike(self.display(m)))
    }
}

#[cfg(test)]
mod tests;
