//! Mesh mode (`--mesh RANGE`), the chat commands, the log file and peer exchange, end to end:
//! the real binary over loopback, each test on a port range of its own (`util::free_range`), or
//! over network namespaces joined by a bridge.
//!
//! Counting "exactly once" without sleeping: after everyone has seen a round of messages, each
//! node sends a marker and everyone waits for all markers. A node relays what it receives before
//! anything it types later, on the same ordered connection, so once every marker is in, every
//! duplicate some node could have relayed would be in too.

use std::net::TcpListener;
use std::process::Command;

use crate::util::{self, free_range, links_between, wait_until, Node, TempDir, TempPath};
use serde_json::Value;

/// A running node and the nick the others know it by.
struct Peer {
    node: Node,
    nick: String,
    port: u16,
}

impl Peer {
    fn pid(&self) -> u32 {
        self.node.child.id()
    }
}

fn range_arg((first, last): (u16, u16)) -> String {
    format!("{first}-{last}")
}

/// Waits for the `listening on HOST:PORT` info, checks that it is the first line and well formed,
/// and returns the port.
fn listening_port(node: &mut Node) -> u16 {
    let ev = node.wait_event(|v| {
        v["event"] == "info"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("listening on "))
    });
    let first: Value = serde_json::from_str(&node.history[0]).expect("the first line is JSON");
    assert_eq!(
        first, ev,
        "the listening line comes first: {:#?}",
        node.history
    );
    assert!(ev["ts"].is_string(), "{ev}");
    ev["text"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a port at the end of the listening line")
}

/// Starts `peerchat --mesh FIRST-LAST --json --nick NICK EXTRA...` and waits until it listens,
/// on a port of the range.
fn mesh(range: (u16, u16), nick: &str, extra: &[&str]) -> Peer {
    let r = range_arg(range);
    let mut args = vec!["--mesh", r.as_str(), "--json", "--nick", nick];
    args.extend_from_slice(extra);
    let mut node = Node::spawn(&args);
    let port = listening_port(&mut node);
    assert!(
        (range.0..=range.1).contains(&port),
        "{nick} listens on {port}, outside {r}"
    );
    Peer {
        node,
        nick: nick.to_string(),
        port,
    }
}

/// Every peer waits for every other one's join.
fn wait_all_joined(peers: &mut [Peer]) {
    let nicks: Vec<String> = peers.iter().map(|p| p.nick.clone()).collect();
    for p in peers.iter_mut() {
        for nick in &nicks {
            if *nick != p.nick {
                p.node.wait_join(nick);
            }
        }
    }
}

/// Nodes with these nicks, started one after another on a range of as many ports, each having
/// seen all the others join.
fn joined_mesh(nicks: &[&str]) -> Vec<Peer> {
    let n = u16::try_from(nicks.len()).expect("a few nodes");
    let range = free_range(n);
    let mut peers: Vec<Peer> = nicks.iter().map(|n| mesh(range, n, &[])).collect();
    wait_all_joined(&mut peers);
    peers
}

/// Each peer in turn says `"{tag} from {nick}"`, and every other peer waits for it.
fn round(peers: &mut [Peer], tag: &str) {
    for i in 0..peers.len() {
        let from = peers[i].nick.clone();
        let text = format!("{tag} from {from}");
        peers[i].node.send(&text);
        for (j, p) in peers.iter_mut().enumerate() {
            if j != i {
                p.node.wait_message(&from, &text);
            }
        }
    }
}

fn count(node: &Node, pred: impl Fn(&Value) -> bool) -> usize {
    node.events().iter().filter(|v| pred(v)).count()
}

fn joins(node: &Node, nick: &str) -> usize {
    count(node, |v| v["event"] == "join" && v["nick"] == nick)
}

fn leaves(node: &Node, nick: &str) -> usize {
    count(node, |v| v["event"] == "leave" && v["nick"] == nick)
}

fn messages(node: &Node, text: &str) -> usize {
    count(node, |v| v["event"] == "message" && v["text"] == text)
}

/// No stdout line of `node` contains `needle`.
fn never_saw(node: &Node, needle: &str) {
    assert!(
        node.history.iter().all(|l| !l.contains(needle)),
        "{needle:?} was shown: {:#?}",
        node.history
    );
}

/// Every stdout line is a JSON object with a string `ts` and `event`.
fn all_well_formed(node: &Node) {
    for line in &node.history {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        assert!(
            v["ts"].is_string() && v["event"].is_string(),
            "not a JSON event with ts and event: {line}"
        );
    }
}

/// A leave for a killed peer says the connection broke (it did not say goodbye).
fn assert_broken_leave(leave: &Value) {
    let reason = leave.get("reason");
    assert!(
        reason == Some(&Value::from("connection reset"))
            || reason == Some(&Value::from("connection closed")),
        "{leave}"
    );
}

/// Every peer showed every other one joining exactly once.
fn each_saw_each_join_once(peers: &[Peer]) {
    for p in peers {
        for q in peers.iter().filter(|q| q.nick != p.nick) {
            assert_eq!(
                joins(&p.node, &q.nick),
                1,
                "{}: {:#?}",
                p.nick,
                p.node.history
            );
        }
    }
}

