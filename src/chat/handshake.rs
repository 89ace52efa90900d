//! What a connection is: classifying it by its first line (a hello, a refusal, something that is
//! not a peer, a guest) or its silence, keeping one connection per pair of nodes, turning a
//! silent guest that says hello late into the peer it is, welcoming a new peer (the members it
//! must know and the `PEERS` list of where our other peers listen; `PEERS` heard are
//! discovery's), and judging orphans (a duplicate that closed before its twin was classified).
//!
//! The pure decisions are the free functions and [`Orphans`]; the `impl Chat` steps carry them
//! out. Must not parse frames past the hello (the relay does) nor do IO.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::flood::Verdict;
use super::guests::Refusal;
use super::neighbours::{source_of, Guest, Kind, Neighbour, Peer, Voice};
use super::{Chat, ConnId, Due, Origin, HELLO_WAIT_DIALLED};
use crate::event::{Event, Role};
use crate::protocol::{self, Frame, Hello, MemberId, NodeId};

/// What the first line on a connection says it is.
#[derive(Debug, PartialEq)]
pub(super) enum FirstLine {
    /// Boxed: a hello is large (its key), and the other variants are a word at most.
    Hello(Box<Hello>),
    /// A peerchat node of another protocol version.
    OtherVersion(u32),
    /// A hello of this version that does not hold together (a node id its key does not give).
    BadHello,
    /// A full node refused us (only a node we dialled can).
    Refusal,
    /// A dial of ours reached something that does not speak first as a node does.
    NotAPeer,
    /// A person (or a script): the line is its first message.
    Guest,
}

/// Classifies the first line `text` on a connection opened as `origin`.
pub(super) fn classify(origin: Origin, text: &str) -> FirstLine {
    match protocol::parse_hello(text) {
        Some(hello) => FirstLine::Hello(Box::new(hello)),
        None => match protocol::hello_version(text) {
            Some(v) if v != protocol::VERSION => FirstLine::OtherVersion(v),
            Some(_) => FirstLine::BadHello,
            None => classify_other(origin, text),
        },
    }
}

/// A first line that is no hello of ours.
fn classify_other(origin: Origin, text: &str) -> FirstLine {
    match () {
        _ if origin != Origin::Accepted && protocol::is_refusal(text) => FirstLine::Refusal,
        _ if matches!(origin, Origin::Auto(_)) => FirstLine::NotAPeer,
        _ => FirstLine::Guest,
    }
}

/// Two connections to one node proven at most this far apart crossed: both ends dialled at
/// about the same time, and [`rank`] settles which stays. The dialled hello wait: longer than
/// two hellos and proofs take on any link that keeps a peer.
const CROSSING: Duration = HELLO_WAIT_DIALLED;

/// How a connection to node `node` ranks for keeping (smaller is kept): the one dialled by the
/// smaller node id, or if one node dialled both, the one from its lower port. Both ends see the
/// same dialler and ports, so both keep the same one.
fn rank(me: NodeId, node: NodeId, c: Option<&Neighbour>) -> (bool, u16, Option<SocketAddr>) {
    let keeper = me.min(node);
    c.map_or((true, u16::MAX, None), |c| {
        let dialler = if c.origin == Origin::Accepted {
            node
        } else {
            me
        };
        (dialler != keeper, c.ends.0, Some(c.ends.1))
    })
}

/// A peer whose last connection closed without a goodbye.
#[derive(Debug)]
pub(super) struct Lost {
    pub(super) node: NodeId,
    pub(super) nick: String,
    pub(super) listen: Option<SocketAddr>,
    pub(super) reason: Option<String>,
}

/// Peers whose retired duplicate closed before the connection kept was classified: lost unless
/// a connection to them is up when their timer (`Due::Orphan`) fires.
#[derive(Debug, Default)]
pub(super) struct Orphans {
    next: u64,
    waiting: BTreeMap<u64, Lost>,
}

impl Orphans {
    /// Keeps `lost` until judged; its number, in the order kept.
    fn add(&mut self, lost: Lost) -> u64 {
        self.next += 1;
        self.waiting.insert(self.next, lost);
        self.next
    }

    fn take(&mut self, n: u64) -> Option<Lost> {
        self.waiting.remove(&n)
    }

    /// The numbers of the orphans waiting, in the order kept.
    pub(super) fn numbers(&self) -> Vec<u64> {
        self.waiting.keys().copied().collect()
    }
}

