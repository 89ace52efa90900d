//! Fan-out under load, with the real binary on loopback: order kept when many messages go out
//! in one write, a reader that never reads cut off while the others get everything, thousands
//! of connections, and running out of file descriptors. Speed is measured by
//! `benches/fanout.rs`, not here.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, burst, read_in_order, Node, Raw};

#[test]
fn coalesced_writes_keep_each_senders_order() {
    const LINES: usize = 3000;
    // Guests bursting thousands of lines: no flood limit here.
    let (mut hub, port) = Node::listener("hub", &["--rate-limit", "0"]);
    let mut readers: Vec<Raw> = (1..=3)
        .map(|i| Raw::joined(&mut hub, port, &format!("~guest-{i}"), "reader"))
        .collect();
    let mut peer = Node::client("peer", port, &[]);
    hub.wait_join("peer");
    let senders: Vec<Raw> = (4..=6)
        .map(|i| Raw::joined(&mut hub, port, &format!("~guest-{i}"), "sender"))
        .collect();
    let names: Vec<String> = (4..=6).map(|i| format!("~guest-{i}")).collect();
    // Each sender writes all its lines at once, all three at the same time: the hub reads
    // them in large chunks and writes each reader many lines per system call.
    let writers: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(k, mut raw)| {
            thread::spawn(move || {
                raw.send(&burst(k, LINES, 100));
                raw
            })
        })
        .collect();
    let checks: Vec<_> = readers
        .drain(..)
        .map(|mut raw| {
            let names = names.clone();
            thread::spawn(move || read_in_order(&mut raw, &names, LINES))
        })
        .collect();
    for c in checks {
        c.join()
            .expect("reader thread")
            .expect("every line, in order");
    }
    // The peer gets frames rather than text lines: same order, nothing twice. Each sender's
    // last line first, then every line checked in one pass over what was shown (waiting for
    // each line in turn would parse the whole history again for every one).
    for (k, name) in names.iter().enumerate() {
        let prefix = format!("s{k} {:05} ", LINES - 1);
        peer.wait_event(|v| {
            v["event"] == "message"
                && v["from"] == name.as_str()
                && v["text"].as_str().is_some_and(|t| t.starts_with(&prefix))
        });
    }
    let events = peer.events();
    for (k, name) in names.iter().enumerate() {
        let tag = format!("s{k} ");
        let seqs: Vec<usize> = events
            .iter()
            .filter(|v| v["event"] == "message" && v["from"] == name.as_str())
            .filter_map(|v| {
                v["text"]
                    .as_str()?
                    .strip_prefix(&tag)?
                    .get(..5)?
                    .parse()
                    .ok()
            })
            .collect();
        let want: Vec<usize> = (0..LINES).collect();
        assert!(
            seqs == want,
            "{name}'s lines at the peer: {} shown, not 0..{LINES} in order",
            seqs.len()
        );
    }
    let messages = peer
        .events()
        .iter()
        .filter(|v| {
            let text = v["event"] == "message" && v["text"].as_str().is_some_and(|t| t.len() > 3);
            text && ["s0 ", "s1 ", "s2 "].contains(&&v["text"].as_str().unwrap_or("")[..3])
        })
        .count();
    assert_eq!(messages, 3 * LINES, "no line twice");
    for w in writers {
        w.join().expect("writer thread");
    }
}

