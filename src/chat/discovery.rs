//! Finding other nodes: dials the chat asks for, re-dials of peers that dropped (with back-off),
//! mesh scans of a port range, and the `PEERS` lists neighbours send.
//!
//! [`Discovery`] owns that state and decides whom to dial; the `impl Chat` steps below turn its
//! answers into actions and timers. Must not do IO: a dial is an
//! [`Action::Dial`](super::Action::Dial) for the caller.
//!
//! A `PEERS` list is whatever a neighbour says, so it must not make this node a reflector
//! (dialling any address it is told, as often as it is told): [`Listed`] remembers the addresses
//! dialled because a list named them, dials each at most once a [`LISTED_EVERY`], backs off
//! those that never answered with a hello, and a list starts at most [`DIALS_PER_PEERS`] dials.
//! Re-dials of peers we had and mesh scans of the user's range are not limited by it.
//!
//! A LAN beacon (`--lan`) is a stranger's word too: an address it announces is dialled under
//! the same [`Listed`] limits as one a list named (one beacon one dial at most, each address once
//! a [`LISTED_EVERY`] at most, silent ones backed off), and [`Heard`] remembers the last
//! [`HEARD_CAP`] addresses heard, so `/names` can say a peer was found by its beacon.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::neighbours::Neighbours;
use super::recent::Recent;
use super::{Chat, ConnId, Due, Mesh, Origin};
use crate::event::Found;
use crate::protocol::{MemberId, NodeId};

/// Mesh mode scans its port range again after this long at first, doubling up to the most.
pub(super) const SCAN_FIRST: Duration = Duration::from_secs(1);
pub(super) const SCAN_MAX: Duration = Duration::from_secs(8);

/// Re-dialling a peer that dropped: first wait, the most, and how many tries.
const REDIAL_FIRST: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(30);
const REDIAL_TRIES: u32 = 10;

/// How long an address that answered with something other than a hello is not dialled again.
const NOT_PEER_AGE: Duration = Duration::from_secs(300);

/// An address named in `PEERS` lists is dialled at most once in this long, however many lists
/// name it; one that did not answer with a hello waits twice as long after each such dial.
pub(super) const LISTED_EVERY: Duration = Duration::from_secs(60);
/// The longest an address named in `PEERS` lists is backed off.
const LISTED_MAX_WAIT: Duration = Duration::from_secs(3600);
/// Addresses named in `PEERS` lists remembered at once; past it the one dialled longest ago
/// is forgotten.
pub(super) const LISTED_CAP: usize = 1024;
/// Dials one `PEERS` frame may start, at most: one connection of a stranger's makes this node
/// open a few more, not 64.
pub(super) const DIALS_PER_PEERS: usize = 4;

/// Addresses heard in LAN beacons remembered at once; past it the one heard longest ago is
/// forgotten.
pub(super) const HEARD_CAP: usize = 256;

/// The addresses LAN beacons announced, with when each was last heard. Bounded by
/// [`HEARD_CAP`]: a flood of beacons from made-up senders forgets older ones, it does not grow.
#[derive(Debug, Default)]
pub(super) struct Heard {
    at: HashMap<SocketAddr, Instant>,
}

impl Heard {
    /// A beacon announced `addr` at `now`.
    fn heard(&mut self, addr: SocketAddr, now: Instant) {
        if !self.at.contains_key(&addr) && self.at.len() >= HEARD_CAP {
            // A scan of at most HEARD_CAP entries, for a new sender only.
            let oldest = self.at.iter().min_by_key(|(_, &t)| t).map(|(&a, _)| a);
            if let Some(oldest) = oldest {
                self.at.remove(&oldest);
            }
        }
        self.at.insert(addr, now);
    }

