//! Flood control for guests: a token bucket of lines per guest, the budget shared by every guest
//! from one address ([`Shared`]), and what they say about a line.
//!
//! Pure: the caller passes `now`; nothing here reads the clock, queues actions or knows the
//! connection the bucket belongs to, nor which address a budget is for (the neighbours do).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How many lines a guest may send: `per_sec` on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: f64,
}

impl RateLimit {
    /// `per_sec` lines a second, bursts of ten seconds' worth.
    pub fn per_second(per_sec: u32) -> RateLimit {
        RateLimit {
            per_sec: f64::from(per_sec),
            burst: f64::from(per_sec) * 10.0,
        }
    }
}

/// The default flood limit for guests, in lines per second (`--rate-limit`).
pub const DEFAULT_GUEST_RATE: u32 = 20;

/// A guest whose lines are dropped without a pause of this long is still flooding...
const FLOOD_PAUSE: Duration = Duration::from_secs(1);
/// ...and one that floods this long is disconnected.
const FLOOD_CUT: Duration = Duration::from_secs(10);
/// The guest is told about dropped lines at most this often.
const TELL_EVERY: Duration = Duration::from_secs(1);

/// Tokens of lines: `per_sec` come back each second, up to `burst`. (Also a peer's budget of
/// history messages, `history.rs`.)
#[derive(Debug)]
pub(super) struct Tokens {
    tokens: f64,
    last: Instant,
}

impl Tokens {
    /// A full bucket, or an empty one when there is no limit.
    pub(super) fn new(now: Instant, limit: Option<RateLimit>) -> Tokens {
        Tokens {
            tokens: limit.map_or(0.0, |l| l.burst),
            last: now,
        }
    }

    /// The tokens there are at `now`.
    fn refill(&mut self, now: Instant, limit: RateLimit) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        // Never back in time: a caller's `now` out of order must not refill twice.
        self.last = self.last.max(now);
        // Capped: an idle guest does not save up tokens to flood with later.
        self.tokens = (self.tokens + elapsed * limit.per_sec).min(limit.burst);
        self.tokens
    }

    /// Takes `n` tokens at `now` if there are that many; else takes none.
    pub(super) fn take(&mut self, now: Instant, limit: RateLimit, n: usize) -> bool {
        let n = n as f64;
        if self.refill(now, limit) < n {
            return false;
        }
        self.tokens -= n;
        true
    }

    /// True if the bucket is full at `now`: it is then no different from a new one.
    fn is_full(&self, now: Instant, limit: RateLimit) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * limit.per_sec >= limit.burst
    }
}

/// The budget of lines shared by every guest from one address: together they may send what one
/// guest may. Each guest's [`Bucket`] holds one handle and the table of addresses one more, so
/// the handles say how many guests there are from that address (no count to keep in step).
#[derive(Clone, Debug)]
pub(super) struct Shared(Rc<RefCell<Tokens>>);

impl Shared {
    /// A full budget (see [`Bucket::new`]).
    pub(super) fn new(now: Instant, limit: Option<RateLimit>) -> Shared {
        Shared(Rc::new(RefCell::new(Tokens::new(now, limit))))
    }

    /// How many other handles there are (held by buckets, when the table holds this one).
    pub(super) fn others(&self) -> usize {
        Rc::strong_count(&self.0) - 1
    }

    /// True if the budget is full at `now` (always, with no limit): forgetting it then gives
    /// nobody more lines than keeping it would.
    pub(super) fn is_full(&self, now: Instant, limit: Option<RateLimit>) -> bool {
        limit.is_none_or(|l| self.0.borrow().is_full(now, l))
    }
}

/// One guest's token bucket of lines, and the budget of its address.
#[derive(Debug)]
pub(super) struct Bucket {
    own: Tokens,
    shared: Option<Shared>,
    /// Lines dropped that the guest has not been told about.
    dropped: u64,
    told: Option<Instant>,
    flooding_since: Option<Instant>,
    last_drop: Option<Instant>,
}

