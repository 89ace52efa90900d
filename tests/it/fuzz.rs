//! Property tests with random input, fuzzing without a fuzzer: the line decoder, the frame
//! parser and the chat core are fed bytes and frames from a seeded generator, valid, mutated
//! and random, signed and unsigned, and must never panic and keep their promises (every byte
//! kept and lines capped; frames that parse survive a round trip and show nothing unsafe to a
//! guest; no message shown twice; every bundle sent on carries its origin's good signature;
//! chat cores wired together, nothing lost, show every message at every other node exactly
//! once and in each sender's order, whatever the topology and interleaving). Each target runs for `PEERCHAT_FUZZ_SECS` seconds (default 2); a failure names the
//! seed, and `PEERCHAT_FUZZ_SEED=N` replays it.
//!
//! ```text
//! cargo test --release --test it fuzz::                           # 2 s a target
//! PEERCHAT_FUZZ_SECS=600 cargo test --release --test it fuzz::    # 10 min a target
//! PEERCHAT_FUZZ_SEED=1234 cargo test --release --test it fuzz::   # one seed
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use peerchat::chat::{Action, Chat, Config, Event, Link, Origin, Role};
use peerchat::protocol::sign::{self, Nonce};
use peerchat::protocol::{
    self, BundleHead, Frame, Hello, HistHead, LineDecoder, MemberId, MsgId, NodeId, NodeKey, Signed,
};
use peerchat::safe::is_unsafe;

/// xorshift64*: small, seedable, good enough to find edge cases.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Runs `case` on seed after seed for the time allowed (or on the one seed asked for); a panic
/// is reported with its seed.
fn fuzz(name: &str, case: impl Fn(&mut Rng)) {
    let secs = std::env::var("PEERCHAT_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0 && *v < 1e6)
        .unwrap_or(2.0);
    let one = std::env::var("PEERCHAT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut runs = 0u64;
    for seed in one.map_or(0..u64::MAX, |s| s..s + 1) {
        if one.is_none() && (Instant::now() >= end || seed >= 10_000_000) {
            break;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut Rng::new(seed))));
        if outcome.is_err() {
            panic!("{name}: failed with PEERCHAT_FUZZ_SEED={seed}");
        }
        runs += 1;
    }
    eprintln!("{name}: {runs} cases");
    assert!(runs > 0);
}

/// Bytes that tend to matter: newlines, CR, NUL, ESC, high bytes, bits of UTF-8, spaces.
fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    const SPICY: &[u8] = b"\n\r\0\x1b \xc3\xa7\xe2\x80\xae\xff\x9b:.-#<>*";
    (0..len)
        .map(|_| {
            if rng.chance(3) {
                *rng.pick(SPICY)
            } else {
                rng.below(256) as u8
            }
        })
        .collect()
}

#[test]
fn the_decoder_keeps_every_byte_and_caps_lines() {
    fuzz("decoder", |rng| {
        let max = 1 + rng.below(80) as usize;
        let len = rng.below(600) as usize;
        let input = random_bytes(rng, len);
        let mut dec = LineDecoder::new(max);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut at = 0;
        let mut overlong = false;
        'feed: while at < input.len() {
            let n = 1 + rng.below(64) as usize;
            let end = (at + n).min(input.len());
            dec.push(&input[at..end]);
            at = end;
            loop {
                match dec.next_line() {
                    Ok(Some(line)) => {
                        assert!(line.len() <= max, "a line over the cap");
                        got.push(line.to_vec());
                    }
                    Ok(None) => break,
                    Err(_) => {
                        overlong = true;
                        break 'feed;
                    }
                }
            }
        }
        // What was expected: every complete line, its CR before the newline dropped (the cap
        // counts it).
        let mut raw: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        // The unfinished last piece is kept as it is.
        let rest = raw.pop().unwrap_or_default().to_vec();
        let want: Vec<Vec<u8>> = raw
            .iter()
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .collect();
        if overlong {
            // Refused at the first line over the cap, every line before it given whole (or
            // at the unfinished one, once it is past the cap).
            let first_long = raw.iter().position(|l| l.len() > max);
            let until = first_long.unwrap_or(want.len());
            assert_eq!(got, want[..until].to_vec());
            assert!(first_long.is_some() || rest.len() > max);
        } else {
            assert_eq!(got, want);
            assert_eq!(dec.partial(), &rest[..]);
        }
    });
}

