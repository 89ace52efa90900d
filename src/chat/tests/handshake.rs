//! Classifying connections: guests by their first line or silence, late hellos, a node that
//! reaches itself, and one connection per pair of nodes.

use super::net::*;

#[test]
fn two_connections_dialled_by_one_node_whose_hellos_cross_become_one() {
    for dialler in [0, 1] {
        let acceptor = 1 - dialler;
        let mut net = Net::new(2);
        let (a1, d1) = net.open_raw(acceptor, dialler, Origin::Dialled);
        let (a2, d2) = net.open_raw(acceptor, dialler, Origin::Dialled);
        // The acceptor reads the second connection's hello first, the dialler the first's.
        net.send_hello(dialler, d2);
        net.send_hello(dialler, d1);
        net.send_hello(acceptor, a1);
        net.send_hello(acceptor, a2);
        net.run();
        assert_eq!(net.conns_between(0, 1).len(), 1, "dialler n{dialler}");
        assert_eq!(net.conns_between(1, 0).len(), 1);
        for node in 0..2 {
            assert_eq!(net.count(node, |e| matches!(e, Event::Leave { .. })), 0);
        }
        chat_all(&mut net, &[0, 1], 2);
        every_node_but_sender_sees_each_once(&net, 2);
    }
}

#[test]
fn a_retired_link_with_no_twin_after_the_hello_wait_is_a_loss() {
    let mut net = chain(2);
    let c = net.conn_of(0, 1);
    // n1 says it closes a duplicate, but no other connection from it ever comes.
    net.nodes[0].handle_line(c, b"CLOSE duplicate connection", net.now);
    net.run();
    assert_eq!(
        net.leaves_of(0, "n1"),
        0,
        "not at once: a twin may be on its way"
    );
    net.tick(HELLO_WAIT_DIALLED);
    // Protocol 2: a lost peer is a claim first, believed once SUSPECT_WAIT brought nothing
    // fresh from it.
    assert_eq!(net.leaves_of(0, "n1"), 0, "{:?}", net.shown[0]);
    net.tick(SUSPECT_WAIT);
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
}

/// The leaves in `actions`: who, and why.
fn leaves(actions: &[Action]) -> Vec<(String, Option<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Show(Event::Leave { nick, reason, .. }) => Some((nick.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lone_peer_lost_is_shown_leaving_after_the_wait_or_never_if_it_is_back_within_it() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", None), now);
    let bob = FakeNode::new("bob", 100, None);
    let link = accepted("10.0.0.9:41000".parse().unwrap());
    bob.connect(&mut chat, 3, link, now);
    drain(&mut chat);
    // A blip: back within the wait, nothing is shown.
    chat.handle_closed(3, None);
    assert!(leaves(&drain(&mut chat)).is_empty());
    bob.connect(&mut chat, 4, link, now + SUSPECT_WAIT / 2);
    chat.handle_tick(now + SUSPECT_WAIT * 2);
    let actions = drain(&mut chat);
    assert!(leaves(&actions).is_empty(), "{actions:#?}");
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Show(Event::Join { .. }))));
    // Gone for good (closed at the chat's last tick): shown leaving once the wait is over.
    chat.handle_closed(4, None);
    let closed = now + SUSPECT_WAIT * 2;
    chat.handle_tick(closed + SUSPECT_WAIT / 2);
    assert!(leaves(&drain(&mut chat)).is_empty());
    chat.handle_tick(closed + SUSPECT_WAIT);
    assert_eq!(
        leaves(&drain(&mut chat)),
        vec![("bob".to_string(), Some("connection closed".to_string()))]
    );
}

/// A peer restarted (same key, new run: a new node id) comes back before the wait for the run
/// we lost is over: that run is shown leaving at once, then the new one joins, untagged.
#[test]
fn the_same_key_back_in_a_new_run_ends_the_wait_for_the_old_run() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", None), now);
    let link = accepted("10.0.0.9:41000".parse().unwrap());
    FakeNode::new("bob", 100, None).connect(&mut chat, 3, link, now);
    drain(&mut chat);
    chat.handle_closed(3, None);
    drain(&mut chat);
    let mut again = FakeNode::new("bob", 100, None);
    again.run = [9; 8];
    again.connect(&mut chat, 4, link, now + SUSPECT_WAIT / 4);
    let shown: Vec<Event> = drain(&mut chat)
        .into_iter()
        .filter_map(|a| match a {
            Action::Show(e @ (Event::Join { .. } | Event::Leave { .. })) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            Event::Leave {
                nick: "bob".into(),
                addr: Some("10.0.0.9:41000".into()),
                reason: Some("connection closed".into()),
            },
            Event::Join {
                nick: "bob".into(),
                addr: Some("10.0.0.9:41000".into()),
                unencrypted: false,
            },
        ]
    );
}

