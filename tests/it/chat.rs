//! End-to-end behaviour of the real binary over loopback: peers, guests, pipes, exits, errors.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use crate::util::{self, bin, burst, closed_port, read_in_order, Node, Raw, TempPath};

#[test]
fn two_peers_exchange_both_ways() {
    let (mut hub, port) = Node::listener("alice", &[]);
    let mut bob = Node::client("bob", port, &[]);
    let join = hub.wait_join("bob");
    assert!(join["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    bob.wait_join("alice");

    bob.send("oi, tudo bem? ação 你好 👋");
    hub.wait_message("bob", "oi, tudo bem? ação 你好 👋");
    hub.send("  leading spaces kept");
    bob.wait_message("alice", "  leading spaces kept");
}

#[test]
fn listener_with_three_clients_relays_to_all() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut clients: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::client(n, port, &[]))
        .collect();
    for nick in ["a", "b", "c"] {
        hub.wait_join(nick);
    }
    for c in &mut clients {
        c.wait_join("hub");
    }

    clients[0].send("from a");
    hub.wait_message("a", "from a");
    clients[1].wait_message("a", "from a");
    clients[2].wait_message("a", "from a");

    clients[2].send("from c");
    clients[0].wait_message("c", "from c");
    clients[1].wait_message("c", "from c");

    hub.send("from hub");
    for c in &mut clients {
        c.wait_message("hub", "from hub");
    }
    // Everything relayed travels the same ordered connection as the hub's own lines, so once
    // "end" is in, any duplicate or echo would be in too.
    hub.send("end");
    for c in &mut clients {
        c.wait_message("hub", "end");
    }
    for (c, own) in clients.iter().zip(["a", "b", "c"]) {
        for (from, text) in [("a", "from a"), ("c", "from c"), ("hub", "from hub")] {
            let n = c
                .events()
                .iter()
                .filter(|v| v["event"] == "message" && v["text"] == text)
                .count();
            let want = usize::from(from != own);
            assert_eq!(n, want, "{own} shows {text:?} {n} times: {:#?}", c.history);
        }
    }
}

#[test]
fn an_nc_style_guest_sends_and_receives() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut bob = Node::client("bob", port, &[]);
    hub.wait_join("bob");
    let mut guest = Raw::connect(port);
    // A person at nc first reads a hello that is a sentence, not a protocol dump.
    let hello = guest.line().expect("hello line");
    assert!(hello.starts_with("peerchat/4 hello from hub"), "{hello}");

    guest.send(b"hi from nc\r\n");
    let join = hub.wait_join("~guest-1");
    assert!(join["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    hub.wait_message("~guest-1", "hi from nc");
    bob.wait_message("~guest-1", "hi from nc");

    bob.send("hello guest");
    guest.wait_line(|l| l == "<bob> hello guest");
    hub.send("me too");
    guest.wait_line(|l| l == "<hub> me too");
}

#[test]
fn a_silent_guest_still_receives_the_chat() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut guest = Raw::connect(port);
    guest.line().expect("hello line");
    hub.wait_join("~guest-1");
    hub.send("anyone there?");
    guest.wait_line(|l| l == "<hub> anyone there?");
}

#[test]
fn a_guest_line_without_newline_is_shown_when_the_guest_goes_quiet() {
    // chat_p2p.py sends each typed line with no newline at all.
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut guest = Raw::connect(port);
    guest.send("Olá!".as_bytes());
    hub.wait_message("~guest-1", "Olá!");
    guest.send(b"segunda");
    hub.wait_message("~guest-1", "segunda");
}

#[test]
fn piped_stdin_is_delivered_before_exit() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let (mut child, _config) = util::client_process(port, "pipe", &[], Stdio::null());
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\n").unwrap();
    } // stdin closed: EOF reached at once, before the connection is even up
    hub.wait_message("pipe", "one");
    hub.wait_message("pipe", "two");
    let leave = hub.wait_leave("pipe");
    assert!(leave.get("reason").is_none(), "{leave}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let msgs: Vec<String> = hub
        .events()
        .iter()
        .filter(|v| v["event"] == "message")
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(msgs, ["one", "two"]);
}