impl Chat {
    /// The first line on a connection not classified yet.
    pub(super) fn first_line(&mut self, conn: ConnId, origin: Origin, text: &str) {
        match classify(origin, text) {
            FirstLine::Hello(hello) => self.start_proof(conn, *hello, text),
            FirstLine::OtherVersion(v) => self.other_version(conn, v),
            FirstLine::BadHello => self.drop_conn(conn, "malformed hello".into()),
            FirstLine::Refusal => self.refused(conn, protocol::refusal_reason(text)),
            FirstLine::NotAPeer => self.not_a_peer(conn),
            FirstLine::Guest => {
                self.make_guest(conn, Voice::Spoken);
                self.guest_line(conn, text);
            }
        }
    }

    /// `conn` said hello: it must now prove it holds the key its hello names, and we prove
    /// ours. Our own connection to ourselves is closed at once.
    fn start_proof(&mut self, conn: ConnId, hello: Hello, line: &str) {
        let Some(c) = self.neighbours.get_mut(conn) else {
            return;
        };
        if hello.node == self.cfg.node {
            if let Origin::Auto(target) = c.origin {
                self.not_peer(target);
            }
            return self.drop_conn(conn, "connected to itself".to_string());
        }
        let proof = protocol::sign::sign_proof(&self.cfg.key, &c.sent, line);
        c.kind = Kind::Proving {
            hello: Box::new(hello),
            line: line.to_string(),
        };
        self.out.send_first(conn, &Frame::Proof(proof));
        self.timers
            .set(Due::Hello(conn), self.clock + HELLO_WAIT_DIALLED);
    }

    /// The line after a hello: its proof, which makes the connection a peer, or the end of it.
    pub(super) fn proof_line(&mut self, conn: ConnId, text: &str) {
        let Some(c) = self.neighbours.get(conn) else {
            return;
        };
        let Kind::Proving { hello, line } = &c.kind else {
            return;
        };
        let proven = match protocol::parse_frame(text) {
            Ok(Frame::Proof(sig)) => {
                protocol::sign::verify_proof(&hello.key.key, &sig, line, &c.sent)
            }
            // A node that took us for a guest while our hello was slow to reach it (its guest
            // welcome): its proof follows once it reads our hello. The hello wait bounds this.
            Err(_) if protocol::is_guest_text(text) => return,
            _ => false,
        };
        if !proven {
            return self.drop_conn(
                conn,
                "its hello was not proven (bad or missing proof)".into(),
            );
        }
        let hello = Hello::clone(hello);
        self.make_peer(conn, hello);
    }

    /// A peerchat node of another version: told so in words it shows (it takes us for a guest),
    /// told here too, and closed.
    fn other_version(&mut self, conn: ConnId, version: u32) {
        let Some(c) = self.forget_conn(conn) else {
            return;
        };
        let ours = protocol::VERSION;
        let line = format!(
            "peerchat/{ours} cannot talk to peerchat/{version}: this node speaks protocol {ours}; \
             upgrade peerchat on one side"
        );
        self.out.send_first(conn, &Frame::Unknown(line));
        self.out.show(Event::Error(format!(
            "refused {}: it speaks peerchat/{version}, this node peerchat/{ours}; upgrade one side",
            c.addr
        )));
        if let Origin::Auto(target) = c.origin {
            self.not_peer(target);
        }
        self.out.retire(conn);
    }

    /// The hello wait of `conn` is over and it said nothing (or said hello and no proof).
    pub(super) fn hello_overdue(&mut self, conn: ConnId) {
        let Some(c) = self.neighbours.get(conn) else {
            return;
        };
        if matches!(c.kind, Kind::Proving { .. }) {
            return self.drop_conn(conn, "its hello was not proven in time".into());
        }
        if !matches!(c.kind, Kind::Pending) {
            return;
        }
        match c.origin {
            // Silent: perhaps a node too busy to answer (stopped, loaded). Not a guest, but not
            // written off either: it is tried again later.
            Origin::Auto(target) => self.give_up_dial(conn, target, "no hello"),
            _ => self.make_guest(conn, Voice::Silent),
        }
    }

