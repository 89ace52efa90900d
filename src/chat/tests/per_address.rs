//! Guests per source address, as the chat applies it: at most `--max-guests-per-ip` at once,
//! one more turned away unseen (peers and the user's own dials not counted), and one budget
//! of lines shared by every guest from an address, kept when they reconnect.

use super::net::*;
use crate::chat::{RateLimit, DEFAULT_MAX_GUESTS_PER_IP};

/// What a guest turned away by the default limit reads last.
fn too_many() -> String {
    format!("* too many guests from your address ({DEFAULT_MAX_GUESTS_PER_IP}); try again later")
}

/// How many times node `i`'s user was shown a guest refused.
fn refusal_notices(net: &Net, i: usize) -> usize {
    net.count(
        i,
        |e| matches!(e, Event::Info(t) if t.starts_with("too many guests from ")),
    )
}

/// A connection from `link`'s address to node 0 that will be a guest (as [`Net::guest`], from
/// an address of the test's choosing).
fn guest_from(net: &mut Net, link: Link) -> ConnId {
    let conn = net.next_conn;
    net.next_conn += 1;
    net.guests.insert((0, conn), (Vec::new(), true));
    open(&mut net.nodes[0], conn, link, net.now);
    conn
}

#[test]
fn a_ninth_guest_from_one_address_is_told_and_closed_and_nobody_sees_it() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let eight: Vec<ConnId> = (0..DEFAULT_MAX_GUESTS_PER_IP)
        .map(|_| net.guest(0))
        .collect();
    for (k, &g) in eight.iter().enumerate() {
        net.guest_says(0, g, &format!("hi from {k}"));
    }
    let ninth = net.guest(0);
    net.guest_says(0, ninth, "let me in");
    assert_eq!(net.screen(0, ninth).last(), Some(&too_many()));
    assert!(!net.guest_open(0, ninth));
    // A silent one is turned away too once its hello wait is over; the user is told once.
    let tenth = net.guest(0);
    net.tick(HELLO_WAIT);
    assert_eq!(net.screen(0, tenth).last(), Some(&too_many()));
    assert!(!net.guest_open(0, tenth));
    assert_eq!(refusal_notices(&net, 0), 1, "{:#?}", net.shown[0]);
    for i in 0..2 {
        assert_eq!(net.joins_of(i, "~guest-9"), 0);
        assert_eq!(net.joins_of(i, "~guest-10"), 0);
        assert_eq!(net.count(i, |e| matches!(e, Event::Leave { .. })), 0);
        assert_eq!(net.messages(i).len(), 8, "node {i}");
    }
    assert!(
        net.screen(0, eight[7])
            .iter()
            .all(|l| !l.contains("guest-9")),
        "{:#?}",
        net.screen(0, eight[7])
    );
    // One leaves: room for one more, numbered as if nobody had been turned away.
    net.guest_says(0, eight[0], "/quit");
    let next = net.guest(0);
    net.guest_says(0, next, "in at last");
    assert_eq!(
        net.messages(1).last(),
        Some(&("~guest-9".to_string(), "in at last".to_string()))
    );
}

#[test]
fn peers_and_the_users_own_dials_are_not_held_to_the_guest_limit() {
    let mut net = Net::new(3);
    net.nodes[0].cfg.max_guests_per_ip = Some(1);
    // A guest from node 2's address fills that address...
    let first = guest_from(&mut net, accepted(addr(2, 40000)));
    net.guest_says(0, first, "first");
    // ...and node 2, a peer from there, still joins; so does node 1 from another.
    net.link(0, 2);
    net.link(0, 1);
    assert_eq!((net.joins_of(0, "n2"), net.joins_of(0, "n1")), (1, 1));
    // A connection the user dialled there that turns out to be a person is kept.
    let dialled = Link {
        origin: Origin::Dialled,
        ..accepted(addr(2, 5000))
    };
    let nc = guest_from(&mut net, dialled);
    net.guest_says(0, nc, "nc -l here");
    assert!(net.guest_open(0, nc));
    // Another guest from there is one too many.
    let second = guest_from(&mut net, accepted(addr(2, 40001)));
    net.guest_says(0, second, "second");
    assert!(!net.guest_open(0, second));
    assert_eq!(
        net.screen(0, second).last().map(String::as_str),
        Some("* too many guests from your address (1); try again later")
    );
    let senders: Vec<String> = net.messages(0).into_iter().map(|(from, _)| from).collect();
    assert_eq!(senders, ["~guest-1", "~guest-2"]);
    assert_eq!(net.joins_of(1, "~guest-3"), 0);
}

#[test]
fn no_limit_on_guests_per_address_when_turned_off() {
    let mut net = Net::new(1);
    net.nodes[0].cfg.max_guests_per_ip = None;
    for _ in 0..50 {
        let g = net.guest(0);
        net.guest_says(0, g, "hi");
    }
    assert_eq!(net.messages(0).len(), 50);
    assert_eq!(refusal_notices(&net, 0), 0);
}

