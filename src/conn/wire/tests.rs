//! A private group's wire on two `Conn`s joined by byte buffers: no sockets, no chat.
use std::time::Instant;

use ed25519_dalek::SigningKey;

use super::*;
use crate::protocol::Frame;

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
    let mut w = crate::conn::tests::Stingy {
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