/// A node the fuzzer plays: its key, and the public key and run that give its node id.
struct Fake {
    key: SigningKey,
    id: NodeKey,
}

impl Fake {
    fn new(seed: u8) -> Fake {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let id = NodeKey {
            key: key.verifying_key(),
            run: [seed; 8],
        };
        Fake { key, id }
    }

    fn node(&self) -> NodeId {
        self.id.node()
    }

    /// Its hello line with `nonce`.
    fn hello(&self, nick: &str, nonce: Nonce) -> Vec<u8> {
        let hello = Frame::Hello(Hello {
            nick: nick.into(),
            node: self.node(),
            listen: Some(5001),
            key: self.id,
            nonce,
        });
        line_of(&hello)
    }

    /// `frames` as one bundle it signed, line by line.
    fn bundle(&self, frames: Vec<Frame>) -> Vec<Vec<u8>> {
        lines_of(&Frame::Signed(Rc::new(Signed::seal(
            &self.key,
            self.node(),
            frames,
        ))))
    }
}

/// The few nodes frames come from (few, so that ids collide and repeat).
fn fakes() -> &'static [Fake] {
    static FAKES: OnceLock<Vec<Fake>> = OnceLock::new();
    FAKES.get_or_init(|| (0..4).map(|i| Fake::new(0x10 + i)).collect())
}

fn fake(rng: &mut Rng) -> &'static Fake {
    rng.pick(fakes())
}

fn node(rng: &mut Rng) -> NodeId {
    fake(rng).node()
}

/// The peer encoding of `frame` (one line), without its newline.
fn line_of(frame: &Frame) -> Vec<u8> {
    let mut line = Vec::new();
    protocol::encode(frame, &mut line);
    line.pop();
    line
}

/// What a peer is sent for `frame`, line by line (a bundle is several; a bare flooded frame
/// none).
fn lines_of(frame: &Frame) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    protocol::encode_peer(frame, &mut bytes);
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn nick(rng: &mut Rng) -> String {
    rng.pick(&["ana", "bia", "caio", "guest-1", "x\u{202e}y", "é"])
        .to_string()
}

