//! Idle-cost benchmark: what a hub's event loop spends, in CPU per wall-second, holding 10 000
//! connections on which nobody says anything, so that only timers wake it.
//!
//! ```text
//! cargo bench --bench idle                          # 10 000 guests + 4 peers, a 20 s window
//! cargo bench --bench idle -- --repeat 3            # three runs, then the medians
//! cargo bench --bench idle -- --peers 0             # guests only: nothing should wake the loop
//! cargo bench --bench idle -- --conns 200 --window 2   # a quick check that it works
//! PEERCHAT_BIN=/path/to/peerchat cargo bench --bench idle -- --repeat 3
//! ```
//!
//! The hub runs as the fan-out benchmark runs it (`-l 127.0.0.1:0 -q --keep-open --nick hub
//! --rate-limit 0`, raising its own open-file limit), plus `--timeout SECS` (default 3). This
//! process raises its own open-file limit to the hard one and opens `--conns` connections
//! that never send a byte: **silent guests**, the cheapest connection a hub holds and the
//! one there are thousands of. Once they are guests (a second after they connect) no timer of
//! theirs remains, so with guests alone an idle hub ought not to wake at all (`--peers 0`
//! shows whether it does). `--peers` (default 4) real peerchat nodes of the same binary then
//! join the hub and stay silent too; their **keepalive** pings (one a link each `SECS / 3` of
//! silence, hence the short timeout) are the timers that do wake the loop, a few times a second.
//! What each of those wake-ups costs is the figure that tells a loop that scans every
//! connection on each turn (O(N) a turn) from one that finds what is due in a timer table.
//!
//! A run waits, each step under a deadline, until every guest has the hub's hello, every peer's
//! join has reached the guests, and the hub has settled (the guests have received nothing for
//! 2 s and the hub used under 5% of a CPU over the last second; if it never settles the
//! window is measured anyway and the run says so). Then, over `--window` seconds (default 20),
//! it prints the hub's CPU-ms per wall-second (all threads, `/proc/PID/task/*/schedstat`),
//! its loop's wake-ups per second (voluntary context switches of its main thread, the loop's
//! thread: each is a `poll` that slept) and CPU per wake-up, its RSS at the end and peak RSS,
//! and the load average (the machine may be busy: the hub's own CPU time is the figure, wall
//! time is not). It asserts nothing about speed. `PEERCHAT_BIN` chooses the binary for the
//! hub and the peers, as in the fan-out benchmark.

use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

mod common;
use common::{cpu_secs, peerchat_bin, raise_fd_limit, start_peerchat_hub, status_field, Killed};

/// Every guest connected and greeted by the hub within this long.
const CONNECT_MAX: Duration = Duration::from_secs(180);
/// Every peer's join seen by the guests within this long after the peers start.
const JOIN_MAX: Duration = Duration::from_secs(60);
/// Settled within this long after the peers joined, or measured anyway.
const SETTLE_MAX: Duration = Duration::from_secs(120);
/// Settled: the guests have received nothing for this long…
const QUIET: Duration = Duration::from_secs(2);
/// …and the hub used less than this many CPU-seconds over the last wall-second.
const SETTLED_CPU: f64 = 0.05;
/// Peers' nicks are this and a number; the guests' join notices are matched on it.
const PEER_NICK: &str = "idle-peer-";

struct Config {
    conns: usize,
    peers: usize,
    timeout: u64,
    window: Duration,
    repeat: usize,
}

/// The value after `--name`, when there is one, it parses and `ok` accepts it.
fn arg<T: FromStr>(args: &[String], name: &str, ok: impl Fn(&T) -> bool) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .filter(ok)
}

