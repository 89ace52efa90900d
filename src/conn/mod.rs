//! One connection's buffers and state: the line decoder on the way in; on the way out, its
//! place in the shared log (see `fanout`) plus the few bytes meant for it alone (its hello, a
//! direct frame), in order, written with `write_vectored` straight from where they are; frames
//! held until we know whether the other end is a peer or a guest. In a private group its wire
//! (`wire.rs`: the Noise link every byte read goes through and every coalesced write is sealed
//! by, and the first bytes that tell a node from a guest) sits between these and the socket.
//!
//! Reads and writes go through `impl Read` / `impl Write`, so short writes and would-block are
//! tested without sockets. Must not know about other connections or chat rules.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::event::Role;
use crate::fanout::{side, Log, Pos, Slices};
use crate::protocol::{self, Frame, LineDecoder};

mod wire;
use wire::{wire_error, Wire};
pub use wire::{WireError, NOISE_FIRST};

/// Default for the most unsent output a connection may have: past it, it is too slow to keep
/// and is closed (`--max-backlog`).
pub const MAX_BACKLOG: usize = 4 * 1024 * 1024;

/// Default for how long a connection may stay past its high-water mark (a quarter of the most
/// unsent output) before it is closed (`--slow-timeout`), so one stalled reader cannot freeze
/// the chat.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// A guest's unterminated line is taken as a message once the guest has been quiet this long
/// (some programs send lines without `\n`).
pub const PARTIAL_LINE_IDLE: Duration = Duration::from_millis(250);

/// ...or once it is this old, quiet or not: a guest sending a byte now and then cannot keep an
/// unfinished line (and its connection) waiting for ever.
pub const PARTIAL_LINE_MAX_AGE: Duration = Duration::from_secs(5);

/// Where a connection is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Our dial is in progress (its deadline is the reactor's timer).
    Connecting,
    /// Connected, and in a private group the encrypted link is being set up (or, accepted,
    /// the first bytes will say whether a node or a guest is there): the chat has not been
    /// told yet, and nothing of it is written.
    Handshake,
    /// Connected; the chat has been told.
    Open,
    /// We are leaving: our side is shut down, waiting for the other end to close.
    Shut,
}

/// What one read call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Bytes were added to the decoder.
    Data,
    /// The other end closed its sending side.
    Eof,
    /// Nothing more for now.
    WouldBlock,
}

/// An unterminated line, after the other end went quiet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialLine {
    /// Nothing to do (none, a peer's, or a hello still in time).
    None,
    /// A guest's line without `\n` (some programs send lines so): taken as a message.
    GuestLine,
    /// The start of a hello that was never finished: the connection is closed.
    IncompleteHello,
}

/// A piece of a connection's output queue.
enum Seg {
    /// A range of the shared log.
    Log { start: Pos, end: Pos },
    /// Bytes for this connection alone (its hello, a direct frame).
    Own(Vec<u8>),
    /// A direct frame for a connection whose role is not known yet: encoded when it is.
    Frame(Rc<Frame>),
}

/// One connection, without its socket. Its fields are private: the reactor moves it through
/// its life with the methods below (call [`Conn::connected`] before reading, [`Conn::classify`]
/// once the chat knows the role).
pub struct Conn {
    /// Where the other end is, as shown to the user.
    addr: String,
    phase: Phase,
    /// `None` until the chat classifies the other end.
    role: Option<Role>,
    decoder: LineDecoder,
    /// When bytes last arrived.
    last_read: Instant,
    /// A whole line has come from it (so an unfinished one is not a hello still on its way).
    got_line: bool,
    /// Since when the unfinished line in the decoder has been waiting.
    partial_since: Option<Instant>,
    /// The last write would have blocked: nothing more is written until the socket says it is
    /// writable again.
    blocked: bool,
    /// Being closed on purpose once its output is out (a duplicate link).
    retiring: bool,
    /// What to send before the tail, in order.
    out: VecDeque<Seg>,
    /// Bytes of `out[0]` already written.
    out_off: usize,
    /// Unsent bytes in `out`, in this connection's format (the peer format while unknown).
    queued: usize,
    /// Receiving broadcasts: everything in the shared log from here on is for this connection
    /// too, after `out`.
    tail: Option<Pos>,
    wire: Wire,
    /// The link opened (or a guest was let in) since the reactor last asked.
    just_opened: bool,
}

