//! Flood control for guests: a token bucket of lines per guest, and what it says about a line.
//!
//! Pure: the caller passes `now`; nothing here reads the clock, queues actions or knows the
//! connection the bucket belongs to.

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

/// One guest's token bucket of lines.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    last: Instant,
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
    /// A full bucket (a guest may burst at once), or an empty one when there is no limit.
    pub(super) fn new(now: Instant, limit: Option<RateLimit>) -> Bucket {
        Bucket {
            tokens: limit.map_or(0.0, |l| l.burst),
            last: now,
            dropped: 0,
            told: None,
            flooding_since: None,
            last_drop: None,
        }
    }

    /// Takes a token for one line at `now`.
    pub(super) fn take(&mut self, now: Instant, limit: RateLimit) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        // Never back in time: a caller's `now` out of order must not refill twice.
        self.last = self.last.max(now);
        // Capped: an idle guest does not save up tokens to flood with later.
        self.tokens = (self.tokens + elapsed * limit.per_sec).min(limit.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Pass;
        }
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
        let mut bucket = Bucket::new(start, Some(limit));
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
        let mut bucket = Bucket::new(start, Some(limit));
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
        let mut bucket = Bucket::new(start, Some(limit));
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
        let mut bucket = Bucket::new(start, Some(limit));
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
}
