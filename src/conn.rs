//! One connection's buffers and state: the line decoder on the way in, the pending output on the
//! way out (a queue of encoded frames shared with every other connection that gets them, written
//! with `write_vectored`), frames held until we know whether the other end is a peer or a guest.
//!
//! Reads and writes go through `impl Read` / `impl Write`, so short writes and would-block are
//! tested without sockets. Must not know about other connections or chat rules.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::core::Role;
use crate::fanout::Outgoing;
use crate::protocol::{self, Frame, LineDecoder};

/// A connection whose unsent output grows past this is too slow to keep: it is closed.
pub const MAX_BACKLOG: usize = 4 * 1024 * 1024;

/// Past this much unsent output a connection is "behind": local input waits for it, and if it
/// stays behind for [`STALL_LIMIT`] it is closed, so one stalled reader cannot freeze the chat.
pub const HIGH_WATER: usize = 1024 * 1024;

/// Slices per `write_vectored` call, at most (Linux's `IOV_MAX`).
const MAX_SLICES: usize = 1024;

/// How long a connection may stay past [`HIGH_WATER`].
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// A guest's unterminated line is taken as a message once the guest has been quiet this long
/// (some programs send lines without `\n`).
pub const PARTIAL_LINE_IDLE: Duration = Duration::from_millis(250);

/// Where a connection is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Our dial is in progress; it fails if not connected by `deadline`.
    Connecting { deadline: Instant },
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

/// One connection, without its socket.
pub struct Conn {
    /// Where the other end is, as shown to the user.
    pub addr: String,
    pub phase: Phase,
    /// `None` until the chat classifies the other end.
    pub role: Option<Role>,
    pub decoder: LineDecoder,
    /// When bytes last arrived.
    pub last_read: Instant,
    /// WRITABLE interest is registered.
    pub writable: bool,
    /// Has output that this loop turn has not tried to write.
    pub dirty: bool,
    /// Is on the reactor's list of connections to read again next turn.
    pub unread: bool,
    /// Since when the output has been past [`HIGH_WATER`].
    pub behind_since: Option<Instant>,
    /// When a write last took bytes (or the connection fell behind): a connection behind that
    /// moved recently is slow, one that has not is stalled.
    pub last_progress: Instant,
    /// Being closed on purpose once its output is out (a duplicate link), by this instant at
    /// the latest.
    pub retire_by: Option<Instant>,
    /// Encoded frames to send, in order: most are shared with the other connections that get
    /// the same frame (one allocation per frame and wire format, not per connection).
    out: VecDeque<Rc<[u8]>>,
    /// Bytes of `out[0]` already written.
    out_off: usize,
    /// Unsent bytes in `out`.
    out_len: usize,
    held: Vec<Rc<Frame>>,
    /// Bytes the held frames will take, roughly.
    held_bytes: usize,
}

impl Conn {
    pub fn new(addr: String, phase: Phase, now: Instant) -> Self {
        Conn {
            addr,
            phase,
            role: None,
            decoder: LineDecoder::default(),
            last_read: now,
            writable: false,
            dirty: false,
            unread: false,
            behind_since: None,
            last_progress: now,
            retire_by: None,
            out: VecDeque::new(),
            out_off: 0,
            out_len: 0,
            held: Vec::new(),
            held_bytes: 0,
        }
    }

    fn push(&mut self, bytes: Rc<[u8]>) {
        if !bytes.is_empty() {
            self.out_len += bytes.len();
            self.out.push_back(bytes);
        }
    }

