//! What this node knows of every other node that originates frames: its public key (to check
//! its bundles), the highest message counter seen from it and when (fresh evidence that it is
//! here), and whether another node claimed to have lost it (a suspicion that fresh evidence
//! clears, and that removes it only when its time is up).
//!
//! Owns that table, bounded by [`MAX_ORIGINS`]. Must not queue actions or touch the roster:
//! the relay decides what a claim or a key means for the chat.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use crate::protocol::{NodeId, NodeKey};

/// Nodes whose keys are kept at most (as many as members the roster keeps).
pub(super) const MAX_ORIGINS: usize = 100_000;

/// How long a claim that a node was lost waits for fresh evidence before it is believed.
pub(super) const SUSPECT_WAIT: Duration = Duration::from_secs(4);

/// How often a node says it is here (a `HERE`) while it has peers, and how long a node that
/// says nothing is kept: nodes nobody hears from any more go, whoever announced them.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(60);
pub(super) const SILENT_MAX: Duration = Duration::from_secs(180);

/// One origin node.
#[derive(Debug)]
struct Origin {
    /// Its key and run: the run is kept to hand its bundles on as history (`HIST`), which
    /// names both so that a node that never heard of it can check them.
    key: NodeKey,
    /// The highest message counter seen from it.
    seq: u64,
    heard: Instant,
    suspect: Option<Suspect>,
}

/// Another node claimed to have lost this one.
#[derive(Debug, Clone)]
pub(super) struct Suspect {
    /// The counter seen when the claim came: anything above it is fresh.
    pub(super) seq: u64,
    pub(super) reason: Option<String>,
}

/// What the claim about a node leads to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// Suspected from now: judge it at the deadline.
    Suspected,
    /// Already suspected, or unknown here: nothing new.
    Nothing,
}

/// Every origin node known, by node id.
#[derive(Debug, Default)]
pub(super) struct Origins {
    nodes: HashMap<NodeId, Origin>,
}

impl Origins {
    /// The key of `node`, if known.
    pub(super) fn key(&self, node: NodeId) -> Option<&VerifyingKey> {
        self.nodes.get(&node).map(|o| &o.key.key)
    }

    /// The key and run of `node`, if known.
    pub(super) fn node_key(&self, node: NodeId) -> Option<NodeKey> {
        self.nodes.get(&node).map(|o| o.key)
    }

    /// Learns `node`'s key (its id was checked against it). False when the table is full.
    pub(super) fn learn(&mut self, node: NodeId, key: NodeKey, now: Instant) -> bool {
        if self.nodes.len() >= MAX_ORIGINS && !self.nodes.contains_key(&node) {
            return false;
        }
        self.nodes.entry(node).or_insert(Origin {
            key,
            seq: 0,
            heard: now,
            suspect: None,
        });
        true
    }

    /// A checked bundle from `node` up to counter `seq` came at `now`. True if it cleared a
    /// suspicion (it is fresh evidence the node is here).
    pub(super) fn heard(&mut self, node: NodeId, seq: u64, now: Instant) -> bool {
        let Some(o) = self.nodes.get_mut(&node) else {
            return false;
        };
        o.heard = now;
        let cleared = o.suspect.as_ref().is_some_and(|s| seq > s.seq);
        if cleared {
            o.suspect = None;
        }
        o.seq = o.seq.max(seq);
        cleared
    }

    /// True if a frame with counter `seq` from `node` is newer than anything seen from it.
    pub(super) fn is_fresh(&self, node: NodeId, seq: u64) -> bool {
        self.nodes.get(&node).is_none_or(|o| seq > o.seq)
    }

    /// Someone claims to have lost `node`.
    pub(super) fn claim(&mut self, node: NodeId, reason: Option<String>) -> Claim {
        match self.nodes.get_mut(&node) {
            Some(o) if o.suspect.is_none() => {
                o.suspect = Some(Suspect { seq: o.seq, reason });
                Claim::Suspected
            }
            _ => Claim::Nothing,
        }
    }

    /// The nodes under suspicion, in node order.
    pub(super) fn suspected(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, o)| o.suspect.is_some())
            .map(|(&n, _)| n)
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// The suspicion on `node`, taken away: `Some` if nothing fresh came since the claim.
    pub(super) fn judge(&mut self, node: NodeId) -> Option<Suspect> {
        self.nodes.get_mut(&node)?.suspect.take()
    }

    /// Clears a suspicion (a direct connection to it is fresh evidence).
    pub(super) fn clear(&mut self, node: NodeId) {
        if let Some(o) = self.nodes.get_mut(&node) {
            o.suspect = None;
        }
    }

    /// Nodes not heard from since `before`.
    pub(super) fn silent_since(&self, before: Instant) -> Vec<NodeId> {
        let mut quiet: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, o)| o.heard < before)
            .map(|(&n, _)| n)
            .collect();
        quiet.sort_unstable();
        quiet
    }

    /// Marks `node` heard now without a frame (a live direct connection to it).
    pub(super) fn touch(&mut self, node: NodeId, now: Instant) {
        if let Some(o) = self.nodes.get_mut(&node) {
            o.heard = now;
        }
    }

    /// Forgets `node` (it left for good, or went silent): its key too, so the table stays
    /// bounded by the nodes here.
    pub(super) fn forget(&mut self, node: NodeId) {
        self.nodes.remove(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> NodeKey {
        NodeKey {
            key: SigningKey::from_bytes(&[seed; 32]).verifying_key(),
            run: [seed; 8],
        }
    }

    #[test]
    fn a_claim_is_cleared_only_by_a_newer_counter() {
        let now = Instant::now();
        let mut o = Origins::default();
        assert!(o.learn(7, key(1), now));
        o.heard(7, 10, now);
        assert_eq!(o.claim(7, Some("reset".into())), Claim::Suspected);
        assert_eq!(o.claim(7, None), Claim::Nothing, "one suspicion at a time");
        // A replayed old frame is no evidence.
        assert!(!o.heard(7, 10, now));
        assert!(o.heard(7, 11, now));
        assert!(o.judge(7).is_none(), "cleared");
        assert_eq!(o.claim(7, None), Claim::Suspected);
        assert_eq!(o.judge(7).map(|s| s.seq), Some(11));
    }

    #[test]
    fn claims_about_unknown_nodes_do_nothing_and_freshness_is_per_node() {
        let now = Instant::now();
        let mut o = Origins::default();
        assert_eq!(o.claim(9, None), Claim::Nothing);
        assert!(o.is_fresh(9, 1));
        o.learn(9, key(2), now);
        o.heard(9, 5, now);
        assert!(!o.is_fresh(9, 5));
        assert!(o.is_fresh(9, 6));
    }

    #[test]
    fn silent_nodes_are_found_and_forgotten() {
        let now = Instant::now();
        let mut o = Origins::default();
        o.learn(1, key(1), now);
        o.learn(2, key(2), now + SILENT_MAX);
        assert_eq!(o.silent_since(now + Duration::from_secs(1)), vec![1]);
        o.forget(1);
        assert!(o.key(1).is_none());
        assert!(o.key(2).is_some());
    }
}
