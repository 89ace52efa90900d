//! Helpers for the integration tests: start the real `peerchat` binary on loopback, feed its
//! stdin, and wait (with a deadline, never a fixed sleep) for lines or JSON events on its stdout.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_peerchat")
}

/// A running peerchat process.
pub struct Node {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line read so far, in order.
    pub history: Vec<String>,
    /// Which lines of `history` a wait has returned already.
    claimed: Vec<bool>,
    stderr: Receiver<String>,
    /// The node's own config directory (its identity key), unless the test chose one.
    config: Option<TempDir>,
}

fn pump(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Node {
    /// Starts `peerchat ARGS` with piped stdin, stdout and stderr.
    pub fn spawn(args: &[&str]) -> Node {
        Node::spawn_with(Command::new(bin()).args(args))
    }

    /// Starts `peerchat ARGS` inside network namespace `ns`.
    pub fn spawn_in(ns: &str, args: &[&str]) -> Node {
        Node::spawn_with(
            Command::new("ip")
                .args(["netns", "exec", ns, bin()])
                .args(args),
        )
    }

    /// Starts `peerchat ARGS` under open-file limits `soft` and `hard` (set by `sh`'s `ulimit`,
    /// which then execs peerchat, so the child's pid is peerchat's).
    pub fn spawn_with_fd_limit(soft: u32, hard: u32, args: &[&str]) -> Node {
        Node::spawn_with_shell(&format!("ulimit -Sn {soft} && ulimit -Hn {hard}"), args)
    }

    /// Starts `peerchat ARGS` from `sh`, after the shell command `setup` (which may change
    /// what peerchat inherits, such as ignored signals); `sh` execs peerchat, so the child's
    /// pid is peerchat's.
    pub fn spawn_with_shell(setup: &str, args: &[&str]) -> Node {
        let script = format!("{setup} && exec \"$0\" \"$@\"");
        Node::spawn_with(Command::new("sh").args(["-c", &script, bin()]).args(args))
    }

    /// Starts `cmd` (peerchat, or a program that execs it) with piped stdin, stdout and stderr,
    /// in a config directory of its own unless `cmd` sets `XDG_CONFIG_HOME` (see `own_config`).
    pub fn spawn_with(cmd: &mut Command) -> Node {
        let config = own_config(cmd);
        let spawning = spawning();
        // The nodes' own logs stay quiet unless asked for: `PEERCHAT_IT_LOG=debug` logs, and a
        // failing test prints each node's stderr (see `Drop`).
        match std::env::var("PEERCHAT_IT_LOG") {
            Ok(level) => cmd.env("RUST_LOG", level),
            Err(_) => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start peerchat");
        drop(spawning);
        let stdin = child.stdin.take();
        let lines = pump(child.stdout.take().expect("stdout"));
        let stderr = pump(child.stderr.take().expect("stderr"));
        Node {
            child,
            stdin,
            lines,
            history: Vec::new(),
            claimed: Vec::new(),
            stderr,
            config,
        }
    }

    /// The config directory this node was given (`XDG_CONFIG_HOME`), if the test set none.
    pub fn config_dir(&self) -> Option<&Path> {
        self.config.as_ref().map(|d| d.0.as_path())
    }

    /// A JSON node listening on an ephemeral loopback port; returns it and the port.
    pub fn listener(nick: &str, extra: &[&str]) -> (Node, u16) {
        let mut args = vec!["-l", "127.0.0.1:0", "--json", "--nick", nick];
        args.extend_from_slice(extra);
        let mut node = Node::spawn(&args);
        let ev = node.wait_event(|v| {
            v["event"] == "info" && v["text"].as_str().unwrap_or("").starts_with("listening on")
        });
        let text = ev["text"].as_str().unwrap_or_default();
        let port = text
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the listening line");
        (node, port)
    }

    /// A JSON node connected to `port` on loopback.
    pub fn client(nick: &str, port: u16, extra: &[&str]) -> Node {
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![addr.as_str(), "--json", "--nick", nick];
        args.extend_from_slice(extra);
        Node::spawn(&args)
    }

    /// A listener and one client connected to it, each having seen the other join.
    pub fn pair(hub_nick: &str, client_nick: &str, client_extra: &[&str]) -> (Node, Node, u16) {
        let (mut hub, port) = Node::listener(hub_nick, &[]);
        let mut client = Node::client(client_nick, port, client_extra);
        hub.wait_join(client_nick);
        client.wait_join(hub_nick);
        (hub, client, port)
    }

    /// Types a line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to peerchat's stdin");
        stdin.flush().expect("flush");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line matching `pred` that no earlier wait has claimed, whether it
    /// arrived already or arrives within the deadline. Every line read is kept in `history`.
    pub fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        for (i, line) in self.history.iter().enumerate() {
            if !self.claimed[i] && pred(line) {
                self.claimed[i] = true;
                return line.clone();
            }
        }
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.history.push(line.clone());
                    let hit = pred(&line);
                    self.claimed.push(hit);
                    if hit {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {what}; stdout so far: {:#?}",
                        self.history
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "stdout closed while waiting for {what}; stdout: {:#?}; stderr: {:?}",
                    self.history,
                    self.stderr_lines()
                ),
            }
        }
    }

    /// Waits for the next JSON event matching `pred`.
    pub fn wait_event(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let line = self.wait_line("a JSON event", |l| {
            serde_json::from_str::<Value>(l)
                .map(|v| pred(&v))
                .unwrap_or(false)
        });
        serde_json::from_str(&line).expect("valid JSON")
    }

    pub fn wait_message(&mut self, from: &str, text: &str) -> Value {
        self.wait_event(|v| v["event"] == "message" && v["from"] == from && v["text"] == text)
    }

    pub fn wait_join(&mut self, nick: &str) -> Value {
        self.wait_event(|v| v["event"] == "join" && v["nick"] == nick)
    }

    pub fn wait_leave(&mut self, nick: &str) -> Value {
        self.wait_event(|v| v["event"] == "leave" && v["nick"] == nick)
    }

    /// The JSON events in `history`.
    pub fn events(&self) -> Vec<Value> {
        self.history
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for the process to end.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > end {
                panic!("peerchat did not exit; stdout: {:#?}", self.history);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a stderr line matching `pred`; lines before it are dropped.
    pub fn wait_stderr(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} on stderr; it said: {seen:#?}"),
            }
        }
    }

    /// Everything on stderr so far (only complete once the process has exited).
    pub fn stderr_lines(&self) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(2);
        let mut out = Vec::new();
        while let Ok(l) = self
            .stderr
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            out.push(l);
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && std::env::var_os("PEERCHAT_IT_LOG").is_some() {
            let pid = self.child.id();
            for line in self.stderr.try_iter() {
                eprintln!("[node {pid}] {line}");
            }
        }
    }
}