#[test]
fn sair_exits_zero_and_the_other_side_sees_the_leave() {
    let (mut hub, mut bob, port) = Node::pair("hub", "bob", &[]);
    bob.send("  SAIR ");
    assert_eq!(bob.wait_exit().code(), Some(0));
    hub.wait_leave("bob");
    // The listener keeps running and accepting.
    let mut carol = Node::client("carol", port, &[]);
    hub.wait_join("carol");
    carol.send("still open");
    hub.wait_message("carol", "still open");
}

#[test]
fn sigint_and_sigterm_leave_cleanly_with_the_shells_exit_codes() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = std::env::temp_dir().join(format!("peerchat-sig-{}-{sig}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let log = dir.to_string_lossy().to_string();
        let (mut hub, mut bob, _) = Node::pair("hub", "bob", &["--log-file", &log]);
        bob.send("before the signal");
        hub.wait_message("bob", "before the signal");
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(bob.child.id() as i32, sig) }, 0);
        // The others are told (a goodbye, not a lost connection), and it ends with the code a
        // shell shows for that signal.
        let leave = hub.wait_leave("bob");
        assert!(leave.get("reason").is_none(), "{leave}");
        assert_eq!(bob.wait_exit().code(), Some(code));
        let logged = std::fs::read_to_string(&dir).expect("log file");
        let _ = std::fs::remove_file(&dir);
        assert!(
            logged
                .lines()
                .last()
                .is_some_and(|l| l.ends_with("[CLOSED] chat closed")),
            "{logged}"
        );
    }
}

/// The most bytes the kernel can be holding for `reader`'s connection: what waits in its receive
/// queue now, plus the largest send buffer the other end may have grown (`tcp_wmem`'s maximum).
fn kernel_can_hold(reader: &Raw) -> usize {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, which lives here, about a socket this test owns.
    let ok = unsafe { libc::ioctl(reader.stream.as_raw_fd(), libc::FIONREAD, &mut queued) };
    assert_eq!(ok, 0, "FIONREAD");
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").expect("tcp_wmem");
    let send_max: usize = wmem
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .expect("tcp_wmem's maximum");
    usize::try_from(queued).unwrap_or(0) + send_max
}

/// "Queued output is sent" with output queued: the hub has taken in a burst far larger than the
/// kernel can hold for a guest that has not read yet when SIGINT comes; the guest, reading only
/// then, still gets every line in order, then the end of the stream, and the log says all was
/// delivered.
#[test]
fn sigint_with_output_queued_for_a_reader_still_delivers_all_of_it() {
    const LINES: usize = 30_000;
    const SIZE: usize = 400;
    let log = TempPath::new("sigint-queued.log");
    // Nothing cuts the reader off: a byte cap above the burst, a time cut longer than the test.
    let (mut hub, port) = Node::listener(
        "hub",
        &[
            "--max-backlog",
            "64M",
            "--slow-timeout",
            "3600",
            "--rate-limit",
            "0",
            "--log-file",
            log.as_str(),
        ],
    );
    let mut reader = Raw::joined(&mut hub, port, "~guest-1", "I read later");
    let mut sender = Raw::joined(&mut hub, port, "~guest-2", "sender");
    sender.send(&burst(0, LINES, SIZE));
    // Shown by the hub means read by it, and so queued for the reader.
    let last = format!("s0 {:05} ", LINES - 1);
    hub.wait_event(|v| {
        v["event"] == "message"
            && v["from"] == "~guest-2"
            && v["text"].as_str().is_some_and(|t| t.starts_with(&last))
    });
    let room = kernel_can_hold(&reader);
    assert!(
        LINES * SIZE > room + (1 << 20),
        "the burst must outgrow the kernel's buffers ({room} bytes) to be queued in the hub"
    );
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(hub.child.id() as i32, libc::SIGINT) },
        0
    );
    read_in_order(&mut reader, &["~guest-2".to_string()], LINES).expect("every line, in order");
    let mut after = Vec::new();
    while let Some(line) = reader.line() {
        after.push(line);
    }
    assert!(
        after.iter().all(|l| !l.contains("s0 ")),
        "a line came twice: {after:?}"
    );
    drop(reader);
    assert_eq!(hub.wait_exit().code(), Some(130));
    let logged = log.lines();
    assert!(
        logged
            .last()
            .is_some_and(|l| l.ends_with("[CLOSED] chat closed")),
        "{:?}",
        logged.last()
    );
}