/// A frame as fake node `from` might originate it (a claim about another node, a connection's
/// own frames), its text from `text_of`.
fn random_frame(rng: &mut Rng, from: &Fake, text_of: &dyn Fn(MsgId) -> String) -> Frame {
    let id = MsgId {
        node: from.node(),
        seq: rng.below(50),
    };
    let member = MemberId {
        node: id.node,
        guest: if rng.chance(4) {
            1 + rng.below(3) as u32
        } else {
            0
        },
    };
    // A node's own announcement carries its key; a guest's none.
    let key = (member.guest == 0).then_some(from.id);
    let nick = nick(rng);
    match rng.below(15) {
        0 => Frame::Msg {
            id,
            from: member,
            nick,
            text: text_of(id),
        },
        1 => Frame::Me {
            id,
            from: member,
            nick,
            text: text_of(id),
        },
        2 => Frame::Dm {
            id,
            from: member,
            nick,
            to: MemberId::node(node(rng)),
            text: text_of(id),
        },
        3 => Frame::Join {
            id,
            member,
            nick,
            addr: Some("127.0.0.1:5000".into()),
            key,
        },
        4 => Frame::Here {
            id,
            member,
            nick,
            addr: None,
            key,
        },
        5 => Frame::Leave {
            id,
            member,
            nick,
            reason: Some("gone \x1b[31m".into()),
        },
        6 => Frame::Nick {
            id,
            member,
            old: nick,
            nick: "novo".into(),
        },
        7 => Frame::Lost {
            id,
            member: MemberId::node(node(rng)),
            nick,
            reason: Some("connection reset".into()),
        },
        8 => Frame::Peers(vec![(node(rng), "127.0.0.1:1".parse().expect("addr"))]),
        9 => Frame::Proof(sign::sign_proof(&from.key, "a", "b")),
        10 => Frame::Bundle(BundleHead {
            node: id.node,
            count: 1 + rng.below(64) as usize,
            sig: sign::sign_frames(&from.key, id.node, b"x\n"),
        }),
        11 => Frame::Ping,
        // A sealed DM that does not open anywhere: its text padded to a sealed message's size.
        12 => Frame::Sdm {
            id,
            from: member,
            nick,
            to: MemberId::node(node(rng)),
            sealed: {
                let mut b = text_of(id).into_bytes();
                b.resize(b.len().max(peerchat::protocol::seal::OVERHEAD), 0);
                b
            },
        },
        // A history head (in a chat, the bundle it names must follow).
        13 => Frame::HistHead(HistHead {
            at: rng.below(u64::MAX),
            from: rng.below(50),
            key: from.id,
        }),
        _ => Frame::Pong,
    }
}

/// Sometimes damages `bytes` (one line): a byte changed, cut short, or something else
/// entirely. True if it did.
fn damage(rng: &mut Rng, bytes: &mut Vec<u8>) -> bool {
    match rng.below(8) {
        0 if !bytes.is_empty() => {
            let i = rng.below(bytes.len() as u64) as usize;
            // Any byte but a newline: the decoder has split lines already.
            bytes[i] = (rng.below(255) as u8).wrapping_add(11);
        }
        1 => {
            let keep = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.truncate(keep);
        }
        2 => {
            let len = rng.below(40) as usize;
            *bytes = random_bytes(rng, len);
            bytes.retain(|&b| b != b'\n');
        }
        _ => return false,
    }
    true
}