/// A raw TCP client, as `nc` would be: no hello, plain lines.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        Raw::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Raw { stream, reader }
    }

    /// Connects to the node listening on `port` as a guest and sends `first_line`, returning
    /// once `hub` shows it as a message from `nick` (so the guest is known to have joined).
    pub fn joined(hub: &mut Node, port: u16, nick: &str, first_line: &str) -> Raw {
        let mut raw = Raw::connect(port);
        raw.send(format!("{first_line}\n").as_bytes());
        hub.wait_message(nick, first_line);
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("raw send");
    }

    /// The next line, without `\n`; `None` at EOF or on a reset. Panics when nothing comes
    /// within the deadline, so "closed" is never confused with "quiet".
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no line within {DEADLINE:?} (read so far: {buf:?})")
            }
            Ok(0) | Err(_) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    }

    /// Reads lines until one matches; panics at EOF or on timeout.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line() {
                Some(l) if pred(&l) => return l,
                Some(l) => seen.push(l),
                None => panic!("raw connection ended; lines: {seen:#?}"),
            }
        }
    }
}

/// A fake peerchat node on a raw connection to the node listening on `port`: it says hello as
/// `nick` with the key of `seed` (listening nowhere) and proves it, so that frames may follow.
pub fn fake_peer_hello(port: u16, nick: &str, seed: u8) -> Raw {
    crate::fake::FakePeer::connect(port, nick, seed).raw
}

