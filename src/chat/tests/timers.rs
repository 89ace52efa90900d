//! The chat's timer table: deadlines come when due (never late), cost nothing per line heard,
//! which connections are only speculative, and that a close or a quit leaves no timer behind.

use super::net::*;

/// A chat with one peer, `bob`, on connection 3, classified at `now`.
fn with_peer() -> (Chat, Instant) {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", None), now);
    FakeNode::new("bob", 100, None).connect(
        &mut chat,
        3,
        accepted("10.0.0.9:41000".parse().unwrap()),
        now,
    );
    drain(&mut chat);
    (chat, now)
}

fn pings(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Send { frame, .. } if **frame == Frame::Ping))
        .count()
}

#[test]
fn a_peer_answering_a_ping_is_pinged_again_a_third_of_the_timeout_later_not_later() {
    let (mut chat, now) = with_peer();
    let third = DEFAULT_PEER_TIMEOUT / 3;
    assert_eq!(chat.next_deadline(), Some(now + third));
    chat.handle_tick(now + third);
    assert_eq!(pings(&drain(&mut chat)), 1);
    // The answer comes a second later: the next ping is due a third of the timeout after it,
    // well before the drop the timer was set for.
    let answered = now + third + Duration::from_secs(1);
    chat.handle_line(3, b"PONG", answered);
    assert_eq!(chat.next_deadline(), Some(answered + third));
    chat.handle_tick(answered + third);
    assert_eq!(pings(&drain(&mut chat)), 1);
}

#[test]
fn lines_heard_move_no_timer_and_an_early_tick_does_nothing() {
    let (mut chat, now) = with_peer();
    let third = DEFAULT_PEER_TIMEOUT / 3;
    let mut t = now;
    for _ in 0..5 {
        t += Duration::from_secs(2);
        chat.handle_line(3, b"PING", t);
        drain(&mut chat);
    }
    // Still the first instant: early, which is harmless.
    assert_eq!(chat.next_deadline(), Some(now + third));
    chat.handle_tick(now + third);
    assert!(drain(&mut chat).is_empty(), "heard since: no ping");
    assert_eq!(chat.next_deadline(), Some(t + third));
    chat.handle_tick(t + third);
    assert_eq!(pings(&drain(&mut chat)), 1);
}

#[test]
fn a_silent_peer_times_out_exactly_at_the_timeout() {
    let (mut chat, now) = with_peer();
    chat.handle_tick(now + DEFAULT_PEER_TIMEOUT / 3);
    drain(&mut chat);
    assert_eq!(chat.next_deadline(), Some(now + DEFAULT_PEER_TIMEOUT));
    chat.handle_tick(now + DEFAULT_PEER_TIMEOUT - Duration::from_millis(1));
    assert!(drain(&mut chat).is_empty());
    chat.handle_tick(now + DEFAULT_PEER_TIMEOUT);
    assert!(drain(&mut chat).contains(&Action::Close {
        conn: 3,
        reason: "timed out".into()
    }));
    // No timer of the connection is left; protocol 2 judges the loss after SUSPECT_WAIT.
    assert_eq!(
        chat.next_deadline(),
        Some(now + DEFAULT_PEER_TIMEOUT + SUSPECT_WAIT)
    );
}

#[test]
fn a_node_that_left_does_not_wake_up_to_scan() {
    let (mut chat, now) = mesh_chat(5000, 5000..=5001, DEFAULT_MAX_PEERS);
    assert_eq!(chat.next_deadline(), Some(now));
    chat.handle_input("/quit", now);
    assert_eq!(chat.next_deadline(), None);
    chat.handle_tick(now + SCAN_MAX);
    assert!(!drain(&mut chat)
        .iter()
        .any(|a| matches!(a, Action::Dial(_))));
}

/// The chat's own rule (the reactor keeps its own, see `reactor::Entry::is_speculative`).
fn speculative(chat: &Chat, conn: ConnId) -> bool {
    chat.neighbours
        .get(conn)
        .is_some_and(crate::chat::neighbours::Neighbour::is_speculative)
}

#[test]
fn only_a_scan_connection_without_its_hello_is_speculative() {
    let (mut chat, now, _, link) = first_scan();
    open(&mut chat, 3, link, now);
    open(
        &mut chat,
        4,
        accepted("10.0.0.9:41000".parse().unwrap()),
        now,
    );
    assert!(speculative(&chat, 3));
    assert!(!speculative(&chat, 4), "accepted: perhaps a person typing");
    assert!(!speculative(&chat, 99), "unknown");
    let bob = FakeNode::new("bob", 100, Some(5001));
    let own = bob.hello_line(3);
    chat.handle_line(3, own.as_bytes(), now);
    // Its hello alone proves nothing yet (protocol 2): its proof makes it a peer.
    assert!(speculative(&chat, 3), "its key not proven yet");
    let (_, sent) = hello_on(&chat, 3);
    chat.handle_line(3, bob.proof(&own, &sent).as_bytes(), now);
    assert!(!speculative(&chat, 3), "a peer now");
}