/// A frame as a peer might send it: well-formed, or not quite.
fn frame_line(rng: &mut Rng, text_of: &dyn Fn(MsgId) -> String) -> String {
    let from = fake(rng);
    let mut bytes = line_of(&random_frame(rng, from, text_of));
    damage(rng, &mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn frames_parse_or_are_refused_and_round_trip() {
    fuzz("frames", |rng| {
        let line = frame_line(rng, &|id| format!("text {id} \x07\u{9b}"));
        let Ok(frame) = protocol::parse_frame(&line) else {
            return;
        };
        let mut again = Vec::new();
        protocol::encode(&frame, &mut again);
        let again = String::from_utf8(again).expect("encodings are UTF-8");
        let reparsed = protocol::parse_frame(again.trim_end_matches('\n'));
        assert_eq!(reparsed.as_ref(), Ok(&frame), "{line:?} -> {again:?}");
        // What a guest would be shown of it is one safe line.
        let mut shown = Vec::new();
        protocol::encode_guest(&frame, &mut shown);
        let shown = String::from_utf8(shown).expect("guest lines are UTF-8");
        let body = shown.strip_suffix('\n').unwrap_or(&shown);
        assert!(!body.chars().any(is_unsafe), "{body:?}");
    });
}

/// A 64-bit mix of an id: one changed byte cannot turn one message's text into another's.
fn check(id: MsgId) -> u64 {
    let mut h = id.node ^ id.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 29)
}

/// True for the whole, undamaged text of a generated message.
fn intact(text: &str) -> bool {
    let mut words = text.split(' ');
    let (Some("m"), Some(id), Some(sum), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    let Some((node, seq)) = id.split_once(':') else {
        return false;
    };
    let (Ok(node), Ok(seq)) = (u64::from_str_radix(node, 16), seq.parse::<u64>()) else {
        return false;
    };
    format!("{:016x}", check(MsgId { node, seq })) == sum
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The lines a peer on a connection sends next: a frame of its own kind, or flooded frames
/// from one node, signed in a bundle by that node's key (or by another's, or damaged after
/// signing), or bare as no node of this version sends them.
fn peer_lines(rng: &mut Rng, text_of: &dyn Fn(MsgId) -> String) -> Vec<Vec<u8>> {
    let from = fake(rng);
    let frame = random_frame(rng, from, text_of);
    if frame.id().is_none() || rng.chance(6) {
        let mut line = line_of(&frame);
        damage(rng, &mut line);
        return vec![line];
    }
    let mut frames = vec![frame];
    while rng.chance(2) && frames.len() < 4 {
        let more = random_frame(rng, from, text_of);
        if more.id().is_some() {
            frames.push(more);
        }
    }
    let mut lines = match rng.below(6) {
        // Signed with the key of another node.
        0 => {
            let other = fake(rng);
            lines_of(&Frame::Signed(Rc::new(Signed::seal(
                &other.key,
                from.node(),
                frames,
            ))))
        }
        _ => from.bundle(frames),
    };
    if rng.chance(5) {
        let i = rng.below(lines.len() as u64) as usize;
        damage(rng, &mut lines[i]);
    }
    lines
}

/// Checks what the chat sends (`frame`): lines that parse back, and bundles whose signature
/// is good by the key of the node they name (`keys`).
fn check_sent(frame: &Frame, keys: &HashMap<NodeId, NodeKey>) {
    if let Frame::Signed(b) = frame {
        let key = keys.get(&b.node).expect("a bundle from a node we know");
        let lines = b.wire.splitn(2, |&c| c == b'\n').nth(1).unwrap_or_default();
        let Frame::Bundle(head) = protocol::parse_frame(
            std::str::from_utf8(b.wire.split(|&c| c == b'\n').next().unwrap_or_default())
                .expect("UTF-8"),
        )
        .expect("a bundle head") else {
            panic!("not a bundle head");
        };
        assert_eq!((head.node, head.count), (b.node, b.frames.len()));
        assert!(
            sign::verify_frames(&key.key, b.node, lines, &head.sig),
            "sent a bundle whose signature is bad"
        );
        assert!(b
            .frames
            .iter()
            .all(|f| f.id().is_some_and(|id| id.node == b.node)));
    }
    if matches!(frame, Frame::Hello(_)) {
        return;
    }
    // As a peer is sent it (a flooded frame alone is for guests only: nothing here).
    for line in lines_of(frame) {
        let text = String::from_utf8_lossy(&line);
        assert!(
            protocol::parse_frame(&text).is_ok(),
            "sent a frame that does not parse: {text:?}"
        );
    }
}

#[test]
fn the_chat_core_shows_each_message_once_whatever_it_is_fed() {
    fuzz("chat core", |rng| {
        let start = Instant::now();
        let mut now = start;
        let hub = Fake::new(0x20);
        let mut chat = Chat::new(
            Config::new("hub".into(), hub.key.clone(), hub.id.run, Some(5000)),
            now,
        );
        let mut keys: HashMap<NodeId, NodeKey> = fakes().iter().map(|f| (f.node(), f.id)).collect();
        keys.insert(hub.node(), hub.id);
        // The text of a message names its id and a check of it, so a message shown twice is
        // seen, and a damaged or cut one is not counted.
        let text_of = |id: MsgId| format!("m {id} {:016x}", check(id));
        let mut shown: HashMap<String, u32> = HashMap::new();
        let mut open: Vec<usize> = Vec::new();
        let mut next_conn = 1;
        let trace = std::env::var_os("PEERCHAT_FUZZ_TRACE").is_some();
        for _ in 0..200 {
            match rng.below(12) {
                // A new connection: a peer (its hello, then its proof, or not quite), or a
                // guest.
                0 => {
                    let k = next_conn;
                    next_conn += 1;
                    let link = Link {
                        addr: addr(40_000 + k as u16),
                        local: addr(5000),
                        origin: Origin::Accepted,
                    };
                    let sent = line_of(&chat.hello([k as u8; 16]));
                    let sent = String::from_utf8(sent).expect("UTF-8");
                    chat.handle_opened(k, link, sent.clone(), now);
                    if rng.chance(3) {
                        chat.handle_line(k, b"a guest says hi", now);
                    } else {
                        let peer = fake(rng);
                        let own = peer.hello(&nick(rng), [rng.below(256) as u8; 16]);
                        chat.handle_line(k, &own, now);
                        let own = String::from_utf8_lossy(&own).into_owned();
                        let proof = match rng.below(6) {
                            // Made for another connection.
                            0 => sign::sign_proof(&peer.key, &own, "another hello"),
                            // Made by another key.
                            1 => sign::sign_proof(&fake(rng).key, &own, &sent),
                            _ => sign::sign_proof(&peer.key, &own, &sent),
                        };
                        if !rng.chance(8) {
                            chat.handle_line(k, &line_of(&Frame::Proof(proof)), now);
                        }
                    }
                    open.push(k);
                }
                // Time passes.
                1 => {
                    now += Duration::from_millis(rng.below(20_000));
                    chat.handle_tick(now);
                }
                // A connection goes.
                2 if !open.is_empty() => {
                    let i = rng.below(open.len() as u64) as usize;
                    let k = open.swap_remove(i);
                    chat.handle_closed(k, Some("connection reset".into()));
                }
                // The local user types.
                3 => {
                    let typed: &[&str] = &[
                        "hello",
                        "/names",
                        "/me waves",
                        "/nick zé",
                        "/msg ana psst",
                        "",
                    ];
                    let line = *rng.pick(typed);
                    chat.handle_input(line, now);
                }
                // Lines on some connection.
                _ if !open.is_empty() => {
                    let k = *rng.pick(&open);
                    for line in peer_lines(rng, &text_of) {
                        if trace {
                            eprintln!("conn {k}: {:?}", String::from_utf8_lossy(&line));
                        }
                        chat.handle_line(k, &line, now);
                    }
                }
                _ => {}
            }
            while let Some(action) = chat.poll_action() {
                if trace {
                    eprintln!("  -> {action:?}");
                }
                match action {
                    Action::Show(Event::Message { text, .. })
                    | Action::Show(Event::Me { text, .. })
                        if intact(&text) =>
                    {
                        *shown.entry(text).or_default() += 1;
                    }
                    Action::Close { conn, reason } => {
                        open.retain(|&k| k != conn);
                        chat.handle_closed(conn, Some(reason));
                    }
                    Action::Retire { conn } => {
                        open.retain(|&k| k != conn);
                        chat.handle_closed(conn, None);
                    }
                    Action::Broadcast { frame, .. } | Action::Send { frame, .. } => {
                        let frame: Rc<Frame> = frame;
                        check_sent(&frame, &keys);
                    }
                    _ => {}
                }
            }
        }
        for (text, n) in &shown {
            assert_eq!(*n, 1, "{text:?} shown {n} times");
        }
        // Memory stays bounded by what exists: the roster holds at most the members the input
        // could name (4 nodes with 4 guests each, our guests, ourselves), whatever it said.
        if !chat.is_quitting() {
            chat.handle_input("/names", now);
            let names = std::iter::from_fn(|| chat.poll_action()).find_map(|a| match a {
                Action::Show(Event::Names(list)) => Some(list.len()),
                _ => None,
            });
            let most = 4 * 4 + next_conn + 1;
            assert!(
                names.is_some_and(|n| n <= most),
                "{names:?} members, at most {most}"
            );
        }
    });
}

/// A few chat cores wired in memory, each link a pair of ordered queues of lines (what TCP
/// gives), nothing lost or damaged. Which queue moves next, and when a node types, is up to the
/// fuzzer.
struct Wired {
    nodes: Vec<Chat>,
    /// The lines in flight from end `(node, conn)` to the other end of that link, in order.
    queues: HashMap<(usize, usize), VecDeque<Vec<u8>>>,
    /// Ends whose node has made them a peer; frames for the others wait in `held`, as the
    /// reactor holds them until the role is known.
    peers: HashSet<(usize, usize)>,
    held: HashMap<(usize, usize), Vec<Rc<Frame>>>,
    /// Messages and actions (`/me`) each node showed, as (from, text), in the order shown.
    shown: Vec<Vec<(String, String)>>,
}

/// Node `i`'s address; every node listens on port 5000.
fn wired_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], port))
}

