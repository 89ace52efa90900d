//! A private group's wire for one connection: on an accepted connection, the first bytes that
//! tell a node's Noise handshake from a guest's text (`Wire::Sniff`); then the Noise link every
//! byte read is fed through and every coalesced write is sealed by, one record per write of up
//! to `link::MAX_RECORD_PLAIN` bytes (`Wire::Sealed`), from a scratch buffer shared by the
//! thread's connections so that a write allocates nothing.
//!
//! Part of `Conn` (this is its `impl` for the wire): the queue, the decoder and the plain path
//! stay in `conn/mod.rs`. Must not know about other connections or chat rules, nor decide what
//! a failed link means (the reactor closes the connection on any [`WireError`]).

use std::io::{self, Write};
use std::rc::Rc;

use super::{Conn, Phase};
use crate::fanout::{Log, Slices};
use crate::link::{Link, LinkError, LinkKeys, MAX_RECORD, MAX_RECORD_PLAIN};
use crate::protocol;

/// How a connection's bytes are carried: in plain text, or in a private group through a Noise
/// link (see `link`).
pub(super) enum Wire {
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
pub(super) struct Sealed {
    link: Link,
    /// Handshake messages, then records: written before any more plaintext is sealed.
    out: Vec<u8>,
    /// Bytes of `out` already written.
    off: usize,
    /// The peer's first line is still to come: its hello must name the key the link proved.
    hello_due: bool,
}

impl Wire {
    /// False when `line`, the first line read from an encrypted peer, is a hello naming
    /// another key than the one the link's handshake proved. Checked once per link.
    pub(super) fn first_line_fits(&mut self, line: &[u8]) -> bool {
        match self {
            Wire::Sealed(s) => {
                !std::mem::take(&mut s.hello_due) || hello_matches(line, s.link.peer_identity())
            }
            _ => true,
        }
    }
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

pub(super) fn wire_error(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Conn {
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
    pub(super) fn take_in(&mut self, bytes: &[u8]) -> Result<(), WireError> {
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
    pub(super) fn sealed_pending(&self) -> usize {
        match &self.wire {
            Wire::Sealed(s) => s.out.len() - s.off,
            _ => 0,
        }
    }

    /// In a private group: the ciphertext first; then, once the link is open, what is pending
    /// is sealed one record (up to [`MAX_RECORD_PLAIN`] bytes) at a time and written, so one
    /// coalesced write costs one record, not one per frame. The record is sealed into the
    /// thread's [`Scratch`] and written from there: only what the socket does not take now is
    /// kept in the connection's own buffer.
    pub(super) fn flush_sealed(&mut self, w: &mut impl Write, log: &Log) -> io::Result<()> {
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

#[cfg(test)]
mod tests;
