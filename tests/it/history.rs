//! History and repair with the real binary: a node that joins late is handed the last
//! `--history` messages, once, in order, marked; a chain split in two (a cable pulled between
//! network namespaces) and joined again shows every message on every node once, those said
//! during the split marked late; a line typed with nobody connected reaches the first peer;
//! a guest is told the history as plain lines with times.

use serde_json::Value;

use crate::util::{self, Node, Raw};

/// The chat messages (live and past) `node` showed with `text`.
fn shown(node: &Node, text: &str) -> Vec<Value> {
    node.events()
        .into_iter()
        .filter(|v| v["event"] == "message" && v["text"] == text)
        .collect()
}

/// Waits until `node` shows `text` from `from`, marked with `mark` (`history` or `late`).
fn wait_marked(node: &mut Node, from: &str, text: &str, mark: &str) -> Value {
    node.wait_event(|v| {
        v["event"] == "message" && v["from"] == from && v["text"] == text && v[mark] == true
    })
}

#[test]
fn a_late_joiner_is_handed_the_last_n_messages_once_in_order_marked_history() {
    let (mut hub, port) = Node::listener("hub", &["--history", "3"]);
    let mut ana = Node::client("ana", port, &[]);
    hub.wait_join("ana");
    // Piped in one go: perhaps one signed bundle, of which the hub keeps only the end.
    for k in 1..=4 {
        ana.send(&format!("said {k}"));
    }
    for k in 1..=4 {
        hub.wait_message("ana", &format!("said {k}"));
    }
    hub.send("hub said 5");
    ana.wait_message("hub", "hub said 5");

    let mut bob = Node::client("bob", port, &[]);
    let want = [("ana", "said 3"), ("ana", "said 4"), ("hub", "hub said 5")];
    for (from, text) in want {
        let v = wait_marked(&mut bob, from, text, "history");
        let at = v["at"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{v}");
        assert!(v.get("late").is_none(), "{v}");
    }
    ana.send("live now");
    let live = bob.wait_message("ana", "live now");
    assert!(
        live.get("history").is_none() && live.get("at").is_none(),
        "{live}"
    );
    let past: Vec<(String, String)> = bob
        .events()
        .iter()
        .filter(|v| v["history"] == true)
        .map(|v| (v["from"].to_string(), v["text"].to_string()))
        .collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(f, t)| (format!("{f:?}"), format!("{t:?}")))
        .collect();
    assert_eq!(past, want, "the last three, once each, in order");
    for k in 1..=2 {
        assert!(shown(&bob, &format!("said {k}")).is_empty(), "older than N");
    }
    // The others had it all: nothing shown to them again.
    for node in [&hub, &ana] {
        assert!(node.events().iter().all(|v| v.get("history").is_none()));
    }
}

#[test]
fn a_split_chain_is_repaired_every_message_once_on_every_node_the_late_ones_marked() {
    let Some(lan) = util::lan_or_skip() else {
        return;
    };
    // ana - bia on host a, bia - cai across the cable to host b.
    let timeout = ["--timeout", "2"];
    let mut bia = Node::spawn_in(
        &lan.a,
        &["-l", "--json", "--nick", "bia", timeout[0], timeout[1]],
    );
    bia.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let mut ana = Node::spawn_in(&lan.a, &["127.0.0.1:5000", "--json", "--nick", "ana"]);
    let mut cai = Node::spawn_in(
        &lan.b,
        &[
            "10.231.0.1",
            "-l",
            "--json",
            "--nick",
            "cai",
            timeout[0],
            timeout[1],
        ],
    );
    for (node, other) in [(&mut ana, "cai"), (&mut cai, "ana"), (&mut bia, "cai")] {
        node.wait_join(other);
    }
    ana.send("before");
    cai.wait_message("ana", "before");

    // The cable is pulled: each side's keepalive notices, and each side chats on.
    lan.ip(&lan.a, &["link", "set", &lan.dev_a, "down"])
        .expect("link down");
    bia.wait_leave("cai");
    cai.wait_leave("bia");
    ana.send("ana meanwhile");
    bia.send("bia meanwhile");
    bia.wait_message("ana", "ana meanwhile");
    ana.wait_message("bia", "bia meanwhile");
    // Cut off from everyone: told it waits.
    cai.send("cai meanwhile");
    cai.wait_event(|v| {
        v["event"] == "info" && v["text"].as_str().is_some_and(|t| t.contains("waits"))
    });

    lan.ip(&lan.a, &["link", "set", &lan.dev_a, "up"])
        .expect("link up");
    wait_marked(&mut cai, "ana", "ana meanwhile", "late");
    wait_marked(&mut cai, "bia", "bia meanwhile", "late");
    wait_marked(&mut bia, "cai", "cai meanwhile", "late");
    wait_marked(&mut ana, "cai", "cai meanwhile", "late");
    // Live again.
    cai.send("after");
    ana.wait_message("cai", "after");
    bia.wait_message("cai", "after");
    // Something said after everything else, so that a copy shown twice would be read by now.
    bia.send("last");
    ana.wait_message("bia", "last");
    cai.wait_message("bia", "last");

    let said = [
        ("ana", "before"),
        ("ana", "ana meanwhile"),
        ("bia", "bia meanwhile"),
        ("cai", "cai meanwhile"),
        ("cai", "after"),
    ];
    for (name, node) in [("ana", &ana), ("bia", &bia), ("cai", &cai)] {
        for (from, text) in said.iter().filter(|(from, _)| *from != name) {
            let got = shown(node, text);
            assert_eq!(
                got.len(),
                1,
                "{name} shows {text:?} from {from} once: {got:?}"
            );
        }
    }
    assert!(shown(&cai, "before")[0].get("late").is_none(), "seen live");
    assert!(shown(&ana, "after")[0].get("late").is_none(), "live");
}

#[test]
fn a_line_typed_with_nobody_connected_reaches_the_first_peer() {
    let (mut hub, port) = Node::listener("hub", &[]);
    hub.send("anyone here?");
    hub.wait_event(|v| {
        v["event"] == "info"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.contains("nobody is connected") && t.contains("waits"))
    });
    let mut ana = Node::client("ana", port, &[]);
    // Said before ana was in the chat: history to her, once.
    wait_marked(&mut ana, "hub", "anyone here?", "history");
    hub.send("now live");
    ana.wait_message("hub", "now live");
    assert_eq!(shown(&ana, "anyone here?").len(), 1);
}

#[test]
fn a_guest_is_told_the_history_as_plain_lines_with_times() {
    let (mut hub, port) = Node::listener("hub", &["--history", "2"]);
    let mut ana = Node::client("ana", port, &[]);
    hub.wait_join("ana");
    for text in ["one", "two", "three"] {
        ana.send(text);
        hub.wait_message("ana", text);
    }
    let mut guest = Raw::connect(port);
    guest.send(b"hello\n");
    let first = guest.wait_line(|l| l.ends_with("<ana> two"));
    let second = guest.wait_line(|l| l.ends_with("<ana> three"));
    for line in [&first, &second] {
        // `[HH:MM:SS] <ana> two`
        let time = line.strip_prefix('[').and_then(|l| l.split_once("] "));
        let time = time.map(|(t, _)| t).unwrap_or_default();
        assert!(
            chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").is_ok(),
            "{line:?}"
        );
    }
    ana.send("four");
    assert_eq!(guest.wait_line(|l| l.contains("four")), "<ana> four");
}
