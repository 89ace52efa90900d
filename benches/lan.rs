//! `--lan` figures: how long four hosts on one LAN take from start to the first message
//! exchanged (and to every node having met and heard every other), and how many bytes of beacon
//! traffic one node sends a minute, computed from the beacon's size and its rate and counted on
//! the bridge (the bytes its port received from the node's host).
//!
//! Needs root and `ip netns` (iproute2): each host is a network namespace with a veth link to a
//! bridge in a namespace of its own, as the integration tests build them. Without them it says
//! so and measures nothing.
//!
//! `cargo bench --bench lan`; `LAN_RUNS` (default 5) start-ups are timed, `LAN_WINDOW` (seconds,
//! default 60) is how long the beacon traffic is counted; `PEERCHAT_BIN` picks another build.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

// Only the binary's path and the killed-on-drop child of the shared helpers are used here.
#[allow(dead_code)]
mod common;
use common::{peerchat_bin, Killed};

use peerchat::protocol::beacon;
use peerchat::reactor::BEACON_EVERY;

/// Ethernet (14), IPv4 (20) and UDP (8) headers around a beacon, as Linux counts link bytes.
const FRAME_OVERHEAD: usize = 14 + 20 + 8;

/// Runs `ip ARGS`; the error says which command failed and why.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(format!("ip {}: {}", args.join(" "), why.trim()))
}

/// A bridge and `n` hosts on it (10.233.R.i/24), namespaces deleted on drop.
struct Net {
    namespaces: Vec<String>,
}