    /// A node we dialled refused us (it is full, or a private group and we have no secret): a
    /// dial of ours is tried again later as if it had failed; one the user asked for is an
    /// error saying `reason`.
    fn refused(&mut self, conn: ConnId, reason: &str) {
        match self.neighbours.get(conn).map(|c| c.origin) {
            Some(Origin::Auto(target)) => self.give_up_dial(conn, target, reason),
            _ => {
                self.forget_conn(conn);
                self.out.refused(conn, reason);
            }
        }
    }

    /// A connection the chat dialled by itself to `target` came to nothing worth keeping: it
    /// is forgotten and closed, and `target` is tried again later as if the dial had failed.
    fn give_up_dial(&mut self, conn: ConnId, target: SocketAddr, reason: &str) {
        self.forget_conn(conn);
        self.dial_failed(target, self.clock);
        self.out.close(conn, reason);
    }

    /// A connection the chat dialled by itself is not another peerchat node: close it quietly
    /// and do not dial that address again.
    fn not_a_peer(&mut self, conn: ConnId) {
        if let Some(Origin::Auto(target)) = self.forget_conn(conn).map(|c| c.origin) {
            self.not_peer(target);
            self.forget_redial(target);
        }
        self.out.close(conn, "not a peerchat node");
    }

    /// `conn` proved its hello: it is a peer. Joins it to the chat unless it is a second
    /// connection to a node we have (then one of the two is retired).
    pub(super) fn make_peer(&mut self, conn: ConnId, hello: Hello) {
        let Some(c) = self.neighbours.get(conn) else {
            return;
        };
        let addr = c.addr;
        self.dial_answered(conn);
        let listen = hello.listen.map(|port| SocketAddr::new(addr.ip(), port));
        let existing = self.neighbours.peer_conn(hello.node);
        let peer = Peer::new(
            hello.nick.clone(),
            hello.node,
            listen,
            self.clock,
            super::history::budget(self.cfg.history),
        );
        self.neighbours.set_kind(conn, Kind::Peer(peer));
        self.classified(conn, Role::Peer);
        self.arm_keepalive(conn);
        if let Some(listen) = listen {
            self.forget_redial(listen);
        }
        // The same person in a new run (a restart): the run we lost is gone, shown leaving
        // before the new one joins, so the two are never shown side by side as twins.
        for node in self.origins.suspected() {
            if node != hello.node && self.origins.key(node) == Some(&hello.key.key) {
                self.timers.cancel(&Due::Suspect(node));
                self.suspect_due(node);
            }
        }
        // Proven just now: its key is known, and any claim that it was lost is void.
        self.origins.learn(hello.node, hello.key, self.clock);
        self.origins.clear(hello.node);
        self.origins.touch(hello.node, self.clock);
        if let Some(other) = existing {
            return self.one_connection(conn, other, hello.node);
        }
        let member = MemberId::node(hello.node);
        let shown_addr = listen.unwrap_or(addr).to_string();
        self.roster.mark_back(&member);
        if self.roster.contains(&member) {
            self.roster.update(member, &hello.nick, Some(shown_addr));
            self.learn_key(member);
        } else if !self.quitting {
            self.add_member(member, &hello.nick, Some(shown_addr.clone()), None);
            self.tell_guests_joined(conn, member, &hello.nick);
        }
        if !self.quitting {
            self.welcome(conn, member);
            // Fresh news of us for whoever had us as lost beyond this peer.
            self.owe_here();
        }
    }

    /// `conn` is known for what it is: its hello wait is over, and the caller is told.
    fn classified(&mut self, conn: ConnId, role: Role) {
        self.timers.cancel(&Due::Hello(conn));
        self.out.classify(conn, role);
    }

    /// Tells the new peer `member` on `conn` who is here — each member's own signed
    /// announcement, as kept — and where our other peers listen. All queued in this turn: the
    /// roster keeps at most `bounds::MAX_KEPT_WIRE` bytes of other nodes' announcements, so that
    /// this stays well under the default `--max-backlog` (a peer past it is cut off).
    fn welcome(&mut self, conn: ConnId, member: MemberId) {
        // Anything of ours still unsigned goes first, so our announcements follow in order.
        self.seal();
        for bundle in self.roster.announcements(member.node) {
            self.out.send(conn, Frame::Signed(bundle));
        }
        let peers = self.neighbours.listening_peers(conn);
        if !peers.is_empty() {
            self.out.send(conn, Frame::Peers(peers));
        }
        self.hand_history(conn);
    }

