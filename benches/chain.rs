//! Relay benchmark: three real peerchat nodes in a chain on loopback, A - B - C (B dials A, C
//! dials B), a raw TCP guest on A sending as fast as A takes its lines, and a raw TCP guest on
//! C receiving them. Every message is sealed into a signed bundle by A, checked and passed on
//! by B, checked and shown to its guest by C: the cost of protocol 2's signatures on the path.
//!
//! It prints messages per second end to end (first sent to last received), how fast A took
//! them, messages lost (should be 0) and duplicated, each node's CPU time (all threads,
//! `/proc/PID/task/*/schedstat`) in seconds and per message, and each node's peak RSS. It
//! asserts nothing about speed. On a busy machine the rates fall with the CPU the nodes get;
//! the CPU per message holds up better.
//!
//! ```text
//! cargo bench --bench chain                 # 200 000 messages of 40 bytes
//! cargo bench --bench chain -- --scale 0.1  # a tenth of them
//! cargo bench --bench chain -- --repeat 3   # three runs, each printed
//! PEERCHAT_BIN=/path/to/peerchat cargo bench --bench chain   # another build as the nodes
//! ```
//!
//! The nodes run as the fan-out benchmark's hub does (`-l 127.0.0.1:0 -q --keep-open --nick
//! hub --rate-limit 0`: no flood limit for the sending guest), with `--max-peers 1` so that the
//! peer exchange does not add a link from C to A (B tells C where A listens) and turn the chain
//! into a triangle. Before the timed part a warm-up line is sent until one reaches C's guest:
//! the peers' hellos and C's wait for its silent guest's first line are not timed.

use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

// Shared with the other process benchmarks; this one needs no open-file limit raised.
#[allow(dead_code)]
mod common;
use common::{cpu_secs, peerchat_bin, start_peerchat_hub, status_field, Killed};

/// Messages sent in a run at `--scale 1`.
const MESSAGES: usize = 200_000;
/// Bytes of text per message (the sender's line less its newline).
const TEXT: usize = 40;
/// The warm-up gives up after this long: the chain did not form.
const WARM_MAX: Duration = Duration::from_secs(20);
/// A warm-up line is sent this often until one arrives.
const WARM_EVERY: Duration = Duration::from_millis(100);
/// The timed part ends when nothing has arrived for this long…
const QUIET_END: Duration = Duration::from_secs(3);
/// …or at the latest after this long.
const MAX_RUN: Duration = Duration::from_secs(40);

/// One message line: `#SEQ ` padded with `x` to [`TEXT`] bytes, then `\n`.
fn message(seq: u64) -> Vec<u8> {
    let mut line = format!("#{seq} ").into_bytes();
    line.resize(TEXT.max(line.len()), b'x');
    line.push(b'\n');
    line
}

/// The sequence number in a line a guest is shown (`<guest-1> #SEQ xxx`), if it has one.
fn seq_of(line: &[u8]) -> Option<u64> {
    let at = line.iter().position(|&b| b == b'#')?;
    let digits = line[at + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&line[at + 1..at + 1 + digits])
        .ok()?
        .parse()
        .ok()
}

/// The receiving guest: a connection and its unfinished line.
struct Receiver {
    stream: TcpStream,
    partial: Vec<u8>,
    buf: Vec<u8>,
}

impl Receiver {
    fn connect(port: u16) -> io::Result<Receiver> {
        let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
        stream.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(Receiver {
            stream,
            partial: Vec::new(),
            buf: vec![0; 256 * 1024],
        })
    }

    /// Reads once (waiting at most the read timeout) and hands `each` the sequence number of
    /// every whole line read. False when the node closed the connection.
    fn read(&mut self, mut each: impl FnMut(u64)) -> io::Result<bool> {
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e),
        };
        self.partial.extend_from_slice(&self.buf[..n]);
        let mut start = 0;
        while let Some(i) = self.partial[start..].iter().position(|&b| b == b'\n') {
            if let Some(seq) = seq_of(&self.partial[start..start + i]) {
                each(seq);
            }
            start += i + 1;
        }
        self.partial.drain(..start);
        Ok(true)
    }
}

/// The three nodes, killed when dropped.
struct Chain {
    nodes: [(Killed, u16); 3],
}

impl Chain {
    fn start() -> Result<Chain, String> {
        let a = start_peerchat_hub(&["--max-peers", "1"])?;
        let to_a = format!("127.0.0.1:{}", a.1);
        let b = start_peerchat_hub(&["--max-peers", "1", &to_a])?;
        let to_b = format!("127.0.0.1:{}", b.1);
        let c = start_peerchat_hub(&["--max-peers", "1", &to_b])?;
        Ok(Chain { nodes: [a, b, c] })
    }

    fn cpu(&self) -> [f64; 3] {
        self.nodes.each_ref().map(|(k, _)| cpu_secs(k.0.id()))
    }

    /// Each node's peak RSS in KiB.
    fn peak_rss(&self) -> [u64; 3] {
        self.nodes
            .each_ref()
            .map(|(k, _)| status_field(k.0.id(), "VmHWM:"))
    }
}

/// What one run measured.
struct Outcome {
    messages: usize,
    received: u64,
    duplicates: u64,
    /// From the first message written to the last one received.
    secs: f64,
    /// From the first message written to the last one A took.
    send_secs: f64,
    cpu: [f64; 3],
    peak_rss_kib: [u64; 3],
    /// Ended by [`MAX_RUN`]: what was still on its way counts as lost.
    timed_out: bool,
}