impl Wired {
    fn new(n: usize, now: Instant) -> Wired {
        let nodes = (0..n)
            .map(|i| {
                let seed = 0x30 + i as u8;
                let key = SigningKey::from_bytes(&[seed; 32]);
                let cfg = Config::new(format!("n{i}"), key, [seed; 8], Some(5000));
                Chat::new(cfg, now)
            })
            .collect();
        Wired {
            nodes,
            queues: HashMap::new(),
            peers: HashSet::new(),
            held: HashMap::new(),
            shown: vec![Vec::new(); n],
        }
    }

    /// `b` dials `a`, which accepts; both send their hello. On each node the connection's id
    /// is the other node's index, as there is one link per pair.
    fn link(&mut self, a: usize, b: usize, now: Instant) {
        let port = 40_000 + a as u16;
        let accepted = Link {
            addr: wired_addr(b, port),
            local: wired_addr(a, 5000),
            origin: Origin::Accepted,
        };
        let dialled = Link {
            addr: wired_addr(a, 5000),
            local: wired_addr(b, port),
            origin: Origin::Dialled,
        };
        // Each end's hello goes first on the link, with a nonce of its own.
        let hello_a = line_of(&self.nodes[a].hello([b as u8; 16]));
        let hello_b = line_of(&self.nodes[b].hello([0x80 | a as u8; 16]));
        let text = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
        self.nodes[a].handle_opened(b, accepted, text(&hello_a), now);
        self.nodes[b].handle_opened(a, dialled, text(&hello_b), now);
        for (x, y, hello) in [(a, b, hello_a), (b, a, hello_b)] {
            self.queues.insert((x, y), VecDeque::from([hello]));
        }
    }

