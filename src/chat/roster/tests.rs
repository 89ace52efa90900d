use super::*;

const ME: MemberId = MemberId {
    node: 0x0100_0000_0000_0000,
    guest: 0,
};

fn node(n: u64) -> MemberId {
    MemberId::node(n << 56)
}

#[test]
fn the_same_nick_is_shown_with_the_shortest_tag_that_tells_them_apart() {
    let mut r = Roster::new(ME, "me", false);
    r.insert(node(2), "bob", None, None);
    assert_eq!(r.display(node(2)), "bob");
    r.insert(node(3), "bob", None, None);
    assert_eq!(r.display(node(2)), "bob#0200");
    assert_eq!(r.display(node(3)), "bob#0300");
    assert_eq!(r.resolve("bob#0300"), Ok(node(3)));
    assert!(r.resolve("bob").is_err_and(|e| e.contains("ambiguous")));
    r.forget(node(2));
    assert_eq!(r.display(node(3)), "bob");
    assert_eq!(r.resolve("BOB"), Ok(node(3)));
    assert!(r
        .resolve("eve")
        .is_err_and(|e| e.contains("no one called eve")));
}

#[test]
fn removing_a_node_takes_its_guests_and_their_late_words_stay_out_while_it_is_away() {
    let now = Instant::now();
    let mut r = Roster::new(ME, "me", false);
    r.insert(node(2), "bob", Some("10.0.0.2:5000".into()), None);
    let guest = MemberId {
        node: node(2).node,
        guest: 1,
    };
    r.insert(guest, "guest-1", None, None);
    let leaves = r.remove(node(2), r.addr_of(&node(2)), Some("bye".into()));
    assert_eq!(
        leaves,
        vec![
            Event::Leave {
                nick: "bob".into(),
                addr: Some("10.0.0.2:5000".into()),
                reason: Some("bye".into())
            },
            Event::Leave {
                nick: "~guest-1".into(),
                addr: None,
                reason: Some("its node left".into())
            },
        ]
    );
    assert!(r.remove(node(2), None, None).is_empty());
    assert_eq!(r.names().len(), 1);
    // The caller marks the node lost: a late message of the guest's is not taken...
    r.mark_lost(node(2), now);
    assert!(!r.note(guest, "guest-1", now));
    // ...until its node is back, and with it the guest when it speaks.
    r.mark_back(&node(2));
    assert!(r.note(guest, "guest-1", now));
    assert_eq!(r.display(guest), "~guest-1");
}

#[test]
fn a_nick_change_past_the_cap_keeps_the_old_nick() {
    let mut r = Roster::new(ME, "me", false);
    for i in 0..MAX_SAME_NICK as u64 {
        assert!(r.insert(
            MemberId {
                node: 7,
                guest: 1 + i as u32
            },
            "eve",
            None,
            None
        ));
    }
    assert!(!r.insert(node(2), "eve", None, None));
    r.insert(node(2), "bob", None, None);
    r.update(node(2), "eve", None);
    assert_eq!(r.display(node(2)), "bob");
    assert_eq!(r.same_nick("eve"), MAX_SAME_NICK);
}

#[test]
fn a_nick_is_taken_by_anyone_else_in_any_case() {
    let mut r = Roster::new(ME, "me", false);
    let guest = MemberId {
        node: ME.node,
        guest: 2,
    };
    r.insert(node(2), "Bob", None, None);
    r.insert(guest, "zoe", None, None);
    assert_eq!(r.taken("bob", guest), Some(Taken::Same("Bob".into())));
    assert_eq!(r.taken("ME", guest), Some(Taken::Same("me".into())));
    assert_eq!(r.taken("zoe", guest), None, "its own nick is not taken");
    assert_eq!(r.taken("ZOE", node(2)), Some(Taken::Same("~zoe".into())));
    assert_eq!(r.taken("eve", guest), None);
    let you: Vec<bool> = r.names_as(guest).iter().map(|n| n.you).collect();
    assert_eq!(you, vec![false, false, true], "Bob, me, ~zoe");
    assert_eq!(r.len(), 3);
}

#[test]
fn a_nick_held_in_any_case_is_known_until_its_last_holder_goes() {
    let mut r = Roster::new(ME, "me", false);
    r.insert(node(2), "Guest-3", None, None);
    r.insert(node(3), "GUEST-3", None, None);
    assert!(r.holds_any_case("guest-3") && r.holds_any_case("ME"));
    r.forget(node(2));
    assert!(r.holds_any_case("guest-3"), "one holder is left");
    r.update(node(3), "bob", None);
    assert!(!r.holds_any_case("guest-3"));
    assert!(r.holds_any_case("BOB"));
}

#[test]
fn members_noted_from_messages_skip_this_node_and_those_away() {
    let now = Instant::now();
    let mut r = Roster::new(ME, "me", false);
    r.gone.insert(node(2), now);
    r.note(node(2), "bob", now);
    r.note(
        MemberId {
            node: ME.node,
            guest: 4,
        },
        "guest-4",
        now,
    );
    r.note(node(3), "cat", now);
    // A guest whose node was lost: a late message of its does not bring it back.
    r.lost.insert(node(4), now);
    r.note(guest_of(node(4).node, 1), "orphan", now);
    let nicks: Vec<String> = r.names().into_iter().map(|n| n.nick).collect();
    assert_eq!(nicks, vec!["cat", "me"]);
}

