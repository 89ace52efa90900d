//! The outbound log shared by every connection: each broadcast frame is encoded once per wire
//! format (peer frame, guest line) and appended to that format's log; connections keep a
//! position in it instead of a copy, and are written straight from it with `write_vectored`.
//!
//! So a broadcast costs one encoding and one append whatever the number of recipients, and
//! memory is the log (as long as the slowest reader is behind, which the reactor caps) plus
//! a few words per connection. Must not format text for people beyond what
//! `protocol::encode_guest` does, nor know about sockets.

use std::collections::VecDeque;
use std::io::IoSlice;

use crate::event::Role;
use crate::protocol::{self, Frame};

/// A place in both logs at once: the byte offset in the peer log and in the guest log, counted
/// from the start of the run (offsets are never reused). A connection whose role is not known
/// yet keeps both; once it is, only its role's half matters.
pub type Pos = [u64; 2];

/// The index of `role`'s half of a [`Pos`].
pub fn side(role: Role) -> usize {
    match role {
        Role::Peer => 0,
        Role::Guest => 1,
    }
}

/// Size of one block of a log. Frames are not split across blocks.
const BLOCK: usize = 64 * 1024;

/// One wire format's log: blocks of encoded frames, oldest first.
#[derive(Default)]
struct Stream {
    /// `(offset of the block's first byte, bytes)`.
    blocks: VecDeque<(u64, Vec<u8>)>,
    /// Offset just past the last byte.
    end: u64,
    /// A block given back by [`Stream::trim`], reused for the next one (no allocation per
    /// block while a burst goes through).
    spare: Option<Vec<u8>>,
}

impl Stream {
    fn append(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let fits = self
            .blocks
            .back()
            .is_some_and(|(_, b)| b.capacity() - b.len() >= bytes.len());
        if !fits {
            let mut block = match self.spare.take() {
                Some(b) if b.capacity() >= bytes.len() => b,
                _ => Vec::with_capacity(BLOCK.max(bytes.len())),
            };
            block.clear();
            self.blocks.push_back((self.end, block));
        }
        if let Some((_, b)) = self.blocks.back_mut() {
            b.extend_from_slice(bytes);
            self.end += bytes.len() as u64;
        }
    }

    /// Adds the bytes `[from, to)` to `out` as slices, one per block, while `out` has room.
    /// Returns false when `out` filled up before `to`.
    fn slices<'a>(&'a self, from: u64, to: u64, out: &mut Slices<'a>) -> bool {
        if from >= to {
            return true;
        }
        let first = self
            .blocks
            .partition_point(|(start, b)| start + b.len() as u64 <= from);
        for (start, b) in self.blocks.range(first..) {
            if *start >= to {
                break;
            }
            let lo = from.saturating_sub(*start) as usize;
            let hi = ((to - start) as usize).min(b.len());
            if lo < hi && !out.push(&b[lo..hi]) {
                return false;
            }
        }
        true
    }

    /// Forgets every byte before `keep` (nobody needs them any more).
    fn trim(&mut self, keep: u64) {
        while let Some((start, b)) = self.blocks.front() {
            if start + b.len() as u64 > keep {
                break;
            }
            if let Some((_, b)) = self.blocks.pop_front() {
                if b.capacity() == BLOCK {
                    self.spare = Some(b);
                }
            }
        }
    }

    /// Bytes held.
    fn held(&self) -> usize {
        self.blocks.iter().map(|(_, b)| b.len()).sum()
    }
}

/// The two logs, and a scratch buffer for encoding.
#[derive(Default)]
pub struct Log {
    streams: [Stream; 2],
    scratch: Vec<u8>,
}

impl Log {
    pub fn new() -> Self {
        Log::default()
    }

    /// Where the next frame will start.
    pub fn end(&self) -> Pos {
        [self.streams[0].end, self.streams[1].end]
    }

    /// Encodes `frame` once in each format that `wanted` asks for (a format nobody reads is not
    /// encoded) and appends it; returns where it starts and ends. A frame not shown to guests
    /// takes no room in the guest log.
    pub fn append(&mut self, frame: &Frame, wanted: [bool; 2]) -> (Pos, Pos) {
        let start = self.end();
        for (i, want) in wanted.into_iter().enumerate() {
            if !want {
                continue;
            }
            self.scratch.clear();
            if i == 0 {
                protocol::encode_peer(frame, &mut self.scratch);
            } else {
                protocol::encode_guest(frame, &mut self.scratch);
            }
            self.streams[i].append(&self.scratch);
        }
        (start, self.end())
    }

