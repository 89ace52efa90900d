use super::*;
use crate::protocol::testing::{node_key, signing_key};
use crate::protocol::MsgId;

/// A bundle of `n` messages from test node `seed`, counters from `seq`, dated `at`.
fn past(seed: u8, seq: u64, n: usize, at: u64) -> Rc<Kept> {
    let key = node_key(seed);
    let node = key.node();
    let frames = (0..n as u64)
        .map(|i| Frame::Msg {
            id: MsgId { node, seq: seq + i },
            from: MemberId::node(node),
            nick: "a".into(),
            text: format!("m{}", seq + i),
        })
        .collect();
    let bundle = Rc::new(Signed::seal(&signing_key(seed), node, frames));
    Rc::new(Kept {
        head: HistHead { at, from: 0, key },
        bundle,
    })
}

fn texts(h: &History) -> Vec<String> {
    h.last_said(usize::MAX)
        .into_iter()
        .map(|(_, f)| match f {
            Frame::Msg { text, .. } => text.clone(),
            _ => String::new(),
        })
        .collect()
}

#[test]
fn the_last_n_messages_are_kept() {
    let mut h = History::new(3);
    for seq in 1..=5 {
        h.keep(past(1, seq, 1, seq));
    }
    assert_eq!(texts(&h), ["m3", "m4", "m5"]);
    // A bundle of two: the one before it is kept while the rest hold fewer than three.
    h.keep(past(1, 6, 2, 6));
    assert_eq!(texts(&h), ["m5", "m6", "m7"]);
    assert_eq!(h.last_said(2).len(), 2);
    // One bundle of five: kept whole (as signed), but only its last three are history.
    let mut h = History::new(3);
    h.keep(past(1, 1, 5, 1));
    assert_eq!(texts(&h), ["m3", "m4", "m5"]);
    assert_eq!(h.hand_over()[0].head.from, 3);
    let mut none = History::new(0);
    none.keep(past(1, 1, 1, 1));
    assert!(texts(&none).is_empty());
}

#[test]
fn bytes_bound_what_is_kept_and_a_bundle_too_big_is_not() {
    let mut h = History::new(usize::MAX);
    let one = past(1, 1, 1, 1);
    let size = one.bundle.wire.len();
    for seq in 1..=(2 * HISTORY_BYTES / size) as u64 {
        h.keep(past(1, seq, 1, seq));
    }
    assert!(h.bytes <= HISTORY_BYTES, "{}", h.bytes);
    assert!(
        h.bytes + size > HISTORY_BYTES,
        "as many as fit: {}",
        h.bytes
    );
    let key = node_key(2);
    let huge = (1..=40u64)
        .map(|seq| Frame::Msg {
            id: MsgId {
                node: key.node(),
                seq,
            },
            from: MemberId::node(key.node()),
            nick: "a".into(),
            text: "x".repeat(protocol::MAX_TEXT),
        })
        .collect();
    let huge = Rc::new(Kept {
        head: HistHead {
            at: 9,
            from: 0,
            key,
        },
        bundle: Rc::new(Signed::seal(&signing_key(2), key.node(), huge)),
    });
    assert!(huge.bundle.wire.len() > HISTORY_BYTES);
    let before = h.kept.len();
    h.keep(huge);
    assert_eq!(h.kept.len(), before);
}

#[test]
fn held_bundles_are_handed_once_and_bounded() {
    let mut h = History::new(10);
    let own = past(1, 1, 1, 1);
    h.keep(own.clone());
    h.hold(own);
    h.hold(past(1, 2, 1, 2));
    assert!(h.is_holding());
    assert_eq!(
        h.hand_over().len(),
        2,
        "the kept one once, the held one too"
    );
    assert!(!h.is_holding());
    assert_eq!(h.hand_over().len(), 1, "held ones only once");
    for seq in 0..2 * HELD_MAX as u64 {
        h.hold(past(1, seq, 1, seq));
    }
    assert_eq!(h.held.len(), HELD_MAX);
}

#[test]
fn loose_frames_are_merged_by_time_and_signed_in_groups_of_one_time() {
    let mut h = History::new(10);
    h.keep(past(1, 1, 1, 10));
    h.keep(past(1, 2, 1, 30));
    let own = |seq: u64| past(2, seq, 1, 0).bundle.frames[0].clone();
    h.loosen(20, own(1));
    h.loosen(20, own(2));
    h.loosen(40, own(3));
    assert_eq!(texts(&h), ["m1", "m1", "m2", "m2", "m3"]);
    let times: Vec<u64> = h.last_said(10).iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [10, 20, 20, 30, 40]);
    let groups: Vec<(u64, usize)> = h
        .take_loose()
        .into_iter()
        .map(|(at, f)| (at, f.len()))
        .collect();
    assert_eq!(groups, [(20, 2), (40, 1)]);
    assert!(h.take_loose().is_empty(), "taken once");
    for seq in 0..2 * MAX_BUNDLE_FRAMES as u64 {
        h.loosen(50, own(seq));
    }
    let sizes: Vec<usize> = h.take_loose().iter().map(|(_, f)| f.len()).collect();
    assert_eq!(sizes, [MAX_BUNDLE_FRAMES, MAX_BUNDLE_FRAMES]);
}

#[test]
fn each_origin_keeps_its_order_whatever_the_times() {
    // Origin 1's second bundle reached us first (another path): dated earlier.
    let all = vec![past(1, 2, 1, 10), past(2, 1, 1, 15), past(1, 1, 1, 20)];
    let order: Vec<(NodeId, u64)> = in_order(all)
        .iter()
        .map(|p| (p.bundle.node, first_seq(p)))
        .collect();
    let (a, b) = (node_key(1).node(), node_key(2).node());
    assert_eq!(order, [(a, 1), (b, 1), (a, 2)]);
}
