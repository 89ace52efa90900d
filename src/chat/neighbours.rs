//! The connections as the chat sees them: each one's other end, who opened it and why, and
//! what it turned out to be (not yet known, a peer node, or a guest); and, per source address,
//! its guests' shared budget of lines and when a guest refused from it was last shown.
//!
//! Owns the map of connections and answers questions about them. Must not queue actions, touch
//! the roster or decide what a line means (the handshake and relay do).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::flood::{Bucket, RateLimit, Shared, Tokens};
use super::keepalive::Keepalive;
use super::{ConnId, Origin};
use crate::protocol::{BundleHead, Frame, Hello, HistHead, MemberId, NodeId};

/// Hashes a connection id with one multiplication: the ids are ours (slab keys), so SipHash's
/// defence against chosen keys buys nothing on this per-message lookup.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ConnMap<V> = HashMap<ConnId, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PeerState {
    Active,
    /// It announced its own leave, so its close needs no announcement.
    SaidBye,
    /// A second connection to the same node: being closed on purpose, nobody left.
    Retired,
}

/// A connection to another peerchat node.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) nick: String,
    pub(super) node: NodeId,
    /// Changed only through [`Neighbours::retire`] and [`Neighbours::said_bye`].
    state: PeerState,
    /// Where it listens (its address as we see it, with the port from its hello).
    pub(super) listen: Option<SocketAddr>,
    pub(super) alive: Keepalive,
    /// A bundle of signed frames being read: its head and the lines so far (boxed, as the
    /// hello above: it is large, and only peers ever have one).
    pub(super) bundle: Option<Box<Incoming>>,
    /// A `HIST` head read: the bundle that must follow is history (boxed, as `bundle`).
    pub(super) hist: Option<Box<HistHead>>,
    /// When it proved its hello: a second connection to its node much later is no crossing.
    pub(super) since: Instant,
    /// History messages it may still hand over (see `history::budget`).
    pub(super) history: Tokens,
}

/// A bundle whose frame lines are still arriving.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) head: BundleHead,
    /// The frame lines as they came, each with its `\n`: what the signature covers.
    pub(super) lines: Vec<u8>,
    pub(super) frames: Vec<Frame>,
    /// Its `HIST` head, when the bundle is history.
    pub(super) hist: Option<HistHead>,
}

impl Peer {
    /// A peer that just said hello at `now`.
    pub(super) fn new(
        nick: String,
        node: NodeId,
        listen: Option<SocketAddr>,
        now: Instant,
        history: RateLimit,
    ) -> Peer {
        Peer {
            nick,
            node,
            state: PeerState::Active,
            listen,
            alive: Keepalive::new(now),
            bundle: None,
            hist: None,
            since: now,
            history: Tokens::new(now, Some(history)),
        }
    }

    pub(super) fn state(&self) -> PeerState {
        self.state
    }
}

/// A connection from something that is not a peerchat node (nc, telnet, a script).
#[derive(Debug)]
pub(super) struct Guest {
    pub(super) member: MemberId,
    pub(super) nick: String,
    pub(super) voice: Voice,
    pub(super) bucket: Bucket,
}

/// Whether a guest has sent a line yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Voice {
    /// Made a guest by its silence, and still silent: a hello may yet come (late).
    Silent,
    /// It has sent a line: a guest for good.
    Spoken,
}

/// What a connection turned out to be.
#[derive(Debug)]
pub(super) enum Kind {
    /// No line yet; taken for a guest when its hello wait (a chat timer) is over.
    Pending,
    /// It said hello (`line`, as it came); its proof of the key is awaited. The hello, with
    /// its key, is boxed: every connection's record is as large as the largest kind, and
    /// thousands of guests need not pay for it.
    Proving {
        hello: Box<Hello>,
        line: String,
    },
    Peer(Peer),
    Guest(Guest),
}

/// One connection, as the chat sees it.
#[derive(Debug)]
pub(super) struct Neighbour {
    pub(super) addr: SocketAddr,
    pub(super) origin: Origin,
    /// See [`super::Link::dialler_and_acceptor`].
    pub(super) ends: (u16, SocketAddr),
    pub(super) kind: Kind,
    /// A `PEERS` frame was taken from it already (only one is).
    pub(super) got_peers: bool,
    /// The hello we sent on it, as sent: the other side's proof signs it.
    pub(super) sent: String,
}

