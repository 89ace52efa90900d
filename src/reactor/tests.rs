//! The reactor driven whole over loopback, with typed lines fed by the test and an injected
//! resolver: what the loop does while a helper thread is slow. A client that reconnects is
//! also driven turn by turn on a clock of the test's (`Driven`), over real sockets.

use std::io::{Read, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::conn::STALL_LIMIT as STALL;
use crate::output::Format;

/// Between two looks at a condition waited for (under a deadline): short, but not a spin that
/// takes a core from the loop being waited for.
fn pause() {
    std::thread::sleep(Duration::from_millis(3));
}

/// Output shared with the test thread.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("output lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    /// Waits (10 s at most) for a line of output containing `want`; returns that line.
    fn wait_for(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&self.0.lock().expect("output lock")).into_owned();
            if let Some(line) = text.lines().find(|l| l.contains(want)) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no {want:?} in output:\n{text}");
            pause();
        }
    }
}

/// A listening node run on its own thread, fed typed lines by the test.
struct Node {
    out: Shared,
    typed: SyncSender<Input>,
    waker: Arc<Waker>,
    run: JoinHandle<Result<Ended, RunError>>,
}

impl Node {
    fn start(resolve: Resolve) -> Node {
        let mut setup = Setup::new("hub".into());
        setup.listen = Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0)));
        setup.key = hub_key();
        Node::start_with(setup, resolve, Vec::new())
    }

    /// A node from `setup` whose first turn finds `typed` waiting.
    fn start_with(setup: Setup, resolve: Resolve, typed_first: Vec<Input>) -> Node {
        let out = Shared::default();
        let (typed, rx) = sync_channel(16);
        for input in typed_first {
            typed.send(input).expect("typed");
        }
        let (waker_tx, waker_rx) = channel();
        let shown = out.clone();
        let run = std::thread::spawn(move || {
            let reactor = Reactor::new(setup, Output::new(Format::Json, shown))?;
            reactor.with_resolver(resolve).run_with_input(move |waker| {
                let _ = waker_tx.send(waker);
                Ok(rx)
            })
        });
        let waker = waker_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the loop started");
        Node {
            out,
            typed,
            waker,
            run,
        }
    }

    fn type_in(&self, input: Input) {
        self.typed.send(input).expect("typed");
        self.waker.wake().expect("wake");
    }

    fn port(&self) -> u16 {
        let line = self.out.wait_for("listening on 127.0.0.1:");
        let digits: String = line
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a port")
    }
}

/// A resolver that says it started, then blocks until released, then fails.
fn blocking_resolver() -> (Resolve, Receiver<String>, SyncSender<()>) {
    let (started_tx, started) = channel();
    let (release, release_rx) = sync_channel(1);
    let started_tx = Mutex::new(started_tx);
    let release_rx = Mutex::new(release_rx);
    let resolve: Resolve = Arc::new(move |hp| {
        let _ = started_tx.lock().map(|tx| tx.send(hp.host.clone()));
        let _ = release_rx.lock().map(|rx| rx.recv());
        Err("the test says no".into())
    });
    (resolve, started, release)
}

#[test]
fn a_slow_name_lookup_for_connect_does_not_freeze_the_chat() {
    let (resolve, started, release) = blocking_resolver();
    let node = Node::start(resolve);
    let port = node.port();
    node.type_in(Input::Line("/connect slow.example:5000".into()));
    let host = started
        .recv_timeout(Duration::from_secs(10))
        .expect("the lookup started");
    assert_eq!(host, "slow.example");

    // The lookup hangs; a guest still gets its hello and is heard.
    let mut guest = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    guest
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hello = [0u8; 9];
    guest.read_exact(&mut hello).expect("the node's hello");
    assert_eq!(&hello, b"peerchat/");
    guest
        .write_all(b"heard while the lookup hangs\n")
        .expect("send");
    node.out.wait_for("heard while the lookup hangs");

    release.send(()).expect("release");
    node.out
        .wait_for("cannot resolve slow.example: the test says no");
    drop(guest);
    node.type_in(Input::End);
    let ended = node.run.join().expect("the loop did not panic");
    assert_eq!(ended, Ok(Ended::Done));
}

