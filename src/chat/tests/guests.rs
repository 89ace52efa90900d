//! Guests as people: the welcome, and each command a guest may type, answered to that guest
//! alone; nick changes and leaves seen by everyone, over the mesh too.

use super::net::*;
use crate::chat::RateLimit;

/// Node 0 with peer n1, and two guests of node 0 that have each said a first line.
fn hub_with_guests() -> (Net, ConnId, ConnId) {
    let mut net = Net::new(2);
    net.link(0, 1);
    let (a, b) = (net.guest(0), net.guest(0));
    net.guest_says(0, a, "hi from a");
    net.guest_says(0, b, "hi from b");
    (net, a, b)
}

/// How many chat lines (messages and actions) every node showed.
fn chat_shown(net: &Net) -> Vec<usize> {
    (0..net.nodes.len())
        .map(|i| net.count(i, |e| matches!(e, Event::Message { .. } | Event::Me { .. })))
        .collect()
}

fn has(screen: &[String], line: &str) -> bool {
    screen.iter().any(|l| l == line)
}

#[test]
fn a_guest_is_welcomed_after_the_hello_with_its_name_who_is_here_and_how_to_leave() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let g = net.guest(0);
    net.guest_says(0, g, "hello all");
    let screen = net.screen(0, g);
    assert!(
        screen[0].starts_with("peerchat/4 hello from n0 "),
        "{screen:#?}"
    );
    assert_eq!(
        screen[1..],
        [
            "* you are guest-1 (/nick NAME changes it)",
            "* 3 here: n0, n1, ~guest-1 (you)",
            "* commands: /names, /msg NICK text, /me action, /help",
            "* /quit or sair leaves; //text sends a line starting with /",
        ]
    );
    assert_eq!(
        net.messages(1),
        vec![("~guest-1".into(), "hello all".into())]
    );
    // One that has not typed yet is welcomed once its silence makes it a guest.
    let silent = net.guest(0);
    net.tick(HELLO_WAIT);
    let screen = net.screen(0, silent);
    assert_eq!(screen[1], "* you are guest-2 (/nick NAME changes it)");
    assert_eq!(screen[2], "* 4 here: n0, n1, ~guest-1, ~guest-2 (you)");
    // The first guest hears of the second as before, and of nothing else.
    assert_eq!(net.screen(0, g)[5..], ["* ~guest-2 joined"]);
}

#[test]
fn names_help_and_errors_are_answered_to_the_guest_alone() {
    let (mut net, a, b) = hub_with_guests();
    let before = chat_shown(&net);
    let msgs = net.sent.get("MSG").copied();
    net.clear_screen(0, a);
    net.clear_screen(0, b);
    for line in [
        "/names",
        "/who",
        "/help",
        "/bogus x",
        "/connect 10.0.0.9",
        "/msg n1",
        "/me",
    ] {
        net.guest_says(0, a, line);
    }
    let screen = net.screen(0, a).to_vec();
    assert_eq!(screen[0], "* 4 here: n0, n1, ~guest-1 (you), ~guest-2");
    assert_eq!(screen[1], screen[0]);
    assert!(
        has(&screen, "*   /nick NAME       change your name"),
        "{screen:#?}"
    );
    assert!(has(
        &screen,
        "*   /quit [reason]   leave (also /exit or sair)"
    ));
    assert!(has(
        &screen,
        "* unknown command /bogus; nothing was sent (type /help)"
    ));
    assert!(has(
        &screen,
        "* only the node's own user can /connect; nothing was done"
    ));
    assert!(has(&screen, "* usage: /msg NICK text"));
    assert!(has(&screen, "* usage: /me action"));
    assert!(net.screen(0, b).is_empty(), "{:#?}", net.screen(0, b));
    assert_eq!(chat_shown(&net), before, "nothing shown as chat");
    assert_eq!(net.sent.get("MSG").copied(), msgs, "nothing sent as chat");
    assert!(net.shown[0].iter().all(|e| !matches!(e, Event::Names(_))));
}

