//! Dialling: one `start_dial` for the user's peers, the chat's own dials and `/connect`; the
//! next address when one fails; and looking up `/connect`'s host names on a helper thread,
//! one at a time, whose answers come back over a channel and the loop's waker (as typed lines
//! do), so a slow resolver never freezes the chat.
//!
//! Must not decide whom to dial (the chat and the user do) nor block the loop thread.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token, Waker};

use super::setup::{describe, Dial, DialError};
use super::timers::{Timer, CONNECT_TIMEOUT};
use super::{Entry, Reactor};
use crate::chat::Origin;
use crate::cli::{self, HostPort};
use crate::conn::{Conn, Phase};
use crate::event::Event;
use crate::eventlog::Tag;

/// Looks a host up: every address, or why not (the reason only: the error shown names the
/// host). Runs on a helper thread, so it may block.
pub type Resolve = Arc<dyn Fn(&HostPort) -> Result<Vec<SocketAddr>, String> + Send + Sync>;

/// A lookup's answer, as the helper thread hands it back.
struct Resolved {
    label: String,
    addrs: Result<Vec<SocketAddr>, DialError>,
}

/// Host names being looked up for `/connect`, off the loop thread: one at a time, so that a
/// pasted burst of `/connect`s starts no burst of threads, and answers come back in the order
/// the names were typed.
pub(super) struct Resolver {
    resolve: Resolve,
    tx: Sender<Resolved>,
    rx: Receiver<Resolved>,
    waker: Arc<Waker>,
    /// The label of the lookup under way.
    running: Option<String>,
    /// Lookups waiting for the one under way.
    waiting: VecDeque<HostPort>,
}

impl Resolver {
    /// Uses the system's resolver; `waker` is called when an answer is ready.
    pub(super) fn new(waker: Arc<Waker>) -> Self {
        let (tx, rx) = channel();
        Resolver {
            resolve: Arc::new(|hp: &HostPort| hp.lookup()),
            tx,
            rx,
            waker,
            running: None,
            waiting: VecDeque::new(),
        }
    }

    #[cfg(test)]
    pub(super) fn set(&mut self, resolve: Resolve) {
        self.resolve = resolve;
    }

    /// True while a lookup has not come back.
    pub(super) fn is_pending(&self) -> bool {
        self.running.is_some()
    }

    /// The labels of the lookups that have not come back, in the order they were asked for.
    pub(super) fn unanswered(&self) -> Vec<String> {
        let waiting = self.waiting.iter().map(HostPort::to_string);
        self.running.iter().cloned().chain(waiting).collect()
    }

    /// Looks `hp` up after those asked for before it.
    fn start(&mut self, hp: HostPort) {
        if self.running.is_some() {
            self.waiting.push_back(hp);
        } else {
            self.spawn(hp);
        }
    }

    /// Starts looking `hp` up on a thread of its own (or here, if no thread can start).
    fn spawn(&mut self, hp: HostPort) {
        let label = hp.to_string();
        self.running = Some(label.clone());
        let (resolve, tx, waker) = (self.resolve.clone(), self.tx.clone(), self.waker.clone());
        let host = hp.clone();
        let job = move || {
            let addrs = looked_up(&resolve, &host);
            // The loop may be gone (the user left): nobody wants the answer then.
            if tx.send(Resolved { label, addrs }).is_ok() {
                let _ = waker.wake();
            }
        };
        let spawned = std::thread::Builder::new()
            .name("resolve".into())
            .spawn(job);
        if let Err(e) = spawned {
            warn!("cannot start a thread to look up {}: {e}", hp.host);
            self.answer_here(&hp);
        }
    }

    /// Looks `hp` up on this thread (no helper thread could start): the answer is taken on
    /// the next turn, as if it came from a thread, and the wake makes sure there is one.
    fn answer_here(&mut self, hp: &HostPort) {
        let addrs = looked_up(&self.resolve, hp);
        let label = hp.to_string();
        let _ = self.tx.send(Resolved { label, addrs });
        let _ = self.waker.wake();
    }

    /// The next answer that came back, if any; the next lookup waiting starts.
    fn next_resolved(&mut self) -> Option<Resolved> {
        let r = self.rx.try_recv().ok()?;
        self.running = None;
        if let Some(hp) = self.waiting.pop_front() {
            self.spawn(hp);
        }
        Some(r)
    }
}

/// Looks `hp` up with `resolve`. An answer always comes back, even from a resolver that
/// panics, or typed input would wait for it for ever.
fn looked_up(resolve: &Resolve, hp: &HostPort) -> Result<Vec<SocketAddr>, DialError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| resolve(hp)))
        .unwrap_or_else(|_| Err("the lookup failed".into()))
        .map_err(|why| DialError::Resolve {
            host: hp.host.clone(),
            why,
        })
}

/// What `/connect label` asks for.
enum Target {
    /// Not an address: why.
    Bad(String),
    /// An IP address, dialled at once.
    Addr(HostPort, SocketAddr),
    /// A host name, looked up first.
    Name(HostPort),
}

