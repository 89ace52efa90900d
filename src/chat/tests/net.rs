//! The in-memory test network shared by the chat's scenario tests: several chats wired to each
//! other, frames carried through the real encoder, guests that read what they are sent as
//! lines, a fake clock; and small helpers to build single chats. It re-exports `fake_node.rs`
//! (a node played line by line) and `single.rs` (ready-made chats, readers of their actions),
//! so that a scenario file needs `use super::net::*` alone.
//!
//! Test support only: it must not hold assertions of its own beyond helpers that check a whole
//! scenario's outcome.

pub(super) use std::collections::{HashMap, HashSet};
pub(super) use std::net::SocketAddr;
pub(super) use std::ops::RangeInclusive;
pub(super) use std::rc::Rc;
pub(super) use std::time::{Duration, Instant};

pub(super) use crate::chat::discovery::{SCAN_FIRST, SCAN_MAX};
pub(super) use crate::chat::origins::{HEARTBEAT, SUSPECT_WAIT};
pub(super) use crate::chat::roster::MAX_SAME_NICK;
pub(super) use crate::chat::{
    Action, Chat, Config, ConnId, Event, Link, Mesh, Origin, Role, DEFAULT_MAX_PEERS,
    DEFAULT_PEER_TIMEOUT, HELLO_WAIT, HELLO_WAIT_DIALLED,
};
pub(super) use crate::protocol::sign::Run;
pub(super) use crate::protocol::{
    self, Frame, Hello, MemberId, MsgId, NodeId, NodeKey, Signed, MAX_TEXT,
};
pub(super) use ed25519_dalek::SigningKey;

pub(super) use super::fake_node::FakeNode;
pub(super) use super::single::*;

/// Node `i`'s identity key in the test network.
pub(super) fn key(i: usize) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32])
}

/// The run part of node `i`'s id in its `run`-th run.
pub(super) fn run_of(i: usize, run: u64) -> [u8; 8] {
    (((i as u64) << 32) | run).to_be_bytes()
}

/// Node `i`'s config in its `run`-th run (a restarted node is a new origin).
pub(super) fn config(i: usize, run: u64) -> Config {
    Config::new(format!("n{i}"), key(i), run_of(i, run), Some(5000))
}

/// Node `i`'s id in its first run.
pub(super) fn node_id(i: usize) -> NodeId {
    protocol::sign::node_id(&key(i).verifying_key(), &run_of(i, 0))
}

/// The hello `chat` sends on connection `conn`, and its line.
pub(super) fn hello_on(chat: &Chat, conn: ConnId) -> (Frame, String) {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&(conn as u64).to_be_bytes());
    let hello = chat.hello(nonce);
    let line = line_of(&hello);
    (hello, line)
}

/// Opens `conn` on `chat` as the reactor does: our hello goes out first (made by [`hello_on`]),
/// then the chat is told. Returns the hello line sent, which the other side's proof signs.
pub(super) fn open(chat: &mut Chat, conn: ConnId, link: Link, now: Instant) -> String {
    let (_, sent) = hello_on(chat, conn);
    chat.handle_opened(conn, link, sent.clone(), now);
    sent
}

/// The config of a chat tested alone, with its own key (seed 200, apart from the test
/// network's nodes and the fake nodes).
pub(super) fn solo(nick: &str, listen: Option<u16>) -> Config {
    Config::new(
        nick.into(),
        SigningKey::from_bytes(&[200; 32]),
        [200; 8],
        listen,
    )
}

/// The peer encoding of `frame`, without its `\n`.
pub(super) fn line_of(frame: &Frame) -> String {
    let mut bytes = Vec::new();
    protocol::encode(frame, &mut bytes);
    bytes.pop();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `frames` signed by node `i` of the test network in its first run, as it would send them.
pub(super) fn signed_by(i: usize, frames: Vec<Frame>) -> Frame {
    Frame::Signed(Rc::new(Signed::seal(&key(i), node_id(i), frames)))
}

pub(super) fn addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8], port))
}