#[test]
fn a_name_looked_up_is_dialled_and_a_refusal_is_shown_not_fatal() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let resolve: Resolve = Arc::new(move |_| Ok(vec![dead]));
    let node = Node::start(resolve);
    node.port();
    node.type_in(Input::Line("/connect somewhere:1".into()));
    node.out
        .wait_for("cannot connect to somewhere:1: connection refused");
    node.type_in(Input::End);
    assert_eq!(node.run.join().expect("no panic"), Ok(Ended::Done));
}

/// Accepts one connection on `listener` within 10 s.
fn accept_one(listener: &std::net::TcpListener) -> std::net::TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(10);
    let peer = loop {
        match listener.accept() {
            Ok((peer, _)) => break peer,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "nothing dialled {listener:?}");
                pause();
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    peer.set_nonblocking(false).expect("blocking");
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    peer
}

#[test]
fn lines_typed_after_a_connect_of_a_name_reach_the_new_peer() {
    let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let live_addr = live.local_addr().expect("addr");
    let resolve: Resolve = Arc::new(move |_| Ok(vec![live_addr]));
    let node = Node::start(resolve);
    node.port();
    // Both lines in one batch: the second must wait for the dial the first starts.
    node.typed
        .send(Input::Line("/connect plain-listener:1".into()))
        .expect("typed");
    node.type_in(Input::Line("after the connect".into()));
    let peer = accept_one(&live);
    // A plain listener never says hello: after the hello wait it is taken for a guest, and
    // what was held for it goes out as text.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(peer));
    let hello = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(hello.starts_with("peerchat/"), "{hello:?}");
    let said = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(said, "<hub> after the connect");
    node.type_in(Input::End);
    assert_eq!(node.run.join().expect("no panic"), Ok(Ended::Done));
}

#[test]
fn a_dial_falls_through_to_the_next_address() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let live_addr = live.local_addr().expect("addr");
    let resolve: Resolve = Arc::new(move |_| Ok(vec![dead, live_addr]));
    let node = Node::start(resolve);
    node.port();
    node.type_in(Input::Line("/connect two-addresses:1".into()));
    let mut peer = accept_one(&live);
    let mut hello = [0u8; 9];
    peer.read_exact(&mut hello).expect("the node's hello");
    assert_eq!(&hello, b"peerchat/");
    drop(peer);
    node.type_in(Input::End);
    assert_eq!(node.run.join().expect("no panic"), Ok(Ended::Done));
}

#[test]
fn idle_connections_arm_no_timer_and_an_unfinished_line_arms_one() {
    let mut setup = Setup::new("hub".into());
    setup.listen = Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut r = Reactor::new(setup, Output::new(Format::Json, std::io::sink())).expect("start");
    let addr = r.acceptor.local_addr().expect("listening");
    let mut clients: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.conns.len() < clients.len() {
        assert!(Instant::now() < deadline, "accepted {} only", r.conns.len());
        r.accept(Instant::now());
        pause();
    }
    // Idle connections cost the loop nothing: no deadline of theirs to look at.
    assert!(r.timers.is_empty(), "{:?}", r.timers);

    clients[7].write_all(b"no newline").expect("send");
    let keys: Vec<usize> = r.conns.iter().map(|(k, _)| k).collect();
    loop {
        assert!(Instant::now() < deadline, "the line never arrived");
        let now = Instant::now();
        for &k in &keys {
            r.conn_ready(k, false, now);
        }
        if let Some(due) = r.timers.next() {
            assert_eq!(due, now + crate::conn::PARTIAL_LINE_IDLE);
            assert_eq!(r.timers.len(), 1);
            break;
        }
        pause();
    }
}

#[test]
fn a_leave_typed_while_a_reader_is_stalled_gives_it_one_second_from_when_it_fell_behind() {
    let mut setup = Setup::new("hub".into());
    setup.listen = Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0)));
    // High water 16 MiB, and no cut by bytes before 64 MiB.
    setup.max_backlog = 64 << 20;
    let mut r = Reactor::new(setup, Output::new(Format::Json, std::io::sink())).expect("start");
    let addr = r.acceptor.local_addr().expect("listening");
    let _never_reads = std::net::TcpStream::connect(addr).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.conns.is_empty() {
        assert!(Instant::now() < deadline, "not accepted");
        r.accept(Instant::now());
        pause();
    }
    let k = r.conns.iter().map(|(k, _)| k).next().expect("a connection");

    // More than the kernel takes plus the high water: it falls behind, 10 s to catch up.
    let t0 = Instant::now();
    let end = r.shared.end();
    r.conns[k].conn.queue_raw(&vec![b'x'; 40 << 20], end);
    r.mark_dirty(k);
    r.flush_conns(t0);
    assert!(r.behind.contains_key(&k), "not behind");
    assert_eq!(r.timers.get(&Timer::Stall(k)), Some(t0 + STALL));

    // `/quit` waits behind it, and shortens its time to one second from t0.
    let (tx, rx) = sync_channel(4);
    tx.send(Input::Line("/quit".into())).expect("typed");
    r.gate.attach(rx);
    let later = t0 + Duration::from_millis(300);
    r.drain_input(later);
    assert!(r.gate.is_urgent());
    assert_eq!(
        r.timers.get(&Timer::Stall(k)),
        Some(t0 + Duration::from_secs(1))
    );
    r.tick(t0 + Duration::from_secs(1));
    assert!(r.conns.is_empty(), "the stalled reader was not cut");
}