/// Reads `raw` until `want` lines of each sender arrived, checking that each sender's lines come
/// in the order sent, none twice. Lines look like `<guest-N> sK NNNNN ...`; others are skipped.
pub fn read_in_order(raw: &mut Raw, senders: &[String], want: usize) -> Result<(), String> {
    let mut next = vec![0usize; senders.len()];
    while next.iter().any(|&n| n < want) {
        let line = raw
            .line()
            .ok_or_else(|| format!("connection closed; got {next:?} of {want} each"))?;
        let Some((from, rest)) = line.split_once("> ") else {
            continue;
        };
        let Some(s) = senders.iter().position(|n| from == format!("<{n}")) else {
            continue;
        };
        let mut words = rest.split(' ');
        if words.next() != Some(format!("s{s}").as_str()) {
            // Not one of the numbered lines (the sender's first line, say).
            continue;
        }
        let seq: usize = words
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad line {line:?}"))?;
        if seq != next[s] {
            return Err(format!(
                "from {}: got {seq} where {} was due",
                senders[s], next[s]
            ));
        }
        next[s] += 1;
    }
    Ok(())
}

/// `count` lines `sK NNNNN` padded to `size` bytes, newline included.
pub fn burst(k: usize, count: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * size);
    for i in 0..count {
        let mut line = format!("s{k} {i:05} ");
        line.push_str(&"x".repeat(size.saturating_sub(line.len() + 1)));
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// A loopback port that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Two network namespaces joined by a veth pair, as two machines on one LAN: `a` is 10.231.0.1,
/// `b` is 10.231.0.2. Removed on drop, also when the test fails.
pub struct Lan {
    pub a: String,
    pub b: String,
    /// The veth ends: `dev_a` in `a`, `dev_b` in `b`.
    pub dev_a: String,
    pub dev_b: String,
}

/// Adds network namespace `name`. Names carry this process's id: one left by a killed test
/// process that had the same id (pids are reused) is deleted first, or `add` would fail.
fn fresh_netns(name: &str) -> Result<(), String> {
    let _ = ip(&["netns", "del", name]);
    ip(&["netns", "add", name])
}

fn ip(args: &[&str]) -> Result<(), String> {
    let _spawning = spawning();
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lan {
    /// Builds the two hosts, or says why it cannot (not root, no `ip`, no namespaces).
    pub fn new() -> Result<Lan, String> {
        let tag = std::process::id();
        // Tests in one binary run at once: each LAN gets names of its own.
        let n = LANS.fetch_add(1, Ordering::Relaxed);
        let va = format!("pca{tag}x{n}");
        let vb = format!("pcb{tag}x{n}");
        let lan = Lan {
            a: format!("pc-a-{tag}-{n}"),
            b: format!("pc-b-{tag}-{n}"),
            dev_a: va.clone(),
            dev_b: vb.clone(),
        };
        // From here on, dropping `lan` (on an error too) removes whatever was made.
        fresh_netns(&lan.a)?;
        fresh_netns(&lan.b)?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &lan.a])?;
        ip(&["link", "set", &vb, "netns", &lan.b])?;
        for (ns, dev, addr) in [
            (&lan.a, &va, "10.231.0.1/24"),
            (&lan.b, &vb, "10.231.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }
}

static LANS: AtomicU16 = AtomicU16::new(0);

impl Lan {
    /// Runs `ip ARGS` inside host `ns` (one of this LAN's).
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `nft ARGS` inside host `ns`.
    pub fn nft(&self, ns: &str, args: &[&str]) -> Result<(), String> {
        let _spawning = spawning();
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "nft"])
            .args(args)
            .output()
            .map_err(|e| format!("cannot run nft: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nft {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the pair; a pair
        // left outside (set-up failed half way) is deleted by name.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
        let _ = ip(&["link", "del", &self.dev_a]);
    }
}

/// Skips a test that needs root or a system tool, saying why; under CI (`CI` set) a missing
/// prerequisite fails the test instead, so CI cannot go green without running it.
/// Two hosts of a LAN for a test, or `None` when they cannot be made (skipped, or failing under
/// `CI`, with the reason).
pub fn lan_or_skip() -> Option<Lan> {
    match Lan::new() {
        Ok(lan) => Some(lan),
        Err(why) => {
            skip_or_fail(&format!(
                "cannot create network namespaces ({why}); needs root and iproute2"
            ));
            None
        }
    }
}

pub fn skip_or_fail(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Resident memory of process `pid`, in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `peerchat 127.0.0.1:PORT --nick NICK [EXTRA]` as a plain child process with piped stdin and
/// stderr, for tests that drive its stdin or stdout directly; with its config directory, to
/// keep while it runs.
pub fn client_process(
    port: u16,
    nick: &str,
    extra: &[&str],
    stdout: Stdio,
) -> (Child, Option<TempDir>) {
    let mut cmd = Command::new(bin());
    let config = own_config(&mut cmd);
    let _spawning = spawning();
    let child = cmd
        .args([&format!("127.0.0.1:{port}"), "--nick", nick])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peerchat");
    (child, config)
}

/// Gives the node `cmd` starts a config directory of its own (`XDG_CONFIG_HOME`), unless the
/// test set or removed that variable itself: its identity key is made there, not in the
/// user's `~/.config`, and no two nodes of the tests share a key or a `known_keys` file.
/// Keep the directory while the node runs; it is removed on drop.
pub fn own_config(cmd: &mut Command) -> Option<TempDir> {
    if cmd.get_envs().any(|(name, _)| name == "XDG_CONFIG_HOME") {
        return None;
    }
    let dir = TempDir::new("config");
    cmd.env("XDG_CONFIG_HOME", &dir.0);
    Some(dir)
}

/// Taken shared while this process starts a child, exclusively while `free_range` probes ports.
static FORK_LOCK: RwLock<()> = RwLock::new(());

/// Hold this while starting a child process. Between fork and exec a child holds copies of all
/// of this process's sockets, so a probe listener of `free_range` closed meanwhile would stay
/// open (and its port busy, for a node about to bind it) until the exec; `free_range` waits for
/// no child to be starting and lets none start while it probes.
pub fn spawning() -> RwLockReadGuard<'static, ()> {
    FORK_LOCK.read().unwrap_or_else(PoisonError::into_inner)
}

/// Ranges handed out by `free_range` in this process so far, in ports.
static RANGES_GIVEN: AtomicU16 = AtomicU16::new(0);

/// `n` consecutive ports, `(first, last)`, all bindable on 127.0.0.1 right now, from 20000-29999
/// (below the Linux ephemeral range, so no outgoing connection takes one as its source port).
/// Each process starts at its own offset (from its pid) and each call moves past the ports given
/// before, going round the 10000 ports as a ring, so parallel tests, and parallel test binaries,
/// get ranges of their own.
pub fn free_range(n: u16) -> (u16, u16) {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 10_000;
    assert!(
        (1..=100).contains(&n),
        "free_range({n}): ask for 1 to 100 ports"
    );
    let base = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..200 {
        let step = u32::from(RANGES_GIVEN.fetch_add(n, Ordering::Relaxed));
        let offset = (base + step) % SPAN;
        if offset + u32::from(n) > SPAN {
            // Would run past 29999: this stretch is skipped (the counter has moved past it
            // already), so no later range of this process can overlap it.
            continue;
        }
        let first = u16::try_from(LOW + offset).expect("ports of 20000-29999 fit in u16");
        let last = first + (n - 1);
        // Bound all at once, then released when the vector is dropped, with no child process
        // starting meanwhile (see `spawning`).
        let probing = FORK_LOCK.write().unwrap_or_else(PoisonError::into_inner);
        let held: Result<Vec<TcpListener>, _> = (first..=last)
            .map(|p| TcpListener::bind(("127.0.0.1", p)))
            .collect();
        let free = held.is_ok();
        drop(held);
        drop(probing);
        if free {
            return (first, last);
        }
    }
    panic!("no {n} consecutive free ports found in 20000-29999 after 200 tries");
}

/// Polls `check` every 20 ms until it returns `Ok`, for at most `DEADLINE`; on timeout panics with
/// `what` and the last error. For conditions no process prints, such as which sockets are open.
pub fn wait_until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + DEADLINE;
    loop {
        let err = match check() {
            Ok(()) => return,
            Err(e) => e,
        };
        if Instant::now() > end {
            panic!("timed out waiting for {what}: {err}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn proc_addr(hex: &str) -> Option<SocketAddrV4> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints the address's bytes as a native-endian number.
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

/// The established IPv4 TCP connections of process `pid`, as `(local, remote)`, read from
/// `/proc` (Linux; also for a process in another network namespace). Empty once it has exited.
pub fn tcp_connections(pid: u32) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let inodes: HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st ... inode (field 9); state 01 is ESTABLISHED.
            if f.len() < 10 || f[3] != "01" {
                return None;
            }
            let inode: u64 = f[9].parse().ok()?;
            if !inodes.contains(&inode) {
                return None;
            }
            Some((proc_addr(f[1])?, proc_addr(f[2])?))
        })
        .collect()
}

/// How many established TCP connections join processes `a` and `b` directly (each end's local
/// address is the other's remote one).
pub fn links_between(a: u32, b: u32) -> usize {
    links(a, b).len()
}

/// The established TCP connections that join processes `a` and `b` directly, as `a`'s
/// `(local, remote)`: the same pairs later mean the same connections are still up.
pub fn links(a: u32, b: u32) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let theirs = tcp_connections(b);
    tcp_connections(a)
        .into_iter()
        .filter(|(local, remote)| theirs.contains(&(*remote, *local)))
        .collect()
}

/// Temporary files handed out by `TempPath` in this process so far.
static TEMPS_GIVEN: AtomicU16 = AtomicU16::new(0);

/// A path in the temporary directory, unique to this process and call; whatever is there is
/// removed on creation and on drop, also when the test fails.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        let k = TEMPS_GIVEN.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("peerchat-test-{}-{k}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("temporary path is UTF-8")
    }

    /// The file's lines; empty when it does not exist.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A directory in the temporary directory, unique to this process and call, made empty on
/// creation and removed with everything in it on drop, also when the test fails.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        // A unique name; the file `TempPath` would remove is not there.
        let path = TempPath::new(tag).0.clone();
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir(path)
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("temporary path is UTF-8")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bridges made by `Bridge::new` in this process so far.
static BRIDGES_MADE: AtomicU16 = AtomicU16::new(0);

/// `n` hosts on one LAN segment: a network namespace each, every one joined by a veth pair to a
/// Linux bridge that lives in a namespace of its own. Host `i` (from 0) is `hosts[i]` with
/// address `ips[i]` = 10.232.X.(i+1)/24, X from the process id. Names are unique per process
/// and call; every namespace (and with it every link) is removed on drop, also when the test
/// fails or when building stops half way.
pub struct Bridge {
    pub hosts: Vec<String>,
    pub ips: Vec<String>,
    hub: String,
}

impl Bridge {
    /// Builds the LAN, or says why it cannot (not root, no `ip`, no namespaces or bridges).
    pub fn new(n: usize) -> Result<Bridge, String> {
        assert!((1..=250).contains(&n), "Bridge::new({n}): 1 to 250 hosts");
        let pid = std::process::id();
        let tag = format!("{pid}-{}", BRIDGES_MADE.fetch_add(1, Ordering::Relaxed));
        let x = pid % 250 + 1;
        let mut lan = Bridge {
            hosts: Vec::new(),
            ips: Vec::new(),
            hub: format!("pc-br-{tag}"),
        };
        fresh_netns(&lan.hub)?;
        ip(&["-n", &lan.hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lan.hub, "link", "set", "br0", "up"])?;
        for i in 1..=n {
            let ns = format!("pc-h{i}-{tag}");
            fresh_netns(&ns)?;
            lan.hosts.push(ns.clone());
            // The bridge end lives in the bridge's namespace, the host end (eth0) in the host's.
            let port = format!("p{i}");
            ip(&[
                "-n", &lan.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&["-n", &lan.hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &lan.hub, "link", "set", &port, "up"])?;
            let addr = format!("10.232.{x}.{i}");
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            lan.ips.push(addr);
        }
        Ok(lan)
    }
}

/// `Bridge::new(n)`, or `None` once the test is skipped (failed under CI) saying why not.
pub fn bridge_or_skip(n: usize) -> Option<Bridge> {
    match Bridge::new(n) {
        Ok(lan) => Some(lan),
        Err(why) => {
            skip_or_fail(&format!(
                "cannot build a bridged LAN of network namespaces ({why}); needs root and iproute2"
            ));
            None
        }
    }
}

impl Bridge {
    /// The namespace of the bridge itself, where host `i`'s link ends as port `p{i+1}`.
    pub fn hub(&self) -> &str {
        &self.hub
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Deleting a namespace deletes the links in it, and a veth end takes its pair along.
        for ns in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["netns", "del", &self.hub]);
    }
}