#[test]
fn a_double_slash_sends_the_rest_as_chat() {
    let (mut net, a, b) = hub_with_guests();
    net.guest_says(0, a, "//etc/passwd is a path");
    assert_eq!(
        net.messages(1).last(),
        Some(&("~guest-1".into(), "/etc/passwd is a path".into()))
    );
    assert!(has(net.screen(0, b), "<~guest-1> /etc/passwd is a path"));
}

#[test]
fn a_guest_nick_change_is_seen_by_everyone_and_in_the_mesh() {
    let mut net = chain(3);
    let g = net.guest(0);
    net.guest_says(0, g, "hi");
    let far = net.guest(2);
    // Else n0 and n2 would each have a guest-1, shown with tags.
    net.guest_says(2, far, "/nick cat");
    net.guest_says(0, g, "/nick zoe");
    let change = Event::Nick {
        old: "~guest-1".into(),
        nick: "~zoe".into(),
    };
    for node in 0..3 {
        assert_eq!(net.count(node, |e| *e == change), 1, "n{node}");
    }
    for (node, guest) in [(0, g), (2, far)] {
        assert!(has(
            net.screen(node, guest),
            "* ~guest-1 is now known as ~zoe"
        ));
    }
    net.guest_says(0, g, "now as zoe");
    assert_eq!(
        net.messages(2).last(),
        Some(&("~zoe".into(), "now as zoe".into()))
    );
    net.say(2, "/msg zoe psst");
    assert!(has(net.screen(0, g), "[dm] <n2> psst"));
    // The name sticks: a node that joins later learns the guest by it.
    net.nodes.push(Chat::new(config(3, 0), net.now));
    net.shown.push(Vec::new());
    net.quit.push(false);
    net.dead.push(false);
    net.link(0, 3);
    // Protocol 2: it is handed the guest's signed join and its signed rename as they were
    // made (nobody signs them anew), so it shows the join by the old name, then the change.
    let seen = [
        Event::Join {
            nick: "~guest-1".into(),
            addr: Some(addr(200, 40000 + g as u16).to_string()),
            unencrypted: false,
        },
        change,
    ];
    for e in &seen {
        assert_eq!(net.count(3, |x| x == e), 1, "{e:?}: {:?}", net.shown[3]);
    }
    net.say(3, "/names");
    assert!(
        net.shown[3].iter().any(|e| matches!(e, Event::Names(n)
            if n.iter().any(|m| m.nick == "~zoe") && !n.iter().any(|m| m.nick == "~guest-1"))),
        "{:?}",
        net.shown[3]
    );
}

#[test]
fn a_nick_someone_here_goes_by_is_refused_with_the_reason() {
    let (mut net, a, b) = hub_with_guests();
    net.clear_screen(0, a);
    for line in [
        "/nick n1",
        "/nick N0",
        "/nick guest-2",
        "/nick bad name",
        "/nick",
    ] {
        net.guest_says(0, a, line);
    }
    net.guest_says(0, a, "/nick guest-1");
    assert_eq!(
        net.screen(0, a),
        [
            "* cannot change nick: n1 is taken",
            "* cannot change nick: n0 is taken",
            "* cannot change nick: ~guest-2 is taken",
            "* cannot change nick: a nick cannot hold spaces or control characters",
            "* cannot change nick: a nick cannot be empty",
            "* you are guest-1 already",
        ]
    );
    for node in 0..2 {
        assert_eq!(net.count(node, |e| matches!(e, Event::Nick { .. })), 0);
    }
    assert!(!net.screen(0, b).iter().any(|l| l.contains("known as")));
    // A change of case of its own nick is its to make.
    net.guest_says(0, a, "/nick Guest-1");
    assert!(has(net.screen(0, b), "* ~guest-1 is now known as ~Guest-1"));
}

