//! Reads and writes: reading a ready connection within a per-turn budget and handing its
//! lines to the chat; writing every dirty connection once per turn (one `write_vectored`
//! from its place in the shared log); backpressure (reads wait while a reader that is behind
//! is still draining) and cutting off readers that are too slow; a guest's unfinished line.
//!
//! Must not hold chat rules: the chat decides what lines mean; this decides only when bytes
//! move.

use std::io::Write;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::setup::describe;
use super::timers::{self, Table, Timer};
use super::{Entry, Reactor};
use crate::conn::{PartialLine, Phase, ReadStatus, WireError};
use crate::fanout::{side, Log};
use crate::limits;
use crate::link::LinkError;
use crate::protocol;

/// Reads from one connection per readiness before the others get a turn: a flooding sender
/// cannot starve the rest of the loop.
const READ_BUDGET: usize = 4;

/// How long a reader may stay behind while the user is waiting to leave.
const URGENT_STALL_LIMIT: Duration = Duration::from_secs(1);

/// Backpressure: while a connection that is behind has written something this recently, reads
/// from every connection wait, so a fast sender is slowed to what slow readers take instead of
/// their falling further behind. One that has not moved for this long is stalled and holds no
/// one up (it is cut off by the backlog caps instead).
const PROGRESS_WINDOW: Duration = Duration::from_millis(200);

/// The backlog limits of the run.
pub(super) struct Limits {
    /// Past this much unsent output a connection is "behind": local input waits for it, and
    /// if it stays behind for `stall_limit` it is closed.
    high_water: usize,
    max_backlog: usize,
    stall_limit: Duration,
}

impl Limits {
    pub(super) fn new(max_backlog: usize, stall_limit: Duration) -> Self {
        Limits {
            high_water: (max_backlog / 4).max(1),
            max_backlog,
            stall_limit,
        }
    }

    /// How long a connection may stay past the high-water mark before it is closed; shorter
    /// while a leave command waits for it (`urgent`).
    fn stall_limit(&self, urgent: bool) -> Duration {
        if urgent {
            URGENT_STALL_LIMIT.min(self.stall_limit)
        } else {
            self.stall_limit
        }
    }
}

/// How one connection keeps up with what is written to it.
pub(super) struct Pace {
    /// When a write last took bytes (or the connection fell behind): a connection behind that
    /// moved recently is slow, one that has not is stalled.
    last_progress: Instant,
    /// What the kernel still held for it when last looked at (see `limits::unsent_bytes`).
    kernel_unsent: usize,
}

impl Pace {
    pub(super) fn new(now: Instant) -> Self {
        Pace {
            last_progress: now,
            kernel_unsent: 0,
        }
    }
}

impl<W: Write> Reactor<W> {
    /// Connection `k` is readable or writable (or its dial finished).
    pub(super) fn conn_ready(&mut self, k: usize, writable: bool, now: Instant) {
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        if e.conn.is_connecting() && !self.dial_ready(k, now) {
            return;
        }
        if writable {
            if let Some(e) = self.conns.get_mut(k) {
                e.conn.writable();
            }
            self.mark_dirty(k);
        }
        if self.held(k) {
            // Backpressure: read it once the slow readers have caught up.
            self.read_later(k);
            return;
        }
        self.read(k, now);
    }

    /// Reads the connections left over from earlier turns, unless backpressure holds them.
    pub(super) fn read_unread(&mut self, now: Instant) {
        for k in std::mem::take(&mut self.unread) {
            if self.held(k) {
                self.unread.push(k);
                continue;
            }
            if let Some(e) = self.conns.get_mut(k) {
                e.unread = false;
                self.read(k, now);
                self.apply_actions(now);
            }
        }
    }

    fn read_later(&mut self, k: usize) {
        if let Some(e) = self.conns.get_mut(k) {
            if !e.unread {
                e.unread = true;
                self.unread.push(k);
            }
        }
    }