#[test]
fn a_lookup_that_panics_is_a_failed_lookup_and_input_goes_on() {
    let resolve: Resolve = Arc::new(|_| panic!("a resolver bug"));
    let node = Node::start(resolve);
    node.port();
    node.typed
        .send(Input::Line("/connect buggy:1".into()))
        .expect("typed");
    node.type_in(Input::Line("/nick after".into()));
    node.out.wait_for("cannot resolve buggy: the lookup failed");
    node.out.wait_for(r#""old":"hub","nick":"after""#);
    node.type_in(Input::End);
    assert_eq!(node.run.join().expect("no panic"), Ok(Ended::Done));
}

#[test]
fn a_connect_typed_before_quit_is_dialled_and_the_lines_between_reach_it() {
    let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let live_addr = live.local_addr().expect("addr");
    let resolve: Resolve = Arc::new(move |_| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(vec![live_addr])
    });
    let node = Node::start(resolve);
    node.port();
    // One batch: before the lookup moved off the loop thread, it blocked, the dial started,
    // the line was queued on it and the quit grace waited for the dial.
    node.typed
        .send(Input::Line("/connect slowname:1".into()))
        .expect("typed");
    node.typed
        .send(Input::Line("said before quit".into()))
        .expect("typed");
    node.type_in(Input::Line("/quit".into()));
    let peer = accept_one(&live);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(peer));
    let hello = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(hello.starts_with("peerchat/"), "{hello:?}");
    // A plain listener: after the hello wait it is taken for a guest, and the line goes out
    // as text (unless the quit grace is over first, which the run's result then says).
    let said = lines.next().and_then(Result::ok);
    let ended = node.run.join().expect("no panic");
    match said {
        Some(said) => assert_eq!(said, "<hub> said before quit"),
        None => assert_eq!(ended, Err(RunError::Undelivered(1))),
    }
}

#[test]
fn leaving_waits_for_a_hanging_lookup_only_so_long_and_says_its_connect_was_dropped() {
    let (resolve, started, _release) = blocking_resolver();
    let node = Node::start(resolve);
    node.port();
    node.type_in(Input::Line("/connect hangs.example:1".into()));
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the lookup started");
    let t0 = Instant::now();
    node.type_in(Input::Line("/quit".into()));
    let ended = node.run.join().expect("no panic");
    let waited = t0.elapsed();
    assert_eq!(ended, Ok(Ended::Done));
    assert!(
        waited >= timers::LOOKUP_WAIT_LEAVING - Duration::from_millis(100),
        "left after {waited:?}, before the lookup had its time"
    );
    assert!(waited < Duration::from_secs(6), "left after {waited:?}");
    node.out
        .wait_for("not connecting to hangs.example:1: still looking it up when leaving");
}

#[test]
fn a_peer_failing_while_a_connect_is_looked_up_is_not_the_end_of_the_run() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let (resolve, started, release) = blocking_resolver();
    let mut setup = Setup::new("client".into());
    setup.dials = vec![Dial {
        label: dead.to_string(),
        addrs: vec![dead],
    }];
    // The lookup starts on the first turn, before the refusal can be seen.
    let first = vec![Input::Line("/connect looked-up.example:1".into())];
    let node = Node::start_with(setup, resolve, first);
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the lookup started");
    node.out
        .wait_for(&format!("cannot connect to {dead}: connection refused"));
    release.send(()).expect("release");
    node.out
        .wait_for("cannot resolve looked-up.example: the test says no");
    node.out.wait_for("no connections left");
    assert_eq!(node.run.join().expect("no panic"), Ok(Ended::Done));
}

