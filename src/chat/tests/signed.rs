//! Property tests of the signed frames: a chat core fed, by a seeded generator, a proven peer's
//! honest bundles mixed with forged, altered, unsigned and garbled ones. Whatever the mix, it
//! never panics, shows every honest message before the connection ends exactly once, never shows
//! a word of anything not signed by its origin, and closes the connection at the first forgery.

use super::net::*;
use crate::protocol::sign;
use crate::test_rng::Rng;
use ed25519_dalek::SigningKey;

/// What the generator sends next on the peer's connection.
enum Step {
    /// An honest bundle of `n` messages.
    Honest(usize),
    /// An honest bundle with one byte of a frame line changed.
    Flipped,
    /// A bundle under another node's id (the reader's own, or a made-up one), signed by the peer.
    Impostor(bool),
    /// A message with no bundle.
    Bare,
    /// A line that is no frame, or a bundle head with the wrong count.
    Garbage,
}

/// A node of the test's on connection 3 of a fresh chat, proven, announced.
struct Peer {
    key: SigningKey,
    node: NodeId,
    seq: u64,
}

impl Peer {
    fn frame(&mut self, text: String) -> Frame {
        self.seq += 1;
        Frame::Msg {
            id: MsgId {
                node: self.node,
                seq: self.seq,
            },
            from: MemberId::node(self.node),
            nick: "peer".into(),
            text,
        }
    }
}

fn lines_of(wire: &[u8]) -> Vec<Vec<u8>> {
    wire.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// A chat with one proven, announced peer on connection 3.
fn chat_with_peer(now: Instant) -> (Chat, Peer) {
    let mut chat = Chat::new(config(0, 0), now);
    let (_, sent) = hello_on(&chat, 3);
    chat.handle_opened(3, accepted(addr(9, 4000)), sent.clone(), now);
    let key = SigningKey::from_bytes(&[42; 32]);
    let run = [9u8; 8];
    let node = sign::node_id(&key.verifying_key(), &run);
    let hello = Frame::Hello(Hello {
        nick: "peer".into(),
        node,
        listen: None,
        key: protocol::NodeKey {
            key: key.verifying_key(),
            run,
        },
        nonce: [1; 16],
    });
    let mut line = Vec::new();
    protocol::encode(&hello, &mut line);
    line.pop();
    let theirs = String::from_utf8(line).expect("utf-8");
    chat.handle_line(3, theirs.as_bytes(), now);
    let proof = sign::sign_proof(&key, &theirs, &sent);
    let proof = format!("PROOF {}", sign::to_hex(&proof.to_bytes()));
    chat.handle_line(3, proof.as_bytes(), now);
    let mut peer = Peer { key, node, seq: 0 };
    peer.seq += 1;
    let join = Frame::Join {
        id: MsgId { node, seq: 1 },
        member: MemberId::node(node),
        nick: "peer".into(),
        addr: None,
        key: Some(protocol::NodeKey {
            key: peer.key.verifying_key(),
            run,
        }),
    };
    let bundle = protocol::Signed::seal(&peer.key, node, vec![join]);
    for l in lines_of(&bundle.wire) {
        chat.handle_line(3, &l, now);
    }
    drain(&mut chat);
    (chat, peer)
}

fn step(rng: &mut Rng) -> Step {
    match rng.below(20) {
        0 => Step::Flipped,
        1 => Step::Impostor(rng.below(2) == 0),
        2 => Step::Bare,
        3 => Step::Garbage,
        _ => Step::Honest(1 + rng.below(5) as usize),
    }
}

/// Lines for one step; the honest texts it carries; whether it must close the connection.
fn lines_for(
    s: &Step,
    peer: &mut Peer,
    me: NodeId,
    rng: &mut Rng,
) -> (Vec<Vec<u8>>, Vec<String>, bool) {
    match *s {
        Step::Honest(n) => {
            let texts: Vec<String> = (0..n).map(|_| format!("ok-{}", rng.next())).collect();
            let frames = texts.iter().map(|t| peer.frame(t.clone())).collect();
            let b = protocol::Signed::seal(&peer.key, peer.node, frames);
            (lines_of(&b.wire), texts, false)
        }
        Step::Flipped => {
            let f = peer.frame(format!("bad-{}", rng.next()));
            let b = protocol::Signed::seal(&peer.key, peer.node, vec![f]);
            let mut lines = lines_of(&b.wire);
            let line = &mut lines[1];
            // A byte of the text (after `MSG id member nick `), changed to another letter.
            let at = line.len() - 1 - rng.below(4) as usize;
            line[at] = if line[at] == b'x' { b'y' } else { b'x' };
            (lines, Vec::new(), true)
        }
        Step::Impostor(own) => {
            let node = if own { me } else { rng.next() };
            let f = Frame::Msg {
                id: MsgId { node, seq: 7 },
                from: MemberId::node(node),
                nick: "someone".into(),
                text: format!("bad-{}", rng.next()),
            };
            let mut body = Vec::new();
            protocol::encode(&f, &mut body);
            let sig = sign::sign_frames(&peer.key, node, &body);
            let b = protocol::Signed::assemble(node, &sig, vec![f], &body);
            // Our own id: dropped as our own come back, unshown, the connection kept. Another
            // node's, whose key we do not know: dropped, the connection kept.
            (lines_of(&b.wire), Vec::new(), false)
        }
        Step::Bare => {
            let f = peer.frame(format!("bad-{}", rng.next()));
            let mut line = Vec::new();
            protocol::encode(&f, &mut line);
            (lines_of(&line), Vec::new(), true)
        }
        Step::Garbage => {
            let line = match rng.below(3) {
                0 => b"SIGNED 0000000000000001 0 00".to_vec(),
                1 => format!("MSG bad-{}", rng.next()).into_bytes(),
                _ => b"\xff\xfe bad- junk".to_vec(),
            };
            (vec![line], Vec::new(), true)
        }
    }
}

#[test]
fn honest_bundles_show_once_and_nothing_forged_or_unsigned_is_ever_shown() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let now = Instant::now();
        let (mut chat, mut peer) = chat_with_peer(now);
        let me = node_id(0);
        let mut expected: Vec<String> = Vec::new();
        let mut shown: Vec<String> = Vec::new();
        let mut closed = false;
        for _ in 0..40 {
            let s = step(&mut rng);
            let (lines, texts, closes) = lines_for(&s, &mut peer, me, &mut rng);
            for l in &lines {
                chat.handle_line(3, l, now);
            }
            for a in drain(&mut chat) {
                match a {
                    Action::Show(Event::Message { text, .. }) => shown.push(text),
                    Action::Close { conn: 3, .. } => closed = true,
                    _ => {}
                }
            }
            if closed {
                assert!(closes, "seed {seed}: closed on an honest step");
                break;
            }
            assert!(
                !closes,
                "seed {seed}: a forgery did not close the connection"
            );
            expected.extend(texts);
        }
        assert_eq!(shown, expected, "seed {seed}");
        assert!(shown.iter().all(|t| t.starts_with("ok-")), "seed {seed}");
    }
}