    /// Two connections to the same node: the new one is retired, unless the two crossed (both
    /// proven within [`CROSSING`]: both ends dialled at once), when both ends keep the same one
    /// (see [`rank`]). A connection that has been a peer for a while is never displaced: a node
    /// that relays the hellos and proofs of two others between its own connections to them
    /// (proofs bind hellos, not sockets) would otherwise win by its choice of ports, and then
    /// hold their link in its hands.
    fn one_connection(&mut self, new: ConnId, old: ConnId, node: NodeId) {
        let me = self.cfg.node;
        let settled = self
            .neighbours
            .peer_mut(old)
            .is_some_and(|p| self.clock >= p.since + CROSSING);
        let loser = if !settled
            && rank(me, node, self.neighbours.get(new)) < rank(me, node, self.neighbours.get(old))
        {
            old
        } else {
            new
        };
        if settled {
            // The node dialled again while we hold a link to it: perhaps that link is dead at
            // its end. A ping finds out within a round trip (a reset closes it, and the next
            // dial is kept) instead of at the keepalive timeout.
            self.out.send(old, Frame::Ping);
        }
        self.neighbours.retire(loser);
        self.out
            .send(loser, Frame::Close("duplicate connection".into()));
        self.out.retire(loser);
    }

    /// A guest that turned out to be a peerchat node: its guest name leaves, the peer joins.
    pub(super) fn upgrade_to_peer(&mut self, conn: ConnId, hello: Hello, line: &str) {
        let Some((addr, origin, ends)) = self
            .neighbours
            .get(conn)
            .map(|c| (c.addr, c.origin, c.ends))
        else {
            return;
        };
        let reason = Some(format!("it is {}, a peerchat node", hello.nick));
        let sent = self
            .neighbours
            .get(conn)
            .map(|c| c.sent.clone())
            .unwrap_or_default();
        self.handle_closed(conn, reason);
        self.neighbours
            .insert(conn, Neighbour::pending(addr, origin, ends, sent));
        self.start_proof(conn, hello, line);
    }

    /// `conn` is a guest: it gets the next guest number, joins the chat and is welcomed, unless
    /// its address has all the guests it may (then it is told so and closed, unseen).
    /// [`Voice::Silent`] when made one by its silence (a late hello may still come).
    pub(super) fn make_guest(&mut self, conn: ConnId, voice: Voice) {
        let Some((source, origin)) = self
            .neighbours
            .get(conn)
            .map(|c| (source_of(c.addr), c.origin))
        else {
            return;
        };
        // Only connections that came to us: one the user dialled is theirs to have.
        if origin == Origin::Accepted && self.too_many_guests_from(source) {
            return self.refuse_guest(conn, source, Refusal::TooMany);
        }
        let mut bucket = self
            .neighbours
            .guest_bucket(source, self.clock, self.cfg.guest_rate);
        // Coming is speech too: a join (and the leave that follows it) costs its address one
        // line of the budget its guests share, so that reconnecting in a loop cannot fill
        // screens with joins and leaves. Part of the limits per address: off with them
        // (`--max-guests-per-ip 0`, for many guests behind one address).
        let per_address = self.cfg.max_guests_per_ip.is_some();
        if let (Origin::Accepted, Some(limit), true) = (origin, self.cfg.guest_rate, per_address) {
            if bucket.take(self.clock, limit) != Verdict::Pass {
                return self.refuse_guest(conn, source, Refusal::TooFast);
            }
        }
        // A number whose name someone took in any case (a guest's `/nick Guest-7`) is skipped, so the new
        // guest is not shown with a tag and `/msg guest-7` stays unambiguous; each member
        // holds one nick, so few are ever skipped.
        self.guests += 1;
        while self
            .roster
            .holds_any_case(&format!("guest-{}", self.guests))
        {
            self.guests += 1;
        }
        let member = MemberId {
            node: self.cfg.node,
            guest: self.guests,
        };
        let nick = format!("guest-{}", self.guests);
        let Some(addr) = self.neighbours.get(conn).map(|c| c.addr.to_string()) else {
            return;
        };
        let guest = Guest {
            member,
            nick: nick.clone(),
            voice,
            bucket,
        };
        self.neighbours.set_kind(conn, Kind::Guest(guest));
        self.classified(conn, Role::Guest);
        if self.quitting {
            return;
        }
        self.add_member(member, &nick, Some(addr.clone()), None);
        let id = self.next_id();
        self.out.originate(
            Some(conn),
            Frame::Join {
                id,
                member,
                nick: nick.clone(),
                addr: Some(addr),
                key: None,
            },
        );
        self.welcome_guest(conn, member, &nick);
    }