#[test]
fn a_duplicate_that_is_also_stalled_closes_as_a_duplicate_connection() {
    let mut setup = Setup::new("hub".into());
    setup.listen = Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0)));
    setup.max_backlog = 64 << 20;
    let out = Shared::default();
    let mut r = Reactor::new(setup, Output::new(Format::Json, out.clone())).expect("start");
    let addr = r.acceptor.local_addr().expect("listening");
    let mut guest = std::net::TcpStream::connect(addr).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.conns.is_empty() {
        assert!(Instant::now() < deadline, "not accepted");
        r.accept(Instant::now());
        pause();
    }
    let k = r.conns.iter().map(|(k, _)| k).next().expect("a connection");
    // A line makes it a guest, whose leave (with its reason) is shown.
    guest.write_all(b"hi\n").expect("send");
    while r.conns[k].conn.role().is_none() {
        assert!(Instant::now() < deadline, "never a guest");
        r.conn_ready(k, false, Instant::now());
        r.apply_actions(Instant::now());
        pause();
    }

    // Behind (a stall due at t0 + STALL), and retired with its grace over just after.
    let t0 = Instant::now();
    let end = r.shared.end();
    r.conns[k].conn.queue_raw(&vec![b'x'; 40 << 20], end);
    r.mark_dirty(k);
    r.flush_conns(t0);
    assert_eq!(r.timers.get(&Timer::Stall(k)), Some(t0 + STALL));
    r.timers
        .set(Timer::Retire(k), t0 + STALL + Duration::from_millis(1));
    let later = t0 + STALL + Duration::from_secs(1);
    r.tick(later);
    r.apply_actions(later);
    r.screen.flush().expect("output");
    assert!(r.conns.is_empty(), "not closed");
    let leave = out.wait_for(r#""event":"leave""#);
    assert!(leave.contains("duplicate connection"), "{leave}");
}

#[test]
fn a_leave_past_its_wait_for_a_lookup_goes_through_and_leaves_no_timer_that_spins_the_loop() {
    let (resolve, started, _release) = blocking_resolver();
    let mut setup = Setup::new("hub".into());
    setup.listen = Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut r = Reactor::new(setup, Output::new(Format::Json, std::io::sink())).expect("start");
    r.resolver.set(resolve);
    let (tx, rx) = sync_channel(4);
    tx.send(Input::Line("/connect hangs.example:1".into()))
        .expect("typed");
    tx.send(Input::Line("/quit".into())).expect("typed");
    r.gate.attach(rx);

    let t0 = Instant::now();
    r.drain_input(t0);
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the lookup started");
    r.drain_input(t0);
    assert!(
        !r.chat.is_quitting(),
        "the leave did not wait for the lookup"
    );
    let cap = t0 + timers::LOOKUP_WAIT_LEAVING;
    assert_eq!(r.timers.get(&Timer::LookupWait), Some(cap));

    r.drain_input(cap);
    assert!(r.chat.is_quitting(), "the leave waited past its cap");
    // One left set at the cap would be due at once, every turn, while the lookup hangs.
    assert_eq!(r.timers.get(&Timer::LookupWait), None);
}

/// A client of the hub at `port` that reconnects (or not), writing JSON to `out`.
fn client_of(port: u16, reconnect: bool) -> Setup {
    let hub = SocketAddr::from(([127, 0, 0, 1], port));
    let mut setup = Setup::new("client".into());
    setup.dials = vec![Dial {
        label: hub.to_string(),
        addrs: vec![hub],
    }];
    setup.reconnect = reconnect;
    setup
}

/// A hub listening on `port` of loopback (again, after one there closed).
/// The hub is one person however often it starts: one key (a client that saw another key
/// for `hub` would warn about it).
fn hub_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x4b; 32])
}

fn hub_on(port: u16) -> Node {
    let mut setup = Setup::new("hub".into());
    setup.listen = Listen::Addr(SocketAddr::from(([127, 0, 0, 1], port)));
    setup.key = hub_key();
    Node::start_with(setup, no_lookups(), Vec::new())
}

fn no_lookups() -> Resolve {
    Arc::new(|_| Err("no lookups in this test".into()))
}

/// The hub leaves (input ends) and its run is over.
fn close_hub(hub: Node) {
    hub.type_in(Input::End);
    assert_eq!(hub.run.join().expect("no panic"), Ok(Ended::Done));
}

