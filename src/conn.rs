//! One connection's buffers and state: the line decoder on the way in; on the way out, its
//! place in the shared log (see `fanout`) plus the few bytes meant for it alone (its hello, a
//! direct frame), in order, written with `write_vectored` straight from where they are; frames
//! held until we know whether the other end is a peer or a guest. In a private group, its
//! wire: the Noise link every byte read is fed through and every coalesced write is sealed by
//! (one record per write, up to `link::MAX_RECORD_PLAIN` bytes), and, on an accepted
//! connection, the first bytes that tell a node's handshake from a guest's text.
//!
//! Reads and writes go through `impl Read` / `impl Write`, so short writes and would-block are
//! tested without sockets. Must not know about other connections or chat rules.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::event::Role;
use crate::fanout::{side, Log, Pos, Slices};
use crate::link::{Link, LinkError, LinkKeys, MAX_RECORD, MAX_RECORD_PLAIN};
use crate::protocol::{self, Frame, LineDecoder};

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

/// How a connection's bytes are carried: in plain text, or in a private group through a Noise
/// link (see `link`).
enum Wire {
    Plain,
    /// Accepted in a private group, nothing read yet: a node's first bytes are Noise message 1
    /// (`00 30`, its length), a guest's are text. Holds what was read (fewer than two bytes).
    Sniff {
        keys: Rc<LinkKeys>,
        allow_guests: bool,
        seen: Vec<u8>,
    },
    /// Everything read goes through the link; everything written is sealed first.
    Sealed(Box<Sealed>),
}

/// A connection's Noise link and the ciphertext not written yet.
struct Sealed {
    link: Link,
    /// Handshake messages, then records: written before any more plaintext is sealed.
    out: Vec<u8>,
    /// Bytes of `out` already written.
    off: usize,
    /// The peer's first line is still to come: its hello must name the key the link proved.
    hello_due: bool,
}

/// How a peerchat node's hello starts (see `protocol::frame`).
const HELLO_START: &[u8] = b"peerchat/";

/// The first two bytes of Noise message 1 as peerchat sends it: its 2-byte length, 48.
pub const NOISE_FIRST: [u8; 2] = [0x00, 0x30];

/// Why a private group's connection is given up (carried in an `io::Error` of kind
/// `InvalidData` from [`Conn::read_some`], so the read path keeps one error type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// A guest (text, not a handshake) where guests are not let in.
    Guest,
    /// A peerchat node without the secret (its hello in plain text).
    PlainNode,
    /// The link failed: wrong secret, tampering, a peer that closed in the handshake.
    Link(LinkError),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Guest => f.write_str("a guest, and this is a private group"),
            WireError::PlainNode => f.write_str("a node without the group's secret"),
            WireError::Link(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WireError {}

impl WireError {
    /// The `WireError` inside `e`, if it carries one.
    pub fn of(e: &io::Error) -> Option<&WireError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<WireError>())
    }
}

