//! `--lan`: hosts in network namespaces on one bridge, each running `peerchat --lan` with no
//! address given, find each other by their UDP beacons and chat; rooms and private groups stay
//! apart; a node without `--lan` opens no UDP socket and sends no datagram. UDP is counted from
//! `/proc/PID/net/snmp` and `/proc/PID/net/udp`, which show the node's own namespace, and on the
//! bridge by a packet socket on each host's port; beacon bytes are read by a socket the test
//! opens inside a host of the bridge.

use std::collections::HashSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use peerchat::reactor::{BEACON_GROUP, BEACON_PORT};
use serde_json::Value;

use crate::util::{self, bin, links_between, wait_until, Bridge, Node};

/// `n` hosts on one bridge, or `None` after saying why not (failing under CI).
fn bridge(n: usize) -> Option<Bridge> {
    match Bridge::new(n) {
        Ok(lan) => Some(lan),
        Err(why) => {
            util::skip_or_fail(&format!(
                "cannot build a bridged LAN of network namespaces ({why}); needs root and iproute2"
            ));
            None
        }
    }
}

/// `peerchat --lan --json --nick NICK EXTRA` on host `ns`, with `secret` in `PEERCHAT_SECRET`.
fn lan_node(ns: &str, nick: &str, extra: &[&str], secret: Option<&str>) -> Node {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        bin(),
        "--lan",
        "--json",
        "--nick",
        nick,
    ])
    .args(extra);
    match secret {
        Some(s) => cmd.env("PEERCHAT_SECRET", s),
        None => cmd.env_remove("PEERCHAT_SECRET"),
    };
    Node::spawn_with(&mut cmd)
}

/// A field of the `Udp:` line of `/proc/PID/net/snmp`: the counters of the network namespace
/// process `pid` is in.
fn udp_counter(pid: u32, field: &str) -> u64 {
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap_or_default();
    let rows: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Udp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let [names, values] = rows.as_slice() else {
        panic!("no Udp counters in /proc/{pid}/net/snmp");
    };
    let i = names
        .iter()
        .position(|n| *n == field)
        .expect("a Udp counter");
    values[i].parse().expect("a number")
}

/// The local ports of the UDP sockets in process `pid`'s network namespace.
fn udp_ports(pid: u32) -> Vec<u16> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.rsplit(':').next())
        .filter_map(|p| u16::from_str_radix(p, 16).ok())
        .collect()
}

/// Each member but the node itself, with how the node found it (`None` when not said).
type FoundList = Vec<(String, Option<String>)>;

/// `/names` on `node`: how it found each member.
fn found(node: &mut Node) -> FoundList {
    node.send("/names");
    let names = node.wait_event(|v| v["event"] == "names");
    names["names"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|n| n["you"] != true)
        .map(|n| {
            let nick = n["nick"].as_str().unwrap_or_default().to_string();
            (nick, n["found"].as_str().map(str::to_string))
        })
        .collect()
}

/// Waits until every node of `nodes` (nick, node) has seen every other join.
fn all_joined(nodes: &mut [(&str, Node)]) {
    let nicks: Vec<String> = nodes.iter().map(|(n, _)| n.to_string()).collect();
    for (me, node) in nodes.iter_mut() {
        for other in nicks.iter().filter(|o| o.as_str() != *me) {
            node.wait_join(other);
        }
    }
}

/// Each node says a line; every other node shows it.
fn round(nodes: &mut [(&str, Node)], tag: &str) {
    for (nick, node) in nodes.iter_mut() {
        node.send(&format!("{tag} from {nick}"));
    }
    let nicks: Vec<String> = nodes.iter().map(|(n, _)| n.to_string()).collect();
    for (me, node) in nodes.iter_mut() {
        for other in nicks.iter().filter(|o| o.as_str() != *me) {
            node.wait_message(other, &format!("{tag} from {other}"));
        }
    }
}

/// How each link of `views` (each node's `/names`) was found, as the pair of its two ends'
/// words, sorted; `Err` while a node does not yet list every other node as a neighbour.
fn link_views(views: &[(String, FoundList)]) -> Result<Vec<[String; 2]>, String> {
    let view = |a: &str, b: &str| -> Option<String> {
        let (_, list) = views.iter().find(|(me, _)| me == a)?;
        let (_, f) = list.iter().find(|(nick, _)| nick == b)?;
        f.clone()
    };
    let mut links = Vec::new();
    for (a, _) in views {
        for (b, _) in views.iter().filter(|(b, _)| b > a) {
            let (Some(ab), Some(ba)) = (view(a, b), view(b, a)) else {
                return Err(format!("{a} and {b} are not neighbours yet: {views:?}"));
            };
            let mut pair = [ab, ba];
            pair.sort();
            links.push(pair);
        }
    }
    Ok(links)
}

