//! The chat itself, as a pure state machine: who is connected and as what (peer or guest), which
//! messages were already seen, what to show, what to send where.
//!
//! Inputs are `handle_*` calls (a line from a connection, a typed line, a connection opened or
//! closed, a tick with the current time); outputs are [`Action`]s taken with
//! [`Chat::poll_action`]. Must not do IO or read the clock: the caller passes `now`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::protocol::{self, Frame, Hello, MsgId, NodeId, MAX_TEXT};

/// Identifies one connection; the reactor uses its slab key.
pub type ConnId = usize;

/// How long a connection we accepted may stay silent before it is taken for a guest (a person
/// at `nc` who has not typed yet). A peerchat node sends its hello at once, so one round trip
/// suffices.
pub const HELLO_WAIT: Duration = Duration::from_millis(1000);

/// The same for a connection we dialled: a listener that is slow to answer (busy, or on a far
/// network) is more likely than a person typing nothing into `nc -l`.
pub const HELLO_WAIT_DIALLED: Duration = Duration::from_millis(3000);

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Accepted,
    Dialled,
}

/// How many message ids are remembered to drop duplicates that come back over another path.
const SEEN_CAP: usize = 100_000;

/// What the other end of a connection turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A peerchat node: it speaks frames.
    Peer,
    /// Anything else (nc, telnet, a script): it sends plain lines and gets plain lines.
    Guest,
}

/// Something for the user to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Message {
        from: String,
        text: String,
    },
    Join {
        nick: String,
        addr: Option<String>,
    },
    Leave {
        nick: String,
        addr: Option<String>,
        reason: Option<String>,
    },
    Info(String),
    Error(String),
}

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
    /// Close `conn`; `reason` says why, for the log.
    Close { conn: ConnId, reason: String },
    /// Show an event to the user.
    Show(Event),
    /// The local user left: deliver what is queued, then end.
    Quit,
}

/// Who this node is.
#[derive(Clone, Debug)]
pub struct Config {
    pub nick: String,
    pub node: NodeId,
    /// The port this node listens on, announced in the hello.
    pub listen: Option<u16>,
}

#[derive(Debug)]
enum Kind {
    /// No line yet; taken for a guest at this instant if none comes.
    Pending(Instant),
    Peer {
        nick: String,
        node: NodeId,
        /// It announced its own leave, so its close needs no announcement.
        said_bye: bool,
    },
    Guest {
        nick: String,
        /// Made a guest by its silence, and still silent: a hello may yet come (late).
        silent: bool,
    },
}

#[derive(Debug)]
struct Conn {
    addr: String,
    kind: Kind,
}

/// Message ids already handled, bounded: the oldest are forgotten first.
#[derive(Debug, Default)]
struct Seen {
    set: HashSet<MsgId>,
    order: VecDeque<MsgId>,
}

