//! Relay over chain, ring and star topologies: every message once and in order, leaves and
//! joins once, lost links, crashes, direct messages and the roster as others see it.

use super::net::*;

#[test]
fn star_chain_and_ring_relay_every_message_once_in_order() {
    for (name, mut net) in [("star", star(4)), ("chain", chain(4)), ("ring", ring(5))] {
        let all: Vec<usize> = (0..net.nodes.len()).collect();
        chat_all(&mut net, &all, 3);
        every_node_but_sender_sees_each_once(&net, 3);
        joins_once_everywhere(&net);
        assert!(net.closed.is_empty(), "{name}: {:?}", net.closed);
    }
}

#[test]
fn a_node_leaving_and_rejoining_a_chain_ring_or_star() {
    // Node 2 sits in the middle of the chain, on the ring, and is a leaf of the star.
    for (name, mut net) in [("chain", chain(5)), ("ring", ring(5)), ("star", star(4))] {
        let n = net.nodes.len();
        net.say(2, "/quit back soon");
        assert!(net.quit[2]);
        for node in (0..n).filter(|&x| x != 2) {
            assert_eq!(
                net.leaves_of(node, "n2"),
                1,
                "{name} n{node}: {:?}",
                net.shown[node]
            );
        }
        net.crash(2);
        // In the chain, the two halves are apart now; elsewhere everyone still talks.
        let live: Vec<usize> = (0..n).filter(|&x| x != 2).collect();
        net.clear_shown();
        if name != "chain" {
            chat_all(&mut net, &live, 2);
            each_live_node_sees_each_once(&net, &live, 2);
        }
        // It comes back as a new run and links where it was.
        net.restart(2, 1);
        net.clear_shown();
        match name {
            "chain" => {
                net.link(1, 2);
                net.link(2, 3);
            }
            "ring" => {
                net.link(1, 2);
                net.link(2, 3);
            }
            _ => net.link(0, 2),
        }
        for node in (0..n).filter(|&x| x != 2) {
            assert_eq!(
                net.joins_of(node, "n2"),
                1,
                "{name} n{node}: {:?}",
                net.shown[node]
            );
            assert_eq!(net.leaves_of(node, "n2"), 0, "{name} n{node}");
        }
        // The chain's halves met again through it: each side learns of the other once.
        for other in (0..n).filter(|&x| x != 2) {
            assert_eq!(
                net.joins_of(2, &format!("n{other}")),
                1,
                "{name}: {:?}",
                net.shown[2]
            );
        }
        net.clear_shown();
        let all: Vec<usize> = (0..n).collect();
        chat_all(&mut net, &all, 2);
        every_node_but_sender_sees_each_once(&net, 2);
    }
}

#[test]
fn a_crashed_node_is_shown_leaving_once_even_told_by_several_neighbours() {
    let mut net = ring(5);
    net.crash(2);
    for node in [0, 1, 3, 4] {
        assert_eq!(
            net.leaves_of(node, "n2"),
            1,
            "n{node}: {:?}",
            net.shown[node]
        );
        assert!(
            net.shown[node].iter().any(|e| matches!(e,
            Event::Leave { nick, reason: Some(r), .. } if nick == "n2" && r == "connection reset"))
        );
    }
}

#[test]
fn neighbours_noticing_a_crash_one_after_the_other_show_one_leave() {
    let mut net = ring(5);
    net.dead[2] = true;
    // n1 notices first; its LEAVE reaches n3 while n3's own link to n2 still looks fine.
    for neighbour in [1, 3] {
        let c = net.conn_of(neighbour, 2);
        net.links.remove(&(neighbour, c));
        net.nodes[neighbour].handle_closed(c, Some("connection reset".into()));
        net.run();
    }
    for node in [0, 1, 3, 4] {
        assert_eq!(
            net.leaves_of(node, "n2"),
            1,
            "n{node}: {:?}",
            net.shown[node]
        );
        assert_eq!(
            net.joins_of(node, "n2"),
            1,
            "n{node}: {:?}",
            net.shown[node]
        );
    }
}

#[test]
fn a_broken_link_between_live_nodes_does_not_leave_them_out() {
    let mut net = ring(4);
    net.nodes[2].handle_opened(7, accepted(addr(9, 4000)), net.now);
    net.nodes[2].handle_line(7, b"a guest of n2", net.now);
    net.run();
    net.unlink(1, 2);
    // n1 and n2 each said the other was lost; n0 and n3, still linked to both, checked
    // with a PING and told everyone they are here.
    for node in 0..4 {
        net.say(node, "/names");
        let names = net.shown[node].iter().rev().find_map(|e| match e {
            Event::Names(n) => Some(n.len()),
            _ => None,
        });
        assert_eq!(names, Some(5), "n{node}: {:?}", net.shown[node]);
    }
    net.clear_shown();
    let all = [0, 1, 2, 3];
    chat_all(&mut net, &all, 2);
    every_node_but_sender_sees_each_once(&net, 2);
}

