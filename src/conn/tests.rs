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