impl Neighbour {
    /// A connection just opened, before its first line; `sent` is our hello on it.
    pub(super) fn pending(
        addr: SocketAddr,
        origin: Origin,
        ends: (u16, SocketAddr),
        sent: String,
    ) -> Self {
        Neighbour {
            addr,
            origin,
            ends,
            kind: Kind::Pending,
            got_peers: false,
            sent,
        }
    }

    /// True for a connection the chat dialled by itself that has not proven to be a peer yet:
    /// nobody to send to, nor to wait for.
    pub(super) fn is_speculative(&self) -> bool {
        matches!(self.origin, Origin::Auto(_))
            && matches!(self.kind, Kind::Pending | Kind::Proving { .. })
    }

    /// The peer on it, if it is an active one.
    fn active_peer(&self) -> Option<&Peer> {
        match &self.kind {
            Kind::Peer(p) if p.state == PeerState::Active => Some(p),
            _ => None,
        }
    }
}

/// Every open connection, and the caller's dials for the user not open yet.
#[derive(Debug, Default)]
pub(super) struct Neighbours {
    conns: ConnMap<Neighbour>,
    /// Dials the user asked for that are still connecting (see [`Neighbours::dialling`]).
    dialling: HashSet<ConnId, std::hash::BuildHasherDefault<IdHasher>>,
    sources: Sources,
}

/// A guest refused from an address is shown to the user at most this often for that address.
pub(super) const REFUSAL_NOTICE_EVERY: Duration = Duration::from_secs(60);