pub(super) fn accepted(addr: SocketAddr) -> Link {
    Link {
        addr,
        local: SocketAddr::from(([10, 0, 0, 250], 5000)),
        origin: Origin::Accepted,
    }
}

/// A frame held for a link end whose role is not known yet; true if for that end alone.
pub(super) type Held = (Rc<Frame>, bool);

/// Several chats wired to each other in memory: each link is a pair of connection ends, and
/// frames travel through the real encoder and `handle_line`, in order per link. Dials the
/// chats ask for are refused unless `allow_dials` is set, so a test's topology stays put.
pub(super) struct Net {
    pub(super) nodes: Vec<Chat>,
    /// (node, conn) -> the other end.
    pub(super) links: HashMap<(usize, ConnId), (usize, ConnId)>,
    pub(super) next_conn: ConnId,
    pub(super) shown: Vec<Vec<Event>>,
    pub(super) quit: Vec<bool>,
    pub(super) closed: Vec<(usize, ConnId, String)>,
    pub(super) allow_dials: bool,
    /// Crashed nodes: whatever is sent to them is lost.
    pub(super) dead: Vec<bool>,
    /// Frames sent on a link, by kind ("PING", "MSG", ...).
    pub(super) sent: HashMap<String, usize>,
    /// Bytes each end (node, conn) of a link wrote, its hello included: what a reactor would
    /// have queued on that connection.
    pub(super) wrote: HashMap<(usize, ConnId), usize>,
    pub(super) now: Instant,
    /// What each guest connection (node, conn) was sent, as lines, and whether it is open.
    pub(super) guests: HashMap<(usize, ConnId), (Vec<String>, bool)>,
    /// Ends whose hello has not gone out yet, with what they sent meanwhile: a real node
    /// writes its hello before anything else on a connection, so those lines wait for it.
    pub(super) before_hello: HashMap<(usize, ConnId), Vec<u8>>,
    /// What each end of a link was classified as by its node, and the frames for ends not
    /// classified yet (true: for that connection alone): held, as the reactor holds them,
    /// and sent in the format of the role once it is known.
    pub(super) roles: HashMap<(usize, ConnId), Role>,
    pub(super) held: HashMap<(usize, ConnId), Vec<Held>>,
}

impl Net {
    pub(super) fn new(n: usize) -> Net {
        let now = Instant::now();
        Net {
            nodes: (0..n).map(|i| Chat::new(config(i, 0), now)).collect(),
            links: HashMap::new(),
            next_conn: 100,
            shown: vec![Vec::new(); n],
            quit: vec![false; n],
            closed: Vec::new(),
            allow_dials: false,
            dead: vec![false; n],
            sent: HashMap::new(),
            wrote: HashMap::new(),
            now,
            guests: HashMap::new(),
            before_hello: HashMap::new(),
            roles: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// A guest (a person at `nc`) connects to node `i`; it reads the hello first. Returns its
    /// connection there.
    pub(super) fn guest(&mut self, i: usize) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        let link = accepted(addr(200, 40000 + conn as u16));
        let (_, line) = hello_on(&self.nodes[i], conn);
        self.nodes[i].handle_opened(conn, link, line.clone(), self.now);
        self.guests.insert((i, conn), (Vec::new(), true));
        self.write_guest(i, conn, format!("{line}\n").as_bytes());
        conn
    }

    /// Guest `conn` of node `i` types `line`.
    pub(super) fn guest_says(&mut self, i: usize, conn: ConnId, line: &str) {
        self.nodes[i].handle_line(conn, line.as_bytes(), self.now);
        self.run();
    }

    /// What guest `conn` of node `i` was sent, line by line.
    pub(super) fn screen(&self, i: usize, conn: ConnId) -> &[String] {
        self.guests.get(&(i, conn)).map_or(&[], |g| &g.0)
    }

    /// Forgets what guest `conn` of node `i` was sent so far.
    pub(super) fn clear_screen(&mut self, i: usize, conn: ConnId) {
        if let Some(g) = self.guests.get_mut(&(i, conn)) {
            g.0.clear();
        }
    }

    /// True while guest `conn` of node `i` is connected.
    pub(super) fn guest_open(&self, i: usize, conn: ConnId) -> bool {
        self.guests.get(&(i, conn)).is_some_and(|g| g.1)
    }

    /// Bytes for guest `conn` of node `i`, if it is still connected.
    fn write_guest(&mut self, i: usize, conn: ConnId, bytes: &[u8]) {
        if let Some((screen, true)) = self.guests.get_mut(&(i, conn)) {
            let text = String::from_utf8_lossy(bytes);
            screen.extend(text.lines().map(str::to_string));
        }
    }

    /// The guests of node `i` still connected, in connection order.
    fn open_guests(&self, i: usize) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self
            .guests
            .iter()
            .filter(|(&(n, _), g)| n == i && g.1)
            .map(|(&(_, c), _)| c)
            .collect();
        v.sort_unstable();
        v
    }

