//! The event loop: one `mio::Poll` over the listener, every connection and the stdin waker.
//! Turns readiness into calls on the chat, carries out the chat's actions on the connections,
//! and writes each dirty connection once per loop turn.
//!
//! Must not hold chat rules (those are in `chat`) or wire details (in `protocol`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::chat::{self, Action, Chat, ConnId, Link, Mesh, Origin};
use crate::conn::{Conn, PartialLine, Phase, ReadStatus, MAX_BACKLOG, STALL_LIMIT};
use crate::event::{Event, Role};
use crate::eventlog::{EventLog, Tag};
use crate::fanout::{side, Log};
use crate::input::{self, Input};
use crate::limits;
use crate::output::Output;
use crate::protocol::{self, Frame, NodeId};
use crate::signals::{self, Signals};

const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);

/// A dial that has not connected by then has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// After the user leaves, how long queued output may take to reach the peers.
const QUIT_GRACE: Duration = Duration::from_secs(3);

/// Mesh mode: how long typed or piped input may wait at start-up for the first scan.
const INPUT_HOLD: Duration = Duration::from_secs(3);

/// How long a duplicate connection being retired may take to deliver what is queued for it.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// Reads from one connection per readiness before the others get a turn: a flooding sender
/// cannot starve the rest of the loop.
const READ_BUDGET: usize = 4;

/// Typed or piped input taken per loop turn, at most, before connections are written.
const INPUT_BUDGET_LINES: usize = 1024;
const INPUT_BUDGET_BYTES: usize = 256 * 1024;

/// Lines taken off the stdin channel while input waits, so that a typed `/quit` behind them is
/// seen at once.
const INPUT_QUEUE: usize = 1024;

/// How long a reader may stay behind while the user is waiting to leave.
const URGENT_STALL_LIMIT: Duration = Duration::from_secs(1);

/// Backpressure: while a connection that is behind has written something this recently, reads
/// from every connection wait, so a fast sender is slowed to what slow readers take instead of
/// their falling further behind. One that has not moved for this long is stalled and holds no
/// one up (it is cut off by the backlog caps instead).
const PROGRESS_WINDOW: Duration = Duration::from_millis(200);

/// How often reads held back by backpressure look again.
const HOLD_RECHECK: Duration = Duration::from_millis(20);

/// Accepting again after running out of file descriptors: first wait, and the most.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A peer to dial: as the user wrote it, and every address it resolved to, tried in order
/// (a name may resolve to an IPv6 address first while the peer listens on IPv4 only).
#[derive(Clone, Debug)]
pub struct Dial {
    pub label: String,
    pub addrs: Vec<SocketAddr>,
}

/// Where to listen.
#[derive(Clone, Debug)]
pub enum Listen {
    None,
    Addr(SocketAddr),
    /// Mesh mode: the first free port of the range on `host`.
    Range(Mesh),
}

/// What the reactor is started with.
pub struct Setup {
    pub nick: String,
    pub listen: Listen,
    pub dials: Vec<Dial>,
    /// Keep running after stdin ends.
    pub keep_open: bool,
    pub max_peers: usize,
    pub peer_timeout: Duration,
    pub log: Option<EventLog>,
    /// A connection with more unsent output than this is closed as too slow.
    pub max_backlog: usize,
    /// A connection past a quarter of `max_backlog` for this long is closed as too slow.
    pub slow_timeout: Duration,
    /// Connections at once, at most: more are told the chat is full and closed.
    pub max_conns: usize,
    /// Flood control for guests.
    pub guest_rate: Option<chat::RateLimit>,
}

impl Setup {
    /// A node that neither listens nor dials yet, with the default limits.
    pub fn new(nick: String) -> Setup {
        Setup {
            nick,
            listen: Listen::None,
            dials: Vec::new(),
            keep_open: false,
            max_peers: chat::DEFAULT_MAX_PEERS,
            peer_timeout: chat::DEFAULT_PEER_TIMEOUT,
            log: None,
            max_backlog: MAX_BACKLOG,
            slow_timeout: STALL_LIMIT,
            max_conns: usize::MAX,
            guest_rate: Some(chat::RateLimit::per_second(chat::DEFAULT_GUEST_RATE)),
        }
    }
}

/// Binds the first port of `mesh`'s range that is free; the error names the range.
fn bind_range(mesh: &Mesh) -> Result<TcpListener, String> {
    let (first, last) = (mesh.ports.start(), mesh.ports.end());
    for port in mesh.ports.clone() {
        match TcpListener::bind(SocketAddr::new(mesh.host, port)) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                return Err(format!(
                    "cannot listen on {}: {}",
                    SocketAddr::new(mesh.host, port),
                    describe(&e)
                ))
            }
        }
    }
    Err(format!(
        "every port of {first}-{last} on {} is busy",
        mesh.host
    ))
}

/// A short, lower-case description of an IO error, for one-line messages.
pub fn describe(e: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = match e.kind() {
        AddrInUse => "address in use",
        AddrNotAvailable => "address not available",
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "connection broken",
        PermissionDenied => "permission denied",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        _ => {
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s);
            let mut c = s.chars();
            return match c.next() {
                Some(first) => first.to_lowercase().chain(c).collect(),
                None => s.to_string(),
            };
        }
    };
    text.to_string()
}