    /// True when backpressure keeps connection `k` from being read this turn. Not one whose
    /// role is not known yet (a hello is short, and must not wait), nor one that is behind
    /// itself: what it sends goes to the others, and two nodes each waiting for the other to
    /// read would both stall.
    fn held(&self, k: usize) -> bool {
        self.hold_reads
            && self
                .conns
                .get(k)
                .is_some_and(|e| e.conn.role().is_some() && !self.behind.contains_key(&k))
    }

    /// True while some connection is behind but still draining (see [`PROGRESS_WINDOW`]).
    /// Looked at every [`timers::HOLD_RECHECK`] at most, and only at those behind.
    pub(super) fn backpressure(&mut self, now: Instant) -> bool {
        if self.behind.is_empty() {
            return false;
        }
        if let Some((until, hold)) = self.hold_checked {
            if now < until {
                return hold;
            }
        }
        let mut hold = false;
        for &k in self.behind.keys() {
            let Some(e) = self.conns.get_mut(k) else {
                continue;
            };
            // A reader with large socket buffers can take a while to make room for our next
            // write while reading all along: the kernel's queue shrinking shows it.
            if let Some(q) = limits::unsent_bytes(e.stream.as_raw_fd()) {
                if q < e.pace.kernel_unsent {
                    e.pace.last_progress = now;
                }
                e.pace.kernel_unsent = q;
            }
            hold |= now.saturating_duration_since(e.pace.last_progress) < PROGRESS_WINDOW;
        }
        self.hold_checked = Some((now + timers::HOLD_RECHECK, hold));
        hold
    }

    /// Reads `k` until it would block or its budget is spent, passing every complete line to
    /// the chat. A connection with more to read is put on the `unread` list for the next turn.
    fn read(&mut self, k: usize, now: Instant) {
        for _ in 0..READ_BUDGET {
            let Some(e) = self.conns.get_mut(k) else {
                return;
            };
            let handshaking = e.conn.is_handshaking();
            let status = match e.conn.read_some(&mut e.stream, now) {
                Ok(status) => status,
                Err(err) => return self.read_failed(k, handshaking, &err, now),
            };
            if handshaking {
                // Handshake messages to answer, or the link just opened.
                self.mark_dirty(k);
                let Some(e) = self.conns.get_mut(k) else {
                    return;
                };
                if e.conn.take_opened() {
                    self.link_opened(k, now);
                }
            }
            let Some(e) = self.conns.get_mut(k) else {
                return;
            };
            let mut took_lines = false;
            loop {
                match e.conn.next_line() {
                    Ok(Some(line)) => {
                        took_lines = true;
                        self.chat.handle_line(k, line, now)
                    }
                    Ok(None) => break,
                    Err(err) => return self.close_warning(k, err.to_string(), now),
                }
            }
            e.conn.note_partial(took_lines, now);
            // Per read, only make sure the timer is not late: every read under load moves the
            // deadline later, and moving it in the table each time is work on the hot path. A
            // timer that fires early or for nothing is set right in `check_partial`.
            if let Some(due) = e.conn.partial_due() {
                self.timers.set_earliest(Timer::Partial(k), due);
            }
            // What the chat made of those lines comes first: a close it asked for (with its
            // reason) is not to be overtaken by the end of the connection read next.
            self.apply_actions(now);
            let Some(e) = self.conns.get_mut(k) else {
                return;
            };
            match status {
                ReadStatus::Data => {}
                ReadStatus::WouldBlock => return,
                ReadStatus::Eof => {
                    if let Some(err) = e.conn.wire_end() {
                        return self.link_failed(k, handshaking, err, now);
                    }
                    let rest = e.conn.take_partial();
                    if !rest.is_empty() {
                        self.chat.handle_line(k, &rest, now);
                        self.apply_actions(now);
                    }
                    return self.close(k, None, now);
                }
            }
        }
        self.read_later(k);
    }

