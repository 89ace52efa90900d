//! The chat itself, as a pure state machine: who is connected and as what (peer or guest), who is
//! in the chat group-wide (the roster), which messages were already seen, what to show, what to
//! send where, whom to dial.
//!
//! Inputs are `handle_*` calls (a line from a connection, a typed line, a connection opened or
//! closed, a dial that failed, a tick with the current time); outputs are [`Action`]s taken with
//! [`Chat::poll_action`]. Must not do IO or read the clock: the caller passes `now`.
//!
//! [`Chat`] composes rooms that each own their state, with their unit tests beside them:
//! `roster.rs` (members, nicks, gone/lost), `neighbours.rs` (connections as the chat sees them),
//! `discovery.rs` (dials, re-dials, scans, `PEERS` heard), `relay.rs` (the seen set, one step
//! per frame kind), `keepalive.rs` (pings and timeouts), `handshake.rs` (classifying a
//! connection, duplicates, orphans), `commands.rs` (the typed-line parser and the commands'
//! steps), `guests.rs` (a guest's welcome and its commands), `flood.rs`, `recent.rs`, `outbox.rs` (the one action queue), `api.rs` (the public
//! types), `known.rs` (remembered keys and fingerprints), and one timer table for every deadline.
//!
//! Only `Chat` owns the action queue, because the order of actions is what users see. The steps
//! that need several rooms at once are `impl Chat` blocks in the file of the concern they serve,
//! rather than methods of a room that would have to hold the others: no state type holds
//! another room or the `Chat`. This file keeps the public inputs, the tick, and what every step
//! shares: forgetting a connection, members joining and leaving, fresh message ids.

mod api;
mod commands;
mod discovery;
mod flood;
mod guests;
mod handshake;
mod keepalive;
mod known;
mod neighbours;
mod outbox;
mod recent;
mod relay;
mod roster;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Instant;

pub use self::api::{
    Action, Config, ConnId, Link, Mesh, Origin, DEFAULT_MAX_PEERS, DEFAULT_PEER_TIMEOUT,
    HELLO_WAIT, HELLO_WAIT_DIALLED,
};
pub use self::commands::{is_leave_command, Command, COMMANDS, HELP_LINES};
pub use self::flood::{RateLimit, DEFAULT_GUEST_RATE};
pub use self::known::{fingerprint, fold, is_fingerprint, KeyCheck, KnownKeys, MAX_KNOWN};
pub use crate::event::{Event, Name, Role};
use crate::protocol::{self, Frame, Hello, MemberId, MsgId};
use crate::timers::Timers;

use self::discovery::Discovery;
use self::handshake::{Lost, Orphans};
use self::keepalive::Check;
use self::neighbours::{Kind, Neighbour, Neighbours, PeerState, Voice};
use self::outbox::Outbox;
use self::relay::Seen;
use self::roster::Roster;
use crate::event::Speech;

/// Every deadline the chat keeps, one timer each. The order of the variants is the order in
/// which a tick handles what is due (then by key): that order is visible (guest numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Due {
    /// A connection's hello wait is over.
    Hello(ConnId),
    /// A peer's keepalive: ping or drop it, or look again later if it was heard since.
    Keepalive(ConnId),
    /// An orphan (see [`handshake::Orphans`]) is to be judged.
    Orphan(u64),
    /// A peer that dropped is to be dialled again.
    Redial(SocketAddr),
    /// Mesh mode scans its range.
    Scan,
}

/// The chat state of one node.
#[derive(Debug)]
pub struct Chat {
    cfg: Config,
    me: MemberId,
    seq: u64,
    /// The latest `now` the caller passed.
    clock: Instant,
    neighbours: Neighbours,
    seen: Seen,
    roster: Roster,
    /// Guests numbered so far.
    guests: u32,
    discovery: Discovery,
    orphans: Orphans,
    timers: Timers<Due>,
    quitting: bool,
    /// The one queue of actions: their order is what users see.
    out: Outbox,
}