/// Waits until each node is a direct neighbour of every other over one connection, and checks
/// how each link was found: one end dialled (by beacon, or by a `PEERS` list that named it),
/// the other accepted; most by beacon.
fn every_link_found_by_beacon(nodes: &mut [(&str, Node)]) {
    let n = nodes.len();
    let mut links = Vec::new();
    wait_until("every node a neighbour of every other, once", || {
        let views: Vec<(String, FoundList)> = nodes
            .iter_mut()
            .map(|(me, node)| (me.to_string(), found(node)))
            .collect();
        links = link_views(&views)?;
        // Two ends that both dialled: a duplicate not yet retired; look again.
        match links.iter().find(|p| p[0] != "accepted") {
            Some(p) => Err(format!("a link found as {p:?}: {views:?}")),
            None => Ok(()),
        }
    });
    for pair in &links {
        assert!(pair[1] == "beacon" || pair[1] == "dialled", "{links:?}");
    }
    let beacons = links.iter().filter(|p| p[1] == "beacon").count();
    assert!(beacons >= n - 1, "few links found by beacon: {links:?}");
}

#[test]
fn hosts_on_a_bridge_find_each_other_by_beacon_chat_and_a_later_one_joins() {
    let Some(lan) = bridge(4) else { return };
    let mut nodes: Vec<(&str, Node)> = ["a", "b", "c"]
        .into_iter()
        .enumerate()
        .map(|(i, nick)| (nick, lan_node(&lan.hosts[i], nick, &[], None)))
        .collect();
    for (_, node) in nodes.iter_mut() {
        // No address given: port 5000 on every interface.
        node.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    }
    all_joined(&mut nodes);
    round(&mut nodes, "hello");
    every_link_found_by_beacon(&mut nodes);

    // d starts once the others are settled: it hears their beacons, they hear its own.
    let late = lan_node(&lan.hosts[3], "d", &[], None);
    nodes.push(("d", late));
    for (nick, node) in nodes.iter_mut() {
        if *nick != "d" {
            node.wait_join("d");
        }
    }
    all_joined(&mut nodes[3..]);
    round(&mut nodes, "later");
    every_link_found_by_beacon(&mut nodes);
    // Each joined once: neither a beacon heard again nor a dial from both ends made a second
    // member of anyone.
    for (me, node) in &nodes {
        let joins: Vec<String> = node
            .events()
            .iter()
            .filter(|v| v["event"] == "join")
            .filter_map(|v| v["nick"].as_str().map(str::to_string))
            .collect();
        let unique: HashSet<&String> = joins.iter().collect();
        assert_eq!(
            unique.len(),
            joins.len(),
            "{me} saw a join twice: {joins:?}"
        );
    }
}

#[test]
fn two_rooms_on_one_bridge_stay_apart() {
    let Some(lan) = bridge(4) else { return };
    let mut blue: Vec<(&str, Node)> = vec![
        ("c", lan_node(&lan.hosts[2], "c", &["--room", "blue"], None)),
        ("d", lan_node(&lan.hosts[3], "d", &["--room", "blue"], None)),
    ];
    all_joined(&mut blue);
    // The default room, lobby, is another room than blue.
    let mut lobby: Vec<(&str, Node)> = vec![
        ("a", lan_node(&lan.hosts[0], "a", &[], None)),
        (
            "b",
            lan_node(&lan.hosts[1], "b", &["--room", "lobby"], None),
        ),
    ];
    all_joined(&mut lobby);
    round(&mut lobby, "in lobby");
    round(&mut blue, "in blue");
    // Until a has read beacons of all three others twice (its own come back to it too), so
    // the blue ones had every chance to be dialled.
    let a_pid = lobby[0].1.child.id();
    wait_until("a heard two rounds of beacons", || {
        let got = udp_counter(a_pid, "InDatagrams");
        (got >= 8).then_some(()).ok_or(format!("{got} datagrams"))
    });
    round(&mut lobby, "still lobby");
    for (me, node) in lobby.iter().chain(&blue) {
        let strangers = if lobby.iter().any(|(n, _)| n == me) {
            ["c", "d"]
        } else {
            ["a", "b"]
        };
        for v in node.events() {
            assert!(
                !(v["event"] == "join" && strangers.iter().any(|s| v["nick"] == *s)),
                "{me} met another room: {v}"
            );
        }
    }
    for (_, x) in &lobby {
        for (_, y) in &blue {
            assert_eq!(links_between(x.child.id(), y.child.id()), 0);
        }
    }
}