/// What the bucket says about one line.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Pass,
    /// Dropped: tell the guest this many were dropped (at most once a second), and whether to
    /// cut it off.
    Drop {
        tell: Option<u64>,
        cut: Cut,
    },
}

/// Whether a flooding guest has flooded long enough to be disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    Keep,
    Disconnect,
}

impl Bucket {
    /// A full bucket (a guest may burst at once), or an empty one when there is no limit; it
    /// also spends from `shared`, the budget of the guest's address, if given.
    pub(super) fn new(now: Instant, limit: Option<RateLimit>, shared: Option<Shared>) -> Bucket {
        Bucket {
            own: Tokens::new(now, limit),
            shared,
            dropped: 0,
            told: None,
            flooding_since: None,
            last_drop: None,
        }
    }

    /// Takes a token for one line at `now`, from the guest's bucket and its address's budget:
    /// from both or from neither (a line dropped by one does not cost the other).
    pub(super) fn take(&mut self, now: Instant, limit: RateLimit) -> Verdict {
        let own = self.own.refill(now, limit);
        let mut shared = self.shared.as_ref().map(|s| s.0.borrow_mut());
        let left = shared
            .as_mut()
            .map_or(own, |s| own.min(s.refill(now, limit)));
        if left >= 1.0 {
            self.own.tokens -= 1.0;
            if let Some(s) = shared.as_mut() {
                s.tokens -= 1.0;
            }
            return Verdict::Pass;
        }
        drop(shared);
        self.dropped_at(now)
    }