/// The hub of `client` leaves; the client takes its turns meanwhile (the hub waits for it to
/// close its end).
fn close_hub_of(hub: Node, client: &mut Driven) {
    hub.type_in(Input::End);
    client.until("the hub's run ended", |_| hub.run.is_finished());
    assert_eq!(hub.run.join().expect("no panic"), Ok(Ended::Done));
}

/// A reconnecting client whose hub (on the returned port) left: it has said it lost the
/// connection and will dial again in 1 s.
fn client_that_lost_its_hub() -> (Driven, u16) {
    let hub = Node::start(no_lookups());
    let port = hub.port();
    let mut client = Driven::start(client_of(port, true));
    client.until_said(r#""event":"join","nick":"hub""#, 1);
    close_hub_of(hub, &mut client);
    client.until_said("reconnecting in 1 s", 1);
    (client, port)
}

/// A client driven turn by turn on a clock of the test's, over real sockets: the back-off
/// is seen in the delays it announces and the times its timer fires, not in wall time.
struct Driven {
    r: Reactor<Shared>,
    out: Shared,
    typed: SyncSender<Input>,
    events: Events,
    /// The client's clock.
    now: Instant,
    ended: Option<Result<Ended, RunError>>,
}

impl Driven {
    fn start(setup: Setup) -> Driven {
        let out = Shared::default();
        let mut r = Reactor::new(setup, Output::new(Format::Json, out.clone())).expect("start");
        let (typed, rx) = sync_channel(16);
        r.gate.attach(rx);
        Driven {
            r,
            out,
            typed,
            events: Events::with_capacity(64),
            now: Instant::now(),
            ended: None,
        }
    }

    /// One turn of the loop as `run_with_input` takes it, at the client's clock; the sockets
    /// are waited for a few milliseconds of real time at most.
    fn turn(&mut self) {
        if self.ended.is_some() {
            return;
        }
        if let Some(end) = self.r.finish_turn(self.now) {
            self.ended = Some(end);
            return;
        }
        let wait = Some(Duration::from_millis(3));
        if let Err(e) = self.r.poll.poll(&mut self.events, wait) {
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
        }
        let now = self.now;
        for event in self.events.iter() {
            match event.token() {
                WAKER => self.r.woken(now),
                LISTENER => self.r.accept(now),
                Token(k) => self.r.conn_ready(k, event.is_writable(), now),
            }
            self.r.apply_actions(now);
        }
        self.r.read_unread(now);
        self.r.tick(now);
    }

    /// Turns (10 s of wall time at most) until `done`.
    fn until(&mut self, what: &str, mut done: impl FnMut(&Driven) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "never {what}; the client said:\n{}",
                self.text()
            );
            self.turn();
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.0.lock().expect("output lock")).into_owned()
    }

    /// The lines of its output containing `part`.
    fn said(&self, part: &str) -> Vec<String> {
        let text = self.text();
        text.lines()
            .filter(|l| l.contains(part))
            .map(str::to_string)
            .collect()
    }

    /// Turns until it has said `part` `n` times; the last of them.
    fn until_said(&mut self, part: &str, n: usize) -> String {
        self.until(&format!("{part:?} {n} times"), |d| d.said(part).len() >= n);
        self.said(part).pop().unwrap_or_default()
    }

    fn type_in(&mut self, input: Input) {
        self.typed.send(input).expect("typed");
        // Woken by the test, not by a stdin thread: the next turn takes it.
        self.r.waker.wake().expect("wake");
    }

    /// Moves its clock on by `secs` seconds.
    fn wait_secs(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }
}

/// The delay a notice announces (`... in 4 s`), in seconds.
fn announced(notice: &str) -> u64 {
    let before = notice.rsplit_once(" s\"").map_or(notice, |(b, _)| b);
    let secs = before.rsplit(' ').next().unwrap_or_default();
    secs.parse()
        .unwrap_or_else(|_| panic!("no delay in {notice}"))
}

