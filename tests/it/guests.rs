//! Guests as people, over loopback with a raw TCP connection as the guest (as `nc` would be):
//! the welcome after the hello, and each command answered to that guest alone; nick changes,
//! actions and leaves seen by everyone; and the limits per source address (how many guests,
//! how many lines between them).

use std::time::Instant;

use crate::util::{burst, Node, Raw};

/// The next `n` lines from `raw`.
fn lines(raw: &mut Raw, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| raw.line().expect("a line, not the end"))
        .collect()
}

/// A guest of `host` that said `first` and has read its whole welcome.
fn welcomed(host: &mut Node, port: u16, nick: &str, first: &str) -> Raw {
    let mut raw = Raw::joined(host, port, nick, first);
    raw.wait_line(|l| l.starts_with("* /quit or sair leaves"));
    raw
}

/// A line of the history a guest is told after its welcome: `[HH:MM:SS] <nick> text`.
fn is_history(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|l| l.split_once("] "))
        .is_some_and(|(time, _)| chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").is_ok())
}

/// Sends `line` from `raw`, then `marker` (a plain message), and returns what `other` read up
/// to that marker: anything `line` made it see comes before (not the history it was told on
/// arrival, which may still be on its way).
fn seen_by_other_before_marker(
    raw: &mut Raw,
    line: &str,
    other: &mut Raw,
    marker: &str,
) -> Vec<String> {
    raw.send(format!("{line}\n{marker}\n").as_bytes());
    let mut seen = Vec::new();
    loop {
        let l = other.line().expect("the other guest stays connected");
        if l.ends_with(marker) {
            return seen;
        }
        if !is_history(&l) {
            seen.push(l);
        }
    }
}

#[test]
fn a_guest_is_welcomed_after_the_hello_with_its_name_who_is_here_and_how_to_leave() {
    let (_ana, _bob, port) = Node::pair("ana", "bob", &[]);
    let mut guest = Raw::connect(port);
    // Silent: taken for a guest after the hello wait, then welcomed.
    let got = lines(&mut guest, 5);
    assert!(
        got[0].starts_with("peerchat/4 hello from ana (node="),
        "{got:#?}"
    );
    assert_eq!(
        got[1..],
        [
            "* you are guest-1 (/nick NAME changes it)",
            "* 3 here: ana, bob, ~guest-1 (you)",
            "* commands: /names, /msg NICK text, /me action, /help",
            "* /quit or sair leaves; //text sends a line starting with /",
        ]
    );
    // The hello carries a key and a nonce, so it is the one line wider than a terminal; what
    // is said to the guest fits in 80 columns.
    assert!(got[1..].iter().all(|l| l.chars().count() < 80), "{got:#?}");
}

#[test]
fn names_and_help_are_answered_to_the_guest_alone() {
    let (mut ana, port) = Node::listener("ana", &[]);
    let mut one = Raw::joined(&mut ana, port, "~guest-1", "one here");
    let mut two = welcomed(&mut ana, port, "~guest-2", "two here");
    for line in ["/names", "/help", "/bogus"] {
        let seen = seen_by_other_before_marker(&mut one, line, &mut two, &format!("after {line}"));
        assert!(seen.is_empty(), "{line}: guest-2 saw {seen:#?}");
    }
    one.wait_line(|l| l == "* 3 here: ana, ~guest-1 (you), ~guest-2");
    one.wait_line(|l| l == "*   /quit [reason]   leave (also /exit or sair)");
    one.wait_line(|l| l == "* unknown command /bogus; nothing was sent (type /help)");
    ana.wait_message("~guest-1", "after /bogus");
    let leaked: Vec<_> = ana
        .events()
        .into_iter()
        .filter(|v| v["event"] == "names" || v["text"].as_str().is_some_and(|t| t.starts_with('/')))
        .collect();
    assert!(leaked.is_empty(), "the host saw {leaked:#?}");
}

