//! The event loop: one `mio::Poll` over the listener, every connection and the waker that the
//! stdin, signal and name-resolution threads call. A turn polls, dispatches each event to the
//! room that owns it, carries out the chat's actions, runs what is due, and writes each dirty
//! connection once.
//!
//! The rooms: `setup` (what it starts with, binding, errors), `accept` (listener, back-off,
//! `--max-conns`), `dial` (one `start_dial`, name resolution off this thread), `io` (reads
//! with a budget, writes, backpressure), `table` (adding and closing connections), `actions`
//! (the chat's actions), `gate` (stdin), `screen` (stdout and the event log), `terminal` (the
//! interactive terminal's keys and drawing), `lan` (the beacon socket of `--lan`), `redial` (a client reconnecting) and `timers`
//! (every deadline in one table). This file dispatches; it must not hold chat rules (those
//! are in `chat`) or wire details (`protocol`).

mod accept;
mod actions;
mod dial;
mod gate;
mod io;
mod lan;
mod redial;
mod screen;
mod setup;
mod table;
mod terminal;
mod timers;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::chat::{self, Chat, Origin};
use crate::conn::Conn;
use crate::event::Event;
use crate::eventlog::Tag;
use crate::fanout::Log;
use crate::input::{self, Input};
use crate::output::Output;
use crate::protocol::NodeId;
use crate::signals::{self, Signals};

#[cfg(test)]
use dial::Resolve;
pub use lan::{LanSetup, BEACON_EVERY, BEACON_GROUP, BEACON_PORT};
pub use setup::{describe, Dial, DialError, Listen, RunError, Setup, SetupError};
pub use terminal::TermSetup;

use accept::Acceptor;
use dial::Resolver;
use gate::Gate;
use io::{Limits, Pace};
use lan::Lan;
use redial::Redial;
use screen::{Screen, StdoutGone};
use timers::{Table, Timer};

const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
const LAN: Token = Token(usize::MAX - 2);

/// One connection with its socket, as the reactor keeps it.
struct Entry {
    stream: TcpStream,
    conn: Conn,
    /// While dialling: the addresses still to try if this one fails.
    next_addrs: VecDeque<SocketAddr>,
    /// How it was opened; for [`Origin::Auto`] dials, the address the chat asked for.
    origin: Origin,
    /// Is on the list of connections to write this turn.
    dirty: bool,
    /// Is on the list of connections to read again next turn.
    unread: bool,
    pace: Pace,
}

impl Entry {
    /// A connection just accepted or dialled; `next_addrs` are the dial's other addresses.
    fn new(
        stream: TcpStream,
        conn: Conn,
        origin: Origin,
        next_addrs: VecDeque<SocketAddr>,
        now: Instant,
    ) -> Self {
        Entry {
            stream,
            conn,
            next_addrs,
            origin,
            dirty: false,
            unread: false,
            pace: Pace::new(now),
        }
    }

    /// A scan's connection is nobody until it proves to be a peer: a dial of our own the chat
    /// asked for, whose role is not known yet. Nobody waits for our lines on it.
    ///
    /// Answered from the reactor's own state, not by asking the chat: the chat forgets a
    /// connection as soon as it asks for it to be closed (not a peer, no hello), and the answer
    /// must stay true while the reactor is still closing it. Asked then, the chat would say
    /// "not speculative", and the broadcasts held for it would count as undelivered at quit.
    fn is_speculative(&self) -> bool {
        matches!(self.origin, Origin::Auto(_)) && self.conn.role().is_none()
    }
}

