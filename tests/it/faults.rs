//! Network faults between two hosts (network namespaces joined by a veth pair, made by the
//! test itself; root and iproute2 needed, nftables for packet loss): a link that goes down and
//! comes back, and a link that loses packets. Skipped with the reason printed where they cannot
//! run, failing instead under `CI`.

use std::collections::HashMap;

use crate::util::{self, Lan, Node};

/// Waits until each of `lines` arrives at `node` from `from`, and checks none came twice and
/// they came in the order sent.
fn each_once_in_order(node: &mut Node, from: &str, lines: &[String]) {
    for line in lines {
        node.wait_message(from, line);
    }
    let got: Vec<String> = node
        .events()
        .iter()
        .filter(|v| v["event"] == "message" && v["from"] == from)
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .filter(|t| lines.contains(t))
        .collect();
    assert_eq!(&got, lines, "each once, in order");
    let mut seen = HashMap::new();
    for t in &got {
        *seen.entry(t).or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1));
}

/// Once `ana` and `bia` see each other, each sends `n` numbered lines, interleaved; each must
/// arrive once and in order.
fn chat_both_ways(ana: &mut Node, bia: &mut Node, n: usize) {
    ana.wait_join("bia");
    bia.wait_join("ana");
    let from_bia: Vec<String> = (0..n).map(|i| format!("b {i:03}")).collect();
    let from_ana: Vec<String> = (0..n).map(|i| format!("a {i:03}")).collect();
    for (b, a) in from_bia.iter().zip(&from_ana) {
        bia.send(b);
        ana.send(a);
    }
    each_once_in_order(ana, "bia", &from_bia);
    each_once_in_order(bia, "ana", &from_ana);
}

#[test]
fn a_link_that_goes_down_times_out_and_the_peers_find_each_other_again() {
    let Some(lan) = util::lan_or_skip() else {
        return;
    };
    // Both listen, so each dials the other again after losing it.
    let mut ana = Node::spawn_in(&lan.a, &["-l", "--json", "--nick", "ana", "--timeout", "2"]);
    ana.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let mut bia = Node::spawn_in(
        &lan.b,
        &[
            "10.231.0.1",
            "-l",
            "--json",
            "--nick",
            "bia",
            "--timeout",
            "2",
        ],
    );
    ana.wait_join("bia");
    bia.wait_join("ana");
    bia.send("before");
    ana.wait_message("bia", "before");

    // The cable is pulled: no reset, no FIN, only silence. Each side's keepalive notices.
    lan.ip(&lan.a, &["link", "set", &lan.dev_a, "down"])
        .expect("link down");
    let gone = ana.wait_leave("bia");
    assert_eq!(gone["reason"], "timed out", "{gone}");
    let gone = bia.wait_leave("ana");
    assert_eq!(gone["reason"], "timed out", "{gone}");

    // Plugged in again: they dial each other again and chat on.
    lan.ip(&lan.a, &["link", "set", &lan.dev_a, "up"])
        .expect("link up");
    ana.wait_event(|v| v["event"] == "join" && v["nick"] == "bia");
    bia.wait_event(|v| v["event"] == "join" && v["nick"] == "ana");
    bia.send("after");
    ana.wait_message("bia", "after");
    ana.send("welcome back");
    bia.wait_message("ana", "welcome back");
    assert_eq!(
        ana.events()
            .iter()
            .filter(|v| v["event"] == "message" && v["text"] == "after")
            .count(),
        1
    );
}

/// Drops 5 % of the packets into and out of host `ns`, at random (nftables; the kernel here has
/// no netem).
fn drop_packets(lan: &Lan, ns: &str) -> Result<(), String> {
    const IN: &str = "{ type filter hook input priority 0; }";
    const OUT: &str = "{ type filter hook output priority 0; }";
    let drop5 = |chain: &'static str| {
        vec![
            "add", "rule", "inet", "loss", chain, "numgen", "random", "mod", "100", "<", "5",
            "drop",
        ]
    };
    for cmd in [
        vec!["add", "table", "inet", "loss"],
        vec!["add", "chain", "inet", "loss", "in", IN],
        vec!["add", "chain", "inet", "loss", "out", OUT],
        drop5("in"),
        drop5("out"),
    ] {
        lan.nft(ns, &cmd)?;
    }
    Ok(())
}