impl Chat {
    pub fn new(cfg: Config, now: Instant) -> Self {
        let me = MemberId::node(cfg.node);
        let mut timers = Timers::new();
        if cfg.mesh.is_some() {
            timers.set(Due::Scan, now);
        }
        Chat {
            me,
            seq: 0,
            clock: now,
            neighbours: Neighbours::default(),
            seen: Seen::new(),
            roster: Roster::new(me, &cfg.nick),
            guests: 0,
            discovery: Discovery::new(),
            orphans: Orphans::default(),
            timers,
            quitting: false,
            out: Outbox::default(),
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
        self.out.next()
    }

    /// The earliest instant at which [`Chat::handle_tick`] may have something to do. It may be
    /// early (a peer heard since its timer was set is looked at again and left alone), never
    /// late.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// True once the local user has left.
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// True while dials the chat asked for are under way or waiting for their hello: typed
    /// input waits for these at start-up (a piped line should reach the mesh, not nobody).
    pub fn is_settling(&self) -> bool {
        self.discovery.is_dialling() || self.neighbours.any_speculative()
    }

    /// The local user's nick now.
    pub fn nick(&self) -> &str {
        &self.cfg.nick
    }

    /// Who is here, as `/names` lists them (the terminal completes these).
    pub fn names(&self) -> Vec<Name> {
        self.roster.names()
    }

    /// A connection is open (accepted, or a dial succeeded). The caller has sent our hello.
    pub fn handle_opened(&mut self, conn: ConnId, link: Link, now: Instant) {
        self.clock = now;
        let wait = match link.origin {
            Origin::Accepted => HELLO_WAIT,
            Origin::Dialled => HELLO_WAIT_DIALLED,
            Origin::Auto(target) => {
                self.discovery.opened(target);
                HELLO_WAIT_DIALLED
            }
        };
        let ends = link.dialler_and_acceptor();
        self.neighbours
            .insert(conn, Neighbour::pending(link.addr, link.origin, ends));
        self.timers.set(Due::Hello(conn), now + wait);
    }

    /// A dial asked for with [`Action::Dial`] failed.
    pub fn handle_dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        self.clock = now;
        self.dial_failed(addr, now);
    }

    /// A connection is gone. `reason` is shown with the leave when the peer did not say goodbye.
    pub fn handle_closed(&mut self, conn: ConnId, reason: Option<String>) {
        let Some(c) = self.forget_conn(conn) else {
            return;
        };
        match c.kind {
            Kind::Pending => {
                if let Origin::Auto(target) = c.origin {
                    self.dial_failed(target, self.clock);
                }
            }
            Kind::Guest(g) => {
                if self.quitting {
                    return;
                }
                let leave = self
                    .roster
                    .leave(g.member, Some(c.addr.to_string()), reason.clone());
                self.out.show(leave);
                self.roster.forget(g.member);
                self.roster.mark_gone(g.member, self.clock);
                self.broadcast_leave(g.member, g.nick, reason);
            }
            Kind::Peer(p) => {
                let state = p.state();
                if state == PeerState::SaidBye
                    || self.quitting
                    || self.neighbours.peer_conn(p.node).is_some()
                {
                    return;
                }
                let lost = Lost {
                    node: p.node,
                    nick: p.nick,
                    listen: p.listen,
                    addr: p.listen.unwrap_or(c.addr),
                    reason: reason.or_else(|| Some("connection closed".to_string())),
                };
                if state == PeerState::Retired {
                    // A duplicate closed on purpose, and its twin is not classified (yet).
                    self.orphan(lost);
                } else {
                    self.lose_peer(lost);
                }
            }
        }
    }

    /// Forgets `conn` and every timer it has: the only way a connection leaves the chat, so a
    /// connection id reused later starts with no deadline of the one before.
    fn forget_conn(&mut self, conn: ConnId) -> Option<Neighbour> {
        self.timers.cancel(&Due::Hello(conn));
        self.timers.cancel(&Due::Keepalive(conn));
        self.neighbours.remove(conn)
    }

    /// A peer connection is gone for good: dial it again later, and tell everyone it left.
    fn lose_peer(&mut self, lost: Lost) {
        self.look_for(lost.listen);
        let member = MemberId::node(lost.node);
        self.roster.mark_lost(member, self.clock);
        if self.remove_member(member, Some(lost.addr.to_string()), lost.reason.clone()) {
            self.broadcast_leave(member, lost.nick, lost.reason);
        }
    }

