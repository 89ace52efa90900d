//! Keepalive: pings, timeouts, and checking a peer another node says it lost.

use super::net::*;

#[test]
fn a_claim_that_a_peer_we_still_reach_was_lost_is_not_believed() {
    // Protocol 2 has no PING check: a claim (`LOST`) about a node we hold a proven connection
    // to is void here at once, and nothing is sent to check it.
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let (bb, cc) = (
        FakeNode::new("bb", 100, None),
        FakeNode::new("cc", 101, None),
    );
    for (node, conn, port) in [(&bb, 3, 41000), (&cc, 4, 41001)] {
        let link = accepted(SocketAddr::from(([10, 0, 0, 9], port)));
        node.connect(&mut chat, conn, link, now);
    }
    let t = now + DEFAULT_PEER_TIMEOUT / 3;
    chat.handle_tick(t);
    drain(&mut chat);
    // cc says it lost bb; we still have bb.
    let claim = Frame::Lost {
        id: cc.id(9),
        member: bb.member(),
        nick: "bb".into(),
        reason: Some("connection reset".into()),
    };
    cc.send(&mut chat, 4, vec![claim], t);
    let actions = drain(&mut chat);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Send { conn: 3, .. } | Action::Show(_))),
        "{actions:?}"
    );
    // Passed on (bb itself answers such a claim), and never believed.
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast { except: Some(4), frame }
        if matches!(&**frame, Frame::Signed(b) if b.node == cc.node()))));
    chat.handle_line(3, b"PING", t + SUSPECT_WAIT);
    chat.handle_line(4, b"PING", t + SUSPECT_WAIT);
    chat.handle_tick(t + SUSPECT_WAIT);
    assert!(!drain(&mut chat)
        .iter()
        .any(|a| matches!(a, Action::Show(Event::Leave { .. }))));
}

#[test]
fn an_idle_peer_is_pinged_and_a_silent_one_times_out() {
    let mut net = chain(3);
    let timeout = DEFAULT_PEER_TIMEOUT;
    net.tick(timeout / 3);
    assert!(
        net.sent.get("PING").copied().unwrap_or(0) >= 2,
        "{:?}",
        net.sent
    );
    assert!(
        net.sent.get("PONG").copied().unwrap_or(0) >= 2,
        "{:?}",
        net.sent
    );
    net.tick(timeout / 3);
    net.tick(timeout / 3);
    assert!(
        net.closed.is_empty(),
        "answered pings keep links up: {:?}",
        net.closed
    );
    // The link 1-2 goes dead without a close (a cable pulled): nothing arrives any more.
    let (c1, c2) = (net.conn_of(1, 2), net.conn_of(2, 1));
    net.links.remove(&(1, c1));
    net.links.remove(&(2, c2));
    for _ in 0..4 {
        net.tick(timeout / 3);
    }
    assert!(net.shown[1].iter().any(|e| matches!(e,
        Event::Leave { nick, reason: Some(r), .. } if nick == "n2" && r == "timed out")));
    assert_eq!(net.leaves_of(0, "n2"), 1, "{:?}", net.shown[0]);
}
