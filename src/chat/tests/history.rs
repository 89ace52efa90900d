//! History and repair: a node that joins is handed what was said before, a part of the chat
//! that was cut off gets what the other part said meanwhile, what is said with nobody connected
//! reaches the next peer; and, fed copies of history and live bundles in any order by a seeded
//! generator, a chat shows every message exactly once and hands each bundle on at most once.

use super::net::*;
use crate::chat::history::{budget, HELD_MAX};
use crate::protocol::{HistHead, Kept};
use crate::test_rng::Rng;

/// What node `node` shows of `text`: each time, as (history or late, late).
fn shown_as(net: &Net, node: usize, text: &str) -> Vec<Option<bool>> {
    net.shown[node]
        .iter()
        .filter_map(|e| match e {
            Event::Message { text: t, .. } if t == text => Some(None),
            Event::Past(p) if p.text == text => Some(Some(p.late)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_that_joins_is_handed_what_was_said_before_once_and_marked() {
    let mut net = Net::new(3);
    net.link(0, 1);
    for k in 0..3 {
        net.say(0, &format!("early {k}"));
    }
    net.tick(Duration::from_secs(1));
    // Node 2 joins through node 1, which was there for all of it.
    net.link(1, 2);
    let past: Vec<(String, String, bool)> = net.shown[2]
        .iter()
        .filter_map(|e| match e {
            Event::Past(p) => Some((p.from.clone(), p.text.clone(), p.late)),
            _ => None,
        })
        .collect();
    let want: Vec<(String, String, bool)> = (0..3)
        .map(|k| ("n0".to_string(), format!("early {k}"), false))
        .collect();
    assert_eq!(past, want, "{:?}", net.shown[2]);
    assert!(net.messages(2).is_empty(), "none of it shown as live");
    for node in 0..2 {
        assert!(
            net.shown[node].iter().all(|e| !matches!(e, Event::Past(_))),
            "node {node} had it all: {:?}",
            net.shown[node]
        );
    }
}

#[test]
fn a_split_chain_is_repaired_each_message_once_the_late_ones_marked() {
    let mut net = chain(3);
    let guest = net.guest(0);
    net.guest_says(0, guest, "guest here");
    net.say(0, "before");
    net.tick(Duration::from_secs(1));
    net.unlink(1, 2);
    net.say(0, "left side");
    net.say(1, "middle");
    // Node 2 is cut off from everyone: what it says waits.
    net.say(2, "right side");
    net.tick(Duration::from_secs(1));
    net.link(1, 2);
    net.tick(Duration::from_secs(1));
    for node in 0..3 {
        assert_eq!(shown_as(&net, node, "before").len(), usize::from(node != 0));
    }
    assert_eq!(shown_as(&net, 2, "left side"), [Some(true)]);
    assert_eq!(shown_as(&net, 2, "middle"), [Some(true)]);
    assert_eq!(shown_as(&net, 1, "right side"), [Some(true)]);
    assert_eq!(shown_as(&net, 0, "right side"), [Some(true)]);
    assert_eq!(
        shown_as(&net, 1, "left side"),
        [None],
        "live before the repair"
    );
    // Node 0's guest reads the late line too, dated, once.
    let late: Vec<&String> = net
        .screen(0, guest)
        .iter()
        .filter(|l| l.contains("right side"))
        .collect();
    assert_eq!(late.len(), 1, "{:?}", net.screen(0, guest));
    assert!(
        late[0].starts_with('[') && late[0].ends_with("] <n2> right side"),
        "{late:?}"
    );
    // After the repair the chat is live again.
    net.say(2, "after");
    assert_eq!(shown_as(&net, 0, "after"), [None]);
}

#[test]
fn what_is_typed_is_dated_when_it_is_typed_not_at_the_last_tick() {
    let mut net = Net::new(2);
    net.say(0, "first");
    // A minute passes with nothing due on node 0 (alone, no timer): no tick reaches it.
    net.now += Duration::from_secs(60);
    net.say(0, "a minute later");
    net.link(0, 1);
    let at = |text: &str| {
        net.shown[1].iter().find_map(|e| match e {
            Event::Past(p) if p.text == text => Some(p.at),
            _ => None,
        })
    };
    let (first, later) = (at("first"), at("a minute later"));
    assert_eq!(
        later.zip(first).map(|(l, f)| l.saturating_sub(f)),
        Some(60_000),
        "{:?}",
        net.shown[1]
    );
}

#[test]
fn a_node_with_no_history_kept_still_delivers_what_it_said_alone() {
    let mut cfg = config(0, 0);
    cfg.history = 0;
    let mut net = Net::new(2);
    net.nodes[0] = Chat::new(cfg, net.now);
    net.say(0, "anyone?");
    net.tick(Duration::from_secs(1));
    net.link(0, 1);
    assert_eq!(shown_as(&net, 1, "anyone?"), [Some(false)]);
    // Handed once: a second link hands nothing of it again.
    net.unlink(0, 1);
    net.link(0, 1);
    assert_eq!(shown_as(&net, 1, "anyone?").len(), 1);
    // The user, told the line waited, is told once that it went.
    let sent = Event::Info("1 line(s) said while nobody was connected are sent now".into());
    assert_eq!(net.shown[0].iter().filter(|e| **e == sent).count(), 1);
}

#[test]
fn what_guests_said_with_no_peer_is_history_and_only_the_users_own_is_held_beyond_it() {
    for history in [100, 0] {
        let mut cfg = config(0, 0);
        cfg.history = history;
        let mut net = Net::new(2);
        net.nodes[0] = Chat::new(cfg, net.now);
        let guest = net.guest(0);
        net.guest_says(0, guest, "guest alone");
        net.say(0, "user alone");
        net.tick(Duration::from_secs(1));
        // A second guest is told both, dated, though nothing was signed yet.
        let late_guest = net.guest(0);
        net.guest_says(0, late_guest, "hi");
        let told = net.screen(0, late_guest).join("\n");
        let dated = ["] <~guest-1> guest alone", "] <n0> user alone"];
        for line in dated {
            assert_eq!(told.contains(line), history > 0, "{history}: {told}");
        }
        net.link(0, 1);
        assert_eq!(shown_as(&net, 1, "user alone"), [Some(false)], "{history}");
        let guests = usize::from(history > 0);
        assert_eq!(shown_as(&net, 1, "guest alone").len(), guests, "{history}");
    }
}

/// One copy of an origin's bundle, as the generator sends it.
struct Copy {
    origin: usize,
    bundle: usize,
}

#[test]
fn whatever_order_copies_arrive_in_each_message_is_shown_once_and_only_news_is_handed_on() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed * 7919);
        let now = Instant::now();
        let mut chat = Chat::new(solo("me", Some(5000)), now);
        let peers: Vec<FakeNode> = (0..3)
            .map(|p| FakeNode::new(&format!("p{p}"), 110 + p as u8, Some(6000)))
            .collect();
        for (k, p) in peers.iter().enumerate() {
            p.connect(&mut chat, 10 + k, accepted(addr(20 + k, 7000)), now);
        }
        // Origins 0 and 1 are announced live; 2 and 3 are known only through history.
        let origins: Vec<FakeNode> = (0..4)
            .map(|o| FakeNode::new(&format!("o{o}"), 120 + o as u8, None))
            .collect();
        for o in &origins[..2] {
            o.send(&mut chat, 10, vec![o.join(1)], now);
        }
        drain(&mut chat);
        // Each origin's bundles: 1 to 3 messages each, counters after its join.
        let mut bundles: Vec<Vec<Vec<Frame>>> = Vec::new();
        let mut texts = Vec::new();
        for (o, origin) in origins.iter().enumerate() {
            let mut seq = 2;
            let mine = (0..rng.upto(4))
                .map(|_| {
                    (0..rng.upto(3))
                        .map(|_| {
                            let text = format!("o{o} m{seq}");
                            texts.push(text.clone());
                            seq += 1;
                            origin.msg(seq - 1, &text)
                        })
                        .collect()
                })
                .collect();
            bundles.push(mine);
        }
        let copies: Vec<Copy> = (0..rng.upto(60) + 10)
            .map(|_| {
                let origin = rng.below(4) as usize;
                let bundle = rng.below(bundles[origin].len() as u64) as usize;
                Copy { origin, bundle }
            })
            .collect();
        let mut actions = Vec::new();
        let mut want = HashSet::new();
        for c in &copies {
            let o = &origins[c.origin];
            let conn = 10 + rng.below(3) as usize;
            let frames: Vec<Frame> = bundles[c.origin][c.bundle].clone();
            // Live only from an announced origin (a node never relays a bundle it cannot check).
            let live = c.origin < 2 && rng.below(2) == 0;
            // A copy of history may start anywhere in its bundle (its sender kept the end).
            let from = match live {
                true => 0,
                false => frames[rng.below(frames.len() as u64) as usize]
                    .id()
                    .map_or(0, |id| id.seq),
            };
            for f in &frames {
                if let Frame::Msg { id, text, .. } = f {
                    if id.seq >= from {
                        want.insert(text.clone());
                    }
                }
            }
            if live {
                o.send(&mut chat, conn, frames, now);
            } else {
                let head = HistHead {
                    at: rng.below(1_000_000),
                    from,
                    key: o.node_key(),
                };
                chat.handle_line(conn, line_of(&Frame::HistHead(head)).as_bytes(), now);
                for line in o.bundle(frames) {
                    chat.handle_line(conn, line.as_bytes(), now);
                }
            }
            actions.extend(drain(&mut chat));
        }
        let mut times: HashMap<String, usize> = HashMap::new();
        for a in &actions {
            let text = match a {
                Action::Show(Event::Message { text, .. }) => Some(text),
                Action::Show(Event::Past(p)) => Some(&p.text),
                _ => None,
            };
            if let Some(text) = text {
                *times.entry(text.clone()).or_default() += 1;
            }
            assert!(
                !matches!(a, Action::Close { .. }),
                "seed {seed}: honest copies close nothing: {a:?}"
            );
        }
        assert_eq!(
            times.keys().cloned().collect::<HashSet<_>>(),
            want,
            "seed {seed}: every message sent is shown"
        );
        assert!(
            times.values().all(|&n| n == 1),
            "seed {seed}: each once: {times:?}"
        );
        // History is handed on only with news in it: every copy sent on to a peer carries a
        // message not handed to that peer before (no echo, no loop).
        let mut handed: HashSet<(ConnId, MsgId)> = HashSet::new();
        for a in &actions {
            if let Action::Send { conn, frame } = a {
                if let Frame::Hist(past) = &**frame {
                    let Kept { bundle, head } = &**past;
                    let mut news = false;
                    for id in bundle.frames.iter().filter_map(Frame::id) {
                        if id.seq >= head.from && handed.insert((*conn, id)) {
                            news = true;
                        }
                    }
                    assert!(news, "seed {seed}: handed on with nothing new: {head:?}");
                }
            }
        }
    }
}

#[test]
fn bad_history_closes_only_the_connection_it_came_on() {
    let now = Instant::now();
    let honest = FakeNode::new("honest", 110, Some(6000));
    let other = FakeNode::new("other", 121, None);
    let origin = FakeNode::new("origin", 120, None);
    let head = |key: NodeKey| {
        line_of(&Frame::HistHead(HistHead {
            at: 5,
            from: 0,
            key,
        }))
    };
    let mut flipped = origin.bundle(vec![origin.msg(2, "said once")]);
    flipped[1] = flipped[1].replace("said once", "said twice");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "another node's key",
            [
                vec![head(other.node_key())],
                origin.bundle(vec![origin.msg(2, "x")]),
            ]
            .concat(),
        ),
        (
            "no bundle after the head",
            vec![head(origin.node_key()), "PING".into()],
        ),
        (
            "two heads",
            vec![head(origin.node_key()), head(origin.node_key())],
        ),
        (
            "a bad signature",
            [vec![head(origin.node_key())], flipped].concat(),
        ),
        ("a bad head", vec!["HIST 1 2 3".into()]),
    ];
    for (what, lines) in cases {
        let mut chat = Chat::new(solo("me", Some(5000)), now);
        honest.connect(&mut chat, 10, accepted(addr(20, 7000)), now);
        let hostile = FakeNode::new("hostile", 111, Some(6000));
        hostile.connect(&mut chat, 11, accepted(addr(21, 7000)), now);
        drain(&mut chat);
        for line in &lines {
            chat.handle_line(11, line.as_bytes(), now);
        }
        let actions = drain(&mut chat);
        let closed: Vec<ConnId> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Close { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect();
        assert_eq!(closed, [11], "{what}: {actions:?}");
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Show(Event::Past(_)))),
            "{what}: nothing shown"
        );
        // The honest peer's history is still taken.
        chat.handle_line(10, head(origin.node_key()).as_bytes(), now);
        for line in origin.bundle(vec![origin.msg(2, "said once")]) {
            chat.handle_line(10, line.as_bytes(), now);
        }
        let shown = drain(&mut chat);
        assert!(
            shown
                .iter()
                .any(|a| matches!(a, Action::Show(Event::Past(p)) if p.text == "said once")),
            "{what}: {shown:?}"
        );
    }
}