impl Seen {
    /// Records `id`; false if it was there already.
    fn insert(&mut self, id: MsgId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// The chat state of one node.
#[derive(Debug)]
pub struct Chat {
    cfg: Config,
    seq: u64,
    conns: HashMap<ConnId, Conn>,
    seen: Seen,
    guests: u64,
    quitting: bool,
    actions: VecDeque<Action>,
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

const HELP: &str = "type a line to send it; /quit [reason], /exit or sair to leave; \
                    //text sends a line starting with /";

impl Chat {
    pub fn new(cfg: Config) -> Self {
        Chat {
            cfg,
            seq: 0,
            conns: HashMap::new(),
            seen: Seen::default(),
            guests: 0,
            quitting: false,
            actions: VecDeque::new(),
        }
    }

    /// The hello this node sends first on every connection.
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
        self.conns
            .values()
            .filter_map(|c| match c.kind {
                Kind::Pending(due) => Some(due),
                _ => None,
            })
            .min()
    }

    /// True once the local user has left.
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// A connection is open (accepted, or our dial succeeded). The caller has sent our hello.
    pub fn handle_opened(&mut self, conn: ConnId, addr: String, origin: Origin, now: Instant) {
        let wait = match origin {
            Origin::Accepted => HELLO_WAIT,
            Origin::Dialled => HELLO_WAIT_DIALLED,
        };
        self.conns.insert(
            conn,
            Conn {
                addr,
                kind: Kind::Pending(now + wait),
            },
        );
    }

    /// A connection is gone. `reason` is shown with the leave when the peer did not say goodbye.
    pub fn handle_closed(&mut self, conn: ConnId, reason: Option<String>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let nick = match c.kind {
            Kind::Pending(_) | Kind::Peer { said_bye: true, .. } => return,
            Kind::Peer { nick, .. } | Kind::Guest { nick, .. } => nick,
        };
        if self.quitting {
            return;
        }
        self.show(Event::Leave {
            nick: nick.clone(),
            addr: Some(c.addr),
            reason: reason.clone(),
        });
        let id = self.next_id();
        self.broadcast(None, Frame::Leave { id, nick, reason });
    }

    /// Time passed: a connection silent past [`HELLO_WAIT`] becomes a guest.
    pub fn handle_tick(&mut self, now: Instant) {
        let mut due: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.kind, Kind::Pending(due) if now >= due))
            .map(|(&k, _)| k)
            .collect();
        // In connection order, so guest numbers do not depend on hash order.
        due.sort_unstable();
        for conn in due {
            self.make_guest(conn, true);
        }
    }