    /// Lines from end `(from, conn)` onto its link.
    fn push(&mut self, from: usize, conn: usize, lines: Vec<Vec<u8>>) {
        if let Some(q) = self.queues.get_mut(&(from, conn)) {
            q.extend(lines);
        }
    }

    /// `frame` from end `(from, conn)`: sent as a peer is sent it once that end is a peer.
    fn send(&mut self, from: usize, conn: usize, frame: Rc<Frame>) {
        if self.peers.contains(&(from, conn)) {
            self.push(from, conn, lines_of(&frame));
        } else {
            self.held.entry((from, conn)).or_default().push(frame);
        }
    }

    /// Carries out node `i`'s actions. Nothing here is damaged, so nothing may be closed.
    fn apply(&mut self, i: usize, now: Instant) {
        while let Some(action) = self.nodes[i].poll_action() {
            match action {
                Action::Broadcast { except, frame } => {
                    let mut ends: Vec<usize> = self
                        .queues
                        .keys()
                        .filter(|&&(n, c)| n == i && Some(c) != except)
                        .map(|&(_, c)| c)
                        .collect();
                    ends.sort_unstable();
                    for c in ends {
                        self.send(i, c, frame.clone());
                    }
                }
                Action::Send { conn, frame } => self.send(i, conn, frame),
                Action::SendFirst { conn, line } => self.push(i, conn, vec![line.into_bytes()]),
                Action::Classify { conn, role } => {
                    assert_eq!(role, Role::Peer, "n{i} took n{conn} for a guest");
                    self.peers.insert((i, conn));
                    for frame in self.held.remove(&(i, conn)).unwrap_or_default() {
                        self.send(i, conn, frame);
                    }
                }
                Action::Show(Event::Message { from, text } | Event::Me { from, text }) => {
                    self.shown[i].push((from, text))
                }
                // Only the links made here exist: a dial the chat asks for fails.
                Action::Dial(addr) => self.nodes[i].handle_dial_failed(addr, now),
                Action::Close { conn, reason } => {
                    panic!("n{i} closed its link to n{conn} ({reason}) though nothing was wrong")
                }
                Action::Retire { conn } | Action::Refused { conn, .. } => {
                    panic!("n{i} dropped its link to n{conn} though nothing was wrong")
                }
                _ => {}
            }
        }
    }