/// `node`'s signed bundle of `said`, handed to `chat` as history on `conn`.
fn hand(chat: &mut Chat, conn: ConnId, node: &FakeNode, said: Vec<Frame>, now: Instant) {
    let head = HistHead {
        at: 5,
        from: 0,
        key: node.node_key(),
    };
    chat.handle_line(conn, line_of(&Frame::HistHead(head)).as_bytes(), now);
    for line in node.bundle(said) {
        chat.handle_line(conn, line.as_bytes(), now);
    }
}

/// Who said each message or action of history `chat` showed since it was last drained.
fn past_speakers(chat: &mut Chat) -> Vec<String> {
    drain(chat)
        .into_iter()
        .filter_map(|a| match a {
            Action::Show(Event::Past(p)) => Some(p.from),
            _ => None,
        })
        .collect()
}

#[test]
fn history_under_the_nick_of_someone_here_is_shown_with_its_tag_and_a_warning() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let bob = FakeNode::new("bob", 110, Some(6000));
    bob.connect(&mut chat, 10, accepted(addr(20, 7000)), now);
    drain(&mut chat);
    // Another key, under bob's nick (in another script), handed over by bob's link.
    let other = FakeNode::new("bоb", 120, None);
    hand(
        &mut chat,
        10,
        &other,
        vec![other.msg(2, "it is me, bob")],
        now,
    );
    let shown = past_speakers(&mut chat);
    // Tagged, and warned about: the nick's look was first seen with bob's key.
    let tag = other.member().tag();
    assert_eq!(shown, [format!("bоb{tag} (key changed!)")]);
}

