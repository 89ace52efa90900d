//! Fan-out benchmark: one sender and N raw TCP receivers on loopback, through a hub — peerchat
//! (`-l 127.0.0.1:0 -q --keep-open`) and, when it is installed, `ncat --chat`, in the same run.
//!
//! For each scenario and hub it prints deliveries per second, hub CPU time per delivery (from
//! `/proc/PID/task/*/schedstat`), latency from send to receipt (p50, p99, max), messages lost, and the hub's
//! peak RSS (`VmHWM`), then the ratio peerchat/ncat.
//!
//! ```text
//! cargo bench --bench fanout                  # every scenario (a few minutes)
//! cargo bench --bench fanout -- --quick       # the small ones
//! cargo bench --bench fanout -- --only burst-64B-N200 --no-ncat
//! cargo bench --bench fanout -- --only burst-64B-N10 --scale 10   # ten times the messages
//! cargo bench --bench fanout -- --repeat 5    # five runs each, hubs taking turns; medians
//! PEERCHAT_BIN=/path/to/peerchat cargo bench --bench fanout -- --no-ncat --repeat 3
//! # a private group: plain guests, plain peers, then encrypted peers, as receivers; and 1000
//! # peers joining
//! cargo bench --bench fanout -- --no-ncat --repeat 3 --only \
//!     burst-64B-N200,burst-64B-N200-peer,burst-64B-N200-enc,handshake-N1000
//! cargo bench --bench fanout -- --no-ncat --repeat 3 --only \
//!     paced-1000/s-64B-N200,paced-1000/s-64B-N200-peer,paced-1000/s-64B-N200-enc
//! ```
//!
//! `--only` takes one scenario's name or several, separated by commas. A scenario whose name
//! ends in `-peer` is its plain twin with peers for receivers: each is a peer built from
//! peerchat's own code (`common/peer.rs`: a hello and its proof, pings answered, `MSG` frames
//! read for their text) in plain text. One that ends in `-enc` has the same peers encrypted:
//! the hub runs a private group (`--secret-file` in a 0600 file of a temporary folder,
//! `--allow-guests` so that the sender stays a plain guest), and each peer runs the Noise
//! handshake of `link::noise` first and decrypts records. The group's key is derived once per
//! run. When the twins ran before it in the same run, the ratios encrypted/plain-guest and
//! encrypted/plain-peer follow its rows (per-cpu, p99, rate), and peer/guest follows the plain
//! peers' rows: what being a peer costs the hub apart from encryption. `handshake-N1000` times 1000 encrypted peers dialling the hub at once:
//! from the first connect until the hub has welcomed every one (each peer's first signed
//! bundle after its proof), handshakes a second and the hub's CPU per peer; it gives up after
//! a minute. Neither ncat, which has no private groups, nor the N=5000 and N=10000 scenarios
//! have encrypted twins.
//!
//! `PEERCHAT_BIN` names the peerchat binary to measure (default: the one cargo built with this
//! benchmark), so that two builds — a release binary of an older commit kept aside, and the
//! current one — run the very same scenarios, one run of the benchmark per binary. The first
//! line printed names the binary. This process raises its own open-file limit to the hard one
//! for the N=5000 and N=10000 scenarios (the hub raises its own); a scenario the limit cannot
//! hold is skipped, and says so.
//!
//! Each message is one line `#SEQ:NANOS:` padded to its size; a hub prefixes it with the sender's
//! name, and receivers find the `#`. NANOS is the send time on a clock shared by the sender and
//! the receivers (one process), so latency needs no clock sync. Receivers never send: to the hub
//! they are silent guests (encrypted peers only say their hello, prove it and answer pings).
//! Before the timed part, a warm-up message (sequence 0) must reach every receiver, so
//! connection set-up (peerchat's wait for a silent guest's first line, an encrypted peer's
//! joining) is not timed.

use std::collections::HashMap;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

mod common;
use common::{cpu_secs, peerchat_bin, raise_fd_limit, start_peerchat_hub, status_field, Killed};
// Only this benchmark has encrypted peers; the others that share `common` do not compile it.
#[path = "common/peer.rs"]
mod peer;
use peer::{Group, Peer, PeerKeys, Stage};

/// Past this many receivers ncat is not run: it stops accepting near 1000 connections, and
/// waiting for the connects that time out takes minutes. (N=1000 still shows that.)
const NCAT_MAX: usize = 1000;

