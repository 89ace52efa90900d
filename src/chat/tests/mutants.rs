//! Behaviour the other scenario tests did not pin down, each found by a change to the chat's
//! code that they let through (see "Mutation testing" in docs/DESIGN.md): which guest a DM
//! reaches, which of two crossed connections both ends keep, orphans judged on time, nick
//! news about strangers, blank guest lines, relayed leaves of guests, `PEERS` and re-dials,
//! the flood pause boundary, settling, and what a goodbye or our own leaving rules out.
//!
//! Public API and the in-memory network only: no room's private state.

use super::net::*;

/// How many `Dial`s are among `actions`.
fn dials(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Dial(_)))
        .count()
}

#[test]
fn a_dm_to_a_guest_reaches_that_guest_not_another() {
    let mut net = chain(2);
    for (conn, port) in [(7, 4000), (8, 4001)] {
        open(&mut net.nodes[1], conn, accepted(addr(9, port)), net.now);
        net.nodes[1].handle_line(conn, b"hello from nc", net.now);
    }
    net.run();
    // Both ways round, so the answer cannot be right by the order connections are kept in.
    for (nick, conn) in [("guest-1", 7), ("guest-2", 8)] {
        net.nodes[0].handle_input(&format!("/msg {nick} just for you"), net.now);
        while let Some(a) = net.nodes[0].poll_action() {
            net.apply(0, a);
        }
        let to_guests: Vec<ConnId> = drain(&mut net.nodes[1])
            .iter()
            .filter_map(|a| match a {
                Action::Send { conn, frame } if matches!(**frame, Frame::Dm { .. }) => Some(*conn),
                _ => None,
            })
            .collect();
        assert_eq!(to_guests, vec![conn], "{nick}'s connection only");
    }
}

#[test]
fn crossed_connections_keep_the_one_the_smaller_node_dialled() {
    for first in [0, 1] {
        let mut net = Net::new(2);
        // n1 dials n0, and n0 dials n1: the dial of the node with the smaller id is kept
        // (node ids come from the keys, so which one that is is computed).
        let (n1_dial_at_0, n1_dial) = net.open_raw(0, 1, Origin::Dialled);
        let (_, n0_dial) = net.open_raw(1, 0, Origin::Dialled);
        let kept = if node_id(0) < node_id(1) {
            n0_dial
        } else {
            n1_dial_at_0
        };
        let ends = [(1, n1_dial), (0, n0_dial)];
        let order = if first == 0 {
            [ends[0], ends[1]]
        } else {
            [ends[1], ends[0]]
        };
        for (node, conn) in order {
            let (far, far_conn) = net.links[&(node, conn)];
            net.send_hello(node, conn);
            net.send_hello(far, far_conn);
        }
        net.run();
        assert_eq!(net.conns_between(0, 1), vec![kept], "{:?}", net.closed);
        assert_eq!(net.count(0, |e| matches!(e, Event::Leave { .. })), 0);
    }
}

/// `CLOSE duplicate connection` from two of the hub's three peers, with no twin to follow.
/// The third stays its peer, so the losses wait for news through it (with no peer left
/// they would be shown at once).
fn two_orphans() -> Net {
    let mut net = star(4);
    for leaf in [1, 2] {
        let c = net.conn_of(0, leaf);
        net.nodes[0].handle_line(c, b"CLOSE duplicate connection", net.now);
    }
    net.run();
    net
}

#[test]
fn two_retired_links_without_twins_are_both_lost_after_the_wait() {
    let mut net = two_orphans();
    // Protocol 2: lost when the hello wait is over, shown leaving once the claim was not
    // answered for SUSPECT_WAIT.
    net.tick(HELLO_WAIT_DIALLED);
    net.tick(SUSPECT_WAIT);
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
    assert_eq!(net.leaves_of(0, "n2"), 1, "{:?}", net.shown[0]);
}

#[test]
fn a_retired_link_without_a_twin_is_not_lost_before_the_wait() {
    let mut net = two_orphans();
    let leaves = |net: &Net| net.count(0, |e| matches!(e, Event::Leave { .. }));
    let ms = Duration::from_millis(10);
    net.tick(HELLO_WAIT_DIALLED - ms);
    assert_eq!(leaves(&net), 0);
    // Protocol 2: judged lost exactly at the end of the hello wait, which starts SUSPECT_WAIT;
    // the leaves come exactly when that is over (a judgement late by 10 ms would miss it).
    net.tick(ms);
    assert_eq!(leaves(&net), 0);
    net.tick(SUSPECT_WAIT - ms);
    assert_eq!(leaves(&net), 0);
    net.tick(ms);
    assert_eq!(leaves(&net), 2);
}

