//! Property tests with random input, fuzzing without a fuzzer: the line decoder, the frame
//! parser and the chat core are fed bytes and frames from a seeded generator, valid, mutated
//! and random, and must never panic and keep their promises (every byte kept and lines capped;
//! frames that parse survive a round trip and show nothing unsafe to a guest; no message shown
//! twice). Each target runs for `PEERCHAT_FUZZ_SECS` seconds (default 2); a failure names the
//! seed, and `PEERCHAT_FUZZ_SEED=N` replays it.
//!
//! ```text
//! cargo test --release --test it fuzz::                           # 2 s a target
//! PEERCHAT_FUZZ_SECS=600 cargo test --release --test it fuzz::    # 10 min a target
//! PEERCHAT_FUZZ_SEED=1234 cargo test --release --test it fuzz::   # one seed
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use peerchat::chat::{Action, Chat, Config, Event, Link, Origin};
use peerchat::protocol::{self, Frame, Hello, LineDecoder, MemberId, MsgId};
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

fn node(rng: &mut Rng) -> u64 {
    // Few nodes, so that ids collide and repeat.
    0x1000_0000_0000_0000 + rng.below(4)
}

fn nick(rng: &mut Rng) -> String {
    rng.pick(&["ana", "bia", "caio", "guest-1", "x\u{202e}y", "é"])
        .to_string()
}

/// A frame as a peer might send it: well-formed, or not quite.
fn frame_line(rng: &mut Rng, text_of: &dyn Fn(MsgId) -> String) -> String {
    // Decided first: a damaged frame does not carry a countable text (a changed id with the
    // text of another would be a different message with the same words).
    let damage = rng.below(8);
    let text_of = |id| {
        if damage < 3 {
            "damaged".to_string()
        } else {
            text_of(id)
        }
    };
    let id = MsgId {
        node: node(rng),
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
    let nick = nick(rng);
    let frame = match rng.below(10) {
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
        },
        4 => Frame::Here {
            id,
            member,
            nick,
            addr: None,
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
        7 => Frame::Peers(vec![(node(rng), "127.0.0.1:1".parse().expect("addr"))]),
        8 => Frame::Ping,
        _ => Frame::Pong,
    };
    let mut bytes = Vec::new();
    protocol::encode(&frame, &mut bytes);
    bytes.pop();
    // Sometimes damaged: a byte changed, cut short, or something else entirely.
    match damage {
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
            bytes = random_bytes(rng, len);
            bytes.retain(|&b| b != b'\n');
        }
        _ => {}
    }
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

#[test]
fn the_chat_core_shows_each_message_once_whatever_it_is_fed() {
    fuzz("chat core", |rng| {
        let me = 0x2000_0000_0000_0000;
        let start = Instant::now();
        let mut now = start;
        let mut chat = Chat::new(Config::new("hub".into(), me, Some(5000)), now);
        // The text of a message names its id and a check of it, so a message shown twice is
        // seen, and a damaged or cut one is not counted.
        let text_of = |id: MsgId| format!("m {id} {:016x}", check(id));
        let mut shown: HashMap<String, u32> = HashMap::new();
        let mut open: Vec<usize> = Vec::new();
        let mut next_conn = 1;
        let trace = std::env::var_os("PEERCHAT_FUZZ_TRACE").is_some();
        for _ in 0..200 {
            match rng.below(12) {
                // A new connection: a peer (its hello first), or a guest.
                0 => {
                    let k = next_conn;
                    next_conn += 1;
                    let link = Link {
                        addr: addr(40_000 + k as u16),
                        local: addr(5000),
                        origin: Origin::Accepted,
                    };
                    chat.handle_opened(k, link, now);
                    if rng.chance(3) {
                        chat.handle_line(k, b"a guest says hi", now);
                    } else {
                        let hello = Frame::Hello(Hello {
                            nick: nick(rng),
                            node: node(rng),
                            listen: Some(5001),
                        });
                        let mut line = Vec::new();
                        protocol::encode(&hello, &mut line);
                        line.pop();
                        chat.handle_line(k, &line, now);
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
                    chat.handle_input(line);
                }
                // A line on some connection.
                _ if !open.is_empty() => {
                    let k = *rng.pick(&open);
                    let line = frame_line(rng, &text_of);
                    if trace {
                        eprintln!("conn {k}: {line:?}");
                    }
                    chat.handle_line(k, line.as_bytes(), now);
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
                    Action::Broadcast { frame, .. } | Action::Send { frame, .. } => {
                        // What goes out must be a frame that parses back.
                        let frame: Rc<Frame> = frame;
                        if !matches!(*frame, Frame::Hello(_)) {
                            let mut out = Vec::new();
                            protocol::encode(&frame, &mut out);
                            let text = String::from_utf8_lossy(&out);
                            assert!(
                                protocol::parse_frame(text.trim_end_matches('\n')).is_ok(),
                                "sent a frame that does not parse: {text:?}"
                            );
                        }
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
            chat.handle_input("/names");
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
