//! Finding nodes: dials and re-dials, mesh scans, refusals and `PEERS` lists.

use super::net::*;

#[test]
fn an_auto_dial_that_opens_is_no_longer_counted_as_dialling() {
    let mut net = Net::new(3);
    net.allow_dials = true;
    net.link(0, 1);
    net.link(0, 2);
    for node in 0..3 {
        assert!(!net.nodes[node].discovery.is_dialling(), "n{node}");
        assert!(!net.nodes[node].is_settling());
    }
    // n2 dialled n1 by itself (peer exchange); n1 quits and a new run comes back at the
    // same address: n2 may dial it again.
    assert!(!net.conns_between(1, 2).is_empty());
    net.say(1, "sair");
    net.crash(1);
    net.restart(1, 1);
    net.link(0, 1);
    assert_eq!(
        net.conns_between(1, 2).len(),
        1,
        "{:?} {:?} {:?}",
        net.shown[2],
        net.closed,
        net.shown[1]
    );
}

#[test]
fn mesh_scans_give_every_port_a_turn_under_the_peer_cap() {
    let (mut chat, now) = mesh_chat(5000, 5000..=5009, 2);
    let mut seen = HashSet::new();
    let mut t = now;
    for _ in 0..10 {
        chat.handle_tick(t);
        for a in drain(&mut chat) {
            if let Action::Dial(addr) = a {
                seen.insert(addr.port());
                chat.handle_dial_failed(addr, t);
            }
        }
        t += SCAN_MAX;
    }
    let want: HashSet<u16> = (5001..=5009).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_silent_auto_dial_is_tried_again_and_a_wrong_answer_is_not() {
    let (mut chat, now, other, link) = first_scan();
    open(&mut chat, 3, link, now);
    // Stopped (Ctrl-Z): the kernel accepts, the node says nothing.
    let later = now + HELLO_WAIT_DIALLED;
    chat.handle_tick(later);
    let actions = drain(&mut chat);
    assert!(actions.contains(&Action::Close {
        conn: 3,
        reason: "no hello".into()
    }));
    // Not written off: the next scan (here, the same tick) dials it again.
    assert!(actions.contains(&Action::Dial(other)), "{actions:?}");
    open(&mut chat, 4, link, later);
    chat.handle_line(4, b"SSH-2.0-OpenSSH_9.2", later);
    drain(&mut chat);
    chat.handle_tick(later + SCAN_MAX * 2);
    assert!(drain(&mut chat).is_empty());
}

#[test]
fn a_full_node_is_dialled_again_later_not_written_off() {
    let (mut chat, now, other, link) = first_scan();
    open(&mut chat, 3, link, now);
    chat.handle_line(
        3,
        b"peerchat: this chat is full (8 connections); try again later",
        now,
    );
    let actions = drain(&mut chat);
    assert_eq!(
        actions,
        vec![Action::Close {
            conn: 3,
            reason: "the chat is full".into()
        }]
    );
    // The next scan dials it again (a port that is not peerchat would not be).
    chat.handle_tick(now + SCAN_MAX * 2);
    assert!(drain(&mut chat).contains(&Action::Dial(other)));
}

#[test]
fn peers_lists_are_taken_once_and_loopback_means_the_sender() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let from: SocketAddr = "192.168.0.9:41000".parse().unwrap();
    FakeNode::new("bob", 100, Some(5000)).connect(&mut chat, 3, accepted(from), now);
    drain(&mut chat);
    chat.handle_line(3, b"PEERS 00000000000000cc@127.0.0.1:5002", now);
    assert_eq!(
        drain(&mut chat),
        vec![Action::Dial("192.168.0.9:5002".parse().unwrap())]
    );
    chat.handle_line(3, b"PEERS 00000000000000dd@10.0.0.4:5000", now);
    assert!(drain(&mut chat).is_empty());
}

#[test]
fn peer_exchange_connects_a_newcomer_to_the_rest() {
    let mut net = Net::new(4);
    net.allow_dials = true;
    net.link(0, 1);
    net.link(0, 2);
    net.link(0, 3);
    // Each newcomer was told where the hub's other peers listen and dialled them.
    for a in 0..4 {
        for b in (0..4).filter(|&b| b != a) {
            assert_eq!(net.conns_between(a, b).len(), 1, "n{a}-n{b}");
        }
    }
    joins_once_everywhere(&net);
    // Now the hub can go and the others still talk directly.
    net.crash(0);
    net.clear_shown();
    chat_all(&mut net, &[1, 2, 3], 1);
    each_live_node_sees_each_once(&net, &[1, 2, 3], 1);
}

#[test]
fn peer_exchange_stops_at_max_peers() {
    let mut net = Net::new(5);
    net.allow_dials = true;
    net.nodes[4].cfg.max_peers = 2;
    for leaf in 1..4 {
        net.link(0, leaf);
    }
    net.link(0, 4);
    let peers_of_4 = (0..4)
        .filter(|&b| !net.conns_between(4, b).is_empty())
        .count();
    assert_eq!(peers_of_4, 2);
    // The rest is reached by relay.
    net.say(3, "far away");
    assert_eq!(net.messages(4), vec![("n3".into(), "far away".into())]);
}

#[test]
fn a_dropped_peer_is_dialled_again_with_backoff() {
    let mut net = chain(2);
    net.unlink(0, 1);
    let mut dials = Vec::new();
    for _ in 0..40 {
        net.now += Duration::from_millis(500);
        for i in 0..2 {
            net.nodes[i].handle_tick(net.now);
            while let Some(a) = net.nodes[i].poll_action() {
                if let Action::Dial(to) = a {
                    dials.push((i, to, net.now));
                    net.nodes[i].handle_dial_failed(to, net.now);
                }
            }
        }
    }
    // Node 1 accepted nothing but knows where n0 listens (and n0 where n1 does).
    let of0: Vec<Instant> = dials.iter().filter(|d| d.0 == 0).map(|d| d.2).collect();
    assert!(of0.len() >= 3, "{dials:?}");
    let gaps: Vec<Duration> = of0.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "backoff grows: {gaps:?}"
    );
    assert!(dials.iter().all(|d| d.1.port() == 5000));
}

