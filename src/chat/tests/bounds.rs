//! What one origin may make a node hold: guests per node on the roster, and a departed node's
//! guests leaving with it, over the in-memory network.

use super::net::*;
use crate::chat::bounds::MAX_GUESTS_PER_NODE;

/// Nicks on node `i`'s roster, sorted.
fn names(net: &Net, i: usize) -> Vec<String> {
    let mut v: Vec<String> = net.nodes[i].names().into_iter().map(|n| n.nick).collect();
    v.sort();
    v
}

/// Roster bloat: a peer announced thousands of members for one node, and every node kept and
/// passed on all of them.
#[test]
fn a_node_announcing_more_guests_than_the_cap_is_held_to_it_and_the_rest_not_passed_on() {
    let mut net = chain(3);
    net.sent.clear();
    let from0 = net.conn_of(1, 0);
    let host = node_id(0);
    let count = MAX_GUESTS_PER_NODE as u64 + 500;
    for g in 1..=count {
        let line = format!(
            "JOIN {host:016x}:{} {host:016x}.{g} g{g} 10.0.0.1:{}",
            100 + g,
            30000 + g
        );
        net.nodes[1].handle_line(from0, line.as_bytes(), net.now);
    }
    net.run();
    for i in [1, 2] {
        let guests = net.nodes[i].roster.hosted(host).len() - 1;
        assert_eq!(guests, MAX_GUESTS_PER_NODE, "n{i}");
    }
    assert_eq!(
        net.sent.get("JOIN"),
        Some(&MAX_GUESTS_PER_NODE),
        "relayed by n1"
    );
    assert!(net.closed.is_empty(), "{:?}", net.closed);
}

#[test]
fn a_departed_nodes_guests_leave_with_it_when_it_says_goodbye() {
    let mut net = chain(3);
    let g = net.guest(0);
    net.guest_says(0, g, "hi");
    assert_eq!(names(&net, 2), ["n0", "n1", "n2", "~guest-1"]);
    net.say(0, "/quit");
    for i in [1, 2] {
        assert_eq!(names(&net, i), ["n1", "n2"], "n{i}");
        assert_eq!(net.leaves_of(i, "~guest-1"), 1, "n{i}: {:?}", net.shown[i]);
    }
}

#[test]
fn a_departed_nodes_guests_leave_with_it_when_it_is_lost() {
    let mut net = chain(3);
    let g = net.guest(0);
    net.guest_says(0, g, "hi");
    assert_eq!(names(&net, 2), ["n0", "n1", "n2", "~guest-1"]);
    net.crash(0);
    for i in [1, 2] {
        assert_eq!(names(&net, i), ["n1", "n2"], "n{i}");
        assert_eq!(net.leaves_of(i, "~guest-1"), 1, "n{i}: {:?}", net.shown[i]);
    }
    // Joins for them relayed late are stale: they stay gone.
    let from2 = net.conn_of(1, 2);
    let host = node_id(0);
    let late = format!("JOIN {:016x}:7 {host:016x}.1 guest-1 -", node_id(2));
    net.nodes[1].handle_line(from2, late.as_bytes(), net.now);
    net.run();
    assert_eq!(names(&net, 1), ["n1", "n2"]);
}

/// Roster bloat: the address of a `JOIN` was free text up to the line cap, kept by every node.
#[test]
fn a_join_with_free_text_for_an_address_closes_the_connection_and_is_not_kept() {
    let mut net = chain(3);
    let from0 = net.conn_of(1, 0);
    let host = node_id(0);
    let line = format!(
        "JOIN {host:016x}:900 {host:016x}.1 eve 10.0.0.1:1{}",
        " x".repeat(30_000)
    );
    net.nodes[1].handle_line(from0, line.as_bytes(), net.now);
    net.run();
    assert!(
        net.closed
            .iter()
            .any(|(i, c, why)| (*i, *c) == (1, from0) && why.contains("bad address")),
        "{:?}",
        net.closed
    );
    for i in 0..3 {
        assert!(!names(&net, i).contains(&"eve".to_string()), "n{i}");
    }
}