/// Runs `f` on a thread of its own inside network namespace `ns` (the test's other threads stay
/// out); sockets it opens there stay there.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> thread::JoinHandle<Result<T, String>> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: setns on this thread only, with a namespace file kept open for the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        f()
    })
}

/// The IPv4 UDP frames host `i` of a bridge sends, counted on its port of the bridge by a
/// packet socket that a thread of its own reads until `finish`.
struct PortWatch {
    udp: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl PortWatch {
    /// Starts counting on host `i`'s port; returns once the socket is bound, so that every
    /// frame the host sends from then on is counted, however late the reader thread runs.
    fn start(lan: &Bridge, i: usize) -> PortWatch {
        let port = format!("p{}", i + 1);
        let socket = in_namespace(lan.hub(), move || packet_socket(&port))
            .join()
            .expect("a thread")
            .expect("a packet socket on the bridge");
        let udp = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (udp.clone(), stop.clone());
        let reader = thread::spawn(move || count_udp(&socket, &count, &stopped));
        PortWatch {
            udp,
            stop,
            reader: Some(reader),
        }
    }

    /// The IPv4 UDP frames counted so far.
    fn udp(&self) -> usize {
        self.udp.load(Ordering::SeqCst)
    }

    /// Stops counting once the frames queued on the socket are read; the total.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader thread");
        }
        self.udp()
    }
}

impl Drop for PortWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A packet socket on interface `name` of this thread's namespace, for every frame that passes
/// it, whose reads wait at most 100 ms. Opened for no protocol and given them all by `bind`:
/// opened for all, it would queue the frames of every interface until bound.
fn packet_socket(name: &str) -> Result<OwnedFd, String> {
    let name = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: a plain socket(2) call; the descriptor is checked, then owned by `socket`.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(format!(
            "packet socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` is a fresh socket nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_ll is valid; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: `name` is a NUL-terminated name.
    sll.sll_ifindex = match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => return Err(format!("no interface {name:?}")),
        i => i as i32,
    };
    let size = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is a valid sockaddr_ll of `size` bytes.
    if unsafe { libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), size) } != 0 {
        return Err(format!("bind: {}", std::io::Error::last_os_error()));
    }
    let wait = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    let tv = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: a timeval of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&wait as *const libc::timeval).cast(),
            tv,
        )
    };
    Ok(socket)
}