/// The address a guest is counted under: the IP address it connects from, an IPv4 address
/// written as IPv6 (`::ffff:a.b.c.d`) taken as the IPv4 one.
///
/// A whole IPv6 address, not its /64: on a LAN, which peerchat is for, every host of a segment
/// shares one /64, so counting by /64 would make the limit one for the whole room. A host that
/// may add addresses at will (root on its own machine) defeats the count either way (spare IPv4
/// addresses of its subnet too); `--max-conns` bounds what it can hold in all.
pub(super) fn source_of(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

/// What one source address has here: the budget its guests share, and when a guest refused
/// from it was last shown.
#[derive(Debug)]
struct Source {
    budget: Shared,
    noticed: Option<Instant>,
}

impl Source {
    /// Nothing kept here would make a difference any more: no guest from there, a full budget
    /// (a new one is the same), no refusal shown lately.
    fn is_idle(&self, now: Instant, limit: Option<RateLimit>) -> bool {
        self.budget.others() == 0
            && self.budget.is_full(now, limit)
            && self
                .noticed
                .is_none_or(|t| now.saturating_duration_since(t) >= REFUSAL_NOTICE_EVERY)
    }
}

/// The source addresses of guests. An address stays after its last guest goes until its
/// budget has filled up again: forgotten at once, a guest that reconnects over and over would
/// get a fresh burst each time. Idle ones are swept when the table has doubled since the last
/// sweep, so it stays within twice the addresses active lately.
#[derive(Debug, Default)]
struct Sources {
    map: HashMap<IpAddr, Source>,
    /// Addresses left after the last sweep.
    kept: usize,
}

/// The table is not swept below this many addresses.
const SOURCES_SWEEP_MIN: usize = 64;

impl Sources {
    fn guests(&self, ip: IpAddr) -> usize {
        self.map.get(&ip).map_or(0, |s| s.budget.others())
    }

    fn budget(&mut self, ip: IpAddr, now: Instant, limit: Option<RateLimit>) -> Shared {
        if !self.map.contains_key(&ip) && self.map.len() >= (2 * self.kept).max(SOURCES_SWEEP_MIN) {
            self.map.retain(|_, s| !s.is_idle(now, limit));
            self.kept = self.map.len();
        }
        let source = self.map.entry(ip).or_insert_with(|| Source {
            budget: Shared::new(now, limit),
            noticed: None,
        });
        source.budget.clone()
    }

    fn notice(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(source) = self.map.get_mut(&ip) else {
            return true;
        };
        let due = source
            .noticed
            .is_none_or(|t| now.saturating_duration_since(t) >= REFUSAL_NOTICE_EVERY);
        if due {
            source.noticed = Some(now);
        }
        due
    }
}

impl Neighbours {
    /// `conn` is open: it is no longer a dial under way.
    pub(super) fn insert(&mut self, conn: ConnId, n: Neighbour) {
        self.dialling.remove(&conn);
        self.conns.insert(conn, n);
    }

    /// `conn` is gone, open or still dialling.
    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Neighbour> {
        self.dialling.remove(&conn);
        self.conns.remove(&conn)
    }

    /// The caller is dialling a peer the user named, on `conn`, until [`Neighbours::insert`]
    /// or [`Neighbours::remove`]. The caller holds what is said meanwhile for that connection
    /// (it is sent once the other end proves to be a peer), so it counts as someone to send
    /// to, as an open connection whose role is not known yet does.
    pub(super) fn dialling(&mut self, conn: ConnId) {
        if !self.conns.contains_key(&conn) {
            self.dialling.insert(conn);
        }
    }

    /// `conn` is classified as `kind` (nothing, if it is not open).
    pub(super) fn set_kind(&mut self, conn: ConnId, kind: Kind) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.kind = kind;
        }
    }

    /// Peer `conn` is being closed on purpose, nobody left; false if it was already. A
    /// connection that is not a peer is not changed (true).
    pub(super) fn retire(&mut self, conn: ConnId) -> bool {
        match self.peer_mut(conn) {
            Some(p) if p.state == PeerState::Retired => false,
            Some(p) => {
                p.state = PeerState::Retired;
                true
            }
            None => true,
        }
    }

    /// Peer `conn` announced its own leave, so its close needs no announcement. Where it is
    /// shown to have been, and where it listens; `None` if `conn` is not a peer.
    pub(super) fn said_bye(&mut self, conn: ConnId) -> Option<(SocketAddr, Option<SocketAddr>)> {
        let c = self.conns.get_mut(&conn)?;
        let Kind::Peer(p) = &mut c.kind else {
            return None;
        };
        p.state = PeerState::SaidBye;
        Some((p.listen.unwrap_or(c.addr), p.listen))
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&Neighbour> {
        self.conns.get(&conn)
    }

    pub(super) fn get_mut(&mut self, conn: ConnId) -> Option<&mut Neighbour> {
        self.conns.get_mut(&conn)
    }

    /// The peer on `conn`, whatever its state.
    pub(super) fn peer_mut(&mut self, conn: ConnId) -> Option<&mut Peer> {
        match self.conns.get_mut(&conn).map(|c| &mut c.kind) {
            Some(Kind::Peer(p)) => Some(p),
            _ => None,
        }
    }

    /// The open connection to `node`, if any.
    pub(super) fn peer_conn(&self, node: NodeId) -> Option<ConnId> {
        self.conns
            .iter()
            .find_map(|(&k, c)| c.active_peer().filter(|p| p.node == node).map(|_| k))
    }

    /// The node ids of the active peers.
    pub(super) fn peer_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.conns
            .values()
            .filter_map(|c| c.active_peer().map(|p| p.node))
    }

    /// How this node came to be linked with peer `node`: `None` if it is not a neighbour.
    pub(super) fn origin_of(&self, node: NodeId) -> Option<Origin> {
        let conn = self.peer_conn(node)?;
        self.conns.get(&conn).map(|c| c.origin)
    }

    /// The connection of guest `member`, if it is one of this node's (`me`).
    pub(super) fn guest_conn(&self, member: MemberId, me: NodeId) -> Option<ConnId> {
        if member.node != me || member.guest == 0 {
            return None;
        }
        self.conns.iter().find_map(|(&k, c)| match &c.kind {
            Kind::Guest(g) if g.member == member => Some(k),
            _ => None,
        })
    }

    /// True while some connection is an active peer.
    pub(super) fn any_active_peer(&self) -> bool {
        self.conns.values().any(|c| c.active_peer().is_some())
    }

    /// Active peer connections, in connection order.
    pub(super) fn active_peers(&self) -> Vec<ConnId> {
        let mut peers: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.active_peer().is_some())
            .map(|(&k, _)| k)
            .collect();
        peers.sort_unstable();
        peers
    }

    /// Where the active peers but the one on `except` listen, in node order.
    pub(super) fn listening_peers(&self, except: ConnId) -> Vec<(NodeId, SocketAddr)> {
        let mut peers: Vec<(NodeId, SocketAddr)> = self
            .conns
            .iter()
            .filter(|(&k, _)| k != except)
            .filter_map(|(_, c)| c.active_peer().and_then(|p| Some((p.node, p.listen?))))
            .collect();
        peers.sort_unstable();
        peers
    }

    /// True if some connection may still get what we send (the log records a message as sent
    /// only then).
    pub(super) fn anyone(&self) -> bool {
        !self.dialling.is_empty()
            || self.conns.values().any(|c| match &c.kind {
                Kind::Peer(p) => p.state == PeerState::Active,
                Kind::Guest(_) => true,
                Kind::Pending | Kind::Proving { .. } => !c.is_speculative(),
            })
    }

    /// True if a peer is connected, or a connection may become one: signing what this node
    /// says is needed only then (guests read it unsigned).
    pub(super) fn may_have_peers(&self) -> bool {
        !self.dialling.is_empty()
            || self
                .conns
                .values()
                .any(|c| !matches!(c.kind, Kind::Guest(_)))
    }

    /// Peer connections, and the chat's own connections that may become one (counted against
    /// `--max-peers` with the dials under way).
    pub(super) fn peer_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.active_peer().is_some() || c.is_speculative())
            .count()
    }

    /// True if a connection to `addr` is up or being made (its hello not read yet).
    pub(super) fn reaching(&self, addr: SocketAddr) -> bool {
        self.conns.values().any(|c| match &c.kind {
            Kind::Peer(p) => p.listen == Some(addr),
            Kind::Pending | Kind::Proving { .. } => match c.origin {
                Origin::Auto(target) => target == addr,
                Origin::Dialled => c.addr == addr,
                Origin::Accepted => false,
            },
            Kind::Guest(_) => false,
        })
    }

    /// True while a connection the chat dialled by itself has not proven to be a peer.
    pub(super) fn any_speculative(&self) -> bool {
        self.conns.values().any(Neighbour::is_speculative)
    }

    /// Guest connections, in connection order.
    pub(super) fn guest_conns(&self) -> Vec<ConnId> {
        let mut guests: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.kind, Kind::Guest(_)))
            .map(|(&k, _)| k)
            .collect();
        guests.sort_unstable();
        guests
    }

    /// How many guests there are from address `ip` (see [`source_of`]).
    pub(super) fn guests_from(&self, ip: IpAddr) -> usize {
        self.sources.guests(ip)
    }

    /// A bucket for a new guest from `ip`, spending from the budget all guests from there
    /// share; it counts as one of them (see [`Neighbours::guests_from`]) until it is dropped.
    pub(super) fn guest_bucket(
        &mut self,
        ip: IpAddr,
        now: Instant,
        limit: Option<RateLimit>,
    ) -> Bucket {
        let shared = self.sources.budget(ip, now, limit);
        Bucket::new(now, limit, Some(shared))
    }

    /// A guest from `ip` was refused at `now`: true if the user is to be shown it (at most once
    /// per [`REFUSAL_NOTICE_EVERY`] for an address).
    pub(super) fn notice_refusal(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.sources.notice(ip, now)
    }

    /// How many addresses the table keeps (for tests of its bound).
    #[cfg(test)]
    pub(super) fn sources_kept(&self) -> usize {
        self.sources.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::flood::Verdict;
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn peer(node: NodeId, state: PeerState, listen: Option<SocketAddr>) -> Kind {
        Kind::Peer(Peer {
            nick: "p".into(),
            node,
            state,
            listen,
            alive: Keepalive::new(Instant::now()),
            bundle: None,
            hist: None,
            since: Instant::now(),
            history: Tokens::new(Instant::now(), None),
        })
    }

    fn with(kind: Kind, origin: Origin, addr: SocketAddr) -> Neighbour {
        Neighbour {
            kind,
            ..Neighbour::pending(addr, origin, (1, addr), String::new())
        }
    }

    #[test]
    fn a_scan_connection_is_nobody_until_it_proves_to_be_a_peer() {
        let mut n = Neighbours::default();
        let target = at(5001);
        n.insert(
            1,
            Neighbour::pending(target, Origin::Auto(target), (1, target), String::new()),
        );
        assert!(n.get(1).is_some_and(Neighbour::is_speculative));
        assert!(n.any_speculative());
        assert!(!n.anyone());
        // It counts against the peer cap, and its address is being reached.
        assert_eq!(n.peer_count(), 1);
        assert!(n.reaching(target));
        if let Some(c) = n.get_mut(1) {
            c.kind = peer(7, PeerState::Active, Some(target));
        }
        assert!(!n.any_speculative());
        assert!(n.anyone());
        assert_eq!(n.peer_conn(7), Some(1));
        assert!(n.reaching(target));
    }

    #[test]
    fn only_active_peers_count_and_are_found() {
        let mut n = Neighbours::default();
        n.insert(
            1,
            with(peer(7, PeerState::Retired, None), Origin::Accepted, at(1)),
        );
        n.insert(
            2,
            with(peer(8, PeerState::SaidBye, None), Origin::Accepted, at(2)),
        );
        n.insert(
            3,
            with(
                peer(9, PeerState::Active, Some(at(5009))),
                Origin::Accepted,
                at(3),
            ),
        );
        n.insert(
            4,
            Neighbour::pending(at(4), Origin::Accepted, (1, at(4)), String::new()),
        );
        assert_eq!(n.peer_conn(7), None);
        assert_eq!(n.peer_conn(9), Some(3));
        assert_eq!(n.active_peers(), vec![3]);
        assert_eq!(n.peer_count(), 1);
        assert_eq!(n.listening_peers(4), vec![(9, at(5009))]);
        assert!(n.listening_peers(3).is_empty());
        // An accepted connection without its hello may be a person typing: someone.
        assert!(n.anyone());
        assert!(!n.reaching(at(4)));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn guests_are_counted_by_address_until_their_buckets_go() {
        let mut n = Neighbours::default();
        let (now, limit) = (Instant::now(), Some(RateLimit::per_second(20)));
        let a = source_of("10.0.0.7:4000".parse().expect("v4"));
        // The same host seen through an IPv6 socket is the same address.
        let a_mapped = source_of("[::ffff:10.0.0.7]:4001".parse().expect("mapped"));
        assert_eq!(a, a_mapped);
        let b = source_of("[2001:db8::1]:4000".parse().expect("v6"));
        // Another host of the same /64 is another address (see `source_of`).
        let b_next = source_of("[2001:db8::2]:4000".parse().expect("v6"));
        let one = n.guest_bucket(a, now, limit);
        let two = n.guest_bucket(a_mapped, now, limit);
        let _three = n.guest_bucket(b, now, limit);
        assert_eq!(
            (n.guests_from(a), n.guests_from(b), n.guests_from(b_next)),
            (2, 1, 0)
        );
        drop(one);
        assert_eq!(n.guests_from(a), 1);
        drop(two);
        assert_eq!(n.guests_from(a), 0);
    }

    #[test]
    fn an_address_whose_guests_left_keeps_its_spent_budget_and_the_table_stays_bounded() {
        let mut n = Neighbours::default();
        let limit = RateLimit::per_second(20);
        let start = Instant::now();
        let cycler = ip("10.0.0.9");
        let mut bucket = n.guest_bucket(cycler, start, Some(limit));
        while bucket.take(start, limit) == Verdict::Pass {}
        drop(bucket);
        // Two thousand other addresses come and go (one line each), 1 ms apart.
        let mut now = start;
        for i in 0..2_000u32 {
            now = start + Duration::from_millis(u64::from(i));
            let other = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let mut b = n.guest_bucket(other, now, Some(limit));
            assert_eq!(b.take(now, limit), Verdict::Pass);
            assert!(n.sources_kept() <= 2 * SOURCES_SWEEP_MIN, "{i}");
        }
        // Two seconds later, well within the ten its budget takes to fill: a guest that
        // reconnects gets what came back since (40), not a fresh burst (200).
        let mut back = n.guest_bucket(cycler, now, Some(limit));
        let refilled = (now - start).as_secs_f64() * limit.per_sec;
        let got = (0..1000).filter(|_| back.take(now, limit) == Verdict::Pass);
        assert!((got.count() as f64) <= refilled.ceil(), "{refilled}");
    }

    #[test]
    fn a_refused_guest_is_shown_once_a_minute_for_each_address() {
        let mut n = Neighbours::default();
        let now = Instant::now();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let _guests = [n.guest_bucket(a, now, None), n.guest_bucket(b, now, None)];
        assert!(n.notice_refusal(a, now));
        assert!(!n.notice_refusal(a, now + Duration::from_secs(59)));
        assert!(n.notice_refusal(b, now + Duration::from_secs(1)));
        assert!(n.notice_refusal(a, now + REFUSAL_NOTICE_EVERY));
    }
}