#[test]
fn a_peer_lost_while_another_is_left_waits_for_news_through_it() {
    let mut net = star(3);
    let c = net.conn_of(0, 1);
    net.cut(0, c, "connection closed", "connection closed");
    net.run();
    assert_eq!(net.leaves_of(0, "n1"), 0, "n2 may still bring news of n1");
    net.tick(SUSPECT_WAIT);
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
    assert_eq!(net.leaves_of(2, "n1"), 1, "{:?}", net.shown[2]);
}

#[test]
fn a_claim_waiting_when_the_last_peer_goes_is_believed_at_once() {
    // n1 loses n2 and says so; n0 waits for news of n2 through n1, which then leaves.
    let mut net = chain(3);
    let c = net.conn_of(1, 2);
    net.cut(1, c, "connection closed", "connection closed");
    net.run();
    net.say(1, "/quit");
    net.run();
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
    assert_eq!(net.leaves_of(0, "n2"), 0, "n1 may still answer for n2");
    // n1's connection closes after its goodbye: n0 has no peer left to bring news of n2.
    let c = net.conn_of(0, 1);
    net.cut(0, c, "closed", "closed");
    net.run();
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
    assert_eq!(net.leaves_of(0, "n2"), 1, "{:?}", net.shown[0]);
}

#[test]
fn a_node_cut_off_shows_a_peer_whose_retired_link_had_no_twin_leaving() {
    let mut net = chain(2);
    let c = net.conn_of(0, 1);
    net.nodes[0].handle_line(c, b"CLOSE duplicate connection", net.now);
    net.run();
    assert_eq!(net.leaves_of(0, "n1"), 0, "a twin may be on its way");
    net.nodes[0].handle_cut_off();
    net.run();
    assert_eq!(net.leaves_of(0, "n1"), 1, "{:?}", net.shown[0]);
}

#[test]
fn two_connections_between_the_same_nodes_become_one() {
    for second_dialler in [0, 1] {
        let mut net = Net::new(3);
        net.link(0, 1);
        net.link(1, 2);
        // The other direction too, as two mesh nodes scanning each other at once would.
        let other = 1 - second_dialler;
        net.link(other, second_dialler);
        assert_eq!(net.conns_between(0, 1).len(), 1, "{:?}", net.closed);
        for node in 0..3 {
            assert_eq!(net.count(node, |e| matches!(e, Event::Leave { .. })), 0);
        }
        joins_once_everywhere(&net);
        let all = [0, 1, 2];
        chat_all(&mut net, &all, 2);
        every_node_but_sender_sees_each_once(&net, 2);
    }
}

/// A node between two others (connected to both) passes each one's hello and proof to the
/// other: both take the relayed connection for a second one to the other node, proven. It must
/// not displace their direct link, whatever its ports say; it is retired instead.
#[test]
fn a_relayed_hello_never_displaces_a_link_that_is_already_a_peer() {
    for dialler in [0, 1] {
        let mut net = Net::new(2);
        net.link(1 - dialler, dialler);
        let direct = net.conn_of(0, 1);
        net.tick(Duration::from_secs(10));
        // As the relaying node's connections look: accepted at both ends.
        let (c0, c1) = net.open_raw(0, 1, Origin::Accepted);
        net.sent.clear();
        net.send_hello(0, c0);
        net.send_hello(1, c1);
        net.run();
        assert_eq!(net.conns_between(0, 1), vec![direct], "dialler n{dialler}");
        // Each end pinged the link it kept, in case it was dead at the other end.
        assert_eq!(net.sent.get("PING"), Some(&2), "{:?}", net.sent);
        for node in 0..2 {
            assert_eq!(net.count(node, |e| matches!(e, Event::Leave { .. })), 0);
        }
        chat_all(&mut net, &[0, 1], 2);
        every_node_but_sender_sees_each_once(&net, 2);
    }
}

#[test]
fn a_first_line_that_is_not_a_hello_makes_a_guest() {
    let (mut chat, now) = guest_chat();
    chat.handle_line(7, "bob: oi ".as_bytes(), now);
    let actions = drain(&mut chat);
    assert_eq!(
        actions[0],
        Action::Classify {
            conn: 7,
            role: Role::Guest
        }
    );
    assert!(actions.contains(&Action::Show(Event::Message {
        from: "~guest-1".into(),
        text: "bob: oi ".into()
    })));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Broadcast { except: Some(7), frame } if matches!(&**frame, Frame::Msg { .. }))));
}

#[test]
fn a_silent_connection_becomes_a_guest_after_the_hello_wait() {
    let (mut chat, now) = guest_chat();
    assert_eq!(chat.next_deadline(), Some(now + HELLO_WAIT));
    chat.handle_tick(now + HELLO_WAIT / 2);
    assert!(drain(&mut chat).is_empty());
    chat.handle_tick(now + HELLO_WAIT);
    let actions = drain(&mut chat);
    assert!(actions.contains(&Action::Classify {
        conn: 7,
        role: Role::Guest
    }));
    assert!(actions.contains(&Action::Classify {
        conn: 8,
        role: Role::Guest
    }));
    // A guest has no deadline; the one left is the chat's own heartbeat (protocol 2).
    assert_eq!(chat.next_deadline(), Some(now + HEARTBEAT));
}