/// A child process killed when dropped (the test's relay), also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn messages_arrive_once_and_in_order_over_a_lossy_link() {
    let Some(lan) = util::lan_or_skip() else {
        return;
    };
    // 5 % of the packets into and out of one host dropped at random.
    if let Err(why) = drop_packets(&lan, &lan.a) {
        return util::skip_or_fail(&format!("cannot drop packets with nftables: {why}"));
    }
    let mut ana = Node::spawn_in(&lan.a, &["-l", "--json", "--nick", "ana"]);
    ana.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let mut bia = Node::spawn_in(&lan.b, &["10.231.0.1", "--json", "--nick", "bia"]);
    chat_both_ways(&mut ana, &mut bia, 200);
}

#[test]
fn a_guest_that_half_closes_has_every_line_delivered_once() {
    use std::net::Shutdown;
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut reader = util::Raw::joined(&mut hub, port, "~guest-1", "reader");
    let mut writer = util::Raw::joined(&mut hub, port, "~guest-2", "first");
    // Like `printf … | nc -N`: lines, the last without a newline, then end of sending.
    writer.send(b"second\nthird\nlast, no newline");
    writer.stream.shutdown(Shutdown::Write).expect("half-close");
    for want in ["second", "third", "last, no newline"] {
        reader.wait_line(|l| l == format!("<~guest-2> {want}"));
    }
    let leave = hub.wait_leave("~guest-2");
    assert!(
        leave.get("reason").is_none(),
        "a goodbye, not a fault: {leave}"
    );
    for text in ["first", "second", "third", "last, no newline"] {
        let n = hub
            .events()
            .iter()
            .filter(|v| v["event"] == "message" && v["text"] == text)
            .count();
        assert_eq!(n, 1, "{text}");
    }
}

#[test]
fn a_reset_connection_is_a_leave_with_its_reason_and_the_rest_go_on() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut reader = util::Raw::joined(&mut hub, port, "~guest-1", "reader");
    let reset = util::Raw::joined(&mut hub, port, "~guest-2", "about to reset");
    // Closing with unread data in our receive buffer makes the kernel send a reset: the
    // guest-1 join notice and more are waiting there, unread.
    reader.send(b"something for guest-2 to leave unread\n");
    hub.wait_message("~guest-1", "something for guest-2 to leave unread");
    drop(reset);
    let leave = hub.wait_leave("~guest-2");
    assert_eq!(leave["reason"], "connection reset", "{leave}");
    reader.wait_line(|l| l.starts_with("* ~guest-2 left"));
    reader.send(b"still chatting\n");
    hub.wait_message("~guest-1", "still chatting");
}

#[test]
fn a_peer_trickling_a_line_forever_times_out() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (mut hub, port) = Node::listener("hub", &["--timeout", "2"]);
    let fake = crate::fake::FakePeer::connect(port, "troll", 0xaa);
    let mut out = fake.raw.stream.try_clone().expect("clone");
    hub.wait_join("troll");
    // One byte every 100 ms, never a newline: bytes keep coming, but never a frame, so the
    // keepalive's ping goes unanswered. Bounded by time, and by the hub closing it.
    let trickle = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if out.write_all(b"M").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let leave = hub.wait_leave("troll");
    assert_eq!(leave["reason"], "timed out", "{leave}");
    assert!(trickle.join().expect("trickle thread"), "still connected");
}

#[test]
fn a_malformed_frame_closes_only_that_peer_with_the_reason() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut reader = util::Raw::joined(&mut hub, port, "~guest-1", "reader");
    let mut troll = crate::fake::FakePeer::connect(port, "troll", 0xcc).raw;
    hub.wait_join("troll");
    troll.send(b"MSG not-an-id 00000000000000cc troll hi\n");
    let leave = hub.wait_leave("troll");
    let reason = leave["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("malformed frame"), "{leave}");
    hub.wait_stderr("a warning", |l| l.contains("malformed frame"));
    reader.send(b"the hub goes on\n");
    hub.wait_message("~guest-1", "the hub goes on");
}

