//! The chat itself, as a pure state machine: who is connected and as what (peer or guest), who is
//! in the chat group-wide (the roster), which messages were already seen, what to show, what to
//! send where, whom to dial.
//!
//! Inputs are `handle_*` calls (a line from a connection, a typed line, a connection opened or
//! closed, a dial that failed, a tick with the current time); outputs are [`Action`]s taken with
//! [`Chat::poll_action`]. Must not do IO or read the clock: the caller passes `now`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use crate::event::{Event, Name, Role};
use crate::protocol::{self, check_nick, Frame, Hello, MemberId, MsgId, NodeId, MAX_TEXT};

/// Identifies one connection; the reactor uses its slab key.
pub type ConnId = usize;

/// Hashes a connection id with one multiplication: the ids are ours (slab keys), so SipHash's
/// defence against chosen keys buys nothing on this per-message lookup.
#[derive(Default)]
struct IdHasher(u64);

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

/// How long a connection we accepted may stay silent before it is taken for a guest (a person
/// at `nc` who has not typed yet). A peerchat node sends its hello at once, so one round trip
/// suffices.
pub const HELLO_WAIT: Duration = Duration::from_millis(1000);

/// The same for a connection we dialled: a listener that is slow to answer (busy, or on a far
/// network) is more likely than a person typing nothing into `nc -l`.
pub const HELLO_WAIT_DIALLED: Duration = Duration::from_millis(3000);

/// A peer silent this long is dropped (`--timeout`); it is pinged after a third of it.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Direct peer connections a node opens by itself, at most (`--max-peers`).
pub const DEFAULT_MAX_PEERS: usize = 8;

/// Mesh mode scans its port range again after this long at first, doubling up to the most.
const SCAN_FIRST: Duration = Duration::from_secs(1);
const SCAN_MAX: Duration = Duration::from_secs(8);

/// Re-dialling a peer that dropped: first wait, the most, and how many tries.
const REDIAL_FIRST: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(30);
const REDIAL_TRIES: u32 = 10;

/// How many message ids are remembered to drop duplicates that come back over another path,
/// and for how long at most.
const SEEN_CAP: usize = 100_000;
const SEEN_AGE: Duration = Duration::from_secs(600);

/// Members of the chat known at once, at most; joins past it are not recorded.
const MAX_MEMBERS: usize = 100_000;

/// Which side opened a connection, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Accepted,
    /// The user asked for it (command line, `/connect`): failures are shown.
    Dialled,
    /// The chat asked for it ([`Action::Dial`] of this address): only peerchat nodes are kept.
    Auto(SocketAddr),
}

/// A connection that just opened, as [`Chat::handle_opened`] gets it.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// The other end's address.
    pub addr: SocketAddr,
    /// Our end's address.
    pub local: SocketAddr,
    pub origin: Origin,
}

impl Link {
    /// The dialling side's port and the accepting side's address: both ends of a connection see
    /// the same pair, which settles which of two connections to keep.
    fn dialler_and_acceptor(&self) -> (u16, SocketAddr) {
        match self.origin {
            Origin::Accepted => (self.addr.port(), self.local),
            Origin::Dialled | Origin::Auto(_) => (self.local.port(), self.addr),
        }
    }
}

/// Members with the same nick known at once, at most: joins past it are not recorded (a peer
/// flooding joins under one nick cannot make every lookup slow).
const MAX_SAME_NICK: usize = 64;

/// How long a member announced lost stays lost: joins relayed by other nodes in that time do not
/// bring it back (they may be older than the loss); only fresh evidence does.
const LOST_AGE: Duration = Duration::from_secs(600);

/// How long an address that answered with something other than a hello is not dialled again.
const NOT_PEER_AGE: Duration = Duration::from_secs(300);

/// What the chat asks the caller to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `conn` is now a peer or a guest: release what was held for it, in that format.
    Classify { conn: ConnId, role: Role },
    /// Send `frame` on every open connection but `except`.
    Broadcast {
        except: Option<ConnId>,
        frame: Rc<Frame>,
    },
    /// Send `frame` on `conn` only (a guest gets the direct form of a DM).
    Send { conn: ConnId, frame: Rc<Frame> },
    /// Send guest `conn` this line of text, from peerchat itself (not from a member).
    Tell { conn: ConnId, text: String },
    /// The node the user dialled on `conn` refused us (it is full): close it and say so, as a
    /// failed dial.
    Refused { conn: ConnId, reason: String },
    /// Close `conn` now; `reason` says why, for the log.
    Close { conn: ConnId, reason: String },
    /// Deliver what is queued for `conn` (a `CLOSE` frame last), then close it. Nobody left.
    Retire { conn: ConnId },
    /// Dial `addr` on the chat's behalf: open it with [`Origin::Auto`], or report
    /// [`Chat::handle_dial_failed`]. Failures are not shown.
    Dial(SocketAddr),
    /// The user asked to connect to `HOST[:PORT]`: resolve and dial it as a command-line peer.
    Connect(String),
    /// Show an event to the user.
    Show(Event),
    /// The local user left: deliver what is queued, then end.
    Quit,
}

/// Mesh mode: the host and port range scanned for other nodes.
#[derive(Clone, Debug)]
pub struct Mesh {
    pub host: IpAddr,
    pub ports: RangeInclusive<u16>,
}

/// Who this node is and how it finds others.
#[derive(Clone, Debug)]
pub struct Config {
    pub nick: String,
    pub node: NodeId,
    /// The port this node listens on, announced in the hello.
    pub listen: Option<u16>,
    pub mesh: Option<Mesh>,
    pub max_peers: usize,
    pub peer_timeout: Duration,
    /// Re-dial peers that drop without saying goodbye (a node that listens stays in the chat).
    pub redial: bool,
    /// Flood control for guests; `None` for none.
    pub guest_rate: Option<RateLimit>,
}

/// How many lines a guest may send: `per_sec` on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: f64,
}

impl RateLimit {
    /// `per_sec` lines a second, bursts of ten seconds' worth.
    pub fn per_second(per_sec: u32) -> RateLimit {
        RateLimit {
            per_sec: f64::from(per_sec),
            burst: f64::from(per_sec) * 10.0,
        }
    }
}

/// The default flood limit for guests, in lines per second (`--rate-limit`).
pub const DEFAULT_GUEST_RATE: u32 = 20;

/// A guest whose lines are dropped without a pause of this long is still flooding...
const FLOOD_PAUSE: Duration = Duration::from_secs(1);
/// ...and one that floods this long is disconnected.
const FLOOD_CUT: Duration = Duration::from_secs(10);

/// One guest's token bucket of lines.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Lines dropped that the guest has not been told about.
    dropped: u64,
    told: Option<Instant>,
    flooding_since: Option<Instant>,
    last_drop: Option<Instant>,
}

/// What the bucket says about one line.
enum Verdict {
    Pass,
    /// Dropped; tell the guest this many were dropped (at most once a second); cut it off.
    Drop {
        tell: Option<u64>,
        cut: bool,
    },
}

impl Bucket {
    fn new(now: Instant, limit: Option<RateLimit>) -> Bucket {
        Bucket {
            tokens: limit.map_or(0.0, |l| l.burst),
            last: now,
            dropped: 0,
            told: None,
            flooding_since: None,
            last_drop: None,
        }
    }

    fn take(&mut self, now: Instant, limit: RateLimit) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * limit.per_sec).min(limit.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Pass;
        }
        if self
            .last_drop
            .is_none_or(|t| now.saturating_duration_since(t) > FLOOD_PAUSE)
        {
            self.flooding_since = Some(now);
        }
        self.last_drop = Some(now);
        self.dropped += 1;
        let cut = self
            .flooding_since
            .is_some_and(|t| now.saturating_duration_since(t) >= FLOOD_CUT);
        let tell = self
            .told
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        let tell = tell.then(|| {
            self.told = Some(now);
            std::mem::take(&mut self.dropped)
        });
        Verdict::Drop { tell, cut }
    }
}