    /// Moves one line along a link chosen by `rng`; false when every queue is empty.
    fn step(&mut self, rng: &mut Rng, now: Instant) -> bool {
        let mut busy: Vec<(usize, usize)> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(&end, _)| end)
            .collect();
        if busy.is_empty() {
            return false;
        }
        busy.sort_unstable();
        let (from, to) = *rng.pick(&busy);
        let Some(line) = self
            .queues
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return false;
        };
        self.nodes[to].handle_line(from, &line, now);
        self.apply(to, now);
        true
    }

    /// Delivers everything in flight, in a random order across links.
    fn settle(&mut self, rng: &mut Rng, now: Instant) {
        for _ in 0..1_000_000 {
            if !self.step(rng, now) {
                return;
            }
        }
        panic!("the network never went quiet");
    }
}

/// The promise behind "exactly once, in the order sent": over any connected group of nodes with
/// every link up and nothing damaged, each message is shown at every other node at least once,
/// at most once, and each sender's messages in the order typed, however the links interleave.
#[test]
fn chat_cores_wired_together_show_every_message_exactly_once_in_order() {
    fuzz("wired chat cores", |rng| {
        let now = Instant::now();
        let n = 2 + rng.below(4) as usize;
        let mut net = Wired::new(n, now);
        // Connected: a random tree, then a few more links (rings, meshes).
        for b in 1..n {
            let a = rng.below(b as u64) as usize;
            net.link(a, b, now);
        }
        for b in 1..n {
            for a in 0..b {
                if !net.queues.contains_key(&(a, b)) && rng.chance(3) {
                    net.link(a, b, now);
                }
            }
        }
        net.settle(rng, now);
        // Typing interleaved with delivery: some lines are in flight when the next are typed.
        let per_node = 1 + rng.below(12) as usize;
        let mut typed = vec![0usize; n];
        while typed.iter().any(|&t| t < per_node) {
            if rng.chance(2) && net.step(rng, now) {
                continue;
            }
            let i = rng.below(n as u64) as usize;
            if typed[i] < per_node {
                let action = if rng.chance(4) { "/me " } else { "" };
                net.nodes[i].handle_input(&format!("{action}m {} from n{i}", typed[i]), now);
                net.apply(i, now);
                typed[i] += 1;
            }
        }
        net.settle(rng, now);
        for (r, shown) in net.shown.iter().enumerate() {
            for s in (0..n).filter(|&s| s != r) {
                let from = format!("n{s}");
                let got: Vec<&str> = shown
                    .iter()
                    .filter(|(f, _)| *f == from)
                    .map(|(_, t)| t.as_str())
                    .collect();
                let want: Vec<String> = (0..per_node)
                    .map(|k| format!("m {k} from {from}"))
                    .collect();
                assert_eq!(got, want, "at n{r}, from {from}, over {n} nodes");
            }
        }
    });
}
