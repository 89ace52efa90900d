//! Sealed direct messages over the in-memory network: unreadable on the nodes that relay them
//! (what they show, send, hand their guests or write on the wire), shown once by the
//! recipient, sent toward a neighbour recipient alone, and a sealed text that does not open is
//! an error line, not a crash and not a closed connection.

use super::net::*;
use crate::protocol::seal;

/// Runs the network until it is quiet, as [`Net::run`] does, and returns every action node
/// `watched` took meanwhile, as its debug text and, for frames, the lines a peer and a guest
/// would be sent.
fn run_watching(net: &mut Net, watched: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..100_000 {
        let mut busy = false;
        for i in 0..net.nodes.len() {
            while let Some(action) = net.nodes[i].poll_action() {
                busy = true;
                if i == watched {
                    seen.push(format!("{action:?}"));
                    if let Action::Broadcast { frame, .. } | Action::Send { frame, .. } = &action {
                        let mut bytes = Vec::new();
                        protocol::encode_peer(frame, &mut bytes);
                        protocol::encode_guest(frame, &mut bytes);
                        protocol::encode_guest_direct(frame, &mut bytes);
                        seen.push(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
                net.apply(i, action);
            }
        }
        if !busy {
            return seen;
        }
    }
    panic!("the network never went quiet");
}

fn dm(from: &str, to: &str, text: &str) -> Event {
    Event::Dm {
        from: from.into(),
        to: to.into(),
        text: text.into(),
    }
}

#[test]
fn a_dm_through_a_relaying_node_is_unreadable_there_and_shown_once_by_its_recipient() {
    let mut net = chain(3);
    let guest = net.guest(1);
    net.clear_screen(1, guest);
    net.clear_shown();
    net.nodes[0].handle_input("/msg n2 the treasure is under the oak", net.now);
    let seen = run_watching(&mut net, 1);
    assert!(!seen.is_empty(), "n1 relayed it");
    for line in &seen {
        assert!(!line.contains("treasure"), "n1 could read: {line}");
    }
    assert!(
        !net.shown[1]
            .iter()
            .any(|e| format!("{e:?}").contains("treasure")),
        "{:?}",
        net.shown[1]
    );
    assert!(
        net.screen(1, guest).is_empty(),
        "{:?}",
        net.screen(1, guest)
    );
    assert_eq!(net.sent.get("DM"), None, "no plain DM on any link");
    assert_eq!(net.sent.get("SDM"), Some(&2));
    let want = dm("n0", "n2", "the treasure is under the oak");
    assert_eq!(net.count(2, |e| *e == want), 1);
    assert_eq!(net.count(0, |e| *e == want), 1, "echoed to its sender");
    assert_eq!(net.count(2, |e| matches!(e, Event::Error(_))), 0);
}

#[test]
fn a_dm_to_a_neighbour_goes_on_its_connection_only() {
    let mut net = star(4);
    net.clear_shown();
    let before = net.wrote.clone();
    let grew = |net: &Net, end: (usize, ConnId)| net.wrote.get(&end) != before.get(&end);
    net.say(0, "/msg n2 just us");
    assert_eq!(net.count(2, |e| *e == dm("n0", "n2", "just us")), 1);
    assert_eq!(net.sent.get("SDM"), Some(&1));
    assert!(grew(&net, (0, net.conn_of(0, 2))));
    for other in [1, 3] {
        assert!(!grew(&net, (0, net.conn_of(0, other))), "n{other}");
    }
}

#[test]
fn a_relay_passes_a_dm_on_only_toward_its_recipient_when_that_is_its_neighbour() {
    // n0 - n1, and n1 has two neighbours besides: n2 (the recipient) and n3.
    let mut net = Net::new(4);
    net.link(0, 1);
    net.link(1, 2);
    net.link(1, 3);
    net.clear_shown();
    let before = net.wrote.clone();
    net.say(0, "/msg n2 via one");
    assert_eq!(net.count(2, |e| *e == dm("n0", "n2", "via one")), 1);
    assert_eq!(net.sent.get("SDM"), Some(&2), "n0 to n1, n1 to n2");
    let end = (1, net.conn_of(1, 3));
    assert_eq!(net.wrote.get(&end), before.get(&end), "nothing for n3");
}

#[test]
fn a_dm_far_away_is_flooded_as_before() {
    // n0's only neighbour is n1; n2 is two hops away: n1 cannot tell which way, so floods.
    let mut net = Net::new(4);
    net.link(0, 1);
    net.link(1, 2);
    net.link(1, 3);
    net.link(2, 3);
    net.clear_shown();
    net.say(0, "/msg n3 round about");
    assert_eq!(net.count(3, |e| *e == dm("n0", "n3", "round about")), 1);
    for relay in [1, 2] {
        assert!(!net.shown[relay]
            .iter()
            .any(|e| format!("{e:?}").contains("round about")));
    }
}

#[test]
fn a_dm_to_a_far_guest_is_opened_by_its_host_and_a_guests_dm_sealed_by_its_host() {
    let mut net = chain(3);
    let far = net.guest(2);
    let near = net.guest(0);
    net.guest_says(2, far, "/nick cat");
    net.guest_says(0, near, "/nick dog");
    net.clear_screen(2, far);
    net.clear_screen(0, near);
    net.clear_shown();
    let seen = run_watching(&mut net, 1);
    assert!(seen.is_empty());
    net.nodes[0].handle_input("/msg cat hidden from n1", net.now);
    let mut seen = run_watching(&mut net, 1);
    net.nodes[0].handle_line(near, b"/msg cat also hidden", net.now);
    seen.extend(run_watching(&mut net, 1));
    assert!(
        seen.iter().all(|l| !l.contains("hidden")),
        "n1 could read: {seen:?}"
    );
    assert_eq!(
        net.screen(2, far),
        ["[dm] <n0> hidden from n1", "[dm] <~dog> also hidden"]
    );
    assert_eq!(net.screen(0, near), ["[dm -> ~cat] also hidden"]);
    assert_eq!(net.sent.get("DM"), None);
}

#[test]
fn a_long_dm_is_sealed_in_pieces_never_cut() {
    let mut net = chain(3);
    net.clear_shown();
    let text = "é".repeat(MAX_TEXT / 2);
    net.say(0, &format!("/msg n2 {text}"));
    let got: String = net.shown[2]
        .iter()
        .filter_map(|e| match e {
            Event::Dm { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(got, text);
    assert_eq!(
        net.sent.get("SDM"),
        Some(&(2 * MAX_TEXT.div_ceil(seal::MAX_SEALED_TEXT)))
    );
}

/// A bundle of node 1's holding one `SDM` to node 0 with these sealed bytes, delivered to n0.
fn sdm_from_n1(net: &mut Net, seq: u64, sealed: Vec<u8>) {
    let frame = signed_by(
        1,
        vec![Frame::Sdm {
            id: MsgId {
                node: node_id(1),
                seq,
            },
            from: MemberId::node(node_id(1)),
            nick: "n1".into(),
            to: MemberId::node(node_id(0)),
            sealed,
        }],
    );
    let conn = net.conn_of(1, 0);
    net.deliver(1, conn, &frame);
    net.run();
}

#[test]
fn a_signed_dm_that_does_not_open_is_an_error_line_and_the_link_stays() {
    let mut net = star(3);
    net.clear_shown();
    let id = |seq| MsgId {
        node: node_id(1),
        seq,
    };
    let (n1, n0) = (MemberId::node(node_id(1)), MemberId::node(node_id(0)));
    let to_n0 = key(0).verifying_key();
    // Garbage; a flipped bit; sealed for another id; sealed by n2's key in n1's bundle.
    sdm_from_n1(&mut net, 1001, vec![7; seal::OVERHEAD + 5]);
    let mut flipped = seal::seal(&key(1), &to_n0, id(1002), n1, n0, "flipped").unwrap();
    flipped[40] ^= 1;
    sdm_from_n1(&mut net, 1002, flipped);
    let replayed = seal::seal(&key(1), &to_n0, id(1), n1, n0, "replayed").unwrap();
    sdm_from_n1(&mut net, 1003, replayed);
    let forged = seal::seal(&key(2), &to_n0, id(1004), n1, n0, "forged").unwrap();
    sdm_from_n1(&mut net, 1004, forged);
    let errors: Vec<&Event> = net.shown[0]
        .iter()
        .filter(|e| matches!(e, Event::Error(t) if t.contains("direct message from n1")))
        .collect();
    assert_eq!(errors.len(), 4, "{:?}", net.shown[0]);
    assert_eq!(net.count(0, |e| matches!(e, Event::Dm { .. })), 0);
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    // The honest one after them is shown.
    let honest = seal::seal(&key(1), &to_n0, id(1005), n1, n0, "honest").unwrap();
    sdm_from_n1(&mut net, 1005, honest);
    assert_eq!(net.count(0, |e| *e == dm("n1", "n0", "honest")), 1);
}

#[test]
fn a_plain_dm_between_nodes_is_a_malformed_bundle() {
    let mut net = star(3);
    net.clear_shown();
    let (here, there) = (net.conn_of(0, 1), net.conn_of(1, 0));
    let frame = signed_by(
        1,
        vec![Frame::Dm {
            id: MsgId {
                node: node_id(1),
                seq: 77,
            },
            from: MemberId::node(node_id(1)),
            nick: "n1".into(),
            to: MemberId::node(node_id(0)),
            text: "in the clear".into(),
        }],
    );
    net.deliver(1, there, &frame);
    net.run();
    assert_eq!(net.count(0, |e| matches!(e, Event::Dm { .. })), 0);
    assert!(
        net.closed
            .iter()
            .any(|(n, c, r)| (*n, *c) == (0, here) && r.contains("plain DM")),
        "{:?}",
        net.closed
    );
}