    /// Guest `conn` of node `i` is closed: it gets nothing more.
    fn guest_closed(&mut self, i: usize, conn: ConnId) {
        if let Some(g) = self.guests.get_mut(&(i, conn)) {
            g.1 = false;
        }
    }

    /// Replaces node `i` with a fresh run of it (a new node id, like a restarted process).
    pub(super) fn restart(&mut self, i: usize, run: u64) {
        self.nodes[i] = Chat::new(config(i, run), self.now);
        self.quit[i] = false;
    }

    /// `a` accepts a connection dialled by `b`; both send their hello.
    pub(super) fn link_raw(&mut self, a: usize, b: usize, origin: Origin) {
        let (ca, cb) = self.open_raw(a, b, origin);
        for (x, cx) in [(a, ca), (b, cb)] {
            self.send_hello(x, cx);
        }
    }

    /// Node `x` sends its hello on its connection `cx` (the one it was opened with), then
    /// what it sent on `cx` while its hello was held back.
    pub(super) fn send_hello(&mut self, x: usize, cx: ConnId) {
        let held = self.before_hello.remove(&(x, cx)).unwrap_or_default();
        let (_, hello) = hello_on(&self.nodes[x], cx);
        self.emit(x, cx, format!("{hello}\n").as_bytes());
        self.emit(x, cx, &held);
    }

    /// `a` accepts a connection dialled by `b`; nothing is sent yet. Returns both ends.
    pub(super) fn open_raw(&mut self, a: usize, b: usize, origin: Origin) -> (ConnId, ConnId) {
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
        let (_, hello_a) = hello_on(&self.nodes[a], ca);
        let (_, hello_b) = hello_on(&self.nodes[b], cb);
        self.nodes[a].handle_opened(ca, accepted, hello_a, self.now);
        self.nodes[b].handle_opened(cb, dialled, hello_b, self.now);
        self.before_hello.insert((a, ca), Vec::new());
        self.before_hello.insert((b, cb), Vec::new());
        (ca, cb)
    }

    pub(super) fn link(&mut self, a: usize, b: usize) {
        self.link_raw(a, b, Origin::Dialled);
        self.run();
    }