#[test]
fn a_guest_direct_message_reaches_only_its_recipient_and_is_echoed() {
    let mut net = star(3);
    let (a, b) = (net.guest(0), net.guest(0));
    net.guest_says(0, a, "hi");
    net.guest_says(0, b, "hi");
    let far = net.guest(2);
    net.guest_says(2, far, "/nick cat");
    for g in [a, b] {
        net.clear_screen(0, g);
    }
    net.clear_screen(2, far);
    net.guest_says(0, a, "/msg n1 psst");
    let dm = |text: &str| Event::Dm {
        from: "~guest-1".into(),
        to: "n1".into(),
        text: text.into(),
    };
    assert_eq!(net.count(1, |e| *e == dm("psst")), 1);
    for node in [0, 2] {
        assert_eq!(net.count(node, |e| matches!(e, Event::Dm { .. })), 0);
    }
    net.guest_says(0, a, "/msg n0 to the host");
    assert!(net.shown[0].contains(&Event::Dm {
        from: "~guest-1".into(),
        to: "n0".into(),
        text: "to the host".into()
    }));
    net.guest_says(0, a, "/msg guest-2 next door");
    net.guest_says(0, a, "/msg cat far away");
    net.guest_says(0, a, "/msg eve anyone");
    net.guest_says(0, a, "/msg guest-1 me");
    assert_eq!(
        net.screen(0, a),
        [
            "[dm -> n1] psst",
            "[dm -> n0] to the host",
            "[dm -> ~guest-2] next door",
            "[dm -> ~cat] far away",
            "* no one called eve is here; nothing was sent",
            "* that is you; nothing was sent",
        ]
    );
    assert_eq!(net.screen(0, b), ["[dm] <~guest-1> next door"]);
    assert_eq!(net.screen(2, far), ["[dm] <~guest-1> far away"]);
    assert_eq!(net.count(1, |e| matches!(e, Event::Dm { .. })), 1);
    assert_eq!(
        chat_shown(&net)[1],
        2,
        "only the first lines: {:?}",
        net.shown[1]
    );
}

#[test]
fn a_guest_action_is_shown_to_everyone_as_an_action() {
    let (mut net, a, b) = hub_with_guests();
    net.guest_says(0, a, "/me waves");
    let waves = Event::Me {
        from: "~guest-1".into(),
        text: "waves".into(),
    };
    for node in 0..2 {
        assert_eq!(net.count(node, |e| *e == waves), 1, "n{node}");
    }
    for g in [a, b] {
        assert!(has(net.screen(0, g), "* ~guest-1 waves"));
    }
    assert!(!net.messages(1).iter().any(|(_, t)| t.contains("waves")));
}

#[test]
fn a_guest_that_leaves_is_told_goodbye_let_go_and_seen_leaving() {
    for (word, reason) in [
        ("sair", None),
        (" SAIR ", None),
        ("/exit", None),
        ("/quit going home", Some("going home")),
    ] {
        let (mut net, a, b) = hub_with_guests();
        net.guest_says(0, a, word);
        assert_eq!(
            net.screen(0, a).last().map(String::as_str),
            Some("* bye, guest-1")
        );
        assert!(!net.guest_open(0, a), "{word:?}");
        assert!(net.closed.contains(&(0, a, "retired".into())));
        let leave = Event::Leave {
            nick: "~guest-1".into(),
            addr: Some(addr(200, 40000 + a as u16).to_string()),
            reason: reason.map(str::to_string),
        };
        assert_eq!(net.count(0, |e| *e == leave), 1, "{:?}", net.shown[0]);
        assert_eq!(net.leaves_of(1, "~guest-1"), 1);
        let seen = match reason {
            Some(r) => format!("* ~guest-1 left ({r})"),
            None => "* ~guest-1 left".to_string(),
        };
        assert!(has(net.screen(0, b), &seen), "{:#?}", net.screen(0, b));
        assert_eq!(
            chat_shown(&net),
            vec![2, 2],
            "{word:?} was not sent as chat"
        );
        // Whatever it still sends is not taken.
        net.guest_says(0, a, "still here?");
        assert_eq!(chat_shown(&net), vec![2, 2]);
    }
}

