//! A bounded set that forgets its oldest items first: by count, and by age when it has one.
//!
//! Used for the seen message ids, members gone or lost, and addresses that are not peers. Pure:
//! the caller passes `now`; nothing here reads the clock or knows what it holds.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A bounded set, oldest forgotten first: by count, and by age when `age` is set.
#[derive(Debug)]
pub(super) struct Recent<T> {
    /// Each item, the number of the record that put it there, and when it was recorded.
    map: HashMap<T, (u64, Instant)>,
    /// The records in order, to forget the oldest without a scan. Kept in step with `map` by
    /// this type alone; a record whose number no longer matches `map` is stale (the item was
    /// removed, or recorded again since). Numbers, not instants, tell them apart: an item
    /// removed and recorded again at the same instant has two records with equal instants.
    order: VecDeque<(T, u64, Instant)>,
    /// The number the next record gets.
    next: u64,
    cap: usize,
    age: Option<Duration>,
}

impl<T: Copy + Eq + Hash> Recent<T> {
    pub(super) fn new(cap: usize, age: Option<Duration>) -> Self {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap,
            age,
        }
    }

    fn expired(&self, at: Instant, now: Instant) -> bool {
        self.age
            .is_some_and(|age| now.saturating_duration_since(at) > age)
    }

    /// Records `item`; false if it was there already (and not expired).
    pub(super) fn insert(&mut self, item: T, now: Instant) -> bool {
        self.insert_telling(item, now, |_| {})
    }

    /// [`Recent::insert`], telling `forgot` of each item forgotten to make room or because it
    /// expired (the seen set raises its origin's floor with it).
    pub(super) fn insert_telling(
        &mut self,
        item: T,
        now: Instant,
        mut forgot: impl FnMut(T),
    ) -> bool {
        self.forget_front(now, self.cap, &mut forgot);
        if self.contains(&item, now) {
            return false;
        }
        let seq = self.next;
        self.next += 1;
        self.map.insert(item, (seq, now));
        self.order.push_back((item, seq, now));
        true
    }

    /// Forgets the items expired by `now`, telling `forgot` of each, without recording any.
    pub(super) fn expire(&mut self, now: Instant, mut forgot: impl FnMut(T)) {
        self.forget_front(now, usize::MAX, &mut forgot);
    }

    /// Forgets, oldest first, what expired by `now`, and more while `keep` or more items are
    /// held; `forgot` is told of each item forgotten (stale records are no item).
    fn forget_front(&mut self, now: Instant, keep: usize, forgot: &mut impl FnMut(T)) {
        while let Some(&(old, seq, at)) = self.order.front() {
            // Only live items count against the cap; checked before any lookup, since this
            // runs for every frame received. A stale record left at the front is harmless
            // (`remove` keeps them bounded).
            if self.map.len() < keep && !self.expired(at, now) {
                break;
            }
            let live = self.map.get(&old).is_some_and(|&(s, _)| s == seq);
            self.order.pop_front();
            if live {
                self.map.remove(&old);
                forgot(old);
            }
        }
    }

    /// True if `item` was recorded and has not expired by `now`.
    pub(super) fn contains(&self, item: &T, now: Instant) -> bool {
        self.map
            .get(item)
            .is_some_and(|&(_, at)| !self.expired(at, now))
    }

    /// Forgets `item`. Its record stays in `order` as stale until it reaches the front, unless
    /// stale records outnumber live ones, when they are swept so `order` stays bounded.
    pub(super) fn remove(&mut self, item: &T) {
        if self.map.remove(item).is_none() {
            return;
        }
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(it, seq, _)| map.get(it).is_some_and(|&(s, _)| s == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MsgId;

    #[test]
    fn lost_and_not_peer_marks_expire() {
        let now = Instant::now();
        let mut r = Recent::new(10, Some(Duration::from_secs(5)));
        assert!(r.insert(1, now));
        assert!(r.contains(&1, now + Duration::from_secs(5)));
        assert!(!r.contains(&1, now + Duration::from_secs(6)));
        // Recorded again later: the old entry's eviction does not take the new one.
        assert!(r.insert(1, now + Duration::from_secs(6)));
        assert!(r.insert(2, now + Duration::from_secs(10)));
        assert!(r.contains(&1, now + Duration::from_secs(10)));
    }

    #[test]
    fn the_seen_set_is_bounded_by_count_and_age() {
        use crate::chat::seen::{SEEN_AGE, SEEN_CAP};
        let now = Instant::now();
        let mut seen = Recent::new(SEEN_CAP, Some(SEEN_AGE));
        for seq in 0..(SEEN_CAP as u64 + 10) {
            assert!(seen.insert(MsgId { node: 1, seq }, now));
        }
        assert_eq!(seen.map.len(), SEEN_CAP);
        let last = MsgId {
            node: 1,
            seq: SEEN_CAP as u64,
        };
        assert!(!seen.insert(last, now));
        // Past the age, old ids are forgotten as new ones come.
        assert!(seen.insert(MsgId { node: 2, seq: 0 }, now + SEEN_AGE * 2));
        assert_eq!(seen.map.len(), 1);
    }

    #[test]
    fn removed_items_are_not_contained_and_can_be_recorded_again() {
        let now = Instant::now();
        let mut r = Recent::new(4, None);
        assert!(r.insert('a', now));
        assert!(!r.insert('a', now));
        r.remove(&'a');
        assert!(!r.contains(&'a', now));
        assert!(r.insert('a', now));
        // Without an age, only the count forgets: the oldest goes first.
        for c in ['b', 'c', 'd', 'e'] {
            assert!(r.insert(c, now + Duration::from_secs(3600)));
        }
        assert!(!r.contains(&'a', now + Duration::from_secs(3600)));
        assert!(r.contains(&'b', now + Duration::from_secs(3600)));
    }

    #[test]
    fn an_item_removed_and_recorded_again_at_the_same_instant_stays_among_the_latest() {
        let now = Instant::now();
        let mut r = Recent::new(3, None);
        assert!(r.insert('a', now));
        r.remove(&'a');
        assert!(r.insert('a', now));
        assert!(r.insert('b', now));
        assert!(r.insert('c', now));
        assert!(r.contains(&'a', now), "one of the three latest");
    }

    #[test]
    fn removed_items_do_not_count_against_the_cap_nor_pile_up() {
        let now = Instant::now();
        let mut r = Recent::new(3, None);
        for c in ['a', 'b', 'c'] {
            assert!(r.insert(c, now));
        }
        r.remove(&'b');
        assert!(r.insert('d', now));
        assert!(
            r.contains(&'a', now),
            "only two were held: a had room to stay"
        );
        for i in 0..1000u32 {
            r.insert(char::from_u32(0x100 + i).unwrap_or('?'), now);
            r.remove(&char::from_u32(0x100 + i).unwrap_or('?'));
        }
        assert!(
            r.order.len() <= 2 * r.map.len() + 17,
            "{} records",
            r.order.len()
        );
    }
}