#[test]
fn what_this_users_earlier_run_said_comes_back_under_their_nick_untagged() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    let bob = FakeNode::new("bob", 110, Some(6000));
    bob.connect(&mut chat, 10, accepted(addr(20, 7000)), now);
    drain(&mut chat);
    // The same key as `solo`'s, another run: this user, before a restart. And a stranger
    // under the same nick, for contrast.
    let mut earlier = FakeNode::new("me", 200, None);
    earlier.run = [201; 8];
    let stranger = FakeNode::new("me", 121, None);
    for node in [&earlier, &stranger] {
        hand(&mut chat, 10, node, vec![node.msg(2, "said before")], now);
    }
    let shown = past_speakers(&mut chat);
    let tag = stranger.member().tag();
    assert_eq!(shown, ["me".to_string(), format!("me{tag}")]);
}

#[test]
fn a_peer_handing_history_of_speakers_it_invents_is_held_to_a_budget() {
    let start = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), start);
    let hostile = FakeNode::new("hostile", 110, Some(6000));
    hostile.connect(&mut chat, 10, accepted(addr(20, 7000)), start);
    drain(&mut chat);
    // Each invented node hands one full bundle (64 messages) of history.
    let hand = |chat: &mut Chat, seed: u8, now: Instant| {
        let invented = FakeNode::new(&format!("n{seed}"), seed, None);
        let said = (1..=64)
            .map(|i| invented.msg(i, &format!("spam {i}")))
            .collect();
        hand(chat, 10, &invented, said, now);
        past_speakers(chat).len()
    };
    // A budget's burst at once, in whole bundles, and not one more...
    let limit = budget(chat.cfg.history);
    let at_once = (limit.burst / 64.0) as usize;
    let shown: Vec<usize> = (0..at_once + 3)
        .map(|k| hand(&mut chat, 120 + k as u8, start))
        .collect();
    let mut want = vec![64; at_once];
    want.extend([0, 0, 0]);
    assert_eq!(shown, want);
    // ...and what a minute brings back after: a history's worth with what was left over.
    let later = start + Duration::from_secs(60);
    let left = limit.burst - (at_once * 64) as f64 + limit.per_sec * 60.0;
    let then = (left / 64.0) as usize;
    assert!(then >= 1 && then < at_once);
    let shown: Vec<usize> = (0..then + 2)
        .map(|k| hand(&mut chat, 20 + k as u8, later))
        .collect();
    let mut want = vec![64; then];
    want.extend([0, 0]);
    assert_eq!(shown, want);
    // The link stays: a budget is no proof of malice (a repair can bring a history's worth).
    hostile.send(&mut chat, 10, vec![hostile.msg(2, "still here")], later);
    assert!(drain(&mut chat)
        .iter()
        .any(|a| matches!(a, Action::Show(Event::Message { text, .. }) if text == "still here")));
}

#[test]
fn every_line_said_alone_reaches_the_peers_whatever_the_history_budget() {
    // The user may say up to a thousand lines with nobody connected (README): they are held
    // beyond --history and handed to the first peer, which shows them all and passes them on.
    let mut net = Net::new(3);
    net.link(1, 2);
    let n = HELD_MAX / 2;
    for k in 0..n {
        net.say(0, &format!("alone {k}"));
    }
    net.tick(Duration::from_secs(1));
    net.link(0, 1);
    net.tick(Duration::from_secs(1));
    for node in 1..3 {
        let missing: Vec<usize> = (0..n)
            .filter(|k| shown_as(&net, node, &format!("alone {k}")).len() != 1)
            .collect();
        assert!(
            missing.is_empty(),
            "node {node}: {} of {n} not shown, from {:?}",
            missing.len(),
            missing.first()
        );
    }
}
