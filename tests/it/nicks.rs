//! Nicks that cannot pass for another, with the real binary over loopback: an invisible
//! character in `--nick` refused with a clear line, look-alike nicks shown with their tags on
//! a third node, and a guest shown after `~` to everyone.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{bin, closed_port, Node, Raw};

/// Cyrillic `bоb` (its o is U+043E): looks like `bob`, is not `bob`.
const CYRILLIC_BOB: &str = "b\u{43e}b";

/// True for `nick` followed by a tag: `#` and hex digits (`bob#1a2b`).
fn is_tagged(shown: &str, nick: &str) -> bool {
    shown
        .strip_prefix(nick)
        .and_then(|rest| rest.strip_prefix('#'))
        .is_some_and(|tag| tag.len() >= 4 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn shown_name(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_nick_with_an_invisible_character_is_refused_with_a_clear_line() {
    let port = closed_port();
    let out = Command::new(bin())
        .args(["--nick", "bob\u{2060}", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("run peerchat");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a nick cannot hold invisible characters (U+2060)"),
        "{err}"
    );
    assert!(
        !err.contains("cannot connect"),
        "refused before dialling: {err}"
    );
}

#[test]
fn look_alike_nicks_are_shown_with_their_tags_on_a_third_node() {
    let (mut carol, mut bob, port) = Node::pair("carol", "bob", &[]);
    let mut other = Node::client(CYRILLIC_BOB, port, &[]);
    let join = carol.wait_event(|v| {
        v["event"] == "join"
            && v["nick"]
                .as_str()
                .is_some_and(|n| n.starts_with(CYRILLIC_BOB))
    });
    // carol knew bob's key first: the look-alike is checked against it, and warned about.
    const WARNING: &str = " (key changed!)";
    let joined = shown_name(&join, "nick");
    assert!(joined.ends_with(WARNING), "{join}");
    assert!(
        is_tagged(joined.trim_end_matches(WARNING), CYRILLIC_BOB),
        "{join}"
    );
    other.wait_join("carol");

    bob.send("from the real bob");
    let real = carol.wait_event(|v| v["event"] == "message" && v["text"] == "from the real bob");
    other.send("from the other");
    let fake = carol.wait_event(|v| v["event"] == "message" && v["text"] == "from the other");
    let (real, fake) = (shown_name(&real, "from"), shown_name(&fake, "from"));
    let fake = fake
        .strip_suffix(WARNING)
        .unwrap_or_else(|| panic!("no warning on {fake}"))
        .to_string();
    assert!(is_tagged(&real, "bob"), "{real}");
    assert!(is_tagged(&fake, CYRILLIC_BOB), "{fake}");

    // Each of the two sees the other tagged too.
    let seen_by_bob = bob.wait_event(|v| v["event"] == "message" && v["text"] == "from the other");
    assert_eq!(shown_name(&seen_by_bob, "from"), fake);

    carol.send("/names");
    let names = carol.wait_event(|v| v["event"] == "names");
    let list: Vec<String> = names["names"]
        .as_array()
        .map(|a| a.iter().map(|n| shown_name(n, "nick")).collect())
        .unwrap_or_default();
    assert_eq!(list, [real, fake, "carol".to_string()], "{names}");
}

#[test]
fn a_guest_that_takes_a_nick_is_shown_after_a_tilde_to_everyone() {
    let (mut ana, mut carol, port) = Node::pair("ana", "carol", &[]);
    let mut guest = Raw::joined(&mut ana, port, "~guest-1", "hi");
    let mut watcher = Raw::joined(&mut ana, port, "~guest-2", "watching");
    guest.send(b"/nick bob\nI am bob\n");
    for node in [&mut ana, &mut carol] {
        node.wait_event(|v| v["event"] == "nick" && v["old"] == "~guest-1" && v["nick"] == "~bob");
        node.wait_message("~bob", "I am bob");
    }
    watcher.wait_line(|l| l == "<~bob> I am bob");

    // A node called bob joins: the guest is still never shown as `bob`.
    let mut bob = Node::client("bob", port, &[]);
    let join = carol.wait_event(|v| {
        v["event"] == "join" && v["nick"].as_str().is_some_and(|n| n.starts_with("bob"))
    });
    assert!(is_tagged(&shown_name(&join, "nick"), "bob"), "{join}");
    bob.wait_join("carol");
    guest.send(b"still me\n");
    let msg = carol.wait_event(|v| v["event"] == "message" && v["text"] == "still me");
    let from = shown_name(&msg, "from");
    assert!(from.starts_with("~bob#"), "{msg}");
    watcher.wait_line(|l| l == "<~bob> still me");
}