#[test]
fn a_join_relayed_after_a_crash_does_not_bring_the_member_back() {
    let mut net = star(3);
    // n0's roster exchange for a newcomer was still on its way when n1 crashed.
    let stale = Frame::Join {
        id: MsgId {
            node: node_id(0),
            seq: 999,
        },
        member: MemberId::node(node_id(1)),
        nick: "n1".into(),
        addr: Some("10.0.0.1:5000".into()),
    };
    net.crash(1);
    let c = net.conn_of(0, 2);
    net.deliver(0, c, &stale);
    net.run();
    assert_eq!(net.leaves_of(2, "n1"), 1);
    assert_eq!(net.joins_of(2, "n1"), 1, "{:?}", net.shown[2]);
    // Nor does an old message of its, arriving late.
    let late = Frame::Msg {
        id: MsgId {
            node: node_id(1),
            seq: 77,
        },
        from: MemberId::node(node_id(1)),
        nick: "n1".into(),
        text: "sent before the crash".into(),
    };
    net.deliver(0, c, &late);
    // Nor a guest of it, announced by its own node before the crash.
    let guest = Frame::Join {
        id: MsgId {
            node: node_id(1),
            seq: 78,
        },
        member: MemberId {
            node: node_id(1),
            guest: 1,
        },
        nick: "guest-1".into(),
        addr: None,
    };
    net.deliver(0, c, &guest);
    net.run();
    net.say(2, "/names");
    assert!(net.shown[2]
        .iter()
        .any(|e| matches!(e, Event::Names(n) if n.len() == 2)));
}

#[test]
fn a_peer_back_after_a_lost_link_is_taken_back_by_nodes_beyond() {
    let mut net = chain(3);
    net.unlink(1, 2);
    assert_eq!(net.leaves_of(0, "n2"), 1);
    // The same run of n2 connects again: n0, which only hears of it through n1, takes it
    // back although it had it as lost.
    net.link(1, 2);
    assert_eq!(net.joins_of(0, "n2"), 2, "{:?}", net.shown[0]);
    net.say(2, "back");
    assert_eq!(net.messages(0), vec![("n2".into(), "back".into())]);
}

#[test]
fn a_guest_of_a_crashed_node_leaves_with_it() {
    let mut net = chain(3);
    net.nodes[2].handle_opened(7, accepted(addr(9, 4000)), net.now);
    net.nodes[2].handle_line(7, b"oi from nc", net.now);
    net.run();
    assert_eq!(
        net.messages(0),
        vec![("~guest-1".into(), "oi from nc".into())]
    );
    net.crash(2);
    assert_eq!(net.leaves_of(0, "~guest-1"), 1, "{:?}", net.shown[0]);
    assert_eq!(net.leaves_of(0, "n2"), 1);
}

#[test]
fn joins_are_shown_with_the_listening_address() {
    let mut net = Net::new(3);
    net.link(0, 1);
    net.link(0, 2);
    // Accepted from an ephemeral port, but shown where it listens (hello port).
    assert!(net.shown[0].contains(&Event::Join {
        nick: "n1".into(),
        addr: Some("10.0.0.1:5000".into())
    }));
    // n1 hears of n2 through the hub, with the address the hub knows.
    assert!(net.shown[1].contains(&Event::Join {
        nick: "n2".into(),
        addr: Some("10.0.0.2:5000".into())
    }));
}

#[test]
fn a_peer_that_quits_is_shown_leaving_once_everywhere() {
    let mut net = star(3);
    net.say(1, "/quit bye all");
    assert!(net.quit[1]);
    net.unlink(0, 1);
    for node in [0, 2] {
        let leaves: Vec<&Event> = net.shown[node]
            .iter()
            .filter(|e| matches!(e, Event::Leave { .. }))
            .collect();
        assert_eq!(leaves.len(), 1, "node {node}: {leaves:?}");
        assert!(
            matches!(leaves[0], Event::Leave { nick, reason: Some(r), .. }
            if nick == "n1" && r == "bye all")
        );
    }
    assert!(matches!(
        net.shown[0].iter().find(|e| matches!(e, Event::Leave { .. })),
        Some(Event::Leave { addr: Some(a), .. }) if a == "10.0.0.1:5000"
    ));
}

#[test]
fn nothing_is_taken_from_a_peer_after_its_own_leave() {
    let mut net = star(3);
    net.say(1, "sair");
    // n1 keeps talking on the same connection after saying goodbye.
    net.nodes[1].quitting = false;
    net.say(1, "ghost message");
    assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
}

#[test]
fn direct_messages_reach_only_their_target() {
    let mut net = chain(4);
    net.say(0, "/msg n3 psst");
    assert!(net.shown[3].contains(&Event::Dm {
        from: "n0".into(),
        to: "n3".into(),
        text: "psst".into()
    }));
    assert!(net.shown[0].contains(&Event::Dm {
        from: "n0".into(),
        to: "n3".into(),
        text: "psst".into()
    }));
    for node in [1, 2] {
        assert!(
            !net.shown[node]
                .iter()
                .any(|e| format!("{e:?}").contains("psst")),
            "n{node}"
        );
    }
    net.say(0, "/msg nobody hi");
    assert!(net.shown[0]
        .iter()
        .any(|e| matches!(e, Event::Error(t) if t.contains("nobody"))));
    net.say(0, "/msg n0 me");
    net.say(0, "/msg n3");
    assert_eq!(net.count(0, |e| matches!(e, Event::Error(_))), 3);
}