#[test]
fn a_guests_commands_count_against_its_flood_limit() {
    let now = Instant::now();
    let mut cfg = solo("hub", Some(5000));
    cfg.guest_rate = Some(RateLimit::per_second(1));
    let mut chat = Chat::new(cfg, now);
    open(
        &mut chat,
        7,
        accepted("127.0.0.1:4000".parse().unwrap()),
        now,
    );
    chat.handle_line(7, b"/names", now);
    drain(&mut chat);
    // A burst of ten, less its join and the one above, is answered; the rest are not.
    for _ in 0..20 {
        chat.handle_line(7, b"/names", now);
    }
    let (_, told) = sent_and_told(&drain(&mut chat));
    assert_eq!(told.iter().filter(|t| t.starts_with("* 2 here")).count(), 8);
    assert!(told
        .iter()
        .any(|t| t.starts_with("peerchat: slow down: 1 line")));
}

#[test]
fn a_slow_node_taken_for_a_guest_lets_its_welcome_be_and_becomes_the_peer() {
    let mut net = Net::new(2);
    // n1 dials n0; n1 reads n0's hello, but n1's own is slow to come.
    // (Its proof of n0's hello waits behind its own hello, as on a real connection.)
    let (at0, at1) = net.open_raw(0, 1, Origin::Dialled);
    net.send_hello(0, at0);
    net.run();
    net.tick(HELLO_WAIT);
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    net.send_hello(1, at1);
    net.run();
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    net.say(0, "from n0");
    net.say(1, "from n1");
    assert_eq!(
        net.messages(1).last(),
        Some(&("n0".into(), "from n0".into()))
    );
    assert_eq!(
        net.messages(0).last(),
        Some(&("n1".into(), "from n1".into()))
    );
}

/// A star whose hub's first guest took `taken`; the screen of a second guest of the hub.
fn second_guest_after_the_first_took(taken: &str) -> (Net, ConnId) {
    let mut net = star(2);
    let a = net.guest(0);
    net.guest_says(0, a, "hi");
    net.guest_says(0, a, &format!("/nick {taken}"));
    let b = net.guest(0);
    net.guest_says(0, b, "hello");
    assert!(
        has(
            net.screen(0, b),
            "* you are guest-3 (/nick NAME changes it)"
        ),
        "{:?}",
        net.screen(0, b)
    );
    (net, b)
}

#[test]
fn a_guest_number_whose_name_a_guest_took_is_skipped() {
    let (mut net, b) = second_guest_after_the_first_took("guest-2");
    net.guest_says(0, b, "/names");
    let names = net.screen(0, b).join("\n");
    assert!(!names.contains('#'), "no two members share a name: {names}");
}

#[test]
fn a_guest_number_whose_name_a_guest_took_in_another_case_is_skipped() {
    // A guest may not take a nick another holds in any case; the number given must not either.
    second_guest_after_the_first_took("GUEST-2");
}

/// `/whois` gives a member's key fingerprint and how it is reached; to a guest, who is never
/// shown addresses, without its address.
#[test]
fn whois_tells_the_fingerprint_and_only_a_node_the_address() {
    let (mut net, a, _) = hub_with_guests();
    let fp = crate::protocol::sign::fingerprint(&net.nodes[0].cfg.key.verifying_key());
    net.say(1, "/whois n0");
    let info: Vec<String> = net.shown[1]
        .iter()
        .filter_map(|e| match e {
            Event::Info(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(info.contains(&format!("n0: key {fp}")), "{info:#?}");
    assert!(
        info.contains(&"n0: connected to this node".to_string()),
        "{info:#?}"
    );
    assert!(info.iter().any(|l| l.starts_with("n0: at ")), "{info:#?}");

    let fp1 = crate::protocol::sign::fingerprint(&net.nodes[1].cfg.key.verifying_key());
    net.clear_screen(0, a);
    net.guest_says(0, a, "/whois n1");
    let screen = net.screen(0, a).to_vec();
    assert!(has(&screen, &format!("* n1: key {fp1}")), "{screen:#?}");
    assert!(has(&screen, "* n1: connected to this node"), "{screen:#?}");
    assert!(!screen.iter().any(|l| l.contains(" at ")), "{screen:#?}");
    assert!(!net.messages(1).iter().any(|(_, t)| t.contains("whois")));
}