    /// A line dropped at `now`: whether to tell the guest, and whether to cut it off.
    fn dropped_at(&mut self, now: Instant) -> Verdict {
        if self
            .last_drop
            .is_none_or(|t| now.saturating_duration_since(t) > FLOOD_PAUSE)
        {
            self.flooding_since = Some(now);
        }
        self.last_drop = Some(now);
        self.dropped += 1;
        let cut = match self.flooding_since {
            Some(t) if now.saturating_duration_since(t) >= FLOOD_CUT => Cut::Disconnect,
            _ => Cut::Keep,
        };
        let tell = self
            .told
            .is_none_or(|t| now.saturating_duration_since(t) >= TELL_EVERY);
        let tell = tell.then(|| {
            self.told = Some(now);
            std::mem::take(&mut self.dropped)
        });
        Verdict::Drop { tell, cut }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `n` lines sent at once at `at` pass.
    fn passed(bucket: &mut Bucket, at: Instant, limit: RateLimit, n: usize) -> usize {
        (0..n)
            .filter(|_| bucket.take(at, limit) == Verdict::Pass)
            .count()
    }

    #[test]
    fn a_guest_idle_for_ten_minutes_then_bursting_gets_exactly_the_burst_through() {
        let limit = RateLimit::per_second(DEFAULT_GUEST_RATE);
        let start = Instant::now();
        let mut bucket = Bucket::new(start, Some(limit), None);
        assert_eq!(passed(&mut bucket, start, limit, 1), 1);
        // Ten minutes of silence would be 12 000 lines' worth without the cap.
        let later = start + Duration::from_secs(600);
        let burst = limit.burst as usize;
        assert_eq!(passed(&mut bucket, later, limit, burst * 3), burst);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_tells_once_a_second() {
        let limit = RateLimit {
            per_sec: 2.0,
            burst: 2.0,
        };
        let start = Instant::now();
        let mut bucket = Bucket::new(start, Some(limit), None);
        assert_eq!(passed(&mut bucket, start, limit, 2), 2);
        assert_eq!(
            bucket.take(start, limit),
            Verdict::Drop {
                tell: Some(1),
                cut: Cut::Keep
            }
        );
        // Told a moment ago: counted, not told again yet.
        assert_eq!(
            bucket.take(start, limit),
            Verdict::Drop {
                tell: None,
                cut: Cut::Keep
            }
        );
        let half = start + Duration::from_millis(500);
        assert_eq!(bucket.take(half, limit), Verdict::Pass);
        let second = start + Duration::from_secs(1);
        assert_eq!(bucket.take(second, limit), Verdict::Pass);
        assert_eq!(
            bucket.take(second, limit),
            Verdict::Drop {
                tell: Some(2),
                cut: Cut::Keep
            }
        );
    }

    #[test]
    fn a_time_earlier_than_the_last_does_not_refill() {
        let limit = RateLimit {
            per_sec: 1.0,
            burst: 1.0,
        };
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        let mut bucket = Bucket::new(start, Some(limit), None);
        assert_eq!(bucket.take(later, limit), Verdict::Pass);
        // Back to `start` and forward to `later` again: no time passed in between.
        assert!(matches!(bucket.take(start, limit), Verdict::Drop { .. }));
        assert!(matches!(bucket.take(later, limit), Verdict::Drop { .. }));
    }

    #[test]
    fn flooding_without_a_pause_for_ten_seconds_cuts_off() {
        let limit = RateLimit {
            per_sec: 1.0,
            burst: 1.0,
        };
        let start = Instant::now();
        let mut bucket = Bucket::new(start, Some(limit), None);
        let mut cut_at = None;
        for tick in 0..=120u64 {
            let now = start + Duration::from_millis(100 * tick);
            if let Verdict::Drop {
                cut: Cut::Disconnect,
                ..
            } = bucket.take(now, limit)
            {
                cut_at.get_or_insert(now);
            }
        }
        let cut_at = cut_at.expect("cut off");
        let flooded = cut_at - start;
        assert!(flooded >= FLOOD_CUT && flooded < FLOOD_CUT + Duration::from_secs(1));
    }

    #[test]
    fn guests_sharing_a_budget_get_one_burst_between_them_then_the_rate() {
        let limit = RateLimit::per_second(DEFAULT_GUEST_RATE);
        let start = Instant::now();
        let shared = Shared::new(start, Some(limit));
        let mut buckets: Vec<Bucket> = (0..20)
            .map(|_| Bucket::new(start, Some(limit), Some(shared.clone())))
            .collect();
        assert_eq!(shared.others(), 20);
        let burst = limit.burst as usize;
        let at_once: usize = buckets
            .iter_mut()
            .map(|b| passed(b, start, limit, burst))
            .sum();
        assert_eq!(
            at_once, burst,
            "one burst for all twenty, not twenty bursts"
        );
        let second = start + Duration::from_secs(1);
        let then: usize = buckets
            .iter_mut()
            .map(|b| passed(b, second, limit, burst))
            .sum();
        assert_eq!(then, DEFAULT_GUEST_RATE as usize);
        drop(buckets);
        assert_eq!(shared.others(), 0, "the handles count the guests");
    }

    #[test]
    fn a_line_dropped_by_the_address_costs_the_guests_own_bucket_nothing() {
        let limit = RateLimit {
            per_sec: 1.0,
            burst: 3.0,
        };
        let start = Instant::now();
        let shared = Shared::new(start, Some(limit));
        let mut quiet = Bucket::new(start, Some(limit), Some(shared.clone()));
        let mut loud = Bucket::new(start, Some(limit), Some(shared.clone()));
        assert_eq!(passed(&mut loud, start, limit, 10), 3);
        // The address is spent: the quiet guest is held to it, and told as any flooder is.
        assert_eq!(
            quiet.take(start, limit),
            Verdict::Drop {
                tell: Some(1),
                cut: Cut::Keep
            }
        );
        assert_eq!(quiet.own.tokens, 3.0, "its own burst is untouched");
        assert!(!shared.is_full(start, Some(limit)));
        let refilled = start + Duration::from_secs(3);
        assert!(shared.is_full(refilled, Some(limit)));
        assert_eq!(passed(&mut quiet, refilled, limit, 10), 3);
    }
}