    /// Adds the bytes `[from, to)` of `role`'s log to `out`; false when `out` filled up first.
    pub fn slices<'a>(&'a self, role: Role, from: u64, to: u64, out: &mut Slices<'a>) -> bool {
        self.streams[side(role)].slices(from, to, out)
    }

    /// Forgets what comes before `keep` in each log: `keep[i]` is the earliest byte some
    /// connection still has to send, or `None` when nobody reads that log.
    pub fn trim(&mut self, keep: [Option<u64>; 2]) {
        for (stream, keep) in self.streams.iter_mut().zip(keep) {
            let end = stream.end;
            stream.trim(keep.unwrap_or(end));
        }
    }

    /// True when either log holds more than its block being filled (worth trying to trim).
    pub fn has_old_blocks(&self) -> bool {
        self.streams.iter().any(|s| s.blocks.len() > 1)
    }

    /// Bytes held in both logs.
    pub fn held(&self) -> usize {
        self.streams.iter().map(Stream::held).sum()
    }
}

/// Slices to hand to one `write_vectored` call, kept on the stack.
pub struct Slices<'a> {
    slices: [IoSlice<'a>; MAX_SLICES],
    len: usize,
    bytes: usize,
}

/// Slices per `write_vectored` call, at most. A connection's queue is mostly one range of the
/// log (one or two slices), so few are needed; more go out in the next call.
pub const MAX_SLICES: usize = 64;

impl<'a> Slices<'a> {
    pub fn new() -> Self {
        Slices {
            slices: [IoSlice::new(&[]); MAX_SLICES],
            len: 0,
            bytes: 0,
        }
    }

    /// Adds `bytes`; false (and nothing added) when full.
    pub fn push(&mut self, bytes: &'a [u8]) -> bool {
        if self.len == MAX_SLICES {
            return false;
        }
        if !bytes.is_empty() {
            self.slices[self.len] = IoSlice::new(bytes);
            self.len += 1;
            self.bytes += bytes.len();
        }
        true
    }

    pub fn as_slice(&self) -> &[IoSlice<'a>] {
        &self.slices[..self.len]
    }

    /// Total bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Default for Slices<'_> {
    fn default() -> Self {
        Slices::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MemberId, MsgId, Signed};
    use std::rc::Rc;

    fn msg(seq: u64, text: &str) -> Frame {
        Frame::Msg {
            id: MsgId { node: 1, seq },
            from: MemberId::node(1),
            nick: "bob".into(),
            text: text.into(),
        }
    }

    /// `[from, to)` of `role`'s log, gathered as a writer would, one `Slices` at a time.
    fn read(log: &Log, role: Role, from: u64, to: u64) -> Vec<u8> {
        let mut got = Vec::new();
        let mut at = from;
        while at < to {
            let mut s = Slices::new();
            log.slices(role, at, to, &mut s);
            let before = got.len();
            for piece in s.as_slice() {
                got.extend_from_slice(piece);
            }
            // Fail at once rather than loop forever on a log that hands out nothing.
            assert!(s.bytes() > 0, "no bytes at {at} of [{from}, {to})");
            assert_eq!(
                s.bytes(),
                got.len() - before,
                "bytes() disagrees with the slices"
            );
            at += s.bytes() as u64;
        }
        assert_eq!(got.len() as u64, to - from);
        got
    }

    /// A guest line of `GUEST_LINE` bytes.
    fn kilo(seq: u64) -> Frame {
        msg(seq, &"k".repeat(1000))
    }
    const GUEST_LINE: usize = "<bob> ".len() + 1000 + 1;

    #[test]
    fn each_format_is_encoded_once_and_only_when_wanted() {
        let mut log = Log::new();
        let (a, b) = log.append(&msg(2, "hi"), [true, true]);
        assert_eq!(read(&log, Role::Guest, a[1], b[1]), b"<bob> hi\n");
        // Protocol 2: peers get a flooded frame only in its signed bundle, appended apart.
        assert_eq!(a[0], b[0]);
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let signed = Rc::new(Signed::seal(&key, 1, vec![msg(2, "hi")]));
        let (a, b) = log.append(&Frame::Signed(signed.clone()), [true, true]);
        assert_eq!(read(&log, Role::Peer, a[0], b[0]), signed.wire);
        assert!(signed
            .wire
            .ends_with(b"\nMSG 0000000000000001:2 0000000000000001 bob hi\n"));
        assert_eq!(a[1], b[1], "guests are not sent a bundle");
        // Nobody reads the peer log: nothing is encoded for it.
        let (c, d) = log.append(&msg(3, "yo"), [false, true]);
        assert_eq!(c[0], d[0]);
        assert_eq!(read(&log, Role::Guest, c[1], d[1]), b"<bob> yo\n");
        // A frame guests are not shown takes no room in their log.
        let (e, f) = log.append(&Frame::Ping, [true, true]);
        assert_eq!(e[1], f[1]);
        assert!(f[0] > e[0]);
    }