fn target(label: &str) -> Target {
    match cli::parse_peer(label) {
        Err(msg) => Target::Bad(msg),
        Ok(hp) => match hp.host.parse::<IpAddr>() {
            Ok(ip) => {
                let addr = SocketAddr::new(ip, hp.port);
                Target::Addr(hp, addr)
            }
            Err(_) => Target::Name(hp),
        },
    }
}

/// `/connect label` starts a lookup (the lines typed after it wait for its answer).
pub(super) fn needs_lookup(label: &str) -> bool {
    matches!(target(label), Target::Name(_))
}

/// Starts a non-blocking connect to the first of `addrs` that will, registered under `key`;
/// those after it stay in `addrs`. `error` is the reason if none will.
fn connect_first(
    registry: &Registry,
    addrs: &mut VecDeque<SocketAddr>,
    key: usize,
    mut error: io::Error,
) -> Result<TcpStream, io::Error> {
    while let Some(addr) = addrs.pop_front() {
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            registry.register(&mut stream, Token(key), interest)?;
            Ok(stream)
        });
        match started {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                debug!("cannot connect to {addr}: {e}");
                error = e;
            }
        }
    }
    Err(error)
}

impl<W: Write> Reactor<W> {
    /// Starts dialling `dial`, opened for `origin`; the error is for a peer none of whose
    /// addresses could even start connecting.
    pub(super) fn start_dial(
        &mut self,
        dial: Dial,
        origin: Origin,
        now: Instant,
    ) -> Result<(), DialError> {
        let key = self.conns.vacant_key();
        let mut addrs = VecDeque::from(dial.addrs);
        let none = io::Error::from(io::ErrorKind::AddrNotAvailable);
        match connect_first(self.poll.registry(), &mut addrs, key, none) {
            Ok(stream) => {
                let conn = Conn::new(dial.label, Phase::Connecting, now);
                self.insert(key, Entry::new(stream, conn, origin, addrs, now));
                self.timers.set(Timer::Connect(key), now + CONNECT_TIMEOUT);
                // What the user says while it connects is held for it: the chat must sign that
                // for the peer it may become, or only guests could read it. Not for a re-dial
                // still coming up: what is said meanwhile is not sent on it (see `broadcast`).
                let trial = self.conns.get(key).is_some_and(|e| self.redial.is_trial(e));
                if origin == Origin::Dialled && !trial {
                    self.chat.handle_dialling(key);
                }
                Ok(())
            }
            Err(e) => Err(DialError::Connect {
                label: dial.label,
                why: describe(&e),
            }),
        }
    }

    /// Dials `addr` for the chat (mesh scan, peer exchange, re-dial). Failures go back to the
    /// chat, not to the user.
    pub(super) fn auto_dial(&mut self, addr: SocketAddr, now: Instant) {
        let dial = Dial {
            label: addr.to_string(),
            addrs: vec![addr],
        };
        if let Err(e) = self.start_dial(dial, Origin::Auto(addr), now) {
            debug!("{e}");
            self.chat.handle_dial_failed(addr, now);
        }
    }

    /// `/connect label`: a bad address is said at once, an IP address dialled at once, and a
    /// host name looked up off the loop thread and dialled when the answer comes back (see
    /// [`Reactor::take_resolved`]).
    pub(super) fn connect(&mut self, label: &str, now: Instant) {
        match target(label) {
            Target::Bad(msg) => self.show(&Event::Error(msg)),
            Target::Addr(hp, addr) => self.dial_resolved(hp.to_string(), Ok(vec![addr]), now),
            Target::Name(hp) => self.resolver.start(hp),
        }
    }

    /// Dials the names that were looked up. Even while leaving: every `/connect` the chat
    /// passed on was typed before the leave, and before lookups moved off this thread its dial
    /// started, and the quit grace waited for it.
    pub(super) fn take_resolved(&mut self, now: Instant) {
        while let Some(Resolved { label, addrs }) = self.resolver.next_resolved() {
            self.dial_resolved(label, addrs, now);
        }
    }

    /// Dials what `/connect label` resolved to; a failure is shown, not fatal.
    fn dial_resolved(
        &mut self,
        label: String,
        addrs: Result<Vec<SocketAddr>, DialError>,
        now: Instant,
    ) {
        let dialled = addrs.and_then(|addrs| {
            let dial = Dial { label, addrs };
            self.start_dial(dial, Origin::Dialled, now)
        });
        if let Err(e) = dialled {
            self.show(&Event::Error(e.to_string()));
        }
    }

    /// The run ends with lookups not back: their `/connect`s are not dialled, and the user
    /// is told so rather than left wondering.
    pub(super) fn drop_lookups(&mut self) {
        for label in self.resolver.unanswered() {
            self.show(&Event::Error(format!(
                "not connecting to {label}: still looking it up when leaving"
            )));
        }
    }