#[test]
fn nick_news_about_a_stranger_is_passed_on_but_not_shown() {
    let mut net = chain(3);
    // Protocol 2: a node speaks only for itself and its guests, so the stranger is a guest of
    // n0 whose join went by unseen; n0 signs the news.
    let stranger = MemberId {
        node: node_id(0),
        guest: 9,
    };
    let nick = signed_by(
        0,
        vec![Frame::Nick {
            id: MsgId {
                node: node_id(0),
                seq: 999,
            },
            member: stranger,
            old: "x".into(),
            nick: "y".into(),
        }],
    );
    let c = net.conn_of(0, 1);
    net.deliver(0, c, &nick);
    net.run();
    for node in 0..3 {
        assert_eq!(net.count(node, |e| matches!(e, Event::Nick { .. })), 0);
    }
    assert_eq!(net.sent.get("NICK"), Some(&2), "n1 passes it on to n2");
}

#[test]
fn a_peer_that_said_goodbye_is_not_dialled_again() {
    let mut net = chain(2);
    net.say(1, "/quit");
    net.run();
    assert_eq!(net.leaves_of(0, "n1"), 1);
    // Its process exits after the goodbye: the connection closes.
    net.unlink(0, 1);
    assert_eq!(net.leaves_of(0, "n1"), 1);
    let mut now = net.now;
    for _ in 0..20 {
        now += Duration::from_secs(30);
        net.nodes[0].handle_tick(now);
        assert_eq!(dials(&drain(&mut net.nodes[0])), 0);
    }
}

#[test]
fn a_node_that_quit_shows_no_leaves_as_its_links_close() {
    let mut net = star(3);
    net.clear_shown();
    net.say(0, "/quit");
    net.run();
    assert!(net.quit[0]);
    for leaf in [1, 2] {
        for c in net.conns_between(0, leaf) {
            net.cut(0, c, "connection reset", "connection reset");
        }
    }
    net.run();
    assert_eq!(
        net.count(0, |e| matches!(e, Event::Leave { .. })),
        0,
        "{:?}",
        net.shown[0]
    );
}

#[test]
fn a_blank_guest_line_is_neither_shown_nor_sent() {
    let (mut chat, now) = guest_chat();
    chat.handle_line(7, b"hello", now);
    drain(&mut chat);
    chat.handle_line(7, b"   ", now);
    let actions = drain(&mut chat);
    assert_eq!(sent_and_told(&actions).0, 0, "{actions:?}");
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Show(Event::Message { .. }))));
}

#[test]
fn a_new_peer_is_not_told_about_itself_or_its_welcomer_as_joins() {
    let mut net = Net::new(2);
    net.link(0, 1);
    // Each already knows the other from its hello; protocol 2 hands a new peer each member's
    // own signed announcement, so each is sent the other's own JOIN, and no JOIN else.
    assert_eq!(net.sent.get("JOIN"), Some(&2), "{:?}", net.sent);
    joins_once_everywhere(&net);
}

#[test]
fn a_retired_link_whose_twin_arrives_in_the_wait_is_not_a_loss() {
    let mut net = chain(2);
    let c = net.conn_of(0, 1);
    net.nodes[0].handle_line(c, b"CLOSE duplicate connection", net.now);
    net.run();
    net.link(1, 0);
    net.tick(HELLO_WAIT_DIALLED);
    net.tick(HELLO_WAIT_DIALLED);
    // (n1 itself retired nothing here: it sees its end simply close.)
    assert_eq!(net.leaves_of(0, "n1"), 0, "{:?}", net.shown[0]);
}

#[test]
fn a_guest_is_not_dropped_because_another_node_lost_its_host() {
    let mut net = chain(3);
    open(&mut net.nodes[2], 7, accepted(addr(9, 4000)), net.now);
    net.nodes[2].handle_line(7, b"hello from nc", net.now);
    net.run();
    assert_eq!(net.joins_of(1, "~guest-1"), 1);
    // n0 says n2's guest left (a node that is not its host), signed by itself: n1 keeps the
    // guest, and (protocol 2) closes the link that relayed a node speaking for another.
    let leave = signed_by(
        0,
        vec![Frame::Leave {
            id: MsgId {
                node: node_id(0),
                seq: 999,
            },
            member: MemberId {
                node: node_id(2),
                guest: 1,
            },
            // Frames carry a guest's nick without its `~`.
            nick: "guest-1".into(),
            reason: Some("connection reset".into()),
        }],
    );
    let c = net.conn_of(0, 1);
    net.deliver(0, c, &leave);
    net.run();
    assert_eq!(net.leaves_of(1, "~guest-1"), 0, "{:?}", net.shown[1]);
    assert!(
        net.closed
            .iter()
            .any(|(n, _, why)| *n == 1 && why.contains("speaking for another")),
        "{:?}",
        net.closed
    );
    net.clear_shown();
    net.nodes[2].handle_line(7, b"still here", net.now);
    net.run();
    assert_eq!(
        net.messages(1),
        vec![("~guest-1".into(), "still here".into())]
    );
}

#[test]
fn a_peers_list_naming_this_node_is_not_dialled() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    FakeNode::new("bob", 100, Some(5000)).connect(
        &mut chat,
        3,
        accepted("192.168.0.9:41000".parse().unwrap()),
        now,
    );
    drain(&mut chat);
    let me = format!("PEERS {:016x}@10.0.0.7:5000", chat.cfg.node);
    chat.handle_line(3, me.as_bytes(), now);
    assert_eq!(dials(&drain(&mut chat)), 0);
}

