//! Trust on a LAN where not everyone is friendly: a node of the test's own ([`FakePeer`])
//! tries what one hostile participant could do to the others — speak, leave or vanish for
//! someone else, take over an id, forge the reader's own id, amplify a small stimulus, flip a
//! bit while relaying — against real nodes over loopback. Also: nodes of the old protocol
//! are refused with a clear line on both sides.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use peerchat::protocol::sign;
use peerchat::protocol::{self, Frame, MemberId, MsgId, NodeKey};

use crate::fake::{key_of, rand_run, FakePeer};
use crate::util::{Node, Raw};

/// A hub (`alice`, listening) and a client (`bob`), each having seen the other join; and
/// bob's node id, as alice's roster replay tells any new peer.
fn hub_and_bob() -> (Node, Node, u16) {
    Node::pair("alice", "bob", &[])
}

/// Reads `peer`'s lines until a node called `nick` is announced (its `JOIN`, or the `HERE` a
/// roster replay carries): its member id and key.
fn learn_node(peer: &mut FakePeer, nick: &str) -> (MemberId, NodeKey) {
    loop {
        let line = peer.raw.line().expect("the hub's frames");
        let (member, n, key) = match protocol::parse_frame(&line) {
            Ok(Frame::Join {
                member,
                nick,
                key: Some(key),
                ..
            })
            | Ok(Frame::Here {
                member,
                nick,
                key: Some(key),
                ..
            }) => (member, nick, key),
            _ => continue,
        };
        if n == nick {
            return (member, key);
        }
    }
}

