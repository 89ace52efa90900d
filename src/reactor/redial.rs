//! A client that reconnects: with `Setup::reconnect`, a node that does not listen and loses its
//! last connection says so and dials the peers of its command line again, with back-off (1, 2,
//! 4, 8, 16, then every 30 s), until one is back (its hello exchanged) or the user leaves.
//!
//! [`Redial`] is the pure state (what to say, when to dial next); the `impl Reactor` steps
//! below look at the connections once a turn, arm [`Timer::Redial`] and dial through
//! `start_dial`. Must not decide anything else about connections, and must never keep a user
//! who leaves waiting: leaving drops a re-dial still connecting.

use std::io::Write;
use std::time::{Duration, Instant};

use log::{debug, info};

use super::setup::{Dial, DialError};
use super::timers::Timer;
use super::Reactor;
use crate::chat::Origin;
use crate::event::Event;

/// The waits between rounds of re-dials, in seconds; the last one repeats.
const BACKOFF_SECS: [u64; 6] = [1, 2, 4, 8, 16, 30];

/// Where a reconnecting client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not reconnecting: not asked to, a node that listens (the others come to it), nothing
    /// to dial, or leaving.
    Off,
    /// No connection has been up yet: a first dial that fails ends the run, as without
    /// reconnecting.
    NotYetUp,
    /// A connection is up.
    Up,
    /// Everything was lost: the next round of dials starts when [`Timer::Redial`] fires.
    Waiting,
    /// A round of dials is under way.
    Dialling,
}

/// What to say, and when the next round of dials is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Notice {
    /// What to say; `None` for a round failing quietly (see [`SAY_EVERY`]).
    pub text: Option<String>,
    pub delay: Duration,
}

/// Once the wait is at its longest, a failed round is said only every this many rounds (every
/// 5 min at 30 s): an hour offline must not push the chat off the screen with 120 rows.
const SAY_EVERY: usize = 10;

/// The re-dial state of a client.
pub(super) struct Redial {
    /// The peers of the command line, as they were resolved at start.
    peers: Vec<Dial>,
    state: State,
    /// Rounds of dials that failed since a connection was last up.
    failed: usize,
}

impl Redial {
    /// Re-dials `peers` if `on` (a terminal client); else does nothing ever.
    pub(super) fn new(on: bool, peers: Vec<Dial>) -> Redial {
        let state = if on && !peers.is_empty() {
            State::NotYetUp
        } else {
            State::Off
        };
        Redial {
            peers,
            state,
            failed: 0,
        }
    }

    /// Rounds of dials that failed since a connection was last up.
    #[cfg(test)]
    pub(super) fn rounds_failed(&self) -> usize {
        self.failed
    }

    /// True while there is nothing to wait for but the next re-dial: the run goes on.
    pub(super) fn is_waiting(&self) -> bool {
        matches!(self.state, State::Waiting | State::Dialling)
    }

    /// True once a connection has been up: a failed dial is never the end of the run then.
    pub(super) fn keeps_going(&self) -> bool {
        matches!(self.state, State::Up | State::Waiting | State::Dialling)
    }

    /// True while a connection coming up (its hello exchanged) changes something.
    fn watches(&self) -> bool {
        matches!(
            self.state,
            State::NotYetUp | State::Waiting | State::Dialling
        )
    }

    /// A failure of a dial of this round, not one the user asked for (`/connect`).
    fn is_own(&self, label: &str) -> bool {
        self.state == State::Dialling && self.is_peer(label)
    }

    /// `entry` is a re-dial of this round that has not come up yet: nobody waits for lines on
    /// it (the user is told nobody is connected), and it failing loses nothing of theirs.
    pub(super) fn is_trial(&self, entry: &super::Entry) -> bool {
        self.state == State::Dialling
            && entry.conn.role().is_none()
            && self.is_peer(entry.conn.addr())
    }