    /// Time passed: hello waits, keepalives and timeouts, orphans, re-dials, mesh scans. Costs
    /// what is due, not a pass over every connection.
    pub fn handle_tick(&mut self, now: Instant) {
        self.clock = now;
        let mut due: Vec<Due> = std::iter::from_fn(|| self.timers.pop_due(now)).collect();
        // By kind, then by key: connection order, so guest numbers do not depend on timing.
        due.sort_unstable();
        let (mut ping, mut dead) = (Vec::new(), Vec::new());
        for &d in &due {
            if let Due::Keepalive(conn) = d {
                match self.keepalive_due(conn, now) {
                    Some(Check::Ping(_)) => ping.push(conn),
                    Some(Check::Dead) => dead.push(conn),
                    _ => {}
                }
            }
        }
        for &d in &due {
            if let Due::Hello(conn) = d {
                self.hello_overdue(conn);
            }
        }
        for conn in ping {
            self.out.send(conn, Frame::Ping);
        }
        for conn in dead {
            self.drop_conn(conn, "timed out".to_string());
        }
        for &d in &due {
            if let Due::Orphan(n) = d {
                self.orphan_due(n);
            }
        }
        if self.quitting {
            return;
        }
        for &d in &due {
            match d {
                Due::Redial(addr) => self.redial_due(addr, now),
                Due::Scan => self.scan_due(now),
                _ => {}
            }
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
        let (quitting, timeout) = (self.quitting, self.cfg.peer_timeout);
        let Some(c) = self.neighbours.get_mut(conn) else {
            return;
        };
        let origin = c.origin;
        match &mut c.kind {
            Kind::Pending => self.first_line(conn, origin, &text),
            // Taken for a guest by its silence, but its first line is a hello: a peerchat node
            // that was slow to answer. It becomes the peer it is.
            Kind::Guest(g) if g.voice == Voice::Silent => match protocol::parse_hello(&text) {
                Some(hello) => self.upgrade_to_peer(conn, hello),
                None => {
                    g.voice = Voice::Spoken;
                    self.guest_line(conn, &text);
                }
            },
            // Leaving: only what classifies a connection still matters, so held output is sent.
            _ if quitting => {}
            Kind::Guest(_) => self.guest_line(conn, &text),
            // It said goodbye: whatever follows is not taken.
            Kind::Peer(p) if p.state() == PeerState::SaidBye => {}
            Kind::Peer(p) => {
                if let Some(at) = p.alive.heard(now, timeout) {
                    self.timers.set(Due::Keepalive(conn), at);
                }
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
        match Command::parse(line) {
            Command::Blank => {}
            Command::Quit(reason) => self.quit(reason.map(str::to_string)),
            Command::Say(text) => self.speak(text, Speech::Say),
            Command::Me(text) => self.speak(text, Speech::Act),
            Command::Msg { nick, text } => self.direct(nick, text),
            Command::Nick(new) => self.change_nick(new),
            Command::Names => self.out.show(Event::Names(self.roster.names())),
            Command::Connect(host) => self.out.connect(host.to_string()),
            Command::Help => {
                for line in HELP_LINES {
                    self.out.show(Event::Info(line.to_string()));
                }
            }
            Command::Usage(usage) => self.out.show(Event::Error(usage)),
            Command::Unknown(word) => self.out.show(Event::Error(format!(
                "unknown command {word}; nothing was sent (type /help)"
            ))),
        }
    }

    /// The user's input ended (and the caller does not keep running without it).
    pub fn handle_input_end(&mut self) {
        self.quit(None);
    }

    /// Forgets `conn` at once (later lines from it are ignored), announces its leave, and asks
    /// the caller to close it.
    fn drop_conn(&mut self, conn: ConnId, reason: String) {
        self.handle_closed(conn, Some(reason.clone()));
        self.out.close(conn, reason);
    }

    /// Adds `member` to the roster and shows its join, if it fits.
    fn add_member(&mut self, member: MemberId, nick: &str, addr: Option<String>) {
        if let Some(join) = self.roster.add(member, nick, addr) {
            self.out.show(join);
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
        let leaves = self.roster.remove(member, addr, reason, self.clock);
        let known = !leaves.is_empty();
        for leave in leaves {
            self.out.show(leave);
        }
        known
    }

    /// Tells everyone that `member` left (this node, a guest of ours, or a peer we lost).
    fn broadcast_leave(&mut self, member: MemberId, nick: String, reason: Option<String>) {
        let id = self.next_id();
        self.out.broadcast(
            None,
            Frame::Leave {
                id,
                member,
                nick,
                reason,
            },
        );
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
