//! What one origin may make a node hold: guests per node on the roster, announcements in all
//! (what a new peer is handed at once), and a departed node's guests leaving with it, over the
//! in-memory network.

use super::net::*;
use crate::chat::bounds::{MAX_GUESTS_PER_NODE, MAX_KEPT_WIRE};

/// Nicks on node `i`'s roster, sorted.
fn names(net: &Net, i: usize) -> Vec<String> {
    let mut v: Vec<String> = net.nodes[i].names().into_iter().map(|n| n.nick).collect();
    v.sort();
    v
}

/// Node `to` reads `frame` on its connection `conn`, line by line, as a peer sent it (not
/// counted in `net.sent`, which then counts only what the nodes send on).
fn inject(net: &mut Net, to: usize, conn: ConnId, frame: &Frame) {
    let mut bytes = Vec::new();
    protocol::encode_peer(frame, &mut bytes);
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        net.nodes[to].handle_line(conn, line, net.now);
    }
    net.run();
}

/// Node 0's `JOIN` for its guest `g`, called `g{g}`, as number `seq`.
fn guest_join(g: u64, seq: u64) -> Frame {
    let host = node_id(0);
    Frame::Join {
        id: MsgId { node: host, seq },
        member: MemberId {
            node: host,
            guest: g as u32,
        },
        nick: format!("g{g}"),
        addr: Some(format!("10.0.0.1:{}", 30000 + g)),
        key: None,
    }
}