    /// `label` is one of the peers re-dialled.
    fn is_peer(&self, label: &str) -> bool {
        self.peers.iter().any(|d| d.label == label)
    }

    /// A connection is up (losing it starts the back-off over). True if a round was waiting
    /// to start.
    fn handle_up(&mut self) -> bool {
        let was_waiting = self.state == State::Waiting;
        self.state = State::Up;
        was_waiting
    }

    /// Nothing is left (no connection, no dial): what to say and when to dial, if it is the
    /// news that the connection was lost or that a round failed.
    fn handle_nothing_left(&mut self) -> Option<Notice> {
        let lost = match self.state {
            State::Up => true,
            State::Dialling => false,
            State::Off | State::NotYetUp | State::Waiting => return None,
        };
        self.failed = if lost { 0 } else { self.failed + 1 };
        self.state = State::Waiting;
        let delay = backoff(self.failed);
        let labels: Vec<&str> = self.peers.iter().map(|d| d.label.as_str()).collect();
        let (labels, secs) = (labels.join(", "), delay.as_secs());
        let longest = self.failed >= BACKOFF_SECS.len();
        let text = if lost {
            Some(format!(
                "lost the connection to {labels}; reconnecting in {secs} s"
            ))
        } else if !longest {
            Some(format!("reconnecting to {labels} in {secs} s"))
        } else if self.failed % SAY_EVERY == 0 {
            Some(format!("still reconnecting to {labels}, every {secs} s"))
        } else {
            None
        };
        Some(Notice { text, delay })
    }

    /// The wait is over: the peers to dial now.
    fn handle_due(&mut self) -> Vec<Dial> {
        if self.state != State::Waiting {
            return Vec::new();
        }
        self.state = State::Dialling;
        self.peers.clone()
    }

    /// The user leaves: no more dials. True if a round was under way (its dials are dropped).
    fn handle_leave(&mut self) -> bool {
        let dialling = self.state == State::Dialling;
        self.state = State::Off;
        dialling
    }
}

/// The wait before the next round, after `failed` rounds failed.
fn backoff(failed: usize) -> Duration {
    let secs = BACKOFF_SECS[failed.min(BACKOFF_SECS.len() - 1)];
    Duration::from_secs(secs)
}

impl<W: Write> Reactor<W> {
    /// Once a turn, before the run may end: the user leaving stops the re-dials, a connection
    /// up starts the back-off over, and losing everything (or a round failing) says so and
    /// arms the next round.
    pub(super) fn watch_redial(&mut self, now: Instant) {
        if self.redial.state == State::Off {
            return;
        }
        if self.quit_deadline.is_some() {
            if self.redial.handle_leave() {
                self.drop_redials();
            }
            self.timers.cancel(&Timer::Redial);
            return;
        }
        // Only a client that is not up looks at its connections: a handful, and no turn of a
        // node that listens pays for it.
        if self.redial.watches() && self.conns.iter().any(|(_, e)| e.conn.role().is_some()) {
            if self.redial.handle_up() {
                self.timers.cancel(&Timer::Redial);
            }
            return;
        }
        if !self.nothing_left() {
            return;
        }
        if let Some(Notice { text, delay }) = self.redial.handle_nothing_left() {
            self.timers.set(Timer::Redial, now + delay);
            let Some(text) = text else {
                debug!("a round of re-dials failed; the next in {delay:?}");
                return;
            };
            info!("{text}");
            self.show(&Event::Info(text));
            // The loop may sleep until the timer now: the notice goes out first. Stdout gone
            // is the user leaving, carried out at once.
            if let Err(gone) = self.screen.flush() {
                self.stdout_gone(gone);
            }
            self.settle(now);
        }
    }

    /// [`Timer::Redial`] fired: dial every peer of the command line again. One that cannot
    /// even start counts as failed; when none is left the next turn says so.
    pub(super) fn redial_due(&mut self, now: Instant) {
        for dial in self.redial.handle_due() {
            if let Err(e) = self.start_dial(dial, Origin::Dialled, now) {
                debug!("{e}");
            }
        }
    }