    /// One complete line arrived on `conn` (without its `\n`).
    pub fn handle_line(&mut self, conn: ConnId, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.kind {
            Kind::Pending(_) => match protocol::parse_hello(&text) {
                Some(hello) => self.make_peer(conn, hello),
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
            _ if self.quitting => {}
            Kind::Guest { .. } => self.guest_line(conn, &text),
            // It said goodbye: whatever follows is not taken.
            Kind::Peer { said_bye: true, .. } => {}
            Kind::Peer { .. } => match protocol::parse_frame(&text) {
                Ok(frame) => self.peer_frame(conn, frame),
                // Plain chat text from a node that took us for a guest before our hello reached
                // it (it was slow): not an attack, and it stops once our hello is read there.
                Err(_) if protocol::is_guest_text(&text) => {}
                Err(e) => self.drop_conn(conn, e.to_string()),
            },
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
        if is_leave_command(trimmed) {
            let reason = Some(arg.trim().to_string()).filter(|r| !r.is_empty());
            return self.quit(reason);
        }
        let text = match trimmed.strip_prefix('/') {
            Some(rest) if rest.starts_with('/') => &line[line.find('/').unwrap_or(0) + 1..],
            Some(_) if word.eq_ignore_ascii_case("/help") => {
                return self.show(Event::Info(HELP.to_string()))
            }
            Some(_) => {
                return self.show(Event::Error(format!(
                    "unknown command {word}; nothing was sent (type /help)"
                )))
            }
            None => line,
        };
        for piece in protocol::split_text(text, MAX_TEXT) {
            let id = self.next_id();
            let nick = self.cfg.nick.clone();
            self.broadcast(
                None,
                Frame::Msg {
                    id,
                    nick,
                    text: piece.to_string(),
                },
            );
        }
    }

    /// The user's input ended (and the caller does not keep running without it).
    pub fn handle_input_end(&mut self) {
        self.quit(None);
    }

    fn quit(&mut self, reason: Option<String>) {
        if self.quitting {
            return;
        }
        self.quitting = true;
        let id = self.next_id();
        let nick = self.cfg.nick.clone();
        self.broadcast(None, Frame::Leave { id, nick, reason });
        self.actions.push_back(Action::Quit);
    }

    /// Forgets `conn` at once (later lines from it are ignored), announces its leave, and asks
    /// the caller to close it.
    fn drop_conn(&mut self, conn: ConnId, reason: String) {
        self.handle_closed(conn, Some(reason.clone()));
        self.actions.push_back(Action::Close { conn, reason });
    }

    fn make_peer(&mut self, conn: ConnId, hello: Hello) {
        if hello.node == self.cfg.node {
            return self.drop_conn(conn, "connected to itself".to_string());
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.kind = Kind::Peer {
            nick: hello.nick.clone(),
            node: hello.node,
            said_bye: false,
        };
        let addr = c.addr.clone();
        self.joined(conn, Role::Peer, hello.nick, addr);
    }

    /// A guest that turned out to be a peerchat node: its guest name leaves, the peer joins.
    fn upgrade_to_peer(&mut self, conn: ConnId, hello: Hello) {
        let Some(addr) = self.conns.get(&conn).map(|c| c.addr.clone()) else {
            return;
        };
        let reason = Some(format!("it is {}, a peerchat node", hello.nick));
        self.handle_closed(conn, reason);
        let kind = Kind::Peer {
            nick: hello.nick.clone(),
            node: hello.node,
            said_bye: false,
        };
        self.conns.insert(conn, Conn { addr, kind });
        self.make_peer(conn, hello);
    }

    fn make_guest(&mut self, conn: ConnId, silent: bool) {
        self.guests += 1;
        let nick = format!("guest-{}", self.guests);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.kind = Kind::Guest {
            nick: nick.clone(),
            silent,
        };
        let addr = c.addr.clone();
        self.joined(conn, Role::Guest, nick, addr);
    }

    fn joined(&mut self, conn: ConnId, role: Role, nick: String, addr: String) {
        self.actions.push_back(Action::Classify { conn, role });
        if self.quitting {
            return;
        }
        self.show(Event::Join {
            nick: nick.clone(),
            addr: Some(addr.clone()),
        });
        let id = self.next_id();
        self.broadcast(
            Some(conn),
            Frame::Join {
                id,
                nick,
                addr: Some(addr),
            },
        );
    }

    fn guest_line(&mut self, conn: ConnId, text: &str) {
        let Some(Kind::Guest { nick, .. }) = self.conns.get(&conn).map(|c| &c.kind) else {
            return;
        };
        if self.quitting || text.trim().is_empty() {
            return;
        }
        let nick = nick.clone();
        for piece in protocol::split_text(text, MAX_TEXT) {
            let id = self.next_id();
            self.show_and_pass_on(
                conn,
                Frame::Msg {
                    id,
                    nick: nick.clone(),
                    text: piece.to_string(),
                },
            );
        }
    }

    fn peer_frame(&mut self, conn: ConnId, frame: Frame) {
        match &frame {
            Frame::Msg { id, .. } | Frame::Join { id, .. } => self.relay(conn, *id, frame.clone()),
            Frame::Leave { id, nick, .. } => {
                if let Some(Conn {
                    kind:
                        Kind::Peer {
                            nick: peer_nick,
                            node,
                            said_bye,
                        },
                    ..
                }) = self.conns.get_mut(&conn)
                {
                    if *node == id.node && peer_nick == nick {
                        // Its own goodbye: shown with the address we know it by.
                        *said_bye = true;
                        if self.seen.insert(*id) {
                            let addr = self.conns.get(&conn).map(|c| c.addr.clone());
                            let Frame::Leave { nick, reason, .. } = &frame else {
                                return;
                            };
                            self.show(Event::Leave {
                                nick: nick.clone(),
                                addr,
                                reason: reason.clone(),
                            });
                            self.broadcast(Some(conn), frame);
                        }
                        return;
                    }
                }
                self.relay(conn, *id, frame.clone());
            }
            // A second hello changes nothing; unknown kinds are for later versions.
            Frame::Hello(_) | Frame::Unknown(_) => {}
        }
    }

    /// Shows a frame that arrived on `from` and passes it on, unless it was seen before.
    fn relay(&mut self, from: ConnId, id: MsgId, frame: Frame) {
        if self.seen.insert(id) {
            self.show_and_pass_on(from, frame);
        }
    }

    /// Shows a frame that came in on `from` and sends it to everyone else.
    fn show_and_pass_on(&mut self, from: ConnId, frame: Frame) {
        match &frame {
            Frame::Msg { nick, text, .. } => self.show(Event::Message {
                from: nick.clone(),
                text: text.clone(),
            }),
            Frame::Join { nick, addr, .. } => self.show(Event::Join {
                nick: nick.clone(),
                addr: addr.clone(),
            }),
            Frame::Leave { nick, reason, .. } => self.show(Event::Leave {
                nick: nick.clone(),
                addr: None,
                reason: reason.clone(),
            }),
            Frame::Hello(_) | Frame::Unknown(_) => return,
        }
        self.broadcast(Some(from), frame);
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

    /// A fresh id for a frame this node originates, already marked seen so that it is not shown
    /// again if it comes back around a loop.
    fn next_id(&mut self) -> MsgId {
        self.seq += 1;
        let id = MsgId {
            node: self.cfg.node,
            seq: self.seq,
        };
        self.seen.insert(id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several chats wired to each other in memory: each link is a pair of connection ends, and
    /// frames travel through the real encoder and `handle_line`, in order per link.
    struct Net {
        nodes: Vec<Chat>,
        /// (node, conn) -> the other end.
        links: HashMap<(usize, ConnId), (usize, ConnId)>,
        shown: Vec<Vec<Event>>,
        quit: Vec<bool>,
        closed: Vec<(usize, ConnId, String)>,
        now: Instant,
    }

    impl Net {
        fn new(n: usize) -> Net {
            Net {
                nodes: (0..n)
                    .map(|i| {
                        Chat::new(Config {
                            nick: format!("n{i}"),
                            node: 0x1000 + i as u64,
                            listen: Some(5000),
                        })
                    })
                    .collect(),
                links: HashMap::new(),
                shown: vec![Vec::new(); n],
                quit: vec![false; n],
                closed: Vec::new(),
                now: Instant::now(),
            }
        }

        fn link(&mut self, a: usize, b: usize) {
            let ca = 100 + b;
            let cb = 100 + a;
            self.links.insert((a, ca), (b, cb));
            self.links.insert((b, cb), (a, ca));
            for (x, cx, y, origin) in [(a, ca, b, Origin::Accepted), (b, cb, a, Origin::Dialled)] {
                self.nodes[x].handle_opened(cx, format!("10.0.0.{y}:5000"), origin, self.now);
            }
            for (x, cx) in [(a, ca), (b, cb)] {
                let hello = self.nodes[x].hello();
                self.deliver(x, cx, &hello);
            }
            self.run();
        }

        fn unlink(&mut self, a: usize, b: usize) {
            let (ca, cb) = (100 + b, 100 + a);
            self.links.remove(&(a, ca));
            self.links.remove(&(b, cb));
            self.nodes[a].handle_closed(ca, Some("connection reset".into()));
            self.nodes[b].handle_closed(cb, Some("connection reset".into()));
            self.run();
        }

        fn deliver(&mut self, from: usize, conn: ConnId, frame: &Frame) {
            let Some(&(to, to_conn)) = self.links.get(&(from, conn)) else {
                return;
            };
            let mut buf = Vec::new();
            protocol::encode(frame, &mut buf);
            self.nodes[to].handle_line(to_conn, &buf[..buf.len() - 1]);
        }

        /// Carries out actions until every node is quiet.
        fn run(&mut self) {
            for _ in 0..100_000 {
                let mut busy = false;
                for i in 0..self.nodes.len() {
                    while let Some(action) = self.nodes[i].poll_action() {
                        busy = true;
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
                            Action::Show(e) => self.shown[i].push(e),
                            Action::Quit => self.quit[i] = true,
                            Action::Close { conn, reason } => self.closed.push((i, conn, reason)),
                            Action::Classify { .. } => {}
                        }
                    }
                }
                if !busy {
                    return;
                }
            }
            panic!("the network never went quiet");
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
    }

    fn every_node_but_sender_sees_each_once(net: &Net, count: usize) {
        for node in 0..net.nodes.len() {
            let msgs = net.messages(node);
            let expected: Vec<(String, String)> = (0..net.nodes.len())
                .filter(|&s| s != node)
                .flat_map(|s| (0..count).map(move |k| (format!("n{s}"), format!("m{s}-{k}"))))
                .collect();
            let mut got = msgs.clone();
            got.sort();
            let mut want = expected;
            want.sort();
            assert_eq!(got, want, "node {node}");
            // Per-origin order: each origin's messages appear in the order sent.
            for s in 0..net.nodes.len() {
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

    fn chat_all(net: &mut Net, count: usize) {
        for k in 0..count {
            for s in 0..net.nodes.len() {
                net.say(s, &format!("m{s}-{k}"));
            }
        }
    }

    #[test]
    fn star_relays_every_message_once() {
        let mut net = Net::new(4);
        for leaf in 1..4 {
            net.link(0, leaf);
        }
        chat_all(&mut net, 3);
        every_node_but_sender_sees_each_once(&net, 3);
    }

    #[test]
    fn chain_relays_end_to_end() {
        let mut net = Net::new(4);
        for i in 0..3 {
            net.link(i, i + 1);
        }
        chat_all(&mut net, 2);
        every_node_but_sender_sees_each_once(&net, 2);
    }

    #[test]
    fn ring_drops_duplicates() {
        let mut net = Net::new(5);
        for i in 0..5 {
            net.link(i, (i + 1) % 5);
        }
        chat_all(&mut net, 3);
        every_node_but_sender_sees_each_once(&net, 3);
    }

    #[test]
    fn joins_are_shown_with_the_peer_address() {
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(0, 2);
        assert!(net.shown[0].contains(&Event::Join {
            nick: "n1".into(),
            addr: Some("10.0.0.1:5000".into())
        }));
        // n1 hears of n2 through the hub.
        assert!(net.shown[1]
            .iter()
            .any(|e| matches!(e, Event::Join { nick, .. } if nick == "n2")));
    }

    #[test]
    fn a_peer_that_quits_is_shown_leaving_once_everywhere() {
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(0, 2);
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
        // The hub shows its direct peer's own goodbye with the address it knows it by.
        assert!(matches!(
            net.shown[0].iter().find(|e| matches!(e, Event::Leave { .. })),
            Some(Event::Leave { addr: Some(a), .. }) if a == "10.0.0.1:5000"
        ));
    }

    #[test]
    fn a_peer_that_vanishes_is_announced_by_its_neighbour() {
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(0, 2);
        net.unlink(0, 1);
        for node in [0, 2] {
            assert!(
                net.shown[node].iter().any(|e| matches!(e,
                    Event::Leave { nick, reason: Some(r), .. }
                        if nick == "n1" && r == "connection reset")),
                "node {node}: {:?}",
                net.shown[node]
            );
        }
    }

    #[test]
    fn nothing_is_taken_from_a_peer_after_its_own_leave() {
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(0, 2);
        net.say(1, "sair");
        // n1 keeps talking on the same connection after saying goodbye.
        net.nodes[1].quitting = false;
        net.say(1, "ghost message");
        assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
    }

    #[test]
    fn quit_words_in_any_case_and_trimmed() {
        for word in ["sair", " SAIR ", "/quit", "/Exit", "/quit going home"] {
            let mut net = Net::new(2);
            net.link(0, 1);
            net.say(0, word);
            assert!(net.quit[0], "{word:?}");
        }
        let mut net = Net::new(2);
        net.link(0, 1);
        net.say(0, "sair agora");
        assert!(!net.quit[0]);
        assert_eq!(net.messages(1), vec![("n0".into(), "sair agora".into())]);
    }

    #[test]
    fn commands_are_not_sent_and_double_slash_escapes() {
        let mut net = Net::new(2);
        net.link(0, 1);
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
    }

    #[test]
    fn a_long_line_is_split_not_cut() {
        let mut net = Net::new(2);
        net.link(0, 1);
        let long = "é".repeat(MAX_TEXT);
        net.say(0, &long);
        let got: String = net.messages(1).into_iter().map(|(_, t)| t).collect();
        assert_eq!(got, long);
        assert_eq!(net.messages(1).len(), 2);
    }

    fn guest_chat() -> (Chat, Instant) {
        let now = Instant::now();
        let mut chat = Chat::new(Config {
            nick: "hub".into(),
            node: 1,
            listen: Some(5000),
        });
        chat.handle_opened(7, "127.0.0.1:4000".into(), Origin::Accepted, now);
        chat.handle_opened(8, "127.0.0.1:4001".into(), Origin::Accepted, now);
        (chat, now)
    }

    fn drain(chat: &mut Chat) -> Vec<Action> {
        std::iter::from_fn(|| chat.poll_action()).collect()
    }

    #[test]
    fn a_first_line_that_is_not_a_hello_makes_a_guest() {
        let (mut chat, _) = guest_chat();
        chat.handle_line(7, "bob: oi ".as_bytes());
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
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(0, 2);
        net.nodes[0].handle_line(101, b"MSG nonsense");
        // Whatever the same peer sent after the bad frame is not taken.
        net.nodes[0].handle_line(101, b"MSG 0000000000001001:99 n1 sneaked in");
        net.run();
        assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
        assert!(
            net.shown[2].iter().any(|e| matches!(e,
            Event::Leave { nick, reason: Some(r), .. } if nick == "n1" && r.contains("malformed")))
        );
        assert_eq!(net.closed.len(), 1);
        assert_eq!(net.closed[0].0, 0);
        assert_eq!(net.closed[0].1, 101);
        net.say(2, "still here");
        assert_eq!(net.messages(0), vec![("n2".into(), "still here".into())]);
    }

    #[test]
    fn a_node_that_reaches_itself_closes_that_connection() {
        let (mut chat, _) = guest_chat();
        let mut hello = Vec::new();
        protocol::encode(&chat.hello(), &mut hello);
        chat.handle_line(7, &hello[..hello.len() - 1]);
        assert!(matches!(
            &drain(&mut chat)[..],
            [Action::Close { conn: 7, .. }]
        ));
    }

    #[test]
    fn the_seen_set_is_bounded() {
        let mut seen = Seen::default();
        for seq in 0..(SEEN_CAP as u64 + 10) {
            assert!(seen.insert(MsgId { node: 1, seq }));
        }
        assert_eq!(seen.set.len(), SEEN_CAP);
        assert!(!seen.insert(MsgId {
            node: 1,
            seq: SEEN_CAP as u64
        }));
    }

    #[test]
    fn a_dialled_connection_waits_longer_for_the_hello() {
        let now = Instant::now();
        let mut chat = Chat::new(Config {
            nick: "me".into(),
            node: 1,
            listen: None,
        });
        chat.handle_opened(3, "10.0.0.9:5000".into(), Origin::Dialled, now);
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
        chat.handle_line(7, b"MSG 00000000000000bb:1 bob late but here");
        assert!(drain(&mut chat).contains(&Action::Show(Event::Message {
            from: "bob".into(),
            text: "late but here".into()
        })));
        // A guest that has typed is a guest for good: a hello later is just text.
        chat.handle_line(8, b"hi");
        chat.handle_line(
            8,
            b"peerchat/1 hello from eve (node=00000000000000ee listen=-)",
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
        let mut net = Net::new(2);
        net.link(0, 1);
        net.nodes[0].handle_line(101, b"<n1> sent before my hello arrived");
        net.nodes[0].handle_line(101, b"* n1 joined");
        net.run();
        assert!(net.closed.is_empty());
        assert!(net.messages(0).is_empty());
        net.say(1, "after");
        assert_eq!(net.messages(0), vec![("n1".into(), "after".into())]);
    }
}