#[test]
fn a_hello_that_never_completes_is_closed_with_the_reason() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut half = util::Raw::connect(port);
    half.send(b"peerchat/4 hello from sl");
    // After the hello wait it is taken for a guest; then, the hello still unfinished, closed.
    let leave = hub.wait_leave("~guest-1");
    assert_eq!(leave["reason"], "incomplete hello", "{leave}");
    assert!(
        !hub.events().iter().any(|v| v["event"] == "message"),
        "the half hello was not shown as chat: {:?}",
        hub.events()
    );
    half.wait_line(|l| l.starts_with("peerchat/4 hello from hub"));
}

#[test]
fn nul_bytes_and_invalid_utf8_are_shown_harmlessly() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut reader = util::Raw::joined(&mut hub, port, "~guest-1", "reader");
    let mut odd = util::Raw::connect(port);
    odd.send(b"a\x00b\xffc\n");
    // JSON keeps the text exactly, escaped; a guest's terminal gets it made visible.
    let msg = hub.wait_event(|v| v["event"] == "message" && v["from"] == "~guest-2");
    assert_eq!(msg["text"], "a\u{0}b\u{fffd}c");
    reader.wait_line(|l| l == "<~guest-2> a^@b\u{fffd}c");
}

/// A TCP relay on loopback that holds every byte for `delay` in each direction: a slow link
/// (the kernel here has no netem). Serves one connection; its threads end when either side
/// closes.
fn delay_proxy(target: u16, delay: std::time::Duration) -> u16 {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc::channel;
    use std::time::Instant;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let Ok((a, _)) = listener.accept() else {
            return;
        };
        let Ok(b) = TcpStream::connect(("127.0.0.1", target)) else {
            return;
        };
        let pipe = |mut from: TcpStream, mut to: TcpStream| {
            let (tx, rx) = channel::<(Instant, Vec<u8>)>();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0
                        || tx
                            .send((Instant::now() + delay, buf[..n].to_vec()))
                            .is_err()
                    {
                        break;
                    }
                }
            });
            std::thread::spawn(move || {
                for (due, bytes) in rx {
                    // The link's delay, not a wait for a condition.
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        };
        let (a2, b2) = (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
        pipe(a, b);
        pipe(b2, a2);
    });
    port
}

#[test]
fn messages_arrive_once_and_in_order_over_a_link_with_100ms_delay() {
    let (mut ana, port) = Node::listener("ana", &[]);
    let relay = delay_proxy(port, std::time::Duration::from_millis(100));
    let mut bia = Node::client("bia", relay, &[]);
    chat_both_ways(&mut ana, &mut bia, 100);
    bia.send("sair");
    assert_eq!(bia.wait_exit().code(), Some(0));
    ana.wait_leave("bia");
}

#[test]
fn a_node_dialling_a_full_chat_says_so_and_exits_1() {
    let (mut hub, port) = Node::listener("hub", &["--max-conns", "1"]);
    let _first = util::Raw::joined(&mut hub, port, "~guest-1", "in first");
    let config = util::TempDir::new("config");
    let late = std::process::Command::new(util::bin())
        .args([&format!("127.0.0.1:{port}"), "--nick", "late"])
        .env("XDG_CONFIG_HOME", &config.0)
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("run peerchat");
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    let err = String::from_utf8_lossy(&late.stderr);
    assert!(
        err.contains(&format!(
            "peerchat: cannot connect to 127.0.0.1:{port}: the chat is full"
        )),
        "{err}"
    );
    // It was not taken for a guest of ours, nor shown as chat.
    let out = String::from_utf8_lossy(&late.stdout);
    assert!(!out.contains("~guest-1"), "{out}");
}