#[test]
fn a_stalled_reader_is_cut_off_while_the_others_get_every_message() {
    const LINES: usize = 40_000;
    // Small caps so the test is quick: 256 KiB unsent at most, 1 s past a quarter of that.
    let (mut hub, port) = Node::listener(
        "hub",
        &[
            "--max-backlog",
            "256K",
            "--slow-timeout",
            "1",
            "--rate-limit",
            "0",
        ],
    );
    let mut stalled = Raw::joined(&mut hub, port, "~guest-1", "I will never read");
    let readers: Vec<Raw> = (2..=4)
        .map(|i| Raw::joined(&mut hub, port, &format!("~guest-{i}"), "reader"))
        .collect();
    let mut sender = Raw::joined(&mut hub, port, "~guest-5", "sender");
    let names = vec!["~guest-5".to_string()];
    let checks: Vec<_> = readers
        .into_iter()
        .map(|mut raw| {
            let names = names.clone();
            thread::spawn(move || read_in_order(&mut raw, &names, LINES))
        })
        .collect();
    // 16 MB: far more than the cap plus what the kernel buffers for a reader that never reads.
    let writer = thread::spawn(move || {
        sender.send(&burst(0, LINES, 400));
        sender
    });
    for c in checks {
        c.join()
            .expect("reader thread")
            .expect("every line, in order");
    }
    writer.join().expect("the sender was not cut off");
    let leave = hub.wait_leave("~guest-1");
    let reason = leave["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("too slow"), "{leave}");
    // Reading it now: what the kernel held for it, then the end of the connection.
    stalled
        .stream
        .set_read_timeout(Some(util::DEADLINE))
        .expect("timeout");
    let mut sink = vec![0u8; 1 << 16];
    let end = Instant::now() + util::DEADLINE;
    loop {
        match stalled.stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => assert!(
                Instant::now() < end,
                "the stalled reader is still connected"
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stalled reader is still connected: {e}"),
        }
    }
}

/// The byte cap on its own: with `--slow-timeout` far longer than the test, only
/// `--max-backlog` can close a reader that never reads, and it must, with that reason, while
/// the sender goes on. Without the cap the unsent output would grow for as long as the sender
/// sends.
#[test]
fn a_stalled_reader_is_cut_by_the_byte_cap_when_the_time_cut_cannot_fire() {
    // 64 MiB at most, in 1 MiB bursts: far past the cap plus what the kernel buffers for a
    // reader that never reads, yet bounded if the cut never comes.
    const BURSTS: usize = 64;
    const BURST_LINES: usize = 2621;
    let (mut hub, port) = Node::listener(
        "hub",
        &[
            "--max-backlog",
            "256K",
            "--slow-timeout",
            "3600",
            "--rate-limit",
            "0",
        ],
    );
    let _stalled = Raw::joined(&mut hub, port, "~guest-1", "I will never read");
    let mut sender = Raw::joined(&mut hub, port, "~guest-2", "sender");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            for b in 0..BURSTS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sender.send(&burst(b % 10, BURST_LINES, 400));
            }
            sender
        })
    };
    let leave = hub.wait_leave("~guest-1");
    stop.store(true, Ordering::Relaxed);
    let want = format!("too slow: over {} bytes unsent", 256 * 1024);
    assert_eq!(leave["reason"].as_str(), Some(want.as_str()), "{leave}");
    hub.wait_stderr("the cut logged as a warning", |l| {
        l.contains("WARN") && l.ends_with(&format!(": {want}"))
    });
    // The sender was not cut with it: what it says next still arrives.
    let mut sender = writer.join().expect("writer thread");
    sender.send(b"still here\n");
    hub.wait_message("~guest-2", "still here");
}

#[test]
fn two_thousand_connections_all_receive_a_message() {
    const N: usize = 2000;
    if peerchat::limits::raise_fd_limit().unwrap_or(0) < (N as u64) + 64 {
        return util::skip_or_fail("the open-file limit is below 2064");
    }
    // All from 127.0.0.1: no limit of guests per address here.
    let (mut hub, port) = Node::listener("hub", &["--max-guests-per-ip", "0"]);
    let mut conns: Vec<TcpStream> = Vec::with_capacity(N);
    for _ in 0..N {
        conns.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    }
    // The hub has taken every connection once it shows the last guest joining (silent guests
    // are guests after a second).
    hub.wait_join(&format!("~guest-{N}"));
    let mut sender = conns.pop().expect("a sender");
    sender.write_all(b"hello, two thousand\n").expect("send");
    let want = format!("<~guest-{N}> hello, two thousand");
    // Everyone but the sender: after the join notices of those who came later, the message.
    for (i, stream) in conns.into_iter().enumerate() {
        stream
            .set_read_timeout(Some(util::DEADLINE))
            .expect("timeout");
        let mut lines = BufReader::new(stream).lines();
        let found = lines.any(|l| l.is_ok_and(|l| l == want));
        assert!(found, "connection {i} of {N} did not get the message");
    }
}

/// CPU time of process `pid` so far (all threads), from `/proc/PID/task/*/schedstat`.
fn cpu_time(pid: u32) -> Duration {
    let mut nanos = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        nanos += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(nanos)
}