impl Config {
    /// A node with the default limits, not in mesh mode.
    pub fn new(nick: String, node: NodeId, listen: Option<u16>) -> Config {
        Config {
            nick,
            node,
            listen,
            mesh: None,
            max_peers: DEFAULT_MAX_PEERS,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            redial: listen.is_some(),
            guest_rate: Some(RateLimit::per_second(DEFAULT_GUEST_RATE)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerState {
    Active,
    /// It announced its own leave, so its close needs no announcement.
    SaidBye,
    /// A second connection to the same node: being closed on purpose, nobody left.
    Retired,
}

#[derive(Debug)]
struct Peer {
    nick: String,
    node: NodeId,
    state: PeerState,
    /// Where it listens (its address as we see it, with the port from its hello).
    listen: Option<SocketAddr>,
    last_heard: Instant,
    pinged: bool,
    /// `PING`s sent and not answered yet.
    pongs_due: u32,
    /// Another node said it lost this peer, and a `PING` went out: its `PONG`, the n-th to come
    /// from now, will prove it is still here (then the others are told so).
    verify: Option<u32>,
}

#[derive(Debug)]
enum Kind {
    /// No line yet; taken for a guest at this instant if none comes.
    Pending(Instant),
    Peer(Peer),
    Guest {
        member: MemberId,
        nick: String,
        /// Made a guest by its silence, and still silent: a hello may yet come (late).
        silent: bool,
        bucket: Bucket,
    },
}

#[derive(Debug)]
struct Conn {
    addr: SocketAddr,
    origin: Origin,
    /// See [`Link::dialler_and_acceptor`].
    ends: (u16, SocketAddr),
    kind: Kind,
    /// A `PEERS` frame was taken from it already (only one is).
    got_peers: bool,
}

/// A bounded set, oldest forgotten first: by count, and by age when `age` is set.
#[derive(Debug)]
struct Recent<T> {
    /// Each item and when it was recorded.
    map: HashMap<T, Instant>,
    order: VecDeque<(T, Instant)>,
    cap: usize,
    age: Option<Duration>,
}

impl<T: Copy + Eq + std::hash::Hash> Recent<T> {
    fn new(cap: usize, age: Option<Duration>) -> Self {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
            age,
        }
    }

    fn expired(&self, at: Instant, now: Instant) -> bool {
        self.age
            .is_some_and(|age| now.saturating_duration_since(at) > age)
    }

    /// Records `item`; false if it was there already (and not expired).
    fn insert(&mut self, item: T, now: Instant) -> bool {
        while let Some(&(old, at)) = self.order.front() {
            if self.order.len() < self.cap && !self.expired(at, now) {
                break;
            }
            self.order.pop_front();
            // Only if not recorded again since.
            if self.map.get(&old) == Some(&at) {
                self.map.remove(&old);
            }
        }
        if self.contains(&item, now) {
            return false;
        }
        self.map.insert(item, now);
        self.order.push_back((item, now));
        true
    }

    /// True if `item` was recorded and has not expired by `now`.
    fn contains(&self, item: &T, now: Instant) -> bool {
        self.map.get(item).is_some_and(|&at| !self.expired(at, now))
    }

    fn remove(&mut self, item: &T) {
        self.map.remove(item);
    }
}

#[derive(Clone, Debug)]
struct Member {
    nick: String,
    addr: Option<String>,
}

/// A peer whose last connection closed without a goodbye.
#[derive(Debug)]
struct Lost {
    node: NodeId,
    nick: String,
    listen: Option<SocketAddr>,
    /// Where it is shown to have been.
    addr: SocketAddr,
    reason: Option<String>,
}

/// A peer address to dial again.
#[derive(Debug)]
struct Redial {
    /// `None` while a dial is under way.
    due: Option<Instant>,
    backoff: Duration,
    tries: u32,
}

/// The chat state of one node.
#[derive(Debug)]
pub struct Chat {
    cfg: Config,
    me: MemberId,
    seq: u64,
    /// The latest `now` the caller passed.
    clock: Instant,
    conns: ConnMap<Conn>,
    seen: Recent<MsgId>,
    /// Everyone in the chat as far as this node knows, itself included; ordered, so that a
    /// node's guests (same node id) are found as a range.
    members: BTreeMap<MemberId, Member>,
    /// Members that left for good (their own node said so): late joins for them are stale.
    gone: Recent<MemberId>,
    guests: u32,
    /// Dials the chat asked for that have not opened or failed yet.
    dialling: HashSet<SocketAddr>,
    /// Peers that dropped, to dial again.
    redial: HashMap<SocketAddr, Redial>,
    /// Addresses that answered but are not another peerchat node (or are this one): not dialled
    /// again by itself for a while.
    not_peers: Recent<SocketAddr>,
    /// Members dropped because a neighbour lost them (see [`LOST_AGE`]).
    lost: Recent<MemberId>,
    /// Members by nick, to tell apart the same nick quickly.
    by_nick: HashMap<String, Vec<MemberId>>,
    /// Where the next mesh scan starts in the range, so that every port gets its turn.
    scan_from: u16,
    next_scan: Option<Instant>,
    scan_every: Duration,
    /// Peers whose retired duplicate closed before the connection kept was classified: lost
    /// unless a connection to them is up at the instant given.
    orphans: Vec<(Instant, Lost)>,
    quitting: bool,
    actions: VecDeque<Action>,
}

/// The member ids of `node` and of the guests it hosts, in roster order.
fn hosted_by(node: NodeId) -> RangeInclusive<MemberId> {
    MemberId { node, guest: 0 }..=MemberId {
        node,
        guest: u32::MAX,
    }
}

/// Lines that leave the chat, compared trimmed and in any case, as the seed programs did.
fn is_quit_word(word: &str) -> bool {
    ["sair", "/quit", "/exit"]
        .iter()
        .any(|q| word.eq_ignore_ascii_case(q))
}

/// True for a typed line that leaves the chat: `sair`, `/quit [reason]`, `/exit [reason]`.
pub fn is_leave_command(line: &str) -> bool {
    let trimmed = line.trim();
    let (word, arg) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
    is_quit_word(word) && (arg.is_empty() || word.starts_with('/'))
}

/// The commands, for `/help`.
pub const HELP: &str = "type a line to send it. Commands: /msg NICK text (direct message), \
/me action, /nick NEW, /names (who is here), /connect HOST[:PORT], /help, \
/quit [reason] (also /exit, sair); //text sends a line starting with /";

impl Chat {
    pub fn new(cfg: Config, now: Instant) -> Self {
        let me = MemberId::node(cfg.node);
        let mut members = BTreeMap::new();
        members.insert(
            me,
            Member {
                nick: cfg.nick.clone(),
                addr: None,
            },
        );
        let mut by_nick = HashMap::new();
        by_nick.insert(cfg.nick.clone(), vec![me]);
        let next_scan = cfg.mesh.as_ref().map(|_| now);
        Chat {
            me,
            seq: 0,
            clock: now,
            conns: ConnMap::default(),
            seen: Recent::new(SEEN_CAP, Some(SEEN_AGE)),
            members,
            gone: Recent::new(SEEN_CAP, None),
            guests: 0,
            dialling: HashSet::new(),
            redial: HashMap::new(),
            not_peers: Recent::new(1024, Some(NOT_PEER_AGE)),
            lost: Recent::new(SEEN_CAP, Some(LOST_AGE)),
            by_nick,
            scan_from: 0,
            next_scan,
            scan_every: SCAN_FIRST,
            orphans: Vec::new(),
            quitting: false,
            actions: VecDeque::new(),
            cfg,
        }
    }

    /// The hello this node sends first on every connection (it carries the current nick).
    pub fn hello(&self) -> Frame {
        Frame::Hello(Hello {
            nick: self.cfg.nick.clone(),
            node: self.cfg.node,
            listen: self.cfg.listen,
        })
    }

    /// The next action to carry out, in order. Call until `None` after every `handle_*`.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest instant at which [`Chat::handle_tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.cfg.peer_timeout;
        let conns = self.conns.values().filter_map(|c| match &c.kind {
            Kind::Pending(due) => Some(*due),
            Kind::Peer(p) if p.state == PeerState::Active => Some(if p.pinged {
                p.last_heard + timeout
            } else {
                p.last_heard + timeout / 3
            }),
            _ => None,
        });
        let redials = self.redial.values().filter_map(|r| r.due);
        let orphans = self.orphans.iter().map(|(due, _)| *due);
        conns
            .chain(redials)
            .chain(orphans)
            .chain(self.next_scan.filter(|_| !self.quitting))
            .min()
    }

    /// True once the local user has left.
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// A connection is open (accepted, or a dial succeeded). The caller has sent our hello.
    pub fn handle_opened(&mut self, conn: ConnId, link: Link, now: Instant) {
        self.clock = now;
        let wait = match link.origin {
            Origin::Accepted => HELLO_WAIT,
            Origin::Dialled => HELLO_WAIT_DIALLED,
            Origin::Auto(target) => {
                self.dialling.remove(&target);
                HELLO_WAIT_DIALLED
            }
        };
        self.conns.insert(
            conn,
            Conn {
                addr: link.addr,
                origin: link.origin,
                ends: link.dialler_and_acceptor(),
                kind: Kind::Pending(now + wait),
                got_peers: false,
            },
        );
    }

    /// True while dials the chat asked for are under way or waiting for their hello: typed
    /// input waits for these at start-up (a piped line should reach the mesh, not nobody).
    pub fn is_settling(&self) -> bool {
        !self.dialling.is_empty()
            || self
                .conns
                .values()
                .any(|c| matches!(c.origin, Origin::Auto(_)) && matches!(c.kind, Kind::Pending(_)))
    }

    /// A dial asked for with [`Action::Dial`] failed.
    pub fn handle_dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        self.clock = now;
        self.dialling.remove(&addr);
        if let Some(r) = self.redial.get_mut(&addr) {
            r.tries += 1;
            if r.tries >= REDIAL_TRIES {
                self.redial.remove(&addr);
            } else {
                r.due = Some(now + r.backoff);
                r.backoff = (r.backoff * 2).min(REDIAL_MAX);
            }
        }
    }

    /// A connection is gone. `reason` is shown with the leave when the peer did not say goodbye.
    pub fn handle_closed(&mut self, conn: ConnId, reason: Option<String>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        match c.kind {
            Kind::Pending(_) => {
                if let Origin::Auto(target) = c.origin {
                    self.handle_dial_failed(target, self.clock);
                }
            }
            Kind::Guest { member, nick, .. } => {
                if self.quitting {
                    return;
                }
                self.show_leave(member, Some(c.addr.to_string()), reason.clone());
                self.forget_member(member);
                self.gone.insert(member, self.clock);
                let id = self.next_id();
                self.broadcast(
                    None,
                    Frame::Leave {
                        id,
                        member,
                        nick,
                        reason,
                    },
                );
            }
            Kind::Peer(p) => {
                if p.state == PeerState::SaidBye
                    || self.quitting
                    || self.peer_conn(p.node).is_some()
                {
                    return;
                }
                let addr = p.listen.unwrap_or(c.addr);
                let lost = Lost {
                    node: p.node,
                    nick: p.nick,
                    listen: p.listen,
                    addr,
                    reason: reason.or_else(|| Some("connection closed".to_string())),
                };
                if p.state == PeerState::Retired {
                    // A duplicate closed on purpose, and its twin is not classified (yet): its
                    // hello may still be on the way. Judge once it has had time to come.
                    self.orphans.push((self.clock + HELLO_WAIT_DIALLED, lost));
                } else {
                    self.lose_peer(lost);
                }
            }
        }
    }

    /// A peer connection is gone for good: dial it again later, and tell everyone it left.
    fn lose_peer(&mut self, lost: Lost) {
        if let Some(addr) = lost.listen.filter(|_| self.cfg.redial) {
            self.redial.insert(
                addr,
                Redial {
                    due: Some(self.clock + REDIAL_FIRST),
                    backoff: REDIAL_FIRST * 2,
                    tries: 0,
                },
            );
        }
        if self.cfg.mesh.is_some() {
            // Look again soon: it may come back on another port.
            self.scan_every = SCAN_FIRST;
            self.next_scan = Some(self.clock + SCAN_FIRST);
        }
        let member = MemberId::node(lost.node);
        self.lost.insert(member, self.clock);
        if self.remove_member(member, Some(lost.addr.to_string()), lost.reason.clone()) {
            let id = self.next_id();
            self.broadcast(
                None,
                Frame::Leave {
                    id,
                    member,
                    nick: lost.nick,
                    reason: lost.reason,
                },
            );
        }
    }

    /// Time passed: hello waits, keepalives and timeouts, re-dials, mesh scans.
    pub fn handle_tick(&mut self, now: Instant) {
        self.clock = now;
        let timeout = self.cfg.peer_timeout;
        let mut due = Vec::new();
        let mut ping = Vec::new();
        let mut dead = Vec::new();
        for (&k, c) in &mut self.conns {
            match &mut c.kind {
                Kind::Pending(at) if now >= *at => due.push(k),
                Kind::Peer(p) if p.state == PeerState::Active => {
                    if now >= p.last_heard + timeout {
                        dead.push(k);
                    } else if !p.pinged && now >= p.last_heard + timeout / 3 {
                        p.pinged = true;
                        p.pongs_due += 1;
                        ping.push(k);
                    }
                }
                _ => {}
            }
        }
        // In connection order, so guest numbers do not depend on hash order.
        due.sort_unstable();
        for conn in due {
            match self.conns.get(&conn).map(|c| c.origin) {
                // Silent: perhaps a node too busy to answer (stopped, loaded). Not a guest, but
                // not written off either: it is tried again later.
                Some(Origin::Auto(target)) => {
                    self.conns.remove(&conn);
                    self.handle_dial_failed(target, now);
                    self.actions.push_back(Action::Close {
                        conn,
                        reason: "no hello".into(),
                    });
                }
                _ => self.make_guest(conn, true),
            }
        }
        ping.sort_unstable();
        for conn in ping {
            self.send(conn, Frame::Ping);
        }
        dead.sort_unstable();
        for conn in dead {
            self.drop_conn(conn, "timed out".to_string());
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.orphans)
            .into_iter()
            .partition(|(at, _)| now >= *at);
        self.orphans = waiting;
        for (_, lost) in due {
            if !self.quitting && self.peer_conn(lost.node).is_none() {
                self.lose_peer(lost);
            }
        }
        if self.quitting {
            return;
        }
        let mut redials: Vec<SocketAddr> = self
            .redial
            .iter()
            .filter(|(_, r)| r.due.is_some_and(|d| now >= d))
            .map(|(&a, _)| a)
            .collect();
        redials.sort_unstable();
        for addr in redials {
            if let Some(r) = self.redial.get_mut(&addr) {
                r.due = None;
            }
            if !self.dial(addr) {
                // Connected or being dialled already, or too many peers: try later.
                self.handle_dial_failed(addr, now);
            }
        }
        if self.next_scan.is_some_and(|t| now >= t) {
            self.next_scan = Some(now + self.scan_every);
            self.scan_every = (self.scan_every * 2).min(SCAN_MAX);
            self.scan();
        }
    }

    /// One complete line arrived on `conn` (without its `\n`).
    pub fn handle_line(&mut self, conn: ConnId, line: &[u8], now: Instant) {
        self.clock = now;
        // Checking valid UTF-8 is fast; the lossy path is only for lines that are not.
        let text = match std::str::from_utf8(line) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(line),
        };
        let quitting = self.quitting;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.kind {
            Kind::Pending(_) => match protocol::parse_hello(&text) {
                Some(hello) => self.make_peer(conn, hello),
                None if c.origin != Origin::Accepted && protocol::is_refusal(&text) => {
                    self.refused(conn)
                }
                None if matches!(c.origin, Origin::Auto(_)) => self.not_a_peer(conn),
                None => {
                    self.make_guest(conn, false);
                    self.guest_line(conn, &text);
                }
            },
            // Taken for a guest by its silence, but its first line is a hello: a peerchat node
            // that was slow to answer. It becomes the peer it is.
            Kind::Guest { silent, .. } if *silent => match protocol::parse_hello(&text) {
                Some(hello) => self.upgrade_to_peer(conn, hello),
                None => {
                    *silent = false;
                    self.guest_line(conn, &text);
                }
            },
            // Leaving: only what classifies a connection still matters, so held output is sent.
            _ if quitting => {}
            Kind::Guest { .. } => self.guest_line(conn, &text),
            // It said goodbye: whatever follows is not taken.
            Kind::Peer(p) if p.state == PeerState::SaidBye => {}
            Kind::Peer(p) => {
                p.last_heard = now;
                p.pinged = false;
                match protocol::parse_frame(&text) {
                    Ok(frame) => self.peer_frame(conn, frame),
                    // Plain chat text from a node that took us for a guest before our hello
                    // reached it (it was slow): not an attack, and it stops once our hello is
                    // read there.
                    Err(_) if protocol::is_guest_text(&text) => {}
                    Err(e) => self.drop_conn(conn, e.to_string()),
                }
            }
        }
    }