#[test]
fn quit_with_a_reason_and_leaves_are_relayed() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut a = Node::client("a", port, &[]);
    let mut b = Node::client("b", port, &[]);
    hub.wait_join("a");
    hub.wait_join("b");
    a.wait_join("hub");
    a.send("/quit off to lunch");
    assert_eq!(a.wait_exit().code(), Some(0));
    let leave = b.wait_leave("a");
    assert_eq!(leave["reason"], "off to lunch");
}

#[test]
fn a_killed_peer_is_shown_leaving_and_the_client_ends_when_its_hub_goes() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut a = Node::client("a", port, &[]);
    let mut b = Node::client("b", port, &[]);
    hub.wait_join("a");
    hub.wait_join("b");
    a.wait_join("hub");
    b.wait_join("hub");
    b.child.kill().unwrap();
    hub.wait_leave("b");
    a.wait_leave("b");
    hub.child.kill().unwrap();
    // Its last connection: shown leaving before the end, not after a wait the end cuts short.
    let leave = a.wait_leave("hub");
    // "connection reset" if the kill left bytes unread in the hub's socket.
    assert!(
        ["connection closed", "connection reset"].contains(&leave["reason"].as_str().unwrap_or("")),
        "{leave}"
    );
    a.wait_event(|v| v["event"] == "info" && v["text"] == "no connections left");
    assert_eq!(a.wait_exit().code(), Some(0));
}

#[test]
fn keep_open_stays_after_input_ends() {
    let (mut hub, mut bob, _) = Node::pair("hub", "bob", &["--keep-open"]);
    bob.close_stdin();
    bob.wait_event(|v| v["event"] == "info" && v["text"].as_str().unwrap().contains("input ended"));
    hub.send("are you still there?");
    bob.wait_message("hub", "are you still there?");
    assert!(bob.child.try_wait().unwrap().is_none());
}

#[test]
fn keep_open_says_once_that_input_ended() {
    for format in [&["--json"][..], &[]] {
        let mut args = vec!["-l", "127.0.0.1:0", "--keep-open", "--nick", "hub"];
        args.extend_from_slice(format);
        let mut node = Node::spawn(&args);
        node.close_stdin();
        node.wait_line("the notice", |l| l.contains("input ended"));
        // A second notice came in the same turn as the first: it is out before the signal's.
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(
            unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) },
            0
        );
        node.wait_line("the signal's notice", |l| l.contains("SIGTERM: leaving"));
        assert_eq!(node.wait_exit().code(), Some(143));
        let notices = node
            .history
            .iter()
            .filter(|l| l.contains("input ended; still receiving (--keep-open)"))
            .count();
        assert_eq!(notices, 1, "{format:?}: {:?}", node.history);
    }
}

#[test]
fn refused_connect_exits_1_with_one_line() {
    let port = closed_port();
    let mut node = Node::spawn(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(node.wait_exit().code(), Some(1));
    let err = node.stderr_lines();
    assert_eq!(
        err,
        [format!(
            "peerchat: cannot connect to 127.0.0.1:{port}: connection refused"
        )]
    );
}

#[test]
fn busy_port_exits_1_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut node = Node::spawn(&["-l", &format!("127.0.0.1:{port}")]);
    assert_eq!(node.wait_exit().code(), Some(1));
    assert_eq!(
        node.stderr_lines(),
        [format!(
            "peerchat: cannot listen on 127.0.0.1:{port}: address in use"
        )]
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--nick", "two words", "127.0.0.1"],
        &["--nick", "", "127.0.0.1"],
        &["-l", "99999"],
        &["5000"],
        &["127.0.0.1:0"],
        &["--identity", "", "-l", "127.0.0.1:0"],
        // No mode, and stdin is not a terminal.
        &[],
    ] {
        let out = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_fits_80_columns_and_names_the_key_options() {
    for flag in ["--help", "-h"] {
        // Piped, and as from a terminal far wider than 80 columns.
        for columns in [None, Some("250")] {
            let mut cmd = Command::new(bin());
            cmd.arg(flag);
            if let Some(c) = columns {
                cmd.env("COLUMNS", c);
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0));
            let text = String::from_utf8(out.stdout).unwrap();
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "{flag}: {line:?}");
            }
            for key in ["--bell <WHEN>", "-l, --listen", "mention", "/help"] {
                assert!(text.contains(key), "{flag}: no {key:?} in\n{text}");
            }
        }
    }
}

