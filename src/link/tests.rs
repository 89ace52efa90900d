//! Tests of the Noise link: two ends over an in-memory pipe that delivers bytes in random-sized
//! pieces; a wrong secret; the identity binding; tampered, replayed, reordered and dropped
//! records; length bounds; random garbage at every stage. Seeded, so a failure repeats.

use ed25519_dalek::{Signer, SigningKey};

use super::noise::{MAX_HANDSHAKE_MESSAGE, MAX_MESSAGE, STATIC_KEY_DOMAIN, TAG};
use super::*;
use crate::test_rng::Rng;

const PSK: [u8; 32] = [7; 32];

fn identity(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn keys(psk: [u8; 32], seed: u8) -> LinkKeys {
    LinkKeys::new(psk, &identity(seed)).expect("link keys")
}

/// One end of the pipe: its link, the bytes on their way to it (those before `read` already
/// fed), the plaintext it read.
struct End {
    link: Link,
    inbox: Vec<u8>,
    read: usize,
    plain: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Side {
    Initiator,
    Responder,
}

/// An initiator with `a`'s keys and a responder with `b`'s, message 1 on its way.
fn pair(a: &LinkKeys, b: &LinkKeys) -> (End, End) {
    let (link, first) = Link::initiator(a).expect("initiator");
    let i = End {
        link,
        inbox: Vec::new(),
        read: 0,
        plain: Vec::new(),
    };
    let r = End {
        link: Link::responder(b).expect("responder"),
        inbox: first,
        read: 0,
        plain: Vec::new(),
    };
    (i, r)
}

/// Delivers everything in flight, both ways, in pieces of 1..=`max` bytes, until nothing is.
fn pump(i: &mut End, r: &mut End, rng: &mut Rng, max: usize) -> Result<(), (Side, LinkError)> {
    while !i.inbox.is_empty() || !r.inbox.is_empty() {
        step(i, r, rng, max).map_err(|e| (Side::Initiator, e))?;
        step(r, i, rng, max).map_err(|e| (Side::Responder, e))?;
    }
    Ok(())
}

/// Feeds `to` one piece of what is on its way to it; what it answers goes on its way to `from`.
fn step(to: &mut End, from: &mut End, rng: &mut Rng, max: usize) -> Result<(), LinkError> {
    if to.inbox.is_empty() {
        return Ok(());
    }
    let n = rng.upto(max).min(to.inbox.len() - to.read);
    let p = to.link.feed(&to.inbox[to.read..to.read + n])?;
    to.read += n;
    if to.read == to.inbox.len() {
        to.inbox.clear();
        to.read = 0;
    }
    from.inbox.extend_from_slice(&p.send);
    to.plain.extend_from_slice(&p.plain);
    Ok(())
}

/// Two ends with the same secret, handshake done.
fn open_pair(rng: &mut Rng) -> (End, End) {
    let (mut i, mut r) = pair(&keys(PSK, 1), &keys(PSK, 2));
    pump(&mut i, &mut r, rng, 64).expect("handshake");
    assert!(i.link.is_open() && r.link.is_open());
    (i, r)
}

fn sealed(link: &mut Link, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    link.seal(plain, &mut out).expect("seal");
    out
}

#[test]
fn handshake_and_messages_both_ways_in_random_pieces() {
    let a = keys(PSK, 1);
    let b = keys(PSK, 2);
    for (seed, max) in [(1, 1), (2, 3), (3, 50), (4, 700), (5, 70_000), (6, 200_000)] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let (mut i, mut r) = pair(&a, &b);
        pump(&mut i, &mut r, &mut rng, max).expect("handshake");
        assert!(i.link.is_open() && r.link.is_open(), "max {max}");
        assert_eq!(i.link.peer_identity(), Some(&b.identity()));
        assert_eq!(r.link.peer_identity(), Some(&a.identity()));

        let small = b"hello from the initiator\n".to_vec();
        let big = rng.bytes(200 * 1024);
        let reply = b"and back\n".to_vec();
        i.link.seal(&small, &mut r.inbox).expect("seal");
        i.link.seal(&big, &mut r.inbox).expect("seal");
        r.link.seal(&reply, &mut i.inbox).expect("seal");
        r.link.seal(&big, &mut i.inbox).expect("seal");
        pump(&mut i, &mut r, &mut rng, max).expect("records");
        assert_eq!(r.plain, [small.clone(), big.clone()].concat(), "max {max}");
        assert_eq!(i.plain, [reply.clone(), big.clone()].concat(), "max {max}");
    }
}

#[test]
fn handshake_messages_have_the_expected_sizes_and_message_1_names_nobody() {
    let a = keys(PSK, 1);
    let (_, first) = Link::initiator(&a).expect("initiator");
    // Length, ephemeral key, tag of the (empty) payload under the pre-shared key.
    assert_eq!(first.len(), 2 + 32 + TAG);
    let mut r = Link::responder(&keys(PSK, 2)).expect("responder");
    let second = r.feed(&first).expect("message 1").send;
    // Ephemeral, encrypted static key, encrypted identity payload.
    assert_eq!(second.len(), 2 + 32 + (32 + TAG) + (96 + TAG));
    assert!(second.len() - 2 <= MAX_HANDSHAKE_MESSAGE);
    // Neither identity key appears in clear in the handshake.
    for key in [a.identity(), keys(PSK, 2).identity()] {
        for msg in [&first, &second] {
            assert!(!msg.windows(32).any(|w| w == key.as_bytes()));
        }
    }
}

#[test]
fn a_write_of_up_to_one_record_is_one_record_and_a_larger_one_is_split() {
    let mut rng = Rng(11);
    let (mut i, mut r) = open_pair(&mut rng);
    let one = sealed(&mut i.link, &vec![1; MAX_RECORD_PLAIN]);
    assert_eq!(one.len(), 2 + MAX_MESSAGE);
    assert_eq!(&one[..2], &[0xff, 0xff]);
    let two = sealed(&mut i.link, &vec![2; MAX_RECORD_PLAIN + 1]);
    assert_eq!(two.len(), MAX_RECORD_PLAIN + 1 + 2 * (2 + TAG));
    let big = sealed(&mut i.link, &vec![3; 200 * 1024]);
    assert_eq!(
        big.len(),
        200 * 1024 + 4 * (2 + TAG),
        "200 KiB in four records"
    );
    assert!(sealed(&mut i.link, &[]).is_empty());
    let p = r.link.feed(&[one, two, big].concat()).expect("records");
    assert_eq!(p.plain.len(), 2 * MAX_RECORD_PLAIN + 1 + 200 * 1024);
    assert!(p.send.is_empty());
}

#[test]
fn the_initiators_first_record_may_ride_with_message_3() {
    let (mut i, first) = Link::initiator(&keys(PSK, 1)).expect("initiator");
    let mut r = Link::responder(&keys(PSK, 2)).expect("responder");
    let second = r.feed(&first).expect("message 1").send;
    let mut third = i.feed(&second).expect("message 2").send;
    assert!(i.is_open() && !r.is_open());
    i.seal(b"early", &mut third).expect("seal");
    let p = r.feed(&third).expect("message 3 and a record");
    assert!(r.is_open());
    assert_eq!(p.plain, b"early");
}

#[test]
fn a_wrong_secret_is_found_by_the_responder_at_message_1_and_nothing_is_revealed() {
    let mut other = PSK;
    other[31] ^= 1;
    let (mut i, mut r) = pair(&keys(PSK, 1), &keys(other, 2));
    let first = std::mem::take(&mut r.inbox);
    // The responder cannot authenticate message 1: it fails at once, and answers nothing, so
    // neither static key nor identity key ever leaves either side.
    assert_eq!(r.link.feed(&first), Err(LinkError::Handshake));
    assert!(r.link.peer_identity().is_none());
    assert!(!r.link.is_open());
    // Dead for good: the same error for anything after.
    assert_eq!(r.link.feed(b"more"), Err(LinkError::Handshake));
    // The initiator hears nothing back; when the responder closes, it says why it may be.
    assert!(i.link.in_handshake());
    assert!(i.link.peer_identity().is_none());
    assert_eq!(i.link.end(), Err(LinkError::ClosedInHandshake));
    assert!(!i.link.is_open());
    assert_eq!(
        LinkError::ClosedInHandshake.to_string(),
        "the peer closed during the handshake: wrong secret, or not a private group"
    );
}

#[test]
fn a_wrong_secret_fails_in_any_pieces_on_the_responder_side() {
    let mut rng = Rng(21);
    for n in 0..20 {
        let (mut i, mut r) = pair(&keys(PSK, 1), &keys([100 + n; 32], 2));
        let err = pump(&mut i, &mut r, &mut rng, 1 + usize::from(n)).unwrap_err();
        assert_eq!(err, (Side::Responder, LinkError::Handshake));
        assert!(!i.link.is_open() && i.inbox.is_empty());
    }
}

/// A payload in which `signer` signs `static_public` (perhaps not the key it presents).
fn payload(signer: &SigningKey, static_public: &[u8; 32]) -> [u8; 96] {
    let mut text = STATIC_KEY_DOMAIN.to_vec();
    text.extend_from_slice(static_public);
    let mut p = [0u8; 96];
    p[..32].copy_from_slice(signer.verifying_key().as_bytes());
    p[32..].copy_from_slice(&signer.sign(&text).to_bytes());
    p
}

#[test]
fn a_signature_over_another_static_key_is_refused_on_either_side() {
    let mut rng = Rng(31);
    let me = identity(2);
    // A genuine signature by the right identity, but over another process's static key: a
    // payload replayed from another link.
    let elsewhere = LinkKeys::new(PSK, &me).expect("keys");
    let forged = keys(PSK, 2).with_payload(payload(&me, &elsewhere.static_public()));
    // As responder (the initiator checks message 2).
    let (mut i, mut r) = pair(&keys(PSK, 1), &forged);
    let err = pump(&mut i, &mut r, &mut rng, 40).unwrap_err();
    assert_eq!(err, (Side::Initiator, LinkError::Identity));
    assert!(i.link.peer_identity().is_none());
    // As initiator (the responder checks message 3).
    let (mut i, mut r) = pair(&forged, &keys(PSK, 1));
    let err = pump(&mut i, &mut r, &mut rng, 40).unwrap_err();
    assert_eq!(err, (Side::Responder, LinkError::Identity));
    assert!(!r.link.is_open() && r.link.peer_identity().is_none());
    // The same keys with their own payload pass: the refusal was the signature's.
    let honest = keys(PSK, 2);
    let sig_ok = honest
        .clone()
        .with_payload(payload(&me, &honest.static_public()));
    let (mut i, mut r) = pair(&keys(PSK, 1), &sig_ok);
    pump(&mut i, &mut r, &mut rng, 40).expect("honest payload");
    assert_eq!(i.link.peer_identity(), Some(&me.verifying_key()));
}

#[test]
fn a_payload_naming_another_identity_or_malformed_is_refused() {
    let mut rng = Rng(41);
    let mallory = identity(9);
    let victim = identity(3).verifying_key();
    let honest = keys(PSK, 9);
    // Mallory's valid signature, presented under the victim's key.
    let mut claimed = payload(&mallory, &honest.static_public());
    claimed[..32].copy_from_slice(victim.as_bytes());
    // A zero signature; a key that is not a curve point; a signature with one bit flipped.
    let mut zero_sig = claimed;
    zero_sig[..32].copy_from_slice(mallory.verifying_key().as_bytes());
    zero_sig[32..].fill(0);
    let mut bad_point = payload(&mallory, &honest.static_public());
    bad_point[..32].copy_from_slice(&[0xff; 32]);
    let mut flipped = payload(&mallory, &honest.static_public());
    flipped[40] ^= 0x10;
    for p in [claimed, zero_sig, bad_point, flipped] {
        let (mut i, mut r) = pair(&keys(PSK, 1), &honest.clone().with_payload(p));
        let err = pump(&mut i, &mut r, &mut rng, 40).unwrap_err();
        assert_eq!(err, (Side::Initiator, LinkError::Identity));
    }
}

#[test]
fn a_flipped_bit_anywhere_in_a_record_body_is_an_error() {
    let mut rng = Rng(51);
    let record_len = 2 + 30 + TAG;
    for at in 2..record_len {
        let (mut i, mut r) = open_pair(&mut rng);
        let mut record = sealed(&mut i.link, &[b'x'; 30]);
        assert_eq!(record.len(), record_len);
        record[at] ^= 1 << (rng.next() % 8);
        assert_eq!(r.link.feed(&record), Err(LinkError::Record), "byte {at}");
        assert!(!r.link.is_open());
        // Nothing after it is read, not even a good record.
        let next = sealed(&mut i.link, b"after");
        assert_eq!(r.link.feed(&next), Err(LinkError::Record));
    }
}

#[test]
fn a_flipped_bit_in_a_length_is_an_error_or_a_wait_never_plaintext() {
    let mut rng = Rng(52);
    for bit in 0..16 {
        let (mut i, mut r) = open_pair(&mut rng);
        let mut record = sealed(&mut i.link, &[b'y'; 30]);
        record[bit / 8] ^= 1 << (bit % 8);
        match r.link.feed(&record) {
            // A shorter length cuts the tag off; a longer one waits for bytes that never come.
            Err(LinkError::Record) | Err(LinkError::Length(_)) => {}
            Ok(p) => {
                assert!(p.plain.is_empty(), "bit {bit}");
                assert_eq!(r.link.end(), Err(LinkError::Truncated));
            }
            Err(e) => panic!("bit {bit}: {e}"),
        }
    }
}

#[test]
fn a_replayed_record_is_an_error() {
    let mut rng = Rng(61);
    let (mut i, mut r) = open_pair(&mut rng);
    let one = sealed(&mut i.link, b"one");
    assert_eq!(r.link.feed(&one).expect("first").plain, b"one");
    assert_eq!(r.link.feed(&one), Err(LinkError::Record));
}

#[test]
fn two_swapped_records_are_an_error() {
    let mut rng = Rng(62);
    let (mut i, mut r) = open_pair(&mut rng);
    let one = sealed(&mut i.link, b"one");
    let two = sealed(&mut i.link, b"two");
    assert_eq!(r.link.feed(&[two, one].concat()), Err(LinkError::Record));
}

#[test]
fn a_dropped_record_is_an_error() {
    let mut rng = Rng(63);
    let (mut i, mut r) = open_pair(&mut rng);
    let _lost = sealed(&mut i.link, b"one");
    let two = sealed(&mut i.link, b"two");
    assert_eq!(r.link.feed(&two), Err(LinkError::Record));
}

#[test]
fn a_record_from_another_link_is_an_error() {
    let mut rng = Rng(64);
    let (mut i1, _r1) = open_pair(&mut rng);
    let (_i2, mut r2) = open_pair(&mut rng);
    let foreign = sealed(&mut i1.link, b"elsewhere");
    assert_eq!(r2.link.feed(&foreign), Err(LinkError::Record));
}

#[test]
fn lengths_out_of_bounds_are_refused_as_soon_as_read() {
    // A handshake message longer than any peerchat sends: refused on its two length bytes.
    let mut r = Link::responder(&keys(PSK, 2)).expect("responder");
    assert_eq!(r.feed(&[0x01]), Ok(Progress::default()));
    assert_eq!(r.feed(&[0x01]), Err(LinkError::Length(257)));
    // Shorter than a tag, in the handshake and on an open link.
    let mut r = Link::responder(&keys(PSK, 2)).expect("responder");
    assert_eq!(r.feed(&[0, 0]), Err(LinkError::Length(0)));
    let mut rng = Rng(71);
    let (_, mut r) = open_pair(&mut rng);
    assert_eq!(r.link.feed(&[0, 15]), Err(LinkError::Length(15)));
    // The largest record length is held, and no more than it.
    let (_, mut r) = open_pair(&mut rng);
    let mut max = vec![0xff, 0xff];
    max.extend(rng.bytes(MAX_MESSAGE - 1));
    assert!(r.link.feed(&max).expect("partial").plain.is_empty());
    assert_eq!(r.link.buffered(), 2 + MAX_MESSAGE - 1);
    assert_eq!(r.link.feed(&[0, 0]), Err(LinkError::Record));
    assert_eq!(r.link.buffered(), 0);
}

#[test]
fn seal_before_the_handshake_is_refused_and_errors_stay() {
    let (mut i, _) = Link::initiator(&keys(PSK, 1)).expect("initiator");
    let mut out = Vec::new();
    assert_eq!(i.seal(b"too early", &mut out), Err(LinkError::NotOpen));
    assert!(out.is_empty());
    let mut r = Link::responder(&keys(PSK, 2)).expect("responder");
    assert_eq!(r.feed(&[0, 1]), Err(LinkError::Length(1)));
    assert_eq!(r.seal(b"x", &mut out), Err(LinkError::Length(1)));
    assert_eq!(r.end(), Err(LinkError::Length(1)));
}

#[test]
fn a_clean_end_between_records_is_fine_and_a_cut_record_is_not() {
    let mut rng = Rng(81);
    let (mut i, mut r) = open_pair(&mut rng);
    let record = sealed(&mut i.link, b"whole");
    r.link.feed(&record).expect("record");
    assert_eq!(r.link.end(), Ok(()));
    let (mut i, mut r) = open_pair(&mut rng);
    let record = sealed(&mut i.link, b"cut short");
    r.link.feed(&record[..record.len() - 1]).expect("partial");
    assert_eq!(r.link.end(), Err(LinkError::Truncated));
}

#[test]
fn random_garbage_never_panics_and_never_yields_plaintext() {
    let mut rng = Rng(91);
    let k1 = keys(PSK, 1);
    let k2 = keys(PSK, 2);
    for round in 0..300 {
        let len = rng.upto(if round % 10 == 0 { 140_000 } else { 400 });
        let mut garbage = rng.bytes(len);
        // Often a plausible length first, so the bytes reach the cipher rather than the bounds.
        if round % 2 == 0 {
            let n = (rng.next() % 300) as u16;
            garbage[..2.min(len)].copy_from_slice(&n.to_be_bytes()[..2.min(len)]);
        }
        // An initiator awaiting message 2, a responder awaiting message 3, an open link, and
        // a responder awaiting message 1.
        let (mut initiator, first) = Link::initiator(&k1).expect("initiator");
        let mut midway = Link::responder(&k2).expect("responder");
        midway.feed(&first).expect("message 1");
        let (_, mut open) = open_pair(&mut rng);
        let mut fresh = Link::responder(&k2).expect("responder");
        for (n, link) in [&mut initiator, &mut midway, &mut open.link, &mut fresh]
            .into_iter()
            .enumerate()
        {
            let mut rest = &garbage[..];
            while !rest.is_empty() {
                let take = rng.upto(5000).min(rest.len());
                match link.feed(&rest[..take]) {
                    Ok(p) => assert!(p.plain.is_empty() && p.send.is_empty(), "round {round}"),
                    Err(_) => break,
                }
                assert!(link.buffered() <= 2 + MAX_MESSAGE);
                rest = &rest[take..];
            }
            // Garbage never completes a handshake.
            assert!(n == 2 || !link.is_open(), "round {round}");
        }
    }
}

#[test]
fn every_error_is_one_line() {
    for e in [
        LinkError::Setup,
        LinkError::Handshake,
        LinkError::Identity,
        LinkError::Length(70_000),
        LinkError::Record,
        LinkError::NotOpen,
        LinkError::ClosedInHandshake,
        LinkError::Truncated,
    ] {
        let line = e.to_string();
        assert!(
            !line.is_empty() && !line.contains('\n') && line.len() <= 80,
            "{line}"
        );
    }
}

#[test]
fn keys_do_not_print_their_secrets() {
    let k = keys([0xab; 32], 1);
    let shown = format!("{k:?}");
    assert!(
        !shown.contains("171, 171") && !shown.contains("abab"),
        "{shown}"
    );
}

/// Handshakes a second, two in-memory ends on one thread (each handshake costs both sides'
/// work). `cargo test --release --lib link::tests::handshake_rate -- --ignored --nocapture`
#[test]
#[ignore]
fn handshake_rate() {
    let a = keys(PSK, 1);
    let b = keys(PSK, 2);
    let n = 2000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let (mut i, first) = Link::initiator(&a).expect("initiator");
        let mut r = Link::responder(&b).expect("responder");
        let second = r.feed(&first).expect("1").send;
        let third = i.feed(&second).expect("2").send;
        r.feed(&third).expect("3");
        assert!(i.is_open() && r.is_open());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} handshakes in {secs:.3} s: {:.0} handshakes/s, {:.1} us each (both sides)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
    // For scale: the Ed25519 verification each side makes once a handshake.
    let me = identity(1);
    let sig = me.sign(b"scale");
    let start = std::time::Instant::now();
    for _ in 0..n {
        me.verifying_key()
            .verify_strict(b"scale", &sig)
            .expect("verify");
    }
    println!(
        "one Ed25519 verification: {:.1} us",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let start = std::time::Instant::now();
    for _ in 0..n {
        let _ = Link::initiator(&a).expect("initiator");
        let _ = Link::responder(&b).expect("responder");
    }
    println!(
        "setting up both ends (and message 1): {:.1} us",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let big = vec![0u8; 64 * 1024];
    let mut rng = Rng(1);
    let (mut i, mut r) = open_pair(&mut rng);
    let rounds = 2000;
    let start = std::time::Instant::now();
    let mut out = Vec::with_capacity(70 * 1024);
    for _ in 0..rounds {
        out.clear();
        i.link.seal(&big, &mut out).expect("seal");
        r.link.feed(&out).expect("open");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "seal+open of 64 KiB writes: {:.0} MiB/s",
        rounds as f64 * 64.0 / 1024.0 / secs
    );
}