    /// The user typed `line` (without its `\n`).
    pub fn handle_input(&mut self, line: &str) {
        if self.quitting {
            return;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        let (word, arg) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        let arg = arg.trim();
        if is_leave_command(trimmed) {
            let reason = Some(arg.to_string()).filter(|r| !r.is_empty());
            return self.quit(reason);
        }
        let Some(rest) = trimmed.strip_prefix('/') else {
            return self.say(line);
        };
        if rest.starts_with('/') {
            return self.say(&line[line.find('/').unwrap_or(0) + 1..]);
        }
        match word.to_ascii_lowercase().as_str() {
            "/help" => self.show(Event::Info(HELP.to_string())),
            "/names" | "/who" => self.show(Event::Names(self.names())),
            "/nick" => self.change_nick(arg),
            "/me" if !arg.is_empty() => self.act(arg),
            "/msg" => match arg.split_once(' ') {
                Some((nick, text)) if !text.trim().is_empty() => self.direct(nick, text.trim()),
                _ => self.show(Event::Error("usage: /msg NICK text".into())),
            },
            "/connect" if !arg.is_empty() && !arg.contains(' ') => {
                self.actions.push_back(Action::Connect(arg.to_string()))
            }
            "/me" | "/connect" => self.show(Event::Error(format!(
                "usage: {word} {}",
                if word == "/me" {
                    "action"
                } else {
                    "HOST[:PORT]"
                }
            ))),
            _ => self.show(Event::Error(format!(
                "unknown command {word}; nothing was sent (type /help)"
            ))),
        }
    }

    /// The user's input ended (and the caller does not keep running without it).
    pub fn handle_input_end(&mut self) {
        self.quit(None);
    }

    fn say(&mut self, text: &str) {
        for piece in protocol::split_text(text, MAX_TEXT) {
            let id = self.next_id();
            let nick = self.cfg.nick.clone();
            if self.anyone() {
                self.show(Event::Sent(format!("<{nick}> {piece}")));
            }
            self.broadcast(
                None,
                Frame::Msg {
                    id,
                    from: self.me,
                    nick,
                    text: piece.to_string(),
                },
            );
        }
    }

    fn act(&mut self, text: &str) {
        let Some(text) = protocol::split_text(text, MAX_TEXT).next() else {
            return;
        };
        let id = self.next_id();
        let nick = self.cfg.nick.clone();
        if self.anyone() {
            self.show(Event::Sent(format!("* {nick} {text}")));
        }
        self.broadcast(
            None,
            Frame::Me {
                id,
                from: self.me,
                nick,
                text: text.to_string(),
            },
        );
    }

    fn direct(&mut self, nick: &str, text: &str) {
        let to = match self.resolve(nick) {
            Ok(to) => to,
            Err(msg) => return self.show(Event::Error(msg)),
        };
        if to == self.me {
            return self.show(Event::Error("that is you; nothing was sent".into()));
        }
        let to_name = self.display(to);
        let Some(text) = protocol::split_text(text, MAX_TEXT).next() else {
            return;
        };
        let id = self.next_id();
        let frame = Frame::Dm {
            id,
            from: self.me,
            nick: self.cfg.nick.clone(),
            to,
            text: text.to_string(),
        };
        self.show(Event::Dm {
            from: self.cfg.nick.clone(),
            to: to_name,
            text: text.to_string(),
        });
        match self.guest_conn(to) {
            Some(conn) => self.send(conn, frame),
            None => self.broadcast(None, frame),
        }
    }

    /// The member a typed nick means: a shown name (`bob#1a2b`), else a nick that only one
    /// member has. Errors are messages for the user.
    fn resolve(&self, nick: &str) -> Result<MemberId, String> {
        let mut ids: Vec<MemberId> = self.members.keys().copied().collect();
        ids.sort_unstable();
        if let Some(&m) = ids.iter().find(|&&m| self.display(m) == nick) {
            return Ok(m);
        }
        let same: Vec<MemberId> = ids
            .into_iter()
            .filter(|m| self.members[m].nick.eq_ignore_ascii_case(nick))
            .collect();
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

    fn change_nick(&mut self, new: &str) {
        if let Err(e) = check_nick(new) {
            return self.show(Event::Error(format!("cannot change nick: {e}")));
        }
        if new == self.cfg.nick {
            return;
        }
        let old = std::mem::replace(&mut self.cfg.nick, new.to_string());
        self.update_member(self.me, new, None);
        self.show(Event::Nick {
            old: old.clone(),
            nick: new.to_string(),
        });
        let id = self.next_id();
        self.broadcast(
            None,
            Frame::Nick {
                id,
                member: self.me,
                old,
                nick: new.to_string(),
            },
        );
    }

    fn names(&self) -> Vec<Name> {
        let mut names: Vec<Name> = self
            .members
            .iter()
            .map(|(&m, member)| Name {
                nick: self.display(m),
                addr: member.addr.clone(),
                you: m == self.me,
            })
            .collect();
        names.sort_by(|a, b| a.nick.cmp(&b.nick));
        names
    }

    /// How `member` is shown: its nick, with its tag when another member has the same nick.
    fn display(&self, member: MemberId) -> String {
        let Some(m) = self.members.get(&member) else {
            return format!("?{}", member.tag());
        };
        let twins: Vec<MemberId> = self
            .by_nick
            .get(&m.nick)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&other| other != member)
            .collect();
        if twins.is_empty() {
            return m.nick.clone();
        }
        // The shortest tag (4 hex digits at least) that none of the twins shares.
        let len = (4..16)
            .find(|&len| twins.iter().all(|t| t.tag_of(len) != member.tag_of(len)))
            .unwrap_or(16);
        format!("{}{}", m.nick, member.tag_of(len))
    }

    fn quit(&mut self, reason: Option<String>) {
        if self.quitting {
            return;
        }
        self.quitting = true;
        let id = self.next_id();
        let nick = self.cfg.nick.clone();
        self.broadcast(
            None,
            Frame::Leave {
                id,
                member: self.me,
                nick,
                reason,
            },
        );
        self.actions.push_back(Action::Quit);
    }

    /// Forgets `conn` at once (later lines from it are ignored), announces its leave, and asks
    /// the caller to close it.
    fn drop_conn(&mut self, conn: ConnId, reason: String) {
        self.handle_closed(conn, Some(reason.clone()));
        self.actions.push_back(Action::Close { conn, reason });
    }

    /// A connection the chat dialled by itself is not another peerchat node: close it quietly
    /// and do not dial that address again.
    /// A node we dialled is full: a dial of ours is tried again later as if it had failed;
    /// one the user asked for is an error.
    fn refused(&mut self, conn: ConnId) {
        let reason = "the chat is full".to_string();
        match self.conns.remove(&conn).map(|c| c.origin) {
            Some(Origin::Auto(target)) => {
                self.handle_dial_failed(target, self.clock);
                self.actions.push_back(Action::Close { conn, reason });
            }
            _ => self.actions.push_back(Action::Refused { conn, reason }),
        }
    }

    fn not_a_peer(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Origin::Auto(target) = c.origin {
                self.not_peers.insert(target, self.clock);
                self.redial.remove(&target);
            }
        }
        self.actions.push_back(Action::Close {
            conn,
            reason: "not a peerchat node".into(),
        });
    }

    /// True if some connection may still get what we send (the log records a message as sent
    /// only then).
    fn anyone(&self) -> bool {
        self.conns.values().any(|c| match &c.kind {
            Kind::Peer(p) => p.state == PeerState::Active,
            Kind::Guest { .. } => true,
            // A scan's connection is nobody until it proves to be a peer.
            Kind::Pending(_) => !matches!(c.origin, Origin::Auto(_)),
        })
    }

    /// The open connection to `node`, if any.
    fn peer_conn(&self, node: NodeId) -> Option<ConnId> {
        self.conns.iter().find_map(|(&k, c)| match &c.kind {
            Kind::Peer(p) if p.node == node && p.state == PeerState::Active => Some(k),
            _ => None,
        })
    }

    /// The connection of our guest `member`, if it is one.
    fn guest_conn(&self, member: MemberId) -> Option<ConnId> {
        if member.node != self.cfg.node || member.guest == 0 {
            return None;
        }
        self.conns.iter().find_map(|(&k, c)| match &c.kind {
            Kind::Guest { member: m, .. } if *m == member => Some(k),
            _ => None,
        })
    }

    /// Peer connections, and the chat's own connections that may become one (counted against
    /// `--max-peers` with the dials under way).
    fn active_peers(&self) -> usize {
        self.conns
            .values()
            .filter(|c| match &c.kind {
                Kind::Peer(p) => p.state == PeerState::Active,
                Kind::Pending(_) => matches!(c.origin, Origin::Auto(_)),
                Kind::Guest { .. } => false,
            })
            .count()
    }

    /// True if `addr` is a peer we have, or a connection to it is being made.
    fn reaching(&self, addr: SocketAddr) -> bool {
        self.dialling.contains(&addr)
            || self.conns.values().any(|c| match &c.kind {
                Kind::Peer(p) => p.listen == Some(addr),
                Kind::Pending(_) => match c.origin {
                    Origin::Auto(target) => target == addr,
                    Origin::Dialled => c.addr == addr,
                    Origin::Accepted => false,
                },
                Kind::Guest { .. } => false,
            })
    }

    /// Asks the caller to dial `addr`, unless it is reached already or the peer cap is met.
    fn dial(&mut self, addr: SocketAddr) -> bool {
        if self.reaching(addr)
            || self.not_peers.contains(&addr, self.clock)
            || self.active_peers() + self.dialling.len() >= self.cfg.max_peers
        {
            return false;
        }
        self.dialling.insert(addr);
        self.actions.push_back(Action::Dial(addr));
        true
    }

    /// Mesh mode: dial every port of the range that is not ours and not reached yet.
    fn scan(&mut self) {
        let Some(mesh) = self.cfg.mesh.clone() else {
            return;
        };
        // Start where the last scan stopped: with the peer cap reached early, the ports late in
        // the range still get their turn.
        let ports: Vec<u16> = mesh.ports.collect();
        let start = usize::from(self.scan_from) % ports.len().max(1);
        for i in 0..ports.len() {
            let port = ports[(start + i) % ports.len()];
            if Some(port) == self.cfg.listen {
                continue;
            }
            let addr = SocketAddr::new(mesh.host, port);
            if !self.reaching(addr)
                && !self.not_peers.contains(&addr, self.clock)
                && self.active_peers() + self.dialling.len() >= self.cfg.max_peers
            {
                self.scan_from = u16::try_from((start + i) % ports.len()).unwrap_or(0);
                return;
            }
            self.dial(addr);
        }
    }