/// A run ends when every healthy receiver has everything, or nothing arrives for this long.
const QUIET_END: Duration = Duration::from_secs(3);

/// And at the latest after this long.
const MAX_RUN: Duration = Duration::from_secs(120);

/// Encrypted receivers must all have joined within this long (1000 at once take seconds).
const MAX_JOIN: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hub {
    Peerchat,
    Ncat,
}

impl Hub {
    fn name(self) -> &'static str {
        match self {
            Hub::Peerchat => "peerchat",
            Hub::Ncat => "ncat",
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    /// Receivers.
    n: usize,
    /// Bytes per message line, newline included (before the hub's prefix).
    size: usize,
    /// Messages per second, or as fast as possible.
    pace: Option<u32>,
    messages: usize,
    /// One more receiver that never reads.
    stalled: bool,
    /// Only connect and measure memory; send nothing but the warm-up.
    idle: bool,
    /// Who receives: guests, peers, or encrypted peers of a private group (see `peer.rs`).
    receivers: Receivers,
    /// Only time the receivers' joining (encrypted peers, all at once); send nothing.
    handshake: bool,
}

/// Who the receivers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receivers {
    /// Silent guests in plain text.
    Guests,
    /// Peers in plain text (`NAME-peer`).
    Peers,
    /// Peers of a private group, through Noise links (`NAME-enc`).
    EncPeers,
}

impl Receivers {
    /// What the scenario's name ends in.
    fn suffix(self) -> &'static str {
        match self {
            Receivers::Guests => "",
            Receivers::Peers => "-peer",
            Receivers::EncPeers => "-enc",
        }
    }
}

impl Scenario {
    /// The same scenario (one of guests) with `receivers` (`NAME-peer`, `NAME-enc`).
    fn with(&self, receivers: Receivers) -> Scenario {
        Scenario {
            name: format!("{}{}", self.name, receivers.suffix()),
            receivers,
            ..self.clone()
        }
    }

    fn peers(&self) -> bool {
        self.receivers != Receivers::Guests
    }

    fn enc(&self) -> bool {
        self.receivers == Receivers::EncPeers
    }
}

fn burst(n: usize, size: usize, scale: f64) -> Scenario {
    // About five million deliveries (times --scale), within sane bounds.
    let messages = ((5_000_000.0 * scale) as usize / n).clamp(400, 2_000_000);
    Scenario {
        name: format!("burst-{}-N{n}", size_name(size)),
        n,
        size,
        pace: None,
        messages,
        stalled: false,
        idle: false,
        receivers: Receivers::Guests,
        handshake: false,
    }
}

