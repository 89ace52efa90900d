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
//! per frame kind), `floors.rs` (per origin, the highest counter forgotten: older frames are
//! replays), `keepalive.rs` (pings and timeouts), `handshake.rs` (classifying a
//! connection, duplicates, orphans), `commands.rs` (the typed-line parser and the commands'
//! steps), `guests.rs` (a guest's welcome and its commands), `flood.rs`, `recent.rs`, `bounds.rs` (the roster's caps per origin), `outbox.rs` (the one action queue), `api.rs` (the public
//! types), `known.rs` (remembered keys and fingerprints), `origins.rs` (keys, counters and
//! suspicions of the nodes that originate frames), and one timer table for every deadline.
//!
//! Only `Chat` owns the action queue, because the order of actions is what users see. The steps
//! that need several rooms at once are `impl Chat` blocks in the file of the concern they serve,
//! rather than methods of a room that would have to hold the others: no state type holds
//! another room or the `Chat`. This file keeps the public inputs, the tick, and what every step
//! shares: forgetting a connection, members joining and leaving, fresh message ids.

mod api;
mod bounds;
mod claims;
mod commands;
mod discovery;
mod flood;
mod floors;
mod guests;
mod handshake;
mod history;
mod keepalive;
mod known;
mod neighbours;
mod originate;
mod origins;
mod outbox;
mod recent;
mod relay;
mod roster;
mod sealed;
mod seen;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

pub use self::api::{
    Action, Config, ConnId, Link, Mesh, Origin, DEFAULT_HISTORY, DEFAULT_MAX_GUESTS_PER_IP,
    DEFAULT_MAX_PEERS, DEFAULT_PEER_TIMEOUT, HELLO_WAIT, HELLO_WAIT_DIALLED,
};
pub use self::commands::{is_leave_command, Command, COMMANDS, HELP_LINES};
pub use self::flood::{RateLimit, DEFAULT_GUEST_RATE};
pub use self::known::{fingerprint, fold, is_fingerprint, KeyCheck, KnownKeys, MAX_KNOWN};
pub use crate::event::{Event, Found, Name, Role};
use crate::protocol::sign::Nonce;
use crate::protocol::{self, Frame, Hello, MemberId, MsgId, NodeId, NodeKey, Signed};
use crate::timers::Timers;

use self::discovery::Discovery;
use self::handshake::{Lost, Orphans};
use self::history::History;
use self::keepalive::Check;
use self::neighbours::{Kind, Neighbour, Neighbours, PeerState, Voice};
use self::origins::Origins;
use self::outbox::Outbox;
use self::roster::Roster;
use self::seen::Seen;
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
    /// A claim that this node was lost is to be judged (see [`origins::Origins::claim`]).
    Suspect(NodeId),
    /// This node owes a `HERE` held back by its rate limit.
    Here,
    /// This node says it is here, and forgets nodes that went silent.
    Heartbeat,
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
    /// Keys, counters and suspicions of the nodes that originate frames.
    origins: Origins,
    /// When this node last sent a `HERE` for itself, and whether it owes one.
    here_sent: Option<Instant>,
    here_owed: bool,
    orphans: Orphans,
    timers: Timers<Due>,
    quitting: bool,
    /// The one queue of actions: their order is what users see.
    out: Outbox,
    /// The last messages, and what was said while no peer was connected.
    history: History,
    /// The `now` the chat was made with, when the wall time was `cfg.wall`.
    started: Instant,
    /// The wall time this node's first peer link came up: what peers hand over from before
    /// it is history, what was said after it (while this node was cut off) is late.
    joined: Option<u64>,
}

impl Chat {
    pub fn new(cfg: Config, now: Instant) -> Self {
        let me = MemberId::node(cfg.node);
        let mut timers = Timers::new();
        if cfg.mesh.is_some() {
            timers.set(Due::Scan, now);
        }
        timers.set(Due::Heartbeat, now + origins::HEARTBEAT);
        let mut chat = Chat {
            me,
            seq: 0,
            clock: now,
            neighbours: Neighbours::default(),
            seen: Seen::new(),
            roster: Roster::new(me, &cfg.nick, cfg.private),
            guests: 0,
            discovery: Discovery::new(),
            origins: Origins::default(),
            here_sent: None,
            here_owed: false,
            orphans: Orphans::default(),
            timers,
            quitting: false,
            out: Outbox::default(),
            history: History::new(cfg.history),
            started: now,
            joined: None,
            cfg,
        };
        // Our own announcement, signed once and handed to every new peer.
        let join = Frame::Join {
            id: chat.next_id(),
            member: chat.me,
            nick: chat.cfg.nick.clone(),
            addr: None,
            key: Some(chat.node_key()),
        };
        chat.out.originate(None, join);
        let own = chat.node_key();
        chat.origins.learn(chat.cfg.node, own, now);
        chat.learn_key(chat.me);
        chat.seal();
        while chat.out.next().is_some() {}
        chat
    }

