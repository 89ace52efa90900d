//! Keepalive of peer connections: when each was last heard, and whether a ping went out.
//!
//! [`Keepalive`] is one peer's, pure: the caller passes `now` and the timeout, and sends the
//! `PING`s it asks for; it must not queue actions or know other connections. The `impl Chat`
//! steps below carry it out: arming each peer's keepalive timer, what that timer finds when it
//! fires. Dropping a dead peer is the chat's (`mod.rs`).

use std::time::{Duration, Instant};

use super::neighbours::PeerState;
use super::{Chat, ConnId, Due};

/// What a keepalive timer finds when it fires.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Silent for the whole timeout: drop it.
    Dead,
    /// Silent for a third of it: send a `PING`, and look again at the instant given.
    Ping(Instant),
    /// Heard since the timer was set: look again at the instant given.
    Later(Instant),
}

/// One peer's keepalive.
#[derive(Debug)]
pub(super) struct Keepalive {
    last_heard: Instant,
    /// A keepalive `PING` went out since it was last heard.
    pinged: bool,
}

impl Keepalive {
    pub(super) fn new(now: Instant) -> Keepalive {
        Keepalive {
            last_heard: now,
            pinged: false,
        }
    }

    /// When the peer next needs looking at: a ping after a third of the timeout, a drop after
    /// all of it.
    pub(super) fn due(&self, timeout: Duration) -> Instant {
        if self.pinged {
            self.last_heard + timeout
        } else {
            self.last_heard + timeout / 3
        }
    }

    /// A line came. Returns a new, earlier deadline only when the one set is now too late (an
    /// answer after a ping): on most lines there is nothing to re-arm, the timer looks again
    /// when it fires.
    pub(super) fn heard(&mut self, now: Instant, timeout: Duration) -> Option<Instant> {
        self.last_heard = now;
        std::mem::take(&mut self.pinged).then(|| self.due(timeout))
    }

    /// The keepalive timer fired at `now`.
    pub(super) fn check(&mut self, now: Instant, timeout: Duration) -> Check {
        if now >= self.last_heard + timeout {
            Check::Dead
        } else if !self.pinged && now >= self.last_heard + timeout / 3 {
            self.pinged = true;
            Check::Ping(self.due(timeout))
        } else {
            Check::Later(self.due(timeout))
        }
    }
}

impl Chat {
    /// Sets the keepalive timer of peer `conn` to when its keepalive next needs looking at.
    pub(super) fn arm_keepalive(&mut self, conn: ConnId) {
        let timeout = self.cfg.peer_timeout;
        if let Some(p) = self.neighbours.peer_mut(conn) {
            let at = p.alive.due(timeout);
            self.timers.set(Due::Keepalive(conn), at);
        }
    }

    /// The keepalive timer of `conn` fired: what it finds, the timer set again unless dead.
    pub(super) fn keepalive_due(&mut self, conn: ConnId, now: Instant) -> Option<Check> {
        let timeout = self.cfg.peer_timeout;
        let p = self.neighbours.peer_mut(conn)?;
        if p.state() != PeerState::Active {
            return None;
        }
        let check = p.alive.check(now, timeout);
        if let Check::Ping(at) | Check::Later(at) = check {
            self.timers.set(Due::Keepalive(conn), at);
        }
        Some(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn silent_a_third_of_the_timeout_is_pinged_and_all_of_it_is_dead() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0);
        assert_eq!(k.due(TIMEOUT), t0 + TIMEOUT / 3);
        assert_eq!(
            k.check(t0 + TIMEOUT / 3, TIMEOUT),
            Check::Ping(t0 + TIMEOUT)
        );
        // Pinged once only.
        assert_eq!(
            k.check(t0 + TIMEOUT / 2, TIMEOUT),
            Check::Later(t0 + TIMEOUT)
        );
        assert_eq!(k.check(t0 + TIMEOUT, TIMEOUT), Check::Dead);
    }

    #[test]
    fn a_line_moves_the_deadline_and_re_arms_only_after_a_ping() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0);
        let t1 = t0 + Duration::from_secs(4);
        // Not pinged: the timer set for t0 + 10 s fires early and looks again.
        assert_eq!(k.heard(t1, TIMEOUT), None);
        assert_eq!(
            k.check(t0 + TIMEOUT / 3, TIMEOUT),
            Check::Later(t1 + TIMEOUT / 3)
        );
        assert!(matches!(k.check(t1 + TIMEOUT / 3, TIMEOUT), Check::Ping(_)));
        // The answer comes: the next ping is due a third of the timeout later, earlier than
        // the drop the timer was set for.
        let t2 = t1 + TIMEOUT / 3 + Duration::from_secs(1);
        assert_eq!(k.heard(t2, TIMEOUT), Some(t2 + TIMEOUT / 3));
    }
}
