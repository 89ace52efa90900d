//! Keepalive: pings, timeouts, and checking a peer another node says it lost.

use super::net::*;

#[test]
fn only_the_pong_to_the_checking_ping_confirms_a_peer() {
    let now = Instant::now();
    let mut chat = Chat::new(Config::new("me".into(), 1, Some(5000), test_key(1)), now);
    for (conn, port, node) in [(3, 41000, "bb"), (4, 41001, "cc")] {
        chat.handle_opened(conn, accepted(SocketAddr::from(([10, 0, 0, 9], port))), now);
        let hello = format!("peerchat/1 hello from {node} (node=00000000000000{node} listen=-)");
        chat.handle_line(conn, hello.as_bytes(), now);
    }
    let t = now + DEFAULT_PEER_TIMEOUT / 3;
    chat.handle_tick(t);
    drain(&mut chat);
    // cc says it lost bb; we still have bb: we ask it.
    chat.handle_line(
        4,
        b"LEAVE 00000000000000cc:9 00000000000000bb bb connection reset",
        t,
    );
    assert!(drain(&mut chat).contains(&Action::Send {
        conn: 3,
        frame: Rc::new(Frame::Ping)
    }));
    let here = |a: &Action| matches!(a, Action::Send { frame, .. } if matches!(**frame, Frame::Here { .. }));
    chat.handle_line(3, b"PONG", t);
    assert!(!drain(&mut chat).iter().any(here), "the keepalive's answer");
    chat.handle_line(3, b"PONG", t);
    assert!(drain(&mut chat).iter().any(here), "the check's answer");
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