#[test]
fn guests_from_one_address_share_one_budget_of_lines() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let limit = RateLimit::per_second(1);
    net.nodes[0].cfg.guest_rate = Some(limit);
    net.nodes[0].cfg.max_guests_per_ip = None;
    let guests: Vec<ConnId> = (0..20).map(|_| net.guest(0)).collect();
    for &g in &guests {
        for k in 0..limit.burst as usize {
            net.guest_says(0, g, &format!("line {k}"));
        }
    }
    // Twenty guests from one address, each within its own burst: one burst between them.
    assert_eq!(net.messages(1).len(), limit.burst as usize);
    // Each held back is told, as a flooding guest is.
    for &g in &guests[1..] {
        let told = net
            .screen(0, g)
            .iter()
            .filter(|l| l.starts_with("peerchat: slow down: "));
        assert_eq!(told.count(), 1, "{:#?}", net.screen(0, g));
    }
    // A guest from another address is not held to it.
    let other = guest_from(&mut net, accepted(addr(201, 40000)));
    net.guest_says(0, other, "from elsewhere");
    assert_eq!(net.messages(1).len(), limit.burst as usize + 1);
    // A second later, one line's worth comes back for the address, whoever sends it.
    net.tick(Duration::from_secs(1));
    for &g in &guests {
        net.guest_says(0, g, "a second later");
    }
    assert_eq!(net.messages(1).len(), limit.burst as usize + 2);
}

#[test]
fn a_guest_that_reconnects_at_once_does_not_get_a_fresh_burst() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let limit = RateLimit::per_second(1);
    net.nodes[0].cfg.guest_rate = Some(limit);
    let burst = limit.burst as usize;
    for round in 0..5 {
        let g = net.guest(0);
        for k in 0..burst {
            net.guest_says(0, g, &format!("round {round} line {k}"));
        }
        net.nodes[0].handle_closed(g, None);
        net.run();
    }
    // The burst, less the first join; the next guests found the budget spent and were
    // refused before they joined: nobody saw them come or go.
    assert_eq!(net.messages(1).len(), burst - 1);
    assert_eq!(net.joins_of(1, "~guest-1"), 1);
    assert_eq!(guest_joins(&net, 1), 1);
}

/// How many joins of guests node `i` showed.
fn guest_joins(net: &Net, i: usize) -> usize {
    net.count(
        i,
        |e| matches!(e, Event::Join { nick, .. } if nick.starts_with('~')),
    )
}

/// Coming and going is speech too: a guest reconnecting in a loop was held to its lines but
/// put a join and a leave on every screen each time. Each join costs its address a line.
#[test]
fn guests_that_come_and_go_in_a_loop_are_held_to_their_addresss_budget() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let limit = RateLimit::per_second(1);
    net.nodes[0].cfg.guest_rate = Some(limit);
    let mut refused = 0;
    for _ in 0..100 {
        let g = net.guest(0);
        net.guest_says(0, g, "hi");
        if net.screen(0, g).iter().any(|l| {
            l == "* your address is past its flood limit (lines and joins); try again later"
        }) {
            refused += 1;
        }
        net.nodes[0].handle_closed(g, None);
        net.run();
    }
    // Ten lines' worth: five joins with a line each; the other 95 were refused unseen.
    let joins = guest_joins(&net, 1);
    assert_eq!(joins, limit.burst as usize / 2, "{:?}", net.shown[1]);
    assert_eq!(refused, 100 - joins);
    // A second later, the address may come again.
    net.tick(Duration::from_secs(2));
    let g = net.guest(0);
    net.guest_says(0, g, "back");
    assert_eq!(net.messages(1).last().map(|m| m.1.as_str()), Some("back"));
}

#[test]
fn a_refused_connection_is_forgotten_at_once() {
    let now = Instant::now();
    let mut cfg = solo("hub", Some(5000));
    cfg.max_guests_per_ip = Some(1);
    let mut chat = Chat::new(cfg, now);
    let from = |port| accepted(SocketAddr::from(([127, 0, 0, 1], port)));
    open(&mut chat, 7, from(4000), now);
    open(&mut chat, 8, from(4001), now);
    chat.handle_line(7, b"in", now);
    drain(&mut chat);
    chat.handle_line(8, b"me too", now);
    let said = Action::Tell {
        conn: 8,
        text: "* too many guests from your address (1); try again later".into(),
    };
    // Its text is released as a guest's would be, then it is told, then closed.
    let refused = drain(&mut chat);
    let to_8: Vec<&Action> = refused
        .iter()
        .filter(|a| !matches!(a, Action::Show(_)))
        .collect();
    let classify = Action::Classify {
        conn: 8,
        role: Role::Guest,
    };
    assert_eq!(to_8, [&classify, &said, &Action::Retire { conn: 8 }]);
    // What it sends before the close lands, and its hello wait, are nothing now.
    chat.handle_line(8, b"let me in", now);
    chat.handle_tick(now + HELLO_WAIT);
    chat.handle_closed(8, None);
    assert_eq!(drain(&mut chat), []);
}