impl Net {
    fn new(n: usize, run: usize) -> Result<Net, String> {
        let tag = format!("{}-{run}", std::process::id());
        let hub = format!("pcb-br-{tag}");
        let mut net = Net {
            namespaces: vec![hub.clone()],
        };
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=n {
            let host = format!("pcb-h{i}-{tag}");
            ip(&["netns", "add", &host])?;
            net.namespaces.push(host.clone());
            let port = format!("p{i}");
            let link = [
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &host,
            ];
            ip(&link)?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("10.233.{}.{i}/24", run % 250);
            ip(&["-n", &host, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    fn host(&self, i: usize) -> &str {
        &self.namespaces[i + 1]
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A `peerchat --lan --json` on a host, with its stdin and its JSON events (host index, event,
/// when read) on a channel shared by all nodes of a run.
struct LanNode {
    child: Killed,
    stdin: ChildStdin,
}

fn start(
    ns: &str,
    nick: &str,
    index: usize,
    events: &std::sync::mpsc::Sender<(usize, Value, Instant)>,
) -> LanNode {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(peerchat_bin())
        .args(["--lan", "--json", "--nick", nick])
        .env("XDG_CONFIG_HOME", config_dir(nick))
        .env_remove("PEERCHAT_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start peerchat");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let tx = events.clone();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send((index, v, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    LanNode {
        child: Killed(child),
        stdin,
    }
}

/// One start-up of four hosts: seconds to the first message any node shows, and to every node
/// having shown a message from each other one. A node says a line once it has met one peer, and
/// another once it has met all three.
fn one_run(run: usize) -> Result<(f64, f64), String> {
    const N: usize = 4;
    let net = Net::new(N, run)?;
    let (tx, rx) = channel();
    let t0 = Instant::now();
    let mut nodes: Vec<LanNode> = (0..N)
        .map(|i| start(net.host(i), &format!("n{i}"), i, &tx))
        .collect();
    let mut joins = [0usize; N];
    let mut heard = [0usize; N];
    let mut first = None;
    let end = t0 + Duration::from_secs(30);
    while heard.iter().any(|&h| h < N - 1) {
        let (i, v, at) = next(&rx, end)?;
        match v["event"].as_str() {
            Some("join") => {
                joins[i] += 1;
                let line = match joins[i] {
                    1 => Some("first"),
                    j if j == N - 1 => Some("all"),
                    _ => None,
                };
                if let Some(line) = line {
                    writeln!(nodes[i].stdin, "{line}").map_err(|e| e.to_string())?;
                }
            }
            Some("message") => {
                first.get_or_insert(at - t0);
                heard[i] += usize::from(v["text"] == "all");
            }
            _ => {}
        }
    }
    let all = t0.elapsed();
    for n in &mut nodes {
        let _ = n.child.0.kill();
    }
    let first = first.ok_or("no message")?;
    Ok((first.as_secs_f64(), all.as_secs_f64()))
}

fn next(
    rx: &Receiver<(usize, Value, Instant)>,
    end: Instant,
) -> Result<(usize, Value, Instant), String> {
    match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        Ok(e) => Ok(e),
        Err(RecvTimeoutError::Timeout) => Err("the nodes did not meet within 30 s".into()),
        Err(RecvTimeoutError::Disconnected) => Err("every node ended".into()),
    }
}

/// The output of `cat FILES` run inside namespace `ns` (`/proc/net/*` shows that namespace).
fn cat_in(ns: &str, files: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .args(files)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bytes the bridge received on its port `dev` (what the host on it sent).
fn bridge_rx_bytes(net: &Net, dev: &str) -> Result<u64, String> {
    let dev_file = cat_in(&net.namespaces[0], &["/proc/net/dev"])?;
    dev_file
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{dev}:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or(format!("no {dev} on the bridge"))
}

/// The UDP datagrams host `ns` sent.
fn udp_sent(ns: &str) -> Result<u64, String> {
    let snmp = cat_in(ns, &["/proc/net/snmp"])?;
    let udp: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Udp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let [names, values] = udp.as_slice() else {
        return Err("no Udp counters in /proc/net/snmp".into());
    };
    names
        .iter()
        .position(|n| *n == "OutDatagrams")
        .and_then(|i| values.get(i)?.parse().ok())
        .ok_or("no OutDatagrams".into())
}

/// One node on the bridge, and a host beside it that runs nothing, both counted for `window`
/// once the node's first beacon and the multicast joins of start-up are past: (the node's UDP
/// datagrams, the bytes the bridge received from its host, and from the idle host).
fn beacon_traffic(window: Duration) -> Result<(u64, u64, u64), String> {
    let net = Net::new(2, 250)?;
    let (tx, rx) = channel();
    let _node = start(net.host(0), "alone", 0, &tx);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v, _) = next(&rx, end)?;
        let text = v["text"].as_str().unwrap_or_default();
        if v["event"] == "info" && text.starts_with("listening") {
            break;
        }
    }
    thread::sleep(Duration::from_secs(1));
    let (d0, b0, i0) = (
        udp_sent(net.host(0))?,
        bridge_rx_bytes(&net, "p1")?,
        bridge_rx_bytes(&net, "p2")?,
    );
    thread::sleep(window);
    let (d1, b1, i1) = (
        udp_sent(net.host(0))?,
        bridge_rx_bytes(&net, "p1")?,
        bridge_rx_bytes(&net, "p2")?,
    );
    Ok((d1 - d0, b1 - b0, i1 - i0))
}

/// Each node's own identity key, in a directory of its own removed at the end.
fn config_dir(nick: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pc-lan-bench-{}-{nick}", std::process::id()))
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Err(why) = ip(&["netns", "list"]).and_then(|()| Net::new(1, 249).map(drop)) {
        println!("lan: skipped, needs root and ip netns ({why})");
        return;
    }
    let runs = env_num("LAN_RUNS", 5) as usize;
    let mut firsts = Vec::new();
    let mut alls = Vec::new();
    for run in 0..runs {
        match one_run(run) {
            Ok((first, all)) => {
                firsts.push(first);
                alls.push(all);
            }
            Err(e) => println!("lan: run {run} failed: {e}"),
        }
    }
    let show = |what: &str, v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        if let (Some(min), Some(max)) = (v.first(), v.last()) {
            let median = v[v.len() / 2];
            println!(
                "lan: 4 hosts, {what}: median {:.0} ms (min {:.0}, max {:.0}, {} runs)",
                median * 1e3,
                min * 1e3,
                max * 1e3,
                v.len()
            );
        }
    };
    show("start to first message exchanged", &mut firsts);
    show(
        "start to every node meeting and hearing every other",
        &mut alls,
    );

    let window = Duration::from_secs(env_num("LAN_WINDOW", 60));
    let size = beacon::encode(5000, 1, "lobby", None, [0; 16]).len();
    let per_minute = 60.0 / BEACON_EVERY.as_secs_f64();
    let computed = (size + FRAME_OVERHEAD) as f64 * per_minute;
    println!(
        "lan: beacon of room lobby: {size} bytes of UDP payload, {} on the link, {per_minute:.0} a \
         minute per interface: {computed:.0} bytes/min computed",
        size + FRAME_OVERHEAD
    );
    let key = beacon::BeaconKey::derive(&[0; 32]);
    let private = beacon::encode(5000, 1, "lobby", Some(&key), [0; 16]).len();
    println!(
        "lan: a private group's beacon: {private} bytes of UDP payload: {:.0} bytes/min computed",
        (private + FRAME_OVERHEAD) as f64 * per_minute
    );
    match beacon_traffic(window) {
        Ok((datagrams, bytes, idle)) => {
            let scale = 60.0 / window.as_secs_f64();
            println!(
                "lan: counted over {} s on the bridge: {datagrams} UDP datagrams, {bytes} \
                 bytes from the node's host, less {idle} bytes an idle host beside it sent (IPv6 and multicast \
                 chatter of the kernel): {:.1} datagrams/min, {:.0} bytes/min",
                window.as_secs(),
                datagrams as f64 * scale,
                bytes.saturating_sub(idle) as f64 * scale
            );
        }
        Err(e) => println!("lan: counting beacon traffic failed: {e}"),
    }
    for nick in ["n0", "n1", "n2", "n3", "alone"] {
        let _ = std::fs::remove_dir_all(config_dir(nick));
    }
}