#[test]
fn help_and_version_exit_0() {
    for flag in ["--help", "--version"] {
        let out = Command::new(bin()).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn an_oversize_line_drops_only_that_connection() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut other = Raw::joined(&mut hub, port, "~guest-1", "I am fine");

    let mut big = Raw::joined(&mut hub, port, "~guest-2", "short first line");
    big.send(&vec![b'a'; 70 * 1024]);
    let leave = hub.wait_leave("~guest-2");
    assert!(
        leave["reason"]
            .as_str()
            .unwrap()
            .contains("line longer than"),
        "{leave}"
    );
    // Its socket is closed (end of stream or reset, not silence)...
    let mut rest = Vec::new();
    match big.stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // ...and the other connection carries on.
    other.send(b"still here\n");
    hub.wait_message("~guest-1", "still here");
    hub.send("to the survivor");
    other.wait_line(|l| l == "<hub> to the survivor");
}

/// Bad input closes only the connection it came on: with a peer and a guest chatting through a
/// hub, a peer that sends a malformed frame and another that sends a line past the cap are
/// each closed with the reason and their sockets ended; nobody else leaves, and the others go
/// on chatting every way.
#[test]
fn bad_input_closes_only_that_connection_and_the_others_keep_chatting() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut bob = Node::client("bob", port, &[]);
    hub.wait_join("bob");
    bob.wait_join("hub");
    let mut guest = Raw::joined(&mut hub, port, "~guest-1", "hi all");
    bob.wait_message("~guest-1", "hi all");
    let troubles: [(&str, u8, Vec<u8>, &str); 2] = [
        (
            "troll",
            0xcc,
            b"MSG not-an-id 00000000000000cc troll hi\n".to_vec(),
            "malformed frame",
        ),
        (
            "bigmouth",
            0xdd,
            vec![b'a'; 70 * 1024],
            "line longer than 65536 bytes",
        ),
    ];
    for (nick, seed, bad, why) in troubles {
        let mut fake = crate::fake::FakePeer::connect(port, nick, seed);
        fake.announce();
        hub.wait_join(nick);
        bob.wait_join(nick);
        let raw = &mut fake.raw;
        raw.send(&bad);
        let leave = hub.wait_leave(nick);
        let reason = leave["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with(why), "{leave}");
        bob.wait_leave(nick);
        // Its socket is closed (end of stream or reset, not silence).
        let mut rest = Vec::new();
        if let Err(e) = raw.stream.read_to_end(&mut rest) {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        }
    }
    // Everyone else is still here, and every way still works.
    bob.send("after the trouble");
    hub.wait_message("bob", "after the trouble");
    guest.wait_line(|l| l == "<bob> after the trouble");
    guest.send(b"still with you\n");
    hub.wait_message("~guest-1", "still with you");
    bob.wait_message("~guest-1", "still with you");
    hub.send("the hub too");
    bob.wait_message("hub", "the hub too");
    guest.wait_line(|l| l == "<hub> the hub too");
    for node in [&hub, &bob] {
        let left: Vec<String> = node
            .events()
            .iter()
            .filter(|v| v["event"] == "leave")
            .map(|v| v["nick"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(left, ["troll", "bigmouth"], "{:#?}", node.history);
    }
}

#[test]
fn escape_sequences_from_a_peer_do_not_reach_stdout_raw() {
    let mut hub = Node::spawn(&["-l", "127.0.0.1:0", "--nick", "hub"]);
    let line = hub.wait_line("listening", |l| l.contains("listening on"));
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let mut guest = Raw::connect(port);
    guest
        .send("\x1b[2J\x1b]0;pwned\x07 red:\x1b[31m c1:\u{9b}31m bidi:\u{202e}x ação\n".as_bytes());
    let shown = hub.wait_line("the message", |l| l.contains("bidi:"));
    for bad in ['\x1b', '\x07', '\u{9b}', '\u{202e}'] {
        assert!(!shown.contains(bad), "{bad:?} reached stdout: {shown:?}");
    }
    assert!(
        shown.contains("<~guest-1> ^[[2J^[]0;pwned^G red:^[[31m"),
        "{shown}"
    );
    assert!(shown.contains("\\u{202e}x ação"), "{shown}");
}

#[test]
fn json_passes_peer_text_through_exactly() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut guest = Raw::connect(port);
    let text = "tab\there \x1b[31m \"q\" \\ ação";
    guest.send(format!("{text}\n").as_bytes());
    hub.wait_message("~guest-1", text);
}

#[test]
fn peerchat_dialling_a_plain_listener_speaks_human_text() {
    // Like `nc -l 5000` or chat_p2p.py in server mode.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut node = Node::client("alice", port, &[]);
    let (stream, _) = listener.accept().unwrap();
    let mut raw = Raw::from_stream(stream);
    let hello = raw.line().unwrap();
    assert!(hello.starts_with("peerchat/4 hello from alice"), "{hello}");
    raw.send(b"Peer: hello from python\n");
    node.wait_message("~guest-1", "Peer: hello from python");
    node.send("olá");
    raw.wait_line(|l| l == "<alice> olá");
    node.send("sair");
    raw.wait_line(|l| l == "* alice left");
    assert_eq!(raw.line(), None, "peerchat closes after leaving");
    assert_eq!(node.wait_exit().code(), Some(0));
}

#[test]
fn stdout_closed_early_exits_quietly() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let (mut reader, _config) = util::client_process(port, "headless", &["--json"], Stdio::piped());
    let stdin = reader.stdin.take().unwrap();
    hub.wait_join("headless");
    // Read one line then close the pipe, as `| head -1` does.
    let mut stdout = reader.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
    drop(stdout);
    for i in 0..50 {
        hub.send(&format!("line {i}"));
    }
    hub.wait_leave("headless");
    let out = reader.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn interactive_mode_on_a_terminal_asks_like_the_seed() {
    // `script` (util-linux) gives peerchat a real terminal as stdin; `TERM=dumb` keeps it in
    // line mode, which this test is about (the interactive screen is tested in `term`).
    if Command::new("script").arg("--version").output().is_err() {
        return util::skip_or_fail("`script` (util-linux) is not installed: no terminal to use");
    }
    let (mut hub, port) = Node::listener("hub", &[]);
    let config = util::TempDir::new("config");
    let mut term = Command::new("script")
        .args(["-qec", bin(), "/dev/null"])
        .env("XDG_CONFIG_HOME", &config.0)
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut keys = term.stdin.take().unwrap();
    {
        use std::io::Write;
        // A wrong answer is asked again, as in the seed; then client, address, nick, a line.
        write!(keys, "x\nc\n127.0.0.1:{port}\nbia\n").unwrap();
        keys.flush().unwrap();
        hub.wait_join("bia");
        writeln!(keys, "oi, do terminal").unwrap();
        keys.flush().unwrap();
        hub.wait_message("bia", "oi, do terminal");
        writeln!(keys, "sair").unwrap();
        keys.flush().unwrap();
    }
    hub.wait_leave("bia");
    let out = term.wait_with_output().unwrap();
    drop(keys);
    assert_eq!(out.status.code(), Some(0));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("server (s) or client (c)"), "{screen}");
    assert!(screen.contains("Please answer s"), "{screen}");
    assert!(screen.contains("* hub joined from 127.0.0.1:"), "{screen}");
}

#[test]
fn two_machines_on_a_lan() {
    // Each peer runs in its own network namespace, joined by a veth pair: the seed's two
    // computers, connecting by LAN address with the default port.
    let lan = match util::Lan::new() {
        Ok(lan) => lan,
        Err(why) => {
            return util::skip_or_fail(&format!(
                "cannot create network namespaces ({why}); needs root and iproute2"
            ))
        }
    };
    let mut ana = Node::spawn_in(&lan.a, &["-l", "--json", "--nick", "ana"]);
    ana.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let mut bia = Node::spawn_in(&lan.b, &["10.231.0.1", "--json", "--nick", "bia"]);
    let join = ana.wait_join("bia");
    assert!(
        join["addr"].as_str().unwrap().starts_with("10.231.0.2:"),
        "{join}"
    );
    bia.wait_event(|v| {
        v["event"] == "join" && v["nick"] == "ana" && v["addr"] == "10.231.0.1:5000"
    });
    bia.send("oi, ana");
    ana.wait_message("bia", "oi, ana");
    ana.send("oi, bia");
    bia.wait_message("ana", "oi, bia");
    bia.send("sair");
    assert_eq!(bia.wait_exit().code(), Some(0));
    ana.wait_leave("bia");
}

#[test]
fn piping_a_large_input_delivers_every_line_in_order() {
    // 20 000 lines, about 2 MB: more than a connection may have unsent, so input must wait
    // for the network instead of being dropped.
    const N: usize = 20_000;
    let (mut hub, port) = Node::listener("hub", &[]);
    let (mut child, _config) = util::client_process(port, "bulk", &[], Stdio::null());
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for i in 0..N {
            writeln!(stdin, "line {i:05} {}", "x".repeat(90)).unwrap();
        }
    });
    for i in 0..N {
        let want = format!("line {i:05} {}", "x".repeat(90));
        let got = hub.wait_event(|v| v["event"] == "message");
        assert_eq!(got["text"], want.as_str(), "message {i}");
    }
    writer.join().unwrap();
    hub.wait_leave("bulk");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_flooding_guest_does_not_stall_the_others() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let (mut hub, mut carol, port) = Node::pair("hub", "carol", &[]);

    let flood = Raw::joined(&mut hub, port, "~guest-1", "flood starts");
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        let mut stream = flood.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let chunk = b"y\n".repeat(32 * 1024);
            let end = Instant::now() + Duration::from_secs(60);
            // Bounded in time; stops early when told to or when the hub closes it.
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if stream.write_all(&chunk).is_err() {
                    return false;
                }
            }
            true
        })
    };
    // While the flood goes on, a peer and the hub's own user still get through.
    carol.send("can anyone hear me?");
    hub.wait_message("carol", "can anyone hear me?");
    hub.send("yes, carol");
    carol.wait_message("hub", "yes, carol");
    assert!(!flooding.is_finished(), "the flood ended before the check");
    let rss = util::rss_kib(hub.child.id());
    assert!(rss < 256 * 1024, "hub RSS {rss} KiB under a flood");
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
}