    /// A read from `k` failed: a guest where none are let in is refused, a private group's
    /// link that failed is closed with its reason, any other error closes it as always.
    fn read_failed(&mut self, k: usize, handshaking: bool, err: &std::io::Error, now: Instant) {
        match WireError::of(err) {
            Some(WireError::Guest) => self.refuse_guest(k, false, now),
            // It reads the refusal as `CANNOT_JOIN` (see `protocol::refusal_reason`).
            Some(WireError::PlainNode) => self.refuse_guest(k, true, now),
            Some(WireError::Link(e)) => self.link_failed(k, handshaking, e.clone(), now),
            None => self.close(k, Some(describe(err)), now),
        }
    }

    /// `k`'s link failed: before it opened, both ends say [`protocol::CANNOT_JOIN`] (the
    /// responder that could not read message 1, the initiator whose peer then closed); after,
    /// it was tampered with or cut, and only this connection goes (its peer re-dials).
    fn link_failed(&mut self, k: usize, handshaking: bool, err: LinkError, now: Instant) {
        if handshaking {
            log::debug!("link handshake failed: {err}");
            self.handshake_failed(k, protocol::CANNOT_JOIN.to_string(), now);
        } else {
            self.close_warning(k, err.to_string(), now);
        }
    }

    /// Sets `k`'s partial-line timer to when its unfinished line is due, if it has one.
    pub(super) fn arm_partial(&mut self, k: usize) {
        let due = self.conns.get(k).and_then(|e| e.conn.partial_due());
        timers::arm(&mut self.timers, Timer::Partial(k), due);
    }

    /// `k`'s partial-line timer fired: a guest's line is taken as a message, an unfinished
    /// hello closes it; if more bytes came since, the timer is set again.
    pub(super) fn check_partial(&mut self, k: usize, now: Instant) {
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        match e.conn.partial_due() {
            Some(due) if now >= due => match e.conn.partial_line() {
                PartialLine::GuestLine => {
                    let line = e.conn.take_partial();
                    self.chat.handle_line(k, &line, now);
                }
                PartialLine::IncompleteHello => {
                    self.close_warning(k, "incomplete hello".into(), now)
                }
                PartialLine::None => {}
            },
            _ => self.arm_partial(k),
        }
    }

    /// `k`'s stall timer fired: closed as too slow if it is still behind past the limit.
    pub(super) fn check_stall(&mut self, k: usize, now: Instant) {
        let limit = self.limits.stall_limit(self.gate.is_urgent());
        let Some(&since) = self.behind.get(&k) else {
            return;
        };
        if now < since + limit {
            self.timers.set(Timer::Stall(k), since + limit);
            return;
        }
        let reason = format!(
            "too slow: over {} bytes unsent for {}s",
            self.limits.high_water,
            limit.as_secs_f64()
        );
        self.close_warning(k, reason, now);
    }

    /// The stall limit changed (a leave command came or went): every reader behind gets its
    /// timer set to the new limit.
    pub(super) fn rearm_stalls(&mut self) {
        let limit = self.limits.stall_limit(self.gate.is_urgent());
        for (&k, &since) in &self.behind {
            self.timers.set(Timer::Stall(k), since + limit);
        }
    }

    /// Writes what is pending, once per turn: every connection when the log grew (each gets
    /// one `write_vectored` from its place in the log), else those marked dirty. Keeps the
    /// behind set, closes the too slow, shuts down those that are done while leaving, and
    /// lets the log forget what everyone has sent.
    pub(super) fn flush_conns(&mut self, now: Instant) {
        let behind_before = self.behind.len();
        let mut pass = Pass {
            log: &self.shared,
            now,
            leaving: self.chat.is_quitting(),
            limits: &self.limits,
            stall_limit: self.limits.stall_limit(self.gate.is_urgent()),
            behind: &mut self.behind,
            timers: &mut self.timers,
            to_close: Vec::new(),
            too_slow: Vec::new(),
        };
        let dirty = std::mem::take(&mut self.dirty);
        if std::mem::take(&mut self.log_grew) {
            for (k, e) in self.conns.iter_mut() {
                pass.flush(k, e);
            }
        } else {
            for k in dirty {
                if let Some(e) = self.conns.get_mut(k) {
                    pass.flush(k, e);
                }
            }
        }
        let (to_close, too_slow) = (pass.to_close, pass.too_slow);
        if self.behind.len() > behind_before {
            // Someone just fell behind: look at backpressure again now.
            self.hold_checked = None;
        }
        for (k, reason) in to_close {
            self.close(k, Some(reason), now);
        }
        for (k, reason) in too_slow {
            self.close_warning(k, reason, now);
        }
        self.trim_log();
    }