#[test]
fn a_bundle_seen_whole_is_not_checked_again_and_a_repeat_is_harmless() {
    let now = Instant::now();
    let (mut chat, mut peer) = chat_with_peer(now);
    let f = peer.frame("once".into());
    let b = protocol::Signed::seal(&peer.key, peer.node, vec![f]);
    for _ in 0..3 {
        for l in lines_of(&b.wire) {
            chat.handle_line(3, &l, now);
        }
    }
    let shown: Vec<Action> = drain(&mut chat)
        .into_iter()
        .filter(|a| matches!(a, Action::Show(Event::Message { .. })))
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
}

/// A node's message carrying another nick than the one its node announced: shown under the
/// announced nick (only a signed NICK renames), to the user and to guests alike, so that
/// "alice" cannot speak as a "bob" she never became (nor skip the key remembered for bob).
#[test]
fn a_message_under_a_nick_never_announced_is_shown_under_the_announced_one() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let alice = FakeNode::new("alice", 100, None);
    alice.connect(
        &mut chat,
        3,
        accepted("127.0.0.1:4000".parse().unwrap()),
        now,
    );
    chat.handle_line(7, b"watching", now);
    drain(&mut chat);
    let forged = Frame::Msg {
        id: alice.id(5),
        from: alice.member(),
        nick: "bob".into(),
        text: "send me the file".into(),
    };
    alice.send(&mut chat, 3, vec![forged], now);
    let actions = drain(&mut chat);
    assert!(
        actions.contains(&Action::Show(Event::Message {
            from: "alice".into(),
            text: "send me the file".into()
        })),
        "{actions:#?}"
    );
    let to_guests: Vec<&Frame> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast { frame, .. } => Some(&**frame),
            _ => None,
        })
        .collect();
    assert!(
        to_guests
            .iter()
            .any(|f| matches!(f, Frame::Msg { nick, .. } if nick == "alice")),
        "{to_guests:#?}"
    );
    assert!(!to_guests
        .iter()
        .any(|f| matches!(f, Frame::Msg { nick, .. } if nick == "bob")));
}