/// Paced at 1000 messages a second, 64 B each.
fn paced(n: usize) -> Scenario {
    Scenario {
        name: format!("paced-1000/s-64B-N{n}"),
        n,
        size: 64,
        pace: Some(1000),
        messages: 10_000,
        stalled: false,
        idle: false,
        receivers: Receivers::Guests,
        handshake: false,
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

fn scenarios(quick: bool, scale: f64) -> Vec<Scenario> {
    let mut all = vec![
        burst(10, 64, scale),
        burst(100, 64, scale),
        burst(200, 64, scale),
        burst(1000, 64, scale),
    ];
    if !quick {
        all.push(burst(5000, 64, scale));
        all.push(burst(10_000, 64, scale));
    }
    all.extend([burst(100, 1024, scale), burst(1000, 1024, scale)]);
    for n in [100, 1000] {
        if quick && n > 100 {
            continue;
        }
        all.push(paced(n));
    }
    // Enough bytes (12.8 MB) that a reader who never reads overflows any per-connection cap
    // and the kernel's socket buffers.
    let stalled_messages = 200_000;
    for stalled in [false, true] {
        all.push(Scenario {
            name: format!("burst-64B-N50{}", if stalled { "+stalled" } else { "" }),
            n: 50,
            size: 64,
            pace: None,
            messages: stalled_messages,
            stalled,
            idle: false,
            receivers: Receivers::Guests,
            handshake: false,
        });
    }
    let idle = Scenario {
        name: "idle-N1000".into(),
        n: 1000,
        size: 64,
        pace: None,
        messages: 0,
        stalled: false,
        idle: true,
        receivers: Receivers::Guests,
        handshake: false,
    };
    all.push(idle.clone());
    // A private group: the plain scenario, the same with plain peers, then with encrypted
    // peers for receivers, in one run, so that the ratios compare like with like.
    for plain in [burst(200, 64, scale), paced(200)] {
        all.push(plain.with(Receivers::Peers));
        all.push(plain.with(Receivers::EncPeers));
        if !all.iter().any(|s| s.name == plain.name) {
            all.insert(all.len() - 2, plain);
        }
    }
    all.push(Scenario {
        name: "handshake-N1000".into(),
        handshake: true,
        idle: false,
        ..idle.with(Receivers::EncPeers)
    });
    all
}

/// Latencies in microseconds, in log-linear buckets (16 per power of two), with the exact max.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; 64 + 60 * 16],
            total: 0,
            max: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us < 64 {
            return us as usize;
        }
        let bits = 63 - u64::from(us.leading_zeros());
        let sub = (us >> (bits - 4)) & 15;
        64 + (bits as usize - 6) * 16 + sub as usize
    }

    /// The smallest value of bucket `i`.
    fn low(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let bits = (i - 64) / 16 + 6;
        let sub = ((i - 64) % 16) as u64;
        (1 << bits) | (sub << (bits - 4))
    }

    fn record(&mut self, us: u64) {
        let i = Self::bucket(us).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    fn percentile(&self, p: f64) -> u64 {
        let want = ((self.total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return Self::low(i);
            }
        }
        self.max
    }
}

/// What one hub did in one scenario.
#[derive(Default)]
struct Outcome {
    failed: Option<String>,
    deliveries: u64,
    expected: u64,
    duplicates: u64,
    secs: f64,
    cpu_secs: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    peak_rss_kib: u64,
    rss_kib: u64,
    /// For the stalled scenario: whether the hub closed the reader that never read.
    stalled_cut: Option<bool>,
    /// Encrypted receivers: seconds from the first connect until the hub had welcomed all of
    /// them, and the hub's CPU-seconds in that time.
    joined: Option<(f64, f64)>,
}

/// A hub; killed when dropped.
struct Running {
    child: Killed,
    port: u16,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `hub`; a peerchat hub of a private group when `group` is given.
fn start_hub(hub: Hub, group: Option<&Group>) -> Result<Running, String> {
    match hub {
        Hub::Peerchat => {
            let args = group.map(Group::hub_args).unwrap_or_default();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (child, port) = start_peerchat_hub(&args)?;
            Ok(Running { child, port })
        }
        Hub::Ncat => {
            let port = free_port().map_err(|e| e.to_string())?;
            let child = Command::new("ncat")
                .args([
                    "--chat",
                    "-l",
                    "-m",
                    "20000",
                    "127.0.0.1",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start ncat: {e}"))?;
            // No probe connection: ncat --chat quits when a client goes before it has looked at
            // it. The first receiver's connect is retried instead.
            Ok(Running {
                child: Killed(child),
                port,
            })
        }
    }
}

/// One message line of `size` bytes (newline included).
fn message(seq: u64, nanos: u128, size: usize) -> Vec<u8> {
    let mut line = format!("#{seq}:{nanos}:").into_bytes();
    line.resize(size.max(line.len() + 1) - 1, b'x');
    line.push(b'\n');
    line
}

/// `(seq, nanos)` from a received line, if it carries a message.
fn parse(line: &[u8]) -> Option<(u64, u128)> {
    let at = line.iter().position(|&b| b == b'#')?;
    let text = std::str::from_utf8(&line[at + 1..]).ok()?;
    let mut parts = text.splitn(3, ':');
    let seq = parts.next()?.parse().ok()?;
    let nanos = parts.next()?.parse().ok()?;
    Some((seq, nanos))
}

/// How a receiver is connected: a silent guest in plain text, or a peer (encrypted or not).
enum Wire {
    Plain { stream: MioStream, partial: Vec<u8> },
    Peer(Box<Peer>),
}

struct Receiver {
    wire: Wire,
    got: Vec<u64>,
    unique: u64,
    warm: bool,
}

impl Wire {
    /// One read into `buf`; each complete line goes to `on_line` (for a peer, the hub's frame
    /// lines after its hello and proof). `true` when there may be more to read.
    fn read_lines(&mut self, buf: &mut [u8], mut on_line: impl FnMut(&[u8])) -> bool {
        match self {
            Wire::Plain { stream, partial } => match stream.read(buf) {
                Ok(0) => false,
                Ok(n) => {
                    partial.extend_from_slice(&buf[..n]);
                    let mut start = 0;
                    while let Some(i) = partial[start..].iter().position(|&b| b == b'\n') {
                        on_line(&partial[start..start + i]);
                        start += i + 1;
                    }
                    partial.drain(..start);
                    true
                }
                Err(e) => e.kind() == ErrorKind::Interrupted,
            },
            Wire::Peer(peer) => peer.read_some(buf, on_line).unwrap_or(false),
        }
    }
}

/// `(seq, nanos)` from a line a receiver read: a guest's line as the hub shows it, or a
/// peer's `MSG` frame (`MSG ID FROM NICK TEXT`), the only frame that carries a message; the
/// text is found by its `#`, as in a guest's line.
fn parse_received(peer: bool, line: &[u8]) -> Option<(u64, u128)> {
    if peer && !line.starts_with(b"MSG ") {
        return None;
    }
    parse(line)
}

/// Connects `n` receivers to `addr` and registers them with `poll`: silent guests, or with
/// `keys` peers that have started joining (Noise message 1 or their hello sent).
fn connect_receivers(
    poll: &Poll,
    addr: SocketAddr,
    n: usize,
    words: usize,
    mut keys: Option<Vec<PeerKeys>>,
) -> Result<Vec<Receiver>, String> {
    let mut receivers = Vec::with_capacity(n);
    for i in 0..n {
        let mut attempt = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
        let listening_by = Instant::now() + Duration::from_secs(5);
        while i == 0 && attempt.is_err() && Instant::now() < listening_by {
            // The hub may not be listening yet.
            thread::sleep(Duration::from_millis(20));
            attempt = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
        }
        let stream = attempt.map_err(|e| format!("receiver {i} of {n} could not connect: {e}"))?;
        let _ = stream.set_nonblocking(true);
        let mut stream = MioStream::from_std(stream);
        let interest = match keys {
            Some(_) => Interest::READABLE | Interest::WRITABLE,
            None => Interest::READABLE,
        };
        poll.registry()
            .register(&mut stream, Token(i), interest)
            .map_err(|e| e.to_string())?;
        let wire = match keys.as_mut().and_then(|k| k.pop()) {
            Some(k) => Wire::Peer(Box::new(
                Peer::start(stream, k, &format!("r{i}"))
                    .map_err(|e| format!("receiver {i}: {e}"))?,
            )),
            None => Wire::Plain {
                stream,
                partial: Vec::new(),
            },
        };
        receivers.push(Receiver {
            wire,
            got: vec![0; words],
            unique: 0,
            warm: false,
        });
    }
    Ok(receivers)
}

/// Drives the peers' joining (handshake if encrypted, hello, proof) until the hub has
/// welcomed every one, or `by`. Reads each socket until it would block: nothing else is
/// running yet.
fn join_all(poll: &mut Poll, receivers: &mut [Receiver], by: Instant) -> Result<(), String> {
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = receivers
        .iter()
        .filter(|r| matches!(&r.wire, Wire::Peer(p) if p.stage() != Stage::In))
        .count();
    while left > 0 {
        if Instant::now() > by {
            return Err(format!(
                "{} of {} peers joined in time",
                receivers.len() - left,
                receivers.len()
            ));
        }
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Err(e) if e.kind() != ErrorKind::Interrupted => return Err(e.to_string()),
            _ => {}
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(Wire::Peer(peer)) = receivers.get_mut(i).map(|r| &mut r.wire) else {
                continue;
            };
            let was_in = peer.stage() == Stage::In;
            peer.flush().map_err(|e| format!("peer {i}: {e}"))?;
            while peer
                .read_some(&mut buf, |_| {})
                .map_err(|e| format!("peer {i}: {e}"))?
            {}
            if !was_in && peer.stage() == Stage::In {
                left -= 1;
            }
        }
    }
    Ok(())
}

fn run(hub: Hub, sc: &Scenario, group: Option<&Group>) -> Outcome {
    let mut out = Outcome::default();
    let running = match start_hub(hub, group.filter(|_| sc.enc())) {
        Ok(r) => r,
        Err(e) => {
            out.failed = Some(e);
            return out;
        }
    };
    let pid = running.child.0.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], running.port));
    let epoch = Instant::now();

    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            out.failed = Some(e.to_string());
            return out;
        }
    };
    // Every peer's keys are made before anything is timed.
    let psk = match (sc.receivers, group) {
        (Receivers::EncPeers, Some(g)) => Some(g.psk),
        (Receivers::EncPeers, None) => {
            out.failed = Some("no private group for encrypted receivers".into());
            return out;
        }
        _ => None,
    };
    let keys = match sc.peers() {
        true => match (0..sc.n).map(|_| PeerKeys::new(psk)).collect() {
            Ok(k) => Some(k),
            Err(e) => {
                out.failed = Some(e);
                return out;
            }
        },
        false => None,
    };
    let words = sc.messages / 64 + 2;
    let join_start = (Instant::now(), cpu_secs(pid));
    let mut receivers = match connect_receivers(&poll, addr, sc.n, words, keys) {
        Ok(r) => r,
        Err(e) => {
            out.failed = Some(e);
            return out;
        }
    };
    if sc.peers() {
        // The warm-up message reaches peers only: every receiver must be one before it is sent.
        if let Err(e) = join_all(&mut poll, &mut receivers, Instant::now() + MAX_JOIN) {
            out.failed = Some(e);
            return out;
        }
        out.joined = Some((
            join_start.0.elapsed().as_secs_f64(),
            cpu_secs(pid) - join_start.1,
        ));
        if sc.handshake {
            out.peak_rss_kib = status_field(pid, "VmHWM:");
            out.rss_kib = status_field(pid, "VmRSS:");
            return out;
        }
    }
    // The reader that never reads: connected, never registered.
    let stalled = if sc.stalled {
        TcpStream::connect(addr).ok()
    } else {
        None
    };

    let sender = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            out.failed = Some(format!("sender could not connect: {e}"));
            return out;
        }
    };
    let _ = sender.set_nodelay(true);
    let sender_handle = sender.try_clone().ok();
    let go = Arc::new(AtomicBool::new(false));
    let sent_all = Arc::new(AtomicBool::new(false));
    let send_thread = {
        let (go, sent_all, sc) = (go.clone(), sent_all.clone(), sc.clone());
        let mut sender = sender;
        thread::spawn(move || -> io::Result<()> {
            sender.write_all(&message(0, 0, sc.size))?;
            while !go.load(Ordering::Acquire) {
                thread::park_timeout(Duration::from_millis(5));
            }
            let start = Instant::now();
            match sc.pace {
                Some(rate) => {
                    for seq in 1..=sc.messages as u64 {
                        let due = start + Duration::from_secs_f64(seq as f64 / f64::from(rate));
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        let now = epoch.elapsed().as_nanos();
                        sender.write_all(&message(seq, now, sc.size))?;
                    }
                }
                None => {
                    let mut w = BufWriter::with_capacity(64 * 1024, &mut sender);
                    for seq in 1..=sc.messages as u64 {
                        let now = epoch.elapsed().as_nanos();
                        w.write_all(&message(seq, now, sc.size))?;
                    }
                    w.flush()?;
                }
            }
            sent_all.store(true, Ordering::Release);
            Ok(())
        })
    };

    let mut events = Events::with_capacity(1024);
    // Receivers are read in turn, at most one buffer each per round, like a client that reads
    // its socket regularly: reading one socket until it would block can take seconds when the
    // kernel holds megabytes for it, and the hub would rightly see the others as stalled.
    let mut buf = vec![0u8; 64 * 1024];
    let mut ready: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut queued = vec![false; sc.n];
    let mut hist = Histogram::new();
    let mut warm = 0;
    let mut last_progress = Instant::now();
    let mut started: Option<(Instant, f64)> = None;
    let mut last_delivery = Instant::now();
    let expected_each = sc.messages as u64;
    let mut complete = 0;
    let deadline = Instant::now() + MAX_RUN;
    loop {
        let wait = if ready.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != ErrorKind::Interrupted {
                out.failed = Some(e.to_string());
                break;
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            let i = ev.token().0;
            if let (true, Some(Wire::Peer(peer))) =
                (ev.is_writable(), receivers.get_mut(i).map(|r| &mut r.wire))
            {
                // A pong that did not fit: the socket takes it now.
                let _ = peer.flush();
            }
            if i < sc.n && !queued[i] {
                queued[i] = true;
                ready.push_back(i);
            }
        }
        for _ in 0..ready.len() {
            let Some(i) = ready.pop_front() else { break };
            let Receiver {
                wire,
                got,
                unique,
                warm: is_warm,
            } = &mut receivers[i];
            let more = wire.read_lines(&mut buf, |line| {
                let Some((seq, nanos)) = parse_received(sc.peers(), line) else {
                    return;
                };
                if seq == 0 {
                    if !*is_warm {
                        *is_warm = true;
                        warm += 1;
                    }
                    return;
                }
                let (w, bit) = ((seq / 64) as usize, seq % 64);
                let Some(word) = got.get_mut(w) else {
                    return;
                };
                if *word & (1 << bit) != 0 {
                    out.duplicates += 1;
                    return;
                }
                *word |= 1 << bit;
                *unique += 1;
                out.deliveries += 1;
                last_delivery = now;
                let at = epoch.elapsed().as_nanos();
                hist.record((at.saturating_sub(nanos) / 1000) as u64);
                if *unique == expected_each {
                    complete += 1;
                }
            });
            if more {
                last_progress = now;
                ready.push_back(i);
            } else {
                queued[i] = false;
            }
        }
        if started.is_none() && warm == sc.n {
            if sc.idle {
                out.rss_kib = status_field(pid, "VmRSS:");
                break;
            }
            started = Some((Instant::now(), cpu_secs(pid)));
            go.store(true, Ordering::Release);
            send_thread.thread().unpark();
            last_progress = Instant::now();
        }
        if started.is_some() && complete == sc.n {
            break;
        }
        let quiet = now.duration_since(last_progress) > QUIET_END;
        if started.is_none() && quiet {
            out.failed = Some(format!("warm-up reached {warm} of {} receivers", sc.n));
            break;
        }
        if started.is_some() && quiet {
            // Sender done or stuck, nothing arriving: what is missing is lost.
            break;
        }
        if now > deadline {
            break;
        }
    }
    if let Some((t0, cpu0)) = started {
        out.secs = last_delivery
            .saturating_duration_since(t0)
            .as_secs_f64()
            .max(1e-9);
        out.cpu_secs = cpu_secs(pid) - cpu0;
    }
    out.expected = expected_each * sc.n as u64;
    out.p50_us = hist.percentile(0.50);
    out.p99_us = hist.percentile(0.99);
    out.max_us = hist.max;
    out.peak_rss_kib = status_field(pid, "VmHWM:");
    if out.rss_kib == 0 {
        out.rss_kib = status_field(pid, "VmRSS:");
    }
    if let Some(mut s) = stalled {
        // Cut off means the hub closed it: reading it out ends in EOF or a reset.
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut sink = vec![0u8; 1 << 20];
        let mut cut = false;
        for _ in 0..200 {
            match s.read(&mut sink) {
                Ok(0) => {
                    cut = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
        out.stalled_cut = Some(cut);
    }
    // Unblock the sender wherever it is: waiting for the start, or in a write a stuck hub does
    // not take.
    if let Some(h) = sender_handle {
        let _ = h.shutdown(Shutdown::Both);
    }
    go.store(true, Ordering::Release);
    send_thread.thread().unpark();
    let _ = send_thread.join();
    drop(running);
    out
}

/// The median of each figure over several runs (a failed run, if any, wins: it is the news).
fn median(mut outs: Vec<Outcome>) -> Outcome {
    if let Some(i) = outs.iter().position(|o| o.failed.is_some()) {
        return outs.swap_remove(i);
    }
    if outs.len() == 1 {
        return outs.remove(0);
    }
    fn mid<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }
    let deliveries = mid(outs.iter().map(|o| o.deliveries).collect());
    let rate = mid(outs.iter().map(|o| o.deliveries as f64 / o.secs).collect());
    let per_cpu = mid(outs
        .iter()
        .map(|o| o.deliveries as f64 / o.cpu_secs.max(1e-9))
        .collect());
    Outcome {
        failed: None,
        deliveries,
        expected: outs[0].expected,
        duplicates: mid(outs.iter().map(|o| o.duplicates).collect()),
        secs: deliveries as f64 / rate,
        cpu_secs: deliveries as f64 / per_cpu,
        p50_us: mid(outs.iter().map(|o| o.p50_us).collect()),
        p99_us: mid(outs.iter().map(|o| o.p99_us).collect()),
        max_us: mid(outs.iter().map(|o| o.max_us).collect()),
        peak_rss_kib: mid(outs.iter().map(|o| o.peak_rss_kib).collect()),
        rss_kib: mid(outs.iter().map(|o| o.rss_kib).collect()),
        stalled_cut: outs[0]
            .stalled_cut
            .map(|_| outs.iter().all(|o| o.stalled_cut == Some(true))),
        joined: outs[0].joined.map(|_| {
            let joined: Vec<(f64, f64)> = outs.iter().filter_map(|o| o.joined).collect();
            (
                mid(joined.iter().map(|j| j.0).collect()),
                mid(joined.iter().map(|j| j.1).collect()),
            )
        }),
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}us")
    }
}

