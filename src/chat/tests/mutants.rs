//! Behaviour the other scenario tests did not pin down, each found by a change to the chat's
//! code that they let through (see "Mutation testing" in docs/DESIGN.md): which guest a DM
//! reaches, which of two crossed connections both ends keep, orphans judged on time, nick
//! news about strangers, `/msg` without text, and what a goodbye or our own leaving rules out.
//!
//! Public API and the in-memory network only: no room's private state.

use super::net::*;

/// Every `Dial` among `actions`.
fn dials(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Dial(_)))
        .count()
}

#[test]
fn a_dm_to_the_second_guest_reaches_that_guest_not_the_first() {
    let mut net = chain(2);
    for (conn, port) in [(7, 4000), (8, 4001)] {
        net.nodes[1].handle_opened(conn, accepted(addr(9, port)), net.now);
        net.nodes[1].handle_line(conn, b"hello from nc", net.now);
    }
    net.run();
    net.nodes[0].handle_input("/msg guest-2 just for you");
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
    assert_eq!(to_guests, vec![8], "only the second guest's connection");
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
fn msg_with_only_blanks_after_the_nick_is_a_usage_error() {
    let mut net = chain(2);
    net.clear_shown();
    net.say(0, "/msg n1    ");
    assert_eq!(net.sent.get("DM"), None);
    assert!(
        net.shown[0]
            .iter()
            .any(|e| matches!(e, Event::Error(t) if t.contains("usage"))),
        "{:?}",
        net.shown[0]
    );
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