    /// True if a beacon announced `addr` (and it is still remembered).
    pub(super) fn contains(&self, addr: SocketAddr) -> bool {
        self.at.contains_key(&addr)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

/// An address dialled because a `PEERS` list named it.
#[derive(Clone, Copy, Debug)]
struct Tried {
    /// When it was last dialled for a list.
    at: Instant,
    /// Dials of it for lists in a row that got no hello.
    silent: u32,
    /// A dial of it for a list is under way (a scan's or a re-dial's failing says nothing of
    /// the wait for lists).
    pending: bool,
}

/// The addresses dialled because `PEERS` lists named them: when each may be dialled again.
/// Bounded by [`LISTED_CAP`].
#[derive(Debug, Default)]
pub(super) struct Listed {
    tried: HashMap<SocketAddr, Tried>,
}

impl Listed {
    /// How long after a dial `t` the address may be dialled for a list again: the interval,
    /// doubled for each dial in a row that got no hello.
    fn wait(t: &Tried) -> Duration {
        LISTED_EVERY
            .saturating_mul(1 << t.silent.min(16))
            .min(LISTED_MAX_WAIT)
    }

    /// True if the wait after dial `t` is over at `now`.
    fn over(t: &Tried, now: Instant) -> bool {
        now.saturating_duration_since(t.at) >= Self::wait(t)
    }

    /// True if a list naming `addr` may have it dialled at `now`. With the table full, a new
    /// address only takes the place of one whose wait is over: forgetting one early would let
    /// a flood of made-up addresses (beacons are cheap) have each dialled again at once.
    fn may_dial(&self, addr: SocketAddr, now: Instant) -> bool {
        match self.tried.get(&addr) {
            Some(t) => Self::over(t, now),
            None => {
                self.tried.len() < LISTED_CAP || self.tried.values().any(|t| Self::over(t, now))
            }
        }
    }

    /// `addr` is being dialled for a list at `now`.
    fn dialled(&mut self, addr: SocketAddr, now: Instant) {
        if !self.tried.contains_key(&addr) && self.tried.len() >= LISTED_CAP {
            // A scan of at most LISTED_CAP entries, for a dial at most: a few per frame. The
            // one dialled longest ago among those past their wait (`may_dial` found one).
            let oldest = self
                .tried
                .iter()
                .min_by_key(|(_, t)| (!Self::over(t, now), t.at))
                .map(|(&a, _)| a);
            if let Some(oldest) = oldest {
                self.tried.remove(&oldest);
            }
        }
        let t = self.tried.entry(addr).or_insert(Tried {
            at: now,
            silent: 0,
            pending: false,
        });
        t.at = now;
        t.pending = true;
    }

    /// A dial of `addr` got no hello (refused, silent, something else, closed first).
    fn silent(&mut self, addr: SocketAddr) {
        if let Some(t) = self.tried.get_mut(&addr).filter(|t| t.pending) {
            t.silent = t.silent.saturating_add(1);
            t.pending = false;
        }
    }

    /// `addr` answered a dial (any dial) with a hello: a peerchat node is there, no longer
    /// backed off.
    fn answered(&mut self, addr: SocketAddr) {
        if let Some(t) = self.tried.get_mut(&addr) {
            t.silent = 0;
            t.pending = false;
        }
    }
}

/// A peer address to dial again. When is the chat's timer `Due::Redial`: none while a dial is
/// under way.
#[derive(Debug)]
struct Redial {
    backoff: Duration,
    tries: u32,
}

/// Whom to dial, and whom not to.
#[derive(Debug)]
pub(super) struct Discovery {
    /// Dials the chat asked for that have not opened or failed yet.
    dialling: HashSet<SocketAddr>,
    /// Peers that dropped, to dial again.
    redial: HashMap<SocketAddr, Redial>,
    /// Addresses that answered but are not another peerchat node (or are this one): not dialled
    /// again by itself for a while.
    pub(super) not_peers: Recent<SocketAddr>,
    /// Addresses dialled because `PEERS` lists or LAN beacons named them.
    listed: Listed,
    /// Addresses LAN beacons announced.
    pub(super) heard: Heard,
    /// Where the next mesh scan starts in the range, so that every port gets its turn.
    scan_from: u16,
    scan_every: Duration,
}

impl Discovery {
    pub(super) fn new() -> Discovery {
        Discovery {
            dialling: HashSet::new(),
            redial: HashMap::new(),
            not_peers: Recent::new(1024, Some(NOT_PEER_AGE)),
            listed: Listed::default(),
            heard: Heard::default(),
            scan_from: 0,
            scan_every: SCAN_FIRST,
        }
    }

    /// True while a dial asked for has neither opened nor failed.
    pub(super) fn is_dialling(&self) -> bool {
        !self.dialling.is_empty()
    }

    /// A dial of `target` asked for opened: it is a connection now, no longer a dial.
    pub(super) fn opened(&mut self, target: SocketAddr) {
        self.dialling.remove(&target);
    }

    /// True if `addr` is a peer we have, or a connection to it is being made.
    fn reaching(&self, addr: SocketAddr, neighbours: &Neighbours) -> bool {
        self.dialling.contains(&addr) || neighbours.reaching(addr)
    }

    /// True if the peer cap leaves no room for another dial.
    fn full(&self, neighbours: &Neighbours, max_peers: usize) -> bool {
        neighbours.peer_count() + self.dialling.len() >= max_peers
    }

    /// Records a dial of `addr` unless it is reached already, not a peer, or the cap is met;
    /// true if the caller is to dial it.
    fn start(&mut self, addr: SocketAddr, n: &Neighbours, max_peers: usize, now: Instant) -> bool {
        if self.reaching(addr, n) || self.not_peers.contains(&addr, now) || self.full(n, max_peers)
        {
            return false;
        }
        self.dialling.insert(addr);
        true
    }

    /// As [`Discovery::start`], for an address a `PEERS` list named: not again within its wait.
    fn start_listed(
        &mut self,
        addr: SocketAddr,
        n: &Neighbours,
        max_peers: usize,
        now: Instant,
    ) -> bool {
        if !self.listed.may_dial(addr, now) || !self.start(addr, n, max_peers, now) {
            return false;
        }
        self.listed.dialled(addr, now);
        true
    }

    /// The ports of the mesh range to dial now, starting where the last scan stopped.
    fn scan(
        &mut self,
        mesh: &Mesh,
        listen: Option<u16>,
        n: &Neighbours,
        max_peers: usize,
        now: Instant,
    ) -> Vec<SocketAddr> {
        // Start where the last scan stopped: with the peer cap reached early, the ports late in
        // the range still get their turn.
        let ports: Vec<u16> = mesh.ports.clone().collect();
        let start = usize::from(self.scan_from) % ports.len().max(1);
        let mut dials = Vec::new();
        for i in 0..ports.len() {
            let port = ports[(start + i) % ports.len()];
            if Some(port) == listen {
                continue;
            }
            let addr = SocketAddr::new(mesh.host, port);
            if !self.reaching(addr, n)
                && !self.not_peers.contains(&addr, now)
                && self.full(n, max_peers)
            {
                self.scan_from = u16::try_from((start + i) % ports.len()).unwrap_or(0);
                break;
            }
            if self.start(addr, n, max_peers, now) {
                dials.push(addr);
            }
        }
        dials
    }

    /// The next scan's instant, a scan being due at `now`; the one after waits twice as long.
    fn next_scan(&mut self, now: Instant) -> Instant {
        let next = now + self.scan_every;
        self.scan_every = (self.scan_every * 2).min(SCAN_MAX);
        next
    }

    /// A peer was lost: look again soon (it may come back on another port). The next scan's
    /// instant.
    fn scan_soon(&mut self, now: Instant) -> Instant {
        self.scan_every = SCAN_FIRST;
        now + SCAN_FIRST
    }

    /// A dial of `addr` failed (or could not start): when to try it again, if it is a peer to
    /// re-dial that has tries left.
    fn failed(&mut self, addr: SocketAddr, now: Instant) -> Option<Instant> {
        self.dialling.remove(&addr);
        self.listed.silent(addr);
        let r = self.redial.get_mut(&addr)?;
        r.tries += 1;
        if r.tries >= REDIAL_TRIES {
            self.redial.remove(&addr);
            return None;
        }
        let due = now + r.backoff;
        r.backoff = (r.backoff * 2).min(REDIAL_MAX);
        Some(due)
    }

    /// A peer listening at `addr` dropped: dial it again from the start of the back-off. When.
    fn redial(&mut self, addr: SocketAddr, now: Instant) -> Instant {
        self.redial.insert(
            addr,
            Redial {
                backoff: REDIAL_FIRST * 2,
                tries: 0,
            },
        );
        now + REDIAL_FIRST
    }
}

/// Where a peer listed in `PEERS` by the node at `sender` is: "127.0.0.1" from a peer on another
/// machine means that machine.
pub(super) fn locate(mut addr: SocketAddr, sender: IpAddr) -> SocketAddr {
    let vague = addr.ip().is_loopback() || addr.ip().is_unspecified();
    if vague && !sender.is_loopback() {
        addr.set_ip(sender);
    }
    addr
}

impl Chat {
    /// How this node became linked with member `m`'s node, for `/names`: `None` for this
    /// node, guests, and nodes that are not neighbours.
    pub(super) fn found(&self, m: MemberId) -> Option<Found> {
        if m.guest != 0 || m.node == self.cfg.node {
            return None;
        }
        Some(match self.neighbours.origin_of(m.node)? {
            Origin::Accepted => Found::Accepted,
            Origin::Dialled => Found::Dialled,
            Origin::Auto(target) if self.discovery.heard.contains(target) => Found::Beacon,
            Origin::Auto(_) => Found::Dialled,
        })
    }

    /// The `/names` list this node's user is shown.
    pub(super) fn names_found(&self) -> Vec<crate::event::Name> {
        self.roster.names_with(self.me, |m| self.found(m))
    }

    /// Asks the caller to dial `addr`, unless it is reached already or the peer cap is met.
    pub(super) fn dial(&mut self, addr: SocketAddr) -> bool {
        let started = self
            .discovery
            .start(addr, &self.neighbours, self.cfg.max_peers, self.clock);
        if started {
            self.out.dial(addr);
        }
        started
    }

    /// A dial failed or a connection of ours ended before its hello: try it again later if it
    /// is a peer to re-dial.
    pub(super) fn dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        match self.discovery.failed(addr, now) {
            Some(at) => self.timers.set(Due::Redial(addr), at),
            None => {
                self.timers.cancel(&Due::Redial(addr));
            }
        }
    }

    /// Not to be dialled again (it is here, or said goodbye, or is not a peer).
    pub(super) fn forget_redial(&mut self, addr: SocketAddr) {
        self.discovery.redial.remove(&addr);
        self.timers.cancel(&Due::Redial(addr));
    }

    /// Marks `addr`, a dial of ours, as not another peerchat node.
    pub(super) fn not_peer(&mut self, addr: SocketAddr) {
        self.discovery.not_peers.insert(addr, self.clock);
        self.discovery.listed.silent(addr);
    }

    /// `conn` said a valid hello: if the chat dialled it by itself, a node answers at that
    /// address (it is no longer backed off as silent).
    pub(super) fn dial_answered(&mut self, conn: ConnId) {
        if let Some(Origin::Auto(target)) = self.neighbours.get(conn).map(|c| c.origin) {
            self.discovery.listed.answered(target);
        }
    }

    /// A peer listening at `listen` is gone: dial it again later (if this node re-dials), and
    /// scan again soon in mesh mode.
    pub(super) fn look_for(&mut self, listen: Option<SocketAddr>) {
        if let Some(addr) = listen.filter(|_| self.cfg.redial) {
            let at = self.discovery.redial(addr, self.clock);
            self.timers.set(Due::Redial(addr), at);
        }
        if self.cfg.mesh.is_some() {
            let at = self.discovery.scan_soon(self.clock);
            self.timers.set(Due::Scan, at);
        }
    }

    /// A re-dial timer of `addr` fired.
    pub(super) fn redial_due(&mut self, addr: SocketAddr, now: Instant) {
        // Set again since it fired (the peer dropped again this turn), or no longer wanted.
        if self.timers.get(&Due::Redial(addr)).is_some()
            || !self.discovery.redial.contains_key(&addr)
        {
            return;
        }
        if !self.dial(addr) {
            // Connected or being dialled already, or too many peers: try later.
            self.dial_failed(addr, now);
        }
    }

    /// The scan timer fired: dial every port of the range that is not ours and not reached yet.
    pub(super) fn scan_due(&mut self, now: Instant) {
        // Set again since it fired (a peer was lost this turn): not due any more.
        if self.timers.get(&Due::Scan).is_some() {
            return;
        }
        let Some(mesh) = self.cfg.mesh.clone() else {
            return;
        };
        let next = self.discovery.next_scan(now);
        self.timers.set(Due::Scan, next);
        let dials = self.discovery.scan(
            &mesh,
            self.cfg.listen,
            &self.neighbours,
            self.cfg.max_peers,
            now,
        );
        for addr in dials {
            self.out.dial(addr);
        }
    }

    /// A `PEERS` frame on `conn`: dial the peers listed that are not neighbours (only the first
    /// list a connection sends is taken), a few at most, none dialled for a list lately.
    pub(super) fn peers_frame(&mut self, conn: ConnId, peers: Vec<(NodeId, SocketAddr)>) {
        let Some(c) = self.neighbours.get_mut(conn) else {
            return;
        };
        if std::mem::replace(&mut c.got_peers, true) {
            return;
        }
        let sender = c.addr.ip();
        let mut started = 0;
        for (node, addr) in peers {
            if started == DIALS_PER_PEERS {
                break;
            }
            if node != self.cfg.node && self.neighbours.peer_conn(node).is_none() {
                started += usize::from(self.dial_listed(locate(addr, sender)));
            }
        }
    }

    /// A LAN beacon from `addr` (the sender's IP, the port it announced): dial it, under the
    /// limits of an address a `PEERS` list named, unless it is this node or a peer already
    /// (`is_from` tells whether a node id sent the beacon), or the peer cap is met.
    pub fn handle_beacon(
        &mut self,
        addr: SocketAddr,
        is_from: impl Fn(NodeId) -> bool,
        now: Instant,
    ) {
        self.clock = now;
        if is_from(self.cfg.node) || self.neighbours.peer_nodes().any(&is_from) {
            return;
        }
        self.discovery.heard.heard(addr, now);
        self.dial_listed(addr);
    }

    /// Asks the caller to dial `addr`, named in a `PEERS` list, unless it is reached already,
    /// the peer cap is met, or it was dialled for a list too lately.
    fn dial_listed(&mut self, addr: SocketAddr) -> bool {
        let started =
            self.discovery
                .start_listed(addr, &self.neighbours, self.cfg.max_peers, self.clock);
        if started {
            self.out.dial(addr);
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::neighbours::Neighbour;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn re_dials_back_off_and_give_up() {
        let t0 = Instant::now();
        let mut d = Discovery::new();
        assert_eq!(d.failed(at(5000), t0), None, "not a peer to re-dial");
        assert_eq!(d.redial(at(5000), t0), t0 + REDIAL_FIRST);
        let waits: Vec<Duration> = (0..REDIAL_TRIES)
            .map_while(|_| d.failed(at(5000), t0).map(|due| due - t0))
            .collect();
        assert_eq!(waits.len(), REDIAL_TRIES as usize - 1);
        assert_eq!(
            waits[..3],
            [REDIAL_FIRST * 2, REDIAL_FIRST * 4, REDIAL_FIRST * 8]
        );
        assert!(waits.iter().all(|&w| w <= REDIAL_MAX));
        assert_eq!(d.failed(at(5000), t0), None, "given up");
    }

    #[test]
    fn a_dial_is_not_started_twice_nor_past_the_cap() {
        let t0 = Instant::now();
        let mut d = Discovery::new();
        let mut n = Neighbours::default();
        assert!(d.start(at(5001), &n, 2, t0));
        assert!(!d.start(at(5001), &n, 2, t0), "being dialled");
        n.insert(
            9,
            Neighbour::pending(
                at(5002),
                Origin::Auto(at(5002)),
                (1, at(5002)),
                String::new(),
            ),
        );
        assert!(
            !d.start(at(5003), &n, 2, t0),
            "a dial and a scan connection: full"
        );
        d.failed(at(5001), t0);
        d.not_peers.insert(at(5003), t0);
        assert!(!d.start(at(5003), &n, 2, t0), "not a peer");
        assert!(d.start(at(5004), &n, 2, t0));
    }

    #[test]
    fn scans_wait_longer_each_time_and_again_briefly_after_a_loss() {
        let t0 = Instant::now();
        let mut d = Discovery::new();
        assert_eq!(d.next_scan(t0), t0 + SCAN_FIRST);
        assert_eq!(d.next_scan(t0), t0 + SCAN_FIRST * 2);
        for _ in 0..5 {
            d.next_scan(t0);
        }
        assert_eq!(d.next_scan(t0), t0 + SCAN_MAX);
        assert_eq!(d.scan_soon(t0), t0 + SCAN_FIRST);
        assert_eq!(d.next_scan(t0), t0 + SCAN_FIRST);
    }

    #[test]
    fn a_loopback_address_in_peers_means_the_sender() {
        let lan: IpAddr = [192, 168, 0, 9].into();
        assert_eq!(locate(at(5002), lan), SocketAddr::new(lan, 5002));
        assert_eq!(locate(at(5002), [127, 0, 0, 1].into()), at(5002));
        let far = SocketAddr::from(([10, 0, 0, 4], 5000));
        assert_eq!(locate(far, lan), far);
    }

    #[test]
    fn a_listed_address_is_dialled_once_an_interval_and_silent_ones_back_off() {
        let t0 = Instant::now();
        let mut l = Listed::default();
        assert!(l.may_dial(at(5000), t0));
        l.dialled(at(5000), t0);
        assert!(!l.may_dial(at(5000), t0 + LISTED_EVERY - Duration::from_secs(1)));
        assert!(
            l.may_dial(at(5000), t0 + LISTED_EVERY),
            "it answered (or is unknown)"
        );
        // Each dial in a row that got no hello doubles the wait, up to the most.
        let mut waits = Vec::new();
        let mut t = t0;
        for _ in 0..12 {
            l.dialled(at(5000), t);
            l.silent(at(5000));
            let wait = (1..=7200)
                .map(Duration::from_secs)
                .find(|&w| l.may_dial(at(5000), t + w))
                .expect("dialled again within two hours");
            waits.push(wait);
            t += wait;
        }
        assert_eq!(
            waits[..3],
            [LISTED_EVERY * 2, LISTED_EVERY * 4, LISTED_EVERY * 8]
        );
        assert_eq!(waits[11], LISTED_MAX_WAIT);
        // A hello from it: back to the plain interval.
        l.dialled(at(5000), t);
        l.answered(at(5000));
        assert!(l.may_dial(at(5000), t + LISTED_EVERY));
        // Failures of addresses never listed are not recorded, nor those of dials not made for
        // a list (a scan's, a re-dial's).
        l.silent(at(5001));
        assert!(l.may_dial(at(5001), t));
        let t = t + LISTED_EVERY;
        l.dialled(at(5000), t);
        l.silent(at(5000));
        l.silent(at(5000));
        l.silent(at(5000));
        assert!(
            l.may_dial(at(5000), t + LISTED_EVERY * 2),
            "one silent dial"
        );
    }

    #[test]
    fn the_listed_table_is_bounded_and_forgets_only_addresses_past_their_wait() {
        let t0 = Instant::now();
        let mut l = Listed::default();
        let addr = |i: usize| SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 5000));
        for i in 0..LISTED_CAP {
            let t = t0 + Duration::from_millis(i as u64);
            assert!(l.may_dial(addr(i), t));
            l.dialled(addr(i), t);
        }
        // Full of addresses within their wait: none is forgotten for a new one, so none is
        // dialled again early however many new ones come.
        let soon = t0 + Duration::from_secs(1);
        assert!(!l.may_dial(addr(LISTED_CAP), soon), "full");
        assert!(!l.may_dial(addr(0), soon), "kept");
        // The first one's wait is over: a new address takes its place, and only its.
        let later = t0 + LISTED_EVERY;
        assert!(l.may_dial(addr(LISTED_CAP), later));
        l.dialled(addr(LISTED_CAP), later);
        assert_eq!(l.tried.len(), LISTED_CAP);
        assert!(!l.tried.contains_key(&addr(0)), "forgotten");
        assert!(!l.may_dial(addr(1), later), "kept");
        assert!(!l.may_dial(addr(LISTED_CAP + 1), later), "full again");
    }

    #[test]
    fn the_heard_table_is_bounded_and_forgets_the_longest_heard_first() {
        let t0 = Instant::now();
        let mut h = Heard::default();
        let addr = |i: usize| SocketAddr::from(([10, 2, (i >> 8) as u8, i as u8], 5000));
        for i in 0..HEARD_CAP + 10 {
            h.heard(addr(i), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(h.len(), HEARD_CAP);
        assert!(!h.contains(addr(0)), "forgotten");
        assert!(!h.contains(addr(9)), "forgotten");
        assert!(h.contains(addr(10)), "kept");
        assert!(h.contains(addr(HEARD_CAP + 9)));
        // Heard again, a sender is the newest: the next new one forgets another.
        h.heard(addr(10), t0 + Duration::from_secs(10));
        h.heard(addr(9999), t0 + Duration::from_secs(11));
        assert!(h.contains(addr(10)));
        assert!(!h.contains(addr(11)));
        assert_eq!(h.len(), HEARD_CAP);
    }

    #[test]
    fn a_listed_dial_follows_the_rules_of_any_dial_and_its_own_wait() {
        let t0 = Instant::now();
        let mut d = Discovery::new();
        let n = Neighbours::default();
        assert!(d.start_listed(at(5001), &n, 8, t0));
        assert!(!d.start_listed(at(5001), &n, 8, t0), "being dialled");
        d.failed(at(5001), t0);
        assert!(!d.start_listed(at(5001), &n, 8, t0), "dialled just now");
        assert!(
            !d.start_listed(at(5001), &n, 8, t0 + LISTED_EVERY),
            "it was silent"
        );
        assert!(d.start_listed(at(5001), &n, 8, t0 + LISTED_EVERY * 2));
        // A re-dial or a scan of the same address is not held back by the list's wait.
        d.failed(at(5001), t0);
        assert!(d.start(at(5001), &n, 8, t0 + LISTED_EVERY * 2));
        d.not_peers.insert(at(5002), t0);
        assert!(!d.start_listed(at(5002), &n, 8, t0), "not a peer");
        assert!(!d.start_listed(at(5003), &n, 1, t0), "full");
        assert!(
            d.start_listed(at(5003), &n, 2, t0),
            "a refusal for the cap is no dial"
        );
    }
}
