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
        net.nodes[1].handle_opened(conn, accepted(addr(9, port)), net.now);
        net.nodes[1].handle_line(conn, b"hello from nc", net.now);
    }
    net.run();
    // Both ways round, so the answer cannot be right by the order connections are kept in.
    for (nick, conn) in [("guest-1", 7), ("guest-2", 8)] {
        net.nodes[0].handle_input(&format!("/msg {nick} just for you"));
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
        // n1 dials n0, and n0 dials n1; node ids grow with the index, so n0's dial is kept.
        let (_, n1_dial) = net.open_raw(0, 1, Origin::Dialled);
        let (_, n0_dial) = net.open_raw(1, 0, Origin::Dialled);
        let ends = [(1, n1_dial), (0, n0_dial)];
        let order = if first == 0 {
            [ends[0], ends[1]]
        } else {
            [ends[1], ends[0]]
        };
        for (node, conn) in order {
            let hello = net.nodes[node].hello();
            let (far, far_conn) = net.links[&(node, conn)];
            net.deliver(node, conn, &hello);
            let hello = net.nodes[far].hello();
            net.deliver(far, far_conn, &hello);
        }
        net.run();
        assert_eq!(net.conns_between(0, 1), vec![n0_dial], "{:?}", net.closed);
        assert_eq!(net.count(0, |e| matches!(e, Event::Leave { .. })), 0);
    }
}

/// `CLOSE duplicate connection` from each of the hub's two peers, with no twin to follow.
fn two_orphans() -> Net {
    let mut net = star(3);
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
    net.tick(HELLO_WAIT_DIALLED);
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
    assert_eq!(net.leaves_of(0, "n2"), 1, "{:?}", net.shown[0]);
}

#[test]
fn a_retired_link_without_a_twin_is_not_lost_before_the_wait() {
    let mut net = two_orphans();
    net.tick(HELLO_WAIT_DIALLED - Duration::from_millis(10));
    assert_eq!(net.count(0, |e| matches!(e, Event::Leave { .. })), 0);
    net.tick(Duration::from_millis(10));
    assert_eq!(net.count(0, |e| matches!(e, Event::Leave { .. })), 2);
}

#[test]
fn nick_news_about_a_stranger_is_passed_on_but_not_shown() {
    let mut net = chain(3);
    let stranger = MemberId {
        node: node_id(9),
        guest: 0,
    };
    let nick = Frame::Nick {
        id: MsgId {
            node: node_id(9),
            seq: 1,
        },
        member: stranger,
        old: "x".into(),
        nick: "y".into(),
    };
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
    // Each already knows the other from its hello: nobody else is here to announce.
    assert_eq!(net.sent.get("JOIN"), None, "{:?}", net.sent);
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
    net.nodes[2].handle_opened(7, accepted(addr(9, 4000)), net.now);
    net.nodes[2].handle_line(7, b"hello from nc", net.now);
    net.run();
    assert_eq!(net.joins_of(1, "~guest-1"), 1);
    // n0 says it lost n2's guest (a node that is not its host): n1 keeps it.
    let leave = Frame::Leave {
        id: MsgId {
            node: node_id(0),
            seq: 999,
        },
        member: MemberId {
            node: node_id(2),
            guest: 1,
        },
        nick: "guest-1".into(),
        reason: Some("connection reset".into()),
    };
    let c = net.conn_of(0, 1);
    net.deliver(0, c, &leave);
    net.run();
    assert_eq!(net.leaves_of(1, "~guest-1"), 0, "{:?}", net.shown[1]);
    net.clear_shown();
    net.nodes[2].handle_line(7, b"still here", net.now);
    net.run();
    assert_eq!(
        net.messages(0),
        vec![("~guest-1".into(), "still here".into())]
    );
}

#[test]
fn a_peers_list_naming_this_node_is_not_dialled() {
    let now = Instant::now();
    let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
    chat.handle_opened(3, accepted("192.168.0.9:41000".parse().unwrap()), now);
    chat.handle_line(
        3,
        b"peerchat/1 hello from bob (node=00000000000000bb listen=5000)",
        now,
    );
    drain(&mut chat);
    chat.handle_line(3, b"PEERS 0000000000000001@10.0.0.7:5000", now);
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
    let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000)), now);
    chat.handle_opened(3, accepted("192.168.0.9:41000".parse().unwrap()), now);
    chat.handle_line(
        3,
        b"peerchat/1 hello from bob (node=00000000000000bb listen=5000)",
        now,
    );
    // A dial the user asked for, its hello not read yet.
    let dialled: SocketAddr = "10.0.0.5:5000".parse().unwrap();
    let link = Link {
        addr: dialled,
        local: "10.0.0.1:43000".parse().unwrap(),
        origin: Origin::Dialled,
    };
    chat.handle_opened(4, link, now);
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
    chat.handle_opened(9, link, at);
    // Open, its hello not read: still waiting.
    assert!(chat.is_settling());
    chat.handle_line(
        9,
        b"peerchat/1 hello from bob (node=00000000000000bb listen=5001)",
        at,
    );
    assert!(!chat.is_settling());
}

#[test]
fn a_peer_message_arriving_after_we_quit_is_not_shown() {
    let mut net = chain(2);
    net.say(0, "/quit");
    net.clear_shown();
    let late = Frame::Msg {
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
    };
    let c = net.conn_of(1, 0);
    net.deliver(1, c, &late);
    net.run();
    assert!(net.messages(0).is_empty(), "{:?}", net.shown[0]);
}