/// True once the connection is closed by the other end (EOF or reset), reading what is left.
fn closed(raw: &mut Raw) -> bool {
    let mut rest = Vec::new();
    match raw.stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Asserts that `node` shows no event matching `pred` for `within` (the wait a suspicion
/// takes and a margin): a deadline for something that must not happen.
fn never(node: &mut Node, within: Duration, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if node.events().iter().any(&pred) {
            panic!("{what}: {:#?}", node.events());
        }
        // Reads what came meanwhile (the marker line is never sent).
        node.send("/names");
        node.wait_event(|v| v["event"] == "names");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!node.events().iter().any(&pred), "{what}");
}

/// `alice` shows `nick` leaving because its connection was closed for `why`.
fn closed_for(alice: &mut Node, nick: &str, why: &str) {
    let gone = alice.wait_leave(nick);
    let reason = gone["reason"].as_str().unwrap_or("");
    assert!(reason.contains(why), "{gone}");
}

/// `bob` still reaches `alice`: what a forgery tried to cut was not cut.
fn still_speaks(bob: &mut Node, alice: &mut Node, text: &str) {
    bob.send(text);
    alice.wait_message("bob", text);
}

/// `peer` claims 1 024 times, each with a fresh id, in 16 bundles, that it lost `member`
/// (called `nick`); returns the bytes sent.
fn claim_lost(peer: &mut FakePeer, member: MemberId, nick: &str) -> usize {
    (0..16)
        .map(|_| {
            let claims: Vec<Frame> = (0..64)
                .map(|_| Frame::Lost {
                    id: peer.next_id(),
                    member,
                    nick: nick.into(),
                    reason: Some("connection reset".into()),
                })
                .collect();
            peer.send_signed(claims)
        })
        .sum()
}

#[test]
fn a_forged_leave_closes_the_forger_and_mutes_nobody() {
    let (mut alice, mut bob, port) = hub_and_bob();
    let mut mallory = FakePeer::connect(port, "mallory", 66);
    let (bob_id, _) = learn_node(&mut mallory, "bob");
    mallory.announce();
    alice.wait_join("mallory");
    // A leave for bob, in a bundle that claims to be bob's but is signed by mallory.
    let leave = Frame::Leave {
        id: MsgId {
            node: bob_id.node,
            seq: 4_000_000_000,
        },
        member: bob_id,
        nick: "bob".into(),
        reason: None,
    };
    let mut lines = Vec::new();
    protocol::encode(&leave, &mut lines);
    let sig = sign::sign_frames(&mallory.key, bob_id.node, &lines);
    let forged = protocol::Signed::assemble(bob_id.node, &sig, vec![leave], &lines);
    mallory.raw.send(&forged.wire);
    closed_for(&mut alice, "mallory", "bad signature");
    assert!(closed(&mut mallory.raw));
    still_speaks(&mut bob, &mut alice, "still here");
    assert!(
        !alice
            .events()
            .iter()
            .any(|v| v["event"] == "leave" && v["nick"] == "bob"),
        "{:#?}",
        alice.events()
    );
}

#[test]
fn a_node_that_speaks_for_another_in_its_own_bundle_is_closed() {
    let (mut alice, mut bob, port) = hub_and_bob();
    let mut mallory = FakePeer::connect(port, "mallory", 67);
    let (bob_id, _) = learn_node(&mut mallory, "bob");
    mallory.announce();
    alice.wait_join("mallory");
    let id = mallory.next_id();
    mallory.send_signed(vec![Frame::Msg {
        id,
        from: bob_id,
        nick: "bob".into(),
        text: "this is really bob, send me the file".into(),
    }]);
    closed_for(&mut alice, "mallory", "speaking for another");
    still_speaks(&mut bob, &mut alice, "hello");
    assert!(!alice
        .events()
        .iter()
        .any(|v| v["text"] == "this is really bob, send me the file"));
}

#[test]
fn a_hello_claiming_anothers_id_is_never_a_peer() {
    let (mut alice, mut bob, port) = hub_and_bob();
    let mut spy = FakePeer::connect(port, "spy", 68);
    let (bob_id, bob_key) = learn_node(&mut spy, "bob");
    // bob's key and run in the hello (so the id is bob's), but no way to prove them.
    let mut raw = Raw::connect(port);
    let hello = crate::fake::hello_line_with(&bob_key, "bob", bob_id.node);
    raw.send(format!("{hello}\n").as_bytes());
    let theirs = raw.line().expect("alice's hello");
    let proof = sign::sign_proof(&key_of(69), &hello, &theirs);
    raw.send(format!("PROOF {}\n", sign::to_hex(&proof.to_bytes())).as_bytes());
    // (alice's own proof may or may not be sent before she reads the bad one and closes.)
    assert!(closed(&mut raw), "the impostor's connection is closed");
    // The real bob's connection was not touched: he still reaches alice.
    bob.send("this is bob");
    alice.wait_message("bob", "this is bob");
    // An id its key does not give is not even a hello.
    let mut raw = Raw::connect(port);
    let hello = crate::fake::hello_line_with_key(&key_of(70), rand_run(), "bob", bob_id.node);
    raw.send(format!("{hello}\n").as_bytes());
    raw.line().expect("alice's hello");
    assert!(closed(&mut raw));
    assert!(!alice
        .events()
        .iter()
        .any(|v| v["event"] == "leave" && v["nick"] == "bob"));
}

#[test]
fn frames_claiming_the_readers_own_id_are_not_shown() {
    let (mut alice, _bob, port) = hub_and_bob();
    let mut mallory = FakePeer::connect(port, "mallory", 71);
    mallory.announce();
    alice.wait_join("mallory");
    let me = MemberId::node(mallory.their.node);
    let msg = Frame::Msg {
        id: MsgId {
            node: me.node,
            seq: 999_999,
        },
        from: me,
        nick: "alice".into(),
        text: "give me your password".into(),
    };
    let mut lines = Vec::new();
    protocol::encode(&msg, &mut lines);
    let sig = sign::sign_frames(&mallory.key, me.node, &lines);
    mallory
        .raw
        .send(&protocol::Signed::assemble(me.node, &sig, vec![msg], &lines).wire);
    // Frames on one connection are taken in order: once this shows, the forgery was read.
    mallory.say("marker");
    alice.wait_message("mallory", "marker");
    assert!(!alice
        .events()
        .iter()
        .any(|v| v["text"] == "give me your password"));
}

#[test]
fn a_flipped_bit_in_a_relayed_frame_closes_only_the_relaying_connection() {
    let (mut alice, mut bob, port) = hub_and_bob();
    let mut relay = FakePeer::connect(port, "relay", 72);
    relay.announce();
    alice.wait_join("relay");
    bob.send("an honest line");
    alice.wait_message("bob", "an honest line");
    // The bundle bob signed, as alice passes it on; one digit of its id changed so that it is
    // new to alice, and so checked.
    let (head, line) = loop {
        let head = relay.raw.line().expect("frames");
        if head.starts_with("SIGNED ") {
            let line = relay.raw.line().expect("its frame");
            if line.contains("an honest line") {
                break (head, line);
            }
        }
    };
    let bad = line.replacen(':', ":9", 1);
    relay.raw.send(format!("{head}\n{bad}\n").as_bytes());
    closed_for(&mut alice, "relay", "bad signature");
    still_speaks(&mut bob, &mut alice, "after");
    assert!(!alice
        .events()
        .iter()
        .any(|v| v["event"] == "leave" && v["nick"] == "bob"));
}

#[test]
fn a_claim_that_a_member_was_lost_does_not_remove_them() {
    let (mut alice, port) = Node::listener("alice", &[]);
    let mut bob = Node::client("bob", port, &[]);
    let mut carol = Node::client("carol", port, &[]);
    for n in [&mut bob, &mut carol] {
        n.wait_join("alice");
    }
    carol.wait_join("bob");
    let mut mallory = FakePeer::connect(port, "mallory", 73);
    let (bob_id, _) = learn_node(&mut mallory, "bob");
    mallory.announce();
    carol.wait_join("mallory");
    // Many claims, each a fresh id: bob answers with at most one HERE a second.
    let started = Instant::now();
    claim_lost(&mut mallory, bob_id, "bob");
    never(
        &mut carol,
        Duration::from_secs(6),
        "carol shows bob leaving on mallory's word",
        |v| v["event"] == "leave" && v["nick"] == "bob",
    );
    bob.send("still in the chat");
    carol.wait_message("bob", "still in the chat");
    // What bob sent mallory's way (through alice) in answer: HEREs only, at most one a second.
    mallory.say("end");
    alice.wait_message("mallory", "end");
    let elapsed = started.elapsed().as_secs() + 2;
    let mut heres = 0;
    mallory
        .raw
        .stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = Vec::new();
    let _ = mallory.raw.stream.read_to_end(&mut buf);
    for line in String::from_utf8_lossy(&buf).lines() {
        if let Ok(Frame::Here { member, .. }) = protocol::parse_frame(line) {
            if member == bob_id {
                heres += 1;
            }
        }
    }
    assert!(
        heres as u64 <= elapsed,
        "bob answered 1024 claims with {heres} HEREs in {elapsed} s"
    );
}

#[test]
fn a_node_of_the_old_protocol_is_refused_with_a_clear_line_on_both_sides() {
    let (mut alice, port) = Node::listener("alice", &[]);
    // It dials us.
    let mut old = Raw::connect(port);
    old.send(b"peerchat/2 hello from oldie (node=00000000000000aa listen=-)\n");
    let hello = old.line().expect("alice's hello");
    assert!(hello.starts_with("peerchat/4 hello from alice"), "{hello}");
    let told = old.line().expect("the refusal");
    assert!(
        told.contains("cannot talk to peerchat/2") && told.contains("upgrade"),
        "{told}"
    );
    assert!(closed(&mut old));
    let ev = alice.wait_event(|v| v["event"] == "error");
    assert!(
        ev["text"]
            .as_str()
            .unwrap_or("")
            .contains("it speaks peerchat/2"),
        "{ev}"
    );
    // We dial it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr").port();
    alice.send(&format!("/connect 127.0.0.1:{target}"));
    let (stream, _) = listener.accept().expect("alice dials");
    let mut old = Raw::from_stream(stream);
    old.line().expect("alice's hello");
    old.send(b"peerchat/2 hello from oldie (node=00000000000000aa listen=4000)\n");
    let told = old.line().expect("the refusal");
    assert!(told.contains("cannot talk to peerchat/2"), "{told}");
    alice.wait_event(|v| {
        v["event"] == "error" && v["text"].as_str().unwrap_or("").contains("peerchat/2")
    });
}

/// Peer-exchange reflection: connections each listing the same 64 addresses once made a node
/// open a connection per address per list (601 from 100 lists, one address 100 times). Now one
/// list starts a few dials at most, and an address is dialled at most once an interval however
/// many lists name it; the lists are still used.
#[test]
fn peers_lists_cannot_make_a_node_dial_one_address_twice_or_many_at_once() {
    const LISTS: u8 = 10;
    let (mut alice, port) = Node::listener("alice", &["--max-peers", "200"]);
    let targets: Vec<TcpListener> = (0..64)
        .map(|_| {
            let t = TcpListener::bind("127.0.0.1:0").expect("bind a target");
            t.set_nonblocking(true).expect("nonblocking");
            t
        })
        .collect();
    let list: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let addr = t.local_addr().expect("target address");
            format!("{:016x}@{addr}", 0x7700 + i)
        })
        .collect();
    let mut fakes = Vec::new();
    for i in 0..LISTS {
        let nick = format!("m{i}");
        let mut fake = FakePeer::connect(port, &nick, 80 + i);
        fake.announce();
        fake.raw
            .send(format!("PEERS {}\n", list.join(" ")).as_bytes());
        // Lines on one connection are taken in order: once this shows, the list was read.
        fake.say("listed");
        alice.wait_message(&nick, "listed");
        fakes.push(fake);
    }
    // Dials started on reading a list are in the targets' accept queues by now; a margin for
    // any that come later.
    let mut dials = [0u32; 64];
    let end = Instant::now() + Duration::from_secs(2);
    let mut kept = Vec::new();
    while Instant::now() < end {
        for (i, t) in targets.iter().enumerate() {
            while let Ok((stream, _)) = t.accept() {
                dials[i] += 1;
                kept.push(stream);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let total: u32 = dials.iter().sum();
    assert!(
        dials.iter().all(|&n| n <= 1),
        "an address dialled twice: {dials:?}"
    );
    assert!(
        total <= u32::from(LISTS) * 4,
        "{LISTS} lists started {total} dials: {dials:?}"
    );
    assert!(total > 0, "the lists were not used at all");
}

/// `node`'s `/names` list.
fn names(node: &mut Node) -> Vec<serde_json::Value> {
    node.send("/names");
    let names = node.wait_event(|v| v["event"] == "names");
    names["names"].as_array().cloned().unwrap_or_default()
}

/// Roster bloat: one node announced thousands of invented guests, with free text for their
/// addresses, and every node kept them all, also after it left. Now a node's guests are capped
/// (1 024 here), a free-text address closes the connection it came on, and a node's guests
/// leave with it.
#[test]
fn invented_guests_are_capped_per_node_and_leave_with_it() {
    let (mut alice, port) = Node::listener("alice", &[]);
    let mut mallory = FakePeer::connect(port, "mallory", 90);
    mallory.announce();
    alice.wait_join("mallory");
    let me = mallory.me();
    for chunk in 0..22u32 {
        let joins: Vec<Frame> = (1..=50)
            .map(|g| {
                let guest = chunk * 50 + g;
                Frame::Join {
                    id: mallory.next_id(),
                    member: MemberId { guest, ..me },
                    nick: format!("g{guest}"),
                    addr: Some(format!("10.0.{}.{}:4000", guest / 250, guest % 250 + 1)),
                    key: None,
                }
            })
            .collect();
        mallory.send_signed(joins);
    }
    mallory.say("all announced");
    alice.wait_message("mallory", "all announced");
    let guests = |list: &[serde_json::Value]| {
        list.iter()
            .filter(|n| n["nick"].as_str().is_some_and(|n| n.starts_with("~g")))
            .count()
    };
    assert_eq!(guests(&names(&mut alice)), 1024);

    // A guest whose address is free text: the connection it came on is closed.
    let join = Frame::Join {
        id: mallory.next_id(),
        member: MemberId { guest: 5000, ..me },
        nick: "bloat".into(),
        addr: Some("x".repeat(30_000)),
        key: None,
    };
    mallory.send_signed(vec![join]);
    assert!(closed(&mut mallory.raw), "mallory's connection is closed");
    // Gone without a goodbye: once alice gives mallory up, its guests go with it.
    alice.wait_leave("mallory");
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let left = guests(&names(&mut alice));
        if left == 0 {
            break;
        }
        assert!(Instant::now() < end, "{left} of mallory's guests stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!alice.events().iter().any(|v| v["nick"] == "~bloat"));
}

/// Amplification: 1 000 forged "alice left" frames (50 KB) once made alice announce herself and
/// her 500 guests to every peer again (11-20 MB). Now a claim that alice was lost, however often
/// made, is answered with one `HERE` a second at most, and her guests are never announced again.
#[test]
fn claims_that_a_host_was_lost_cost_it_one_here_a_second_and_never_its_guests_again() {
    const GUESTS: usize = 40;
    let (mut alice, port) = Node::listener("alice", &["--max-guests-per-ip", "0"]);
    let _guests: Vec<Raw> = (1..=GUESTS)
        .map(|i| {
            Raw::joined(
                &mut alice,
                port,
                &format!("~guest-{i}"),
                &format!("g{i} here"),
            )
        })
        .collect();
    let mut bob = Node::client("bob", port, &[]);
    bob.wait_join("alice");
    let mut mallory = FakePeer::connect(port, "mallory", 95);
    let (alice_id, _) = learn_node(&mut mallory, "alice");
    mallory.announce();
    bob.wait_join("mallory");
    // Everything alice sends before this marker (her welcome, with her guests) is read here.
    bob.send("welcome read");
    loop {
        let line = mallory.raw.line().expect("alice's frames");
        if line.ends_with("welcome read") {
            break;
        }
    }
    let started = Instant::now();
    let sent = claim_lost(&mut mallory, alice_id, "alice");
    // alice read the claims before this (one connection, in order), and answered them before
    // she passes on bob's marker.
    mallory.say("claims sent");
    bob.wait_message("mallory", "claims sent");
    bob.send("claims read");
    let (mut heres, mut joins, mut got) = (0, 0, 0);
    loop {
        let line = mallory.raw.line().expect("alice's frames");
        got += line.len() + 1;
        if line.ends_with("claims read") {
            break;
        }
        match protocol::parse_frame(&line) {
            Ok(Frame::Here { member, .. }) if member == alice_id => heres += 1,
            Ok(Frame::Join { member, .. }) if member.node == alice_id.node => joins += 1,
            _ => {}
        }
    }
    // She answers (a claim about herself undoes itself), within the rate: at once, or owed
    // until a second after her last HERE (said when mallory became her peer).
    while heres == 0 {
        let line = mallory.raw.line().expect("alice's frames");
        got += line.len() + 1;
        match protocol::parse_frame(&line) {
            Ok(Frame::Here { member, .. }) if member == alice_id => heres += 1,
            Ok(Frame::Join { member, .. }) if member.node == alice_id.node => joins += 1,
            _ => {}
        }
    }
    let elapsed = started.elapsed().as_secs() + 2;
    assert_eq!(joins, 0, "alice announced her guests again");
    assert!(heres as u64 <= elapsed, "{heres} HEREs in {elapsed} s");
    assert!(
        got * 10 < sent,
        "{sent} bytes of claims made alice send {got} bytes back"
    );
    // Nobody was cut off: bob still reaches alice.
    still_speaks(&mut bob, &mut alice, "after the claims");
}
