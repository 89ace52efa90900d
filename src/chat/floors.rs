//! Per origin node, the highest message counter this node has seen and then forgotten (its
//! floor): a frame of that node at or below it is an old one come back, however long after.
//!
//! The seen set alone forgets ids after a while, and a signed frame stays signed: without a
//! floor, anyone could record a bundle and send it again once its ids were forgotten, and it
//! would be shown again. Counters only grow within a node id, and a restarted node has a new
//! id (its run part is random), so a floor never holds back a node's new frames.
//!
//! Pure: nothing here reads the clock or knows what a frame is.

use std::collections::{HashMap, VecDeque};

use crate::protocol::NodeId;

/// Nodes whose floors are kept at most: as many as the origins table holds (under 100 bytes
/// each). Past that, the node whose floor was raised longest ago is forgotten, and its old
/// frames would pass as new again. A node still speaking has its floor raised as its ids leave
/// the seen set, so it stays; pushing out a quiet one takes ids of as many other nodes, each
/// signed by a key of its own, seen and forgotten since: more than flushing the seen set takes.
/// Kept apart from the origins table, so that a node forgotten there (it left, or went silent)
/// keeps its floor: its announcement, replayed, would teach its key again.
pub(super) const FLOORS_CAP: usize = super::origins::MAX_ORIGINS;

/// The floors of the nodes whose ids this node forgot lately.
#[derive(Debug)]
pub(super) struct Floors {
    /// Each node's floor, and the number of the raise that last set it.
    map: HashMap<NodeId, (u64, u64)>,
    /// The raises in order, to forget the node raised longest ago without a scan. A record
    /// whose number no longer matches `map` is stale (the node was raised again since).
    order: VecDeque<(NodeId, u64)>,
    /// The number the next raise gets.
    next: u64,
    cap: usize,
}

impl Floors {
    pub(super) fn new(cap: usize) -> Floors {
        Floors {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// `node`'s floor: `None` when none of its ids was forgotten here (or its floor was
    /// pushed out). Not 0: a counter of 0 is no honest node's, but it is not a replay either.
    pub(super) fn get(&self, node: NodeId) -> Option<u64> {
        self.map.get(&node).map(|&(floor, _)| floor)
    }

    /// True if counter `seq` of `node` is at or below its floor: old.
    pub(super) fn below(&self, node: NodeId, seq: u64) -> bool {
        self.get(node).is_some_and(|floor| seq <= floor)
    }

    /// Id `seq` of `node` was forgotten: its floor rises to it if below, and it becomes the
    /// node raised last.
    pub(super) fn raise(&mut self, node: NodeId, seq: u64) {
        if !self.map.contains_key(&node) {
            while self.map.len() >= self.cap {
                let Some((old, n)) = self.order.pop_front() else {
                    break;
                };
                if self.map.get(&old).is_some_and(|&(_, m)| m == n) {
                    self.map.remove(&old);
                }
            }
        }
        let floor = self.get(node).map_or(seq, |f| f.max(seq));
        let n = self.next;
        self.next += 1;
        self.map.insert(node, (floor, n));
        self.order.push_back((node, n));
        // Every raise leaves the node's earlier record stale: swept once they outnumber the
        // live ones, so `order` stays bounded at a cost spread over the raises.
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(node, n)| map.get(node).is_some_and(|&(_, m)| m == *n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_only_rises_and_is_per_node() {
        let mut f = Floors::new(10);
        assert_eq!(f.get(1), None);
        assert!(!f.below(1, 0), "no floor: even 0 is new");
        f.raise(1, 5);
        f.raise(1, 3);
        assert_eq!(
            f.get(1),
            Some(5),
            "an id forgotten out of order does not lower it"
        );
        assert!(f.below(1, 5) && f.below(1, 0) && !f.below(1, 6));
        f.raise(2, 7);
        assert_eq!((f.get(1), f.get(2)), (Some(5), Some(7)));
    }

    #[test]
    fn the_node_raised_longest_ago_goes_first_and_records_stay_bounded() {
        let mut f = Floors::new(2);
        f.raise(1, 1);
        f.raise(2, 1);
        // Node 1 raised again: node 2 is now the one raised longest ago.
        for seq in 2..1000 {
            f.raise(1, seq);
        }
        assert!(f.order.len() <= 2 * f.map.len() + 17, "{}", f.order.len());
        f.raise(3, 1);
        assert_eq!((f.get(1), f.get(2), f.get(3)), (Some(999), None, Some(1)));
        assert_eq!(f.map.len(), 2);
    }
}
