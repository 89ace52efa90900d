//! Decoder and encoder throughput: how many frames per second one core can split and build;
//! and the cost of signatures: Ed25519 signs and verifies per second, and sealing and checking
//! a full bundle (64 MSG frames of 40 bytes of text, as a node under load sends them).
//! Run: `cargo bench --bench protocol` (a few seconds). Prints figures; asserts nothing about
//! speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use peerchat::fanout::Log;
use peerchat::protocol::sign::{sign_frames, verify_frames};
use peerchat::protocol::{self, Frame, LineDecoder, MemberId, MsgId, Signed, MAX_BUNDLE_FRAMES};

/// How much CPU time each signature figure is measured for: long enough to be steady, short
/// enough that the whole benchmark stays quick (CI runs it).
const SIGN_TIME: Duration = Duration::from_millis(300);

fn main() {
    let text = "x".repeat(40);
    let frames: Vec<Frame> = (0..100_000u64)
        .map(|seq| Frame::Msg {
            id: MsgId { node: 0xfeed, seq },
            from: MemberId::node(0xfeed),
            nick: "alice".into(),
            text: text.clone(),
        })
        .collect();

    let start = Instant::now();
    let mut wire = Vec::new();
    for f in &frames {
        protocol::encode(f, &mut wire);
    }
    let enc = start.elapsed();

    let start = Instant::now();
    let mut parsed = 0usize;
    let mut dec = LineDecoder::default();
    for chunk in wire.chunks(16 * 1024) {
        dec.push(chunk);
        while let Ok(Some(line)) = dec.next_line() {
            let line = String::from_utf8_lossy(line);
            if protocol::parse_frame(&line).is_ok() {
                parsed += 1;
            }
        }
    }
    let dec_t = start.elapsed();
    assert_eq!(parsed, frames.len());

    // Appending to the shared log as a broadcast does, in both formats.
    let start = Instant::now();
    let mut log = Log::new();
    for f in &frames {
        black_box(log.append(f, [true, true]));
        if log.has_old_blocks() {
            log.trim([None, None]);
        }
    }
    let both = start.elapsed();
    let bytes = log.end()[0] + log.end()[1];

    let n = 100_000f64;
    println!(
        "frames: 100000 MSG of {} bytes on the wire",
        wire.len() / 100_000
    );
    println!(
        "encode (peer):        {:>8.2} M frames/s",
        n / enc.as_secs_f64() / 1e6
    );
    println!(
        "decode+parse (peer):  {:>8.2} M frames/s",
        n / dec_t.as_secs_f64() / 1e6
    );
    println!(
        "append, both formats: {:>8.2} M frames/s ({bytes} bytes)",
        n / both.as_secs_f64() / 1e6
    );
    signatures(&frames[..MAX_BUNDLE_FRAMES]);
}

/// CPU time of this thread: the signature figures are per CPU-second, so that other work on a
/// shared machine does not halve them.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `op` over and over for [`SIGN_TIME`] of CPU time; how many times per CPU-second it ran.
fn per_sec(mut op: impl FnMut()) -> f64 {
    let start = thread_cpu();
    let mut runs = 0u64;
    loop {
        for _ in 0..16 {
            op();
        }
        runs += 16;
        let spent = thread_cpu().saturating_sub(start);
        if spent >= SIGN_TIME {
            return runs as f64 / spent.as_secs_f64();
        }
    }
}

/// Ed25519 alone (one MSG line signed and checked), then whole bundles of `bundle`'s frames:
/// sealed by their origin, checked by a node that receives them (signature alone, and with the
/// parsing of its lines as a node does it).
fn signatures(bundle: &[Frame]) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let node = 0xfeed;
    let mut line = Vec::new();
    protocol::encode(&bundle[0], &mut line);
    let sig = sign_frames(&key, node, &line);
    assert!(verify_frames(&public, node, &line, &sig));
    let signs = per_sec(|| {
        black_box(sign_frames(&key, node, black_box(&line)));
    });
    let verifies = per_sec(|| {
        black_box(verify_frames(&public, node, black_box(&line), &sig));
    });

    let frames = bundle.len() as f64;
    let sealed = Signed::seal(&key, node, bundle.to_vec());
    // Sealing takes the frames by value, so each run copies them first (a node moves them):
    // a little more than the node pays.
    let seals = per_sec(|| {
        black_box(Signed::seal(&key, node, black_box(bundle.to_vec())));
    });
    // What a receiver checks: the frame lines after the head line.
    let head_end = sealed
        .wire
        .iter()
        .position(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let (head, lines) = sealed.wire.split_at(head_end);
    let head = String::from_utf8_lossy(&head[..head.len() - 1]).into_owned();
    let Ok(Frame::Bundle(h)) = protocol::parse_frame(&head) else {
        panic!("a sealed bundle's head does not parse: {head}");
    };
    assert!(verify_frames(&public, node, lines, &h.sig));
    let checks = per_sec(|| {
        black_box(verify_frames(&public, node, black_box(lines), &h.sig));
    });
    let received = per_sec(|| {
        let mut parsed = 0;
        for l in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let l = std::str::from_utf8(l).unwrap_or("");
            parsed += usize::from(protocol::parse_frame(l).is_ok());
        }
        black_box(parsed);
        black_box(verify_frames(&public, node, lines, &h.sig));
    });

    println!(
        "signatures (per CPU-second of one core, so that a busy machine does not halve them):"
    );
    println!("ed25519 sign (1 MSG): {:>8.1} k signs/s", signs / 1e3);
    println!("ed25519 verify:       {:>8.1} k verifies/s", verifies / 1e3);
    println!(
        "bundle: {} MSG frames, {} bytes on the wire",
        bundle.len(),
        sealed.wire.len()
    );
    println!(
        "seal (copy+enc+sign): {:>8.1} k bundles/s = {:.2} M messages/s",
        seals / 1e3,
        seals * frames / 1e6
    );
    println!(
        "verify bundle:        {:>8.1} k bundles/s = {:.2} M messages/s",
        checks / 1e3,
        checks * frames / 1e6
    );
    println!(
        "parse+verify bundle:  {:>8.1} k bundles/s = {:.2} M messages/s",
        received / 1e3,
        received * frames / 1e6
    );
}
