//! Replays: a signed bundle recorded and sent again once its ids left the seen set (10 minutes,
//! or 100 000 newer ids) is old below its node's floor: not shown, not passed on, and no
//! reason to close the connection it came on. A node that never saw it still takes it (a new
//! peer handed kept announcements in its welcome).

use super::net::*;

/// Past the seen set's age, with room for the ticks that step up to it.
const PAST_SEEN: Duration = Duration::from_secs(11 * 60);

/// `node`'s `HERE`, as number `seq`.
fn here(node: &FakeNode, seq: u64) -> Frame {
    Frame::Here {
        id: node.id(seq),
        member: node.member(),
        nick: node.nick.clone(),
        addr: None,
        key: Some(node.node_key()),
    }
}

/// `node`'s nick change from `old` to `new`, as number `seq`.
fn nick(node: &FakeNode, seq: u64, old: &str, new: &str) -> Frame {
    Frame::Nick {
        id: node.id(seq),
        member: node.member(),
        old: old.into(),
        nick: new.into(),
    }
}

/// A chat with fake peers on connections 3, 4, ... in the order given.
fn chat_with(peers: &[&FakeNode], now: Instant) -> Chat {
    let mut chat = Chat::new(solo("alice", Some(5000)), now);
    for (i, p) in peers.iter().enumerate() {
        let link = accepted(SocketAddr::from(([10, 0, 0, 9], 41000 + i as u16)));
        p.connect(&mut chat, 3 + i, link, now);
    }
    drain(&mut chat);
    chat
}

/// Lets `total` pass from `from` in ten-second ticks while the peers on `conns` stay alive
/// (a ping each tick) and `talker` on connection 3 says `HERE` every minute from number
/// `*seq` up, as a node with peers does. Returns the time reached.
fn pass(
    chat: &mut Chat,
    conns: &[ConnId],
    talker: &FakeNode,
    seq: &mut u64,
    from: Instant,
    total: Duration,
) -> Instant {
    let step = Duration::from_secs(10);
    let mut t = from;
    while t < from + total {
        t += step;
        for &c in conns {
            chat.handle_line(c, b"PING", t);
        }
        if (t - from).as_secs() % 60 == 0 {
            *seq += 1;
            talker.send(chat, 3, vec![here(talker, *seq)], t);
        }
        chat.handle_tick(t);
        drain(chat);
    }
    t
}

/// Sends `lines` (a recorded bundle) on `conn` at `now`; what the chat did.
fn replay(chat: &mut Chat, conn: ConnId, lines: &[String], now: Instant) -> Vec<Action> {
    for l in lines {
        chat.handle_line(conn, l.as_bytes(), now);
    }
    drain(chat)
}

/// True if `actions` close or retire `conn`.
fn closes(actions: &[Action], conn: ConnId) -> bool {
    actions.iter().any(
        |a| matches!(a, Action::Close { conn: c, .. } | Action::Retire { conn: c } if *c == conn),
    )
}

/// True if `actions` pass on a bundle of `node`'s.
fn passes_on(actions: &[Action], node: NodeId) -> bool {
    actions.iter().any(|a| {
        matches!(a, Action::Broadcast { frame, .. } | Action::Send { frame, .. }
            if matches!(&**frame, Frame::Signed(b) if b.node == node))
    })
}

#[test]
fn a_message_replayed_after_the_seen_window_is_not_shown_again_nor_passed_on() {
    let now = Instant::now();
    let (bob, carol) = (
        FakeNode::new("bob", 100, None),
        FakeNode::new("carol", 101, None),
    );
    let mut chat = chat_with(&[&bob, &carol], now);
    let recorded = bob.bundle(vec![bob.msg(1, "send me the file")]);
    let actions = replay(&mut chat, 3, &recorded, now);
    assert!(actions.contains(&Action::Show(Event::Message {
        from: "bob".into(),
        text: "send me the file".into()
    })));
    assert!(passes_on(&actions, bob.node()));

    let mut seq = 1;
    let t = pass(&mut chat, &[3, 4], &bob, &mut seq, now, PAST_SEEN);
    // Its id is long forgotten; carol (a replayer, or an honest neighbour with a late copy)
    // sends it again, and so does bob's own connection.
    for conn in [4, 3] {
        let actions = replay(&mut chat, conn, &recorded, t);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Show(Event::Message { .. }))),
            "shown again from {conn}: {actions:?}"
        );
        assert!(!passes_on(&actions, bob.node()), "{actions:?}");
        assert!(!closes(&actions, conn), "no forgery: {actions:?}");
    }
    // bob's next message is new as ever.
    let actions = replay(&mut chat, 3, &bob.bundle(vec![bob.msg(seq + 1, "hi")]), t);
    assert!(actions.contains(&Action::Show(Event::Message {
        from: "bob".into(),
        text: "hi".into()
    })));
}