    /// A dial the user asked for failed while reconnecting: shown (a `/connect`) or the
    /// round's own failure, seen by [`Reactor::watch_redial`]; never the end of the run.
    /// False when not reconnecting: the caller decides as without it.
    pub(super) fn redial_failed(&mut self, e: &DialError) -> bool {
        if !self.redial.keeps_going() {
            return false;
        }
        match e {
            DialError::Connect { label, .. } if self.redial.is_own(label) => debug!("{e}"),
            _ => self.show(&Event::Error(e.to_string())),
        }
        true
    }

    /// Leaving while a round of dials is under way: those still connecting are dropped, not
    /// waited for (nothing typed since the connection was lost is worth the wait).
    fn drop_redials(&mut self) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, e)| e.conn.is_connecting() && self.redial.is_peer(e.conn.addr()))
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            self.drop_speculative(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn peer(label: &str) -> Dial {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        Dial {
            label: label.into(),
            addrs: vec![addr],
        }
    }

    #[test]
    fn off_unless_asked_and_given_someone_to_dial() {
        for r in [
            Redial::new(false, vec![peer("a:1")]),
            Redial::new(true, Vec::new()),
        ] {
            let mut r = r;
            assert!(!r.watches() && !r.keeps_going());
            assert_eq!(r.handle_nothing_left(), None);
        }
    }

    #[test]
    fn a_first_connection_that_never_came_up_is_not_re_dialled() {
        let mut r = Redial::new(true, vec![peer("a:1")]);
        assert!(r.watches() && !r.keeps_going());
        assert_eq!(r.handle_nothing_left(), None);
        assert!(!r.is_waiting());
    }

    #[test]
    fn the_back_off_grows_to_30_s_and_starts_over_once_up() {
        let mut r = Redial::new(true, vec![peer("a:1"), peer("b:2")]);
        assert!(!r.handle_up());
        let lost = r.handle_nothing_left().expect("the loss is told");
        assert_eq!(
            lost.text.as_deref(),
            Some("lost the connection to a:1, b:2; reconnecting in 1 s")
        );
        assert_eq!(lost.delay, Duration::from_secs(1));
        assert_eq!(r.handle_nothing_left(), None, "already waiting");
        let (mut waits, mut said) = (Vec::new(), Vec::new());
        for round in 1..=21 {
            assert_eq!(r.handle_due().len(), 2);
            assert!(r.handle_due().is_empty(), "one round at a time");
            let next = r.handle_nothing_left().expect("a failed round is known");
            let secs = next.delay.as_secs();
            waits.push(secs);
            if let Some(text) = next.text {
                said.push((round, text));
            }
        }
        assert_eq!(waits[..7], [2, 4, 8, 16, 30, 30, 30]);
        assert!(waits[4..].iter().all(|&w| w == 30));
        let rounds: Vec<usize> = said.iter().map(|(round, _)| *round).collect();
        assert_eq!(rounds, [1, 2, 3, 4, 5, 10, 20], "said: {said:?}");
        assert_eq!(said[3].1, "reconnecting to a:1, b:2 in 16 s");
        assert_eq!(said[5].1, "still reconnecting to a:1, b:2, every 30 s");
        assert!(r.handle_up(), "waiting: the timer is to be cancelled");
        let lost = r.handle_nothing_left().expect("lost again");
        assert_eq!(lost.delay, Duration::from_secs(1));
    }

    #[test]
    fn leaving_stops_the_re_dials_and_drops_a_round_under_way() {
        let mut r = Redial::new(true, vec![peer("a:1")]);
        r.handle_up();
        r.handle_nothing_left();
        r.handle_due();
        assert!(r.is_own("a:1") && !r.is_own("c:3"));
        assert!(r.handle_leave());
        assert!(!r.is_waiting() && !r.keeps_going());
        assert!(r.handle_due().is_empty());
    }
}