    /// Appends raw bytes to the output, whatever the role (our hello).
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.push(Rc::from(bytes));
    }

    /// Queues a frame in this connection's format (shared, not copied), or holds it until the
    /// role is known.
    pub fn queue(&mut self, out: &Outgoing) {
        match self.role {
            Some(role) => self.push(out.shared(role)),
            None => {
                self.held_bytes += out.bytes(Role::Peer).len();
                self.held.push(out.frame.clone());
            }
        }
    }

    /// Queues a frame meant for this connection alone (a guest gets a DM in its direct form).
    pub fn queue_direct(&mut self, frame: &Rc<Frame>) {
        let mut bytes = Vec::new();
        match self.role {
            Some(Role::Peer) => protocol::encode(frame, &mut bytes),
            Some(Role::Guest) => {
                protocol::encode_guest_direct(frame, &mut bytes);
            }
            None => return self.queue(&Outgoing::new(frame.clone())),
        }
        self.push(Rc::from(bytes));
    }

    /// Sets the role and moves held frames to the output in that format.
    pub fn classify(&mut self, role: Role) {
        self.role = Some(role);
        self.held_bytes = 0;
        for frame in std::mem::take(&mut self.held) {
            self.push(Outgoing::new(frame).shared(role));
        }
    }

    /// Unsent output, in bytes, counting frames held until the role is known.
    pub fn backlog(&self) -> usize {
        self.out_len + self.held_bytes
    }

    /// True when a guest-like unterminated line is waiting to be taken as a message after
    /// [`PARTIAL_LINE_IDLE`]: the other end is a guest, or not yet known and not in the middle
    /// of sending a hello.
    pub fn has_guest_partial(&self) -> bool {
        const HELLO: &[u8] = b"peerchat/";
        let p = self.decoder.partial();
        !p.is_empty()
            && match self.role {
                Some(Role::Peer) => false,
                Some(Role::Guest) => true,
                None => !(p.starts_with(HELLO) || HELLO.starts_with(p)),
            }
    }

    /// One read from `r` into the decoder.
    pub fn read_some(&mut self, r: &mut impl Read, now: Instant) -> io::Result<ReadStatus> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            return match r.read(&mut buf) {
                Ok(0) => Ok(ReadStatus::Eof),
                Ok(n) => {
                    self.decoder.push(&buf[..n]);
                    self.last_read = now;
                    Ok(ReadStatus::Data)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadStatus::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Writes as much pending output as `w` takes, until it would block: many frames per
    /// system call (`write_vectored`), never one call per frame.
    pub fn flush_to(&mut self, w: &mut impl Write) -> io::Result<()> {
        while self.out_len > 0 {
            let result = {
                let slices: Vec<IoSlice<'_>> = self
                    .out
                    .iter()
                    .take(MAX_SLICES)
                    .enumerate()
                    .map(|(i, piece)| {
                        let skip = if i == 0 { self.out_off } else { 0 };
                        IoSlice::new(&piece[skip..])
                    })
                    .collect();
                w.write_vectored(&slices)
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out.is_empty() && self.out.capacity() > 4096 {
            self.out.shrink_to(4096);
        }
        Ok(())
    }

    /// Drops the first `n` unsent bytes, which were written.
    fn consume(&mut self, mut n: usize) {
        self.out_len -= n.min(self.out_len);
        while n > 0 {
            let Some(front) = self.out.front() else {
                return;
            };
            let left = front.len() - self.out_off;
            if n < left {
                self.out_off += n;
                return;
            }
            n -= left;
            self.out.pop_front();
            self.out_off = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MsgId;

    /// Takes at most `chunk` bytes per call and refuses every other call, like a full socket.
    struct Stingy {
        got: Vec<u8>,
        chunk: usize,
        calls: usize,
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

    fn msg(seq: u64) -> Outgoing {
        Outgoing::new(Rc::new(Frame::Msg {
            id: MsgId { node: 9, seq },
            from: crate::protocol::MemberId::node(9),
            nick: "bob".into(),
            text: format!("message {seq}"),
        }))
    }

    #[test]
    fn short_writes_deliver_everything_in_order() {
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.classify(Role::Guest);
        let mut want = Vec::new();
        let mut w = Stingy {
            got: Vec::new(),
            chunk: 7,
            calls: 0,
        };
        for seq in 0..200 {
            let out = msg(seq);
            want.extend_from_slice(out.bytes(Role::Guest));
            conn.queue(&out);
            if seq % 3 == 0 {
                conn.flush_to(&mut w).unwrap();
            }
        }
        for _ in 0..10_000 {
            if conn.backlog() == 0 {
                break;
            }
            conn.flush_to(&mut w).unwrap();
        }
        assert_eq!(conn.backlog(), 0);
        assert_eq!(w.got, want);
    }

    /// Takes everything, counting calls.
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
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
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

    #[test]
    fn frames_are_shared_and_many_go_out_per_write() {
        let (mut a, mut b) = (
            Conn::new("a".into(), Phase::Open, Instant::now()),
            Conn::new("b".into(), Phase::Open, Instant::now()),
        );
        a.classify(Role::Guest);
        b.classify(Role::Guest);
        let mut want = Vec::new();
        for seq in 0..1500 {
            let out = msg(seq);
            want.extend_from_slice(out.bytes(Role::Guest));
            a.queue(&out);
            b.queue(&out);
            // One encoding, referenced by both connections (and the Outgoing).
            assert_eq!(Rc::strong_count(&out.shared(Role::Guest)), 4);
        }
        let mut w = Greedy {
            got: Vec::new(),
            calls: 0,
        };
        a.flush_to(&mut w).unwrap();
        assert_eq!(w.got, want);
        // 1500 frames, at most 1024 slices per call: two calls, not 1500.
        assert_eq!(w.calls, 2);
        assert_eq!(a.backlog(), 0);
        assert!(b.backlog() > 0);
    }

    #[test]
    fn frames_are_held_until_the_role_is_known() {
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.queue_raw(b"hello\n");
        conn.queue(&msg(1));
        conn.queue(&msg(2));
        assert!(conn.backlog() > 6, "held frames count in the backlog");
        conn.classify(Role::Guest);
        assert_eq!(conn.backlog(), 6 + 2 * "<bob> message 1\n".len());
        let mut got = Vec::new();
        conn.flush_to(&mut got).unwrap();
        assert_eq!(got, b"hello\n<bob> message 1\n<bob> message 2\n");
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
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.queue_raw(b"x\n");
        assert!(conn.flush_to(&mut Broken).is_err());
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
    fn a_hello_in_pieces_is_not_taken_for_a_guest_line() {
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        for piece in [&b"p"[..], b"eerchat", b"/1 hello fr"] {
            conn.decoder.push(piece);
            assert!(!conn.has_guest_partial(), "{:?}", conn.decoder.partial());
        }
        let mut conn = Conn::new("x".into(), Phase::Open, Instant::now());
        conn.decoder.push(b"Ol\xc3\xa1");
        assert!(conn.has_guest_partial());
        conn.classify(Role::Peer);
        assert!(!conn.has_guest_partial());
    }
}
