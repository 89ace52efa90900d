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
    // Protocol 2: its neighbours claim it lost; everyone believes it once SUSPECT_WAIT brought
    // nothing fresh from it.
    assert_eq!(net.leaves_of(0, "n2"), 0, "{:?}", net.shown[0]);
    net.wait(SUSPECT_WAIT);
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
    // n1 notices first; its LOST claim reaches n3 while n3's own link to n2 still looks fine.
    for neighbour in [1, 3] {
        let c = net.conn_of(neighbour, 2);
        net.links.remove(&(neighbour, c));
        net.nodes[neighbour].handle_closed(c, Some("connection reset".into()));
        net.run();
    }
    // The leaves come once the claims were not answered for SUSPECT_WAIT (protocol 2).
    net.wait(SUSPECT_WAIT);
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
    open(&mut net.nodes[2], 7, accepted(addr(9, 4000)), net.now);
    net.nodes[2].handle_line(7, b"a guest of n2", net.now);
    net.run();
    net.unlink(1, 2);
    // n1 and n2 each claimed the other lost; each heard the claim about itself round the
    // ring and answered with a HERE, which cleared the suspicions everywhere before
    // SUSPECT_WAIT was over (protocol 2).
    net.wait(SUSPECT_WAIT * 2);
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
    // Frames n1 signed before it crashed, still on their way when it did: n0's roster
    // exchange for a newcomer (its HERE), an old message of its, a guest of its. Protocol 2:
    // late means a counter below one already seen from it (a higher one is fresh evidence).
    let seq = net.nodes[1].seq;
    let n1 = MemberId::node(node_id(1));
    let id = |k| MsgId {
        node: node_id(1),
        seq: seq + k,
    };
    let stale = signed_by(
        1,
        vec![Frame::Here {
            id: id(1),
            member: n1,
            nick: "n1".into(),
            addr: None,
            key: Some(NodeKey {
                key: key(1).verifying_key(),
                run: run_of(1, 0),
            }),
        }],
    );
    let late = signed_by(
        1,
        vec![Frame::Msg {
            id: id(2),
            from: n1,
            nick: "n1".into(),
            text: "sent before the crash".into(),
        }],
    );
    let guest = signed_by(
        1,
        vec![Frame::Join {
            id: id(3),
            member: MemberId {
                node: node_id(1),
                guest: 1,
            },
            nick: "guest-1".into(),
            addr: None,
            key: None,
        }],
    );
    // Its last words, with a higher counter, came before the crash.
    net.nodes[1].seq += 10;
    net.say(1, "last words");
    net.crash(1);
    net.wait(SUSPECT_WAIT);
    assert_eq!(net.leaves_of(2, "n1"), 1, "{:?}", net.shown[2]);
    let c = net.conn_of(0, 2);
    for frame in [stale, late, guest] {
        net.deliver(0, c, &frame);
    }
    net.run();
    assert_eq!(net.joins_of(2, "n1"), 1, "{:?}", net.shown[2]);
    net.say(2, "/names");
    assert!(net.shown[2]
        .iter()
        .any(|e| matches!(e, Event::Names(n) if n.len() == 2)));
}