#[test]
fn a_guest_nick_change_is_seen_by_all_and_a_clash_is_refused() {
    let (mut ana, mut bob, port) = Node::pair("ana", "bob", &[]);
    let mut one = Raw::joined(&mut ana, port, "~guest-1", "one here");
    let mut two = Raw::joined(&mut ana, port, "~guest-2", "two here");
    one.send(b"/nick zoe\n");
    for node in [&mut ana, &mut bob] {
        node.wait_event(|v| v["event"] == "nick" && v["old"] == "~guest-1" && v["nick"] == "~zoe");
    }
    for raw in [&mut one, &mut two] {
        raw.wait_line(|l| l == "* ~guest-1 is now known as ~zoe");
    }
    two.send(b"/nick ZOE\n/nick bob\n");
    two.wait_line(|l| l == "* cannot change nick: ~zoe is taken");
    two.wait_line(|l| l == "* cannot change nick: bob is taken");
    one.send(b"as zoe\n");
    bob.wait_message("~zoe", "as zoe");
    assert_eq!(
        bob.events().iter().filter(|v| v["event"] == "nick").count(),
        1,
        "{:#?}",
        bob.history
    );
}

#[test]
fn a_guest_direct_message_reaches_its_one_recipient() {
    let (mut ana, mut bob, port) = Node::pair("ana", "bob", &[]);
    let mut one = Raw::joined(&mut ana, port, "~guest-1", "one here");
    let mut two = welcomed(&mut ana, port, "~guest-2", "two here");
    let seen = seen_by_other_before_marker(&mut one, "/msg bob psst", &mut two, "after the dm");
    assert!(seen.is_empty(), "guest-2 saw {seen:#?}");
    let dm = bob.wait_event(|v| v["event"] == "dm");
    assert_eq!(
        (&dm["from"], &dm["to"], &dm["text"]),
        (&"~guest-1".into(), &"bob".into(), &"psst".into())
    );
    one.wait_line(|l| l == "[dm -> bob] psst");
    one.send(b"/msg guest-2 next door\n");
    two.wait_line(|l| l == "[dm] <~guest-1> next door");
    one.send(b"/msg ana to the host\n");
    let dm = ana.wait_event(|v| v["event"] == "dm");
    assert_eq!(dm["text"], "to the host", "only the DM for ana: {dm}");
    bob.send("marker");
    two.wait_line(|l| l == "<bob> marker");
    let dms = |n: &Node| n.events().iter().filter(|v| v["event"] == "dm").count();
    assert_eq!((dms(&ana), dms(&bob)), (1, 1));
}

#[test]
fn a_guest_action_is_seen_by_everyone() {
    let (mut ana, mut bob, port) = Node::pair("ana", "bob", &[]);
    let mut one = Raw::joined(&mut ana, port, "~guest-1", "one here");
    let mut two = Raw::joined(&mut ana, port, "~guest-2", "two here");
    one.send(b"/me waves\n");
    for node in [&mut ana, &mut bob] {
        node.wait_event(|v| v["event"] == "me" && v["from"] == "~guest-1" && v["text"] == "waves");
    }
    for raw in [&mut one, &mut two] {
        raw.wait_line(|l| l == "* ~guest-1 waves");
    }
}

#[test]
fn sair_disconnects_the_guest_and_the_host_shows_it_leave() {
    // A host in line mode (not JSON), as a person runs it.
    let mut ana = Node::spawn(&["-l", "127.0.0.1:0", "--nick", "ana"]);
    let line = ana.wait_line("listening", |l| l.contains("listening on"));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let mut one = Raw::connect(port);
    one.send(b"hi\n");
    ana.wait_line("the first line", |l| l.ends_with(" <~guest-1> hi"));
    let mut two = Raw::connect(port);
    two.send(b"hello\n");
    ana.wait_line("the second guest", |l| l.ends_with(" <~guest-2> hello"));
    one.send(b"/nick zoe\n/me waves\nsair\n");
    one.wait_line(|l| l == "* bye, zoe");
    assert_eq!(one.line(), None, "disconnected after its goodbye");
    for want in [
        "* ~guest-1 is now known as ~zoe",
        "* ~zoe waves",
        "* ~zoe left",
    ] {
        ana.wait_line(want, |l| l.ends_with(want));
    }
    two.wait_line(|l| l == "* ~zoe left");
    assert!(
        !ana.history
            .iter()
            .any(|l| l.contains("sair") || l.contains("/nick")),
        "{:#?}",
        ana.history
    );
}

/// What the hub's `--json` output says of a guest turned away by `--max-guests-per-ip`.
fn refusal_notices(node: &Node) -> usize {
    let notice = |v: &serde_json::Value| {
        v["event"] == "info"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("too many guests from 127.0.0.1 (8, "))
    };
    node.events().iter().filter(|v| notice(v)).count()
}