    pub(super) fn conns_between(&self, a: usize, b: usize) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(&(n, _), &(m, _))| n == a && m == b)
            .map(|(&(_, c), _)| c)
            .collect();
        v.sort_unstable();
        v
    }

    pub(super) fn conn_of(&self, a: usize, b: usize) -> ConnId {
        self.conns_between(a, b)[0]
    }

    /// Ends the connection between `a` and `b` as a reset would, on both sides.
    pub(super) fn unlink(&mut self, a: usize, b: usize) {
        for ca in self.conns_between(a, b) {
            self.cut(a, ca, "connection reset", "connection reset");
        }
        self.run();
    }

    /// Every link of `i` breaks (a crash): its neighbours see resets.
    pub(super) fn crash(&mut self, i: usize) {
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

    pub(super) fn cut(&mut self, i: usize, conn: ConnId, here: &str, there: &str) {
        self.nodes[i].handle_closed(conn, Some(here.into()));
        if let Some((m, mc)) = self.links.remove(&(i, conn)) {
            self.links.remove(&(m, mc));
            self.nodes[m].handle_closed(mc, Some(there.into()));
        }
    }

    /// Node `from` sends `frame` on `conn`, as a peer is sent it.
    pub(super) fn deliver(&mut self, from: usize, conn: ConnId, frame: &Frame) {
        let mut buf = Vec::new();
        protocol::encode_peer(frame, &mut buf);
        self.emit(from, conn, &buf);
    }

    /// Node `from` sends `frame` on its link end `conn` in the format of that end's role
    /// (`direct`: for that connection alone), or holds it until the role is known.
    fn send_on_link(&mut self, from: usize, conn: ConnId, frame: Rc<Frame>, direct: bool) {
        let mut bytes = Vec::new();
        match self.roles.get(&(from, conn)) {
            Some(Role::Peer) => protocol::encode_peer(&frame, &mut bytes),
            Some(Role::Guest) if direct => {
                protocol::encode_guest_direct(&frame, &mut bytes);
            }
            Some(Role::Guest) => {
                protocol::encode_guest(&frame, &mut bytes);
            }
            None => {
                return self
                    .held
                    .entry((from, conn))
                    .or_default()
                    .push((frame, direct))
            }
        }
        self.emit(from, conn, &bytes);
    }

    /// Node `from` sends `bytes` (whole lines) on `conn`: held until its hello is out, lost
    /// if the other end is gone or dead.
    fn emit(&mut self, from: usize, conn: ConnId, bytes: &[u8]) {
        if let Some(held) = self.before_hello.get_mut(&(from, conn)) {
            held.extend_from_slice(bytes);
            return;
        }
        *self.wrote.entry((from, conn)).or_default() += bytes.len();
        let Some(&(to, to_conn)) = self.links.get(&(from, conn)) else {
            return;
        };
        if !self.dead[to] {
            self.deliver_bytes(to, to_conn, bytes);
        }
    }

    /// Lines for node `to` on `to_conn`, each counted by its verb.
    fn deliver_bytes(&mut self, to: usize, to_conn: ConnId, buf: &[u8]) {
        for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let verb = String::from_utf8_lossy(line)
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string();
            *self.sent.entry(verb).or_default() += 1;
            self.nodes[to].handle_line(to_conn, line, self.now);
        }
    }

    /// Carries out actions until every node is quiet.
    pub(super) fn run(&mut self) {
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

    pub(super) fn apply(&mut self, i: usize, action: Action) {
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
                    self.send_on_link(i, c, frame.clone(), false);
                }
                for g in self.open_guests(i) {
                    if Some(g) != except {
                        let mut bytes = Vec::new();
                        protocol::encode_guest(&frame, &mut bytes);
                        self.write_guest(i, g, &bytes);
                    }
                }
            }
            Action::Send { conn, frame } if self.guests.contains_key(&(i, conn)) => {
                let mut bytes = Vec::new();
                protocol::encode_guest_direct(&frame, &mut bytes);
                self.write_guest(i, conn, &bytes);
            }
            Action::Send { conn, frame } => self.send_on_link(i, conn, frame, true),
            // A node taken for a guest reads what a guest is told.
            Action::SendFirst { conn, line: text } | Action::Tell { conn, text } => {
                let bytes = format!("{text}\n");
                match self.links.contains_key(&(i, conn)) {
                    true => self.emit(i, conn, bytes.as_bytes()),
                    false => self.write_guest(i, conn, bytes.as_bytes()),
                }
            }
            Action::Show(e) => self.shown[i].push(e),
            Action::RememberKey { .. } => {}
            Action::Quit => self.quit[i] = true,
            Action::Close { conn, reason } => {
                self.guest_closed(i, conn);
                self.closed.push((i, conn, reason.clone()));
                self.cut(i, conn, &reason, "closed");
            }
            Action::Retire { conn } => {
                self.guest_closed(i, conn);
                self.closed.push((i, conn, "retired".into()));
                self.cut(i, conn, "retired", "closed");
            }
            Action::Dial(a) => {
                let target = a.ip().to_string();
                let to = (0..self.nodes.len()).find(|&j| addr(j, 5000).ip().to_string() == target);
                match to {
                    Some(j) if self.allow_dials && !self.quit[j] && j != i => {
                        self.link_raw(j, i, Origin::Auto(a))
                    }
                    _ => self.nodes[i].handle_dial_failed(a, self.now),
                }
            }
            Action::Classify { conn, role } => {
                self.roles.insert((i, conn), role);
                for (frame, direct) in self.held.remove(&(i, conn)).unwrap_or_default() {
                    self.send_on_link(i, conn, frame, direct);
                }
            }
            Action::Connect(_) | Action::Refused { .. } => {}
        }
    }

    pub(super) fn tick(&mut self, by: Duration) {
        self.now += by;
        for i in 0..self.nodes.len() {
            self.nodes[i].handle_tick(self.now);
        }
        self.run();
    }

    /// Lets `total` pass in small steps (a quarter second), so what is rate-limited to once a
    /// second (a `HERE`) goes out before a suspicion due at the end is judged.
    pub(super) fn wait(&mut self, total: Duration) {
        let step = Duration::from_millis(250);
        let mut left = total;
        while left > Duration::ZERO {
            let by = step.min(left);
            self.tick(by);
            left -= by;
        }
    }

    pub(super) fn say(&mut self, node: usize, text: &str) {
        self.nodes[node].handle_input(text, self.now);
        self.run();
    }

    pub(super) fn messages(&self, node: usize) -> Vec<(String, String)> {
        self.shown[node]
            .iter()
            .filter_map(|e| match e {
                Event::Message { from, text } => Some((from.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    pub(super) fn count(&self, node: usize, pred: impl Fn(&Event) -> bool) -> usize {
        self.shown[node].iter().filter(|e| pred(e)).count()
    }

    pub(super) fn joins_of(&self, node: usize, nick: &str) -> usize {
        self.count(
            node,
            |e| matches!(e, Event::Join { nick: n, .. } if n == nick),
        )
    }

    pub(super) fn leaves_of(&self, node: usize, nick: &str) -> usize {
        self.count(
            node,
            |e| matches!(e, Event::Leave { nick: n, .. } if n == nick),
        )
    }

    pub(super) fn clear_shown(&mut self) {
        for s in &mut self.shown {
            s.clear();
        }
    }
}

/// Every node but the sender shows each `m{s}-{k}` once, in per-origin order, for the
/// senders in `live`.
pub(super) fn each_live_node_sees_each_once(net: &Net, live: &[usize], count: usize) {
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

pub(super) fn every_node_but_sender_sees_each_once(net: &Net, count: usize) {
    let all: Vec<usize> = (0..net.nodes.len()).collect();
    each_live_node_sees_each_once(net, &all, count);
}

pub(super) fn chat_all(net: &mut Net, live: &[usize], count: usize) {
    for k in 0..count {
        for &s in live {
            net.say(s, &format!("m{s}-{k}"));
        }
    }
}

pub(super) fn star(n: usize) -> Net {
    let mut net = Net::new(n);
    for leaf in 1..n {
        net.link(0, leaf);
    }
    net
}

pub(super) fn chain(n: usize) -> Net {
    let mut net = Net::new(n);
    for i in 0..n - 1 {
        net.link(i, i + 1);
    }
    net
}

pub(super) fn ring(n: usize) -> Net {
    let mut net = chain(n);
    net.link(n - 1, 0);
    net
}

/// Each node shows every other node joining exactly once.
pub(super) fn joins_once_everywhere(net: &Net) {
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