impl Conn {
    /// A connection to or from `addr` (as shown to the user), in `phase`.
    pub fn new(addr: String, phase: Phase, now: Instant) -> Self {
        Conn {
            addr,
            phase,
            role: None,
            decoder: LineDecoder::default(),
            last_read: now,
            got_line: false,
            partial_since: None,
            blocked: false,
            retiring: false,
            out: VecDeque::new(),
            out_off: 0,
            queued: 0,
            tail: None,
            wire: Wire::Plain,
            just_opened: false,
        }
    }

    /// Where the other end is, as shown to the user.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// True while our dial is in progress.
    pub fn is_connecting(&self) -> bool {
        self.phase == Phase::Connecting
    }

    /// True once our side was shut down after everything went out (see [`Conn::shut`]).
    pub fn is_shut(&self) -> bool {
        self.phase == Phase::Shut
    }

    /// `None` until the chat classifies the other end.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Our dial reached `addr`: the connection is open.
    pub fn connected(&mut self, addr: String) {
        self.phase = Phase::Open;
        self.addr = addr;
    }

    /// Our dial failed and the next address is being tried: what is queued stays.
    pub fn reconnecting(&mut self) {
        self.phase = Phase::Connecting;
        self.blocked = false;
    }

    /// Our side was shut down after everything went out: no more broadcasts, and only the other
    /// end's close is awaited. `log_end` is the log's end now.
    pub fn shut(&mut self, log_end: Pos) {
        self.phase = Phase::Shut;
        self.unsubscribe(log_end);
    }

    /// The last write would have blocked: nothing is written until [`Conn::writable`].
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The socket said it is writable again.
    pub fn writable(&mut self) {
        self.blocked = false;
    }

    /// It is a duplicate, closed on purpose once what is queued is out: no more broadcasts.
    pub fn retire(&mut self, log_end: Pos) {
        self.retiring = true;
        self.unsubscribe(log_end);
    }

    pub fn is_retiring(&self) -> bool {
        self.retiring
    }

    /// The next complete line read, if any (see [`LineDecoder::next_line`]).
    /// From an encrypted peer, the first line is checked first: a hello must name the identity
    /// key the link's handshake proved, or the connection is given up (it is an error).
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, protocol::ProtocolError> {
        let line = self.decoder.next_line()?;
        if let Some(line) = line {
            if !self.wire.first_line_fits(line) {
                return Err(protocol::ProtocolError::Malformed(
                    "the hello's key is not the one the encrypted link proved",
                ));
            }
        }
        Ok(line)
    }

    /// Takes the unfinished line out of the decoder, as a line of its own (its sender went
    /// quiet, or closed).
    pub fn take_partial(&mut self) -> Vec<u8> {
        let line = self.decoder.take_partial();
        self.got_line = true;
        self.partial_since = None;
        line
    }

    /// Which half of a [`Pos`] this connection reads (the peer half while unknown).
    fn side(&self) -> usize {
        side(self.role.unwrap_or(Role::Peer))
    }

    /// Bytes `seg` takes in this connection's format.
    fn seg_len(&self, seg: &Seg) -> usize {
        match seg {
            Seg::Log { start, end } => {
                let s = self.side();
                (end[s] - start[s]) as usize
            }
            Seg::Own(b) => b.len(),
            Seg::Frame(f) => {
                let mut buf = Vec::new();
                protocol::encode(f, &mut buf);
                buf.len()
            }
        }
    }

    /// From now on every frame appended to the log at or after `at` is for this connection.
    pub fn subscribe(&mut self, at: Pos) {
        self.tail = Some(at);
    }

    /// True while it gets broadcasts.
    pub fn is_subscribed(&self) -> bool {
        self.tail.is_some()
    }

    /// No more broadcasts for it; what the log holds for it up to `log_end` is still sent.
    pub fn unsubscribe(&mut self, log_end: Pos) {
        self.take_tail(log_end);
        self.tail = None;
    }

    /// The frame at `[start, end)` of the log is not for this connection (it came from it).
    pub fn skip(&mut self, start: Pos, end: Pos) {
        if self.tail.is_some() {
            self.take_tail(start);
            self.tail = Some(end);
        }
    }

    /// Moves the tail up to `upto` into the queue, so that something can be queued after it.
    fn take_tail(&mut self, upto: Pos) {
        let Some(t) = self.tail else { return };
        let empty = match self.role {
            Some(r) => t[side(r)] == upto[side(r)],
            None => t == upto,
        };
        if empty {
            return;
        }
        let s = self.side();
        self.queued += (upto[s] - t[s]) as usize;
        match self.out.back_mut() {
            Some(Seg::Log { end, .. }) if *end == t => *end = upto,
            _ => self.out.push_back(Seg::Log {
                start: t,
                end: upto,
            }),
        }
        self.tail = Some(upto);
    }