/// A random identity for this run of the node.
fn new_node_id() -> NodeId {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// True for accept errors that mean "out of resources for now": file descriptors (EMFILE,
/// ENFILE) or kernel memory (ENOBUFS, ENOMEM). Accepting again later may work.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

struct Entry {
    stream: TcpStream,
    conn: Conn,
    /// While dialling: the addresses still to try if this one fails.
    next_addrs: Vec<SocketAddr>,
    /// How it was opened; for [`Origin::Auto`] dials, the address the chat asked for.
    origin: Origin,
    target: Option<SocketAddr>,
}

/// The running node.
pub struct Reactor<W: Write> {
    poll: Poll,
    listener: Option<TcpListener>,
    accept_paused_until: Option<Instant>,
    accept_backoff: Duration,
    conns: Slab<Entry>,
    /// Broadcast frames, encoded once and shared by every connection.
    shared: Log,
    /// Something was appended to the log since the connections were last written.
    log_grew: bool,
    /// Connections by role: peers, guests, not known yet (which format the log must hold).
    roles: [usize; 3],
    /// Past this much unsent output a connection is "behind": local input waits for it, and
    /// if it stays behind for `stall_limit` it is closed.
    high_water: usize,
    max_backlog: usize,
    stall_limit: Duration,
    max_conns: usize,
    /// Refusing connections (the chat is full) was said, and nobody has left since.
    told_full: bool,
    dirty: Vec<usize>,
    /// Connections whose read budget ran out before they would block: read again next turn.
    unread: Vec<usize>,
    /// How many connections are past `high_water`; local input waits while any is.
    behind: usize,
    /// Backpressure this loop turn (see [`PROGRESS_WINDOW`]): reads wait on the `unread` list.
    hold_reads: bool,
    /// Until when the last backpressure verdict holds.
    hold_checked: Option<(Instant, bool)>,
    /// Input is waiting (queued here, or left in the channel) that this turn did not take.
    input_more: bool,
    /// A leave command waits among the queued lines: a stalled reader holding them up gets
    /// [`URGENT_STALL_LIMIT`] instead of `stall_limit`.
    input_urgent: bool,
    /// Lines taken off the channel but not yet given to the chat.
    queued: std::collections::VecDeque<Input>,
    /// Connections that closed with output for them still unsent, when that output was the
    /// last chance to deliver it (while leaving, or the last connection of a node that does not
    /// listen): the run then ends with an error.
    undelivered: usize,
    /// "nobody is connected" was shown and nobody has connected since.
    told_nobody: bool,
    chat: Chat,
    out: Output<W>,
    log: Option<EventLog>,
    out_broken: bool,
    input: Option<Receiver<Input>>,
    keep_open: bool,
    quit_deadline: Option<Instant>,
    /// Mesh mode at start-up: typed or piped input waits for the first scan's dials, until
    /// then at the latest.
    input_hold: Option<Instant>,
    fatal: Option<String>,
    node: NodeId,
    signals: Option<Signals>,
    /// The signal that made us leave.
    signal: Option<i32>,
}

/// How a run ended, short of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The user left, input ended, or nobody was left.
    Done,
    /// This signal made it leave (exit code 128 + its number).
    Signal(i32),
}