fn guest_of(node: NodeId, n: u32) -> MemberId {
    MemberId { node, guest: n }
}

#[test]
fn each_other_node_has_at_most_a_bounded_number_of_guests_on_the_roster() {
    use crate::chat::bounds::MAX_GUESTS_PER_NODE;
    let mut r = Roster::new(ME, "me", false);
    let bob = node(2).node;
    r.insert(node(2), "bob", None, None);
    let cap = MAX_GUESTS_PER_NODE as u32;
    for n in 1..=cap {
        assert!(r
            .add(guest_of(bob, n), &format!("g{n}"), None, None)
            .is_some());
    }
    assert_eq!(r.add(guest_of(bob, cap + 1), "late", None, None), None);
    assert!(!r.contains(&guest_of(bob, cap + 1)));
    assert!(r.contains(&guest_of(bob, 1)), "none known is evicted");
    assert!(r
        .add(guest_of(node(3).node, 1), "other", None, None)
        .is_some());
    // This node's own guests are bounded by --max-conns, not here.
    for n in 1..=cap + 10 {
        assert!(r
            .add(guest_of(ME.node, n), &format!("mine{n}"), None, None)
            .is_some());
    }
    // Its node leaves, and its guests with it: room again.
    assert_eq!(r.remove(node(2), None, None).len(), 1 + cap as usize);
    assert!(r.hosted(bob).is_empty());
    r.insert(node(2), "bob", None, None);
    r.mark_back(&guest_of(bob, 2));
    assert!(r.add(guest_of(bob, 2), "back", None, None).is_some());
}

#[test]
fn the_roster_stops_growing_at_its_caps_and_evicts_no_one() {
    use crate::chat::bounds::{cost, MAX_MEMBERS, MAX_ROSTER_BYTES};
    let mut r = Roster::new(ME, "me", false);
    let addr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535";
    // Wide members: 32-character nicks, most of them 4-byte characters, at the longest
    // address a node writes; learnt of without an announcement, so the welcome's cap does
    // not hold them: the member cap does, before the byte cap.
    let nick = |i: usize| format!("{i:06}{}", "\u{1d4d0}".repeat(26));
    let each = cost(&nick(0), Some(addr));
    let mut n = 0;
    while r
        .add(node_n(n), &nick(n), Some(addr.into()), None)
        .is_some()
    {
        n += 1;
    }
    assert_eq!(n, MAX_MEMBERS);
    assert_eq!(r.bounds.bytes(), cost("me", None) + n * each);
    assert!(
        r.bounds.bytes() + each <= MAX_ROSTER_BYTES,
        "the byte cap is not reached"
    );
    assert!((0..n).all(|i| r.contains(&node_n(i))), "none evicted");
    // Full for members from elsewhere, not for this node's own.
    assert!(!r.contains(&node_n(n)));
    assert!(r.add(guest_of(ME.node, 1), "guest-1", None, None).is_some());
    // One leaves: room for one.
    r.forget(node_n(0));
    assert!(r
        .add(node_n(n), &nick(n), Some(addr.into()), None)
        .is_some());
    assert!(r.add(node_n(n + 1), "late", None, None).is_none());
}

/// Node `i` of many, none of them this node.
fn node_n(i: usize) -> MemberId {
    MemberId::node(0x0200_0000_0000_0000 + i as u64)
}

#[test]
fn the_byte_count_follows_joins_nick_and_address_changes_and_leaves() {
    use crate::chat::bounds::cost;
    let mut r = Roster::new(ME, "me", false);
    let alone = r.bounds.bytes();
    assert_eq!(alone, cost("me", None));
    r.insert(node(2), "bob", None, None);
    r.insert(
        guest_of(node(2).node, 1),
        "guest-1",
        Some("10.0.0.9:40000".into()),
        None,
    );
    r.update(node(2), "bob", Some("10.0.0.2:5000".into()));
    r.update(node(2), "robert", Some("[::1]:5000".into()));
    r.update(node(2), "robert", None);
    assert_eq!(
        r.bounds.bytes(),
        alone + cost("robert", Some("[::1]:5000")) + cost("guest-1", Some("10.0.0.9:40000"))
    );
    r.remove(node(2), None, None);
    assert_eq!(r.bounds.bytes(), alone);
}

/// `frame`, signed alone as `node` (any key: the roster checks none).
fn alone(node: MemberId, frame: crate::protocol::Frame) -> Rc<Signed> {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    Rc::new(Signed::seal(&key, node.node, vec![frame]))
}

