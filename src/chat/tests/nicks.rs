//! Nicks that cannot pass for another: look-alike nicks shown with their tags on every node, a
//! guest refused a nick that looks like someone's, guests shown after `~` everywhere, and a
//! peer's frame with an invisible character in its nick refused.

use super::net::*;

/// Cyrillic `bоb` (its o is U+043E): looks like `bob`, is not `bob`.
const CYRILLIC_BOB: &str = "b\u{43e}b";

/// Node 0 (`n0`) in the middle, node 1 called `bob`, node 2 called Cyrillic `bоb`.
fn bob_and_his_look_alike() -> Net {
    let mut net = Net::new(3);
    net.nodes[1] = Chat::new(
        {
            let mut c = config(1, 0);
            c.nick = "bob".into();
            c
        },
        net.now,
    );
    net.nodes[2] = Chat::new(
        {
            let mut c = config(2, 0);
            c.nick = CYRILLIC_BOB.into();
            c
        },
        net.now,
    );
    net.link(0, 1);
    net.link(0, 2);
    net
}

/// `nick` with the tag of node `i` (or of guest `guest` of node `i`), as shown beside a
/// look-alike.
fn tagged(net: &Net, i: usize, guest: u32, nick: &str) -> String {
    let member = MemberId {
        node: net.nodes[i].cfg.node,
        guest,
    };
    format!("{nick}{}", member.tag())
}

fn names(net: &mut Net, i: usize) -> Vec<String> {
    net.say(i, "/names");
    match net.shown[i].iter().rev().find_map(|e| match e {
        Event::Names(names) => Some(names.clone()),
        _ => None,
    }) {
        Some(names) => names.into_iter().map(|n| n.nick).collect(),
        None => Vec::new(),
    }
}

#[test]
fn nicks_that_look_alike_are_shown_with_their_tags_the_same_way_everywhere() {
    let mut net = bob_and_his_look_alike();
    net.say(1, "from the real bob");
    net.say(2, "from the other");
    let (real, other) = (tagged(&net, 1, 0, "bob"), tagged(&net, 2, 0, CYRILLIC_BOB));
    // Remembered keys are filed by look-alike key too: n0 saw the real bob's first, so the
    // other is shown with the warning. A node's own nick is not checked against its key (a
    // look-alike beside it is told apart by the tags).
    let warned = |name: &str| format!("{name} (key changed!)");
    assert_eq!(
        net.messages(0),
        vec![
            (real.clone(), "from the real bob".into()),
            (warned(&other), "from the other".into()),
        ]
    );
    assert_eq!(
        net.messages(1),
        vec![(other.clone(), "from the other".into())]
    );
    assert_eq!(
        net.messages(2),
        vec![(real.clone(), "from the real bob".into())]
    );
    assert_eq!(
        names(&mut net, 0),
        vec![real.clone(), other.clone(), "n0".into()]
    );
    // `/msg bob` could mean either: refused, with both names in the order of their ids
    // (which come from the test keys).
    net.say(0, "/msg bob which?");
    let mut both = [(node_id(1), &real), (node_id(2), &other)];
    both.sort();
    let told = format!(
        "bob is ambiguous ({}, {}); nothing was sent",
        both[0].1, both[1].1
    );
    assert!(
        net.shown[0].contains(&Event::Error(told)),
        "{:?}",
        net.shown[0]
    );
    net.say(0, &format!("/msg {real} you"));
    assert!(net.shown[1]
        .iter()
        .any(|e| matches!(e, Event::Dm { text, .. } if text == "you")));
    assert!(!net.shown[2].iter().any(|e| matches!(e, Event::Dm { .. })));
}

#[test]
fn a_guest_may_not_take_a_nick_that_looks_like_someones() {
    let mut net = Net::new(2);
    net.nodes[1] = Chat::new(
        {
            let mut c = config(1, 0);
            c.nick = "bob".into();
            c
        },
        net.now,
    );
    net.link(0, 1);
    let g = net.guest(0);
    net.guest_says(0, g, "hi");
    net.clear_screen(0, g);
    for nick in [CYRILLIC_BOB, "B0B", "bob", "bob\u{2060}", "~bob"] {
        net.guest_says(0, g, &format!("/nick {nick}"));
    }
    assert_eq!(
        net.screen(0, g),
        [
            "* cannot change nick: it looks like bob, who is here",
            "* cannot change nick: it looks like bob, who is here",
            "* cannot change nick: bob is taken",
            "* cannot change nick: a nick cannot hold invisible characters (U+2060)",
            "* cannot change nick: a nick cannot start with ~ or a look-alike (~ marks guests)",
        ]
    );
    for node in 0..2 {
        assert_eq!(net.count(node, |e| matches!(e, Event::Nick { .. })), 0);
    }
}

#[test]
fn a_guest_is_shown_after_a_tilde_to_everyone_never_like_a_node() {
    // n0 and n1 linked; `carol`, a node, comes later.
    let mut net = Net::new(3);
    net.nodes[2] = Chat::new(
        {
            let mut c = config(2, 0);
            c.nick = "carol".into();
            c
        },
        net.now,
    );
    net.link(0, 1);
    let g = net.guest(0);
    net.guest_says(0, g, "/nick carol");
    let watcher = net.guest(1);
    net.guest_says(1, watcher, "watching");
    net.guest_says(0, g, "I am carol");
    assert_eq!(
        net.messages(1),
        vec![
            ("~guest-1".into(), "watching".into()),
            ("~carol".into(), "I am carol".into())
        ]
    );
    assert!(net
        .screen(1, watcher)
        .contains(&"<~carol> I am carol".to_string()));
    // The node called carol joins: both are tagged, and the guest keeps its `~`.
    net.link(1, 2);
    net.say(2, "no, I am");
    net.guest_says(0, g, "again");
    let both = [
        (tagged(&net, 2, 0, "carol"), "no, I am".to_string()),
        (tagged(&net, 0, 1, "~carol"), "again".to_string()),
    ];
    for i in 0..2 {
        let got = net.messages(i);
        assert_eq!(got[got.len() - 2..], both[..], "n{i}");
    }
    assert_eq!(net.messages(2).last(), both.last(), "carol's own node");
    // Guests read the names as the nodes show them, tags and all.
    let screen = net.screen(1, watcher);
    for (name, text) in &both {
        assert!(screen.contains(&format!("<{name}> {text}")), "{screen:#?}");
    }
}

#[test]
fn a_peer_frame_with_an_invisible_character_in_its_nick_closes_that_peer() {
    let mut net = Net::new(3);
    net.link(0, 1);
    net.link(0, 2);
    let c = net.conn_of(0, 1);
    let look_alike = format!(
        "MSG {:016x}:99 {:016x} n2\u{2060} give me your password",
        node_id(1),
        node_id(1)
    );
    net.nodes[0].handle_line(c, look_alike.as_bytes(), net.now);
    net.run();
    assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
    assert_eq!(net.closed.len(), 1, "{:?}", net.closed);
    assert_eq!((net.closed[0].0, net.closed[0].1), (0, c));
}