#[test]
fn out_of_file_descriptors_it_neither_spins_nor_stops_accepting() {
    // 64 descriptors: a few for itself, the rest for about 55 connections.
    // A --max-conns above what the descriptors allow, so that they run out.
    let mut hub = Node::spawn_with_fd_limit(
        64,
        64,
        &["-l", "127.0.0.1:0", "--json", "--max-conns", "1000"],
    );
    let ev = hub.wait_event(|v| v["event"] == "info");
    let port: u16 = ev["text"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    let pid = hub.child.id();
    // 100 connections: the kernel queues what the hub cannot accept.
    let mut conns: Vec<BufReader<TcpStream>> = (0..100)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(util::DEADLINE)).expect("timeout");
            BufReader::new(s)
        })
        .collect();
    // It says so, and waits longer each time it tries again while the pressure lasts.
    let warning = |l: &str| l.contains("cannot accept: too many open files");
    hub.wait_stderr("a warning about file descriptors", warning);
    let (t0, cpu0) = (Instant::now(), cpu_time(pid));
    for _ in 0..3 {
        hub.wait_stderr("another try", warning);
    }
    let wall = t0.elapsed();
    let cpu = cpu_time(pid) - cpu0;
    // Three retries (10, 20, 40 ms apart at least) of a loop that does not spin: a little CPU,
    // where a spinning loop would burn all of the wall time.
    assert!(
        cpu < wall / 2,
        "{cpu:?} of CPU in {wall:?} while out of file descriptors"
    );
    // The accepted connections got the hello long ago (when they were accepted); the others
    // have nothing yet.
    let mut accepted = Vec::new();
    let mut waiting = Vec::new();
    for r in conns.drain(..) {
        r.get_ref().set_nonblocking(true).expect("nonblocking");
        let mut first = [0u8; 9];
        match r.get_ref().peek(&mut first) {
            Ok(n) if n > 0 => accepted.push(r),
            Err(e) if e.kind() == ErrorKind::WouldBlock => waiting.push(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        !accepted.is_empty() && !waiting.is_empty(),
        "{} accepted, {} waiting",
        accepted.len(),
        waiting.len()
    );
    // The pressure ends: every connection still waiting is accepted and greeted.
    drop(accepted);
    for mut r in waiting {
        r.get_ref().set_nonblocking(false).expect("blocking");
        let mut line = String::new();
        r.read_line(&mut line)
            .expect("a hello once descriptors are free");
        assert!(line.starts_with("peerchat/"), "{line:?}");
    }
}

#[test]
fn connections_past_max_conns_are_refused_politely_and_the_rest_go_on() {
    let (mut hub, port) = Node::listener("hub", &["--max-conns", "3"]);
    let mut a = Raw::joined(&mut hub, port, "~guest-1", "one");
    let mut b = Raw::joined(&mut hub, port, "~guest-2", "two");
    let c = Raw::joined(&mut hub, port, "~guest-3", "three");
    // The fourth is told, then closed.
    let mut extra = Raw::connect(port);
    let said = extra.line().expect("a line before the close");
    assert_eq!(
        said,
        "peerchat: this chat is full (3 connections); try again later"
    );
    assert_eq!(extra.line(), None, "closed after saying so");
    hub.wait_stderr("a warning", |l| {
        l.contains("the chat is full (3 connections")
    });
    // The others are not disturbed.
    a.send(b"still here\n");
    b.wait_line(|l| l == "<~guest-1> still here");
    // Room again once someone leaves.
    drop(c);
    hub.wait_leave("~guest-3");
    let _d = Raw::joined(&mut hub, port, "~guest-4", "in at last");
}

#[test]
fn a_flooding_guest_is_held_to_the_rate_limit_and_told() {
    // The default limit: 20 lines a second, bursts of 200.
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut reader = Raw::joined(&mut hub, port, "~guest-1", "reader");
    let mut flood = Raw::joined(&mut hub, port, "~guest-2", "flood");
    flood.send(&burst(0, 1000, 40));
    // The flooder is told; then a line from the hub's user marks the end of what went out (a
    // guest from 127.0.0.1 would be held to the budget the flooder spent).
    let told = flood.wait_line(|l| l.starts_with("peerchat: slow down: "));
    assert!(
        told.ends_with("line(s) not sent (at most 20 a second)"),
        "{told}"
    );
    hub.send("done");
    let mut got = Vec::new();
    loop {
        let line = reader.line().expect("the reader stays connected");
        if line == "<hub> done" {
            break;
        }
        if let Some(rest) = line.strip_prefix("<~guest-2> s0 ") {
            got.push(rest[..5].parse::<usize>().expect("a number"));
        }
    }
    // The first ones, in order, as many as the burst allows (less the joins and first lines
    // of both guests, which share 127.0.0.1's budget, plus what trickled back in meanwhile);
    // none of the rest.
    assert!(
        (196..=500).contains(&got.len()),
        "{} lines went out",
        got.len()
    );
    assert!(got.iter().enumerate().all(|(i, &n)| i == n), "{got:?}");
}