    fn make_peer(&mut self, conn: ConnId, hello: Hello) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if hello.node == self.cfg.node {
            if let Origin::Auto(target) = c.origin {
                self.not_peers.insert(target, self.clock);
            }
            return self.drop_conn(conn, "connected to itself".to_string());
        }
        let addr = c.addr;
        let listen = hello.listen.map(|port| SocketAddr::new(addr.ip(), port));
        let existing = self.peer_conn(hello.node);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.kind = Kind::Peer(Peer {
                nick: hello.nick.clone(),
                node: hello.node,
                state: PeerState::Active,
                listen,
                last_heard: self.clock,
                pinged: false,
                pongs_due: 0,
                verify: None,
            });
        }
        self.actions.push_back(Action::Classify {
            conn,
            role: Role::Peer,
        });
        if let Some(listen) = listen {
            self.redial.remove(&listen);
        }
        if let Some(other) = existing {
            return self.one_connection(conn, other, hello.node);
        }
        let member = MemberId::node(hello.node);
        let shown_addr = listen.unwrap_or(addr).to_string();
        self.gone.remove(&member);
        self.lost.remove(&member);
        if self.members.contains_key(&member) {
            self.update_member(member, &hello.nick, Some(shown_addr));
        } else if !self.quitting {
            self.add_member(member, &hello.nick, Some(shown_addr.clone()));
            // Its hello is fresh evidence: a node that had it as lost takes it back.
            let id = self.next_id();
            self.broadcast(
                Some(conn),
                Frame::Here {
                    id,
                    member,
                    nick: hello.nick,
                    addr: Some(shown_addr),
                },
            );
        }
        if self.quitting {
            return;
        }
        // Tell the new peer who is here, and where our other peers listen.
        let mut roster: Vec<(MemberId, Member)> = self
            .members
            .iter()
            .filter(|(&m, _)| m != member && m != self.me)
            .map(|(&m, v)| (m, v.clone()))
            .collect();
        roster.sort_unstable_by_key(|(m, _)| *m);
        for (m, v) in roster {
            let id = self.next_id();
            self.send(
                conn,
                Frame::Join {
                    id,
                    member: m,
                    nick: v.nick,
                    addr: v.addr,
                },
            );
        }
        let mut peers: Vec<(NodeId, SocketAddr)> = self
            .conns
            .iter()
            .filter(|(&k, _)| k != conn)
            .filter_map(|(_, c)| match &c.kind {
                Kind::Peer(p) if p.state == PeerState::Active => Some((p.node, p.listen?)),
                _ => None,
            })
            .collect();
        if !peers.is_empty() {
            peers.sort_unstable();
            self.send(conn, Frame::Peers(peers));
        }
    }

    /// Two connections to the same node: both ends keep the one dialled by the smaller node
    /// id, or if one node dialled both, the one from its lower port (both ends see the same
    /// dialler and port), and retire the other.
    fn one_connection(&mut self, new: ConnId, old: ConnId, node: NodeId) {
        let keeper = self.cfg.node.min(node);
        let rank = |c: Option<&Conn>| {
            c.map_or((true, u16::MAX, None), |c| {
                let dialler = if c.origin == Origin::Accepted {
                    node
                } else {
                    self.cfg.node
                };
                (dialler != keeper, c.ends.0, Some(c.ends.1))
            })
        };
        let loser = if rank(self.conns.get(&new)) < rank(self.conns.get(&old)) {
            old
        } else {
            new
        };
        if let Some(Conn {
            kind: Kind::Peer(p),
            ..
        }) = self.conns.get_mut(&loser)
        {
            p.state = PeerState::Retired;
        }
        self.send(loser, Frame::Close("duplicate connection".into()));
        self.actions.push_back(Action::Retire { conn: loser });
    }

    /// A guest that turned out to be a peerchat node: its guest name leaves, the peer joins.
    fn upgrade_to_peer(&mut self, conn: ConnId, hello: Hello) {
        let Some((addr, origin, ends)) = self.conns.get(&conn).map(|c| (c.addr, c.origin, c.ends))
        else {
            return;
        };
        let reason = Some(format!("it is {}, a peerchat node", hello.nick));
        self.handle_closed(conn, reason);
        self.conns.insert(
            conn,
            Conn {
                addr,
                origin,
                ends,
                kind: Kind::Pending(self.clock),
                got_peers: false,
            },
        );
        self.make_peer(conn, hello);
    }

    fn make_guest(&mut self, conn: ConnId, silent: bool) {
        self.guests += 1;
        let member = MemberId {
            node: self.cfg.node,
            guest: self.guests,
        };
        let nick = format!("guest-{}", self.guests);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.kind = Kind::Guest {
            member,
            nick: nick.clone(),
            silent,
            bucket: Bucket::new(self.clock, self.cfg.guest_rate),
        };
        let addr = c.addr.to_string();
        self.actions.push_back(Action::Classify {
            conn,
            role: Role::Guest,
        });
        if self.quitting {
            return;
        }
        self.add_member(member, &nick, Some(addr.clone()));
        let id = self.next_id();
        self.broadcast(
            Some(conn),
            Frame::Join {
                id,
                member,
                nick,
                addr: Some(addr),
            },
        );
    }

    fn guest_line(&mut self, conn: ConnId, text: &str) {
        let now = self.clock;
        let limit = self.cfg.guest_rate;
        let Some(Kind::Guest {
            member,
            nick,
            bucket,
            ..
        }) = self.conns.get_mut(&conn).map(|c| &mut c.kind)
        else {
            return;
        };
        if self.quitting || text.trim().is_empty() {
            return;
        }
        if let Some(limit) = limit {
            if let Verdict::Drop { tell, cut } = bucket.take(now, limit) {
                if let Some(n) = tell {
                    let text = format!(
                        "peerchat: slow down: {n} line(s) not sent (at most {} a second)",
                        limit.per_sec
                    );
                    self.actions.push_back(Action::Tell { conn, text });
                }
                if cut {
                    self.actions.push_back(Action::Tell {
                        conn,
                        text: "peerchat: disconnected for flooding".into(),
                    });
                    self.drop_conn(conn, "flooding".into());
                }
                return;
            }
        }
        let (member, nick) = (*member, nick.clone());
        let from = self.display(member);
        for piece in protocol::split_text(text, MAX_TEXT) {
            let id = self.next_id();
            self.show(Event::Message {
                from: from.clone(),
                text: piece.to_string(),
            });
            self.broadcast(
                Some(conn),
                Frame::Msg {
                    id,
                    from: member,
                    nick: nick.clone(),
                    text: piece.to_string(),
                },
            );
        }
    }

    fn peer_frame(&mut self, conn: ConnId, frame: Frame) {
        match frame {
            Frame::Ping => return self.send(conn, Frame::Pong),
            Frame::Pong => return self.confirm_alive(conn),
            Frame::Hello(_) | Frame::Unknown(_) => return,
            Frame::Close(_) => {
                if let Some(Conn {
                    kind: Kind::Peer(p),
                    ..
                }) = self.conns.get_mut(&conn)
                {
                    if p.state == PeerState::Retired {
                        return;
                    }
                    p.state = PeerState::Retired;
                }
                // Its end goes once what it sent is read; ours once what we queued is out.
                return self.actions.push_back(Action::Retire { conn });
            }
            Frame::Peers(peers) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if std::mem::replace(&mut c.got_peers, true) {
                    return;
                }
                let sender = c.addr.ip();
                for (node, mut addr) in peers {
                    // "127.0.0.1" from a peer on another machine means that machine.
                    let vague = addr.ip().is_loopback() || addr.ip().is_unspecified();
                    if vague && !sender.is_loopback() {
                        addr.set_ip(sender);
                    }
                    if node != self.cfg.node && self.peer_conn(node).is_none() {
                        self.dial(addr);
                    }
                }
                return;
            }
            _ => {}
        }
        let Some(id) = frame.id() else {
            return;
        };
        // Our own frames coming back around a loop: dropped without a lookup (they are not
        // recorded in `seen`, which keeps the sending path cheap).
        if id.node == self.cfg.node || !self.seen.insert(id, self.clock) {
            return;
        }
        let forward = match &frame {
            Frame::Msg {
                from, nick, text, ..
            }
            | Frame::Me {
                from, nick, text, ..
            } => {
                self.note_member(*from, nick);
                let (from, text) = (self.display(*from), text.clone());
                self.show(match frame {
                    Frame::Me { .. } => Event::Me { from, text },
                    _ => Event::Message { from, text },
                });
                true
            }
            Frame::Dm {
                from,
                nick,
                to,
                text,
                ..
            } => {
                if *to == self.me {
                    self.note_member(*from, nick);
                    self.show(Event::Dm {
                        from: self.display(*from),
                        to: self.cfg.nick.clone(),
                        text: text.clone(),
                    });
                    false
                } else if let Some(guest) = self.guest_conn(*to) {
                    self.send(guest, frame.clone());
                    false
                } else {
                    to.node != self.cfg.node
                }
            }
            Frame::Nick {
                member, old, nick, ..
            } => {
                if *member == self.me || !self.members.contains_key(member) {
                    // Unknown here: it will be known by its new nick when it speaks.
                    *member != self.me
                } else {
                    let before = self.display(*member);
                    self.update_member(*member, nick, None);
                    let _ = old;
                    self.show(Event::Nick {
                        old: before,
                        nick: self.display(*member),
                    });
                    true
                }
            }
            Frame::Join {
                id,
                member,
                nick,
                addr,
            }
            | Frame::Here {
                id,
                member,
                nick,
                addr,
            } => {
                // Fresh evidence: from the member's own node, or from a node that just heard it.
                let fresh = matches!(frame, Frame::Here { .. }) || id.node == member.node;
                if fresh {
                    self.lost.remove(member);
                }
                let host = MemberId::node(member.node);
                let host_away = member.guest > 0
                    && (self.gone.contains(&host, self.clock)
                        || self.lost.contains(&host, self.clock));
                if member.node == self.cfg.node
                    || host_away
                    || self.gone.contains(member, self.clock)
                    || self.lost.contains(member, self.clock)
                {
                    false
                } else if self.members.contains_key(member) {
                    // Known: the flood stops here.
                    self.update_member(*member, nick, addr.clone());
                    false
                } else {
                    self.add_member(*member, nick, addr.clone());
                    true
                }
            }
            Frame::Leave {
                id,
                member,
                nick,
                reason,
            } => self.leave_frame(conn, *id, *member, nick, reason.clone()),
            _ => false,
        };
        if forward {
            self.broadcast(Some(conn), frame);
        }
    }

    /// Handles a LEAVE; true when it is to be passed on.
    fn leave_frame(
        &mut self,
        conn: ConnId,
        id: MsgId,
        member: MemberId,
        nick: &str,
        reason: Option<String>,
    ) -> bool {
        // Sent by the member's own node: it (or its guest) left for good.
        let own = id.node == member.node;
        if member == self.me {
            // A neighbour lost us, but we are here: say so to everyone, for our guests too.
            self.announce_here(self.cfg.node);
            return false;
        }
        if member.node == self.cfg.node {
            return false;
        }
        let direct = self.peer_conn(member.node).filter(|_| member.guest == 0);
        if own {
            self.gone.insert(member, self.clock);
            let mut addr = None;
            if let Some(k) = direct {
                if let Some(Conn {
                    kind: Kind::Peer(p),
                    addr: conn_addr,
                    ..
                }) = self.conns.get_mut(&k)
                {
                    // Its own goodbye: its connection's close needs no announcement, and it is
                    // not dialled again.
                    p.state = PeerState::SaidBye;
                    addr = Some(p.listen.unwrap_or(*conn_addr));
                    if let Some(l) = p.listen {
                        self.redial.remove(&l);
                    }
                }
            }
            let addr = addr
                .map(|a| a.to_string())
                .or_else(|| self.members.get(&member).and_then(|m| m.addr.clone()));
            if self.members.contains_key(&member) {
                self.remove_member(member, addr, reason);
            }
            let _ = (conn, nick);
            return true;
        }
        if let Some(k) = direct {
            // We still have a connection to it, but it may be dying too (a crash reaches its
            // neighbours one by one): ask it, and tell the others it is here only if it answers.
            if let Some(Conn {
                kind: Kind::Peer(p),
                ..
            }) = self.conns.get_mut(&k)
            {
                if p.verify.is_none() {
                    p.pongs_due += 1;
                    p.verify = Some(p.pongs_due);
                    self.send(k, Frame::Ping);
                }
            }
            return false;
        }
        if member.guest == 0 && self.members.contains_key(&member) {
            let addr = self.members.get(&member).and_then(|m| m.addr.clone());
            self.lost.insert(member, self.clock);
            return self.remove_member(member, addr, reason);
        }
        false
    }

    /// A `PONG` came on `conn`: if another node had said this peer was lost, it is not, and
    /// everyone is told with a fresh `JOIN`.
    fn confirm_alive(&mut self, conn: ConnId) {
        let Some(Conn {
            kind: Kind::Peer(p),
            ..
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        p.pongs_due = p.pongs_due.saturating_sub(1);
        match p.verify {
            // An answer to an older ping: it proves nothing about now.
            Some(n) if n > 1 => p.verify = Some(n - 1),
            Some(_) if p.state == PeerState::Active => {
                p.verify = None;
                let node = p.node;
                self.announce_here(node);
            }
            _ => p.verify = None,
        }
    }

    /// Tells everyone that node `node` and the guests it hosts are here (`HERE`), as this node
    /// knows them.
    fn announce_here(&mut self, node: NodeId) {
        let here: Vec<(MemberId, Member)> = self
            .members
            .range(hosted_by(node))
            .map(|(&m, v)| (m, v.clone()))
            .collect();
        // To peers only: this node's guests never saw them go.
        let mut peers: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.kind, Kind::Peer(p) if p.state == PeerState::Active))
            .map(|(&k, _)| k)
            .collect();
        peers.sort_unstable();
        for (member, m) in here {
            let id = self.next_id();
            let frame = Rc::new(Frame::Here {
                id,
                member,
                nick: m.nick,
                addr: m.addr,
            });
            for &conn in &peers {
                self.actions.push_back(Action::Send {
                    conn,
                    frame: frame.clone(),
                });
            }
        }
    }

    /// Records a member we learn of from one of its messages (its join went by unseen).
    fn note_member(&mut self, member: MemberId, nick: &str) {
        if member.node == self.cfg.node
            || self.gone.contains(&member, self.clock)
            || self.lost.contains(&member, self.clock)
        {
            return;
        }
        if self.members.contains_key(&member) {
            self.update_member(member, nick, None);
        } else {
            self.insert_member(member, nick, None);
        }
    }

    /// Adds `member` to the roster, within the caps; false if it did not fit.
    fn insert_member(&mut self, member: MemberId, nick: &str, addr: Option<String>) -> bool {
        let twins = self.by_nick.get(nick).map_or(0, Vec::len);
        if self.members.len() >= MAX_MEMBERS || twins >= MAX_SAME_NICK {
            return false;
        }
        self.members.insert(
            member,
            Member {
                nick: nick.to_string(),
                addr,
            },
        );
        self.by_nick
            .entry(nick.to_string())
            .or_default()
            .push(member);
        true
    }

    /// Takes `member` off the roster.
    fn forget_member(&mut self, member: MemberId) {
        let Some(m) = self.members.remove(&member) else {
            return;
        };
        if let Some(list) = self.by_nick.get_mut(&m.nick) {
            list.retain(|&x| x != member);
            if list.is_empty() {
                self.by_nick.remove(&m.nick);
            }
        }
    }

    fn add_member(&mut self, member: MemberId, nick: &str, addr: Option<String>) {
        if self.insert_member(member, nick, addr.clone()) {
            self.show(Event::Join {
                nick: self.display(member),
                addr,
            });
        }
    }

    fn update_member(&mut self, member: MemberId, nick: &str, addr: Option<String>) {
        let Some(m) = self.members.get_mut(&member) else {
            return;
        };
        if addr.is_some() {
            m.addr = addr;
        }
        if m.nick != nick {
            let (old_nick, old_addr) = (m.nick.clone(), m.addr.clone());
            self.forget_member(member);
            if !self.insert_member(member, nick, old_addr.clone()) {
                // Too many with the new nick: keep the old one.
                self.insert_member(member, &old_nick, old_addr);
            }
        }
    }

    /// Removes `member` (and, for a node, the guests it hosted), showing each leave. False if it
    /// was not known.
    fn remove_member(
        &mut self,
        member: MemberId,
        addr: Option<String>,
        reason: Option<String>,
    ) -> bool {
        if !self.members.contains_key(&member) {
            return false;
        }
        self.show_leave(member, addr, reason);
        self.forget_member(member);
        if member.guest == 0 {
            let hosted: Vec<MemberId> = self
                .members
                .range(hosted_by(member.node))
                .map(|(&m, _)| m)
                .collect();
            for guest in hosted {
                let addr = self.members.get(&guest).and_then(|m| m.addr.clone());
                self.show_leave(guest, addr, Some("its node left".into()));
                self.forget_member(guest);
                self.lost.insert(guest, self.clock);
            }
        }
        true
    }

    fn show_leave(&mut self, member: MemberId, addr: Option<String>, reason: Option<String>) {
        self.show(Event::Leave {
            nick: self.display(member),
            addr,
            reason,
        });
    }

    fn send(&mut self, conn: ConnId, frame: Frame) {
        self.actions.push_back(Action::Send {
            conn,
            frame: Rc::new(frame),
        });
    }

    fn broadcast(&mut self, except: Option<ConnId>, frame: Frame) {
        self.actions.push_back(Action::Broadcast {
            except,
            frame: Rc::new(frame),
        });
    }

    fn show(&mut self, event: Event) {
        self.actions.push_back(Action::Show(event));
    }

    /// A fresh id for a frame this node originates (frames with our node id are never taken
    /// from peers, so it is not shown again if it comes back around a loop).
    fn next_id(&mut self) -> MsgId {
        self.seq += 1;
        MsgId {
            node: self.cfg.node,
            seq: self.seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_id(i: usize) -> NodeId {
        // Distinct first hex digits, so tags are short in assertions.
        ((i as u64 + 1) << 56) | 0x1000 | i as u64
    }

    fn addr(i: usize, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i as u8], port))
    }

    fn accepted(addr: SocketAddr) -> Link {
        Link {
            addr,
            local: SocketAddr::from(([10, 0, 0, 250], 5000)),
            origin: Origin::Accepted,
        }
    }

    /// Several chats wired to each other in memory: each link is a pair of connection ends, and
    /// frames travel through the real encoder and `handle_line`, in order per link. Dials the
    /// chats ask for are refused unless `allow_dials` is set, so a test's topology stays put.
    struct Net {
        nodes: Vec<Chat>,
        /// (node, conn) -> the other end.
        links: HashMap<(usize, ConnId), (usize, ConnId)>,
        next_conn: ConnId,
        shown: Vec<Vec<Event>>,
        quit: Vec<bool>,
        closed: Vec<(usize, ConnId, String)>,
        allow_dials: bool,
        /// Crashed nodes: whatever is sent to them is lost.
        dead: Vec<bool>,
        /// Frames sent on a link, by kind ("PING", "MSG", ...).
        sent: HashMap<String, usize>,
        now: Instant,
    }

    impl Net {
        fn new(n: usize) -> Net {
            let now = Instant::now();
            Net {
                nodes: (0..n)
                    .map(|i| Chat::new(Config::new(format!("n{i}"), node_id(i), Some(5000)), now))
                    .collect(),
                links: HashMap::new(),
                next_conn: 100,
                shown: vec![Vec::new(); n],
                quit: vec![false; n],
                closed: Vec::new(),
                allow_dials: false,
                dead: vec![false; n],
                sent: HashMap::new(),
                now,
            }
        }

        /// Replaces node `i` with a fresh run of it (a new node id, like a restarted process).
        fn restart(&mut self, i: usize, run: u64) {
            let nick = format!("n{i}");
            let id = node_id(i) ^ (run << 40);
            self.nodes[i] = Chat::new(Config::new(nick, id, Some(5000)), self.now);
            self.quit[i] = false;
        }

        /// `a` accepts a connection dialled by `b`; both send their hello.
        fn link_raw(&mut self, a: usize, b: usize, origin: Origin) {
            let (ca, cb) = self.open_raw(a, b, origin);
            for (x, cx) in [(a, ca), (b, cb)] {
                let hello = self.nodes[x].hello();
                self.deliver(x, cx, &hello);
            }
        }

        /// `a` accepts a connection dialled by `b`; nothing is sent yet. Returns both ends.
        fn open_raw(&mut self, a: usize, b: usize, origin: Origin) -> (ConnId, ConnId) {
            let (ca, cb) = (self.next_conn, self.next_conn + 1);
            self.next_conn += 2;
            self.links.insert((a, ca), (b, cb));
            self.links.insert((b, cb), (a, ca));
            let from_port = 40000 + cb as u16;
            let accepted = Link {
                addr: addr(b, from_port),
                local: addr(a, 5000),
                origin: Origin::Accepted,
            };
            let dialled = Link {
                addr: addr(a, 5000),
                local: addr(b, from_port),
                origin,
            };
            self.nodes[a].handle_opened(ca, accepted, self.now);
            self.nodes[b].handle_opened(cb, dialled, self.now);
            (ca, cb)
        }

        fn link(&mut self, a: usize, b: usize) {
            self.link_raw(a, b, Origin::Dialled);
            self.run();
        }

        fn conns_between(&self, a: usize, b: usize) -> Vec<ConnId> {
            let mut v: Vec<ConnId> = self
                .links
                .iter()
                .filter(|(&(n, _), &(m, _))| n == a && m == b)
                .map(|(&(_, c), _)| c)
                .collect();
            v.sort_unstable();
            v
        }

        fn conn_of(&self, a: usize, b: usize) -> ConnId {
            self.conns_between(a, b)[0]
        }

        /// Ends the connection between `a` and `b` as a reset would, on both sides.
        fn unlink(&mut self, a: usize, b: usize) {
            for ca in self.conns_between(a, b) {
                self.cut(a, ca, "connection reset", "connection reset");
            }
            self.run();
        }

        /// Every link of `i` breaks (a crash): its neighbours see resets.
        fn crash(&mut self, i: usize) {
            let ends: Vec<(usize, ConnId)> = self
                .links
                .keys()
                .filter(|(n, _)| *n == i)
                .copied()
                .collect();
            for (n, c) in ends {
                if let Some((m, mc)) = self.links.remove(&(n, c)) {
                    self.links.remove(&(m, mc));
                    self.nodes[m].handle_closed(mc, Some("connection reset".into()));
                }
            }
            self.run();
        }

        fn cut(&mut self, i: usize, conn: ConnId, here: &str, there: &str) {
            self.nodes[i].handle_closed(conn, Some(here.into()));
            if let Some((m, mc)) = self.links.remove(&(i, conn)) {
                self.links.remove(&(m, mc));
                self.nodes[m].handle_closed(mc, Some(there.into()));
            }
        }

        fn deliver(&mut self, from: usize, conn: ConnId, frame: &Frame) {
            let Some(&(to, to_conn)) = self.links.get(&(from, conn)) else {
                return;
            };
            if self.dead[to] {
                return;
            }
            let mut buf = Vec::new();
            protocol::encode(frame, &mut buf);
            let verb = String::from_utf8_lossy(&buf)
                .split(' ')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            *self.sent.entry(verb).or_default() += 1;
            self.nodes[to].handle_line(to_conn, &buf[..buf.len() - 1], self.now);
        }

        /// Carries out actions until every node is quiet.
        fn run(&mut self) {
            for _ in 0..100_000 {
                let mut busy = false;
                for i in 0..self.nodes.len() {
                    while let Some(action) = self.nodes[i].poll_action() {
                        busy = true;
                        self.apply(i, action);
                    }
                }
                if !busy {
                    return;
                }
            }
            panic!("the network never went quiet");
        }

        fn apply(&mut self, i: usize, action: Action) {
            match action {
                Action::Broadcast { except, frame } => {
                    let mut ends: Vec<ConnId> = self
                        .links
                        .keys()
                        .filter(|(n, c)| *n == i && Some(*c) != except)
                        .map(|&(_, c)| c)
                        .collect();
                    ends.sort();
                    for c in ends {
                        self.deliver(i, c, &frame);
                    }
                }
                Action::Send { conn, frame } => self.deliver(i, conn, &frame),
                Action::Show(e) => self.shown[i].push(e),
                Action::Quit => self.quit[i] = true,
                Action::Close { conn, reason } => {
                    self.closed.push((i, conn, reason.clone()));
                    self.cut(i, conn, &reason, "closed");
                }
                Action::Retire { conn } => {
                    self.closed.push((i, conn, "retired".into()));
                    self.cut(i, conn, "retired", "closed");
                }
                Action::Dial(a) => {
                    let target = a.ip().to_string();
                    let to =
                        (0..self.nodes.len()).find(|&j| addr(j, 5000).ip().to_string() == target);
                    match to {
                        Some(j) if self.allow_dials && !self.quit[j] && j != i => {
                            self.link_raw(j, i, Origin::Auto(a))
                        }
                        _ => self.nodes[i].handle_dial_failed(a, self.now),
                    }
                }
                Action::Classify { .. }
                | Action::Connect(_)
                | Action::Tell { .. }
                | Action::Refused { .. } => {}
            }
        }

        fn tick(&mut self, by: Duration) {
            self.now += by;
            for i in 0..self.nodes.len() {
                self.nodes[i].handle_tick(self.now);
            }
            self.run();
        }

        fn say(&mut self, node: usize, text: &str) {
            self.nodes[node].handle_input(text);
            self.run();
        }

        fn messages(&self, node: usize) -> Vec<(String, String)> {
            self.shown[node]
                .iter()
                .filter_map(|e| match e {
                    Event::Message { from, text } => Some((from.clone(), text.clone())),
                    _ => None,
                })
                .collect()
        }

        fn count(&self, node: usize, pred: impl Fn(&Event) -> bool) -> usize {
            self.shown[node].iter().filter(|e| pred(e)).count()
        }

        fn joins_of(&self, node: usize, nick: &str) -> usize {
            self.count(
                node,
                |e| matches!(e, Event::Join { nick: n, .. } if n == nick),
            )
        }

        fn leaves_of(&self, node: usize, nick: &str) -> usize {
            self.count(
                node,
                |e| matches!(e, Event::Leave { nick: n, .. } if n == nick),
            )
        }

        fn clear_shown(&mut self) {
            for s in &mut self.shown {
                s.clear();
            }
        }
    }

    /// Every node but the sender shows each `m{s}-{k}` once, in per-origin order, for the
    /// senders in `live`.
    fn each_live_node_sees_each_once(net: &Net, live: &[usize], count: usize) {
        for &node in live {
            let msgs = net.messages(node);
            let mut want: Vec<(String, String)> = live
                .iter()
                .filter(|&&s| s != node)
                .flat_map(|&s| (0..count).map(move |k| (format!("n{s}"), format!("m{s}-{k}"))))
                .collect();
            let mut got = msgs.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "node {node}");
            for &s in live {
                let from_s: Vec<&String> = msgs
                    .iter()
                    .filter(|(f, _)| *f == format!("n{s}"))
                    .map(|(_, t)| t)
                    .collect();
                let sent: Vec<String> = (0..from_s.len()).map(|k| format!("m{s}-{k}")).collect();
                assert_eq!(from_s, sent.iter().collect::<Vec<_>>(), "order at {node}");
            }
        }
    }

    fn every_node_but_sender_sees_each_once(net: &Net, count: usize) {
        let all: Vec<usize> = (0..net.nodes.len()).collect();
        each_live_node_sees_each_once(net, &all, count);
    }

    fn chat_all(net: &mut Net, live: &[usize], count: usize) {
        for k in 0..count {
            for &s in live {
                net.say(s, &format!("m{s}-{k}"));
            }
        }
    }

    fn star(n: usize) -> Net {
        let mut net = Net::new(n);
        for leaf in 1..n {
            net.link(0, leaf);
        }
        net
    }

    fn chain(n: usize) -> Net {
        let mut net = Net::new(n);
        for i in 0..n - 1 {
            net.link(i, i + 1);
        }
        net
    }

    fn ring(n: usize) -> Net {
        let mut net = chain(n);
        net.link(n - 1, 0);
        net
    }

    /// Each node shows every other node joining exactly once.
    fn joins_once_everywhere(net: &Net) {
        for node in 0..net.nodes.len() {
            for other in (0..net.nodes.len()).filter(|&o| o != node) {
                let nick = format!("n{other}");
                assert_eq!(
                    net.joins_of(node, &nick),
                    1,
                    "{nick} at n{node}: {:?}",
                    net.shown[node]
                );
            }
        }
    }

    #[test]
    fn star_chain_and_ring_relay_every_message_once_in_order() {
        for (name, mut net) in [("star", star(4)), ("chain", chain(4)), ("ring", ring(5))] {
            let all: Vec<usize> = (0..net.nodes.len()).collect();
            chat_all(&mut net, &all, 3);
            every_node_but_sender_sees_each_once(&net, 3);
            joins_once_everywhere(&net);
            assert!(net.closed.is_empty(), "{name}: {:?}", net.closed);
        }
    }

    #[test]
    fn a_node_leaving_and_rejoining_a_chain_ring_or_star() {
        // Node 2 sits in the middle of the chain, on the ring, and is a leaf of the star.
        for (name, mut net) in [("chain", chain(5)), ("ring", ring(5)), ("star", star(4))] {
            let n = net.nodes.len();
            net.say(2, "/quit back soon");
            assert!(net.quit[2]);
            for node in (0..n).filter(|&x| x != 2) {
                assert_eq!(
                    net.leaves_of(node, "n2"),
                    1,
                    "{name} n{node}: {:?}",
                    net.shown[node]
                );
            }
            net.crash(2);
            // In the chain, the two halves are apart now; elsewhere everyone still talks.
            let live: Vec<usize> = (0..n).filter(|&x| x != 2).collect();
            net.clear_shown();
            if name != "chain" {
                chat_all(&mut net, &live, 2);
                each_live_node_sees_each_once(&net, &live, 2);
            }
            // It comes back as a new run and links where it was.
            net.restart(2, 1);
            net.clear_shown();
            match name {
                "chain" => {
                    net.link(1, 2);
                    net.link(2, 3);
                }
                "ring" => {
                    net.link(1, 2);
                    net.link(2, 3);
                }
                _ => net.link(0, 2),
            }
            for node in (0..n).filter(|&x| x != 2) {
                assert_eq!(
                    net.joins_of(node, "n2"),
                    1,
                    "{name} n{node}: {:?}",
                    net.shown[node]
                );
                assert_eq!(net.leaves_of(node, "n2"), 0, "{name} n{node}");
            }
            // The chain's halves met again through it: each side learns of the other once.
            for other in (0..n).filter(|&x| x != 2) {
                assert_eq!(
                    net.joins_of(2, &format!("n{other}")),
                    1,
                    "{name}: {:?}",
                    net.shown[2]
                );
            }
            net.clear_shown();
            let all: Vec<usize> = (0..n).collect();
            chat_all(&mut net, &all, 2);
            every_node_but_sender_sees_each_once(&net, 2);
        }
    }

    #[test]
    fn a_crashed_node_is_shown_leaving_once_even_told_by_several_neighbours() {
        let mut net = ring(5);
        net.crash(2);
        for node in [0, 1, 3, 4] {
            assert_eq!(
                net.leaves_of(node, "n2"),
                1,
                "n{node}: {:?}",
                net.shown[node]
            );
            assert!(net.shown[node].iter().any(|e| matches!(e,
                Event::Leave { nick, reason: Some(r), .. } if nick == "n2" && r == "connection reset")));
        }
    }

    #[test]
    fn neighbours_noticing_a_crash_one_after_the_other_show_one_leave() {
        let mut net = ring(5);
        net.dead[2] = true;
        // n1 notices first; its LEAVE reaches n3 while n3's own link to n2 still looks fine.
        for neighbour in [1, 3] {
            let c = net.conn_of(neighbour, 2);
            net.links.remove(&(neighbour, c));
            net.nodes[neighbour].handle_closed(c, Some("connection reset".into()));
            net.run();
        }
        for node in [0, 1, 3, 4] {
            assert_eq!(
                net.leaves_of(node, "n2"),
                1,
                "n{node}: {:?}",
                net.shown[node]
            );
            assert_eq!(
                net.joins_of(node, "n2"),
                1,
                "n{node}: {:?}",
                net.shown[node]
            );
        }
    }

    #[test]
    fn a_broken_link_between_live_nodes_does_not_leave_them_out() {
        let mut net = ring(4);
        net.nodes[2].handle_opened(7, accepted(addr(9, 4000)), net.now);
        net.nodes[2].handle_line(7, b"a guest of n2", net.now);
        net.run();
        net.unlink(1, 2);
        // n1 and n2 each said the other was lost; n0 and n3, still linked to both, checked
        // with a PING and told everyone they are here.
        for node in 0..4 {
            net.say(node, "/names");
            let names = net.shown[node].iter().rev().find_map(|e| match e {
                Event::Names(n) => Some(n.len()),
                _ => None,
            });
            assert_eq!(names, Some(5), "n{node}: {:?}", net.shown[node]);
        }
        net.clear_shown();
        let all = [0, 1, 2, 3];
        chat_all(&mut net, &all, 2);
        every_node_but_sender_sees_each_once(&net, 2);
    }

    #[test]
    fn two_connections_dialled_by_one_node_whose_hellos_cross_become_one() {
        for dialler in [0, 1] {
            let acceptor = 1 - dialler;
            let mut net = Net::new(2);
            let (a1, d1) = net.open_raw(acceptor, dialler, Origin::Dialled);
            let (a2, d2) = net.open_raw(acceptor, dialler, Origin::Dialled);
            // The acceptor reads the second connection's hello first, the dialler the first's.
            let (h_acc, h_dia) = (net.nodes[acceptor].hello(), net.nodes[dialler].hello());
            net.deliver(dialler, d2, &h_dia);
            net.deliver(dialler, d1, &h_dia);
            net.deliver(acceptor, a1, &h_acc);
            net.deliver(acceptor, a2, &h_acc);
            net.run();
            assert_eq!(net.conns_between(0, 1).len(), 1, "dialler n{dialler}");
            assert_eq!(net.conns_between(1, 0).len(), 1);
            let _ = (a1, a2, d1, d2);
            for node in 0..2 {
                assert_eq!(net.count(node, |e| matches!(e, Event::Leave { .. })), 0);
            }
            chat_all(&mut net, &[0, 1], 2);
            every_node_but_sender_sees_each_once(&net, 2);
        }
    }

    #[test]
    fn a_retired_link_with_no_twin_after_the_hello_wait_is_a_loss() {
        let mut net = chain(2);
        let c = net.conn_of(0, 1);
        // n1 says it closes a duplicate, but no other connection from it ever comes.
        net.nodes[0].handle_line(c, b"CLOSE duplicate connection", net.now);
        net.run();
        assert_eq!(
            net.leaves_of(0, "n1"),
            0,
            "not at once: a twin may be on its way"
        );
        net.tick(HELLO_WAIT_DIALLED);
        assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
    }

    #[test]
    fn a_join_relayed_after_a_crash_does_not_bring_the_member_back() {
        let mut net = star(3);
        // n0's roster exchange for a newcomer was still on its way when n1 crashed.
        let stale = Frame::Join {
            id: MsgId {
                node: node_id(0),
                seq: 999,
            },
            member: MemberId::node(node_id(1)),
            nick: "n1".into(),
            addr: Some("10.0.0.1:5000".into()),
        };
        net.crash(1);
        let c = net.conn_of(0, 2);
        net.deliver(0, c, &stale);
        net.run();
        assert_eq!(net.leaves_of(2, "n1"), 1);
        assert_eq!(net.joins_of(2, "n1"), 1, "{:?}", net.shown[2]);
        // Nor does an old message of its, arriving late.
        let late = Frame::Msg {
            id: MsgId {
                node: node_id(1),
                seq: 77,
            },
            from: MemberId::node(node_id(1)),
            nick: "n1".into(),
            text: "sent before the crash".into(),
        };
        net.deliver(0, c, &late);
        // Nor a guest of it, announced by its own node before the crash.
        let guest = Frame::Join {
            id: MsgId {
                node: node_id(1),
                seq: 78,
            },
            member: MemberId {
                node: node_id(1),
                guest: 1,
            },
            nick: "guest-1".into(),
            addr: None,
        };
        net.deliver(0, c, &guest);
        net.run();
        net.say(2, "/names");
        assert!(net.shown[2]
            .iter()
            .any(|e| matches!(e, Event::Names(n) if n.len() == 2)));
    }

    #[test]
    fn an_auto_dial_that_opens_is_no_longer_counted_as_dialling() {
        let mut net = Net::new(3);
        net.allow_dials = true;
        net.link(0, 1);
        net.link(0, 2);
        for node in 0..3 {
            assert!(net.nodes[node].dialling.is_empty(), "n{node}");
            assert!(!net.nodes[node].is_settling());
        }
        // n2 dialled n1 by itself (peer exchange); n1 quits and a new run comes back at the
        // same address: n2 may dial it again.
        assert!(!net.conns_between(1, 2).is_empty());
        net.say(1, "sair");
        net.crash(1);
        net.restart(1, 1);
        net.link(0, 1);
        assert_eq!(net.conns_between(1, 2).len(), 1, "{:?}", net.shown[2]);
    }

    #[test]
    fn mesh_scans_give_every_port_a_turn_under_the_peer_cap() {
        let (mut chat, now) = mesh_chat(5000, 5000..=5009, 2);
        let mut seen = HashSet::new();
        let mut t = now;
        for _ in 0..10 {
            chat.handle_tick(t);
            for a in drain(&mut chat) {
                if let Action::Dial(addr) = a {
                    seen.insert(addr.port());
                    chat.handle_dial_failed(addr, t);
                }
            }
            t += SCAN_MAX;
        }
        let want: HashSet<u16> = (5001..=5009).collect();
        assert_eq!(seen, want);
    }

    /// A mesh node of 5000-5001 whose first scan dialled 5001, and the link of that dial.
    fn first_scan() -> (Chat, Instant, SocketAddr, Link) {
        let (mut chat, now) = mesh_chat(5000, 5000..=5001, DEFAULT_MAX_PEERS);
        let other = SocketAddr::from(([127, 0, 0, 1], 5001));
        chat.handle_tick(now);
        assert_eq!(drain(&mut chat), vec![Action::Dial(other)]);
        let link = Link {
            addr: other,
            local: SocketAddr::from(([127, 0, 0, 1], 40000)),
            origin: Origin::Auto(other),
        };
        (chat, now, other, link)
    }

    #[test]
    fn a_silent_auto_dial_is_tried_again_and_a_wrong_answer_is_not() {
        let (mut chat, now, other, link) = first_scan();
        chat.handle_opened(3, link, now);
        // Stopped (Ctrl-Z): the kernel accepts, the node says nothing.
        let later = now + HELLO_WAIT_DIALLED;
        chat.handle_tick(later);
        let actions = drain(&mut chat);
        assert!(actions.contains(&Action::Close {
            conn: 3,
            reason: "no hello".into()
        }));
        // Not written off: the next scan (here, the same tick) dials it again.
        assert!(actions.contains(&Action::Dial(other)), "{actions:?}");
        chat.handle_opened(4, link, later);
        chat.handle_line(4, b"SSH-2.0-OpenSSH_9.2", later);
        drain(&mut chat);
        chat.handle_tick(later + SCAN_MAX * 2);
        assert!(drain(&mut chat).is_empty());
    }

    #[test]
    fn a_full_node_is_dialled_again_later_not_written_off() {
        let (mut chat, now, other, link) = first_scan();
        chat.handle_opened(3, link, now);
        chat.handle_line(
            3,
            b"peerchat: this chat is full (8 connections); try again later",
            now,
        );
        let actions = drain(&mut chat);
        assert_eq!(
            actions,
            vec![Action::Close {
                conn: 3,
                reason: "the chat is full".into()
            }]
        );
        // The next scan dials it again (a port that is not peerchat would not be).
        chat.handle_tick(now + SCAN_MAX * 2);
        assert!(drain(&mut chat).contains(&Action::Dial(other)));
    }

    #[test]
    fn peers_lists_are_taken_once_and_loopback_means_the_sender() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
        let from: SocketAddr = "192.168.0.9:41000".parse().unwrap();
        chat.handle_opened(3, accepted(from), now);
        chat.handle_line(
            3,
            b"peerchat/1 hello from bob (node=00000000000000bb listen=5000)",
            now,
        );
        drain(&mut chat);
        chat.handle_line(3, b"PEERS 00000000000000cc@127.0.0.1:5002", now);
        assert_eq!(
            drain(&mut chat),
            vec![Action::Dial("192.168.0.9:5002".parse().unwrap())]
        );
        chat.handle_line(3, b"PEERS 00000000000000dd@10.0.0.4:5000", now);
        assert!(drain(&mut chat).is_empty());
    }

    #[test]
    fn a_peer_back_after_a_lost_link_is_taken_back_by_nodes_beyond() {
        let mut net = chain(3);
        net.unlink(1, 2);
        assert_eq!(net.leaves_of(0, "n2"), 1);
        // The same run of n2 connects again: n0, which only hears of it through n1, takes it
        // back although it had it as lost.
        net.link(1, 2);
        assert_eq!(net.joins_of(0, "n2"), 2, "{:?}", net.shown[0]);
        net.say(2, "back");
        assert_eq!(net.messages(0), vec![("n2".into(), "back".into())]);
    }

    #[test]
    fn lost_and_not_peer_marks_expire() {
        let now = Instant::now();
        let mut r = Recent::new(10, Some(Duration::from_secs(5)));
        assert!(r.insert(1, now));
        assert!(r.contains(&1, now + Duration::from_secs(5)));
        assert!(!r.contains(&1, now + Duration::from_secs(6)));
        // Recorded again later: the old entry's eviction does not take the new one.
        assert!(r.insert(1, now + Duration::from_secs(6)));
        assert!(r.insert(2, now + Duration::from_secs(10)));
        assert!(r.contains(&1, now + Duration::from_secs(10)));
    }

    #[test]
    fn only_the_pong_to_the_checking_ping_confirms_a_peer() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
        for (conn, port, node) in [(3, 41000, "bb"), (4, 41001, "cc")] {
            chat.handle_opened(conn, accepted(SocketAddr::from(([10, 0, 0, 9], port))), now);
            let hello =
                format!("peerchat/1 hello from {node} (node=00000000000000{node} listen=-)");
            chat.handle_line(conn, hello.as_bytes(), now);
        }
        let t = now + DEFAULT_PEER_TIMEOUT / 3;
        chat.handle_tick(t);
        drain(&mut chat);
        // cc says it lost bb; we still have bb: we ask it.
        chat.handle_line(
            4,
            b"LEAVE 00000000000000cc:9 00000000000000bb bb connection reset",
            t,
        );
        assert!(drain(&mut chat).contains(&Action::Send {
            conn: 3,
            frame: Rc::new(Frame::Ping)
        }));
        let here = |a: &Action| matches!(a, Action::Send { frame, .. } if matches!(**frame, Frame::Here { .. }));
        chat.handle_line(3, b"PONG", t);
        assert!(!drain(&mut chat).iter().any(here), "the keepalive's answer");
        chat.handle_line(3, b"PONG", t);
        assert!(drain(&mut chat).iter().any(here), "the check's answer");
    }

    #[test]
    fn a_scan_connection_without_a_hello_is_nobody_to_send_to() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
        let other = SocketAddr::from(([127, 0, 0, 1], 5001));
        let link = Link {
            addr: other,
            local: SocketAddr::from(([127, 0, 0, 1], 40000)),
            origin: Origin::Auto(other),
        };
        chat.handle_opened(3, link, now);
        chat.handle_input("anyone?");
        assert!(!logs_sent(&drain(&mut chat)));
    }

    #[test]
    fn a_flood_of_joins_under_one_nick_is_capped() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
        chat.handle_opened(3, accepted("10.0.0.2:40000".parse().unwrap()), now);
        chat.handle_line(
            3,
            b"peerchat/1 hello from bob (node=00000000000000bb listen=5000)",
            now,
        );
        for i in 0..20_000u64 {
            let line = format!("JOIN 00000000000000bb:{i} {:016x} eve -", 0x1000 + i);
            chat.handle_line(3, line.as_bytes(), now);
        }
        let shown = drain(&mut chat)
            .iter()
            .filter(
                |a| matches!(a, Action::Show(Event::Join { nick, .. }) if nick.starts_with("eve")),
            )
            .count();
        assert_eq!(shown, MAX_SAME_NICK);
        assert_eq!(chat.by_nick["eve"].len(), MAX_SAME_NICK);
    }

    #[test]
    fn nothing_is_logged_as_sent_when_nobody_is_connected() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
        chat.handle_input("into the void");
        assert!(!logs_sent(&drain(&mut chat)));
    }

    #[test]
    fn a_guest_of_a_crashed_node_leaves_with_it() {
        let mut net = chain(3);
        net.nodes[2].handle_opened(7, accepted(addr(9, 4000)), net.now);
        net.nodes[2].handle_line(7, b"oi from nc", net.now);
        net.run();
        assert_eq!(
            net.messages(0),
            vec![("guest-1".into(), "oi from nc".into())]
        );
        net.crash(2);
        assert_eq!(net.leaves_of(0, "guest-1"), 1, "{:?}", net.shown[0]);
        assert_eq!(net.leaves_of(0, "n2"), 1);
    }

    #[test]
    fn joins_are_shown_with_the_listening_address() {
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(0, 2);
        // Accepted from an ephemeral port, but shown where it listens (hello port).
        assert!(net.shown[0].contains(&Event::Join {
            nick: "n1".into(),
            addr: Some("10.0.0.1:5000".into())
        }));
        // n1 hears of n2 through the hub, with the address the hub knows.
        assert!(net.shown[1].contains(&Event::Join {
            nick: "n2".into(),
            addr: Some("10.0.0.2:5000".into())
        }));
    }

    #[test]
    fn a_peer_that_quits_is_shown_leaving_once_everywhere() {
        let mut net = star(3);
        net.say(1, "/quit bye all");
        assert!(net.quit[1]);
        net.unlink(0, 1);
        for node in [0, 2] {
            let leaves: Vec<&Event> = net.shown[node]
                .iter()
                .filter(|e| matches!(e, Event::Leave { .. }))
                .collect();
            assert_eq!(leaves.len(), 1, "node {node}: {leaves:?}");
            assert!(
                matches!(leaves[0], Event::Leave { nick, reason: Some(r), .. }
                if nick == "n1" && r == "bye all")
            );
        }
        assert!(matches!(
            net.shown[0].iter().find(|e| matches!(e, Event::Leave { .. })),
            Some(Event::Leave { addr: Some(a), .. }) if a == "10.0.0.1:5000"
        ));
    }

    #[test]
    fn nothing_is_taken_from_a_peer_after_its_own_leave() {
        let mut net = star(3);
        net.say(1, "sair");
        // n1 keeps talking on the same connection after saying goodbye.
        net.nodes[1].quitting = false;
        net.say(1, "ghost message");
        assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
    }

    #[test]
    fn two_connections_between_the_same_nodes_become_one() {
        for second_dialler in [0, 1] {
            let mut net = Net::new(3);
            net.link(0, 1);
            net.link(1, 2);
            // The other direction too, as two mesh nodes scanning each other at once would.
            let other = 1 - second_dialler;
            net.link(other, second_dialler);
            assert_eq!(net.conns_between(0, 1).len(), 1, "{:?}", net.closed);
            for node in 0..3 {
                assert_eq!(net.count(node, |e| matches!(e, Event::Leave { .. })), 0);
            }
            joins_once_everywhere(&net);
            let all = [0, 1, 2];
            chat_all(&mut net, &all, 2);
            every_node_but_sender_sees_each_once(&net, 2);
        }
    }

    #[test]
    fn peer_exchange_connects_a_newcomer_to_the_rest() {
        let mut net = Net::new(4);
        net.allow_dials = true;
        net.link(0, 1);
        net.link(0, 2);
        net.link(0, 3);
        // Each newcomer was told where the hub's other peers listen and dialled them.
        for a in 0..4 {
            for b in (0..4).filter(|&b| b != a) {
                assert_eq!(net.conns_between(a, b).len(), 1, "n{a}-n{b}");
            }
        }
        joins_once_everywhere(&net);
        // Now the hub can go and the others still talk directly.
        net.crash(0);
        net.clear_shown();
        chat_all(&mut net, &[1, 2, 3], 1);
        each_live_node_sees_each_once(&net, &[1, 2, 3], 1);
    }

    #[test]
    fn peer_exchange_stops_at_max_peers() {
        let mut net = Net::new(5);
        net.allow_dials = true;
        net.nodes[4].cfg.max_peers = 2;
        for leaf in 1..4 {
            net.link(0, leaf);
        }
        net.link(0, 4);
        let peers_of_4 = (0..4)
            .filter(|&b| !net.conns_between(4, b).is_empty())
            .count();
        assert_eq!(peers_of_4, 2);
        // The rest is reached by relay.
        net.say(3, "far away");
        assert_eq!(net.messages(4), vec![("n3".into(), "far away".into())]);
    }

    #[test]
    fn an_idle_peer_is_pinged_and_a_silent_one_times_out() {
        let mut net = chain(3);
        let timeout = DEFAULT_PEER_TIMEOUT;
        net.tick(timeout / 3);
        assert!(
            net.sent.get("PING").copied().unwrap_or(0) >= 2,
            "{:?}",
            net.sent
        );
        assert!(
            net.sent.get("PONG").copied().unwrap_or(0) >= 2,
            "{:?}",
            net.sent
        );
        net.tick(timeout / 3);
        net.tick(timeout / 3);
        assert!(
            net.closed.is_empty(),
            "answered pings keep links up: {:?}",
            net.closed
        );
        // The link 1-2 goes dead without a close (a cable pulled): nothing arrives any more.
        let (c1, c2) = (net.conn_of(1, 2), net.conn_of(2, 1));
        net.links.remove(&(1, c1));
        net.links.remove(&(2, c2));
        for _ in 0..4 {
            net.tick(timeout / 3);
        }
        assert!(net.shown[1].iter().any(|e| matches!(e,
            Event::Leave { nick, reason: Some(r), .. } if nick == "n2" && r == "timed out")));
        assert_eq!(net.leaves_of(0, "n2"), 1, "{:?}", net.shown[0]);
    }

    #[test]
    fn a_dropped_peer_is_dialled_again_with_backoff() {
        let mut net = chain(2);
        net.unlink(0, 1);
        let mut dials = Vec::new();
        for _ in 0..40 {
            net.now += Duration::from_millis(500);
            for i in 0..2 {
                net.nodes[i].handle_tick(net.now);
                while let Some(a) = net.nodes[i].poll_action() {
                    if let Action::Dial(to) = a {
                        dials.push((i, to, net.now));
                        net.nodes[i].handle_dial_failed(to, net.now);
                    }
                }
            }
        }
        // Node 1 accepted nothing but knows where n0 listens (and n0 where n1 does).
        let of0: Vec<Instant> = dials.iter().filter(|d| d.0 == 0).map(|d| d.2).collect();
        assert!(of0.len() >= 3, "{dials:?}");
        let gaps: Vec<Duration> = of0.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.windows(2).all(|g| g[1] >= g[0]),
            "backoff grows: {gaps:?}"
        );
        assert!(dials.iter().all(|d| d.1.port() == 5000));
    }

    #[test]
    fn mesh_mode_scans_its_range_but_not_itself() {
        let (mut chat, now) = mesh_chat(5001, 5000..=5004, DEFAULT_MAX_PEERS);
        chat.handle_tick(now);
        let dials: Vec<u16> = drain(&mut chat)
            .into_iter()
            .filter_map(|a| match a {
                Action::Dial(addr) => Some(addr.port()),
                _ => None,
            })
            .collect();
        assert_eq!(dials, vec![5000, 5002, 5003, 5004]);
        // Nothing is dialled twice while dialling; the failures are tried again later.
        chat.handle_tick(now + SCAN_FIRST);
        assert!(drain(&mut chat).is_empty());
        for port in [5000, 5002, 5003, 5004] {
            chat.handle_dial_failed(SocketAddr::from(([127, 0, 0, 1], port)), now);
        }
        chat.handle_tick(now + SCAN_FIRST + SCAN_FIRST * 2);
        assert_eq!(drain(&mut chat).len(), 4);
    }

    #[test]
    fn something_else_on_a_scanned_port_is_not_taken_for_a_guest() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, Some(5001)), now);
        let web = SocketAddr::from(([127, 0, 0, 1], 5000));
        chat.dialling.insert(web);
        chat.handle_opened(
            3,
            Link {
                addr: web,
                local: SocketAddr::from(([127, 0, 0, 1], 40000)),
                origin: Origin::Auto(web),
            },
            now,
        );
        chat.handle_line(3, b"HTTP/1.1 400 Bad Request", now);
        let actions = drain(&mut chat);
        assert!(
            matches!(&actions[..], [Action::Close { conn: 3, .. }]),
            "{actions:?}"
        );
        assert!(chat.not_peers.contains(&web, now));
        assert!(!chat.dial(web));
    }

    #[test]
    fn direct_messages_reach_only_their_target() {
        let mut net = chain(4);
        net.say(0, "/msg n3 psst");
        assert!(net.shown[3].contains(&Event::Dm {
            from: "n0".into(),
            to: "n3".into(),
            text: "psst".into()
        }));
        assert!(net.shown[0].contains(&Event::Dm {
            from: "n0".into(),
            to: "n3".into(),
            text: "psst".into()
        }));
        for node in [1, 2] {
            assert!(
                !net.shown[node]
                    .iter()
                    .any(|e| format!("{e:?}").contains("psst")),
                "n{node}"
            );
        }
        net.say(0, "/msg nobody hi");
        assert!(net.shown[0]
            .iter()
            .any(|e| matches!(e, Event::Error(t) if t.contains("nobody"))));
        net.say(0, "/msg n0 me");
        net.say(0, "/msg n3");
        assert_eq!(net.count(0, |e| matches!(e, Event::Error(_))), 3);
    }

    #[test]
    fn a_dm_to_a_guest_goes_to_its_connection_only() {
        let mut net = chain(2);
        net.nodes[1].handle_opened(7, accepted(addr(9, 4000)), net.now);
        net.nodes[1].handle_line(7, b"hello from nc", net.now);
        net.run();
        net.nodes[0].handle_input("/msg guest-1 just for you");
        let mut sent_to_guest = false;
        // Carry out by hand to see what node 1 does with it.
        while let Some(a) = net.nodes[0].poll_action() {
            net.apply(0, a);
        }
        while let Some(a) = net.nodes[1].poll_action() {
            if let Action::Send { conn: 7, frame } = &a {
                let mut buf = Vec::new();
                assert!(protocol::encode_guest_direct(frame, &mut buf));
                assert_eq!(buf, b"[dm] <n0> just for you\n");
                sent_to_guest = true;
            }
            assert!(
                !matches!(a, Action::Broadcast { ref frame, .. } if matches!(**frame, Frame::Dm { .. }))
            );
        }
        assert!(sent_to_guest);
    }

    #[test]
    fn nick_changes_are_announced_and_checked() {
        let mut net = chain(3);
        net.say(0, "/nick ana");
        for node in [1, 2] {
            assert!(net.shown[node].contains(&Event::Nick {
                old: "n0".into(),
                nick: "ana".into()
            }));
        }
        net.say(0, "hi");
        assert_eq!(net.messages(2), vec![("ana".into(), "hi".into())]);
        net.say(0, "/nick bad name");
        assert!(net.shown[0].iter().any(|e| matches!(e, Event::Error(_))));
        assert_eq!(
            net.nodes[0].hello(),
            Frame::Hello(Hello {
                nick: "ana".into(),
                node: node_id(0),
                listen: Some(5000)
            })
        );
        net.say(2, "/msg ana to ana");
        assert!(net.shown[0]
            .iter()
            .any(|e| matches!(e, Event::Dm { text, .. } if text == "to ana")));
    }

    #[test]
    fn me_and_names() {
        let mut net = star(3);
        net.say(1, "/me waves");
        assert!(net.shown[2].contains(&Event::Me {
            from: "n1".into(),
            text: "waves".into()
        }));
        net.say(2, "/names");
        let names = net.shown[2].iter().find_map(|e| match e {
            Event::Names(n) => Some(n.clone()),
            _ => None,
        });
        let names = names.expect("names shown");
        let nicks: Vec<&str> = names.iter().map(|n| n.nick.as_str()).collect();
        assert_eq!(nicks, vec!["n0", "n1", "n2"]);
        assert!(names[2].you && !names[0].you);
        assert_eq!(names[0].addr.as_deref(), Some("10.0.0.0:5000"));
    }

    #[test]
    fn the_same_nick_twice_is_told_apart_the_same_way_everywhere() {
        let mut net = Net::new(3);
        net.nodes[2] = Chat::new(Config::new("n1".into(), node_id(2), Some(5000)), net.now);
        net.link(0, 1);
        net.link(0, 2);
        net.say(1, "from one");
        net.say(2, "from two");
        let got = net.messages(0);
        assert_eq!(
            got,
            vec![
                ("n1#0200".into(), "from one".into()),
                ("n1#0300".into(), "from two".into())
            ]
        );
        net.say(0, "/msg n1 which?");
        assert!(net.shown[0]
            .iter()
            .any(|e| matches!(e, Event::Error(t) if t.contains("ambiguous"))));
        net.say(0, "/msg n1#0300 you");
        assert!(net.shown[2]
            .iter()
            .any(|e| matches!(e, Event::Dm { text, .. } if text == "you")));
        assert!(!net.shown[1].iter().any(|e| matches!(e, Event::Dm { .. })));
    }

    #[test]
    fn quit_words_in_any_case_and_trimmed() {
        for word in ["sair", " SAIR ", "/quit", "/Exit", "/quit going home"] {
            let mut net = chain(2);
            net.say(0, word);
            assert!(net.quit[0], "{word:?}");
        }
        let mut net = chain(2);
        net.say(0, "sair agora");
        assert!(!net.quit[0]);
        assert_eq!(net.messages(1), vec![("n0".into(), "sair agora".into())]);
    }

    #[test]
    fn commands_are_not_sent_and_double_slash_escapes() {
        let mut net = chain(2);
        net.say(0, "/bogus x");
        net.say(0, "/help");
        net.say(0, "//etc/passwd is a path");
        net.say(0, "   ");
        assert_eq!(
            net.messages(1),
            vec![("n0".into(), "/etc/passwd is a path".into())]
        );
        assert!(net.shown[0]
            .iter()
            .any(|e| matches!(e, Event::Error(t) if t.contains("/bogus"))));
        assert_eq!(
            net.shown[0]
                .iter()
                .filter(|e| matches!(e, Event::Sent(_)))
                .count(),
            1
        );
    }

    #[test]
    fn a_long_line_is_split_not_cut() {
        let mut net = chain(2);
        let long = "é".repeat(MAX_TEXT);
        net.say(0, &long);
        let got: String = net.messages(1).into_iter().map(|(_, t)| t).collect();
        assert_eq!(got, long);
        assert_eq!(net.messages(1).len(), 2);
    }

    fn guest_chat() -> (Chat, Instant) {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("hub".into(), 1, Some(5000)), now);
        chat.handle_opened(7, accepted("127.0.0.1:4000".parse().unwrap()), now);
        chat.handle_opened(8, accepted("127.0.0.1:4001".parse().unwrap()), now);
        (chat, now)
    }

    /// A mesh node listening on `listen` of 127.0.0.1's `ports`.
    fn mesh_chat(listen: u16, ports: RangeInclusive<u16>, max_peers: usize) -> (Chat, Instant) {
        let now = Instant::now();
        let mut cfg = Config::new("me".into(), 1, Some(listen));
        cfg.max_peers = max_peers;
        cfg.mesh = Some(Mesh {
            host: [127, 0, 0, 1].into(),
            ports,
        });
        (Chat::new(cfg, now), now)
    }

    /// True if `actions` record a line as sent.
    fn logs_sent(actions: &[Action]) -> bool {
        actions
            .iter()
            .any(|a| matches!(a, Action::Show(Event::Sent(_))))
    }

    fn drain(chat: &mut Chat) -> Vec<Action> {
        std::iter::from_fn(|| chat.poll_action()).collect()
    }

    #[test]
    fn a_first_line_that_is_not_a_hello_makes_a_guest() {
        let (mut chat, now) = guest_chat();
        chat.handle_line(7, "bob: oi ".as_bytes(), now);
        let actions = drain(&mut chat);
        assert_eq!(
            actions[0],
            Action::Classify {
                conn: 7,
                role: Role::Guest
            }
        );
        assert!(actions.contains(&Action::Show(Event::Message {
            from: "guest-1".into(),
            text: "bob: oi ".into()
        })));
        assert!(
            actions.iter().any(|a| matches!(a,
            Action::Broadcast { except: Some(7), frame } if matches!(&**frame, Frame::Msg { .. })))
        );
    }

    /// Counts what a guest's lines turned into: messages sent on, and what it was told.
    fn sent_and_told(actions: &[Action]) -> (usize, Vec<String>) {
        let sent = actions
            .iter()
            .filter(|a| matches!(a, Action::Broadcast { frame, .. } if matches!(**frame, Frame::Msg { .. })))
            .count();
        let told = actions
            .iter()
            .filter_map(|a| match a {
                Action::Tell { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect();
        (sent, told)
    }

    #[test]
    fn a_flooding_guest_is_limited_told_and_then_cut_off() {
        let (mut chat, start) = guest_chat();
        chat.handle_line(7, b"hello", start);
        drain(&mut chat);
        // A burst: ten seconds' worth (200) go through, less the one above; the rest are not
        // sent, and the guest is told at once.
        for i in 0..300 {
            chat.handle_line(7, format!("line {i}").as_bytes(), start);
        }
        let (sent, told) = sent_and_told(&drain(&mut chat));
        assert_eq!(sent, 199);
        assert_eq!(
            told,
            vec!["peerchat: slow down: 1 line(s) not sent (at most 20 a second)".to_string()]
        );
        // Then 20 a second: a steady 40 a second for 9 s is half dropped, told once a second,
        // and not cut off yet.
        let mut now = start;
        let mut sent_total = 0;
        let mut told_total = Vec::new();
        for tick in 1..=360 {
            now = start + Duration::from_millis(25 * tick);
            chat.handle_line(7, b"more", now);
            let (sent, told) = sent_and_told(&drain(&mut chat));
            sent_total += sent;
            told_total.extend(told);
        }
        assert!((179..=181).contains(&sent_total), "{sent_total}");
        // Once a second: the 100 of the burst and those of the first second, then 20 each.
        assert!((8..=9).contains(&told_total.len()), "{told_total:?}");
        assert!(told_total[0].contains("121 line(s)"), "{told_total:?}");
        assert!(told_total[1..].iter().all(|t| t.contains(" 20 line(s)")));
        // Ten seconds of flooding: cut off, and everyone told why.
        for tick in 361..=440 {
            now = start + Duration::from_millis(25 * tick);
            chat.handle_line(7, b"more", now);
        }
        let actions = drain(&mut chat);
        assert!(actions.contains(&Action::Close {
            conn: 7,
            reason: "flooding".into()
        }));
        assert!(actions.iter().any(|a| matches!(a,
            Action::Broadcast { frame, .. }
                if matches!(&**frame, Frame::Leave { reason: Some(r), .. } if r == "flooding"))));
        // The other guest, and a guest that pauses, are not affected.
        chat.handle_line(8, b"hi", now);
        assert_eq!(sent_and_told(&drain(&mut chat)).0, 1);
    }

    #[test]
    fn no_rate_limit_when_turned_off() {
        let now = Instant::now();
        let mut cfg = Config::new("hub".into(), 1, Some(5000));
        cfg.guest_rate = None;
        let mut chat = Chat::new(cfg, now);
        chat.handle_opened(7, accepted("127.0.0.1:4000".parse().unwrap()), now);
        for i in 0..5000 {
            chat.handle_line(7, format!("line {i}").as_bytes(), now);
        }
        let (sent, told) = sent_and_told(&drain(&mut chat));
        assert_eq!((sent, told.len()), (5000, 0));
    }

    #[test]
    fn a_silent_connection_becomes_a_guest_after_the_hello_wait() {
        let (mut chat, now) = guest_chat();
        assert_eq!(chat.next_deadline(), Some(now + HELLO_WAIT));
        chat.handle_tick(now + HELLO_WAIT / 2);
        assert!(drain(&mut chat).is_empty());
        chat.handle_tick(now + HELLO_WAIT);
        let actions = drain(&mut chat);
        assert!(actions.contains(&Action::Classify {
            conn: 7,
            role: Role::Guest
        }));
        assert!(actions.contains(&Action::Classify {
            conn: 8,
            role: Role::Guest
        }));
        assert_eq!(chat.next_deadline(), None);
    }

    #[test]
    fn a_malformed_frame_closes_only_that_peer() {
        let mut net = star(3);
        let c = net.conn_of(0, 1);
        net.nodes[0].handle_line(c, b"MSG nonsense", net.now);
        // Whatever the same peer sent after the bad frame is not taken.
        let sneaky = format!(
            "MSG {:016x}:99 {:016x} n1 sneaked in",
            node_id(1),
            node_id(1)
        );
        net.nodes[0].handle_line(c, sneaky.as_bytes(), net.now);
        net.run();
        assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
        assert!(
            net.shown[2].iter().any(|e| matches!(e,
            Event::Leave { nick, reason: Some(r), .. } if nick == "n1" && r.contains("malformed")))
        );
        assert_eq!(net.closed.len(), 1);
        assert_eq!((net.closed[0].0, net.closed[0].1), (0, c));
        net.say(2, "still here");
        assert_eq!(net.messages(0), vec![("n2".into(), "still here".into())]);
    }

    #[test]
    fn a_node_that_reaches_itself_closes_that_connection() {
        let (mut chat, now) = guest_chat();
        let mut hello = Vec::new();
        protocol::encode(&chat.hello(), &mut hello);
        chat.handle_line(7, &hello[..hello.len() - 1], now);
        assert!(matches!(
            &drain(&mut chat)[..],
            [Action::Close { conn: 7, .. }]
        ));
    }

    #[test]
    fn the_seen_set_is_bounded_by_count_and_age() {
        let now = Instant::now();
        let mut seen = Recent::new(SEEN_CAP, Some(SEEN_AGE));
        for seq in 0..(SEEN_CAP as u64 + 10) {
            assert!(seen.insert(MsgId { node: 1, seq }, now));
        }
        assert_eq!(seen.map.len(), SEEN_CAP);
        let last = MsgId {
            node: 1,
            seq: SEEN_CAP as u64,
        };
        assert!(!seen.insert(last, now));
        // Past the age, old ids are forgotten as new ones come.
        assert!(seen.insert(MsgId { node: 2, seq: 0 }, now + SEEN_AGE * 2));
        assert_eq!(seen.map.len(), 1);
    }

    #[test]
    fn a_dialled_connection_waits_longer_for_the_hello() {
        let now = Instant::now();
        let mut chat = Chat::new(Config::new("me".into(), 1, None), now);
        chat.handle_opened(
            3,
            Link {
                origin: Origin::Dialled,
                ..accepted("10.0.0.9:5000".parse().unwrap())
            },
            now,
        );
        assert_eq!(chat.next_deadline(), Some(now + HELLO_WAIT_DIALLED));
        chat.handle_tick(now + HELLO_WAIT);
        assert!(drain(&mut chat).is_empty());
    }

    #[test]
    fn a_late_hello_turns_a_silent_guest_into_the_peer() {
        let (mut chat, now) = guest_chat();
        chat.handle_tick(now + HELLO_WAIT);
        drain(&mut chat);
        chat.handle_line(
            7,
            b"peerchat/1 hello from bob (node=00000000000000bb listen=-)",
            now,
        );
        let actions = drain(&mut chat);
        assert!(actions.contains(&Action::Show(Event::Leave {
            nick: "guest-1".into(),
            addr: Some("127.0.0.1:4000".into()),
            reason: Some("it is bob, a peerchat node".into()),
        })));
        assert!(actions.contains(&Action::Classify {
            conn: 7,
            role: Role::Peer
        }));
        assert!(actions.contains(&Action::Show(Event::Join {
            nick: "bob".into(),
            addr: Some("127.0.0.1:4000".into()),
        })));
        // From now on it speaks frames.
        chat.handle_line(
            7,
            b"MSG 00000000000000bb:1 00000000000000bb bob late but here",
            now,
        );
        assert!(drain(&mut chat).contains(&Action::Show(Event::Message {
            from: "bob".into(),
            text: "late but here".into()
        })));
        // A guest that has typed is a guest for good: a hello later is just text.
        chat.handle_line(8, b"hi", now);
        chat.handle_line(
            8,
            b"peerchat/1 hello from eve (node=00000000000000ee listen=-)",
            now,
        );
        assert!(drain(&mut chat).iter().all(|a| !matches!(
            a,
            Action::Classify {
                role: Role::Peer,
                ..
            }
        )));
    }

    #[test]
    fn guest_text_from_a_peer_that_took_us_for_a_guest_is_ignored() {
        let mut net = chain(2);
        let c = net.conn_of(0, 1);
        net.nodes[0].handle_line(c, b"<n1> sent before my hello arrived", net.now);
        net.nodes[0].handle_line(c, b"* n1 joined", net.now);
        net.run();
        assert!(net.closed.is_empty());
        assert!(net.messages(0).is_empty());
        net.say(1, "after");
        assert_eq!(net.messages(0), vec![("n1".into(), "after".into())]);
    }
}