#[test]
fn kept_announcements_are_counted_until_their_member_goes() {
    use crate::chat::bounds::{cost, kept_cost, Weight};
    use crate::protocol::{Frame, MsgId};
    let mut r = Roster::new(ME, "me", false);
    let alone_me = r.bounds.bytes();
    let id = |seq| MsgId {
        node: node(2).node,
        seq,
    };
    let join = alone(
        node(2),
        Frame::Join {
            id: id(1),
            member: node(2),
            nick: "bob".into(),
            addr: None,
            key: None,
        },
    );
    assert!(r.add(node(2), "bob", None, Some(join.clone())).is_some());
    let joined = Weight::of("bob", None, [&join]);
    assert_eq!(r.bounds.bytes(), alone_me + joined.bytes);
    assert_eq!(r.bounds.wire(), join.wire.len());
    // A nick change, kept beside the announcement, and taken: both counted, at the new nick.
    let rename = alone(
        node(2),
        Frame::Nick {
            id: id(2),
            member: node(2),
            old: "bob".into(),
            nick: "robert".into(),
        },
    );
    r.keep_rename(node(2), rename.clone());
    r.update(node(2), "robert", None);
    assert_eq!(
        r.bounds.bytes(),
        alone_me + cost("robert", None) + kept_cost(&join) + kept_cost(&rename)
    );
    assert_eq!(r.bounds.wire(), join.wire.len() + rename.wire.len());
    assert_eq!(r.announcements(ME.node).len(), 2);
    // A fresh announcement replaces both.
    let here = alone(
        node(2),
        Frame::Here {
            id: id(3),
            member: node(2),
            nick: "robert".into(),
            addr: None,
            key: None,
        },
    );
    r.keep_announcement(node(2), here.clone());
    assert_eq!(r.bounds.wire(), here.wire.len());
    assert_eq!(
        r.bounds.bytes(),
        alone_me + cost("robert", None) + kept_cost(&here)
    );
    // This node's own are counted in bytes, not in the welcome's cap (other nodes').
    let mine = alone(
        ME,
        Frame::Here {
            id: MsgId {
                node: ME.node,
                seq: 1,
            },
            member: ME,
            nick: "me".into(),
            addr: None,
            key: None,
        },
    );
    r.keep_announcement(ME, mine.clone());
    assert_eq!(r.bounds.wire(), here.wire.len());
    r.forget(node(2));
    assert_eq!(r.bounds.wire(), 0);
    assert_eq!(r.bounds.others(), 0);
    assert_eq!(r.bounds.bytes(), alone_me + kept_cost(&mine));
}

fn guest(node: MemberId, n: u32) -> MemberId {
    MemberId {
        node: node.node,
        guest: n,
    }
}

#[test]
fn nicks_that_look_alike_are_shown_with_their_tags_like_the_same_nick() {
    let mut r = Roster::new(ME, "me", false);
    r.insert(node(2), "bob", None, None);
    // Cyrillic o (U+043E).
    r.insert(node(3), "b\u{43e}b", None, None);
    assert_eq!(r.display(node(2)), "bob#0200");
    assert_eq!(r.display(node(3)), "b\u{43e}b#0300");
    assert!(r.resolve("bob").is_err_and(|e| e.contains("ambiguous")));
    assert_eq!(r.resolve("b\u{43e}b#0300"), Ok(node(3)));
    r.forget(node(2));
    assert_eq!(r.display(node(3)), "b\u{43e}b");
    assert_eq!(r.resolve("bob"), Ok(node(3)), "the one that looks like it");
}

#[test]
fn a_guest_is_shown_after_a_tilde_never_like_a_node() {
    let mut r = Roster::new(ME, "me", false);
    r.insert(guest(ME, 1), "guest-1", None, None);
    r.insert(node(2), "bob", None, None);
    r.insert(guest(node(3), 4), "bob", None, None);
    assert_eq!(r.display(guest(ME, 1)), "~guest-1");
    assert_eq!(r.display(node(2)), "bob#0200");
    assert_eq!(r.display(guest(node(3), 4)), "~bob#0300.4");
    assert_eq!(r.resolve("~guest-1"), Ok(guest(ME, 1)));
    assert_eq!(r.resolve("guest-1"), Ok(guest(ME, 1)));
    let names: Vec<String> = r.names().into_iter().map(|n| n.nick).collect();
    assert_eq!(names, vec!["bob#0200", "me", "~bob#0300.4", "~guest-1"]);
}

#[test]
fn a_nick_that_looks_like_anothers_is_taken_and_says_so() {
    let mut r = Roster::new(ME, "me", false);
    let g = guest(ME, 1);
    r.insert(g, "guest-1", None, None);
    r.insert(node(2), "bob", None, None);
    assert_eq!(
        r.taken("b\u{43e}b", g),
        Some(Taken::LooksLike("bob".into()))
    );
    assert_eq!(
        Taken::LooksLike("bob".into()).to_string(),
        "it looks like bob, who is here"
    );
    assert_eq!(r.taken("B0B", g), Some(Taken::LooksLike("bob".into())));
    // The same nick is told first when both are here.
    r.insert(node(3), "b\u{43e}b", None, None);
    assert_eq!(r.taken("bob", g), Some(Taken::Same("bob#0200".into())));
    assert!(r.holds_any_case("guest-l"), "1 and l look alike");
}