    /// Appends bytes for this connection alone, after everything queued so far (our hello).
    /// `log_end` is the log's end now.
    pub fn queue_raw(&mut self, bytes: &[u8], log_end: Pos) {
        if bytes.is_empty() {
            return;
        }
        self.take_tail(log_end);
        self.queued += bytes.len();
        self.out.push_back(Seg::Own(bytes.to_vec()));
    }

    /// Puts our hello before everything queued so far (broadcasts that came while a dial
    /// was connecting). Only before anything was written.
    pub fn queue_first(&mut self, hello: Vec<u8>) {
        debug_assert_eq!(self.out_off, 0);
        self.queued += hello.len();
        self.out.push_front(Seg::Own(hello));
    }

    /// Queues `line` ahead of anything held for an unknown role (after what goes out anyway):
    /// a proof the other side waits for before it classifies us, and so before it sends what
    /// would let us classify it.
    pub fn queue_urgent(&mut self, line: Vec<u8>) {
        let at = self
            .out
            .iter()
            .position(|seg| !matches!(seg, Seg::Own(_)))
            .unwrap_or(self.out.len());
        self.queued += line.len();
        self.out.insert(at, Seg::Own(line));
    }

    /// Queues a frame meant for this connection alone (a guest gets a DM in its direct form),
    /// in its format, or held until that is known.
    pub fn queue_direct(&mut self, frame: &Rc<Frame>, log_end: Pos) {
        self.take_tail(log_end);
        let seg = match self.role {
            Some(role) => Seg::Own(encode_direct(frame, role)),
            None => Seg::Frame(frame.clone()),
        };
        self.queued += self.seg_len(&seg);
        self.out.push_back(seg);
    }

    /// Sets the role: what was held goes out in that format. A connection taken for a guest
    /// that turns out to be a peer keeps what was queued for it as a guest, and gets frames
    /// from then on.
    pub fn classify(&mut self, role: Role, log: &Log) {
        if self.role.is_some_and(|old| old != role) {
            let mut was = Vec::new();
            // Writing to a Vec cannot fail. In plain text: `was` goes back into the queue,
            // which is sealed when it is written.
            let _ = self.flush_plain(&mut was, log);
            self.blocked = false;
            self.role = Some(role);
            self.tail = self.tail.map(|_| log.end());
            self.queued = was.len();
            if !was.is_empty() {
                self.out.push_back(Seg::Own(was));
            }
            return;
        }
        self.role = Some(role);
        for seg in self.out.iter_mut() {
            if let Seg::Frame(f) = seg {
                *seg = Seg::Own(encode_direct(f, role));
            }
        }
        self.queued = self.out.iter().map(|seg| self.seg_len(seg)).sum::<usize>() - self.out_off;
    }

    /// Unsent output, in bytes, counting what is held until the role is known (in the larger
    /// of the two formats then: a guest line can be longer than the frame it shows).
    pub fn backlog(&self, log: &Log) -> usize {
        self.plain_backlog(log) + self.sealed_pending()
    }

    fn plain_backlog(&self, log: &Log) -> usize {
        let end = log.end();
        match (self.role, self.tail) {
            (Some(role), Some(t)) => self.queued + (end[side(role)] - t[side(role)]) as usize,
            (Some(_), None) => self.queued,
            (None, _) => {
                let segs = |s: usize| -> usize {
                    self.out
                        .iter()
                        .map(|seg| match seg {
                            Seg::Log { start, end } => (end[s] - start[s]) as usize,
                            _ => 0,
                        })
                        .sum()
                };
                let tail = |s: usize| self.tail.map_or(0, |t| (end[s] - t[s]) as usize);
                // `queued` counts the log ranges in the peer format: count the larger one.
                let own = self.queued.saturating_sub(segs(0));
                own + (segs(0) + tail(0)).max(segs(1) + tail(1))
            }
        }
    }

    /// The earliest place in the log this connection still has to send, if any.
    pub fn pin(&self) -> Option<Pos> {
        self.out
            .iter()
            .find_map(|seg| match seg {
                Seg::Log { start, .. } => Some(*start),
                _ => None,
            })
            .or(self.tail)
    }