    #[test]
    fn ranges_span_blocks_and_trimming_frees_them() {
        let mut log = Log::new();
        let text = "x".repeat(1000);
        let mut want = Vec::new();
        for seq in 0..300 {
            log.append(&msg(seq, &text), [false, true]);
            want.extend_from_slice(format!("<bob> {text}\n").as_bytes());
        }
        let end = log.end()[1];
        assert_eq!(end as usize, want.len());
        assert!(log.has_old_blocks());
        assert_eq!(read(&log, Role::Guest, 0, end), want);
        // A range that starts inside one block and ends inside another.
        assert_eq!(
            read(&log, Role::Guest, 70_000, 140_000),
            &want[70_000..140_000]
        );
        log.trim([None, Some(140_000)]);
        assert!(log.held() < want.len() - 140_000 + BLOCK);
        assert_eq!(read(&log, Role::Guest, 140_000, end), &want[140_000..]);
        // Nobody behind: only the block being filled stays.
        log.trim([None, None]);
        assert!(!log.has_old_blocks());
        log.append(&msg(9, "after"), [false, true]);
        assert_eq!(read(&log, Role::Guest, end, log.end()[1]), b"<bob> after\n");
    }

    #[test]
    fn a_range_spanning_blocks_goes_out_in_one_call_unless_the_slices_fill_up() {
        let mut log = Log::new();
        for seq in 0..100 {
            log.append(&kilo(seq), [false, true]);
        }
        let end = log.end()[1];
        let first_block = (BLOCK / GUEST_LINE * GUEST_LINE) as u64;
        assert!(end > first_block && end < 2 * first_block);

        let mut s = Slices::new();
        assert!(
            log.slices(Role::Guest, 0, end, &mut s),
            "room for both blocks"
        );
        assert_eq!((s.as_slice().len(), s.bytes() as u64), (2, end));

        // Room for exactly the two slices: still all of it.
        let mut s = Slices::new();
        for _ in 0..MAX_SLICES - 2 {
            assert!(s.push(b"."));
        }
        assert!(log.slices(Role::Guest, 0, end, &mut s));
        assert_eq!(s.bytes() as u64, (MAX_SLICES - 2) as u64 + end);

        // Room for one: the first block goes, and the caller is told there is more.
        let mut s = Slices::new();
        for _ in 0..MAX_SLICES - 1 {
            assert!(s.push(b"."));
        }
        assert!(!log.slices(Role::Guest, 0, end, &mut s), "out filled up");
        assert_eq!(s.bytes() as u64, (MAX_SLICES - 1) as u64 + first_block);
        assert!(!s.push(b"."), "a full Slices takes nothing more");
    }

    #[test]
    fn trimming_drops_exactly_the_blocks_everyone_has_sent() {
        let mut log = Log::new();
        log.append(&msg(0, "hi"), [true, true]);
        assert!(!log.has_old_blocks(), "one block each, both being filled");

        let mut log = Log::new();
        for seq in 0..200 {
            log.append(&kilo(seq), [false, true]);
        }
        let end = log.end()[1];
        let first_block = (BLOCK / GUEST_LINE * GUEST_LINE) as u64;
        // A reader just past the first block's last byte: that block goes, nothing else.
        log.trim([None, Some(first_block)]);
        assert_eq!(log.held() as u64, end - first_block);
        assert_eq!(
            read(&log, Role::Guest, first_block, end).len() as u64,
            end - first_block
        );
        // A reader one byte short of the end still needs the block that byte is in.
        log.trim([None, Some(end - 1)]);
        assert!(log.held() > 0);
        assert_eq!(read(&log, Role::Guest, end - 1, end), b"\n");
        // Every reader at the end: the log holds nothing, and goes on from where it was.
        log.trim([None, Some(end)]);
        assert_eq!(log.held(), 0);
        assert!(!log.has_old_blocks());
        let (a, b) = log.append(&msg(1, "again"), [false, true]);
        assert_eq!(a[1], end);
        assert_eq!(read(&log, Role::Guest, a[1], b[1]), b"<bob> again\n");
    }

    #[test]
    fn a_frame_larger_than_a_block_gets_its_own() {
        let mut log = Log::new();
        let big = "y".repeat(BLOCK + 10);
        let (a, b) = log.append(&msg(1, &big), [false, true]);
        assert_eq!(read(&log, Role::Guest, a[1], b[1]).len(), BLOCK + 17);
    }
}