/// The running node.
pub struct Reactor<W: std::io::Write> {
    poll: Poll,
    waker: Arc<Waker>,
    acceptor: Acceptor,
    conns: Slab<Entry>,
    timers: Table,
    /// Broadcast frames, encoded once and shared by every connection.
    shared: Log,
    /// Something was appended to the log since the connections were last written.
    log_grew: bool,
    /// Connections by role: peers, guests, not known yet (which format the log must hold).
    roles: [usize; 3],
    limits: Limits,
    dirty: Vec<usize>,
    /// Connections whose read budget ran out before they would block: read again next turn.
    unread: Vec<usize>,
    /// Connections past the high-water mark, with since when; local input waits while there
    /// is any.
    behind: BTreeMap<usize, Instant>,
    /// Backpressure this loop turn (see `io`): reads wait on the `unread` list.
    hold_reads: bool,
    /// Until when the last backpressure verdict holds.
    hold_checked: Option<(Instant, bool)>,
    gate: Gate,
    resolver: Resolver,
    /// Connections that closed with output for them still unsent, when that output was the
    /// last chance to deliver it (while leaving, or the last connection of a node that does not
    /// listen): the run then ends with an error.
    undelivered: usize,
    /// "nobody is connected" was shown and nobody has connected since.
    told_nobody: bool,
    chat: Chat,
    screen: Screen<W>,
    /// Leaving: queued output has until then.
    quit_deadline: Option<Instant>,
    fatal: Option<DialError>,
    node: NodeId,
    signals: Option<Signals>,
    /// The signal that made us leave.
    signal: Option<i32>,
    /// On the interactive terminal, until the run starts: the lines the user sends.
    term_lines: Option<Receiver<Input>>,
    /// A client that lost its last connection dials its peers again (`Setup::reconnect`).
    redial: Redial,
    /// Where nicks' first keys are kept (`Setup::known_path`); `None`: not kept.
    known_path: Option<std::path::PathBuf>,
    /// A private group's link keys (`Setup::link_keys`), shared by every connection's link.
    link_keys: Option<std::rc::Rc<crate::link::LinkKeys>>,
    /// `Setup::allow_guests`.
    allow_guests: bool,
    /// `--lan`: the beacon socket; `None` without it (no UDP socket at all).
    lan: Option<Lan>,
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
    /// Binds the listener and starts the dials. A peer that fails at once is an error only if
    /// nothing listens and no other peer is left.
    pub fn new(setup: Setup, out: Output<W>) -> Result<Self, SetupError> {
        Self::create(setup, out, None)
    }

    /// [`Reactor::new`] on the interactive terminal: `out` is the terminal, in raw mode.
    pub fn on_terminal(setup: Setup, out: Output<W>, term: TermSetup) -> Result<Self, SetupError> {
        Self::create(setup, out, Some(term))
    }