impl<W: Write> Reactor<W> {
    /// Binds the listener and starts the dials. Errors are one-line messages for the user.
    pub fn new(setup: Setup, out: Output<W>) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot start the event loop: {e}"))?;
        let mut listener = None;
        let mut listen_port = None;
        let mut mesh = None;
        let bound = match setup.listen {
            Listen::None => None,
            Listen::Addr(addr) => Some(
                TcpListener::bind(addr)
                    .map_err(|e| format!("cannot listen on {addr}: {}", describe(&e)))?,
            ),
            Listen::Range(m) => {
                let l = bind_range(&m)?;
                mesh = Some(m);
                Some(l)
            }
        };
        if let Some(mut l) = bound {
            poll.registry()
                .register(&mut l, LISTENER, Interest::READABLE)
                .map_err(|e| format!("cannot listen: {}", describe(&e)))?;
            listen_port = l.local_addr().ok().map(|a| a.port());
            listener = Some(l);
        }
        let node = new_node_id();
        let mut cfg = chat::Config::new(setup.nick, node, listen_port);
        cfg.mesh = mesh;
        cfg.max_peers = setup.max_peers;
        cfg.peer_timeout = setup.peer_timeout;
        cfg.guest_rate = setup.guest_rate;
        let chat = Chat::new(cfg, Instant::now());
        let mut reactor = Reactor {
            poll,
            listener,
            accept_paused_until: None,
            accept_backoff: ACCEPT_BACKOFF_MIN,
            conns: Slab::new(),
            shared: Log::new(),
            log_grew: false,
            roles: [0; 3],
            high_water: (setup.max_backlog / 4).max(1),
            max_backlog: setup.max_backlog,
            stall_limit: setup.slow_timeout,
            max_conns: setup.max_conns,
            told_full: false,
            dirty: Vec::new(),
            unread: Vec::new(),
            behind: 0,
            hold_reads: false,
            hold_checked: None,
            input_more: false,
            queued: std::collections::VecDeque::new(),
            input_urgent: false,
            undelivered: 0,
            told_nobody: false,
            chat,
            out,
            log: setup.log,
            out_broken: false,
            input: None,
            keep_open: setup.keep_open,
            quit_deadline: None,
            input_hold: None,
            fatal: None,
            node,
            signals: None,
            signal: None,
        };
        if let Some(addr) = reactor.listener.as_ref().and_then(|l| l.local_addr().ok()) {
            reactor.show(&Event::Info(format!("listening on {addr}")));
        }
        let now = Instant::now();
        if reactor.chat.next_deadline().is_some_and(|d| d <= now) {
            // Mesh mode: the first scan starts now, and input waits a moment for it.
            reactor.chat.handle_tick(now);
            reactor.apply_actions(now);
            reactor.input_hold = Some(now + INPUT_HOLD);
        }
        // A peer that fails at once is fatal only if no other peer or listener is left.
        let failures: Vec<String> = setup
            .dials
            .into_iter()
            .filter_map(|dial| reactor.dial(dial, now).err())
            .collect();
        if reactor.listener.is_none() && reactor.conns.is_empty() && !failures.is_empty() {
            return Err(failures.join("; "));
        }
        for msg in failures {
            reactor.show(&Event::Error(msg));
        }
        Ok(reactor)
    }

    /// Runs until the user leaves, stdin ends (without `--keep-open`), a signal asks it to,
    /// or nobody is left.
    pub fn run(self) -> Result<Ended, String> {
        self.run_with_input(input::spawn)
    }

    /// A signal (see `signals`) makes the node leave cleanly, as `/quit` does.
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// [`Reactor::run`] with another source of typed lines: `start` gets the waker to call
    /// after each line it sends, and returns the receiving end.
    pub fn run_with_input(
        mut self,
        start: impl FnOnce(Arc<Waker>) -> io::Result<Receiver<Input>>,
    ) -> Result<Ended, String> {
        // The reactor keeps a reference: if the stdin thread held the last one, its exit would
        // close the waker before the loop saw the final wake (the end of input).
        let waker = Arc::new(
            Waker::new(self.poll.registry(), WAKER)
                .map_err(|e| format!("cannot start the event loop: {e}"))?,
        );
        self.input = Some(start(waker.clone()).map_err(|e| format!("cannot read stdin: {e}"))?);
        if let Some(signals) = &self.signals {
            signals.attach(waker.clone());
        }
        let mut events = Events::with_capacity(1024);
        loop {
            // Finish the previous turn (or the start-up): input, actions, one write per dirty
            // connection, one write to stdout.
            let now = Instant::now();
            self.take_signal();
            self.drain_input();
            self.settle(now);
            if !self.out_broken {
                if let Err(e) = self.out.flush() {
                    self.stdout_failed(e);
                    self.settle(now);
                }
            }
            if let Some(result) = self.finished(now) {
                let how = match &result {
                    Ok(()) => "chat closed".to_string(),
                    Err(e) => format!("chat closed: {e}"),
                };
                self.record(Tag::Closed, &how);
                return match self.signal {
                    Some(sig) => Ok(Ended::Signal(sig)),
                    None => result.map(|()| Ended::Done),
                };
            }
            self.hold_reads = self.backpressure(now);
            let more_now = (!self.unread.is_empty() && !self.hold_reads)
                || (self.input_more && self.behind == 0)
                || self.log_grew
                || !self.dirty.is_empty();
            let timeout = if more_now {
                Some(Duration::ZERO)
            } else {
                let hold = (self.hold_reads && !self.unread.is_empty()).then(|| now + HOLD_RECHECK);
                self.next_deadline()
                    .into_iter()
                    .chain(hold)
                    .min()
                    .map(|d| d.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("event loop failed: {e}"));
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => self.drain_input(),
                    LISTENER => self.accept(now),
                    Token(k) => self.conn_ready(k, event.is_writable(), now),
                }
                // Before the next event: a `Close { k }` must be carried out before an accept
                // later in this turn can reuse slab key `k`. (Actions only queue bytes; the
                // writes still happen once per turn.)
                self.apply_actions(now);
            }
            for k in std::mem::take(&mut self.unread) {
                if self.held(k) {
                    self.unread.push(k);
                    continue;
                }
                if let Some(e) = self.conns.get_mut(k) {
                    e.conn.unread = false;
                    self.read(k, now);
                    self.apply_actions(now);
                }
            }
            self.tick(now);
        }
    }

    /// Carries out the chat's actions and writes dirty connections until nothing is left to do.
    fn settle(&mut self, now: Instant) {
        for _ in 0..64 {
            self.apply_actions(now);
            if self.dirty.is_empty() && !self.log_grew {
                return;
            }
            self.flush_conns(now);
        }
    }

    /// How long a connection may stay past the high-water mark before it is closed.
    fn stall_limit(&self) -> Duration {
        if self.input_urgent {
            URGENT_STALL_LIMIT.min(self.stall_limit)
        } else {
            self.stall_limit
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conn_deadlines = self.conns.iter().flat_map(|(_, e)| {
            let c = &e.conn;
            let connect = match c.phase {
                Phase::Connecting { deadline } => Some(deadline),
                _ => None,
            };
            let partial = c.partial_due();
            let stall = c.behind_since.map(|t| t + self.stall_limit());
            [connect, partial, stall, c.retire_by].into_iter().flatten()
        });
        conn_deadlines
            .chain(self.chat.next_deadline())
            .chain(self.input_hold)
            .chain(self.accept_paused_until)
            .chain(self.quit_deadline)
            .min()
    }

    /// Appends a line to the event log, if there is one; a failing log is reported once and
    /// then closed.
    fn record(&mut self, tag: Tag, text: &str) {
        if let Some(log) = &mut self.log {
            if let Err(e) = log.write(tag, text) {
                self.log = None;
                self.show(&Event::Error(format!(
                    "log file failed, no longer written: {e}"
                )));
            }
        }
    }

    fn show(&mut self, event: &Event) {
        if let Some(log) = &mut self.log {
            if let Err(e) = log.event(event) {
                self.log = None;
                self.show(&Event::Error(format!(
                    "log file failed, no longer written: {e}"
                )));
            }
        }
        if self.out_broken {
            return;
        }
        if let Err(e) = self.out.show(event) {
            self.stdout_failed(e);
        }
    }

    /// Stdout is gone (`| head -1`): leave quietly, as if input had ended.
    fn stdout_failed(&mut self, e: io::Error) {
        debug!("stdout failed: {e}");
        self.out_broken = true;
        self.chat.handle_input_end();
    }

    /// Starts a non-blocking connect to `addr`, registered under `key`.
    fn start_connect(poll: &Poll, addr: SocketAddr, key: usize) -> io::Result<TcpStream> {
        let mut stream = TcpStream::connect(addr)?;
        poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(stream)
    }

    /// Starts dialling; the error is the message for a peer none of whose addresses could even
    /// start connecting.
    fn dial(&mut self, dial: Dial, now: Instant) -> Result<(), String> {
        let key = self.conns.vacant_key();
        let mut addrs = dial.addrs.into_iter();
        let mut error = io::Error::from(io::ErrorKind::AddrNotAvailable);
        for addr in addrs.by_ref() {
            match Self::start_connect(&self.poll, addr, key) {
                Ok(stream) => {
                    let conn = Conn::new(
                        dial.label,
                        Phase::Connecting {
                            deadline: now + CONNECT_TIMEOUT,
                        },
                        now,
                    );
                    let next_addrs = addrs.collect();
                    self.insert(Entry {
                        stream,
                        conn,
                        next_addrs,
                        origin: Origin::Dialled,
                        target: None,
                    });
                    return Ok(());
                }
                Err(e) => error = e,
            }
        }
        Err(format!(
            "cannot connect to {}: {}",
            dial.label,
            describe(&error)
        ))
    }

    /// Dials `addr` for the chat (mesh scan, peer exchange, re-dial). Failures go back to the
    /// chat, not to the user.
    fn auto_dial(&mut self, addr: SocketAddr, now: Instant) {
        let key = self.conns.vacant_key();
        match Self::start_connect(&self.poll, addr, key) {
            Ok(stream) => {
                let deadline = now + CONNECT_TIMEOUT;
                let conn = Conn::new(addr.to_string(), Phase::Connecting { deadline }, now);
                self.insert(Entry {
                    stream,
                    conn,
                    next_addrs: Vec::new(),
                    origin: Origin::Auto(addr),
                    target: Some(addr),
                });
            }
            Err(e) => {
                debug!("cannot connect to {addr}: {e}");
                self.chat.handle_dial_failed(addr, now);
            }
        }
    }

    /// Dialling `k` failed: try its next address, keeping what is queued for it, or give up.
    fn dial_error(&mut self, k: usize, mut error: io::Error) {
        let now = Instant::now();
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        while !e.next_addrs.is_empty() {
            let addr = e.next_addrs.remove(0);
            debug!("cannot connect to {addr}: {error}; trying the next address");
            let _ = self.poll.registry().deregister(&mut e.stream);
            match Self::start_connect(&self.poll, addr, k) {
                Ok(stream) => {
                    e.stream = stream;
                    e.conn.phase = Phase::Connecting {
                        deadline: now + CONNECT_TIMEOUT,
                    };
                    e.conn.blocked = false;
                    return;
                }
                Err(err) => error = err,
            }
        }
        self.close(k, Some(describe(&error)));
    }

    fn dial_failed(&mut self, label: &str, why: &str) {
        let msg = format!("cannot connect to {label}: {why}");
        if self.listener.is_none() && self.conns.is_empty() {
            self.fatal = Some(msg);
        } else {
            warn!("{msg}");
            self.show(&Event::Error(msg));
        }
    }

    /// Accepts every waiting connection. Out of file descriptors, it stops for a while (10 ms,
    /// doubling to 1 s while it lasts): the waiting connections stay queued in the kernel and
    /// are taken when the timer fires, so the loop neither spins nor stops accepting.
    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) if self.conns.len() >= self.max_conns => {
                    self.refuse(stream, addr);
                }
                Ok((mut stream, addr)) => {
                    let key = self.conns.vacant_key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("cannot register connection from {addr}: {e}");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    info!("connection from {addr}");
                    let conn = Conn::new(addr.to_string(), Phase::Open, now);
                    self.insert(Entry {
                        stream,
                        conn,
                        next_addrs: Vec::new(),
                        origin: Origin::Accepted,
                        target: None,
                    });
                    self.record(Tag::Accepted, &format!("connection from {addr}"));
                    self.opened(key, addr, now);
                    self.accept_backoff = ACCEPT_BACKOFF_MIN;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_resources(&e) => {
                    warn!(
                        "cannot accept: {}; accepting again in {:?}",
                        describe(&e),
                        self.accept_backoff
                    );
                    self.accept_paused_until = Some(now + self.accept_backoff);
                    self.accept_backoff = (self.accept_backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// The chat is full: one line saying so, then the connection is closed.
    fn refuse(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let line = format!(
            "{} ({} connections); try again later\n",
            protocol::FULL,
            self.max_conns
        );
        // A fresh socket takes a short line whole; if not, the close alone says enough. Then
        // a FIN, and what the other end sent already (a node's hello) is read off, so that the
        // close is not a reset that could destroy the line before it is read.
        let _ = stream.write(line.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        for _ in 0..4 {
            if !matches!(io::Read::read(&mut stream, &mut sink), Ok(n) if n > 0) {
                break;
            }
        }
        if self.told_full {
            info!("refused {addr}: the chat is full");
        } else {
            // Once per spell of being full, here and in the event log: a flood of connections
            // to a full node does not flood the log.
            self.told_full = true;
            warn!(
                "the chat is full ({} connections, --max-conns): refusing {addr} and others",
                self.max_conns
            );
            self.record(
                Tag::Info,
                &format!("the chat is full: refusing {addr} and others"),
            );
        }
    }

    /// A connection is up: send our hello and tell the chat.
    fn opened(&mut self, k: usize, addr: SocketAddr, now: Instant) {
        let mut hello = Vec::new();
        protocol::encode(&self.chat.hello(), &mut hello);
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        e.conn.queue_first(hello);
        let origin = e.origin;
        let local = e
            .stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        self.mark_dirty(k);
        self.told_nobody = false;
        if let Some(deadline) = &mut self.quit_deadline {
            // A dial that completes while leaving still gets the full grace to deliver.
            *deadline = (*deadline).max(now + QUIT_GRACE);
        }
        self.chat.handle_opened(
            k,
            Link {
                addr,
                local,
                origin,
            },
            now,
        );
    }

    /// Adds a connection, receiving broadcasts from now on; its role is not known yet.
    fn insert(&mut self, mut entry: Entry) -> usize {
        entry.conn.subscribe(self.shared.end());
        self.roles[role_slot(None)] += 1;
        self.conns.insert(entry)
    }

    /// Takes connection `k` out of the table and the poll.
    fn remove(&mut self, k: usize) -> Option<Entry> {
        let mut e = self.conns.try_remove(k)?;
        let _ = self.poll.registry().deregister(&mut e.stream);
        self.told_full = false;
        self.roles[role_slot(e.conn.role)] -= 1;
        if e.conn.behind_since.is_some() {
            self.behind -= 1;
        }
        Some(e)
    }

    fn mark_dirty(&mut self, k: usize) {
        if let Some(e) = self.conns.get_mut(k) {
            if !e.conn.dirty {
                e.conn.dirty = true;
                self.dirty.push(k);
            }
        }
    }

    fn conn_ready(&mut self, k: usize, writable: bool, now: Instant) {
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        if let Phase::Connecting { .. } = e.conn.phase {
            let failed = match e.stream.take_error() {
                Ok(Some(err)) | Err(err) => Some(err),
                Ok(None) => match e.stream.peer_addr() {
                    Ok(addr) => {
                        e.conn.phase = Phase::Open;
                        e.conn.addr = addr.to_string();
                        let _ = e.stream.set_nodelay(true);
                        info!("connected to {addr}");
                        self.record(Tag::Connected, &format!("connected to {addr}"));
                        self.opened(k, addr, now);
                        None
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => return,
                    Err(err) => Some(err),
                },
            };
            if let Some(err) = failed {
                return self.dial_error(k, err);
            }
        }
        if writable {
            if let Some(e) = self.conns.get_mut(k) {
                e.conn.blocked = false;
            }
            self.mark_dirty(k);
        }
        if self.held(k) {
            // Backpressure: read it once the slow readers have caught up.
            if let Some(e) = self.conns.get_mut(k) {
                if !e.conn.unread {
                    e.conn.unread = true;
                    self.unread.push(k);
                }
            }
            return;
        }
        self.read(k, now);
    }

    /// True when backpressure keeps connection `k` from being read this turn. Not one whose
    /// role is not known yet (a hello is short, and must not wait), nor one that is behind
    /// itself: what it sends goes to the others, and two nodes each waiting for the other to
    /// read would both stall.
    fn held(&self, k: usize) -> bool {
        self.hold_reads
            && self
                .conns
                .get(k)
                .is_some_and(|e| e.conn.role.is_some() && e.conn.behind_since.is_none())
    }

    /// True while some connection is behind but still draining (see [`PROGRESS_WINDOW`]).
    /// Looked at every [`HOLD_RECHECK`] at most.
    fn backpressure(&mut self, now: Instant) -> bool {
        if self.behind == 0 {
            return false;
        }
        if let Some((until, hold)) = self.hold_checked {
            if now < until {
                return hold;
            }
        }
        let mut hold = false;
        for (_, e) in self.conns.iter_mut() {
            if e.conn.behind_since.is_none() {
                continue;
            }
            // A reader with large socket buffers can take a while to make room for our next
            // write while reading all along: the kernel's queue shrinking shows it.
            if let Some(q) = limits::unsent_bytes(e.stream.as_raw_fd()) {
                if q < e.conn.kernel_unsent {
                    e.conn.last_progress = now;
                }
                e.conn.kernel_unsent = q;
            }
            hold |= now.saturating_duration_since(e.conn.last_progress) < PROGRESS_WINDOW;
        }
        self.hold_checked = Some((now + HOLD_RECHECK, hold));
        hold
    }

    /// Reads `k` until it would block or its budget is spent, passing every complete line to
    /// the chat. A connection with more to read is put on the `unread` list for the next turn.
    fn read(&mut self, k: usize, now: Instant) {
        for _ in 0..READ_BUDGET {
            let Some(e) = self.conns.get_mut(k) else {
                return;
            };
            let status = match e.conn.read_some(&mut e.stream, now) {
                Ok(status) => status,
                Err(err) => return self.close(k, Some(describe(&err))),
            };
            let mut took_lines = false;
            loop {
                match e.conn.decoder.next_line() {
                    Ok(Some(line)) => {
                        took_lines = true;
                        self.chat.handle_line(k, line, now)
                    }
                    Ok(None) => break,
                    Err(err) => return self.close_warning(k, err.to_string()),
                }
            }
            e.conn.got_line |= took_lines;
            e.conn.note_partial(took_lines, now);
            // What the chat made of those lines comes first: a close it asked for (with its
            // reason) is not to be overtaken by the end of the connection read next.
            self.apply_actions(now);
            let Some(e) = self.conns.get_mut(k) else {
                return;
            };
            match status {
                ReadStatus::Data => {}
                ReadStatus::WouldBlock => return,
                ReadStatus::Eof => {
                    let rest = e.conn.decoder.take_partial();
                    if !rest.is_empty() {
                        self.chat.handle_line(k, &rest, now);
                        self.apply_actions(now);
                    }
                    if self.conns.contains(k) {
                        self.close(k, None);
                    }
                    return;
                }
            }
        }
        if let Some(e) = self.conns.get_mut(k) {
            if !e.conn.unread {
                e.conn.unread = true;
                self.unread.push(k);
            }
        }
    }

    /// Closes `k` for something it did (too slow, a bad frame, an unfinished hello), saying so
    /// on stderr (a hub's operator wants to know); the chat shows its leave with `reason`.
    fn close_warning(&mut self, k: usize, reason: String) {
        if let Some(e) = self.conns.get(k) {
            warn!("closing {}: {reason}", e.conn.addr);
        }
        self.close(k, Some(reason));
    }

    /// Drops connection `k` and tells the chat.
    fn close(&mut self, k: usize, reason: Option<String>) {
        let backlog = match self.conns.get_mut(k) {
            Some(e) => {
                // A last try at what is queued for it (why it is being closed, say): the
                // socket may well take it.
                if e.conn.phase == Phase::Open && e.conn.role.is_some() && !e.conn.blocked {
                    let _ = e.conn.flush_to(&mut e.stream, &self.shared);
                }
                e.conn.backlog(&self.shared)
            }
            None => 0,
        };
        if let Some(e) = self.remove(k) {
            info!(
                "closed {}{}",
                e.conn.addr,
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            let last_chance = self.chat.is_quitting()
                || (self.listener.is_none() && self.conns.is_empty() && self.input.is_some());
            // A dial of our own that never proved to be a peer was nobody waiting for our lines.
            let never_a_peer = matches!(e.origin, Origin::Auto(_)) && e.conn.role.is_none();
            if last_chance && !never_a_peer && e.conn.phase != Phase::Shut && backlog > 0 {
                warn!(
                    "could not deliver everything to {}: {}",
                    e.conn.addr,
                    reason.as_deref().unwrap_or("closed")
                );
                self.undelivered += 1;
            }
            if matches!(e.conn.phase, Phase::Connecting { .. }) {
                if let Some(addr) = e.target {
                    debug!(
                        "cannot connect to {addr}: {}",
                        reason.as_deref().unwrap_or("closed")
                    );
                    return self.chat.handle_dial_failed(addr, Instant::now());
                }
                return self.dial_failed(&e.conn.addr, reason.as_deref().unwrap_or("closed"));
            }
            self.chat.handle_closed(k, reason);
        }
    }

    /// Takes typed or piped lines, within this turn's budget, and only while no connection is
    /// behind: a slow peer makes input wait (the stdin thread then blocks on its full channel)
    /// instead of piling up in memory. A leave command among the waiting lines shortens the
    /// time a stalled reader may hold them up (see [`Reactor::stall_limit`]).
    /// A signal arrived: leave as `/quit` does (once).
    fn take_signal(&mut self) {
        let Some(sig) = self.signals.as_ref().and_then(Signals::received) else {
            return;
        };
        if self.signal.replace(sig).is_none() {
            self.show(&Event::Info(format!(
                "{}: leaving (again to quit at once)",
                signals::name(sig)
            )));
            self.chat.handle_input_end();
        }
    }

    fn drain_input(&mut self) {
        let mut channel_open = true;
        while channel_open && self.queued.len() < INPUT_QUEUE {
            let Some(rx) = &self.input else { break };
            match rx.try_recv() {
                Ok(input) => self.queued.push_back(input),
                Err(TryRecvError::Empty) => channel_open = false,
                Err(TryRecvError::Disconnected) => {
                    self.queued.push_back(Input::End);
                    self.input = None;
                }
            }
        }
        let urgent = self
            .queued
            .iter()
            .any(|i| matches!(i, Input::Line(l) if chat::is_leave_command(l)));
        if let Some(until) = self.input_hold {
            // Mesh start-up: wait for the first scan, unless the user is leaving already.
            if Instant::now() < until && self.chat.is_settling() && !urgent {
                self.input_more = false;
                return;
            }
            self.input_hold = None;
        }
        let (mut lines, mut bytes) = (0, 0);
        while let Some(input) = self.queued.front() {
            let over_budget = lines >= INPUT_BUDGET_LINES || bytes >= INPUT_BUDGET_BYTES;
            if over_budget || self.behind > 0 {
                break;
            }
            if let Input::Line(line) = input {
                lines += 1;
                bytes += line.len();
            }
            match self.queued.pop_front() {
                Some(Input::Line(line)) => self.chat.handle_input(&line),
                Some(Input::End) => {
                    self.input = None;
                    if self.keep_open {
                        self.show(&Event::Info(
                            "input ended; still receiving (--keep-open)".into(),
                        ));
                    } else {
                        self.chat.handle_input_end();
                    }
                }
                None => {}
            }
        }
        self.input_more = !self.queued.is_empty() || (channel_open && self.input.is_some());
        self.input_urgent = urgent && !self.queued.is_empty();
    }

    /// Timers: dial timeouts, a guest's unterminated line, a reader stalled too long, the hello
    /// wait, accepting again.
    fn tick(&mut self, now: Instant) {
        let mut timed_out = Vec::new();
        let mut stalled = Vec::new();
        let limit = self.stall_limit();
        let mut partial = Vec::new();
        let mut incomplete = Vec::new();
        let mut retired = Vec::new();
        for (k, e) in &self.conns {
            let c = &e.conn;
            match c.phase {
                Phase::Connecting { deadline } if now >= deadline => timed_out.push(k),
                _ if c.retire_by.is_some_and(|t| now >= t) => retired.push(k),
                _ if c.behind_since.is_some_and(|t| now >= t + limit) => stalled.push(k),
                _ if c.partial_due().is_some_and(|due| now >= due) => match c.partial_line() {
                    PartialLine::GuestLine => partial.push(k),
                    PartialLine::IncompleteHello => incomplete.push(k),
                    PartialLine::None => {}
                },
                _ => {}
            }
        }
        for k in timed_out {
            self.dial_error(k, io::ErrorKind::TimedOut.into());
        }
        for k in stalled {
            let reason = format!(
                "too slow: over {} bytes unsent for {}s",
                self.high_water,
                limit.as_secs_f64()
            );
            self.close_warning(k, reason);
        }
        for k in partial {
            if let Some(e) = self.conns.get_mut(k) {
                let line = e.conn.decoder.take_partial();
                e.conn.got_line = true;
                e.conn.partial_since = None;
                self.chat.handle_line(k, &line, now);
            }
        }
        for k in retired {
            self.close(k, Some("duplicate connection".into()));
        }
        for k in incomplete {
            self.close_warning(k, "incomplete hello".into());
        }
        self.chat.handle_tick(now);
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept(now);
        }
    }

    fn apply_actions(&mut self, now: Instant) {
        while let Some(action) = self.chat.poll_action() {
            match action {
                Action::Classify { conn, role } => {
                    if let Some(e) = self.conns.get_mut(conn) {
                        self.roles[role_slot(e.conn.role)] -= 1;
                        self.roles[role_slot(Some(role))] += 1;
                        e.conn.classify(role, &self.shared);
                        self.mark_dirty(conn);
                    }
                }
                Action::Broadcast { except, frame } => self.broadcast(except, frame),
                Action::Close { conn, reason } => self.close_warning(conn, reason),
                Action::Send { conn, frame } => {
                    if let Some(e) = self.conns.get_mut(conn) {
                        e.conn.queue_direct(&frame, self.shared.end());
                        self.mark_dirty(conn);
                    }
                }
                Action::Refused { conn, reason } => {
                    if let Some(label) = self.conns.get(conn).map(|e| e.conn.addr.clone()) {
                        self.close(conn, Some(reason.clone()));
                        self.dial_failed(&label, &reason);
                    }
                }
                Action::Tell { conn, text } => {
                    if let Some(e) = self.conns.get_mut(conn) {
                        let line = format!("{}\n", crate::safe::sanitize(&text));
                        e.conn.queue_raw(line.as_bytes(), self.shared.end());
                        self.mark_dirty(conn);
                    }
                }
                Action::Retire { conn } => {
                    if let Some(e) = self.conns.get_mut(conn) {
                        debug!("retiring a duplicate connection to {}", e.conn.addr);
                        e.conn.retire_by.get_or_insert(now + RETIRE_GRACE);
                        e.conn.unsubscribe(self.shared.end());
                        self.mark_dirty(conn);
                    }
                }
                Action::Dial(addr) => self.auto_dial(addr, now),
                Action::Connect(label) => {
                    let dial = crate::cli::parse_peer(&label).and_then(|hp| {
                        Ok(Dial {
                            label: hp.to_string(),
                            addrs: hp.resolve()?,
                        })
                    });
                    if let Err(msg) = dial.and_then(|d| self.dial(d, now)) {
                        self.show(&Event::Error(msg));
                    }
                }
                Action::Show(event) => self.show(&event),
                Action::Quit => {
                    self.quit_deadline = Some(now + QUIT_GRACE);
                    if let Some(mut l) = self.listener.take() {
                        let _ = self.poll.registry().deregister(&mut l);
                    }
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        let auto_dial = self.conns.get(k).is_some_and(|e| {
                            matches!(e.origin, Origin::Auto(_)) && e.conn.role.is_none()
                        });
                        if auto_dial {
                            // A dial of our own not yet known to be a peer: nobody is waiting
                            // for it, so it is not worth delaying the exit.
                            self.remove(k);
                        } else {
                            self.mark_dirty(k);
                        }
                    }
                }
            }
        }
    }

    /// Appends `frame` to the shared log, which every connection receiving broadcasts reads
    /// (all but `except`, a duplicate being retired, and those we are leaving): one encoding
    /// per format, no copy per connection. They are written at the end of the turn.
    fn broadcast(&mut self, except: Option<ConnId>, frame: std::rc::Rc<Frame>) {
        let unknown = self.roles[role_slot(None)];
        let wanted = [
            self.roles[role_slot(Some(Role::Peer))] + unknown > 0,
            self.roles[role_slot(Some(Role::Guest))] + unknown > 0,
        ];
        let (start, end) = self.shared.append(&frame, wanted);
        self.log_grew = true;
        if let Some(e) = except.and_then(|k| self.conns.get_mut(k)) {
            e.conn.skip(start, end);
        }
        if self.told_nobody || except.is_some() {
            return;
        }
        if let Frame::Msg { id, .. } = &*frame {
            // A scan's connection is nobody until it proves to be a peer.
            let someone = self.conns.iter().any(|(_, e)| {
                e.conn.is_subscribed()
                    && !(matches!(e.origin, Origin::Auto(_)) && e.conn.role.is_none())
            });
            if id.node == self.node && !someone {
                // Once until someone connects, not once per line of a pipe.
                self.told_nobody = true;
                self.show(&Event::Info("nobody is connected; not sent".into()));
            }
        }
    }

    /// Writes what is pending, once per turn: every connection when the log grew (each gets
    /// one `write_vectored` from its place in the log), else those marked dirty. Keeps the
    /// behind count, closes the too slow, shuts down those that are done while leaving, and
    /// lets the log forget what everyone has sent.
    fn flush_conns(&mut self, now: Instant) {
        let behind_before = self.behind;
        let mut pass = Pass {
            log: &self.shared,
            now,
            leaving: self.chat.is_quitting(),
            high_water: self.high_water,
            max_backlog: self.max_backlog,
            behind: &mut self.behind,
            to_close: Vec::new(),
            too_slow: Vec::new(),
        };
        let dirty = std::mem::take(&mut self.dirty);
        if std::mem::take(&mut self.log_grew) {
            for (k, e) in self.conns.iter_mut() {
                pass.flush(k, e);
            }
        } else {
            for k in dirty {
                if let Some(e) = self.conns.get_mut(k) {
                    pass.flush(k, e);
                }
            }
        }
        let (to_close, too_slow) = (pass.to_close, pass.too_slow);
        if self.behind > behind_before {
            // Someone just fell behind: look at backpressure again now.
            self.hold_checked = None;
        }
        for (k, reason) in to_close {
            self.close(k, Some(reason));
        }
        for (k, reason) in too_slow {
            self.close_warning(k, reason);
        }
        if self.shared.has_old_blocks() {
            let mut keep = [None::<u64>; 2];
            for (_, e) in &self.conns {
                let Some(pin) = e.conn.pin() else { continue };
                let sides = match e.conn.role {
                    Some(role) => side(role)..side(role) + 1,
                    None => 0..2,
                };
                for s in sides {
                    keep[s] = Some(keep[s].map_or(pin[s], |k: u64| k.min(pin[s])));
                }
            }
            self.shared.trim(keep);
        }
    }

    /// `Some` when the run is over.
    fn finished(&mut self, now: Instant) -> Option<Result<(), String>> {
        if let Some(msg) = self.fatal.take() {
            return Some(Err(msg));
        }
        if let Some(deadline) = self.quit_deadline {
            let dialling = self
                .conns
                .iter()
                .any(|(_, e)| matches!(e.conn.phase, Phase::Connecting { .. }));
            if now >= deadline && !dialling {
                // Connections still waiting for their hello or with bytes unsent did not get
                // everything; those only waiting for the other end to close did.
                for (_, e) in &self.conns {
                    if e.conn.phase != Phase::Shut {
                        warn!("could not deliver everything to {}: timed out", e.conn.addr);
                        self.undelivered += 1;
                    }
                }
            } else if !self.conns.is_empty() {
                return None;
            }
            return Some(match self.undelivered {
                0 => Ok(()),
                n => Err(format!(
                    "left before everything was delivered to {n} connection(s)"
                )),
            });
        }
        if self.listener.is_none() && self.conns.is_empty() {
            self.show(&Event::Info("no connections left".into()));
            if !self.out_broken {
                let _ = self.out.flush();
            }
            return Some(match self.undelivered {
                0 => Ok(()),
                _ => Err("the last connection closed before everything was delivered".into()),
            });
        }
        None
    }
}

/// Where a connection's role is counted in `Reactor::roles`.
fn role_slot(role: Option<Role>) -> usize {
    match role {
        Some(role) => side(role),
        None => 2,
    }
}

/// One pass of writes over the connections (see `Reactor::flush_conns`).
struct Pass<'a> {
    log: &'a Log,
    now: Instant,
    leaving: bool,
    high_water: usize,
    max_backlog: usize,
    behind: &'a mut usize,
    to_close: Vec<(usize, String)>,
    /// Over the byte cap.
    too_slow: Vec<(usize, String)>,
}

impl Pass<'_> {
    fn flush(&mut self, k: usize, e: &mut Entry) {
        e.conn.dirty = false;
        let now = self.now;
        if matches!(e.conn.phase, Phase::Connecting { .. }) {
            track_behind(&mut e.conn, self.log, self.high_water, self.behind, now);
            if e.conn.backlog(self.log) > self.max_backlog {
                self.too_slow.push((
                    k,
                    format!("too slow: over {} bytes unsent", self.max_backlog),
                ));
            }
            return;
        }
        let before = e.conn.backlog(self.log);
        if before > 0 && !e.conn.blocked {
            if let Err(err) = e.conn.flush_to(&mut e.stream, self.log) {
                self.to_close.push((k, describe(&err)));
                return;
            }
        }
        let backlog = e.conn.backlog(self.log);
        if backlog < before {
            e.conn.last_progress = now;
        }
        track_behind(&mut e.conn, self.log, self.high_water, self.behind, now);
        if backlog > self.max_backlog {
            self.too_slow.push((
                k,
                format!("too slow: over {} bytes unsent", self.max_backlog),
            ));
            return;
        }
        let leaving = self.leaving || e.conn.retire_by.is_some();
        if leaving && backlog == 0 && e.conn.phase == Phase::Open && e.conn.role.is_some() {
            // Everything is out: say so with a FIN, and wait for the other end to close,
            // so that nothing we sent is lost to a reset.
            let _ = e.stream.shutdown(Shutdown::Write);
            e.conn.phase = Phase::Shut;
            e.conn.unsubscribe(self.log.end());
        }
    }
}

/// Keeps `behind` (how many connections are past `high_water`) in step with `conn`.
fn track_behind(conn: &mut Conn, log: &Log, high_water: usize, behind: &mut usize, now: Instant) {
    let over = conn.backlog(log) > high_water;
    match (over, conn.behind_since.is_some()) {
        (true, false) => {
            conn.behind_since = Some(now);
            // Just fell behind: one that can be written has the progress window to show it is
            // draining; one that cannot yet (connecting, or its role unknown) holds no one up.
            let writable = conn.role.is_some() && !matches!(conn.phase, Phase::Connecting { .. });
            if writable {
                conn.last_progress = now;
            }
            conn.kernel_unsent = 0;
            *behind += 1;
        }
        (false, true) => {
            conn.behind_since = None;
            *behind -= 1;
        }
        _ => {}
    }
}