#[test]
fn a_node_that_reaches_itself_closes_that_connection() {
    let (mut chat, now) = guest_chat();
    // Its own hello comes back on the connection.
    let (_, hello) = hello_on(&chat, 7);
    chat.handle_line(7, hello.as_bytes(), now);
    assert!(matches!(
        &drain(&mut chat)[..],
        [Action::Close { conn: 7, .. }]
    ));
}

#[test]
fn a_dialled_connection_waits_longer_for_the_hello() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", None), now);
    open(
        &mut chat,
        3,
        Link {
            origin: Origin::Dialled,
            ..accepted("10.0.0.9:5000".parse().unwrap())
        },
        now,
    );
    assert_eq!(chat.next_deadline(), Some(now + HELLO_WAIT_DIALLED));
    chat.handle_tick(now + HELLO_WAIT);
    assert!(drain(&mut chat).is_empty());
}

#[test]
fn a_late_hello_turns_a_silent_guest_into_the_peer() {
    let (mut chat, now) = guest_chat();
    chat.handle_tick(now + HELLO_WAIT);
    drain(&mut chat);
    let bob = FakeNode::new("bob", 100, None);
    let (_, sent) = hello_on(&chat, 7);
    bob.greet(&mut chat, 7, &sent, now);
    let actions = drain(&mut chat);
    assert!(actions.contains(&Action::Show(Event::Leave {
        nick: "~guest-1".into(),
        addr: Some("127.0.0.1:4000".into()),
        reason: Some("it is bob, a peerchat node".into()),
    })));
    assert!(actions.contains(&Action::Classify {
        conn: 7,
        role: Role::Peer
    }));
    assert!(actions.contains(&Action::Show(Event::Join {
        nick: "bob".into(),
        addr: Some("127.0.0.1:4000".into()),
        unencrypted: false,
    })));
    // From now on it speaks frames.
    bob.send(&mut chat, 7, vec![bob.msg(1, "late but here")], now);
    assert!(drain(&mut chat).contains(&Action::Show(Event::Message {
        from: "bob".into(),
        text: "late but here".into()
    })));
    // A guest that has typed is a guest for good: a hello later is just text.
    chat.handle_line(8, b"hi", now);
    let eve = FakeNode::new("eve", 101, None);
    chat.handle_line(8, eve.hello_line(8).as_bytes(), now);
    assert!(drain(&mut chat).iter().all(|a| !matches!(
        a,
        Action::Classify {
            role: Role::Peer,
            ..
        }
    )));
}

#[test]
fn a_hello_without_its_proof_is_no_peer() {
    let (mut chat, now) = guest_chat();
    let bob = FakeNode::new("bob", 100, None);
    chat.handle_line(7, bob.hello_line(7).as_bytes(), now);
    // A proof made for another connection (another nonce of ours) proves nothing here.
    let other = bob.proof(&bob.hello_line(7), &hello_on(&chat, 8).1);
    chat.handle_line(7, other.as_bytes(), now);
    let actions = drain(&mut chat);
    assert!(
        matches!(&actions[..], [Action::SendFirst { conn: 7, line }, Action::Close { conn: 7, .. }]
            if line.starts_with("PROOF ")),
        "{actions:?}"
    );
    // Silent after its hello: closed when the wait is over, never a guest nor a peer.
    chat.handle_line(8, bob.hello_line(8).as_bytes(), now);
    drain(&mut chat);
    chat.handle_tick(now + HELLO_WAIT_DIALLED);
    let actions = drain(&mut chat);
    assert!(
        actions.contains(&Action::Close {
            conn: 8,
            reason: "its hello was not proven in time".into()
        }),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Classify { .. })));
}

#[test]
fn a_node_of_another_version_is_told_and_closed() {
    let (mut chat, now) = guest_chat();
    // Version 2: its hello looks like ours, its DMs are not sealed.
    let old = format!(
        "peerchat/2 hello from bob (node={:016x} listen=- key={} run={} nonce={})",
        0xbbu64,
        "ab".repeat(32),
        "cd".repeat(8),
        "ef".repeat(16)
    );
    chat.handle_line(7, old.as_bytes(), now);
    let actions = drain(&mut chat);
    assert!(
        matches!(&actions[..], [Action::SendFirst { conn: 7, line }, Action::Show(Event::Error(e)), Action::Retire { conn: 7 }]
            if line.contains("peerchat/4 cannot talk to peerchat/2") && e.contains("peerchat/2")),
        "{actions:?}"
    );
}

#[test]
fn a_scan_connection_without_a_hello_is_nobody_to_send_to() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let other = SocketAddr::from(([127, 0, 0, 1], 5001));
    let link = Link {
        addr: other,
        local: SocketAddr::from(([127, 0, 0, 1], 40000)),
        origin: Origin::Auto(other),
    };
    open(&mut chat, 3, link, now);
    chat.handle_input("anyone?", now);
    assert!(!logs_sent(&drain(&mut chat)));
}