impl Config {
    fn from_args() -> Config {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Config {
            conns: arg(&args, "--conns", |n| (1..=50_000).contains(n)).unwrap_or(10_000),
            peers: arg(&args, "--peers", |n| *n <= 64).unwrap_or(4),
            timeout: arg(&args, "--timeout", |n| (1..=86_400).contains(n)).unwrap_or(3),
            window: Duration::from_secs(
                arg(&args, "--window", |n| (1..=600).contains(n)).unwrap_or(20),
            ),
            repeat: arg(&args, "--repeat", |n| (1..=20).contains(n)).unwrap_or(1),
        }
    }
}

/// What one run measured.
struct Figures {
    /// Seconds from the hub's start until it settled; `None` when it did not in time.
    settled_after: Option<f64>,
    cpu_ms_per_sec: f64,
    wakeups_per_sec: f64,
    rss_kib: u64,
    peak_rss_kib: u64,
    /// Bytes the guests received during the window (0 when the hub was idle towards them).
    guest_bytes: u64,
    /// Guests the hub had closed by the end.
    guests_closed: usize,
    /// Peers whose leave the guests saw by the end.
    peers_left: usize,
    load: String,
}

/// The silent guests, drained as the hub writes to them (join notices), so that no write of
/// the hub's stays pending and keeps it busy.
struct Guests {
    poll: Poll,
    events: Events,
    streams: Vec<Option<MioStream>>,
    greeted: Vec<bool>,
    greeted_count: usize,
    closed: usize,
    bytes: u64,
    last_bytes: Instant,
    /// Guest 0's unfinished line, and its lines that name a peer.
    partial: Vec<u8>,
    peer_lines: Vec<String>,
    buf: Vec<u8>,
}

impl Guests {
    fn new() -> io::Result<Guests> {
        Ok(Guests {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            streams: Vec::new(),
            greeted: Vec::new(),
            greeted_count: 0,
            closed: 0,
            bytes: 0,
            last_bytes: Instant::now(),
            partial: Vec::new(),
            peer_lines: Vec::new(),
            buf: vec![0; 64 * 1024],
        })
    }

    /// Opens `n` connections to `addr`, draining what arrives every few hundred.
    fn connect(&mut self, addr: SocketAddr, n: usize) -> Result<(), String> {
        let listening_by = Instant::now() + Duration::from_secs(5);
        for i in 0..n {
            let mut attempt = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
            while i == 0 && attempt.is_err() && Instant::now() < listening_by {
                // The hub may not be listening yet.
                thread::sleep(Duration::from_millis(20));
                attempt = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
            }
            let stream = attempt.map_err(|e| format!("guest {i} of {n} could not connect: {e}"))?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut stream = MioStream::from_std(stream);
            self.poll
                .registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .map_err(|e| e.to_string())?;
            self.streams.push(Some(stream));
            self.greeted.push(false);
            if i % 256 == 255 {
                self.pump(Duration::ZERO)?;
            }
        }
        Ok(())
    }

    /// Waits up to `wait` for the hub to write, then reads every ready guest dry.
    fn pump(&mut self, wait: Duration) -> Result<(), String> {
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for i in ready {
            self.read_dry(i);
        }
        Ok(())
    }

    fn read_dry(&mut self, i: usize) {
        // Edge-triggered: read until the socket would block, or it is gone.
        loop {
            let Some(stream) = self.streams.get_mut(i).and_then(Option::as_mut) else {
                return;
            };
            match stream.read(&mut self.buf) {
                Ok(0) => return self.close(i),
                Ok(n) => self.got(i, n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return self.close(i),
            }
        }
    }

    /// Guest `i` received the first `n` bytes of the buffer.
    fn got(&mut self, i: usize, n: usize) {
        self.bytes += n as u64;
        self.last_bytes = Instant::now();
        if !self.greeted[i] {
            self.greeted[i] = true;
            self.greeted_count += 1;
        }
        if i == 0 {
            self.watch_lines(n);
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut s) = self.streams.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut s);
            self.closed += 1;
        }
    }

    /// Keeps guest 0's lines that name a peer (its joins and leaves), from the last read.
    fn watch_lines(&mut self, n: usize) {
        self.partial.extend_from_slice(&self.buf[..n]);
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[start..start + end];
            if line
                .windows(PEER_NICK.len())
                .any(|w| w == PEER_NICK.as_bytes())
            {
                self.peer_lines
                    .push(String::from_utf8_lossy(line).into_owned());
            }
            start += end + 1;
        }
        self.partial.drain(..start);
    }

    /// Peers (numbered from 1) of which guest 0 has seen a line saying `what` (`joined`,
    /// `left`).
    fn peers_said(&self, peers: usize, what: &str) -> usize {
        (1..=peers)
            .filter(|i| {
                let needle = format!("{PEER_NICK}{i} {what}");
                self.peer_lines.iter().any(|l| l.contains(&needle))
            })
            .count()
    }
}