fn row(hub: Hub, sc: &Scenario, o: &Outcome) -> String {
    if let Some(why) = &o.failed {
        return format!("  {:<9} FAILED: {why}", hub.name());
    }
    if let (true, Some((secs, cpu))) = (sc.handshake, o.joined) {
        return format!(
            "  {:<9} {} peers in {:.2} s: {:.0} handshakes/s, {:.2} ms hub CPU each, {} KiB peak",
            hub.name(),
            sc.n,
            secs,
            sc.n as f64 / secs.max(1e-9),
            cpu * 1000.0 / sc.n as f64,
            o.peak_rss_kib
        );
    }
    if o.expected == 0 {
        return format!(
            "  {:<9} {:>10} KiB RSS with the connections idle (peak {} KiB)",
            hub.name(),
            o.rss_kib,
            o.peak_rss_kib
        );
    }
    let rate = o.deliveries as f64 / o.secs;
    let per_cpu = if o.cpu_secs > 0.0 {
        fmt_rate(o.deliveries as f64 / o.cpu_secs)
    } else {
        "n/a".into()
    };
    let lost = o.expected.saturating_sub(o.deliveries);
    let mut s = format!(
        "  {:<9} {:>9}/s {:>9}/cpu-s {:>8} {:>8} {:>8} {:>9} lost {:>7} KiB peak",
        hub.name(),
        fmt_rate(rate),
        per_cpu,
        fmt_us(o.p50_us),
        fmt_us(o.p99_us),
        fmt_us(o.max_us),
        lost,
        o.peak_rss_kib
    );
    if o.duplicates > 0 {
        s.push_str(&format!(" ({} duplicates)", o.duplicates));
    }
    if let Some(cut) = o.stalled_cut {
        s.push_str(if cut {
            ", stalled reader cut off"
        } else {
            ", stalled reader still connected"
        });
    }
    s
}