    /// This node's public key and run.
    fn node_key(&self) -> NodeKey {
        NodeKey {
            key: self.cfg.key.verifying_key(),
            run: self.cfg.run,
        }
    }

    /// The hello this node sends first on a connection: it carries the current nick, the key,
    /// and `nonce`, which must be fresh for each connection (the caller draws it).
    pub fn hello(&self, nonce: Nonce) -> Frame {
        Frame::Hello(Hello {
            nick: self.cfg.nick.clone(),
            node: self.cfg.node,
            listen: self.cfg.listen,
            key: self.node_key(),
            nonce,
        })
    }

    /// The next action to carry out, in order. Call until `None` after every `handle_*`.
    /// What this node said since the last call is signed when the queue runs dry, so one
    /// signature covers a whole burst (see [`Chat::poll_queued`]).
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(a) = self.out.next() {
            return Some(a);
        }
        self.seal();
        self.out.next()
    }

    /// As [`Chat::poll_action`], but leaves what this node said unsigned for now: for a
    /// caller that feeds several inputs in a row and then calls `poll_action`.
    pub fn poll_queued(&mut self) -> Option<Action> {
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
        self.names_found()
    }

    /// A connection is open (accepted, or a dial succeeded). The caller has sent our hello,
    /// `sent` (the line without its `\n`).
    pub fn handle_opened(&mut self, conn: ConnId, link: Link, sent: String, now: Instant) {
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
            .insert(conn, Neighbour::pending(link.addr, link.origin, ends, sent));
        self.timers.set(Due::Hello(conn), now + wait);
    }

    /// The caller started dialling, on `conn`, a peer the user asked for (on the command line,
    /// with `/connect`, or again after losing it), and holds for that connection what the chat
    /// broadcasts meanwhile. What this node says from now on is signed for peers, so that
    /// lines typed before the connection is up reach the peer it proves to be, and so does a
    /// goodbye. Until [`Chat::handle_opened`] or [`Chat::handle_closed`] for `conn`.
    pub fn handle_dialling(&mut self, conn: ConnId) {
        self.neighbours.dialling(conn);
    }

    /// A dial asked for with [`Action::Dial`] failed.
    pub fn handle_dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        self.clock = now;
        self.dial_failed(addr, now);
    }

    /// A connection is gone (or a dial of [`Chat::handle_dialling`] ended without opening).
    /// `reason` is shown with the leave when the peer did not say goodbye.
    pub fn handle_closed(&mut self, conn: ConnId, reason: Option<String>) {
        let Some(c) = self.forget_conn(conn) else {
            return;
        };
        match c.kind {
            Kind::Pending | Kind::Proving { .. } => {
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
                if self.quitting || self.neighbours.peer_conn(p.node).is_some() {
                    return;
                }
                if state == PeerState::SaidBye {
                    // Its goodbye was shown; what it claimed others lost cannot be answered
                    // through it any more, and perhaps through no one.
                    return self.believe_if_cut_off();
                }
                let lost = Lost {
                    node: p.node,
                    nick: p.nick,
                    listen: p.listen,
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

    /// The caller is ending because no connection is left and none is coming (a client whose
    /// last peer went, or whose dials all failed). What still waited to be judged is judged
    /// now, since nothing can reach this node any more, and the leaves are shown before the
    /// end: a duplicate link closed before its twin was known (the twin never came), and a
    /// claim of another node's that some node was lost (its news could only come through a
    /// peer, and the last one left).
    pub fn handle_cut_off(&mut self) {
        if self.quitting {
            return;
        }
        for n in self.orphans.numbers() {
            self.timers.cancel(&Due::Orphan(n));
            self.orphan_due(n);
        }
        self.believe_suspicions();
    }

    /// Forgets `conn` and every timer it has: the only way a connection leaves the chat, so a
    /// connection id reused later starts with no deadline of the one before.
    fn forget_conn(&mut self, conn: ConnId) -> Option<Neighbour> {
        self.timers.cancel(&Due::Hello(conn));
        self.timers.cancel(&Due::Keepalive(conn));
        self.neighbours.remove(conn)
    }

    /// A peer connection is gone for good: dial it again later, and tell everyone we lost it.
    /// It is shown leaving only if nothing fresh comes from it through others meanwhile.
    fn lose_peer(&mut self, lost: Lost) {
        self.look_for(lost.listen);
        let member = MemberId::node(lost.node);
        if !self.roster.contains(&member) {
            return;
        }
        let id = self.next_id();
        self.out.originate(
            None,
            Frame::Lost {
                id,
                member,
                nick: lost.nick,
                reason: lost.reason.clone(),
            },
        );
        // Shown leaving only if nothing fresh comes from it meanwhile, also with no other peer
        // left: a link back within the wait (a blip, a re-dial) shows nothing and keeps its
        // guests. A node that ends instead judges at once (`handle_cut_off`), and the same
        // person back with a new run is judged when it proves its hello (`make_peer`).
        self.suspect(lost.node, lost.reason);
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
                Due::Suspect(node) => self.suspect_due(node),
                Due::Here => self.say_here(),
                Due::Heartbeat => self.heartbeat(now),
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
            Kind::Proving { .. } => self.proof_line(conn, &text),
            // Taken for a guest by its silence, but its first line is a hello: a peerchat node
            // that was slow to answer. It becomes the peer it is.
            Kind::Guest(g) if g.voice == Voice::Silent => match protocol::parse_hello(&text) {
                Some(hello) => self.upgrade_to_peer(conn, hello, &text),
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
                if p.bundle.is_some() {
                    return self.bundle_line(conn, &text);
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

    /// The user typed `line` (without its `\n`) at `now`: what it says is dated then.
    pub fn handle_input(&mut self, line: &str, now: Instant) {
        self.clock = now;
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
            Command::Names => self.out.show(Event::Names(self.names_found())),
            Command::Whois(nick) => {
                for line in self.whois_lines(nick, true) {
                    self.out.show(Event::Info(line));
                }
            }
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

    /// Adds `member` to the roster, with `announce` (its node's signed announcement of it, kept
    /// for new peers) if given, and shows its join, if it fits; false if it did not.
    fn add_member(
        &mut self,
        member: MemberId,
        nick: &str,
        addr: Option<String>,
        announce: Option<&Rc<Signed>>,
    ) -> bool {
        let join = self.roster.add(member, nick, addr, announce.cloned());
        let fitted = join.is_some();
        if let Some(mut join) = join {
            // Its key first, so that a join under a nick known with another key is shown with
            // the warning its messages will carry.
            self.learn_key(member);
            if let Event::Join { nick, .. } = &mut join {
                *nick = self.roster.shown(member);
            }
            self.out.show(join);
        }
        fitted
    }

    /// Our guests are told that `member`, called `nick`, joined (learnt on `conn`, which is not
    /// told). A line for guests only: it carries no signature and goes to no peer.
    fn tell_guests_joined(&mut self, conn: ConnId, member: MemberId, nick: &str) {
        self.out.for_guests(
            Some(conn),
            Frame::Join {
                id: MsgId {
                    node: member.node,
                    seq: 0,
                },
                member,
                nick: nick.to_string(),
                addr: None,
                key: None,
            },
        );
    }

    /// Removes `member` (and, for a node, the guests it hosted), showing each leave, to our
    /// guests too. False if it was not known.
    fn remove_member(
        &mut self,
        member: MemberId,
        addr: Option<String>,
        reason: Option<String>,
    ) -> bool {
        let going = match member.guest {
            0 => self.roster.hosted(member.node),
            _ => self
                .roster
                .hosted(member.node)
                .into_iter()
                .filter(|(m, _)| *m == member)
                .collect(),
        };
        for (m, v) in going {
            let reason = match m == member {
                true => reason.clone(),
                false => Some("its node left".into()),
            };
            self.out.for_guests(
                None,
                Frame::Leave {
                    id: MsgId {
                        node: m.node,
                        seq: 0,
                    },
                    member: m,
                    nick: v.nick,
                    reason,
                },
            );
        }
        let leaves = self.roster.remove(member, addr, reason);
        let known = !leaves.is_empty();
        for leave in leaves {
            self.out.show(leave);
        }
        known
    }

    /// Tells everyone that `member` left for good (this node, or a guest of ours).
    fn broadcast_leave(&mut self, member: MemberId, nick: String, reason: Option<String>) {
        let id = self.next_id();
        self.out.originate(
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