/// Roster bloat: a node announced thousands of guests of its own, and every node kept and
/// passed on all of them. Protocol 2: node 0 signs them itself, each alone as a node does.
#[test]
fn a_node_announcing_more_guests_than_the_cap_is_held_to_it_and_the_rest_not_passed_on() {
    let mut net = chain(3);
    net.sent.clear();
    let from0 = net.conn_of(1, 0);
    let host = node_id(0);
    let count = MAX_GUESTS_PER_NODE as u64 + 500;
    for g in 1..=count {
        inject(
            &mut net,
            1,
            from0,
            &signed_by(0, vec![guest_join(g, 100 + g)]),
        );
    }
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

/// The same in bundles of 64, one of them with the last guests that fit and the first that do
/// not: a signed bundle is passed on whole or not at all, so n1 must not pass on that one
/// (the `JOIN`s past the cap would go with it).
#[test]
fn a_bundle_with_a_join_past_the_cap_is_not_passed_on() {
    let mut net = chain(3);
    net.sent.clear();
    let from0 = net.conn_of(1, 0);
    let host = node_id(0);
    let count = MAX_GUESTS_PER_NODE as u64 + 500;
    // Guest 1 alone, then 64 a bundle: guests 962..=1025 share one.
    let mut g = 1;
    while g <= count {
        let last = if g == 1 { 1 } else { (g + 63).min(count) };
        let joins = (g..=last).map(|k| guest_join(k, 100 + k)).collect();
        inject(&mut net, 1, from0, &signed_by(0, joins));
        g = last + 1;
    }
    let at1 = net.nodes[1].roster.hosted(host);
    assert_eq!(at1.len() - 1, MAX_GUESTS_PER_NODE, "n1 holds the cap");
    let at2 = net.nodes[2].roster.hosted(host);
    let relayed = net.sent.get("JOIN").copied().unwrap_or(0);
    assert_eq!(relayed, at2.len() - 1, "n2 holds what n1 passed on");
    assert!(relayed <= MAX_GUESTS_PER_NODE, "{relayed} relayed");
    assert!(
        at2.iter().all(|(m, _)| at1.iter().any(|(k, _)| k == m)),
        "n1 passed on only guests it holds"
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
    // A second guest's bundles (its join, its line) are slow on their way to n1: held here.
    let late = net.guest(0);
    net.nodes[0].handle_line(late, b"me too", net.now);
    let mut held = Vec::new();
    while let Some(a) = net.nodes[0].poll_action() {
        match a {
            Action::Broadcast { frame, .. } if matches!(*frame, Frame::Signed(_)) => {
                held.push(frame)
            }
            a => net.apply(0, a),
        }
    }
    net.run();
    assert!(!held.is_empty());
    // Protocol 2: n0 said something after them, then crashed; its loss is believed once
    // SUSPECT_WAIT passed with nothing fresh from it.
    net.say(0, "bye");
    net.crash(0);
    net.wait(SUSPECT_WAIT);
    for i in [1, 2] {
        assert_eq!(names(&net, i), ["n1", "n2"], "n{i}");
        assert_eq!(net.leaves_of(i, "~guest-1"), 1, "n{i}: {:?}", net.shown[i]);
    }
    // The held bundles, signed by n0 before it went, reach n1 late through n2: stale (older
    // than what n1 heard from n0 last), so that guest does not join a node that is gone.
    let from2 = net.conn_of(1, 2);
    for frame in &held {
        inject(&mut net, 1, from2, frame);
    }
    assert_eq!(names(&net, 1), ["n1", "n2"]);
    assert!(net.closed.is_empty(), "{:?}", net.closed);
}

/// Roster bloat: the address of a `JOIN` was free text up to the line cap, kept by every node.
/// Protocol 2: node 0 signs the bundle itself; the address is what is refused, in one word or
/// several.
#[test]
fn a_join_with_free_text_for_an_address_closes_the_connection_and_is_not_kept() {
    for (text, why) in [
        ("x".repeat(30_000), "malformed frame: bad address"),
        (" x".repeat(30_000), "malformed frame: extra words"),
    ] {
        let mut net = chain(3);
        let from0 = net.conn_of(1, 0);
        let host = node_id(0);
        let join = format!("JOIN {host:016x}:900 {host:016x}.1 eve 10.0.0.1:1{text}");
        let sig = protocol::sign::sign_frames(&key(0), host, format!("{join}\n").as_bytes());
        let head = format!(
            "SIGNED {host:016x} 1 {}",
            protocol::sign::to_hex(&sig.to_bytes())
        );
        for line in [head, join] {
            net.nodes[1].handle_line(from0, line.as_bytes(), net.now);
        }
        net.run();
        assert!(
            net.closed
                .iter()
                .any(|(i, c, reason)| (*i, *c) == (1, from0) && reason == why),
            "{:?}",
            net.closed
        );
        for i in 0..3 {
            assert!(names(&net, i).iter().all(|n| !n.contains("eve")), "n{i}");
        }
    }
}

/// What a node writes on a new peer's connection for itself, beside the other nodes'
/// announcements it hands on: its hello, its proof, its own announcement, a fresh `HERE` and a
/// `PEERS` frame, well under this when it has no guests.
const OWN_BYTES: usize = 4 << 10;

/// Invented node `s`: node 0's key with another run. Node ids cost nothing to make.
fn invented(s: u64) -> NodeKey {
    NodeKey {
        key: key(0).verifying_key(),
        run: (0xee00_0000_0000_0000 | s).to_be_bytes(),
    }
}

/// `frame`, signed alone by node 0's key as node `node`, as a node announces each member.
fn alone_as(node: NodeId, frame: Frame) -> Frame {
    Frame::Signed(Rc::new(Signed::seal(&key(0), node, vec![frame])))
}

/// Invented node `s`'s own `JOIN` (with its key) and its guests' up to `guests`, each alone.
fn invented_joins(s: u64, guests: u32) -> Vec<Frame> {
    let nk = invented(s);
    let node = nk.node();
    let id = |seq| MsgId { node, seq };
    let mut joins = vec![alone_as(
        node,
        Frame::Join {
            id: id(1),
            member: MemberId::node(node),
            nick: format!("s{s}"),
            addr: None,
            key: Some(nk),
        },
    )];
    for g in 1..=guests {
        let join = Frame::Join {
            id: id(1 + u64::from(g)),
            member: MemberId { node, guest: g },
            nick: format!("g{s}-{g}"),
            addr: Some(format!("10.1.{}.{}:40000", g / 250, g % 250 + 1)),
            key: None,
        };
        joins.push(alone_as(node, join));
    }
    joins
}

/// A new peer's welcome: every announcement its node keeps, all queued in one turn. One hostile
/// peer announced 20 invented nodes of 1024 guests each, and every new peer was then queued
/// 4.6 MB, past the default `--max-backlog` (4 MiB), and cut off as too slow. Now the
/// announcements kept for other nodes' members stop at `MAX_KEPT_WIRE`, members past it are
/// refused, and the welcome stays under that and this node's own.
#[test]
fn invented_nodes_cannot_make_a_new_peers_welcome_overflow_its_backlog() {
    let mut net = Net::new(3);
    net.link(1, 0);
    let from0 = net.conn_of(1, 0);
    let known = net.nodes[1].roster.len();
    // 12 invented nodes with the most guests each, through one connection: 12 300 members,
    // 2.8 MB of announcements.
    let (nodes, guests) = (12, MAX_GUESTS_PER_NODE as u32);
    let mut announced = 0;
    let mut wire = 0;
    for s in 0..nodes {
        for join in invented_joins(s, guests) {
            if let Frame::Signed(b) = &join {
                wire += b.wire.len();
            }
            inject(&mut net, 1, from0, &join);
            announced += 1;
        }
    }
    assert!(wire > MAX_KEPT_WIRE + OWN_BYTES, "{wire} bytes announced");
    let held = net.nodes[1].roster.len() - known;
    assert!(
        held < announced,
        "{held} of {announced} held: the cap refused the rest"
    );
    assert!(held > 8_000, "{held} held");
    let first = invented(0).node();
    assert!(
        net.nodes[1].roster.contains(&MemberId {
            node: first,
            guest: 1
        }),
        "none known is evicted"
    );
    // A new peer, node 2, connects: it is handed node 1's announcements, under the cap and node
    // 1's own.
    net.link(1, 2);
    let to2 = net.conn_of(1, 2);
    let welcome = net.wrote[&(1, to2)];
    eprintln!("welcome to a new peer: {welcome} bytes of {wire} announced");
    assert!(
        welcome <= MAX_KEPT_WIRE + OWN_BYTES,
        "{welcome} bytes queued to the new peer"
    );
    assert!(
        welcome > MAX_KEPT_WIRE - 1024,
        "{welcome}: it has what node 1 holds"
    );
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    // Past the cap, a new member from another node is refused, and not passed on to node 2.
    net.sent.clear();
    let late = invented(99);
    inject(&mut net, 1, from0, &invented_joins(99, 0)[0]);
    assert!(!net.nodes[1].roster.contains(&MemberId::node(late.node())));
    assert_eq!(net.sent.get("JOIN"), None, "{:?}", net.sent);
    // This node's own members always fit: a guest of node 1 joins it, and is heard. (Node 2,
    // handed a full roster, may not record it: on node 2 it is another node's.)
    let g = net.guest(1);
    net.guest_says(1, g, "hi");
    assert!(names(&net, 1).contains(&"~guest-1".to_string()));
    assert!(net.messages(2).iter().any(|(_, text)| text == "hi"));
}