#[test]
fn a_ninth_guest_from_one_address_is_told_and_closed_and_never_shown() {
    // bob is a peer from the same address: peers do not count.
    let (mut hub, mut bob, port) = Node::pair("hub", "bob", &[]);
    let mut eight: Vec<Raw> = (1..=8)
        .map(|i| {
            Raw::joined(
                &mut hub,
                port,
                &format!("~guest-{i}"),
                &format!("hi from {i}"),
            )
        })
        .collect();
    let too_many = "* too many guests from your address (8); try again later";
    let mut ninth = Raw::connect(port);
    ninth.send(b"let me in\n");
    assert_eq!(ninth.wait_line(|l| l.starts_with("* ")), too_many);
    assert_eq!(ninth.line(), None, "closed after saying so");
    // One that says nothing is turned away once its hello wait is over.
    let mut tenth = Raw::connect(port);
    assert_eq!(tenth.wait_line(|l| l.starts_with("* ")), too_many);
    assert_eq!(tenth.line(), None, "closed after saying so");
    // The eight are still here; the marker is behind anything the two could have caused.
    eight[0].send(b"marker\n");
    for node in [&mut hub, &mut bob] {
        node.wait_message("~guest-1", "marker");
        let shown: Vec<_> = node
            .events()
            .into_iter()
            .filter(|v| {
                v["event"] == "leave"
                    || (v["event"] == "join" && v["nick"] != "hub" && v["nick"] != "bob")
                    || v["text"] == "let me in"
            })
            .collect();
        assert_eq!(shown.len(), 8, "eight joins, nothing else: {shown:#?}");
    }
    eight[7].wait_line(|l| l == "<~guest-1> marker");
    assert_eq!(refusal_notices(&hub), 1, "{:#?}", hub.history);
    // One leaves: there is room for one more.
    drop(eight.remove(0));
    hub.wait_leave("~guest-1");
    let _next = Raw::joined(&mut hub, port, "~guest-9", "in at last");
    bob.wait_message("~guest-9", "in at last");
}

/// Guest lines `watcher` has shown up to the hub's line `marker`, which the hub sends now:
/// the hub's own line reaches the watcher after every guest line the hub passed before it.
fn guest_lines_up_to(hub: &mut Node, watcher: &mut Node, marker: &str) -> usize {
    hub.send(marker);
    watcher.wait_message("hub", marker);
    let from_guest = |v: &serde_json::Value| {
        v["event"] == "message" && v["from"].as_str().is_some_and(|f| f.starts_with("guest-"))
    };
    watcher.events().iter().filter(|v| from_guest(v)).count()
}

#[test]
fn twenty_guests_from_one_address_share_one_flood_budget() {
    const GUESTS: usize = 20;
    // The default --rate-limit: 20 lines a second, bursts of 200.
    let (per_sec, burst_lines) = (20.0, 200);
    let (mut hub, port) = Node::listener("hub", &["--max-guests-per-ip", "0"]);
    let mut watcher = Node::client("watcher", port, &[]);
    hub.wait_join("watcher");
    watcher.wait_join("hub");
    // Each guest sends one line more than one guest may burst (so that each is told), all at
    // once: twenty times what one address may.
    let start = Instant::now();
    let mut guests: Vec<Raw> = (0..GUESTS)
        .map(|k| {
            let mut raw = Raw::connect(port);
            raw.send(&burst(k, burst_lines + 1, 40));
            raw
        })
        .collect();
    // The address's budget since before its first guest connected: a burst, then the rate
    // (measured by the test, so at least what the hub's clock allowed).
    let within_budget = |shown: usize| {
        let elapsed = start.elapsed().as_secs_f64();
        let budget = burst_lines as f64 + per_sec * elapsed;
        assert!(
            shown as f64 <= budget,
            "{shown} guest lines shown in {elapsed:.2} s; one address may send {budget:.0}"
        );
    };
    within_budget(guest_lines_up_to(&mut hub, &mut watcher, "marker"));
    // Lines were dropped, not only unread yet: every guest is told, as a flooding one is.
    for guest in &mut guests {
        guest.wait_line(|l| l.starts_with("peerchat: slow down: "));
    }
    within_budget(guest_lines_up_to(&mut hub, &mut watcher, "all told"));
}