#[test]
fn silent_connections_due_together_are_numbered_in_connection_order() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("hub", Some(5000)), now);
    for (conn, port) in [(9, 4009), (3, 4003), (5, 4005)] {
        open(
            &mut chat,
            conn,
            accepted(SocketAddr::from(([10, 0, 0, 9], port))),
            now,
        );
    }
    chat.handle_tick(now + HELLO_WAIT);
    let joins: Vec<(Option<ConnId>, String)> = drain(&mut chat)
        .into_iter()
        .filter_map(|a| match a {
            Action::Broadcast { except, frame } => match &*frame {
                Frame::Join { nick, .. } => Some((except, nick.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let want = [(3, "guest-1"), (5, "guest-2"), (9, "guest-3")];
    let want: Vec<(Option<ConnId>, String)> = want
        .iter()
        .map(|&(c, n)| (Some(c), n.to_string()))
        .collect();
    assert_eq!(joins, want);
}

#[test]
fn a_peer_lost_when_a_scan_is_due_is_looked_for_a_second_later_not_at_once() {
    let (mut chat, now, other, link) = first_scan();
    FakeNode::new("bob", 100, Some(5001)).connect(&mut chat, 3, link, now);
    chat.handle_tick(now + DEFAULT_PEER_TIMEOUT / 3);
    drain(&mut chat);
    // It never answered: dropped at a tick when the next scan is overdue too.
    let dead = now + DEFAULT_PEER_TIMEOUT + Duration::from_secs(10);
    chat.handle_tick(dead);
    let actions = drain(&mut chat);
    assert!(actions.contains(&Action::Close {
        conn: 3,
        reason: "timed out".into()
    }));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Dial(_))),
        "{actions:?}"
    );
    assert_eq!(chat.next_deadline(), Some(dead + SCAN_FIRST));
    chat.handle_tick(dead + SCAN_FIRST);
    let dials: Vec<Action> = drain(&mut chat)
        .into_iter()
        .filter(|a| matches!(a, Action::Dial(_)))
        .collect();
    assert_eq!(dials, vec![Action::Dial(other)]);
}

/// bob, a node listening on port 5001.
fn bob_listening() -> FakeNode {
    FakeNode::new("bob", 100, Some(5001))
}

#[test]
fn a_connection_id_reused_after_a_close_starts_with_only_its_hello_wait() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", None), now);
    bob_listening().connect(
        &mut chat,
        3,
        accepted("10.0.0.9:41000".parse().unwrap()),
        now,
    );
    // A connection closed before its first line leaves no hello wait behind.
    open(
        &mut chat,
        4,
        accepted("10.0.0.7:43000".parse().unwrap()),
        now,
    );
    chat.handle_closed(4, None);
    assert_eq!(chat.next_deadline(), Some(now + DEFAULT_PEER_TIMEOUT / 3));
    let t = now + DEFAULT_PEER_TIMEOUT / 3;
    chat.handle_tick(t); // pinged: its keepalive now waits for the drop
    chat.handle_closed(3, None);
    drain(&mut chat);
    // Protocol 2: none of the connection's timers is left, only the judgement of the loss
    // (then the chat's own heartbeat).
    let t = t + SUSPECT_WAIT;
    assert_eq!(chat.next_deadline(), Some(t));
    chat.handle_tick(t);
    drain(&mut chat);
    assert_eq!(chat.next_deadline(), Some(now + HEARTBEAT));
    open(&mut chat, 3, accepted("10.0.0.8:42000".parse().unwrap()), t);
    assert_eq!(chat.next_deadline(), Some(t + HELLO_WAIT));
    chat.handle_tick(t + HELLO_WAIT);
    let joined = drain(&mut chat)
        .iter()
        .any(|a| matches!(a, Action::Show(Event::Join { nick, .. }) if nick == "~guest-1"));
    assert!(joined);
    assert_eq!(
        chat.next_deadline(),
        Some(now + HEARTBEAT),
        "a guest has no deadline"
    );
}

#[test]
fn a_node_that_quits_with_a_redial_pending_neither_redials_nor_keeps_a_deadline_in_the_past() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    bob_listening().connect(
        &mut chat,
        3,
        accepted("10.0.0.9:41000".parse().unwrap()),
        now,
    );
    chat.handle_closed(3, Some("reset".into()));
    chat.handle_input("/quit", now);
    drain(&mut chat);
    let later = now + Duration::from_secs(2);
    chat.handle_tick(later);
    assert!(!drain(&mut chat)
        .iter()
        .any(|a| matches!(a, Action::Dial(_))));
    assert!(chat.next_deadline().is_none_or(|d| d > later), "would spin");
}