#[test]
fn a_dial_falls_back_to_the_next_address_keeping_what_was_typed() {
    use peerchat::input::Input;
    use peerchat::output::{Format, Output};
    use peerchat::reactor::{Dial, Reactor, Setup};
    use std::net::SocketAddr;

    let (mut hub, port) = Node::listener("hub", &[]);
    let dead: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let live: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let setup = Setup {
        dials: vec![Dial {
            label: "a-name-with-two-addresses".into(),
            addrs: vec![dead, live],
        }],
        ..Setup::new("fallback".into())
    };
    // Typed before any connection is up, then input ends: both must survive the failed dial.
    let run = std::thread::spawn(move || {
        let reactor = Reactor::new(setup, Output::new(Format::Json, std::io::sink()))?;
        reactor.run_with_input(|_waker| {
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            tx.send(Input::Line("typed early".into())).unwrap();
            tx.send(Input::End).unwrap();
            Ok(rx)
        })
    });
    hub.wait_join("fallback");
    hub.wait_message("fallback", "typed early");
    // Its own goodbye (input ended: no reason), not a lost connection judged later.
    let leave = hub.wait_leave("fallback");
    assert!(leave["reason"].is_null(), "{leave}");
    assert_eq!(run.join().unwrap(), Ok(peerchat::reactor::Ended::Done));
}

