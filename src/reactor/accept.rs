//! The listener: accepting connections, backing off while out of file descriptors, and
//! `--max-conns` (a connection past it is told the chat is full and closed).
//!
//! Owns the listener and its limits; must not touch accepted connections past handing them
//! to the reactor, nor decide anything about the chat.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use std::collections::VecDeque;
use std::time::Instant;

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::setup::describe;
use super::timers::{Timer, CONNECT_TIMEOUT};
use super::{Entry, Reactor};
use crate::chat::Origin;
use crate::conn::{Conn, Phase};
use crate::eventlog::Tag;
use crate::protocol;

/// Accepting again after running out of file descriptors: first wait, and the most.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long to stop accepting after running out of resources: doubling while it lasts, from
/// [`BACKOFF_MIN`] to [`BACKOFF_MAX`], back to the start after an accept that works.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    /// The wait for this failure; the next one waits twice as long, up to the cap.
    fn failed(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        wait
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

/// What one accept call gave.
pub(super) enum Accepted {
    /// A new connection to keep.
    New(TcpStream, SocketAddr),
    /// Out of resources: stop accepting for this long.
    Pause(Duration),
    /// Nothing more for now (or no listener, or paused).
    Done,
}

/// Whether accepting is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Accepting,
    /// Out of descriptors: waiting for the reactor's accept timer.
    Paused,
}

/// The listener and its limits.
pub(super) struct Acceptor {
    listener: Option<TcpListener>,
    state: State,
    backoff: Backoff,
    max_conns: usize,
    /// Refusing connections (the chat is full) was said, and nobody has left since.
    told_full: bool,
}

impl Acceptor {
    pub(super) fn new(listener: Option<TcpListener>, max_conns: usize) -> Self {
        Acceptor {
            listener,
            state: State::Accepting,
            backoff: Backoff(BACKOFF_MIN),
            max_conns,
            told_full: false,
        }
    }

    pub(super) fn is_listening(&self) -> bool {
        self.listener.is_some()
    }

    pub(super) fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Stops listening (the user is leaving).
    pub(super) fn close(&mut self, registry: &Registry) {
        if let Some(mut l) = self.listener.take() {
            let _ = registry.deregister(&mut l);
        }
    }

    /// The accept timer fired: accept again.
    pub(super) fn resume(&mut self) {
        self.state = State::Accepting;
    }

    /// A connection went: the next refusal is worth saying again.
    pub(super) fn someone_left(&mut self) {
        self.told_full = false;
    }