    /// What the unterminated line waiting in the decoder is, once the other end has been quiet
    /// for [`PARTIAL_LINE_IDLE`].
    pub fn partial_line(&self) -> PartialLine {
        const HELLO: &[u8] = b"peerchat/";
        let p = self.decoder.partial();
        match self.role {
            _ if p.is_empty() => PartialLine::None,
            Some(Role::Peer) => PartialLine::None,
            // The hello may still be coming: the chat's hello wait decides.
            None if p.starts_with(HELLO) || HELLO.starts_with(p) => PartialLine::None,
            // Taken for a guest by its silence, and what it began to send, its first line, is a
            // hello that never came whole.
            Some(Role::Guest) if !self.got_line && p.starts_with(HELLO) => {
                PartialLine::IncompleteHello
            }
            _ => PartialLine::GuestLine,
        }
    }

    /// When the unfinished line is due to be dealt with (see [`Conn::partial_line`]): after
    /// [`PARTIAL_LINE_IDLE`] of quiet, or [`PARTIAL_LINE_MAX_AGE`] after it began.
    pub fn partial_due(&self) -> Option<Instant> {
        if self.partial_line() == PartialLine::None {
            return None;
        }
        let quiet = self.last_read + PARTIAL_LINE_IDLE;
        Some(
            self.partial_since
                .map_or(quiet, |t| quiet.min(t + PARTIAL_LINE_MAX_AGE)),
        )
    }

    /// Notes, after the lines of a read were taken (`took_lines`), when the unfinished line
    /// left in the decoder began.
    pub fn note_partial(&mut self, took_lines: bool, now: Instant) {
        self.got_line |= took_lines;
        if self.decoder.partial().is_empty() {
            self.partial_since = None;
        } else if took_lines || self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
    }

    /// One read from `r` into the decoder.
    pub fn read_some(&mut self, r: &mut impl Read, now: Instant) -> io::Result<ReadStatus> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            return match r.read(&mut buf) {
                Ok(0) => Ok(ReadStatus::Eof),
                Ok(n) => {
                    self.last_read = now;
                    self.take_in(&buf[..n]).map_err(wire_error)?;
                    Ok(ReadStatus::Data)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadStatus::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Collects what can be written now: the queue, then the tail, until something held for
    /// an unknown role.
    fn pending<'a>(&'a self, log: &'a Log, out: &mut Slices<'a>) {
        for (i, seg) in self.out.iter().enumerate() {
            let skip = if i == 0 { self.out_off } else { 0 };
            let more = match (seg, self.role) {
                (Seg::Own(b), _) => out.push(&b[skip..]),
                (Seg::Log { start, end }, Some(role)) => {
                    let s = side(role);
                    log.slices(role, start[s] + skip as u64, end[s], out)
                }
                // Held until the role is known.
                _ => false,
            };
            if !more {
                return;
            }
        }
        if let (Some(t), Some(role)) = (self.tail, self.role) {
            let s = side(role);
            log.slices(role, t[s], log.end()[s], out);
        }
    }

    /// Writes as much pending output as `w` takes, until it would block: many frames per
    /// system call (`write_vectored` straight from the log), never one call per frame. Sets
    /// [`Conn::is_blocked`] when `w` would block.
    pub fn flush_to(&mut self, w: &mut impl Write, log: &Log) -> io::Result<()> {
        match self.wire {
            Wire::Plain => self.flush_plain(w, log),
            // Nothing is written to a connection not known to be a node or a guest.
            Wire::Sniff { .. } => Ok(()),
            Wire::Sealed(_) => self.flush_sealed(w, log),
        }
    }

    /// Writes in plain text (see [`Conn::flush_to`]).
    fn flush_plain(&mut self, w: &mut impl Write, log: &Log) -> io::Result<()> {
        loop {
            let result = {
                let mut slices = Slices::new();
                self.pending(log, &mut slices);
                if slices.bytes() == 0 {
                    break;
                }
                w.write_vectored(slices.as_slice())
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out.is_empty() && self.out.capacity() > 16 {
            self.out.shrink_to(16);
        }
        Ok(())
    }

    /// Drops the first `n` unsent bytes, which were written.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.out.front() else {
                break;
            };
            let left = self.seg_len(front) - self.out_off;
            if n < left {
                self.out_off += n;
                self.queued -= n;
                return;
            }
            n -= left;
            self.queued -= left;
            self.out.pop_front();
            self.out_off = 0;
        }
        let s = self.side();
        if let Some(t) = &mut self.tail {
            t[s] += n as u64;
        }
    }
}

/// `frame` as sent to one connection of `role` alone.
fn encode_direct(frame: &Frame, role: Role) -> Vec<u8> {
    let mut bytes = Vec::new();
    match role {
        Role::Peer => protocol::encode_peer(frame, &mut bytes),
        Role::Guest => {
            protocol::encode_guest_direct(frame, &mut bytes);
        }
    }
    bytes
}

#[cfg(test)]
mod tests;