#[test]
fn a_client_that_loses_its_hub_says_so_and_dials_again_backing_off_to_30_s() {
    let hub = Node::start(no_lookups());
    let port = hub.port();
    let label = format!("127.0.0.1:{port}");
    let mut client = Driven::start(client_of(port, true));
    client.until_said(r#""event":"join","nick":"hub""#, 1);
    close_hub_of(hub, &mut client);

    let lost = client.until_said("lost the connection", 1);
    assert!(
        lost.contains(&format!(
            "lost the connection to {label}; reconnecting in 1 s"
        )),
        "{lost}"
    );
    assert!(client.said("no connections left").is_empty());
    let mut delay = 1;
    let mut steps = Vec::new();
    for round in 1..=10 {
        // Not a moment before its time: nothing is dialled, nothing more said.
        client.now += Duration::from_secs(delay) - Duration::from_millis(1);
        for _ in 0..5 {
            client.turn();
        }
        assert!(
            client.r.conns.is_empty(),
            "dialled before the back-off was over"
        );
        let said_before = client.said("reconnecting to").len();
        client.now += Duration::from_millis(1);
        client.until("the round of re-dials failed", |d| {
            d.r.redial.rounds_failed() == round
        });
        let said = client.said("reconnecting to");
        if round <= 5 {
            let notice = &said[said_before];
            assert!(
                notice.contains(&format!("\"reconnecting to {label} in ")),
                "{notice}"
            );
            delay = announced(notice);
            steps.push(delay);
        } else {
            // At the longest wait, a failed round is said only every tenth time.
            assert_eq!(
                said.len(),
                said_before + usize::from(round == 10),
                "{said:?}"
            );
        }
    }
    assert_eq!(steps, [2, 4, 8, 16, 30]);
    let last = client.said("reconnecting to").pop().unwrap_or_default();
    assert!(
        last.contains(&format!("still reconnecting to {label}, every 30 s")),
        "{last}"
    );
    assert!(client.ended.is_none(), "{:?}", client.ended);
}

#[test]
fn a_client_reconnects_when_its_hub_is_back_chats_again_and_starts_the_back_off_over() {
    let (mut client, port) = client_that_lost_its_hub();
    client.wait_secs(1);
    let failed = client.until_said("reconnecting to", 1);
    assert_eq!(announced(&failed), 2);

    // The hub is back on the same port: the next round finds it.
    let hub = hub_on(port);
    client.wait_secs(2);
    client.until_said(r#""event":"join","nick":"hub""#, 2);
    hub.out.wait_for(r#""event":"join","nick":"client""#);
    client.type_in(Input::Line("back again".into()));
    client.until("its line reached the hub", |_| {
        hub.out
            .0
            .lock()
            .is_ok_and(|o| String::from_utf8_lossy(&o).contains("back again"))
    });
    hub.type_in(Input::Line("welcome back".into()));
    client.until_said("welcome back", 1);

    // Lost again: from 1 s, then 2 s, as the first time.
    close_hub_of(hub, &mut client);
    let lost = client.until_said("lost the connection", 2);
    assert_eq!(announced(&lost), 1);
    client.wait_secs(1);
    let failed = client.until_said("reconnecting to", 2);
    assert_eq!(announced(&failed), 2);
}

#[test]
fn leaving_while_waiting_to_dial_again_ends_the_run_at_once() {
    for leave in [Input::Line("/quit".into()), Input::End] {
        let (mut client, _) = client_that_lost_its_hub();
        client.wait_secs(1);
        client.until_said("reconnecting to", 1);
        // Waiting 2 s for the next round: leaving does not wait for it, on the same clock.
        let t0 = Instant::now();
        client.type_in(leave);
        client.until("the run ended", |d| d.ended.is_some());
        assert_eq!(client.ended.take(), Some(Ok(Ended::Done)));
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert!(client.r.conns.is_empty());
    }
}

#[test]
fn a_client_run_by_the_loop_is_back_when_its_hub_returns() {
    let hub = Node::start(no_lookups());
    let port = hub.port();
    let client = Node::start_with(client_of(port, true), no_lookups(), Vec::new());
    client.out.wait_for(r#""event":"join","nick":"hub""#);
    close_hub(hub);
    client.out.wait_for(&format!(
        "lost the connection to 127.0.0.1:{port}; reconnecting in 1 s"
    ));
    let hub = hub_on(port);
    hub.out.wait_for(r#""event":"join","nick":"client""#);
    hub.type_in(Input::Line("you are back".into()));
    client.out.wait_for("you are back");
    client.type_in(Input::Line("/quit".into()));
    assert_eq!(client.run.join().expect("no panic"), Ok(Ended::Done));
    close_hub(hub);
}

#[test]
fn without_reconnect_a_client_ends_when_its_hub_goes_as_before() {
    let hub = Node::start(no_lookups());
    let port = hub.port();
    let client = Node::start_with(client_of(port, false), no_lookups(), Vec::new());
    client.out.wait_for(r#""event":"join","nick":"hub""#);
    close_hub(hub);
    assert_eq!(client.run.join().expect("no panic"), Ok(Ended::Done));
    client.out.wait_for("no connections left");
    let text = String::from_utf8_lossy(&client.out.0.lock().expect("output lock")).into_owned();
    assert!(!text.contains("reconnecting"), "{text}");
}

#[test]
fn a_reconnecting_client_whose_first_dial_fails_ends_with_the_error_as_before() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let started = Reactor::new(
        client_of(port, true),
        Output::new(Format::Json, std::io::sink()),
    );
    // Input stays open: only the failed dial may end the run.
    let (_typed, rx) = sync_channel(1);
    let ended = match started {
        // Refused at once: the setup error, as without reconnecting.
        Err(e) => Err(RunError::Setup(e)),
        Ok(r) => r.run_with_input(move |_| Ok(rx)),
    };
    let refused = format!("cannot connect to 127.0.0.1:{port}: connection refused");
    match ended {
        Err(e) => assert_eq!(e.to_string(), refused),
        other => panic!("{other:?}"),
    }
}

/// A listener on loopback `port` whose accept queue is full (a backlog of 0, and one
/// connection never accepted): the kernel drops further connection requests, so a dial to it
/// stays connecting. The filler connection is returned with it.
fn full_listener(port: u16) -> (std::net::TcpListener, std::net::TcpStream) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns, handed to an OwnedFd
    // (which closes it) before any early return.
    let listener = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let opt = (&one as *const libc::c_int).cast();
        assert_eq!(
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, opt, len),
            0
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let sa = (&addr as *const libc::sockaddr_in).cast();
        assert_eq!(libc::bind(fd, sa, len), 0, "bind");
        assert_eq!(libc::listen(fd, 0), 0, "listen");
        std::net::TcpListener::from(owned)
    };
    let filler = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the filler");
    (listener, filler)
}

#[test]
fn leaving_while_a_dial_again_is_still_connecting_does_not_wait_for_it() {
    let (mut client, port) = client_that_lost_its_hub();
    let (_listener, _filler) = full_listener(port);
    client.wait_secs(1);
    client.until("dialling again", |d| !d.r.conns.is_empty());
    for _ in 0..20 {
        client.turn();
    }
    assert!(
        client.r.conns.iter().all(|(_, e)| e.conn.is_connecting()),
        "the dial did not hang: {}",
        client.text()
    );
    // The quit grace runs on the client's clock, which stands still: only not waiting for
    // the dial ends the run.
    client.type_in(Input::Line("/quit".into()));
    client.until("the run ended", |d| d.ended.is_some());
    assert_eq!(client.ended.take(), Some(Ok(Ended::Done)));
    assert!(client.r.conns.is_empty());
}

#[test]
fn a_line_typed_while_a_re_dial_is_still_coming_up_is_held_and_never_sent_live_on_it() {
    let (mut client, port) = client_that_lost_its_hub();

    // Something listens there again but says nothing: the re-dial connects and stays nobody.
    let silent = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind again");
    client.wait_secs(1);
    client.until("the re-dial connected", |d| {
        d.r.conns.iter().any(|(_, e)| !e.conn.is_connecting())
    });
    client.type_in(Input::Line("typed while away".into()));
    client.until_said("nobody is connected; what you say waits", 1);

    // Silent for 3 s, the listener is taken for a guest (say, `nc -l`): what is typed now
    // reaches it, and what was said to nobody only as history, dated, in its welcome.
    client.wait_secs(3);
    client.until("the listener was taken for a guest", |d| {
        d.r.conns.iter().any(|(_, e)| e.conn.role().is_some())
    });
    client.type_in(Input::Line("typed once back".into()));
    let (mut guest, _) = silent.accept().expect("accept");
    guest
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let mut got = String::new();
    client.until("the guest got the line typed once back", |_| {
        let mut buf = [0u8; 4096];
        if let Ok(n) = std::io::Read::read(&mut guest, &mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got.contains("typed once back")
    });
    assert!(
        got.lines().all(|l| l != "<client> typed while away"),
        "{got}"
    );
    let dated = |l: &str| l.starts_with('[') && l.ends_with("] <client> typed while away");
    assert!(got.lines().any(dated), "{got}");
}