/// Each pair of peers is joined by exactly one TCP connection (waiting, as a duplicate made by
/// two nodes dialling each other at once may take a moment to be closed).
fn wait_one_link_per_pair(peers: &[Peer]) {
    wait_until("one connection per pair of nodes", || {
        for (i, p) in peers.iter().enumerate() {
            for q in &peers[i + 1..] {
                let n = links_between(p.pid(), q.pid());
                if n != 1 {
                    return Err(format!("{} and {} have {n} connections", p.nick, q.nick));
                }
            }
        }
        Ok(())
    });
}

/// Sends `SIG` (e.g. `-STOP`) to a process with kill(1); false when that cannot be done.
fn signal(pid: u32, sig: &str) -> bool {
    let _spawning = util::spawning();
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// Forming the mesh

/// Every peer types `per` lines, all peers at once (their lines go out interleaved), then each
/// waits for everyone's last line and a round of markers (so any repeat would be in); each peer
/// must show each other peer's lines exactly once and in the order typed.
fn interleaved_lines_arrive_once_in_each_senders_order(peers: &mut [Peer], per: usize) {
    for k in 0..per {
        for p in peers.iter_mut() {
            let text = format!("{} line {k:03}", p.nick);
            p.node.send(&text);
        }
    }
    let nicks: Vec<String> = peers.iter().map(|p| p.nick.clone()).collect();
    for p in peers.iter_mut() {
        for from in nicks.iter().filter(|n| **n != p.nick) {
            p.node
                .wait_message(from, &format!("{from} line {:03}", per - 1));
        }
    }
    round(peers, "marker");
    for p in peers.iter() {
        for from in nicks.iter().filter(|n| **n != p.nick) {
            let prefix = format!("{from} line ");
            let got: Vec<String> = p
                .node
                .events()
                .iter()
                .filter(|v| v["event"] == "message" && v["from"] == from.as_str())
                .filter_map(|v| v["text"].as_str().map(str::to_string))
                .filter(|t| t.starts_with(&prefix))
                .collect();
            let want: Vec<String> = (0..per).map(|k| format!("{from} line {k:03}")).collect();
            assert_eq!(got, want, "{} showing {from}'s lines", p.nick);
        }
    }
}

/// "In the order sent" with many lines from every sender at once, over two hops: a hub and
/// three peers dialled to it, all four typing.
#[test]
fn many_lines_from_every_star_node_arrive_once_in_each_senders_order() {
    let (hub, port) = Node::listener("hub", &[]);
    let mut peers = vec![Peer {
        node: hub,
        nick: "hub".into(),
        port,
    }];
    for nick in ["a", "b", "c"] {
        peers.push(Peer {
            node: Node::client(nick, port, &[]),
            nick: nick.into(),
            port,
        });
    }
    wait_all_joined(&mut peers);
    interleaved_lines_arrive_once_in_each_senders_order(&mut peers, 300);
}

/// The same over a full mesh, where each line reaches a node by several paths at once.
#[test]
fn many_lines_from_every_mesh_node_arrive_once_in_each_senders_order() {
    let mut peers = joined_mesh(&["a", "b", "c", "d"]);
    interleaved_lines_arrive_once_in_each_senders_order(&mut peers, 300);
}

#[test]
fn three_mesh_nodes_form_one_chat() {
    let range = free_range(3);
    let mut peers: Vec<Peer> = ["a", "b", "c"]
        .iter()
        .map(|n| mesh(range, n, &[]))
        .collect();
    // Started one after another, each takes the first port still free.
    let ports: Vec<u16> = peers.iter().map(|p| p.port).collect();
    assert_eq!(ports, [range.0, range.0 + 1, range.0 + 2]);
    let first: Value = serde_json::from_str(&peers[0].node.history[0]).expect("JSON");
    assert_eq!(
        first["text"],
        format!("listening on 127.0.0.1:{}", range.0).as_str(),
        "{first}"
    );
    wait_all_joined(&mut peers);
    round(&mut peers, "hello");
    round(&mut peers, "settle");

    for p in &peers {
        all_well_formed(&p.node);
        for q in &peers {
            if q.nick == p.nick {
                // Own messages are not echoed.
                assert_eq!(messages(&p.node, &format!("hello from {}", q.nick)), 0);
                continue;
            }
            let n = joins(&p.node, &q.nick);
            assert_eq!(n, 1, "{} shows {} joining {n} times", p.nick, q.nick);
            let text = format!("hello from {}", q.nick);
            let n = messages(&p.node, &text);
            assert_eq!(n, 1, "{} shows {text:?} {n} times", p.nick);
            // The join's address, when given, is where that node listens.
            for join in p
                .node
                .events()
                .iter()
                .filter(|v| v["event"] == "join" && v["nick"] == q.nick.as_str())
            {
                if let Some(addr) = join.get("addr") {
                    assert_eq!(
                        addr,
                        &Value::from(format!("127.0.0.1:{}", q.port)),
                        "{join}"
                    );
                }
            }
        }
        assert_eq!(
            count(&p.node, |v| v["event"] == "leave"),
            0,
            "{:#?}",
            p.node.history
        );
    }
    wait_one_link_per_pair(&peers);
}

#[test]
fn nodes_started_at_once_get_one_connection_per_pair() {
    // Four nodes race for the ports and dial each other at the same moment.
    let range = free_range(4);
    let r = range_arg(range);
    let nicks = ["a", "b", "c", "d"];
    let nodes: Vec<Node> = nicks
        .iter()
        .map(|n| Node::spawn(&["--mesh", &r, "--json", "--nick", n]))
        .collect();
    let mut peers: Vec<Peer> = nodes
        .into_iter()
        .zip(nicks)
        .map(|(mut node, nick)| {
            let port = listening_port(&mut node);
            Peer {
                node,
                nick: nick.to_string(),
                port,
            }
        })
        .collect();
    let mut ports: Vec<u16> = peers.iter().map(|p| p.port).collect();
    ports.sort_unstable();
    assert_eq!(
        ports,
        (range.0..=range.1).collect::<Vec<u16>>(),
        "one port each"
    );
    wait_all_joined(&mut peers);
    wait_one_link_per_pair(&peers);
    round(&mut peers, "hi");
    round(&mut peers, "settle");
    each_saw_each_join_once(&peers);
    for p in &peers {
        for q in &peers {
            if q.nick != p.nick {
                assert_eq!(
                    leaves(&p.node, &q.nick),
                    0,
                    "{}: {:#?}",
                    p.nick,
                    p.node.history
                );
                assert_eq!(messages(&p.node, &format!("hi from {}", q.nick)), 1);
            }
        }
    }
}

#[test]
fn killed_mesh_node_leaves_and_rejoins_when_restarted() {
    let range = free_range(4);
    // c restarts as the same person: its key is kept in a file both runs use.
    let dir = TempDir::new("mesh-c");
    let key = dir.0.join("identity");
    let key = key.to_str().expect("utf-8 temp path");
    let c_args = ["--identity", key];
    let mut peers: Vec<Peer> = ["a", "b", "c"]
        .iter()
        .map(|&n| mesh(range, n, if n == "c" { &c_args } else { &[] }))
        .collect();
    wait_all_joined(&mut peers);

    peers[2].node.child.kill().expect("kill -9 c");
    peers[2].node.child.wait().expect("reap c");
    for p in &mut peers[..2] {
        let leave = p.node.wait_leave("c");
        assert_broken_leave(&leave);
    }

    // Same nick, same range: it finds the others again, and they find it.
    peers[2] = mesh(range, "c", &c_args);
    for p in &mut peers[..2] {
        p.node.wait_join("c");
    }
    peers[2].node.wait_join("a");
    peers[2].node.wait_join("b");
    round(&mut peers, "after the restart");
    round(&mut peers, "settle");
    for p in &peers[..2] {
        assert_eq!(leaves(&p.node, "c"), 1, "{}: {:#?}", p.nick, p.node.history);
        assert_eq!(joins(&p.node, "c"), 2, "{}: {:#?}", p.nick, p.node.history);
    }
    assert_eq!(
        joins(&peers[2].node, "a"),
        1,
        "{:#?}",
        peers[2].node.history
    );
    assert_eq!(
        joins(&peers[2].node, "b"),
        1,
        "{:#?}",
        peers[2].node.history
    );
}

#[test]
fn a_late_joiner_is_found_by_the_rescan() {
    // a and b use ports P..P+2; c uses P+2..P+3, so c itself dials only P+3, where nobody
    // listens: the others must find it on P+2 when they rescan their range.
    let (p, _) = free_range(4);
    let mut peers = vec![mesh((p, p + 2), "a", &[]), mesh((p, p + 2), "b", &[])];
    wait_all_joined(&mut peers);
    let late = mesh((p + 2, p + 3), "c", &[]);
    assert_eq!(late.port, p + 2);
    peers.push(late);
    // a and b saw each other join already; now everyone sees c, and c sees both.
    for p in &mut peers[..2] {
        p.node.wait_join("c");
    }
    peers[2].node.wait_join("a");
    peers[2].node.wait_join("b");
    round(&mut peers, "all here");
    round(&mut peers, "settle");
    each_saw_each_join_once(&peers);
}

#[test]
fn connect_joins_a_node_outside_the_range() {
    // Two meshes of one node each, on ranges that do not overlap.
    let (p, _) = free_range(4);
    let mut a = mesh((p, p + 1), "a", &[]);
    let mut b = mesh((p + 2, p + 3), "b", &[]);
    assert_eq!((a.port, b.port), (p, p + 2));
    a.node.send(&format!("/connect 127.0.0.1:{}", b.port));
    b.node.wait_join("a");
    a.node.wait_join("b");
    let mut peers = [a, b];
    round(&mut peers, "connected");
}

#[test]
fn mesh_listens_and_dials_on_the_given_host() {
    let range = free_range(2);
    let mut peers: Vec<Peer> = ["a", "b"]
        .iter()
        .map(|n| mesh(range, n, &["--host", "127.0.0.2"]))
        .collect();
    assert!(
        peers[0].node.history[0].contains(&format!("listening on 127.0.0.2:{}", range.0)),
        "{}",
        peers[0].node.history[0]
    );
    wait_all_joined(&mut peers);
    round(&mut peers, "on 127.0.0.2");
}

#[test]
fn quit_with_a_reason_is_shown_once_everywhere() {
    let mut peers = joined_mesh(&["a", "b", "c"]);
    peers[2].node.send("/quit gone fishing");
    assert_eq!(peers[2].node.wait_exit().code(), Some(0));
    let mut rest = peers.drain(..2).collect::<Vec<Peer>>();
    for p in &mut rest {
        let leave = p.node.wait_leave("c");
        assert_eq!(leave["reason"], "gone fishing", "{leave}");
    }
    round(&mut rest, "settle");
    for p in &rest {
        assert_eq!(leaves(&p.node, "c"), 1, "{}: {:#?}", p.nick, p.node.history);
    }
}

#[test]
fn a_silent_peer_times_out_and_idle_ones_do_not() {
    let range = free_range(3);
    let mut peers: Vec<Peer> = ["a", "b", "c"]
        .iter()
        .map(|n| mesh(range, n, &["--timeout", "2"]))
        .collect();
    wait_all_joined(&mut peers);
    // A stopped process keeps its sockets open (the kernel still acknowledges) but says nothing.
    if !signal(peers[2].pid(), "-STOP") {
        return util::skip_or_fail("cannot stop a process with `kill -STOP`");
    }
    for p in &mut peers[..2] {
        let leave = p.node.wait_leave("c");
        assert_eq!(leave["reason"], "timed out", "{leave}");
    }
    // a and b were idle for as long, and still chat.
    let mut rest = peers.drain(..2).collect::<Vec<Peer>>();
    round(&mut rest, "still here");
    assert_eq!(leaves(&rest[0].node, "b"), 0, "{:#?}", rest[0].node.history);
    assert_eq!(leaves(&rest[1].node, "a"), 0, "{:#?}", rest[1].node.history);
    // Dropping the stopped node kills it (SIGKILL ends a stopped process too).
}

// ---------------------------------------------------------------------------------------------
// Exit codes

#[test]
fn all_ports_busy_exits_1() {
    let range = free_range(2);
    let _held: Vec<TcpListener> = (range.0..=range.1)
        .map(|p| TcpListener::bind(("127.0.0.1", p)).expect("bind a port of the free range"))
        .collect();
    let r = range_arg(range);
    let mut node = Node::spawn(&["--mesh", &r, "--json", "--nick", "a"]);
    assert_eq!(node.wait_exit().code(), Some(1));
    let err = node.stderr_lines();
    assert_eq!(err.len(), 1, "one line on stderr: {err:#?}");
    assert!(err[0].starts_with("peerchat: "), "{err:#?}");
    assert!(err[0].contains(&r), "names the range {r}: {err:#?}");
}

#[test]
fn bad_range_exits_2() {
    for range in ["abc", "5004-5000", "0-10", "70000-70001", "5000-"] {
        let mut node = Node::spawn(&["--mesh", range, "--json"]);
        assert_eq!(node.wait_exit().code(), Some(2), "--mesh {range}");
        let err = node.stderr_lines().join("\n");
        assert!(!err.trim().is_empty(), "--mesh {range}: nothing on stderr");
        assert!(!err.contains("panicked"), "--mesh {range}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

#[test]
fn dm_reaches_only_its_target() {
    let mut peers = joined_mesh(&["a", "b", "c"]);
    peers[0].node.send("/msg b secret plans");
    let dm = peers[1]
        .node
        .wait_event(|v| v["event"] == "dm" && v["text"] == "secret plans");
    assert_eq!((&dm["from"], &dm["to"]), (&"a".into(), &"b".into()), "{dm}");
    // The sender sees its DM as a confirmation.
    let mine = peers[0]
        .node
        .wait_event(|v| v["event"] == "dm" && v["text"] == "secret plans");
    assert_eq!(
        (&mine["from"], &mine["to"]),
        (&"a".into(), &"b".into()),
        "{mine}"
    );
    // Anything a sent c before the marker is in once the marker is.
    peers[0].node.send("marker");
    peers[2].node.wait_message("a", "marker");
    peers[1].node.wait_message("a", "marker");
    never_saw(&peers[2].node, "secret");
    assert_eq!(messages(&peers[1].node, "secret plans"), 0);
    assert_eq!(
        count(&peers[1].node, |v| v["event"] == "dm"),
        1,
        "{:#?}",
        peers[1].node.history
    );
}

#[test]
fn a_dm_through_a_relaying_node_is_unreadable_there() {
    a_dm_through_a_relaying_node_shows_no_text_there(None);
}

/// alice - relay - bob, alice and bob not listening: the DM can only go through the relay,
/// whose --json output, log file and RUST_LOG=trace stderr must not hold its text. With
/// `secret`, every node is of that private group (`PEERCHAT_SECRET`).
pub(crate) fn a_dm_through_a_relaying_node_shows_no_text_there(secret: Option<&str>) {
    let log = TempPath::new("relay.log");
    let setup = match secret {
        Some(s) => format!("export RUST_LOG=trace PEERCHAT_SECRET='{s}'"),
        None => "export RUST_LOG=trace".to_string(),
    };
    let mut relay = Node::spawn_with_shell(
        &setup,
        &[
            "-l",
            "127.0.0.1:0",
            "--json",
            "--nick",
            "relay",
            "--log-file",
            log.as_str(),
        ],
    );
    let ev = relay.wait_event(|v| {
        v["event"] == "info" && v["text"].as_str().unwrap_or("").starts_with("listening on")
    });
    let port: u16 = ev["text"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the listening line");
    let client = |nick: &str| {
        let mut cmd = Command::new(util::bin());
        cmd.args([&format!("127.0.0.1:{port}"), "--json", "--nick", nick]);
        if let Some(s) = secret {
            cmd.env("PEERCHAT_SECRET", s);
        }
        Node::spawn_with(&mut cmd)
    };
    let (mut alice, mut bob) = (client("alice"), client("bob"));
    relay.wait_join("alice");
    relay.wait_join("bob");
    alice.wait_join("bob");
    bob.wait_join("alice");
    alice.send("/msg bob the vault code is 4711");
    let dm = bob.wait_event(|v| v["event"] == "dm");
    assert_eq!(dm["text"], "the vault code is 4711", "{dm}");
    assert_eq!((&dm["from"], &dm["to"]), (&"alice".into(), &"bob".into()));
    alice.send("marker");
    relay.wait_message("alice", "marker");
    bob.wait_message("alice", "marker");
    never_saw(&relay, "vault");
    assert!(
        log.lines().iter().any(|l| l.contains("marker")),
        "the log is written"
    );
    assert!(
        log.lines().iter().all(|l| !l.contains("vault")),
        "{:#?}",
        log.lines()
    );
    let err = relay.stderr_lines();
    assert!(
        err.iter().any(|l| l.contains("TRACE")),
        "the relay logs at trace: {err:#?}"
    );
    assert!(err.iter().all(|l| !l.contains("vault")), "{err:#?}");
    // Both links of the relay were encrypted if, and only if, there is a secret.
    let encrypted = err.iter().filter(|l| l.contains("encrypted link open"));
    let want = if secret.is_some() { 2 } else { 0 };
    assert_eq!(encrypted.count(), want, "{err:#?}");
}

#[test]
fn dm_to_an_unknown_nick_is_an_error_and_sends_nothing() {
    let mut peers = joined_mesh(&["a", "b"]);
    peers[0].node.send("/msg nobody hush hush");
    peers[0].node.wait_event(|v| v["event"] == "error");
    peers[0].node.send("marker");
    peers[1].node.wait_message("a", "marker");
    never_saw(&peers[1].node, "hush");
    assert_eq!(count(&peers[0].node, |v| v["event"] == "dm"), 0);
}

#[test]
fn nick_change_is_announced() {
    let mut peers = joined_mesh(&["a", "b", "c"]);
    peers[0].node.send("/nick alice");
    for p in &mut peers[1..] {
        p.node
            .wait_event(|v| v["event"] == "nick" && v["old"] == "a" && v["nick"] == "alice");
    }
    peers[0].nick = "alice".into();
    round(&mut peers, "renamed");
    for p in &peers[1..] {
        assert_eq!(
            count(&p.node, |v| v["event"] == "nick"),
            1,
            "{}: {:#?}",
            p.nick,
            p.node.history
        );
    }
}

#[test]
fn me_action_is_shown_to_the_others() {
    let mut peers = joined_mesh(&["a", "b", "c"]);
    peers[0].node.send("/me waves");
    for p in &mut peers[1..] {
        p.node
            .wait_event(|v| v["event"] == "me" && v["from"] == "a" && v["text"] == "waves");
    }
    round(&mut peers, "settle");
    for p in &peers[1..] {
        assert_eq!(
            count(&p.node, |v| v["event"] == "me"),
            1,
            "{:#?}",
            p.node.history
        );
        never_saw(&p.node, "/me");
    }
}

#[test]
fn names_lists_everyone() {
    let mut peers = joined_mesh(&["a", "b", "c"]);
    peers[0].node.send("/names");
    let ev = peers[0].node.wait_event(|v| v["event"] == "names");
    let list = ev["names"].as_array().expect("names is an array");
    let mut nicks: Vec<&str> = list.iter().filter_map(|e| e["nick"].as_str()).collect();
    nicks.sort_unstable();
    assert_eq!(nicks, ["a", "b", "c"], "{ev}");
    for entry in list {
        if let Some(addr) = entry.get("addr") {
            let addr = addr.as_str().expect("addr is a string");
            assert!(addr.starts_with("127.0.0.1:"), "{ev}");
        }
    }
}

#[test]
fn unknown_command_sends_nothing() {
    let mut peers = joined_mesh(&["a", "b"]);
    peers[0].node.send("/frob now");
    peers[0].node.wait_event(|v| v["event"] == "error");
    peers[0].node.send("marker");
    peers[1].node.wait_message("a", "marker");
    never_saw(&peers[1].node, "frob");
}

#[test]
fn help_lists_the_commands_and_sends_nothing() {
    let mut peers = joined_mesh(&["a", "b"]);
    peers[0].node.send("/help");
    peers[0].node.wait_event(|v| {
        v["event"] == "info" && v["text"].as_str().is_some_and(|t| t.contains("/msg"))
    });
    peers[0].node.send("marker");
    peers[1].node.wait_message("a", "marker");
    never_saw(&peers[1].node, "help");
}

#[test]
fn same_nick_is_disambiguated() {
    let range = free_range(3);
    let mut bob1 = mesh(range, "bob", &[]);
    let mut bob2 = mesh(range, "bob", &[]);
    let mut carol = mesh(range, "carol", &[]);
    for _ in 0..2 {
        carol.node.wait_event(|v| {
            v["event"] == "join" && v["nick"].as_str().is_some_and(|n| n.starts_with("bob"))
        });
    }
    bob1.node.wait_join("carol");
    bob2.node.wait_join("carol");

    bob1.node.send("from the first bob");
    let first = carol
        .node
        .wait_event(|v| v["event"] == "message" && v["text"] == "from the first bob");
    bob2.node.send("from the second bob");
    let second = carol
        .node
        .wait_event(|v| v["event"] == "message" && v["text"] == "from the second bob");
    let names = [&first["from"], &second["from"]].map(|f| f.as_str().unwrap_or("").to_string());
    assert_ne!(names[0], names[1], "{first} {second}");
    // Two people called bob have two keys: carol remembers the first key she saw for `bob`
    // and warns on the other's messages (which bob joined her first is up to the network).
    let warned = names
        .iter()
        .filter(|n| n.ends_with(" (key changed!)"))
        .count();
    assert_eq!(warned, 1, "{names:?}");
    for name in &names {
        let name = name.trim_end_matches(" (key changed!)");
        let suffix = name.strip_prefix("bob#").unwrap_or("");
        assert!(
            suffix.len() == 4 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name:?} is not bob#xxxx"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The log file

/// Splits `YYYY-MM-DD HH:MM:SS [TAG] text` into its tag and text; `None` for any other form.
fn log_fields(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    if b.len() < 24 {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let stamp = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b' '
        && b[20] == b'[';
    if !stamp {
        return None;
    }
    let (tag, text) = line[21..].split_once("] ")?;
    if tag.is_empty() || !tag.bytes().all(|c| c.is_ascii_uppercase()) || text.is_empty() {
        return None;
    }
    Some((tag, text))
}

#[test]
fn log_fields_reads_only_the_log_form() {
    assert_eq!(
        log_fields("2026-11-21 14:02:44 [SENT] <ana> oi"),
        Some(("SENT", "<ana> oi"))
    );
    for bad in [
        "",
        "2026-11-21 14:02:44 [SENT] ",
        "2026-11-21 14:02:44 [] x",
        "2026-11-21 14:02:44 [sent] x",
        "2026-11-21T14:02:44 [SENT] x",
        "26-11-21 14:02:44 [SENT] x",
        "2026-11-21 14:02:44 SENT x",
    ] {
        assert_eq!(log_fields(bad), None, "{bad:?}");
    }
}

#[test]
fn log_file_holds_the_expected_lines() {
    let log = TempPath::new("mesh.log");
    let range = free_range(3);
    let mut peers = vec![
        mesh(range, "ana", &["--log-file", log.as_str()]),
        mesh(range, "bia", &[]),
        mesh(range, "cris", &[]),
    ];
    wait_all_joined(&mut peers);

    peers[0].node.send("hello from ana");
    peers[1].node.wait_message("ana", "hello from ana");
    peers[2].node.wait_message("ana", "hello from ana");
    peers[1].node.send("hello from bia");
    peers[0].node.wait_message("bia", "hello from bia");
    peers[2].node.send("sair");
    assert_eq!(peers[2].node.wait_exit().code(), Some(0));
    peers[0].node.wait_leave("cris");
    peers[0].node.send("/quit");
    assert_eq!(peers[0].node.wait_exit().code(), Some(0));

    let lines = log.lines();
    assert!(!lines.is_empty(), "the log file is empty or missing");
    let fields: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| log_fields(l).unwrap_or_else(|| panic!("not a log line: {l:?} in {lines:#?}")))
        .collect();
    let tagged = |tag: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(t, _)| *t == tag)
            .map(|(_, text)| *text)
            .collect()
    };
    let sent = tagged("SENT");
    assert_eq!(
        sent.iter()
            .filter(|t| **t == "<ana> hello from ana")
            .count(),
        1,
        "one SENT line with two peers: {lines:#?}"
    );
    assert!(
        tagged("RECEIVED").contains(&"<bia> hello from bia"),
        "{lines:#?}"
    );
    for nick in ["bia", "cris"] {
        assert!(
            tagged("JOIN").iter().any(|t| t.contains(nick)),
            "no JOIN of {nick}: {lines:#?}"
        );
    }
    assert!(
        tagged("LEFT").iter().any(|t| t.contains("cris")),
        "{lines:#?}"
    );
    assert!(
        !tagged("CONNECTED").is_empty() || !tagged("ACCEPTED").is_empty(),
        "{lines:#?}"
    );
    assert_eq!(fields.last().map(|f| f.0), Some("CLOSED"), "{lines:#?}");
}

#[test]
fn log_file_is_appended_and_flushed_per_event() {
    let log = TempPath::new("flush.log");
    let earlier = "2000-01-01 00:00:00 [CLOSED] chat closed";
    std::fs::write(&log.0, format!("{earlier}\n")).expect("write the earlier run's line");
    let range = free_range(2);
    let mut peers = vec![
        mesh(range, "ana", &["--log-file", log.as_str()]),
        mesh(range, "bia", &[]),
    ];
    wait_all_joined(&mut peers);
    peers[1].node.send("just before the kill");
    peers[0].node.wait_message("bia", "just before the kill");
    // Shown on stdout, so already in the file: kill -9 gives no chance to flush later.
    peers[0].node.child.kill().expect("kill -9 ana");
    peers[0].node.child.wait().expect("reap ana");

    let lines = log.lines();
    assert_eq!(
        lines.first().map(String::as_str),
        Some(earlier),
        "{lines:#?}"
    );
    for l in &lines {
        assert!(
            log_fields(l).is_some(),
            "not a log line: {l:?} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .filter_map(|l| log_fields(l))
            .any(|f| f == ("RECEIVED", "<bia> just before the kill")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .filter_map(|l| log_fields(l))
            .any(|(tag, text)| tag == "JOIN" && text.contains("bia")),
        "{lines:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Peer exchange (without --mesh)

#[test]
fn peer_exchange_connects_to_the_rest() {
    // a listens; b listens and dials a; c listens and dials only b.
    let (a, pa) = Node::listener("a", &[]);
    let (b, pb) = Node::listener("b", &[&format!("127.0.0.1:{pa}")]);
    let (c, pc) = Node::listener("c", &[&format!("127.0.0.1:{pb}")]);
    let mut peers = vec![
        Peer {
            node: a,
            nick: "a".into(),
            port: pa,
        },
        Peer {
            node: b,
            nick: "b".into(),
            port: pb,
        },
        Peer {
            node: c,
            nick: "c".into(),
            port: pc,
        },
    ];
    wait_all_joined(&mut peers);
    round(&mut peers, "hello");
    the_ends_still_chat_without_the_middle(peers);
}

/// Accepts every connection waiting on `listeners`, hanging up at once (as a port that serves
/// nothing would), and counts them per listener.
fn take_dials(listeners: &[TcpListener], dials: &mut [usize]) {
    for (l, n) in listeners.iter().zip(dials.iter_mut()) {
        while let Ok((stream, _)) = l.accept() {
            drop(stream);
            *n += 1;
        }
    }
}

/// Reflection: strangers' `PEERS` lists made a node dial one address again and again (100
/// connections listing 64 addresses: 601 connections opened). Here 20 fake peers, one after
/// the other, each list the same 8 addresses, listeners of the test's: each is dialled once,
/// and a list starts a few dials at most.
#[test]
fn peers_lists_from_many_connections_dial_each_address_once() {
    let (_hub, port) = Node::listener("hub", &[]);
    let listeners: Vec<TcpListener> = (0..8)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        })
        .collect();
    let listed: String = listeners
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let at = l.local_addr().expect("addr");
            format!(" {:016x}@{at}", 0xa000 + k)
        })
        .collect();
    let mut dials = vec![0; listeners.len()];
    for i in 0..20 {
        let mut fake = util::fake_peer_hello(port, &format!("fake{i}"), 100 + i as u8);
        // The PONG comes once the list was read and its dials started.
        fake.send(format!("PEERS{listed}\nPING\n").as_bytes());
        fake.wait_line(|l| l == "PONG");
        take_dials(&listeners, &mut dials);
        let total: usize = dials.iter().sum();
        assert!(
            total <= 4 * (i + 1),
            "{} lists, {total} dials: {dials:?}",
            i + 1
        );
        assert!(dials.iter().all(|&n| n <= 1), "after list {i}: {dials:?}");
    }
    wait_until("every listed address dialled", || {
        take_dials(&listeners, &mut dials);
        match dials.iter().all(|&n| n >= 1) {
            true => Ok(()),
            false => Err(format!("{dials:?}")),
        }
    });
    assert!(dials.iter().all(|&n| n == 1), "{dials:?}");
}

/// `peers` are a, b, c where c dialled only b (or b only a): c learns from b where a listens (or
/// a where c does) and they connect directly. Then b is killed, and a and c still chat, which
/// only their direct link can carry.
fn the_ends_still_chat_without_the_middle(mut peers: Vec<Peer>) {
    let (pid_a, pid_c) = (peers[0].pid(), peers[2].pid());
    wait_until(
        "a direct connection between a and c",
        || match links_between(pid_a, pid_c) {
            0 => Err(format!(
                "none yet; a has {:?}, c has {:?}",
                util::tcp_connections(pid_a),
                util::tcp_connections(pid_c)
            )),
            _ => Ok(()),
        },
    );
    peers[1].node.child.kill().expect("kill -9 b");
    peers[1].node.child.wait().expect("reap b");
    peers.remove(1);
    for p in &mut peers {
        let leave = p.node.wait_leave("b");
        assert_broken_leave(&leave);
    }
    round(&mut peers, "without b");
}

#[test]
fn multi_host_mesh_over_a_bridge() {
    let Some(lan) = util::bridge_or_skip(3) else {
        return;
    };
    let listen = ["-l", "0.0.0.0:5000", "--json"];
    let mut peers = Vec::new();
    for (i, nick) in ["a", "b", "c"].into_iter().enumerate() {
        let mut args = listen.to_vec();
        args.extend(["--nick", nick]);
        // b dials a; c dials b only.
        let dial = i
            .checked_sub(1)
            .map(|prev| format!("{}:5000", lan.ips[prev]));
        if let Some(addr) = &dial {
            args.push(addr);
        }
        let mut node = Node::spawn_in(&lan.hosts[i], &args);
        node.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
        peers.push(Peer {
            node,
            nick: nick.to_string(),
            port: 5000,
        });
    }
    wait_all_joined(&mut peers);
    round(&mut peers, "hello");
    round(&mut peers, "settle");
    each_saw_each_join_once(&peers);
    for p in &peers {
        for q in &peers {
            if q.nick != p.nick {
                let text = format!("hello from {}", q.nick);
                assert_eq!(
                    messages(&p.node, &text),
                    1,
                    "{}: {:#?}",
                    p.nick,
                    p.node.history
                );
            }
        }
    }
    // Peer exchange: c, told by b where a listens, reaches a directly over the LAN.
    the_ends_still_chat_without_the_middle(peers);
}

#[test]
fn mesh_mode_on_a_terminal_asks_for_the_nick() {
    use std::io::Write;
    use std::process::Stdio;
    // `script` (util-linux) gives peerchat a real terminal as stdin, like a person starting it;
    // `TERM=dumb` keeps it in line mode (the interactive screen is tested in `term`).
    if Command::new("script").arg("--version").output().is_err() {
        return util::skip_or_fail("`script` (util-linux) is not installed: no terminal to use");
    }
    let range = free_range(2);
    let mut other = mesh(range, "ana", &[]);
    let cmd = format!("{} --mesh {}", util::bin(), range_arg(range));
    let config = util::TempDir::new("config");
    let mut term = {
        let _spawning = util::spawning();
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("XDG_CONFIG_HOME", &config.0)
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start script")
    };
    let mut keys = term.stdin.take().expect("stdin");
    // An invalid nick is asked again, as the seed re-asked bad answers.
    write!(keys, "two words\nbia\n").expect("type");
    keys.flush().expect("type");
    other.node.wait_join("bia");
    writeln!(keys, "oi, da malha").expect("type");
    keys.flush().expect("type");
    other.node.wait_message("bia", "oi, da malha");
    writeln!(keys, "sair").expect("type");
    keys.flush().expect("type");
    other.node.wait_leave("bia");
    let out = term.wait_with_output().expect("script ends");
    drop(keys);
    assert_eq!(out.status.code(), Some(0));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("Your nick"), "{screen}");
    assert!(screen.contains("* ana joined from 127.0.0.1:"), "{screen}");
}

#[test]
fn a_piped_mesh_node_delivers_its_lines_before_leaving() {
    let range = free_range(3);
    let mut a = mesh(range, "a", &[]);
    let mut b = mesh(range, "b", &[]);
    a.node.wait_join("b");
    let r = range_arg(range);
    // Lines and the end of input are there before the node has even found the others.
    let mut c = Node::spawn(&["--mesh", &r, "--json", "--nick", "c"]);
    c.send("piped one");
    c.send("piped two");
    c.close_stdin();
    for p in [&mut a, &mut b] {
        p.node.wait_message("c", "piped one");
        p.node.wait_message("c", "piped two");
        p.node.wait_leave("c");
    }
    assert_eq!(c.wait_exit().code(), Some(0), "{:?}", c.stderr_lines());
}

#[test]
fn leaving_while_a_scanned_port_has_not_answered_exits_0() {
    // Something that is not peerchat listens in the range and never says anything.
    let range = free_range(2);
    let _silent = TcpListener::bind(("127.0.0.1", range.1)).expect("bind the second port");
    let r = range_arg(range);
    let mut a = Node::spawn(&["--mesh", &r, "--json", "--nick", "a"]);
    listening_port(&mut a);
    a.send("/quit");
    assert_eq!(a.wait_exit().code(), Some(0), "{:?}", a.stderr_lines());
}

#[test]
fn two_connections_dialled_by_one_node_become_one() {
    // b reaches a's one listener by two addresses: two connections, both dialled by b.
    let mut a = Node::spawn(&["-l", "0.0.0.0:0", "--json", "--nick", "a"]);
    let port = listening_port(&mut a);
    let (one, two) = (format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"));
    let args = ["-l", "127.0.0.1:0", "--json", "--nick", "b", &one, &two];
    let mut b = Node::spawn(&args);
    a.wait_join("b");
    b.wait_join("a");
    wait_until("one connection between a and b", || {
        match links_between(a.child.id(), b.child.id()) {
            1 => Ok(()),
            n => Err(format!("{n} connections")),
        }
    });
    b.send("still connected?");
    a.wait_message("b", "still connected?");
    a.send("yes");
    b.wait_message("a", "yes");
    assert_eq!(count(&a, |v| v["event"] == "leave"), 0, "{:#?}", a.history);
    assert_eq!(count(&b, |v| v["event"] == "leave"), 0, "{:#?}", b.history);
}

#[test]
fn host_is_checked() {
    for args in [
        &["-l", "127.0.0.1:0", "--host", "127.0.0.1"][..],
        &["--mesh", "20000-20001", "--host", "0.0.0.0"][..],
        &["--mesh", "20000-20001", "--host", "127.0.0.1:80"][..],
    ] {
        let mut node = Node::spawn(args);
        assert_eq!(node.wait_exit().code(), Some(2), "{args:?}");
        assert!(!node.stderr_lines().is_empty(), "{args:?}");
    }
}