/// Starts the hub; returns it and its port.
fn start_hub(timeout: u64) -> Result<(Killed, u16), String> {
    start_peerchat_hub(&["--timeout", &timeout.to_string()])
}

/// Starts `count` silent peers that dial the hub, each under its own nick.
fn start_peers(count: usize, port: u16, timeout: u64) -> Result<Vec<Killed>, String> {
    (1..=count)
        .map(|i| {
            Command::new(peerchat_bin())
                .arg(format!("127.0.0.1:{port}"))
                .args(["-q", "--keep-open", "--nick", &format!("{PEER_NICK}{i}")])
                .args(["--timeout", &timeout.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Killed)
                .map_err(|e| format!("cannot start peer {i}: {e}"))
        })
        .collect()
}

/// Pumps the guests until `done` holds, or fails with `what` once `limit` has passed.
fn wait_for(
    guests: &mut Guests,
    limit: Duration,
    what: impl Fn(&Guests) -> String,
    done: impl Fn(&Guests) -> bool,
) -> Result<(), String> {
    let by = Instant::now() + limit;
    while !done(guests) {
        if Instant::now() > by {
            return Err(format!("after {}s: {}", limit.as_secs(), what(guests)));
        }
        guests.pump(Duration::from_millis(100))?;
    }
    Ok(())
}

/// Pumps the guests until the hub has settled; false when `SETTLE_MAX` came first.
fn settle(guests: &mut Guests, pid: u32) -> Result<bool, String> {
    let by = Instant::now() + SETTLE_MAX;
    let mut mark = (Instant::now(), cpu_secs(pid));
    let mut last_rate = f64::INFINITY;
    while Instant::now() < by {
        guests.pump(Duration::from_millis(100))?;
        let now = Instant::now();
        let since = now.duration_since(mark.0).as_secs_f64();
        if since >= 1.0 {
            let cpu = cpu_secs(pid);
            last_rate = (cpu - mark.1) / since;
            mark = (now, cpu);
        }
        if now.duration_since(guests.last_bytes) >= QUIET && last_rate < SETTLED_CPU {
            return Ok(true);
        }
    }
    Ok(false)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().take(3).collect();
            (f.len() == 3).then(|| f.join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

fn run(cfg: &Config) -> Result<Figures, String> {
    let started = Instant::now();
    let (mut hub, port) = start_hub(cfg.timeout)?;
    let pid = hub.0.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut guests = Guests::new().map_err(|e| e.to_string())?;
    guests.connect(addr, cfg.conns)?;
    let n = cfg.conns;
    wait_for(
        &mut guests,
        CONNECT_MAX,
        |g| format!("{} of {n} guests have the hub's hello", g.greeted_count),
        |g| g.greeted_count == n,
    )?;
    let _peers = start_peers(cfg.peers, port, cfg.timeout)?;
    let p = cfg.peers;
    wait_for(
        &mut guests,
        JOIN_MAX,
        |g| format!("{} of {p} peers seen joining", g.peers_said(p, "joined")),
        |g| g.peers_said(p, "joined") == p,
    )?;
    let settled = settle(&mut guests, pid)?;
    let settled_after = settled.then(|| started.elapsed().as_secs_f64());

    let (t0, cpu0) = (Instant::now(), cpu_secs(pid));
    let wake0 = status_field(pid, "voluntary_ctxt_switches:");
    let bytes0 = guests.bytes;
    while let Some(left) = cfg.window.checked_sub(t0.elapsed()) {
        guests.pump(left.min(Duration::from_millis(100)))?;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs(pid) - cpu0);
    let wakeups = status_field(pid, "voluntary_ctxt_switches:").saturating_sub(wake0);
    if let Ok(Some(status)) = hub.0.try_wait() {
        return Err(format!("the hub exited during the window: {status}"));
    }
    Ok(Figures {
        settled_after,
        cpu_ms_per_sec: cpu * 1000.0 / wall,
        wakeups_per_sec: wakeups as f64 / wall,
        rss_kib: status_field(pid, "VmRSS:"),
        peak_rss_kib: status_field(pid, "VmHWM:"),
        guest_bytes: guests.bytes - bytes0,
        guests_closed: guests.closed,
        peers_left: guests.peers_said(p, "left"),
        load: load_average(),
    })
}

/// CPU-microseconds per wake-up, or n/a without wake-ups.
fn per_wakeup(cpu_ms_per_sec: f64, wakeups_per_sec: f64) -> String {
    if wakeups_per_sec > 0.0 {
        format!("{:.0} us", cpu_ms_per_sec * 1000.0 / wakeups_per_sec)
    } else {
        "n/a".into()
    }
}

fn row(f: &Figures) -> String {
    let mut s = format!(
        "{:>8.2} CPU-ms/s {:>8.1} wake-ups/s ({:>7} CPU each) {:>8} KiB RSS ({} KiB peak); \
         load {}",
        f.cpu_ms_per_sec,
        f.wakeups_per_sec,
        per_wakeup(f.cpu_ms_per_sec, f.wakeups_per_sec),
        f.rss_kib,
        f.peak_rss_kib,
        f.load
    );
    match f.settled_after {
        Some(secs) => s.push_str(&format!("; settled {secs:.1}s after start")),
        None => s.push_str("; NOT settled (measured anyway)"),
    }
    if f.guest_bytes > 0 {
        s.push_str(&format!(
            "; guests received {} B in the window",
            f.guest_bytes
        ));
    }
    if f.guests_closed > 0 {
        s.push_str(&format!("; {} guests closed by the hub", f.guests_closed));
    }
    if f.peers_left > 0 {
        s.push_str(&format!("; {} peers left", f.peers_left));
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let cfg = Config::from_args();
    println!("peerchat binary: {}", peerchat_bin().to_string_lossy());
    println!(
        "idle hub on loopback: {} silent guests + {} silent peers, --timeout {}, {}s window",
        cfg.conns,
        cfg.peers,
        cfg.timeout,
        cfg.window.as_secs()
    );
    let limit = raise_fd_limit();
    if limit < cfg.conns as u64 + 64 {
        println!(
            "FAILED: the open-file limit ({limit}) is below {}",
            cfg.conns + 64
        );
        std::process::exit(1);
    }
    let mut done = Vec::new();
    for i in 1..=cfg.repeat {
        match run(&cfg) {
            Ok(f) => {
                println!("  run {i}: {}", row(&f));
                done.push(f);
            }
            Err(e) => println!("  run {i}: FAILED: {e}"),
        }
    }
    if done.len() > 1 {
        let cpu = median(done.iter().map(|f| f.cpu_ms_per_sec).collect());
        let wakeups = median(done.iter().map(|f| f.wakeups_per_sec).collect());
        let rss = median(done.iter().map(|f| f.rss_kib as f64).collect());
        println!(
            "  median of {}: {cpu:.2} CPU-ms/s, {wakeups:.1} wake-ups/s ({} CPU each), \
             {rss:.0} KiB RSS",
            done.len(),
            per_wakeup(cpu, wakeups)
        );
    }
}
