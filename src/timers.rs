//! A timer table: at most one deadline per key, the earliest found without a scan.
//!
//! Both the chat (hello waits, pings, re-dials) and the reactor (connect timeouts, stalled
//! readers, accept back-off) keep their deadlines here, each with its own key type, so that a
//! loop turn costs what is due rather than a pass over every connection. Pure: the caller
//! passes `now`; nothing here reads the clock.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Deadlines by key. Setting a key again moves its deadline; keys due at the same instant come
/// out in key order, so the order of what fires never depends on hashing.
#[derive(Debug)]
pub struct Timers<K> {
    queue: BTreeSet<(Instant, K)>,
    at: HashMap<K, Instant>,
}

impl<K: Copy + Ord + Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            queue: BTreeSet::new(),
            at: HashMap::new(),
        }
    }
}

impl<K: Copy + Ord + Hash> Timers<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to fire at `at`, replacing its earlier deadline if it had one.
    pub fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.at.insert(key, at) {
            self.queue.remove(&(old, key));
        }
        self.queue.insert((at, key));
    }

    /// Sets `key` to fire at `at` unless it is set to fire earlier already.
    pub fn set_earliest(&mut self, key: K, at: Instant) {
        if self.at.get(&key).is_none_or(|&old| at < old) {
            self.set(key, at);
        }
    }

    /// Removes `key`'s deadline; returns it if there was one.
    pub fn cancel(&mut self, key: &K) -> Option<Instant> {
        let at = self.at.remove(key)?;
        self.queue.remove(&(at, *key));
        Some(at)
    }

    /// When `key` fires, if it is set.
    pub fn get(&self, key: &K) -> Option<Instant> {
        self.at.get(key).copied()
    }

    /// The earliest deadline of all.
    pub fn next(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest key due by `now`, if any. Call until `None`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        self.at.remove(&key);
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn fires_in_deadline_order_then_key_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set(3, secs(t0, 2));
        t.set(1, secs(t0, 5));
        t.set(2, secs(t0, 2));
        assert_eq!(t.next(), Some(secs(t0, 2)));
        assert_eq!(t.pop_due(secs(t0, 1)), None);
        assert_eq!(t.pop_due(secs(t0, 2)), Some(2));
        assert_eq!(t.pop_due(secs(t0, 2)), Some(3));
        assert_eq!(t.pop_due(secs(t0, 4)), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(secs(t0, 9)), Some(1));
        assert!(t.is_empty());
        assert_eq!(t.next(), None);
    }

    #[test]
    fn setting_again_moves_the_deadline_and_cancel_removes_it() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set('a', secs(t0, 1));
        t.set('a', secs(t0, 7));
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(secs(t0, 6)), None);
        assert_eq!(t.get(&'a'), Some(secs(t0, 7)));
        t.set_earliest('a', secs(t0, 9));
        assert_eq!(t.get(&'a'), Some(secs(t0, 7)));
        t.set_earliest('a', secs(t0, 3));
        assert_eq!(t.get(&'a'), Some(secs(t0, 3)));
        assert_eq!(t.cancel(&'a'), Some(secs(t0, 3)));
        assert_eq!(t.cancel(&'a'), None);
        assert_eq!(t.pop_due(secs(t0, 100)), None);
    }

    #[test]
    fn len_counts_keys_set_and_is_empty_only_when_none_is() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        assert_eq!((t.len(), t.is_empty()), (0, true));
        t.set(1, secs(t0, 1));
        t.set(2, secs(t0, 2));
        t.set(3, secs(t0, 2));
        t.set(3, secs(t0, 4));
        assert_eq!((t.len(), t.is_empty()), (3, false));
        assert_eq!(t.pop_due(secs(t0, 1)), Some(1));
        assert_eq!(t.cancel(&2), Some(secs(t0, 2)));
        assert_eq!((t.len(), t.is_empty()), (1, false));
        assert_eq!(t.pop_due(secs(t0, 4)), Some(3));
        assert_eq!((t.len(), t.is_empty()), (0, true));
    }
}