#[test]
fn mesh_mode_scans_its_range_but_not_itself() {
    let (mut chat, now) = mesh_chat(5001, 5000..=5004, DEFAULT_MAX_PEERS);
    chat.handle_tick(now);
    let dials: Vec<u16> = drain(&mut chat)
        .into_iter()
        .filter_map(|a| match a {
            Action::Dial(addr) => Some(addr.port()),
            _ => None,
        })
        .collect();
    assert_eq!(dials, vec![5000, 5002, 5003, 5004]);
    // Nothing is dialled twice while dialling; the failures are tried again later.
    chat.handle_tick(now + SCAN_FIRST);
    assert!(drain(&mut chat).is_empty());
    for port in [5000, 5002, 5003, 5004] {
        chat.handle_dial_failed(SocketAddr::from(([127, 0, 0, 1], port)), now);
    }
    chat.handle_tick(now + SCAN_FIRST + SCAN_FIRST * 2);
    assert_eq!(drain(&mut chat).len(), 4);
}

#[test]
fn something_else_on_a_scanned_port_is_not_taken_for_a_guest() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5001)), now);
    let web = SocketAddr::from(([127, 0, 0, 1], 5000));
    assert!(chat.dial(web));
    drain(&mut chat);
    open(
        &mut chat,
        3,
        Link {
            addr: web,
            local: SocketAddr::from(([127, 0, 0, 1], 40000)),
            origin: Origin::Auto(web),
        },
        now,
    );
    chat.handle_line(3, b"HTTP/1.1 400 Bad Request", now);
    let actions = drain(&mut chat);
    assert!(
        matches!(&actions[..], [Action::Close { conn: 3, .. }]),
        "{actions:?}"
    );
    assert!(chat.discovery.not_peers.contains(&web, now));
    assert!(!chat.dial(web));
}

/// The dials among `actions`.
fn dials(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial(addr) => Some(*addr),
            _ => None,
        })
        .collect()
}

#[test]
fn a_flood_of_beacons_dials_an_address_no_more_than_a_peers_list_would() {
    use crate::chat::discovery::LISTED_EVERY;
    let now = Instant::now();
    let mut cfg = solo("me", Some(5000));
    cfg.max_peers = 4;
    let me = cfg.node;
    let mut chat = Chat::new(cfg, now);
    drain(&mut chat);
    // Its own beacon, come back to it: nothing.
    chat.handle_beacon(addr(1, 5000), |n| n == me, now);
    assert!(drain(&mut chat).is_empty());
    // A stranger's, a thousand times at once: one dial.
    let mut dialled = Vec::new();
    for _ in 0..1000 {
        chat.handle_beacon(addr(2, 5000), |_| false, now);
        dialled.extend(dials(&drain(&mut chat)));
    }
    assert_eq!(dialled, vec![addr(2, 5000)]);
    // Nobody answered: heard again and again, it waits twice the interval of a silent one.
    chat.handle_dial_failed(addr(2, 5000), now);
    for s in [1, 59, 60, 119] {
        chat.handle_beacon(addr(2, 5000), |_| false, now + Duration::from_secs(s));
        assert!(dials(&drain(&mut chat)).is_empty(), "after {s} s");
    }
    let later = now + LISTED_EVERY * 2;
    chat.handle_beacon(addr(2, 5000), |_| false, later);
    assert_eq!(dials(&drain(&mut chat)), vec![addr(2, 5000)]);
    // Beacons of 200 other addresses: as many dials as the peer cap leaves room for.
    let mut many = 0;
    for i in 10..210u16 {
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 5000));
        chat.handle_beacon(from, |_| false, later);
        many += dials(&drain(&mut chat)).len();
    }
    assert_eq!(many, 3, "four at once, one of them the earlier address");
}

#[test]
fn a_peers_beacon_is_not_dialled_and_names_say_how_each_peer_was_found() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    drain(&mut chat);
    let (bob, ana) = (
        FakeNode::new("bob", 101, Some(5000)),
        FakeNode::new("ana", 102, Some(5000)),
    );
    // bob dialled this node; its beacon (from another address than its connection's) is
    // recognised by its node id.
    bob.connect(&mut chat, 1, accepted(addr(1, 40000)), now);
    drain(&mut chat);
    chat.handle_beacon(addr(1, 5000), |n| n == bob.node(), now);
    assert!(dials(&drain(&mut chat)).is_empty());
    // ana's beacon is dialled, and the dial becomes ana.
    chat.handle_beacon(addr(2, 5000), |n| n == ana.node(), now);
    assert_eq!(dials(&drain(&mut chat)), vec![addr(2, 5000)]);
    let link = Link {
        addr: addr(2, 5000),
        local: SocketAddr::from(([10, 0, 0, 250], 41000)),
        origin: Origin::Auto(addr(2, 5000)),
    };
    ana.connect(&mut chat, 2, link, now);
    drain(&mut chat);
    let found: HashMap<String, Option<&str>> = chat
        .names()
        .into_iter()
        .map(|n| (n.nick, n.found.map(crate::event::Found::as_str)))
        .collect();
    assert_eq!(found["me"], None);
    assert_eq!(found["bob"], Some("accepted"));
    assert_eq!(found["ana"], Some("beacon"));
}