    /// Our dial on `k` became ready: true once it is open (the chat has been told), false
    /// while it is still connecting or after it failed (see [`Reactor::dial_error`]).
    pub(super) fn dial_ready(&mut self, k: usize, now: Instant) -> bool {
        let Some(e) = self.conns.get_mut(k) else {
            return false;
        };
        let err = match e.stream.take_error() {
            Ok(Some(err)) | Err(err) => err,
            Ok(None) => match e.stream.peer_addr() {
                Ok(addr) => {
                    e.conn.connected(addr.to_string());
                    let _ = e.stream.set_nodelay(true);
                    info!("connected to {addr}");
                    self.record(Tag::Connected, &format!("connected to {addr}"));
                    let Some(keys) = self.link_keys.clone() else {
                        self.timers.cancel(&Timer::Connect(k));
                        self.opened(k, addr, now);
                        return true;
                    };
                    // A private group: the link first; the chat is told once it is open
                    // (`link_opened`), and the handshake has what a connect had to finish.
                    let Some(e) = self.conns.get_mut(k) else {
                        return false;
                    };
                    if let Err(err) = e.conn.start_initiator(&keys) {
                        self.close(k, Some(err.to_string()), now);
                        return false;
                    }
                    self.timers.set(Timer::Connect(k), now + CONNECT_TIMEOUT);
                    self.mark_dirty(k);
                    return true;
                }
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return false,
                Err(err) => err,
            },
        };
        self.dial_error(k, err, now);
        false
    }

    /// Dialling `k` failed: try its next address, keeping what is queued for it, or give up.
    pub(super) fn dial_error(&mut self, k: usize, error: io::Error, now: Instant) {
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        if !e.next_addrs.is_empty() {
            debug!("cannot connect: {error}; trying the next address");
        }
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut e.stream);
        match connect_first(registry, &mut e.next_addrs, k, error) {
            Ok(stream) => {
                e.stream = stream;
                e.conn.reconnecting();
                self.timers.set(Timer::Connect(k), now + CONNECT_TIMEOUT);
            }
            Err(error) => self.close(k, Some(describe(&error)), now),
        }
    }

    /// A dial the user asked for failed: the end of the run if nothing else is left, else
    /// an error shown (and never the end for a client that reconnects, see `redial`).
    pub(super) fn dial_failed(&mut self, e: DialError) {
        if self.redial_failed(&e) {
            return;
        }
        if self.nothing_left() {
            self.fatal = Some(e);
        } else {
            warn!("{e}");
            self.show(&Event::Error(e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use mio::{Events, Poll};

    const WAKE: Token = Token(7);

    fn resolver(poll: &Poll) -> Resolver {
        let waker = Waker::new(poll.registry(), WAKE).expect("waker");
        Resolver::new(Arc::new(waker))
    }

    fn hp(host: &str) -> HostPort {
        cli::parse_peer(&format!("{host}:1")).expect("an address")
    }

    /// Waits (10 s at most) for the waker; false if it never came.
    fn woken(poll: &mut Poll) -> bool {
        let mut events = Events::with_capacity(4);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if poll.poll(&mut events, Some(left)).is_ok()
                && events.iter().any(|e| e.token() == WAKE)
            {
                return true;
            }
        }
        false
    }

    #[test]
    fn one_lookup_runs_at_a_time_and_answers_come_in_the_order_asked() {
        let mut poll = Poll::new().expect("poll");
        let mut r = resolver(&poll);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (run, max) = (running.clone(), most.clone());
        r.set(Arc::new(move |_| {
            let now = run.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            run.fetch_sub(1, Ordering::SeqCst);
            Err("no such host".into())
        }));
        for host in ["a.example", "b.example", "c.example"] {
            r.start(hp(host));
        }
        assert_eq!(
            r.unanswered(),
            vec!["a.example:1", "b.example:1", "c.example:1"]
        );
        let mut answered = Vec::new();
        while answered.len() < 3 {
            assert!(r.is_pending());
            assert!(woken(&mut poll), "no wake for {answered:?}");
            while let Some(Resolved { label, addrs }) = r.next_resolved() {
                let host = label.trim_end_matches(":1").to_string();
                let why = "no such host".to_string();
                assert_eq!(addrs, Err(DialError::Resolve { host, why }));
                answered.push(label);
            }
        }
        assert_eq!(answered, vec!["a.example:1", "b.example:1", "c.example:1"]);
        assert!(!r.is_pending());
        assert_eq!(most.load(Ordering::SeqCst), 1, "lookups overlapped");
    }

    #[test]
    fn a_lookup_answered_on_the_loop_thread_still_wakes_the_loop() {
        let mut poll = Poll::new().expect("poll");
        let mut r = resolver(&poll);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        r.set(Arc::new(move |_| Ok(vec![addr])));
        r.running = Some("here.example:1".into());
        r.answer_here(&hp("here.example"));
        assert!(woken(&mut poll), "the loop would sleep on the answer");
        let got = r.next_resolved().expect("the answer");
        assert_eq!(
            (got.label.as_str(), got.addrs),
            ("here.example:1", Ok(vec![addr]))
        );
        assert!(!r.is_pending());
    }
}