#[test]
fn a_signal_ignored_at_start_stays_ignored() {
    // As `nohup` starts it: SIGHUP ignored, and inherited so across exec.
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut bob = Node::spawn_with_shell(
        "trap '' HUP",
        &[&format!("127.0.0.1:{port}"), "--json", "--nick", "bob"],
    );
    hub.wait_join("bob");
    bob.wait_join("hub");
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(bob.child.id() as i32, libc::SIGHUP) },
        0
    );
    hub.send("still there?");
    bob.wait_message("hub", "still there?");
    bob.send("yes");
    hub.wait_message("bob", "yes");
    assert!(
        !hub.events().iter().any(|v| v["event"] == "leave"),
        "{:?}",
        hub.events()
    );
}

/// A relay that holds every byte for 100 ms each way, as a Python process (so that it can run
/// inside a network namespace): listens on 127.0.0.1:`listen`, forwards to `target`.
const DELAY_RELAY: &str = r#"
import socket, sys, threading, time, heapq
listen, host, port, delay = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen)); srv.listen(1)
print("ready", flush=True)
a, _ = srv.accept()
b = socket.create_connection((host, port))
def pipe(src, dst):
    q = []; lock = threading.Condition()
    def reader():
        while True:
            try: data = src.recv(65536)
            except OSError: data = b""
            with lock:
                q.append((time.monotonic() + delay, data)); lock.notify()
            if not data: return
    threading.Thread(target=reader, daemon=True).start()
    while True:
        with lock:
            while not q: lock.wait()
            due, data = q.pop(0)
        time.sleep(max(0.0, due - time.monotonic()))
        if not data:
            try: dst.shutdown(socket.SHUT_WR)
            except OSError: pass
            return
        try: dst.sendall(data)
        except OSError: return
t = threading.Thread(target=pipe, args=(b, a), daemon=True); t.start()
pipe(a, b); t.join(30)
"#;

#[test]
fn messages_arrive_once_and_in_order_with_loss_and_delay_together() {
    use std::io::BufRead;
    let Some(lan) = util::lan_or_skip() else {
        return;
    };
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        return util::skip_or_fail("no python3 for the delay relay");
    }
    // 5 % loss on ana's side, 100 ms each way on bia's (the relay in bia's host).
    if let Err(why) = drop_packets(&lan, &lan.a) {
        return util::skip_or_fail(&format!("cannot drop packets with nftables: {why}"));
    }
    let mut ana = Node::spawn_in(&lan.a, &["-l", "--json", "--nick", "ana"]);
    ana.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let mut relay = Killed(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lan.b, "python3", "-c", DELAY_RELAY])
            .args(["6000", "10.231.0.1", "5000", "0.1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the relay"),
    );
    let mut ready = String::new();
    std::io::BufReader::new(relay.0.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("the relay says it is ready");
    assert_eq!(ready.trim(), "ready");
    let mut bia = Node::spawn_in(&lan.b, &["127.0.0.1:6000", "--json", "--nick", "bia"]);
    chat_both_ways(&mut ana, &mut bia, 100);
}

#[test]
fn a_guest_trickling_a_line_has_it_taken_after_a_while() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let (mut hub, port) = Node::listener("hub", &[]);
    let guest = util::Raw::joined(&mut hub, port, "~guest-1", "hello");
    let mut out = guest.stream.try_clone().expect("clone");
    let stop = Arc::new(AtomicBool::new(false));
    // A byte every 100 ms, never a newline, never quiet long enough to count as the end of a
    // line: after 5 s what came is taken as a message anyway.
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if out.write_all(b"z").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let msg = hub.wait_event(|v| {
        v["event"] == "message"
            && v["from"] == "~guest-1"
            && v["text"].as_str().is_some_and(|t| t.starts_with("zz"))
    });
    assert!(
        !trickle.is_finished(),
        "taken while it was still trickling: {msg}"
    );
    stop.store(true, Ordering::Relaxed);
    trickle.join().expect("trickle thread");
}

#[test]
fn stdin_closed_from_the_start_is_the_end_of_input() {
    // Not an empty stdin but no stdin at all (descriptor 0 closed): no panic, a normal end.
    let mut node = Node::spawn_with_shell("exec 0<&-", &["-l", "127.0.0.1:0", "--json"]);
    assert_eq!(node.wait_exit().code(), Some(0));
    let err = node.stderr_lines().join("\n");
    assert!(!err.contains("panicked"), "{err}");
}
