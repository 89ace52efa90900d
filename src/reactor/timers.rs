//! The reactor's deadlines: one `enum Timer` kept in the generic table (`crate::timers`), so
//! that a loop turn costs what is due, not a pass over every connection.
//!
//! Deadlines that follow moving state (a stalled reader's limit, a guest's unfinished line)
//! are armed when that state changes and checked again when they fire. Must not act on
//! connections itself: `Reactor::tick` does, with what `pop_due` hands it.

use std::time::{Duration, Instant};

use crate::timers::Timers;

/// A dial that has not connected by then has failed.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// After the user leaves, how long queued output may take to reach the peers.
pub(super) const QUIT_GRACE: Duration = Duration::from_secs(3);

/// Mesh mode: how long typed or piped input may wait at start-up for the first scan.
pub(super) const INPUT_HOLD: Duration = Duration::from_secs(3);

/// How long a duplicate connection being retired may take to deliver what is queued for it.
pub(super) const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// Leaving while a `/connect` name is looked up: how long the typed lines before the leave
/// (and the leave) may wait for the answer, so that a hanging resolver cannot keep the node.
pub(super) const LOOKUP_WAIT_LEAVING: Duration = QUIT_GRACE;

/// How often reads held back by backpressure look again.
pub(super) const HOLD_RECHECK: Duration = Duration::from_millis(20);

/// One deadline of the reactor; the per-connection ones carry the slab key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// Our dial has not connected in time.
    Connect(usize),
    /// A duplicate being retired has had its grace.
    Retire(usize),
    /// A reader past the high-water mark for too long (checked again when it fires).
    Stall(usize),
    /// A guest's unfinished line is due (checked again when it fires).
    Partial(usize),
    /// Accepting again after running out of descriptors.
    AcceptPause,
    /// Leaving: the grace for queued output is over.
    QuitGrace,
    /// Mesh start-up: input stops waiting for the first scan.
    InputHold,
    /// Reads held back by backpressure look again.
    HoldRecheck,
    /// Leaving: typed lines stop waiting for a lookup.
    LookupWait,
    /// A client that lost its last connection dials its peers again.
    Redial,
    /// The interactive terminal: an ESC read alone was the Esc key.
    Escape,
    /// `--lan`: this node's next beacon.
    Beacon,
}

/// The timers of one connection, by kind.
const PER_CONN: [fn(usize) -> Timer; 4] =
    [Timer::Connect, Timer::Retire, Timer::Stall, Timer::Partial];

impl Timer {
    /// The connection this timer belongs to, if it belongs to one. No wildcard: a new kind
    /// of timer must say, and the test checks that [`forget_conn`] cancels every such kind
    /// (else it could fire on the next connection given the same slab key).
    pub(super) fn conn(self) -> Option<usize> {
        match self {
            Timer::Connect(k) | Timer::Retire(k) | Timer::Stall(k) | Timer::Partial(k) => Some(k),
            Timer::AcceptPause
            | Timer::QuitGrace
            | Timer::InputHold
            | Timer::HoldRecheck
            | Timer::LookupWait
            | Timer::Redial
            | Timer::Escape
            | Timer::Beacon => None,
        }
    }
}

/// The reactor's timer table.
pub(super) type Table = Timers<Timer>;

/// Sets `timer` to `at`, or cancels it when `at` is `None`.
pub(super) fn arm(table: &mut Table, timer: Timer, at: Option<Instant>) {
    match at {
        Some(at) => table.set(timer, at),
        None => {
            table.cancel(&timer);
        }
    }
}

/// Cancels every timer of connection `k`.
pub(super) fn forget_conn(table: &mut Table, k: usize) {
    for timer in PER_CONN {
        let timer = timer(k);
        debug_assert_eq!(timer.conn(), Some(k));
        table.cancel(&timer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer kind after `t` (the first for `None`), each with connection `k` where it has
    /// one. The match has no wildcard, so a new kind cannot be left out of [`every_timer`].
    fn after(t: Option<Timer>, k: usize) -> Option<Timer> {
        match t {
            None => Some(Timer::Connect(k)),
            Some(Timer::Connect(_)) => Some(Timer::Retire(k)),
            Some(Timer::Retire(_)) => Some(Timer::Stall(k)),
            Some(Timer::Stall(_)) => Some(Timer::Partial(k)),
            Some(Timer::Partial(_)) => Some(Timer::AcceptPause),
            Some(Timer::AcceptPause) => Some(Timer::QuitGrace),
            Some(Timer::QuitGrace) => Some(Timer::InputHold),
            Some(Timer::InputHold) => Some(Timer::HoldRecheck),
            Some(Timer::HoldRecheck) => Some(Timer::LookupWait),
            Some(Timer::LookupWait) => Some(Timer::Redial),
            Some(Timer::Redial) => Some(Timer::Escape),
            Some(Timer::Escape) => Some(Timer::Beacon),
            Some(Timer::Beacon) => None,
        }
    }

    /// One timer of every kind, those of a connection with `k`.
    fn every_timer(k: usize) -> Vec<Timer> {
        std::iter::successors(after(None, k), |&t| after(Some(t), k)).collect()
    }

    #[test]
    fn a_closed_connection_leaves_no_timer_of_any_kind_behind() {
        let t0 = Instant::now();
        let mut table = Table::new();
        for t in every_timer(3).into_iter().chain(every_timer(4)) {
            table.set(t, t0);
        }
        forget_conn(&mut table, 3);
        let mut left = Vec::new();
        while let Some(t) = table.pop_due(t0) {
            left.push(t);
        }
        assert!(left.iter().all(|t| t.conn() != Some(3)), "{left:?}");
        let mine = every_timer(3).into_iter().filter(|t| t.conn() == Some(3));
        assert_eq!(mine.count(), PER_CONN.len());
        // Those of connection 4 and the loop's own are all still there.
        let mut want = every_timer(4);
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn a_closed_connection_leaves_no_timer_behind_for_the_next_one_with_its_key() {
        let t0 = Instant::now();
        let mut table = Table::new();
        table.set(Timer::Connect(3), t0 + CONNECT_TIMEOUT);
        table.set(Timer::Partial(3), t0);
        table.set(Timer::Stall(4), t0);
        table.set(Timer::AcceptPause, t0);
        forget_conn(&mut table, 3);
        let mut due = Vec::new();
        while let Some(t) = table.pop_due(t0 + CONNECT_TIMEOUT) {
            due.push(t);
        }
        assert_eq!(due, vec![Timer::Stall(4), Timer::AcceptPause]);
    }

    #[test]
    fn arming_with_none_cancels_and_a_turn_sees_only_the_earliest() {
        let t0 = Instant::now();
        let mut table = Table::new();
        arm(&mut table, Timer::Partial(1), Some(t0 + RETIRE_GRACE));
        arm(&mut table, Timer::QuitGrace, Some(t0 + QUIT_GRACE));
        assert_eq!(table.next(), Some(t0 + QUIT_GRACE));
        arm(&mut table, Timer::QuitGrace, None);
        assert_eq!(table.next(), Some(t0 + RETIRE_GRACE));
        assert_eq!(table.pop_due(t0 + QUIT_GRACE), None);
        assert_eq!(table.pop_due(t0 + RETIRE_GRACE), Some(Timer::Partial(1)));
        assert!(table.is_empty());
    }
}