    /// Accepts the next waiting connection; `open` is how many there are now. One past
    /// `--max-conns` is refused here and the next one looked at. `record` gets the event-log
    /// line of the first refusal of a spell of being full.
    pub(super) fn next(&mut self, open: usize, record: &mut dyn FnMut(String)) -> Accepted {
        loop {
            let Some(listener) = &self.listener else {
                return Accepted::Done;
            };
            if self.state == State::Paused {
                return Accepted::Done;
            }
            match listener.accept() {
                Ok((stream, addr)) if open >= self.max_conns => {
                    if let Some(line) = self.refuse(stream, addr) {
                        record(line);
                    }
                }
                Ok((stream, addr)) => {
                    self.backoff.reset();
                    return Accepted::New(stream, addr);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Done,
                Err(e) if out_of_resources(&e) => {
                    let wait = self.backoff.failed();
                    warn!(
                        "cannot accept: {}; accepting again in {wait:?}",
                        describe(&e)
                    );
                    self.state = State::Paused;
                    return Accepted::Pause(wait);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    warn!("accept failed: {e}");
                    return Accepted::Done;
                }
            }
        }
    }

    /// The chat is full: one line saying so, then the connection is closed. Returns the
    /// event-log line the first time in a spell of being full.
    fn refuse(&mut self, mut stream: TcpStream, addr: SocketAddr) -> Option<String> {
        refuse_with(&mut stream, &refusal(self.max_conns));
        if self.told_full {
            info!("refused {addr}: the chat is full");
            return None;
        }
        // Once per spell of being full, here and in the event log: a flood of connections to
        // a full node does not flood the log.
        self.told_full = true;
        warn!(
            "the chat is full ({} connections, --max-conns): refusing {addr} and others",
            self.max_conns
        );
        Some(format!("the chat is full: refusing {addr} and others"))
    }
}

/// The line a connection past `--max-conns` gets.
fn refusal(max_conns: usize) -> String {
    format!(
        "{} ({max_conns} connections); try again later\n",
        protocol::FULL
    )
}

/// Sends `line` and closes: a fresh socket takes a short line whole; if not, the close alone
/// says enough. Then a FIN, and what the other end sent already (a node's hello) is read off,
/// so that the close is not a reset that could destroy the line before it is read.
pub(super) fn refuse_with(stream: &mut (impl Read + Write + ShutdownWrite), line: &str) {
    let _ = stream.write(line.as_bytes());
    stream.shutdown_write();
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Half-closing a stream, so that [`refuse_with`] can be tried without a socket too.
pub(super) trait ShutdownWrite {
    fn shutdown_write(&mut self);
}

impl ShutdownWrite for TcpStream {
    fn shutdown_write(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl<W: Write> Reactor<W> {
    /// Accepts every waiting connection. Out of file descriptors, it stops for a while (10 ms,
    /// doubling to 1 s while it lasts): the waiting connections stay queued in the kernel and
    /// are taken when the timer fires, so the loop neither spins nor stops accepting.
    pub(super) fn accept(&mut self, now: Instant) {
        loop {
            let mut refusals = Vec::new();
            let next = self
                .acceptor
                .next(self.conns.len(), &mut |line| refusals.push(line));
            for line in refusals {
                self.record(Tag::Info, &line);
            }
            match next {
                Accepted::New(stream, addr) => self.accepted(stream, addr, now),
                Accepted::Pause(wait) => return self.timers.set(Timer::AcceptPause, now + wait),
                Accepted::Done => return,
            }
        }
    }

    /// Keeps a new connection from `addr`, and sends it our hello.
    fn accepted(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant) {
        let key = self.conns.vacant_key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), interest)
        {
            warn!("cannot register connection from {addr}: {e}");
            return;
        }
        let _ = stream.set_nodelay(true);
        info!("connection from {addr}");
        let mut conn = Conn::new(addr.to_string(), Phase::Open, now);
        if let Some(keys) = &self.link_keys {
            conn.start_sniffing(keys.clone(), self.allow_guests);
        }
        let entry = Entry::new(stream, conn, Origin::Accepted, VecDeque::new(), now);
        self.insert(key, entry);
        self.record(Tag::Accepted, &format!("connection from {addr}"));
        if self.link_keys.is_some() {
            // A private group: nothing is said until the first bytes show a node (and its link
            // opens) or a guest; a silent connection is closed when a dial would have failed.
            self.timers.set(Timer::Connect(key), now + CONNECT_TIMEOUT);
            return;
        }
        self.opened(key, addr, now);
    }
}

/// True for accept errors that mean "out of resources for now": file descriptors (EMFILE,
/// ENFILE) or kernel memory (ENOBUFS, ENOMEM). Accepting again later may work.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENFILE | libc::EMFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap_and_starts_again_after_an_accept() {
        let mut b = Backoff(BACKOFF_MIN);
        let waits: Vec<u128> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.failed(), BACKOFF_MIN);
    }

    #[test]
    fn out_of_descriptors_or_memory_is_worth_waiting_for_and_nothing_else_is() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(out_of_resources(&io::Error::from_raw_os_error(code)));
        }
        assert!(!out_of_resources(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        assert!(!out_of_resources(&io::ErrorKind::WouldBlock.into()));
    }

    #[test]
    fn a_refused_connection_reads_the_full_line_then_the_end() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        client.write_all(b"peerchat/1 hello\n").expect("hello");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        refuse_with(&mut TcpStream::from_std(server), &refusal(2));
        let mut got = String::new();
        client.read_to_string(&mut got).expect("read to the end");
        assert_eq!(
            got,
            format!("{} (2 connections); try again later\n", protocol::FULL)
        );
    }

    /// Connects to `acceptor` and accepts until it was refused; what it read.
    fn refused(acceptor: &mut Acceptor, records: &mut Vec<String>) -> String {
        let addr = acceptor.local_addr().expect("listening");
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_millis(10)))
            .expect("timeout");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        loop {
            let accepted = acceptor.next(0, &mut |line| records.push(line));
            assert!(
                matches!(accepted, Accepted::Done),
                "accepted past the limit"
            );
            let mut buf = [0u8; 256];
            match client.read(&mut buf) {
                Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            assert!(std::time::Instant::now() < deadline, "never refused");
        }
    }

    #[test]
    fn the_first_refusal_of_a_spell_is_recorded_and_the_next_only_after_someone_left() {
        let listener = TcpListener::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let mut acceptor = Acceptor::new(Some(listener), 0);
        let mut records = Vec::new();
        for _ in 0..2 {
            let line = refused(&mut acceptor, &mut records);
            assert!(line.starts_with(protocol::FULL), "{line:?}");
        }
        assert_eq!(records.len(), 1, "{records:?}");
        acceptor.someone_left();
        refused(&mut acceptor, &mut records);
        assert_eq!(records.len(), 2, "{records:?}");
        assert!(records[1].starts_with("the chat is full: refusing 127.0.0.1:"));
    }
}