    /// Lets the log forget the blocks every connection has sent.
    fn trim_log(&mut self) {
        if !self.shared.has_old_blocks() {
            return;
        }
        let mut keep = [None::<u64>; 2];
        for (_, e) in &self.conns {
            let Some(pin) = e.conn.pin() else { continue };
            let sides = match e.conn.role() {
                Some(role) => side(role)..side(role) + 1,
                None => 0..2,
            };
            for s in sides {
                keep[s] = Some(keep[s].map_or(pin[s], |k: u64| k.min(pin[s])));
            }
        }
        self.shared.trim(keep);
    }
}

/// One pass of writes over the connections (see `Reactor::flush_conns`).
struct Pass<'a> {
    log: &'a Log,
    now: Instant,
    leaving: bool,
    limits: &'a Limits,
    stall_limit: Duration,
    behind: &'a mut std::collections::BTreeMap<usize, Instant>,
    timers: &'a mut Table,
    to_close: Vec<(usize, String)>,
    /// Over the byte cap.
    too_slow: Vec<(usize, String)>,
}

impl Pass<'_> {
    fn flush(&mut self, k: usize, e: &mut Entry) {
        e.dirty = false;
        let before = e.conn.backlog(self.log);
        let connecting = e.conn.is_connecting();
        if !connecting && before > 0 && !e.conn.is_blocked() {
            if let Err(err) = e.conn.flush_to(&mut e.stream, self.log) {
                self.to_close.push((k, describe(&err)));
                return;
            }
        }
        let backlog = e.conn.backlog(self.log);
        if backlog < before {
            e.pace.last_progress = self.now;
        }
        self.track_behind(k, e, backlog);
        if backlog > self.limits.max_backlog {
            let reason = format!("too slow: over {} bytes unsent", self.limits.max_backlog);
            self.too_slow.push((k, reason));
            return;
        }
        let leaving = self.leaving || e.conn.is_retiring();
        let open = *e.conn.phase() == Phase::Open;
        if leaving && backlog == 0 && open && e.conn.role().is_some() {
            // Everything is out: say so with a FIN, and wait for the other end to close,
            // so that nothing we sent is lost to a reset.
            let _ = e.stream.shutdown(Shutdown::Write);
            e.conn.shut(self.log.end());
        }
    }

    /// Keeps the behind set and `k`'s stall timer in step with its `backlog`.
    fn track_behind(&mut self, k: usize, e: &mut Entry, backlog: usize) {
        let over = backlog > self.limits.high_water;
        let now = self.now;
        match (over, self.behind.contains_key(&k)) {
            (true, false) => {
                // Just fell behind: one that can be written has the progress window to show it
                // is draining; one that cannot yet (connecting, or its role unknown) holds no
                // one up.
                if e.conn.role().is_some() && !e.conn.is_connecting() {
                    e.pace.last_progress = now;
                }
                e.pace.kernel_unsent = 0;
                self.behind.insert(k, now);
                self.timers.set(Timer::Stall(k), now + self.stall_limit);
            }
            (false, true) => {
                self.behind.remove(&k);
                self.timers.cancel(&Timer::Stall(k));
            }
            _ => {}
        }
    }
}