    fn create(setup: Setup, out: Output<W>, term: Option<TermSetup>) -> Result<Self, SetupError> {
        let event_loop = |e: std::io::Error| SetupError::EventLoop(e.to_string());
        let poll = Poll::new().map_err(event_loop)?;
        // The reactor keeps a reference: if a helper thread held the last one, its exit would
        // close the waker before the loop saw its final wake (the end of input).
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(event_loop)?);
        let mut listener = setup::bind(&setup.listen)?;
        if let Some(l) = &mut listener {
            poll.registry()
                .register(l, LISTENER, Interest::READABLE)
                .map_err(|e| SetupError::Register(describe(&e)))?;
        }
        let lan = match setup.lan {
            Some(l) => Some(Lan::open(l, poll.registry(), LAN)?),
            None => None,
        };
        let listen_port = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let mut cfg = chat::Config::new(setup.nick, setup.key, setup::random(), listen_port);
        cfg.known = setup.known;
        cfg.private = setup.link_keys.is_some();
        let node = cfg.node;
        if let Listen::Range(mesh) = setup.listen {
            cfg.mesh = Some(mesh);
        }
        cfg.max_peers = setup.max_peers;
        cfg.peer_timeout = setup.peer_timeout;
        cfg.guest_rate = setup.guest_rate;
        cfg.max_guests_per_ip = setup.max_guests_per_ip;
        cfg.history = setup.history;
        let redial = Redial::new(
            setup.reconnect && listen_port.is_none(),
            setup.dials.clone(),
        );
        let now = Instant::now();
        cfg.wall = wall_ms();
        cfg.utc_offset = chrono::Local::now().offset().local_minus_utc();
        let mut reactor = Reactor {
            resolver: Resolver::new(waker.clone()),
            poll,
            waker,
            acceptor: Acceptor::new(listener, setup.max_conns),
            conns: Slab::new(),
            timers: Table::new(),
            shared: Log::new(),
            log_grew: false,
            roles: [0; 3],
            limits: Limits::new(setup.max_backlog, setup.slow_timeout),
            dirty: Vec::new(),
            unread: Vec::new(),
            behind: BTreeMap::new(),
            hold_reads: false,
            hold_checked: None,
            gate: Gate::new(setup.keep_open),
            undelivered: 0,
            told_nobody: false,
            chat: Chat::new(cfg, now),
            screen: Screen::new(out, setup.log),
            quit_deadline: None,
            fatal: None,
            node,
            signals: None,
            signal: None,
            term_lines: None,
            redial,
            known_path: setup.known_path,
            link_keys: setup.link_keys.map(std::rc::Rc::new),
            allow_guests: setup.allow_guests,
            lan,
        };
        if let Some(term) = term {
            reactor.start_terminal(term);
        }
        reactor.start(setup.dials, now)?;
        Ok(reactor)
    }

    /// Says where it listens, starts a mesh's first scan, and dials the peers of the setup.
    fn start(&mut self, dials: Vec<Dial>, now: Instant) -> Result<(), SetupError> {
        if let Some(addr) = self.acceptor.local_addr() {
            self.show(&Event::Info(format!("listening on {addr}")));
        }
        // `--lan`: the first beacon goes out now, and input waits a moment for the answers.
        self.beacon_due(now);
        if self.lan.is_some() {
            let until = now + lan::INPUT_HOLD;
            self.gate.hold(until);
            self.timers.set(Timer::InputHold, until);
        }
        if self.chat.next_deadline().is_some_and(|d| d <= now) {
            // Mesh mode: the first scan starts now, and input waits a moment for it.
            self.chat.handle_tick(now);
            self.apply_actions(now);
            let until = now + timers::INPUT_HOLD;
            self.gate.hold(until);
            self.timers.set(Timer::InputHold, until);
        }
        let failures: Vec<DialError> = dials
            .into_iter()
            .filter_map(|dial| self.start_dial(dial, Origin::Dialled, now).err())
            .collect();
        if self.nothing_left() && !failures.is_empty() {
            return Err(SetupError::Dial(failures));
        }
        for e in failures {
            self.show(&Event::Error(e.to_string()));
        }
        Ok(())
    }

    /// Runs until the user leaves, stdin ends (without `--keep-open`), a signal asks it to,
    /// or nobody is left.
    pub fn run(mut self) -> Result<Ended, RunError> {
        match self.term_lines.take() {
            Some(lines) => {
                let keys = input::spawn_raw(self.waker.clone())
                    .map_err(|e| SetupError::Stdin(e.to_string()))?;
                if let Some(term) = self.screen.terminal() {
                    term.attach(keys);
                }
                self.run_with_input(|_| Ok(lines))
            }
            None => self.run_with_input(input::spawn),
        }
    }

    /// A signal (see `signals`) makes the node leave cleanly, as `/quit` does.
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Looks up the host names of `/connect` with `resolve` (on a helper thread, as always)
    /// instead of the system's resolver.
    #[cfg(test)]
    pub(crate) fn with_resolver(mut self, resolve: Resolve) -> Self {
        self.resolver.set(resolve);
        self
    }

    /// [`Reactor::run`] with another source of typed lines: `start` gets the waker to call
    /// after each line it sends, and returns the receiving end.
    pub fn run_with_input(
        mut self,
        start: impl FnOnce(Arc<Waker>) -> std::io::Result<Receiver<Input>>,
    ) -> Result<Ended, RunError> {
        let rx = start(self.waker.clone()).map_err(|e| SetupError::Stdin(e.to_string()))?;
        self.gate.attach(rx);
        if let Some(signals) = &self.signals {
            signals.attach(self.waker.clone());
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if let Some(end) = self.finish_turn(now) {
                return end;
            }
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RunError::Poll(e.to_string()));
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => self.woken(now),
                    LISTENER => self.accept(now),
                    LAN => self.beacons_ready(now),
                    Token(k) => self.conn_ready(k, event.is_writable(), now),
                }
                // Before the next event: a `Close { k }` must be carried out before an accept
                // later in this turn can reuse slab key `k`. (Actions only queue bytes; the
                // writes still happen once per turn.)
                self.apply_actions(now);
            }
            self.read_unread(now);
            self.tick(now);
        }
    }

    /// Finishes the previous turn (or the start-up): a signal, input, actions, one write per
    /// dirty connection, one write to stdout. `Some` when the run is over.
    fn finish_turn(&mut self, now: Instant) -> Option<Result<Ended, RunError>> {
        self.take_signal();
        self.woken(now);
        self.settle(now);
        self.sync_terminal();
        if let Err(gone) = self.screen.flush() {
            self.stdout_gone(gone);
            self.settle(now);
        }
        let result = self.finished(now)?;
        let how = match &result {
            Ok(()) => "chat closed".to_string(),
            Err(e) => format!("chat closed: {e}"),
        };
        self.record(Tag::Closed, &how);
        Some(match self.signal {
            Some(sig) => Ok(Ended::Signal(sig)),
            None => result.map(|()| Ended::Done),
        })
    }

    /// How long the poll may wait: not at all when there is work left, else until the next
    /// deadline.
    fn poll_timeout(&mut self, now: Instant) -> Option<Duration> {
        self.hold_reads = self.backpressure(now);
        let more_now = (!self.unread.is_empty() && !self.hold_reads)
            || (self.gate.has_more() && self.behind.is_empty())
            || self.keys_wait()
            || self.log_grew
            || !self.dirty.is_empty();
        if more_now {
            return Some(Duration::ZERO);
        }
        if self.hold_reads && !self.unread.is_empty() {
            self.timers
                .set_earliest(Timer::HoldRecheck, now + timers::HOLD_RECHECK);
        }
        self.next_deadline()
            .map(|d| d.saturating_duration_since(now))
    }

    /// The waker was called: typed lines (or keys), or a name looked up.
    fn woken(&mut self, now: Instant) {
        self.take_resolved(now);
        self.read_keys(now);
        self.drain_input(now);
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

    fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .next()
            .into_iter()
            .chain(self.chat.next_deadline())
            .min()
    }

    /// Runs what is due: only those timers, then the chat's.
    fn tick(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Connect(k) => {
                    if self.conns.get(k).is_some_and(|e| e.conn.is_connecting()) {
                        self.dial_error(k, std::io::ErrorKind::TimedOut.into(), now);
                    } else if self.conns.get(k).is_some_and(|e| e.conn.is_handshaking()) {
                        // A silent or stalled handshake holds a descriptor no longer than a
                        // dial may take to connect.
                        self.handshake_failed(k, "no encrypted handshake in time".into(), now);
                    }
                }
                Timer::Retire(k) => self.close_duplicate(k, now),
                // A duplicate whose grace is over too closes as a duplicate: the retire was
                // always looked at first.
                Timer::Stall(k) | Timer::Partial(k) if self.retire_due(k, now) => {}
                Timer::Stall(k) => self.check_stall(k, now),
                Timer::Partial(k) => self.check_partial(k, now),
                Timer::AcceptPause => {
                    self.acceptor.resume();
                    self.accept(now);
                }
                Timer::Redial => self.redial_due(now),
                Timer::Beacon => self.beacon_due(now),
                // Only to wake the loop: the turn looks at these itself.
                Timer::Escape => self.escape_due(),
                Timer::QuitGrace | Timer::InputHold | Timer::HoldRecheck | Timer::LookupWait => {}
            }
        }
        self.chat.handle_tick(now);
    }

    /// Closes `k` as a duplicate if its retire grace is over; true if it did.
    fn retire_due(&mut self, k: usize, now: Instant) -> bool {
        let retire = Timer::Retire(k);
        if self.timers.get(&retire).is_none_or(|at| at > now) {
            return false;
        }
        self.timers.cancel(&retire);
        self.close_duplicate(k, now);
        true
    }

    /// A duplicate connection's grace to deliver is over: it goes.
    fn close_duplicate(&mut self, k: usize, now: Instant) {
        self.close(k, Some("duplicate connection".into()), now);
    }

    /// Leaving with a lookup under way: it has until the quit deadline (its dial then gets
    /// the grace to deliver), unless typed lines already waited their cap for it.
    fn lookup_waits(&self, now: Instant) -> bool {
        self.resolver.is_pending() && self.gate.waits_for_lookups(now)
    }

    /// Nothing is left to wait for: not listening, no connection, no lookup to come back.
    fn nothing_left(&self) -> bool {
        !self.acceptor.is_listening() && self.conns.is_empty() && !self.resolver.is_pending()
    }

    /// Leaving: queued output has [`timers::QUIT_GRACE`] from `now`, or longer if it had.
    fn extend_quit_grace(&mut self, now: Instant) {
        let until = self
            .quit_deadline
            .unwrap_or(now)
            .max(now + timers::QUIT_GRACE);
        self.quit_deadline = Some(until);
        self.timers.set(Timer::QuitGrace, until);
    }

    /// Appends a line to the event log, if there is one.
    fn record(&mut self, tag: Tag, text: &str) {
        if let Err(gone) = self.screen.record(tag, text) {
            self.stdout_gone(gone);
        }
    }

    fn show(&mut self, event: &Event) {
        if let Err(gone) = self.screen.show(event) {
            self.stdout_gone(gone);
        }
    }

    /// Keeps a nick's first key in the known-keys file; a failure is a warning, not the end.
    fn remember_key(&mut self, line: &str) {
        if let Some(path) = &self.known_path {
            if let Err(e) = crate::identity::append_known(path, line) {
                log::warn!(
                    "cannot remember a key in {}: {}",
                    path.display(),
                    describe(&e)
                );
            }
        }
    }

    /// Stdout is gone (`| head -1`): leave quietly, as if input had ended.
    fn stdout_gone(&mut self, _: StdoutGone) {
        self.chat.handle_input_end();
    }

    /// A signal arrived: leave as `/quit` does (once). On the terminal, Ctrl-Z, `fg` and
    /// resizes are carried out.
    fn take_signal(&mut self) {
        if let Some(signals) = &self.signals {
            self.screen.handle_signals(signals.take_terminal());
        }
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

    /// `Some` when the run is over.
    fn finished(&mut self, now: Instant) -> Option<Result<(), RunError>> {
        if let Some(e) = self.fatal.take() {
            self.drop_lookups();
            let _ = self.screen.flush();
            return Some(Err(RunError::Dial(e)));
        }
        self.watch_redial(now);
        if let Some(deadline) = self.quit_deadline {
            let dialling = self.conns.iter().any(|(_, e)| e.conn.is_connecting());
            if now >= deadline && !dialling {
                // Connections still waiting for their hello or with bytes unsent did not get
                // everything; those only waiting for the other end to close did.
                for (_, e) in &self.conns {
                    if !e.conn.is_shut() {
                        log::warn!(
                            "could not deliver everything to {}: timed out",
                            e.conn.addr()
                        );
                        self.undelivered += 1;
                    }
                }
            } else if !self.conns.is_empty() || self.lookup_waits(now) {
                return None;
            }
            self.drop_lookups();
            // Stdout going away now changes nothing: the run is over.
            let _ = self.screen.flush();
            return Some(match self.undelivered {
                0 => Ok(()),
                n => Err(RunError::Undelivered(n)),
            });
        }
        if self.nothing_left() && !self.redial.is_waiting() {
            // What the chat still waited for (a duplicate's twin, news of a node another
            // claimed lost) cannot come now: those leaves are shown first.
            self.chat.handle_cut_off();
            self.apply_actions(now);
            self.show(&Event::Info("no connections left".into()));
            // Stdout going away now changes nothing: the run is over.
            let _ = self.screen.flush();
            return Some(match self.undelivered {
                0 => Ok(()),
                _ => Err(RunError::LastUndelivered),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests;

/// The wall time now, in unix milliseconds: read once, when the chat is made (it dates what is
/// said from this and the monotonic `now` it is passed afterwards).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