/// Sends warm-up lines on `sender` until one reaches `receiver`.
fn warm_up(sender: &mut TcpStream, receiver: &mut Receiver) -> Result<(), String> {
    let give_up = Instant::now() + WARM_MAX;
    let mut next_send = Instant::now();
    let mut warm = false;
    while !warm {
        let now = Instant::now();
        if now > give_up {
            return Err("the warm-up message never reached C's guest: no chain".into());
        }
        if now >= next_send {
            sender
                .write_all(&message(0))
                .map_err(|e| format!("A refused the sender: {e}"))?;
            next_send = now + WARM_EVERY;
        }
        let open = receiver
            .read(|seq| warm |= seq == 0)
            .map_err(|e| format!("C's guest: {e}"))?;
        if !open {
            return Err("C closed its guest during the warm-up".into());
        }
    }
    Ok(())
}

fn run(messages: usize) -> Result<Outcome, String> {
    let chain = Chain::start()?;
    let mut receiver =
        Receiver::connect(chain.nodes[2].1).map_err(|e| format!("guest on C: {e}"))?;
    let mut sender = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], chain.nodes[0].1)))
        .map_err(|e| format!("guest on A: {e}"))?;
    let _ = sender.set_nodelay(true);
    warm_up(&mut sender, &mut receiver)?;

    let cpu0 = chain.cpu();
    let handle = sender.try_clone().ok();
    let start = Instant::now();
    let send = thread::spawn(move || -> io::Result<Instant> {
        let mut w = BufWriter::with_capacity(64 * 1024, &mut sender);
        for seq in 1..=messages as u64 {
            w.write_all(&message(seq))?;
        }
        w.flush()?;
        Ok(Instant::now())
    });

    let mut got = vec![0u64; messages / 64 + 1];
    let (mut received, mut duplicates) = (0u64, 0u64);
    let mut last = start;
    let timed_out = loop {
        let before = received;
        let open = receiver
            .read(|seq| {
                let (w, bit) = ((seq / 64) as usize, seq % 64);
                let Some(word) = got.get_mut(w).filter(|_| seq > 0) else {
                    return;
                };
                if *word & (1 << bit) != 0 {
                    duplicates += 1;
                } else {
                    *word |= 1 << bit;
                    received += 1;
                }
            })
            .map_err(|e| format!("C's guest: {e}"))?;
        let now = Instant::now();
        if received > before {
            last = now;
        }
        let late = now - start > MAX_RUN;
        let done = received == messages as u64;
        if done || !open || now - last > QUIET_END || late {
            break late;
        }
    };
    let cpu1 = chain.cpu();
    if let Some(h) = handle {
        // Unblocks a sender that A stopped reading.
        let _ = h.shutdown(Shutdown::Both);
    }
    let sent_at = send.join().ok().and_then(Result::ok);
    Ok(Outcome {
        messages,
        received,
        duplicates,
        secs: last.duration_since(start).as_secs_f64().max(1e-9),
        send_secs: sent_at.map_or(f64::NAN, |t| t.duration_since(start).as_secs_f64()),
        cpu: [0, 1, 2].map(|i| cpu1[i] - cpu0[i]),
        peak_rss_kib: chain.peak_rss(),
        timed_out,
    })
}

fn print(o: &Outcome) {
    let lost = (o.messages as u64).saturating_sub(o.received);
    let rate = o.received as f64 / o.secs;
    println!(
        "  {:.1}k messages/s end to end ({} in {:.2} s); A took them at {:.1}k/s; \
         {lost} lost, {} duplicates",
        rate / 1e3,
        o.received,
        o.secs,
        o.messages as f64 / o.send_secs / 1e3,
        o.duplicates
    );
    let per = |cpu: f64| cpu / o.received.max(1) as f64 * 1e6;
    println!(
        "  CPU s: A {:.2}  B {:.2}  C {:.2}   (us per message: A {:.1}  B {:.1}  C {:.1})",
        o.cpu[0],
        o.cpu[1],
        o.cpu[2],
        per(o.cpu[0]),
        per(o.cpu[1]),
        per(o.cpu[2])
    );
    let [a, b, c] = o.peak_rss_kib;
    println!("  peak RSS KiB: A {a}  B {b}  C {c}");
    if o.timed_out {
        println!(
            "  stopped at the {} s limit: messages still on their way count as lost",
            MAX_RUN.as_secs()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let scale = value("--scale")
        .filter(|v| *v > 0.0 && *v <= 10.0)
        .unwrap_or(1.0);
    let repeat = value("--repeat")
        .filter(|v| (1.0..=20.0).contains(v))
        .map_or(1, |v| v as usize);
    let messages = ((MESSAGES as f64 * scale) as usize).max(1000);
    println!("peerchat binary: {}", peerchat_bin().to_string_lossy());
    println!(
        "chain A - B - C on loopback: a guest on A sends {messages} messages of {TEXT} bytes as \
         fast as A takes them; a guest on C receives them"
    );
    for _ in 0..repeat {
        match run(messages) {
            Ok(o) => print(&o),
            Err(why) => println!("  FAILED: {why}"),
        }
    }
}