    /// A retired duplicate to `lost`'s node closed before its twin was classified: its hello
    /// may still be on the way. Judged once it has had time to come.
    pub(super) fn orphan(&mut self, lost: Lost) {
        let n = self.orphans.add(lost);
        self.timers
            .set(Due::Orphan(n), self.clock + HELLO_WAIT_DIALLED);
    }

    /// An orphan's time is up: lost, unless a connection to its node is up now.
    pub(super) fn orphan_due(&mut self, n: u64) {
        let Some(lost) = self.orphans.take(n) else {
            return;
        };
        if !self.quitting && self.neighbours.peer_conn(lost.node).is_none() {
            self.lose_peer(lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hello line of protocol 2, from a node with a key of its own.
    fn hello_line() -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let key = protocol::NodeKey {
            key: key.verifying_key(),
            run: [9; 8],
        };
        let hello = Frame::Hello(Hello {
            nick: "bob".into(),
            node: key.node(),
            listen: None,
            key,
            nonce: [1; 16],
        });
        let mut line = Vec::new();
        protocol::encode(&hello, &mut line);
        line.pop();
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn first_lines_by_origin() {
        let hello = hello_line();
        let hello = hello.as_str();
        let old = "peerchat/1 hello from bob (node=00000000000000bb listen=-)";
        let full = "peerchat: this chat is full (8 connections); try again later";
        let scan = Origin::Auto(SocketAddr::from(([127, 0, 0, 1], 5001)));
        for origin in [Origin::Accepted, Origin::Dialled, scan] {
            assert!(matches!(classify(origin, hello), FirstLine::Hello(_)));
        }
        assert_eq!(classify(Origin::Dialled, full), FirstLine::Refusal);
        assert_eq!(classify(scan, full), FirstLine::Refusal);
        // Only a node we dialled refuses: on an accepted connection it is someone typing.
        assert_eq!(classify(Origin::Accepted, full), FirstLine::Guest);
        assert_eq!(classify(scan, "SSH-2.0-OpenSSH_9.2"), FirstLine::NotAPeer);
        assert_eq!(classify(Origin::Dialled, "hi"), FirstLine::Guest);
        // A node of another version is told so, whoever opened the connection.
        for origin in [Origin::Accepted, Origin::Dialled, scan] {
            assert_eq!(classify(origin, old), FirstLine::OtherVersion(1));
        }
    }

    #[test]
    fn both_ends_rank_the_same_connection_first() {
        let (a, b): (NodeId, NodeId) = (1, 2);
        let a_addr = SocketAddr::from(([10, 0, 0, 1], 5000));
        let b_addr = SocketAddr::from(([10, 0, 0, 2], 5000));
        // Connection x: a dialled b from port 40001; y: b dialled a from port 40002.
        let conn = |origin, addr, ends| Neighbour::pending(addr, origin, ends, String::new());
        let x_at_a = conn(Origin::Dialled, b_addr, (40001, b_addr));
        let x_at_b = conn(Origin::Accepted, a_addr, (40001, b_addr));
        let y_at_a = conn(Origin::Accepted, b_addr, (40002, a_addr));
        let y_at_b = conn(Origin::Dialled, a_addr, (40002, a_addr));
        assert!(rank(a, b, Some(&x_at_a)) < rank(a, b, Some(&y_at_a)));
        assert!(rank(b, a, Some(&x_at_b)) < rank(b, a, Some(&y_at_b)));
        // One node dialled both: the lower port wins at both ends.
        let z_at_a = conn(Origin::Dialled, b_addr, (40000, b_addr));
        let z_at_b = conn(Origin::Accepted, a_addr, (40000, b_addr));
        assert!(rank(a, b, Some(&z_at_a)) < rank(a, b, Some(&x_at_a)));
        assert!(rank(b, a, Some(&z_at_b)) < rank(b, a, Some(&x_at_b)));
        assert!(rank(a, b, Some(&x_at_a)) < rank(a, b, None));
    }
}
