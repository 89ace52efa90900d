//! The seen set: the ids of frames from other nodes seen lately, and per node the highest
//! counter forgotten since (`floors.rs`), so that a frame that comes back over another path, or
//! is replayed after it was forgotten, is taken once. Used by the relay (live frames) and by
//! history (kept ones).
//!
//! Pure: the caller passes `now`. Must not decide what a frame means (the relay does).

use std::time::{Duration, Instant};

use super::floors::{Floors, FLOORS_CAP};
use super::recent::Recent;
use crate::protocol::MsgId;

/// How many message ids are remembered to drop duplicates that come back over another path,
/// and for how long at most.
pub(super) const SEEN_CAP: usize = 100_000;
pub(super) const SEEN_AGE: Duration = Duration::from_secs(600);

/// The ids of frames from other nodes seen lately, and per node the highest counter forgotten
/// since (its floor): an id not seen lately is new only above its node's floor. The floor is
/// what this node itself saw and forgot, never what it heard of, so a node that never saw an id
/// takes it as new (a kept announcement handed to a new peer in its welcome, however old).
#[derive(Debug)]
pub(super) struct Seen {
    ids: Recent<MsgId>,
    floors: Floors,
}

impl Seen {
    pub(super) fn new() -> Seen {
        Seen {
            ids: Recent::new(SEEN_CAP, Some(SEEN_AGE)),
            floors: Floors::new(FLOORS_CAP),
        }
    }

    /// Forgets the ids past their age by `now`, raising their nodes' floors: so [`Seen::old`]
    /// answers for `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        let floors = &mut self.floors;
        self.ids.expire(now, |id| floors.raise(id.node, id.seq));
    }

    /// True the first time `id` is seen, unless it is at or below its node's floor (seen
    /// before and forgotten: a replay).
    pub(super) fn first_time(&mut self, id: MsgId, now: Instant) -> bool {
        self.expire(now);
        if self.floors.below(id.node, id.seq) {
            return false;
        }
        let floors = &mut self.floors;
        self.ids
            .insert_telling(id, now, |old| floors.raise(old.node, old.seq))
    }

    /// True if `id` was seen lately, or before and forgotten. Answers for the last
    /// [`Seen::expire`] or [`Seen::first_time`]: an id past its age but not yet forgotten counts
    /// as not seen.
    pub(super) fn old(&self, id: MsgId, now: Instant) -> bool {
        self.ids.contains(&id, now) || self.floors.below(id.node, id.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_even_after_it_is_forgotten() {
        let now = Instant::now();
        let mut seen = Seen::new();
        let id = MsgId { node: 2, seq: 5 };
        assert!(seen.first_time(id, now));
        assert!(!seen.first_time(id, now));
        let later = now + SEEN_AGE * 2;
        assert!(
            !seen.first_time(id, later),
            "forgotten, but below the floor"
        );
        assert!(
            !seen.first_time(MsgId { node: 2, seq: 4 }, later),
            "an older id of that node is old too"
        );
        assert!(seen.first_time(MsgId { node: 2, seq: 6 }, later));
        assert!(
            seen.first_time(MsgId { node: 3, seq: 1 }, later),
            "another node's floor is its own"
        );
    }

    #[test]
    fn ids_pushed_out_by_newer_ones_raise_the_floor_too() {
        let now = Instant::now();
        let mut seen = Seen::new();
        assert!(seen.first_time(MsgId { node: 2, seq: 1 }, now));
        for seq in 1..=SEEN_CAP as u64 {
            assert!(seen.first_time(MsgId { node: 3, seq }, now));
        }
        let old = MsgId { node: 2, seq: 1 };
        assert!(!seen.ids.contains(&old, now), "pushed out");
        assert!(seen.old(old, now));
        assert!(!seen.first_time(old, now));
    }

    #[test]
    fn an_id_past_its_age_is_old_once_expired() {
        let now = Instant::now();
        let mut seen = Seen::new();
        let id = MsgId { node: 2, seq: 1 };
        assert!(seen.first_time(id, now));
        let later = now + SEEN_AGE * 2;
        // Past its age it is no longer seen; `expire` is what turns it into the floor.
        seen.expire(later);
        assert!(seen.old(id, later));
    }
}
