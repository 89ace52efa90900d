//! Decoder and encoder throughput: how many frames per second one core can split and build.
//! Run: `cargo bench --bench protocol`. Prints figures; asserts nothing about speed.

use std::hint::black_box;
use std::time::Instant;

use peerchat::fanout::Log;
use peerchat::protocol::{self, Frame, LineDecoder, MemberId, MsgId};

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
}