/// Reads packet socket `socket` until `stop`, then what is queued on it, adding to `udp` each
/// IPv4 UDP frame the host sends.
fn count_udp(socket: &OwnedFd, udp: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let flags = if stopping { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: zeroed sockaddr_ll is valid; recvfrom fills it.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` and `from` are live and as large as said.
        let n = unsafe {
            libc::recvfrom(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            // Nothing within the wait; once stopping, nothing left.
            if stopping {
                return;
            }
            continue;
        };
        // Frames the bridge sends the host are outgoing on this port: not the host's.
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let ipv4 = n >= 34 && buf[12..14] == [0x08, 0x00];
        if ipv4 && buf[23] == 17 {
            udp.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn without_lan_no_udp_socket_is_opened_nor_a_datagram_sent() {
    let Some(lan) = bridge(2) else { return };
    // Both ports watched before either node starts.
    let watch_plain = PortWatch::start(&lan, 0);
    let watch_loud = PortWatch::start(&lan, 1);
    let mut plain = Node::spawn_in(
        &lan.hosts[0],
        &["-l", "0.0.0.0:5000", "--json", "--nick", "plain"],
    );
    plain.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let mut loud = lan_node(&lan.hosts[1], "loud", &[], None);
    // Listening, it runs in its namespace (before, its pid may still be `ip`'s, outside).
    loud.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let (plain_pid, loud_pid) = (plain.child.id(), loud.child.id());
    // The counter does count: the --lan node's first beacon and the next, 5 s later.
    wait_until("the --lan node sent two beacons", || {
        let sent = udp_counter(loud_pid, "OutDatagrams");
        (sent >= 2).then_some(()).ok_or(format!("{sent} sent"))
    });
    assert!(udp_ports(loud_pid).contains(&BEACON_PORT));
    assert_eq!(udp_counter(plain_pid, "OutDatagrams"), 0);
    assert_eq!(udp_ports(plain_pid), Vec::<u16>::new(), "a UDP socket");
    // Its beacons reached a host that does not listen for them: no one dialled anyone.
    assert_eq!(links_between(plain_pid, loud_pid), 0);
    assert!(!plain.events().iter().any(|v| v["event"] == "join"));
    // On the bridge: the --lan host's beacons are seen there (by a reader that may lag behind
    // the sender on a busy machine), and no UDP from the other host all along.
    wait_until("the --lan host's two beacons on the bridge", || {
        let seen = watch_loud.udp();
        (seen >= 2)
            .then_some(())
            .ok_or(format!("{seen} UDP frames"))
    });
    assert_eq!(
        watch_plain.finish(),
        0,
        "UDP frames from the host without --lan"
    );
}

/// Beacons sent by `from` on the bridge, read by a socket in host `ns` (which runs no node):
/// the first `want`, each datagram's bytes.
fn beacons_read_in(ns: &str, from: Ipv4Addr, local: Ipv4Addr, want: usize) -> Vec<Vec<u8>> {
    let reader = in_namespace(ns, move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, BEACON_PORT)).map_err(|e| e.to_string())?;
        s.join_multicast_v4(&BEACON_GROUP, &local)
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let end = Instant::now() + util::DEADLINE;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < want && Instant::now() < end {
            if let Ok((n, src)) = s.recv_from(&mut buf) {
                if src.ip() == from {
                    got.push(buf[..n].to_vec());
                }
            }
        }
        Ok(got)
    });
    let got = reader
        .join()
        .expect("the reader thread")
        .expect("reading beacons");
    assert_eq!(got.len(), want, "beacons from {from}");
    got
}

#[test]
fn a_private_group_hides_its_room_in_beacons_and_meets_only_its_own() {
    let Some(lan) = bridge(4) else { return };
    let secret = "lan beacons keep the room to the group";
    let room = "hiddenroom42";
    let ip = |i: usize| lan.ips[i].parse::<Ipv4Addr>().expect("an address");
    let mut group: Vec<(&str, Node)> = vec![
        (
            "a",
            lan_node(&lan.hosts[0], "a", &["--room", room], Some(secret)),
        ),
        (
            "b",
            lan_node(&lan.hosts[1], "b", &["--room", room], Some(secret)),
        ),
    ];
    let mut open = lan_node(&lan.hosts[2], "open", &["--room", room], None);
    all_joined(&mut group);
    round(&mut group, "private");
    let private = beacons_read_in(&lan.hosts[3], ip(0), ip(3), 2);
    let public = beacons_read_in(&lan.hosts[3], ip(2), ip(3), 1);
    let shows = |b: &[u8], needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    // The reader does see a room: the open node's beacon names it.
    assert!(shows(&public[0], room.as_bytes()), "{:?}", public[0]);
    for b in &private {
        assert!(!shows(b, room.as_bytes()), "the room in {b:?}");
        assert!(!shows(b, b"lobby"));
    }
    assert_ne!(private[0], private[1], "two beacons alike");
    // The open node of the same room name is not of the group: no one dialled it, it dialled
    // no one (it cannot read their beacons).
    open.send("/names");
    let names = open.wait_event(|v| v["event"] == "names");
    assert_eq!(names["names"].as_array().map(Vec::len), Some(1), "{names}");
    for (_, node) in &group {
        assert_eq!(links_between(node.child.id(), open.child.id()), 0);
    }
    let views: Vec<Value> = group[0].1.events();
    assert!(!views
        .iter()
        .any(|v| v["event"] == "join" && v["nick"] == "open"));
}

#[test]
fn lan_goes_with_listen_and_mesh_and_two_nodes_of_one_host() {
    let Some(lan) = bridge(2) else { return };
    let mesh_host = lan.ips[1].clone();
    let listening = |v: &Value| {
        v["event"] == "info"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("listening on"))
    };
    let starts: [(&str, usize, Vec<&str>); 4] = [
        ("x", 0, vec![]),
        ("y", 0, vec![]),
        ("z", 1, vec!["-l", "0.0.0.0:6000"]),
        ("w", 1, vec!["--mesh", "7000-7001", "--host", &mesh_host]),
    ];
    let mut nodes: Vec<(&str, Node)> = Vec::new();
    let mut ports = Vec::new();
    // One after the other, each listening before the next starts: x has taken 5000 when y
    // looks for a port on the same host.
    for (nick, host, extra) in starts {
        let mut node = lan_node(&lan.hosts[host], nick, &extra, None);
        let text = node.wait_event(listening)["text"].to_string();
        ports.push(
            text.trim_matches('"')
                .rsplit(':')
                .next()
                .map(str::to_string),
        );
        nodes.push((nick, node));
    }
    // Two nodes of one host: the first has port 5000, the second another free one; -l and
    // --mesh listen where they are told.
    let port = |i: usize| ports[i].clone().unwrap_or_default();
    assert_eq!(port(0), "5000", "{ports:?}");
    assert_ne!(port(1), "5000", "{ports:?}");
    assert_eq!(port(2), "6000");
    assert_eq!(port(3), "7000");
    all_joined(&mut nodes);
    round(&mut nodes, "mixed");
}

#[test]
fn a_piped_line_at_start_reaches_the_nodes_already_there() {
    let Some(lan) = bridge(2) else { return };
    let mut there = lan_node(&lan.hosts[0], "there", &[], None);
    there.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    // As `echo build done | peerchat --lan`: the line is there at once, then input ends.
    let mut piped = lan_node(&lan.hosts[1], "ci", &[], None);
    piped.send("build done");
    piped.close_stdin();
    there.wait_message("ci", "build done");
    assert!(piped.wait_exit().success());
    assert!(
        !piped
            .history
            .iter()
            .any(|l| l.contains("nobody is connected")),
        "{:?}",
        piped.history
    );
}

#[test]
fn a_beacon_from_outside_the_hosts_networks_is_not_dialled() {
    let Some(lan) = bridge(2) else { return };
    let (ana_ip, other_ip) = (lan.ips[0].clone(), lan.ips[1].clone());
    // Host 1 also holds an address of no network of host 0's, which host 0 can still reach
    // (a route on its link): a dial to it would arrive, so only the rule keeps it from coming.
    const FAR: &str = "198.51.100.9";
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&[
        "-n",
        &lan.hosts[1],
        "addr",
        "add",
        &format!("{FAR}/32"),
        "dev",
        "eth0",
    ]);
    ip(&[
        "-n",
        &lan.hosts[0],
        "route",
        "add",
        &format!("{FAR}/32"),
        "dev",
        "eth0",
    ]);
    let mut ana = lan_node(&lan.hosts[0], "ana", &[], None);
    ana.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let prober = in_namespace(&lan.hosts[1], move || {
        let far = std::net::TcpListener::bind((FAR, 7001)).map_err(|e| e.to_string())?;
        let near =
            std::net::TcpListener::bind((other_ip.as_str(), 7002)).map_err(|e| e.to_string())?;
        far.set_nonblocking(true).map_err(|e| e.to_string())?;
        // The far beacon first, then the near one: a node that dialled the far one would
        // have done so before it dialled the near one.
        for (from, port, node) in [(FAR, 7001, 0xfa4), (other_ip.as_str(), 7002, 0x4ea4)] {
            let beacon = peerchat::protocol::beacon::encode(port, node, "lobby", None, [7; 16]);
            let udp = UdpSocket::bind((from, 0)).map_err(|e| e.to_string())?;
            udp.send_to(&beacon, (ana_ip.as_str(), BEACON_PORT))
                .map_err(|e| e.to_string())?;
        }
        let (mut near_conn, _) = near.accept().map_err(|e| e.to_string())?;
        // Its hello read: the node has long acted on both beacons.
        near_conn
            .set_read_timeout(Some(util::DEADLINE))
            .map_err(|e| e.to_string())?;
        let mut hello = [0u8; 9];
        std::io::Read::read_exact(&mut near_conn, &mut hello).map_err(|e| e.to_string())?;
        Ok((hello, far.accept().map(|(_, from)| from)))
    });
    let (hello, far) = prober.join().expect("a thread").expect("the probe");
    assert_eq!(&hello, b"peerchat/", "the near beacon was dialled");
    assert!(far.is_err(), "the far beacon was dialled: {far:?}");
}