#[test]
fn a_peer_that_came_back_and_then_said_goodbye_is_not_dialled_again() {
    let mut net = chain(2);
    net.unlink(0, 1);
    // It comes back on its own before the re-dial, then quits.
    net.link(1, 0);
    net.say(1, "/quit");
    net.unlink(0, 1);
    let mut now = net.now;
    for _ in 0..40 {
        now += Duration::from_secs(15);
        net.nodes[0].handle_tick(now);
        assert_eq!(dials(&drain(&mut net.nodes[0])), 0);
    }
}

#[test]
fn a_guest_over_the_limit_once_every_second_is_still_cut_off() {
    let (mut chat, start) = guest_chat();
    // The whole burst and one more: the first line dropped.
    for i in 0..201 {
        chat.handle_line(7, format!("line {i}").as_bytes(), start);
    }
    drain(&mut chat);
    // Then one line too many each second, exactly a second after the last one dropped: one
    // flood, not a new one each time.
    let mut cut = None;
    for s in 1..=12 {
        let now = start + Duration::from_secs(s);
        for i in 0..21 {
            chat.handle_line(7, format!("more {i}").as_bytes(), now);
        }
        let closed = drain(&mut chat)
            .iter()
            .any(|a| matches!(a, Action::Close { conn: 7, .. }));
        if closed && cut.is_none() {
            cut = Some(s);
        }
    }
    assert_eq!(cut, Some(10));
}

#[test]
fn a_pending_user_dial_counts_as_reaching_its_address_only() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    FakeNode::new("bob", 100, Some(5000)).connect(
        &mut chat,
        3,
        accepted("192.168.0.9:41000".parse().unwrap()),
        now,
    );
    // A dial the user asked for, its hello not read yet.
    let dialled: SocketAddr = "10.0.0.5:5000".parse().unwrap();
    let link = Link {
        addr: dialled,
        local: "10.0.0.1:43000".parse().unwrap(),
        origin: Origin::Dialled,
    };
    open(&mut chat, 4, link, now);
    drain(&mut chat);
    chat.handle_line(
        3,
        b"PEERS 00000000000000cc@10.0.0.5:5000 00000000000000dd@10.0.0.6:5000",
        now,
    );
    assert_eq!(
        drain(&mut chat),
        vec![Action::Dial("10.0.0.6:5000".parse().unwrap())]
    );
}

#[test]
fn the_end_of_input_leaves_the_chat() {
    let (mut chat, _) = guest_chat();
    assert!(!chat.is_quitting());
    chat.handle_input_end();
    assert!(chat.is_quitting());
    assert!(drain(&mut chat).contains(&Action::Quit));
}

#[test]
fn a_mesh_node_settles_only_once_its_dials_are_answered() {
    let (mut chat, now) = mesh_chat(5000, 5000..=5001, DEFAULT_MAX_PEERS);
    assert!(!chat.is_settling());
    let mut at = now;
    let mut dialled = Vec::new();
    while dialled.is_empty() {
        at += Duration::from_millis(100);
        assert!(at < now + Duration::from_secs(60), "no scan");
        chat.handle_tick(at);
        dialled.extend(drain(&mut chat).into_iter().filter_map(|a| match a {
            Action::Dial(to) => Some(to),
            _ => None,
        }));
    }
    // Asked for, not yet open: typed input must wait.
    assert!(chat.is_settling());
    let link = Link {
        addr: dialled[0],
        local: "127.0.0.1:43000".parse().unwrap(),
        origin: Origin::Auto(dialled[0]),
    };
    open(&mut chat, 9, link, at);
    // Open, its hello not read: still waiting.
    assert!(chat.is_settling());
    let bob = FakeNode::new("bob", 100, Some(5001));
    let own = bob.hello_line(9);
    chat.handle_line(9, own.as_bytes(), at);
    // Protocol 2: its hello is not enough, its proof is awaited too.
    assert!(chat.is_settling());
    let (_, sent) = hello_on(&chat, 9);
    chat.handle_line(9, bob.proof(&own, &sent).as_bytes(), at);
    assert!(!chat.is_settling());
}

#[test]
fn a_peer_message_arriving_after_we_quit_is_not_shown() {
    let mut net = chain(2);
    net.say(0, "/quit");
    net.clear_shown();
    let late = signed_by(
        1,
        vec![Frame::Msg {
            id: MsgId {
                node: node_id(1),
                seq: 999,
            },
            from: MemberId {
                node: node_id(1),
                guest: 0,
            },
            nick: "n1".into(),
            text: "too late".into(),
        }],
    );
    let c = net.conn_of(1, 0);
    net.deliver(1, c, &late);
    net.run();
    assert!(net.messages(0).is_empty(), "{:?}", net.shown[0]);
}