#[test]
fn a_peer_that_fails_at_once_does_not_stop_the_next_one() {
    // fe80::1 without a scope id is refused by the kernel at once: no packet leaves.
    let (mut hub, port) = Node::listener("hub", &[]);
    let live = format!("127.0.0.1:{port}");
    let mut node = Node::spawn(&["[fe80::1]:5000", &live, "--json", "--nick", "second"]);
    node.wait_event(|v| {
        v["event"] == "error"
            && v["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("cannot connect to [fe80::1]:5000")
    });
    hub.wait_join("second");
    node.send("made it");
    hub.wait_message("second", "made it");
}

#[test]
fn input_lost_to_a_stalled_last_connection_exits_1() {
    // A listener that accepts and never reads: what is piped in cannot be delivered, and the
    // program must say so instead of exiting 0.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (mut child, _config) = util::client_process(port, "stuck", &[], Stdio::null());
    let (_held_open, _) = listener.accept().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let line = format!("{}\n", "z".repeat(1000));
        // At most 64 MB; stops when peerchat stops reading or exits.
        for _ in 0..64 * 1024 {
            if stdin.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l == "peerchat: the last connection closed before everything was delivered"),
        "{err}"
    );
}

#[test]
fn quit_is_not_held_up_by_a_stalled_reader() {
    let (mut hub, mut bob, port) = Node::pair("hub", "bob", &[]);
    // A guest that never reads: the hub's output to it backs up and local input waits.
    let _stalled = Raw::joined(&mut hub, port, "~guest-1", "I never read");
    // About 28 MB in 900 lines: more than the kernel buffers plus 1 MiB, fewer lines than
    // peerchat takes off stdin (1024) while input waits.
    let chunk = "q".repeat(32 * 1024);
    for i in 0..900 {
        hub.send(&format!("{i} {chunk}"));
    }
    hub.send("/quit bye");
    let leave = bob.wait_leave("hub");
    assert_eq!(leave["reason"], "bye");
    // Everything typed before /quit reached the reader that reads, in order.
    let texts: Vec<String> = bob
        .events()
        .iter()
        .filter(|v| v["event"] == "message" && v["from"] == "hub")
        .map(|v| v["text"].as_str().unwrap_or("").to_string())
        .collect();
    let want: Vec<String> = (0..900).map(|i| format!("{i} {chunk}")).collect();
    assert!(
        texts == want,
        "bob got {} of 900 lines, in order",
        texts.len()
    );
    hub.wait_exit();
    // Once /quit was waiting, the stalled guest was given 1 s, not the usual 10 s.
    let cut = hub.wait_leave("~guest-1");
    assert_eq!(
        cut["reason"], "too slow: over 1048576 bytes unsent for 1s",
        "{cut}"
    );
}