#[test]
fn a_peer_back_after_a_lost_link_is_taken_back_by_nodes_beyond() {
    let mut net = chain(3);
    net.unlink(1, 2);
    // Protocol 2: shown leaving once SUSPECT_WAIT brought nothing fresh from it.
    net.wait(SUSPECT_WAIT);
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
    open(&mut net.nodes[2], 7, accepted(addr(9, 4000)), net.now);
    net.nodes[2].handle_line(7, b"oi from nc", net.now);
    net.run();
    assert_eq!(
        net.messages(0),
        vec![("~guest-1".into(), "oi from nc".into())]
    );
    net.crash(2);
    // Protocol 2: once the claim that n2 was lost is believed.
    net.wait(SUSPECT_WAIT);
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
        addr: Some("10.0.0.1:5000".into()),
        unencrypted: false,
    }));
    // n1 hears of n2 through the hub, by n2's own signed announcement (protocol 2): the hub
    // cannot sign an address for it, and a node does not know its own, so none is shown.
    assert!(net.shown[1].contains(&Event::Join {
        nick: "n2".into(),
        addr: None,
        unencrypted: false,
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
    open(&mut net.nodes[1], 7, accepted(addr(9, 4000)), net.now);
    net.nodes[1].handle_line(7, b"hello from nc", net.now);
    net.run();
    net.nodes[0].handle_input("/msg guest-1 just for you", net.now);
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
    net.nodes[2] = Chat::new(
        Config::new("n1".into(), key(2), run_of(2, 0), Some(5000)),
        net.now,
    );
    net.link(0, 1);
    net.link(0, 2);
    net.say(1, "from one");
    net.say(2, "from two");
    // Tags come from the node ids (derived from the keys): computed, not written out.
    let (one, two) = (
        MemberId::node(node_id(1)).tag(),
        MemberId::node(node_id(2)).tag(),
    );
    assert_ne!(one, two, "the test keys' ids differ in their first digits");
    let got = net.messages(0);
    // n0 saw n1's key first: the other n1 has another key, and says so on each message.
    assert_eq!(
        got,
        vec![
            (format!("n1{one}"), "from one".into()),
            (format!("n1{two} (key changed!)"), "from two".into())
        ]
    );
    // Its join said so too.
    assert_eq!(net.joins_of(0, &format!("n1{two} (key changed!)")), 1);
    net.say(0, "/msg n1 which?");
    assert!(net.shown[0]
        .iter()
        .any(|e| matches!(e, Event::Error(t) if t.contains("ambiguous"))));
    net.say(0, &format!("/msg n1{two} you"));
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
    // Whatever the same peer sent after the bad frame is not taken, even signed.
    let sneaky = signed_by(
        1,
        vec![Frame::Msg {
            id: MsgId {
                node: node_id(1),
                seq: 99,
            },
            from: MemberId::node(node_id(1)),
            nick: "n1".into(),
            text: "sneaked in".into(),
        }],
    );
    let mut lines = Vec::new();
    protocol::encode_peer(&sneaky, &mut lines);
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        net.nodes[0].handle_line(c, line, net.now);
    }
    net.run();
    // Protocol 2: n2 shows the leave once n0's claim was not answered for SUSPECT_WAIT.
    net.wait(SUSPECT_WAIT);
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
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let bob = FakeNode::new("bob", 100, Some(5000));
    bob.connect(
        &mut chat,
        3,
        accepted("10.0.0.2:40000".parse().unwrap()),
        now,
    );
    // Protocol 2: a node announces only itself and its own guests, so the flood comes from
    // many nodes (relayed by bob), each with a few guests called eve.
    for n in 0..40u8 {
        let node = FakeNode::new(&format!("f{n}"), 110 + n, None);
        let mut frames = vec![node.join(1)];
        frames.extend((1..=5u32).map(|g| Frame::Join {
            id: node.id(1 + u64::from(g)),
            member: MemberId {
                node: node.node(),
                guest: g,
            },
            nick: "eve".into(),
            addr: None,
            key: None,
        }));
        node.send(&mut chat, 3, frames, now);
    }
    let shown = drain(&mut chat)
        .iter()
        .filter(|a| matches!(a, Action::Show(Event::Join { nick, .. }) if nick.starts_with("~eve")))
        .count();
    assert_eq!(shown, MAX_SAME_NICK);
    assert_eq!(chat.roster.same_nick("eve"), MAX_SAME_NICK);
}

/// A node lost for longer than the wait takes its guests with it; once it is back, a guest of
/// its that speaks is back too, under its name (not as an unknown `?#tag`).
#[test]
fn a_guest_of_a_node_that_was_lost_and_came_back_is_back_when_it_speaks() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let g = net.guest(0);
    net.guest_says(0, g, "hi");
    net.unlink(0, 1);
    net.tick(SUSPECT_WAIT);
    assert_eq!(net.leaves_of(1, "~guest-1"), 1, "{:?}", net.shown[1]);
    net.link(0, 1);
    net.guest_says(0, g, "back again");
    assert_eq!(
        net.messages(1).last(),
        Some(&("~guest-1".to_string(), "back again".to_string()))
    );
}