#[test]
fn a_dm_to_a_guest_goes_to_its_connection_only() {
    let mut net = chain(2);
    net.nodes[1].handle_opened(7, accepted(addr(9, 4000)), net.now);
    net.nodes[1].handle_line(7, b"hello from nc", net.now);
    net.run();
    net.nodes[0].handle_input("/msg guest-1 just for you");
    let mut sent_to_guest = false;
    // Carry out by hand to see what node 1 does with it.
    while let Some(a) = net.nodes[0].poll_action() {
        net.apply(0, a);
    }
    while let Some(a) = net.nodes[1].poll_action() {
        if let Action::Send { conn: 7, frame } = &a {
            let mut buf = Vec::new();
            assert!(protocol::encode_guest_direct(frame, &mut buf));
            assert_eq!(buf, b"[dm] <n0> just for you\n");
            sent_to_guest = true;
        }
        assert!(
            !matches!(a, Action::Broadcast { ref frame, .. } if matches!(**frame, Frame::Dm { .. }))
        );
    }
    assert!(sent_to_guest);
}

#[test]
fn the_same_nick_twice_is_told_apart_the_same_way_everywhere() {
    let mut net = Net::new(3);
    net.nodes[2] = Chat::new(Config::new("n1".into(), node_id(2), Some(5000)), net.now);
    net.link(0, 1);
    net.link(0, 2);
    net.say(1, "from one");
    net.say(2, "from two");
    let got = net.messages(0);
    assert_eq!(
        got,
        vec![
            ("n1#0200".into(), "from one".into()),
            ("n1#0300".into(), "from two".into())
        ]
    );
    net.say(0, "/msg n1 which?");
    assert!(net.shown[0]
        .iter()
        .any(|e| matches!(e, Event::Error(t) if t.contains("ambiguous"))));
    net.say(0, "/msg n1#0300 you");
    assert!(net.shown[2]
        .iter()
        .any(|e| matches!(e, Event::Dm { text, .. } if text == "you")));
    assert!(!net.shown[1].iter().any(|e| matches!(e, Event::Dm { .. })));
}

#[test]
fn a_malformed_frame_closes_only_that_peer() {
    let mut net = star(3);
    let c = net.conn_of(0, 1);
    net.nodes[0].handle_line(c, b"MSG nonsense", net.now);
    // Whatever the same peer sent after the bad frame is not taken.
    let sneaky = format!(
        "MSG {:016x}:99 {:016x} n1 sneaked in",
        node_id(1),
        node_id(1)
    );
    net.nodes[0].handle_line(c, sneaky.as_bytes(), net.now);
    net.run();
    assert!(net.messages(0).is_empty() && net.messages(2).is_empty());
    assert!(net.shown[2].iter().any(|e| matches!(e,
        Event::Leave { nick, reason: Some(r), .. } if nick == "n1" && r.contains("malformed"))));
    assert_eq!(net.closed.len(), 1);
    assert_eq!((net.closed[0].0, net.closed[0].1), (0, c));
    net.say(2, "still here");
    assert_eq!(net.messages(0), vec![("n2".into(), "still here".into())]);
}

#[test]
fn guest_text_from_a_peer_that_took_us_for_a_guest_is_ignored() {
    let mut net = chain(2);
    let c = net.conn_of(0, 1);
    net.nodes[0].handle_line(c, b"<n1> sent before my hello arrived", net.now);
    net.nodes[0].handle_line(c, b"* n1 joined", net.now);
    net.run();
    assert!(net.closed.is_empty());
    assert!(net.messages(0).is_empty());
    net.say(1, "after");
    assert_eq!(net.messages(0), vec![("n1".into(), "after".into())]);
}

#[test]
fn a_flood_of_joins_under_one_nick_is_capped() {
    let now = Instant::now();
    let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
    chat.handle_opened(3, accepted("10.0.0.2:40000".parse().unwrap()), now);
    chat.handle_line(
        3,
        b"peerchat/1 hello from bob (node=00000000000000bb listen=5000)",
        now,
    );
    for i in 0..20_000u64 {
        let line = format!("JOIN 00000000000000bb:{i} {:016x} eve -", 0x1000 + i);
        chat.handle_line(3, line.as_bytes(), now);
    }
    let shown = drain(&mut chat)
        .iter()
        .filter(|a| matches!(a, Action::Show(Event::Join { nick, .. }) if nick.starts_with("eve")))
        .count();
    assert_eq!(shown, MAX_SAME_NICK);
    assert_eq!(chat.roster.same_nick("eve"), MAX_SAME_NICK);
}