#[test]
fn an_old_nick_change_replayed_does_not_rename_back() {
    let now = Instant::now();
    let (bob, carol) = (
        FakeNode::new("bob", 100, None),
        FakeNode::new("carol", 101, None),
    );
    let mut chat = chat_with(&[&bob, &carol], now);
    let recorded = bob.bundle(vec![nick(&bob, 1, "bob", "mallory")]);
    replay(&mut chat, 3, &recorded, now);
    replay(
        &mut chat,
        3,
        &bob.bundle(vec![nick(&bob, 2, "mallory", "bob")]),
        now,
    );
    let mut seq = 2;
    let t = pass(&mut chat, &[3, 4], &bob, &mut seq, now, PAST_SEEN);
    let actions = replay(&mut chat, 4, &recorded, t);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Show(Event::Nick { .. }))),
        "{actions:?}"
    );
    assert!(!closes(&actions, 4), "{actions:?}");
    let nicks: Vec<String> = chat.names().into_iter().map(|n| n.nick).collect();
    assert!(nicks.contains(&"bob".to_string()), "{nicks:?}");
    assert!(!nicks.contains(&"mallory".to_string()), "{nicks:?}");
}

#[test]
fn a_node_that_left_keeps_its_floor_so_its_replayed_words_stay_unsaid() {
    // bob leaves, and with it its key is forgotten; its own announcement, replayed, would
    // teach the key again, and its old message would then check out.
    let now = Instant::now();
    let (bob, carol) = (
        FakeNode::new("bob", 100, None),
        FakeNode::new("carol", 101, None),
    );
    let mut chat = chat_with(&[&carol, &bob], now);
    let announce = bob.bundle(vec![here(&bob, 1)]);
    let said = bob.bundle(vec![bob.msg(2, "send me the file")]);
    replay(&mut chat, 4, &announce, now);
    replay(&mut chat, 4, &said, now);
    let leave = Frame::Leave {
        id: bob.id(3),
        member: bob.member(),
        nick: "bob".into(),
        reason: None,
    };
    bob.send(&mut chat, 4, vec![leave], now);
    chat.handle_closed(4, None);
    drain(&mut chat);
    let mut seq = 0;
    let t = pass(&mut chat, &[3], &carol, &mut seq, now, PAST_SEEN);
    let mut actions = replay(&mut chat, 3, &announce, t);
    actions.extend(replay(&mut chat, 3, &said, t));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Show(_))),
        "{actions:?}"
    );
    assert!(!passes_on(&actions, bob.node()), "{actions:?}");
    assert!(!closes(&actions, 3), "{actions:?}");
}

#[test]
fn a_new_node_takes_old_kept_announcements_and_one_that_forgot_them_ignores_them() {
    // n1's guest joined long ago: its kept JOIN is far below n0's floor for n1, and new to n2.
    let mut net = Net::new(3);
    net.link(0, 1);
    let g = net.guest(1);
    net.guest_says(1, g, "hello");
    net.wait(PAST_SEEN);
    net.clear_shown();
    // n2 meets n1 first (welcomed with the guest's old JOIN), then hands it on to n0 in its
    // own welcome, where it is old.
    net.link(2, 1);
    net.link(2, 0);
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    assert_eq!(net.joins_of(2, "~guest-1"), 1, "{:?}", net.shown[2]);
    assert_eq!(net.joins_of(2, "n0"), 1, "{:?}", net.shown[2]);
    assert_eq!(net.joins_of(0, "~guest-1"), 0, "{:?}", net.shown[0]);
    for i in 0..3 {
        let mut nicks: Vec<String> = net.nodes[i].names().into_iter().map(|n| n.nick).collect();
        nicks.sort();
        assert_eq!(nicks, ["n0", "n1", "n2", "~guest-1"], "n{i}");
    }
    // And what the guest says now reaches everyone.
    net.guest_says(1, g, "still here");
    for i in [0, 2] {
        assert!(
            net.messages(i).iter().any(|(_, t)| t == "still here"),
            "n{i}"
        );
    }
}