/// False when `line` is a hello naming another key than `proved`, the one the link's
/// handshake proved. A first line that is no hello is the chat's to judge, as any other.
fn hello_matches(line: &[u8], proved: Option<&ed25519_dalek::VerifyingKey>) -> bool {
    let hello = std::str::from_utf8(line)
        .ok()
        .and_then(protocol::parse_hello);
    match (hello, proved) {
        (Some(h), Some(k)) => h.key.key == *k,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn wire_error(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
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

    /// Our dial connected in a private group: the link starts, its first message queued.
    pub fn start_initiator(&mut self, keys: &LinkKeys) -> Result<(), LinkError> {
        let (link, first) = Link::initiator(keys)?;
        self.phase = Phase::Handshake;
        self.wire = Wire::Sealed(Box::new(Sealed {
            link,
            out: first,
            off: 0,
            hello_due: true,
        }));
        Ok(())
    }

    /// Accepted in a private group: the first bytes read say what it is.
    pub fn start_sniffing(&mut self, keys: Rc<LinkKeys>, allow_guests: bool) {
        self.phase = Phase::Handshake;
        self.wire = Wire::Sniff {
            keys,
            allow_guests,
            seen: Vec::new(),
        };
    }

    /// True while a private group's link is being set up (see [`Phase::Handshake`]).
    pub fn is_handshaking(&self) -> bool {
        self.phase == Phase::Handshake
    }

    /// True once, after the link opened (or a guest was let in): the chat is to be told.
    pub fn take_opened(&mut self) -> bool {
        std::mem::take(&mut self.just_opened)
    }

    /// True for a connection in plain text in a private group (a guest let in).
    pub fn is_plain_guest(&self) -> bool {
        matches!(self.wire, Wire::Plain)
    }

    /// The other end closed: why, if that broke a private group's link (closed during the
    /// handshake, or in the middle of a record).
    pub fn wire_end(&mut self) -> Option<LinkError> {
        match &mut self.wire {
            Wire::Sealed(s) => s.link.end().err(),
            Wire::Sniff { .. } => Some(LinkError::ClosedInHandshake),
            Wire::Plain => None,
        }
    }

    /// Bytes read from the connection, through the wire into the decoder.
    fn take_in(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        match &mut self.wire {
            Wire::Plain => {
                self.decoder.push(bytes);
                Ok(())
            }
            Wire::Sniff {
                keys,
                allow_guests,
                seen,
            } => {
                seen.extend_from_slice(bytes);
                if seen.len() < NOISE_FIRST.len() {
                    return Ok(());
                }
                // A peerchat node without the secret starts with its hello: read that far, to
                // tell it from a guest (it is refused, `--allow-guests` or not).
                if seen.len() < HELLO_START.len() && HELLO_START.starts_with(seen) {
                    return Ok(());
                }
                let seen = std::mem::take(seen);
                if seen.starts_with(HELLO_START) {
                    return Err(WireError::PlainNode);
                }
                if seen.starts_with(&NOISE_FIRST) {
                    let link = Link::responder(keys).map_err(WireError::Link)?;
                    self.wire = Wire::Sealed(Box::new(Sealed {
                        link,
                        out: Vec::new(),
                        off: 0,
                        hello_due: true,
                    }));
                    return self.take_in(&seen);
                }
                if !*allow_guests {
                    return Err(WireError::Guest);
                }
                // A guest let in: plain text both ways from its first byte.
                self.wire = Wire::Plain;
                self.phase = Phase::Open;
                self.just_opened = true;
                self.decoder.push(&seen);
                Ok(())
            }
            Wire::Sealed(s) => {
                let was_open = s.link.is_open();
                let progress = s.link.feed(bytes).map_err(WireError::Link)?;
                s.out.extend_from_slice(&progress.send);
                self.decoder.push(&progress.plain);
                if !was_open && s.link.is_open() {
                    self.phase = Phase::Open;
                    self.just_opened = true;
                }
                Ok(())
            }
        }
    }

    /// Ciphertext not written yet (handshake messages, sealed records).
    fn sealed_pending(&self) -> usize {
        match &self.wire {
            Wire::Sealed(s) => s.out.len() - s.off,
            _ => 0,
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
        if let (Some(line), Wire::Sealed(s)) = (line, &mut self.wire) {
            if std::mem::take(&mut s.hello_due) && !hello_matches(line, s.link.peer_identity()) {
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

    /// In a private group: the ciphertext first; then, once the link is open, what is pending
    /// is sealed one record (up to [`MAX_RECORD_PLAIN`] bytes) at a time and written, so one
    /// coalesced write costs one record, not one per frame. The record is sealed into the
    /// thread's [`Scratch`] and written from there: only what the socket does not take now is
    /// kept in the connection's own buffer.
    fn flush_sealed(&mut self, w: &mut impl Write, log: &Log) -> io::Result<()> {
        // The link is taken out while the queue is read, and put back whatever happens.
        let Wire::Sealed(mut s) = std::mem::replace(&mut self.wire, Wire::Plain) else {
            return Ok(());
        };
        let result = SCRATCH.with_borrow_mut(|scratch| self.flush_link(&mut s, w, log, scratch));
        self.wire = Wire::Sealed(s);
        result
    }

    fn flush_link(
        &mut self,
        s: &mut Sealed,
        w: &mut impl Write,
        log: &Log,
        scratch: &mut Scratch,
    ) -> io::Result<()> {
        loop {
            s.off += write_until_blocked(w, &s.out[s.off..])?;
            if s.off < s.out.len() {
                self.blocked = true;
                return Ok(());
            }
            s.out.clear();
            s.off = 0;
            if !s.link.is_open() {
                // The handshake: the chat's bytes wait for the link.
                return Ok(());
            }
            let Scratch { plain, record, at } = &mut *scratch;
            let record = &mut record[*at..*at + MAX_RECORD];
            let (len, took) = {
                let mut slices = Slices::new();
                self.pending(log, &mut slices);
                let all = slices.as_slice();
                let Some(first) = all.first() else {
                    return Ok(());
                };
                // A record's worth in one place (most often a range of the log) is sealed
                // from where it is; pieces are gathered first.
                let from: &[u8] = if all.len() == 1 || first.len() >= MAX_RECORD_PLAIN {
                    &first[..first.len().min(MAX_RECORD_PLAIN)]
                } else {
                    gather(all, plain);
                    plain
                };
                let len = s
                    .link
                    .seal_record(from, record)
                    .map_err(|e| wire_error(WireError::Link(e)))?;
                (len, from.len())
            };
            let record = &record[..len];
            let sent = write_until_blocked(w, record);
            // Sealed is as good as sent for the queue: the record holds the bytes now.
            self.consume(took);
            let sent = sent?;
            if sent < len {
                s.out.extend_from_slice(&record[sent..]);
                self.blocked = true;
                return Ok(());
            }
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

/// The first [`MAX_RECORD_PLAIN`] bytes of `slices`, copied into `plain`.
fn gather(slices: &[io::IoSlice<'_>], plain: &mut Vec<u8>) {
    plain.clear();
    for slice in slices {
        let room = MAX_RECORD_PLAIN - plain.len();
        plain.extend_from_slice(&slice[..slice.len().min(room)]);
        if plain.len() == MAX_RECORD_PLAIN {
            return;
        }
    }
}

/// Writes `bytes` until `w` would block; how many it took.
fn write_until_blocked(w: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < bytes.len() {
        match w.write(&bytes[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Where a private group's connection gathers a record's plaintext from pieces and seals it
/// before it is written: one for every connection of the thread (they are sealed one at a time
/// and it holds nothing between writes), so that a write allocates nothing and clears no
/// memory, and a connection keeps no record-sized buffer beyond what its socket did not take.
struct Scratch {
    /// Never grows past its capacity, [`MAX_RECORD_PLAIN`]: it stays where it is.
    plain: Vec<u8>,
    /// [`MAX_RECORD`] bytes from `at` on, where the record is sealed.
    record: Vec<u8>,
    at: usize,
}

/// How far apart, modulo a page, the plaintext and the ciphertext copied from it are kept.
/// Sealing copies the one to the other; when both sit at the same offset in their pages (two
/// page-aligned buffers do) the processor takes each load for one that may depend on the store
/// just made, and the copy runs many times slower.
const COPY_SKEW: usize = 2048;

impl Scratch {
    fn new() -> Scratch {
        let plain: Vec<u8> = Vec::with_capacity(MAX_RECORD_PLAIN);
        let record = vec![0; MAX_RECORD + 4096];
        // The ciphertext starts 2 bytes into the record, after its length.
        let from = plain.as_ptr() as usize;
        let to = record.as_ptr() as usize + 2;
        let at = (from + COPY_SKEW).wrapping_sub(to) % 4096;
        Scratch { plain, record, at }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
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
mod tests {
    use super::*;
    use crate::protocol::{MemberId, MsgId};

    /// Takes at most `chunk` bytes per call and refuses every other call, like a full socket.
    pub(super) struct Stingy {
        pub(super) got: Vec<u8>,
        pub(super) chunk: usize,
        pub(super) calls: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.chunk);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Takes everything, counting calls.
    #[derive(Default)]
    struct Greedy {
        got: Vec<u8>,
        calls: usize,
    }

    impl Write for Greedy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            self.got.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                self.got.extend_from_slice(b);
                n += b.len();
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn msg(seq: u64) -> Frame {
        Frame::Msg {
            id: MsgId { node: 9, seq },
            from: MemberId::node(9),
            nick: "bob".into(),
            text: format!("message {seq}"),
        }
    }

    /// `frame` as peers get it (protocol 2): alone in a bundle signed by its node.
    fn signed(frame: Frame) -> Frame {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        Frame::Signed(Rc::new(protocol::Signed::seal(&key, 9, vec![frame])))
    }

    fn guest_line(seq: u64) -> Vec<u8> {
        format!("<bob> message {seq}\n").into_bytes()
    }

    fn open(role: Option<Role>, log: &Log) -> Conn {
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.subscribe(log.end());
        if let Some(role) = role {
            conn.classify(role, log);
        }
        conn
    }

    const BOTH: [bool; 2] = [true, true];

    #[test]
    fn short_writes_deliver_everything_in_order() {
        let mut log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        let mut want = Vec::new();
        let mut w = Stingy {
            got: Vec::new(),
            chunk: 7,
            calls: 0,
        };
        for seq in 0..200 {
            if seq % 10 == 5 {
                // Something for this connection alone, between two broadcasts.
                let dm = Rc::new(Frame::Dm {
                    id: MsgId { node: 9, seq },
                    from: MemberId::node(9),
                    to: MemberId::node(1),
                    nick: "bob".into(),
                    text: "psst".into(),
                });
                conn.queue_direct(&dm, log.end());
                want.extend_from_slice(b"[dm] <bob> psst\n");
            }
            log.append(&msg(seq), BOTH);
            want.extend_from_slice(&guest_line(seq));
            if seq % 3 == 0 {
                conn.flush_to(&mut w, &log).unwrap();
            }
        }
        for _ in 0..10_000 {
            if conn.backlog(&log) == 0 {
                break;
            }
            conn.flush_to(&mut w, &log).unwrap();
        }
        assert_eq!(conn.backlog(&log), 0);
        assert_eq!(
            String::from_utf8_lossy(&w.got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn a_burst_is_encoded_once_and_goes_out_in_one_write() {
        let mut log = Log::new();
        let mut a = open(Some(Role::Guest), &log);
        let mut b = open(Some(Role::Guest), &log);
        let mut want = Vec::new();
        for seq in 0..1500 {
            log.append(&msg(seq), [false, true]);
            want.extend_from_slice(&guest_line(seq));
        }
        // One copy of the bytes, whoever reads them.
        assert_eq!(log.held(), want.len());
        assert_eq!(a.backlog(&log), want.len());
        let mut w = Greedy::default();
        a.flush_to(&mut w, &log).unwrap();
        assert_eq!(w.got, want);
        // 1500 frames, one system call.
        assert_eq!(w.calls, 1);
        assert_eq!(a.backlog(&log), 0);
        assert_eq!(b.backlog(&log), want.len());
        // `a` is done with the log, `b` is not.
        assert_eq!(a.pin(), Some(log.end()));
        assert_eq!(b.pin(), Some([0, 0]));
        let mut w = Greedy::default();
        b.flush_to(&mut w, &log).unwrap();
        assert_eq!(w.got, want);
    }

    #[test]
    fn a_sender_does_not_get_its_own_frames_back() {
        let mut log = Log::new();
        let mut sender = open(Some(Role::Guest), &log);
        let mut want = Vec::new();
        for seq in 0..50 {
            let (start, end) = log.append(&msg(seq), BOTH);
            if seq % 7 == 0 {
                want.extend_from_slice(&guest_line(seq));
            } else {
                sender.skip(start, end);
            }
        }
        let mut w = Greedy::default();
        sender.flush_to(&mut w, &log).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&w.got),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(sender.backlog(&log), 0);
    }

    #[test]
    fn frames_are_held_until_the_role_is_known() {
        let mut log = Log::new();
        let mut conn = open(None, &log);
        conn.queue_raw(b"hello\n", log.end());
        log.append(&msg(1), BOTH);
        log.append(&msg(2), BOTH);
        assert!(conn.backlog(&log) > 6, "held frames count in the backlog");
        let mut got = Vec::new();
        conn.flush_to(&mut got, &log).unwrap();
        assert_eq!(
            got, b"hello\n",
            "only the hello goes out before the role is known"
        );
        conn.classify(Role::Guest, &log);
        assert_eq!(conn.backlog(&log), 2 * guest_line(1).len());
        conn.flush_to(&mut got, &log).unwrap();
        assert_eq!(got, b"hello\n<bob> message 1\n<bob> message 2\n");
    }

    #[test]
    fn an_unknown_role_counts_the_larger_format() {
        let mut log = Log::new();
        let conn = open(None, &log);
        // Each U+009B is 2 bytes in a frame and 8 (`\u{9b}`) in a guest line.
        let mut frame = msg(1);
        if let Frame::Msg { text, .. } = &mut frame {
            *text = "\u{9b}".repeat(1000);
        }
        let (start, end) = log.append(&frame, BOTH);
        let guest = (end[1] - start[1]) as usize;
        assert!(guest > (end[0] - start[0]) as usize);
        assert_eq!(conn.backlog(&log), guest);
    }

    #[test]
    fn a_guest_that_turns_out_to_be_a_peer_keeps_its_queue_then_gets_frames() {
        let mut log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        log.append(&msg(1), BOTH);
        conn.classify(Role::Peer, &log);
        // What the chat broadcasts: the frame for guests, its signed bundle for peers.
        log.append(&msg(2), BOTH);
        log.append(&signed(msg(2)), BOTH);
        let mut got = Vec::new();
        conn.flush_to(&mut got, &log).unwrap();
        let mut want = guest_line(1);
        protocol::encode(&signed(msg(2)), &mut want);
        assert_eq!(got, want);
    }

    #[test]
    fn unsubscribing_keeps_what_was_queued_and_nothing_after() {
        let mut log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        log.append(&msg(1), BOTH);
        conn.unsubscribe(log.end());
        log.append(&msg(2), BOTH);
        let close = Rc::new(msg(3));
        conn.queue_direct(&close, log.end());
        let mut got = Vec::new();
        conn.flush_to(&mut got, &log).unwrap();
        assert_eq!(got, [guest_line(1), guest_line(3)].concat());
        assert_eq!(conn.pin(), None);
    }

    #[test]
    fn a_write_error_is_returned() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = Log::new();
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.queue_raw(b"x\n", log.end());
        assert!(conn.flush_to(&mut Broken, &log).is_err());
    }

    #[test]
    fn would_block_marks_the_connection_blocked() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = Log::new();
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.flush_to(&mut Full, &log).unwrap();
        assert!(!conn.blocked, "nothing to write is not blocked");
        conn.queue_raw(b"x\n", log.end());
        conn.flush_to(&mut Full, &log).unwrap();
        assert!(conn.blocked);
        assert_eq!(conn.backlog(&log), 2);
    }

    #[test]
    fn reads_feed_the_decoder_until_eof() {
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        let mut src: &[u8] = b"one\ntwo";
        assert_eq!(
            conn.read_some(&mut src, Instant::now()).unwrap(),
            ReadStatus::Data
        );
        assert_eq!(conn.decoder.next_line().unwrap(), Some(&b"one"[..]));
        assert_eq!(conn.decoder.partial(), b"two");
        assert_eq!(
            conn.read_some(&mut src, Instant::now()).unwrap(),
            ReadStatus::Eof
        );
    }

    #[test]
    fn only_a_silent_guests_unfinished_hello_is_an_incomplete_hello() {
        let log = Log::new();
        let guest = |first: &[&[u8]], partial: &[u8]| {
            let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
            conn.classify(Role::Guest, &log);
            for line in first {
                conn.decoder.push(line);
                conn.got_line |= conn.decoder.next_line().unwrap().is_some();
            }
            conn.decoder.push(partial);
            conn.partial_line()
        };
        assert_eq!(guest(&[], b"peerchat/1 hel"), PartialLine::IncompleteHello);
        // A guest typing: a word that starts like a hello, or after lines of its own.
        assert_eq!(guest(&[], b"pee"), PartialLine::GuestLine);
        assert_eq!(guest(&[b"hi there\n"], b"p"), PartialLine::GuestLine);
        assert_eq!(guest(&[b"hi\n"], b"peerchat/1 x"), PartialLine::GuestLine);
        assert_eq!(guest(&[], b""), PartialLine::None);
    }

    #[test]
    fn a_hello_in_pieces_is_not_taken_for_a_guest_line() {
        let log = Log::new();
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        for piece in [&b"p"[..], b"eerchat", b"/1 hello fr"] {
            conn.decoder.push(piece);
            assert_eq!(
                conn.partial_line(),
                PartialLine::None,
                "{:?}",
                conn.decoder.partial()
            );
        }
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.decoder.push(b"Ol\xc3\xa1");
        assert_eq!(conn.partial_line(), PartialLine::GuestLine);
        conn.classify(Role::Peer, &log);
        assert_eq!(conn.partial_line(), PartialLine::None);
    }

    #[test]
    fn a_dial_goes_from_connecting_to_open_keeping_what_was_queued() {
        let log = Log::new();
        let mut conn = Conn::new("name:1".into(), Phase::Connecting, Instant::now());
        conn.subscribe(log.end());
        conn.queue_raw(b"typed early\n", log.end());
        assert!(conn.is_connecting());
        conn.blocked = true;
        conn.reconnecting();
        assert!(
            conn.is_connecting() && !conn.is_blocked(),
            "a fresh socket is not blocked"
        );
        conn.connected("127.0.0.1:1".into());
        assert_eq!((conn.phase(), conn.addr()), (&Phase::Open, "127.0.0.1:1"));
        conn.queue_first(b"hello\n".to_vec());
        let mut got = Vec::new();
        conn.flush_to(&mut got, &log).unwrap();
        assert_eq!(got, b"hello\ntyped early\n");
    }

    #[test]
    fn shut_and_retired_connections_get_no_more_broadcasts_but_keep_their_queue() {
        let mut log = Log::new();
        let mut shut = open(Some(Role::Guest), &log);
        let mut retired = open(Some(Role::Guest), &log);
        log.append(&msg(1), BOTH);
        shut.shut(log.end());
        retired.retire(log.end());
        log.append(&msg(2), BOTH);
        assert_eq!(*shut.phase(), Phase::Shut);
        assert!(shut.is_shut());
        assert!(retired.is_retiring() && !shut.is_retiring());
        for conn in [&mut shut, &mut retired] {
            assert!(!conn.is_subscribed());
            let mut got = Vec::new();
            conn.flush_to(&mut got, &log).unwrap();
            assert_eq!(got, guest_line(1));
        }
    }

    #[test]
    fn taking_the_unfinished_line_counts_as_a_line_and_clears_its_timer() {
        let now = Instant::now();
        let log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        conn.read_some(&mut &b"no newline"[..], now).unwrap();
        conn.note_partial(false, now);
        assert_eq!(conn.partial_due(), Some(now + PARTIAL_LINE_IDLE));
        assert_eq!(conn.take_partial(), b"no newline");
        assert!(conn.got_line);
        assert_eq!(conn.partial_due(), None);
        assert_eq!(conn.next_line().unwrap(), None);
    }

    /// A message whose guest line is much longer than its frame (each U+009B is 2 bytes in a
    /// frame and 8 in a guest line), so the two formats' backlogs differ.
    fn wide(seq: u64) -> Frame {
        let mut frame = msg(seq);
        if let Frame::Msg { text, .. } = &mut frame {
            *text = "\u{9b}".repeat(50);
        }
        frame
    }

    #[test]
    fn an_unknown_roles_backlog_is_exact_before_and_after_a_partial_write_and_after_classify() {
        let mut log = Log::new();
        // So that no position is zero.
        log.append(&wide(0), BOTH);
        let mut conn = open(None, &log);
        conn.queue_raw(b"hello\n", log.end());
        let (s1, e1) = log.append(&wide(1), BOTH);
        conn.queue_raw(b"more\n", log.end());
        let (s2, e2) = log.append(&wide(2), BOTH);
        let len = |i: usize| ((e1[i] - s1[i]) + (e2[i] - s2[i])) as usize;
        assert!(len(1) > len(0), "the guest format is the larger here");
        assert_eq!(conn.backlog(&log), 6 + 5 + len(1));
        assert_eq!(conn.pin(), Some(s1), "the held range pins the log");
        let mut w = Stingy {
            got: Vec::new(),
            chunk: 4,
            calls: 0,
        };
        conn.flush_to(&mut w, &log).unwrap();
        assert_eq!(w.got, b"hell");
        assert!(conn.is_blocked());
        assert_eq!(conn.backlog(&log), 2 + 5 + len(1));
        assert_eq!(conn.pin(), Some(s1));
        conn.writable();
        assert!(!conn.is_blocked());

        conn.classify(Role::Guest, &log);
        assert_eq!(conn.backlog(&log), 2 + 5 + len(1));
        assert_eq!(conn.pin(), Some(s1));
        let mut w = Greedy::default();
        conn.flush_to(&mut w, &log).unwrap();
        let mut want = b"o\n".to_vec();
        protocol::encode_guest(&wide(1), &mut want);
        want.extend_from_slice(b"more\n");
        protocol::encode_guest(&wide(2), &mut want);
        assert_eq!(w.got, want);
        assert_eq!(conn.backlog(&log), 0);
        // Only a guest's half of its place matters once the role is known.
        assert_eq!(conn.pin().map(|p| p[1]), Some(log.end()[1]));
    }

    #[test]
    fn a_peer_is_sent_the_peer_format_of_what_was_held_after_a_partial_write() {
        let mut log = Log::new();
        log.append(&msg(0), BOTH);
        let mut conn = open(None, &log);
        conn.queue_raw(b"peerchat/2 hello\n", log.end());
        // A peer is sent a flooded frame in its signed bundle (protocol 2).
        let (s1, _) = log.append(&signed(wide(1)), BOTH);
        let mut w = Stingy {
            got: Vec::new(),
            chunk: 9,
            calls: 0,
        };
        conn.flush_to(&mut w, &log).unwrap();
        conn.classify(Role::Peer, &log);
        assert_eq!(conn.pin(), Some(s1));
        let mut want = b"2 hello\n".to_vec();
        protocol::encode(&signed(wide(1)), &mut want);
        assert_eq!(conn.backlog(&log), want.len());
        let mut w = Greedy::default();
        conn.flush_to(&mut w, &log).unwrap();
        assert_eq!(w.got, want);
        assert_eq!(conn.backlog(&log), 0);
    }

    #[test]
    fn a_queue_of_pieces_and_the_tail_go_out_in_one_write() {
        let mut log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        assert!(conn.is_subscribed() && !conn.is_shut() && !conn.is_blocked());
        let mut want = Vec::new();
        for seq in 0..10 {
            conn.queue_raw(format!("own {seq}\n").as_bytes(), log.end());
            want.extend_from_slice(format!("own {seq}\n").as_bytes());
            log.append(&msg(seq), BOTH);
            want.extend_from_slice(&guest_line(seq));
        }
        let mut w = Greedy::default();
        conn.flush_to(&mut w, &log).unwrap();
        assert_eq!(w.got, want);
        assert_eq!(w.calls, 1);
    }

    #[test]
    fn an_unfinished_line_is_due_its_max_age_after_it_began_however_often_bytes_come() {
        let t0 = Instant::now();
        let log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        let mut now = t0;
        while now < t0 + PARTIAL_LINE_MAX_AGE {
            conn.read_some(&mut &b"x"[..], now).unwrap();
            conn.note_partial(false, now);
            now += Duration::from_millis(200);
        }
        assert_eq!(conn.partial_due(), Some(t0 + PARTIAL_LINE_MAX_AGE));
        // A line ending starts the next unfinished line's clock afresh.
        conn.read_some(&mut &b"\nnext"[..], now).unwrap();
        let took = conn.next_line().unwrap().is_some();
        assert!(took);
        conn.note_partial(took, now);
        assert_eq!(conn.partial_due(), Some(now + PARTIAL_LINE_IDLE));
    }

    #[test]
    fn a_guest_that_sent_a_line_is_not_cut_for_an_unfinished_one_that_looks_like_a_hello() {
        let log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        let now = Instant::now();
        conn.read_some(&mut &b"hi\npeerchat/1 x"[..], now).unwrap();
        let took = conn.next_line().unwrap() == Some(&b"hi"[..]);
        conn.note_partial(took, now);
        assert_eq!(conn.partial_line(), PartialLine::GuestLine);
    }

    #[test]
    fn one_read_takes_up_to_16_kib() {
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        let data = b"0123456789abcde\n".repeat(20 * 1024 / 16);
        let mut src = &data[..];
        assert_eq!(
            conn.read_some(&mut src, Instant::now()).unwrap(),
            ReadStatus::Data
        );
        assert_eq!(src.len(), data.len() - 16 * 1024);
    }

    /// Fails with each of `errors` in turn, then reads from `data`.
    struct Flaky<'a> {
        errors: Vec<io::ErrorKind>,
        data: &'a [u8],
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.errors.is_empty() {
                return self.data.read(buf);
            }
            Err(self.errors.remove(0).into())
        }
    }

    impl Write for Flaky<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.errors.is_empty() {
                return Ok(buf.len());
            }
            Err(self.errors.remove(0).into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_interrupted_read_is_retried_and_other_errors_are_returned() {
        let now = Instant::now();
        let mut conn = Conn::new("x".into(), Phase::Open, now);
        let flaky = |errors: Vec<io::ErrorKind>| Flaky {
            errors,
            data: b"one\n",
        };
        let mut r = flaky(vec![io::ErrorKind::Interrupted, io::ErrorKind::Interrupted]);
        assert_eq!(conn.read_some(&mut r, now).unwrap(), ReadStatus::Data);
        assert_eq!(conn.next_line().unwrap(), Some(&b"one"[..]));
        let mut r = flaky(vec![io::ErrorKind::WouldBlock]);
        assert_eq!(conn.read_some(&mut r, now).unwrap(), ReadStatus::WouldBlock);
        let mut r = flaky(vec![io::ErrorKind::ConnectionReset]);
        let err = conn.read_some(&mut r, now).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn an_interrupted_write_is_retried() {
        let log = Log::new();
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.queue_raw(b"x\n", log.end());
        let mut w = Flaky {
            errors: vec![io::ErrorKind::Interrupted],
            data: b"",
        };
        conn.flush_to(&mut w, &log).unwrap();
        assert_eq!(conn.backlog(&log), 0);
        assert!(!conn.is_blocked());
    }

    #[test]
    fn a_range_continuing_the_last_queued_one_extends_it_so_one_write_takes_all() {
        let mut log = Log::new();
        let mut conn = open(Some(Role::Guest), &log);
        let mut want = Vec::new();
        // More rounds than slices in one write: one range per round would need two writes.
        for seq in 0..2 * crate::fanout::MAX_SLICES as u64 {
            log.append(&msg(seq), BOTH);
            want.extend_from_slice(&guest_line(seq));
            // A frame that takes no room, skipped: the queue is cut where the tail already is.
            let (start, end) = log.append(&msg(seq), [false, false]);
            conn.skip(start, end);
        }
        let mut w = Greedy::default();
        conn.flush_to(&mut w, &log).unwrap();
        assert_eq!(w.got, want);
        assert_eq!(w.calls, 1);
    }

    #[test]
    fn a_drained_queue_gives_its_room_back() {
        let log = Log::new();
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        for seq in 0..1000 {
            conn.queue_raw(format!("own {seq}\n").as_bytes(), log.end());
        }
        assert!(conn.out.capacity() >= 1000);
        conn.flush_to(&mut Greedy::default(), &log).unwrap();
        assert_eq!(conn.backlog(&log), 0);
        // A burst to one slow reader must not keep its queue's memory for ever.
        assert!(conn.out.capacity() < 100, "{}", conn.out.capacity());
    }
}

#[cfg(test)]
mod wire_tests {
    //! A private group's wire on two `Conn`s joined by byte buffers: no sockets, no chat.
    use super::*;
    use ed25519_dalek::SigningKey;

    fn keys(psk: u8) -> LinkKeys {
        let identity = SigningKey::generate(&mut rand_core::OsRng);
        LinkKeys::new([psk; 32], &identity).expect("keys")
    }

    fn conn() -> Conn {
        Conn::new("x".into(), Phase::Open, Instant::now())
    }

    /// Writes what `from` has for the wire and reads it into `to`; the bytes that went.
    fn pass(from: &mut Conn, to: &mut Conn, log: &Log) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        from.flush_to(&mut bytes, log)?;
        let mut src: &[u8] = &bytes;
        if !bytes.is_empty() {
            to.read_some(&mut src, Instant::now())?;
        }
        Ok(bytes)
    }

    /// A dialler and an acceptor of the group `psk`s, after the handshake has run its course.
    fn handshake(a: u8, b: u8, log: &Log) -> (Conn, Conn, io::Result<()>) {
        let (mut dialler, mut acceptor) = (conn(), conn());
        dialler.start_initiator(&keys(a)).expect("initiator");
        acceptor.start_sniffing(Rc::new(keys(b)), false);
        let mut result = Ok(());
        for _ in 0..3 {
            if let Err(e) = pass(&mut dialler, &mut acceptor, log)
                .and_then(|_| pass(&mut acceptor, &mut dialler, log))
            {
                result = Err(e);
                break;
            }
        }
        (dialler, acceptor, result)
    }

    #[test]
    fn the_same_secret_opens_both_ends_and_lines_go_through_sealed() {
        let log = Log::new();
        let (mut a, mut b, result) = handshake(1, 1, &log);
        result.expect("handshake");
        assert!(a.take_opened() && b.take_opened());
        assert!(!a.is_handshaking() && !b.is_handshaking());
        a.queue_raw(b"a secret line\n", log.end());
        let wire = pass(&mut a, &mut b, &log).expect("sent");
        assert!(!wire.windows(6).any(|w| w == b"secret"), "{wire:?}");
        assert_eq!(wire.len(), 2 + 14 + 16, "one record");
        assert_eq!(b.next_line().expect("line"), Some(&b"a secret line"[..]));
    }

    #[test]
    fn records_a_full_socket_takes_in_pieces_arrive_whole_and_in_order() {
        let log = Log::new();
        let (mut a, mut b, result) = handshake(1, 1, &log);
        result.expect("handshake");
        let mut want = Vec::new();
        let mut queue = |a: &mut Conn, bytes: &[u8]| {
            a.queue_raw(bytes, log.end());
            want.extend_from_slice(bytes);
        };
        // Small pieces, gathered into a record; then more than a record in one piece, sealed
        // from where it is; then pieces again.
        for i in 0..300 {
            queue(&mut a, format!("line {i}\n").as_bytes());
        }
        let big: String = (0..5000).map(|i| format!("big line {i:08}\n")).collect();
        assert!(big.len() > MAX_RECORD_PLAIN);
        queue(&mut a, big.as_bytes());
        for i in 0..10 {
            queue(&mut a, format!("after {i}\n").as_bytes());
        }
        let mut w = super::tests::Stingy {
            got: Vec::new(),
            chunk: 1000,
            calls: 0,
        };
        for _ in 0..10_000 {
            if a.backlog(&log) == 0 {
                break;
            }
            a.writable();
            a.flush_to(&mut w, &log).expect("written");
        }
        assert_eq!(a.backlog(&log), 0);
        let mut wire = &w.got[..];
        let mut got = Vec::new();
        while !wire.is_empty() {
            b.read_some(&mut wire, Instant::now()).expect("opened");
            while let Some(line) = b.next_line().expect("line") {
                got.extend_from_slice(line);
                got.push(b'\n');
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn a_wrong_secret_fails_at_the_acceptor_and_the_dialler_sees_the_close() {
        let log = Log::new();
        let (mut a, b, result) = handshake(1, 2, &log);
        let err = result.expect_err("refused");
        assert!(matches!(
            WireError::of(&err),
            Some(WireError::Link(LinkError::Handshake))
        ));
        assert!(b.is_handshaking());
        assert_eq!(a.wire_end(), Some(LinkError::ClosedInHandshake));
    }

    #[test]
    fn text_is_a_guest_refused_unless_guests_are_let_in_and_a_plain_hello_always_is() {
        for (first, allow, want) in [
            (&b"hi\n"[..], false, Err(WireError::Guest)),
            (b"hi\n", true, Ok(())),
            (
                b"peerchat/2 hello from ann",
                true,
                Err(WireError::PlainNode),
            ),
        ] {
            let mut c = conn();
            c.start_sniffing(Rc::new(keys(1)), allow);
            // A byte at a time: the decision waits for enough of them.
            let got: Result<(), WireError> = first.iter().try_for_each(|b| c.take_in(&[*b]));
            assert_eq!(got, want, "{first:?}");
            if want.is_ok() {
                assert!(c.take_opened() && c.is_plain_guest());
                assert_eq!(c.next_line().expect("line"), Some(&b"hi"[..]));
            }
        }
    }

    #[test]
    fn a_flipped_byte_in_a_record_fails_the_link() {
        let log = Log::new();
        let (mut a, mut b, result) = handshake(1, 1, &log);
        result.expect("handshake");
        a.queue_raw(b"hello\n", log.end());
        let mut wire = Vec::new();
        a.flush_to(&mut wire, &log).expect("sealed");
        wire[5] ^= 1;
        let err = b
            .read_some(&mut &wire[..], Instant::now())
            .expect_err("tampered");
        assert_eq!(
            WireError::of(&err),
            Some(&WireError::Link(LinkError::Record))
        );
    }

    /// A hello line for `key`, as a node sends it first.
    fn hello_line(key: &SigningKey) -> Vec<u8> {
        let key = protocol::NodeKey {
            key: key.verifying_key(),
            run: [7; 8],
        };
        let hello = protocol::Hello {
            nick: "ann".into(),
            node: key.node(),
            listen: None,
            key,
            nonce: [1; 16],
        };
        let mut line = Vec::new();
        protocol::encode(&Frame::Hello(hello), &mut line);
        line
    }

    #[test]
    fn a_hello_must_name_the_key_the_link_proved() {
        for honest in [true, false] {
            let log = Log::new();
            let (mut a, mut b) = (conn(), conn());
            let identity = SigningKey::generate(&mut rand_core::OsRng);
            let a_keys = LinkKeys::new([1; 32], &identity).expect("keys");
            a.start_initiator(&a_keys).expect("initiator");
            b.start_sniffing(Rc::new(keys(1)), false);
            for _ in 0..3 {
                pass(&mut a, &mut b, &log).expect("to b");
                pass(&mut b, &mut a, &log).expect("to a");
            }
            let claimed = if honest {
                identity
            } else {
                SigningKey::generate(&mut rand_core::OsRng)
            };
            a.queue_raw(&hello_line(&claimed), log.end());
            pass(&mut a, &mut b, &log).expect("sent");
            assert_eq!(b.next_line().is_ok(), honest, "honest: {honest}");
        }
    }

    #[test]
    fn nothing_of_the_chat_is_written_before_the_link_is_open() {
        let log = Log::new();
        let mut a = conn();
        a.queue_raw(b"peerchat/2 hello from ann\n", log.end());
        a.start_initiator(&keys(1)).expect("initiator");
        let mut wire = Vec::new();
        a.flush_to(&mut wire, &log).expect("written");
        assert_eq!(&wire[..2], &NOISE_FIRST);
        assert_eq!(wire.len(), 50, "message 1 alone");
        assert!(a.backlog(&log) > 0, "the hello waits");
    }
}