/// What a scenario is compared on with its twins.
struct Figures {
    rate: f64,
    per_cpu: f64,
    p99_us: u64,
}

/// Keeps each scenario's figures; for one of peers whose twins ran before it in this run,
/// prints the ratios to them: plain peers to plain guests (what being a peer costs), encrypted
/// peers to plain guests (the targets: per-cpu at least 0.5 with 200 receivers of bursts of
/// 64 B, p99 at most 2 paced at 1000/s) and to plain peers (what encryption alone costs).
fn twin_ratios(sc: &Scenario, o: &Outcome, seen: &mut HashMap<String, Figures>) {
    if o.failed.is_some() || o.expected == 0 {
        return;
    }
    let figures = Figures {
        rate: o.deliveries as f64 / o.secs,
        per_cpu: o.deliveries as f64 / o.cpu_secs.max(1e-9),
        p99_us: o.p99_us,
    };
    let base = sc
        .name
        .strip_suffix(sc.receivers.suffix())
        .unwrap_or(&sc.name);
    let twins: &[(Receivers, &str)] = match sc.receivers {
        Receivers::Guests => &[],
        Receivers::Peers => &[(Receivers::Guests, "peer/guest")],
        Receivers::EncPeers => &[
            (Receivers::Guests, "encrypted/plain-guest"),
            (Receivers::Peers, "encrypted/plain-peer"),
        ],
    };
    for (twin, label) in twins {
        if let Some(t) = seen.get(&format!("{base}{}", twin.suffix())) {
            println!(
                "  {label}: per-cpu {:.2}, p99 {:.2}, rate {:.2}",
                figures.per_cpu / t.per_cpu,
                figures.p99_us as f64 / t.p99_us.max(1) as f64,
                figures.rate / t.rate
            );
        }
    }
    seen.insert(sc.name.clone(), figures);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let want_ncat = !args.iter().any(|a| a == "--no-ncat");
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| (1..=20).contains(v))
        .unwrap_or(1);
    let scale = args
        .iter()
        .position(|a| a == "--scale")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0 && *v <= 100.0)
        .unwrap_or(1.0);
    let ncat = want_ncat
        && Command::new("ncat")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let mut hubs = vec![Hub::Peerchat];
    if ncat {
        hubs.push(Hub::Ncat);
    } else if want_ncat {
        println!("ncat not installed (apt-get install -y ncat): peerchat only");
    }
    println!("peerchat binary: {}", peerchat_bin().to_string_lossy());
    let fd_limit = raise_fd_limit();
    println!(
        "fan-out through a hub on loopback; columns: deliveries/s, deliveries per hub CPU-second, \
         latency p50 p99 max, lost, hub peak RSS"
    );
    // `--only` names one scenario, or several separated by commas.
    let wanted = |sc: &Scenario| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|o| o == sc.name))
    };
    let selected: Vec<Scenario> = scenarios(quick, scale).into_iter().filter(wanted).collect();
    // One private group for every encrypted scenario: its key is derived once, not per peer.
    let group = if selected.iter().any(Scenario::enc) {
        match Group::new() {
            Ok(g) => Some(g),
            Err(e) => {
                println!("cannot set up a private group: {e}");
                None
            }
        }
    } else {
        None
    };
    // Each scenario's figures (peerchat's), for the ratios of its twins of peers.
    let mut seen: HashMap<String, Figures> = HashMap::new();
    for sc in selected {
        let what = if sc.handshake {
            format!("{} encrypted peers joining at once", sc.n)
        } else if sc.idle {
            format!("{} connections, idle", sc.n)
        } else {
            format!(
                "{} receivers, {} messages of {} B{}",
                sc.n,
                sc.messages,
                sc.size,
                sc.pace.map(|r| format!(" at {r}/s")).unwrap_or_default()
            ) + match sc.receivers {
                Receivers::Guests => "",
                Receivers::Peers => ", peers",
                Receivers::EncPeers => ", encrypted peers",
            }
        };
        println!("\n{} ({what})", sc.name);
        if fd_limit < sc.n as u64 + 64 {
            println!(
                "  skipped: the open-file limit ({fd_limit}) is below {}",
                sc.n + 64
            );
            continue;
        }
        let mut runs: Vec<(Hub, Vec<Outcome>)> = Vec::new();
        for &hub in &hubs {
            if hub == Hub::Ncat && sc.peers() {
                // ncat has no peers nor private groups: nothing to compare.
                continue;
            }
            if hub == Hub::Ncat && sc.n > NCAT_MAX {
                println!(
                    "  {:<9} skipped: it stops accepting near 1000 connections (select's FD_SETSIZE)",
                    hub.name()
                );
                continue;
            }
            runs.push((hub, Vec::new()));
        }
        // The hubs take turns, so that whatever else the machine does falls on both.
        for _ in 0..repeat {
            for (hub, outs) in runs.iter_mut() {
                let o = run(*hub, &sc, group.as_ref());
                println!("{}", row(*hub, &sc, &o));
                outs.push(o);
            }
        }
        let outcomes: Vec<(Hub, Outcome)> = runs
            .into_iter()
            .map(|(hub, outs)| {
                let m = median(outs);
                if repeat > 1 {
                    println!("{} (median of {repeat})", row(hub, &sc, &m));
                }
                (hub, m)
            })
            .collect();
        if let Some((_, o)) = outcomes.iter().find(|(h, _)| *h == Hub::Peerchat) {
            twin_ratios(&sc, o, &mut seen);
        }
        let mut ratios = HashMap::new();
        if let [(_, p), (_, n)] = &outcomes[..] {
            if p.failed.is_none() && n.failed.is_none() {
                if sc.idle {
                    ratios.insert("rss", format!("{:.2}", p.rss_kib as f64 / n.rss_kib as f64));
                } else {
                    let rate = |o: &Outcome| o.deliveries as f64 / o.secs;
                    let cpu = |o: &Outcome| o.deliveries as f64 / o.cpu_secs.max(1e-9);
                    ratios.insert("rate", format!("{:.2}", rate(p) / rate(n)));
                    ratios.insert("per-cpu", format!("{:.2}", cpu(p) / cpu(n)));
                    ratios.insert(
                        "p99",
                        format!("{:.2}", p.p99_us as f64 / n.p99_us.max(1) as f64),
                    );
                }
                let mut keys: Vec<_> = ratios.iter().collect();
                keys.sort();
                let text: Vec<String> = keys.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("  peerchat/ncat: {}", text.join(", "));
            }
        }
    }
}