#[test]
fn a_quiet_hub_relays_without_showing_the_chat() {
    let (mut hub, port) = Node::listener("hub", &["-q"]);
    let mut bob = Node::client("bob", port, &[]);
    // bob has read the hub's hello, so the hub has accepted bob: bob gets what follows.
    bob.wait_join("hub");
    let mut guest = Raw::joined(&mut bob, port, "~guest-1", "hi from nc");
    bob.send("relayed by a quiet hub");
    guest.wait_line(|l| l == "<bob> relayed by a quiet hub");
    // A command's answer still shows; then nothing else ever did.
    hub.send("/names");
    hub.wait_event(|v| v["event"] == "names");
    let kinds: Vec<String> = hub
        .events()
        .iter()
        .map(|v| v["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds, vec!["info", "names"], "{:#?}", hub.events());
}

#[test]
fn a_listener_raises_its_open_file_limit_and_warns_when_it_is_low() {
    // Room to raise: the soft limit goes up to the hard one.
    let mut hub = Node::spawn_with_fd_limit(256, 4096, &["-l", "127.0.0.1:0", "--json"]);
    hub.wait_event(|v| v["event"] == "info");
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", hub.child.id())).expect("/proc limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, vec!["4096", "4096"], "{line}");

    // No room: a clear warning on stderr, and it still runs.
    let mut low = Node::spawn_with_fd_limit(300, 300, &["-l", "127.0.0.1:0", "--json"]);
    low.wait_event(|v| v["event"] == "info");
    low.close_stdin();
    assert_eq!(low.wait_exit().code(), Some(0));
    let err = low.stderr_lines().join("\n");
    assert!(err.contains("open-file limit is 300"), "{err}");
}

#[test]
fn backpressure_slows_a_fast_sender_to_a_slow_reader_without_losing_lines() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    const LINES: usize = 48_000;
    // Quiet: a hub writing 48 000 chat lines to its stdout pipe would be slowed by that instead.
    let (hub, port) = Node::listener("hub", &["-q", "--rate-limit", "0"]);
    let mut slow = Raw::connect(port);
    slow.send(b"slow reader here\n");
    let mut sender = Raw::connect(port);
    sender.send(b"sender here\n");
    slow.wait_line(|l| l == "<~guest-2> sender here");
    // 24 MB: more than what a connection may have unsent (4 MiB) plus what the kernel's socket
    // buffers hold on loopback. Without backpressure the hub would take it all at once and
    // cut the slow reader off.
    let mut out = sender.stream.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        for i in 0..LINES {
            let line = format!("n {i:06} {}\n", "z".repeat(490));
            if out.write_all(line.as_bytes()).is_err() {
                return false;
            }
        }
        true
    });
    // A reader that takes about 16 KiB every 2 ms (8 MB/s): slow, but always draining.
    let mut got = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while got < LINES && Instant::now() < end {
        let Some(line) = slow.line() else {
            panic!("the hub closed the slow reader after {got} lines");
        };
        if let Some(rest) = line.strip_prefix("<~guest-2> n ") {
            assert_eq!(
                rest.get(..6),
                Some(format!("{got:06}").as_str()),
                "in order"
            );
            got += 1;
            if got % 32 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    assert_eq!(got, LINES);
    assert!(
        sending.join().expect("sender thread"),
        "the sender was cut off"
    );
    let warnings = hub.stderr_lines().join("\n");
    assert!(!warnings.contains("too slow"), "{warnings}");
}

/// Output of a node run in this process, one line per event, handed over a channel.
struct Lines(std::sync::mpsc::Sender<String>, Vec<u8>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        while let Some(end) = self.1.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.1.drain(..=end).collect();
            let _ = self
                .0
                .send(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_reconnecting_client_is_back_when_its_killed_hub_restarts() {
    use peerchat::input::Input;
    use peerchat::output::{Format, Output};
    use peerchat::reactor::{Dial, Ended, Reactor, Setup};
    use std::time::{Duration, Instant};

    // The hub restarts as the same person: its key is kept in a file both runs use.
    let dir = util::TempDir::new("hub-key");
    let key = dir.0.join("identity");
    let key = key.to_str().expect("utf-8 temp path");
    let (mut hub, port) = Node::listener("hub", &["--identity", key]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let setup = Setup {
        dials: vec![Dial {
            label: addr.to_string(),
            addrs: vec![addr],
        }],
        reconnect: true,
        ..Setup::new("client".into())
    };
    let (shown, said) = std::sync::mpsc::channel();
    let (typed, rx) = std::sync::mpsc::sync_channel(4);
    let (waker_tx, waker_rx) = std::sync::mpsc::channel();
    let run = std::thread::spawn(move || {
        let out = Output::new(Format::Human { colour: false }, Lines(shown, Vec::new()));
        let reactor = Reactor::new(setup, out)?;
        reactor.run_with_input(move |waker| {
            waker_tx.send(waker).unwrap();
            Ok(rx)
        })
    });
    let waker = waker_rx.recv_timeout(util::DEADLINE).unwrap();
    let mut seen = Vec::new();
    let mut wait_for = |want: &str| {
        let end = Instant::now() + util::DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match said.recv_timeout(left) {
                Ok(line) if line.contains(want) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {want:?}; the client said {seen:#?}"),
            }
        }
    };
    hub.wait_join("client");
    wait_for("hub joined");

    // Killed: no goodbye, the connection just drops.
    hub.child.kill().unwrap();
    hub.wait_exit();
    let lost = wait_for("lost the connection");
    assert!(
        lost.ends_with(&format!(
            "* lost the connection to {addr}; reconnecting in 1 s"
        )),
        "{lost}"
    );
    let again = wait_for("reconnecting to");
    assert!(
        again.ends_with(&format!("* reconnecting to {addr} in 2 s")),
        "{again}"
    );

    // The hub comes back with its key in a new run (a new node id, as every run has): the run
    // that was killed is shown leaving, when the wait for news of it is over or at the latest
    // when the new run proves the same key (the reason is "connection closed", or "connection
    // reset" if the kill left bytes unread), and the new one is plain "hub" again.
    let listen = addr.to_string();
    let mut hub = Node::spawn(&["-l", &listen, "--json", "--nick", "hub", "--identity", key]);
    wait_for("* hub left (connection ");
    hub.wait_join("client");
    hub.send("back on the same port");
    wait_for("<hub> back on the same port");
    typed.send(Input::Line("glad you are back".into())).unwrap();
    waker.wake().unwrap();
    hub.wait_message("client", "glad you are back");

    let t0 = Instant::now();
    typed.send(Input::Line("/quit".into())).unwrap();
    waker.wake().unwrap();
    assert_eq!(run.join().unwrap(), Ok(Ended::Done));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    hub.wait_leave("client");
}
