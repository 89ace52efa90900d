//! The stdin gate: typed or piped lines come off the stdin thread's channel into a short
//! queue, and are let through within a per-turn budget, only while no connection is behind,
//! (mesh mode) not before the first scan had its moment, and not while a `/connect` name is
//! looked up. A leave command waiting in the queue is noticed at once (it makes a stalled
//! reader's grace shorter, and caps the wait for a lookup).
//!
//! Pure but for the channel: must not call the chat or touch connections; the reactor hands
//! what it lets through to the chat.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use super::timers::LOOKUP_WAIT_LEAVING;
use crate::chat;
use crate::input::Input;

/// Typed or piped input taken per loop turn, at most, before connections are written.
const BUDGET_LINES: usize = 1024;
const BUDGET_BYTES: usize = 256 * 1024;

/// Lines taken off the stdin channel while input waits, so that a typed `/quit` behind them is
/// seen at once.
const QUEUE: usize = 1024;

/// What input may be waiting for, as [`Gate::take`] is told each time.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Waits {
    /// Mesh start-up: the chat's first scan is still dialling.
    pub settling: bool,
    /// A host name of `/connect` is being looked up: the lines after it wait for its dial, so
    /// that they reach the new peer.
    pub lookup: bool,
    /// Some connection is behind: input waits for it.
    pub behind: bool,
}

/// The stdin gate.
pub(super) struct Gate {
    input: Option<Receiver<Input>>,
    /// Lines taken off the channel but not yet let through.
    queued: VecDeque<Input>,
    /// Input is waiting (queued here, or left in the channel) that this turn did not take.
    more: bool,
    /// A leave command waits among the queued lines.
    urgent: bool,
    /// Mesh start-up: input waits for the first scan's dials, until then at the latest.
    hold_until: Option<Instant>,
    /// A leave command arrived while a lookup was under way: input waits for lookups until
    /// then at the latest, so that leaving cannot hang on a resolver.
    lookup_cap: Option<Instant>,
    /// Keep running after input ends (`--keep-open`).
    keep_open: bool,
}

impl Gate {
    pub(super) fn new(keep_open: bool) -> Self {
        Gate {
            input: None,
            queued: VecDeque::new(),
            more: false,
            urgent: false,
            hold_until: None,
            lookup_cap: None,
            keep_open,
        }
    }

    /// Reads from `rx` from now on.
    pub(super) fn attach(&mut self, rx: Receiver<Input>) {
        self.input = Some(rx);
    }

    /// Input waits until `until` while the chat is settling (see [`Gate::take`]).
    pub(super) fn hold(&mut self, until: Instant) {
        self.hold_until = Some(until);
    }

    /// True until input has ended.
    pub(super) fn is_open(&self) -> bool {
        self.input.is_some()
    }

    pub(super) fn keeps_open(&self) -> bool {
        self.keep_open
    }

    /// Input is waiting that the last [`Gate::take`] did not let through.
    pub(super) fn has_more(&self) -> bool {
        self.more
    }

    /// A leave command waits: a stalled reader holding it up gets less time.
    pub(super) fn is_urgent(&self) -> bool {
        self.urgent
    }

    /// Until when lines wait for lookups although a leave command waits among them.
    pub(super) fn lookup_cap(&self) -> Option<Instant> {
        self.lookup_cap
    }

    /// Lines wait for a lookup under way: always, but once a leave command has waited behind
    /// one for [`LOOKUP_WAIT_LEAVING`].
    pub(super) fn waits_for_lookups(&self, now: Instant) -> bool {
        self.lookup_cap.is_none_or(|cap| now < cap)
    }

    /// What may go to the chat now, in order: within the turn's budget, nothing while a
    /// connection is behind (the stdin thread then blocks on its full channel instead of
    /// input piling up in memory), nothing during the start-up hold while the chat is settling
    /// unless the user is leaving, and nothing while a name is looked up (see
    /// [`Gate::waits_for_lookups`]).
    pub(super) fn take(&mut self, now: Instant, waits: Waits) -> Vec<Input> {
        let channel_open = self.fill();
        let urgent = self.leave_waits();
        self.urgent = urgent;
        if let Some(until) = self.hold_until {
            if now < until && waits.settling && !urgent {
                self.more = false;
                return Vec::new();
            }
            self.hold_until = None;
        }
        if !waits.lookup {
            self.lookup_cap = None;
        } else {
            if urgent && self.lookup_cap.is_none() {
                self.lookup_cap = Some(now + LOOKUP_WAIT_LEAVING);
            }
            if self.waits_for_lookups(now) {
                self.more = false;
                return Vec::new();
            }
        }
        let mut taken = Vec::new();
        let (mut lines, mut bytes) = (0, 0);
        while !waits.behind && lines < BUDGET_LINES && bytes < BUDGET_BYTES {
            let Some(input) = self.queued.pop_front() else {
                break;
            };
            match &input {
                Input::Line(line) => {
                    lines += 1;
                    bytes += line.len();
                }
                Input::End => self.input = None,
            }
            taken.push(input);
        }
        self.more = !self.queued.is_empty() || (channel_open && self.input.is_some());
        self.urgent = urgent && !self.queued.is_empty();
        taken
    }

    /// Puts back, in front of what waits, lines that [`Gate::take`] gave but the chat did not
    /// get (a lookup began before them). They wait for its answer, which wakes the loop.
    pub(super) fn put_back(&mut self, rest: Vec<Input>) {
        for input in rest.into_iter().rev() {
            self.queued.push_front(input);
        }
        self.urgent = self.leave_waits();
        self.more = false;
    }

    /// A leave command is among the queued lines.
    fn leave_waits(&self) -> bool {
        self.queued
            .iter()
            .any(|i| matches!(i, Input::Line(l) if chat::is_leave_command(l)))
    }

    /// Moves lines from the channel to the queue, up to [`QUEUE`]; false once it is empty.
    fn fill(&mut self) -> bool {
        while self.queued.len() < QUEUE {
            let Some(rx) = &self.input else { return true };
            match rx.try_recv() {
                Ok(Input::End) => {
                    // The stdin thread's last word: its channel closing next is the same end,
                    // not a second one (which `--keep-open` would announce again).
                    self.queued.push_back(Input::End);
                    self.input = None;
                }
                Ok(input) => self.queued.push_back(input),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => {
                    self.queued.push_back(Input::End);
                    self.input = None;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::time::Duration;

    const BEHIND: Waits = Waits {
        settling: false,
        lookup: false,
        behind: true,
    };
    const SETTLING: Waits = Waits {
        settling: true,
        lookup: false,
        behind: false,
    };
    const LOOKUP: Waits = Waits {
        settling: false,
        lookup: true,
        behind: false,
    };

    fn line(s: &str) -> Input {
        Input::Line(s.into())
    }

    /// A gate with `inputs` waiting in its channel, which stays open while the sender lives.
    fn gate_with(inputs: Vec<Input>) -> (Gate, SyncSender<Input>) {
        let (tx, rx) = sync_channel(QUEUE * 2);
        for i in inputs {
            tx.send(i).expect("send");
        }
        let mut gate = Gate::new(false);
        gate.attach(rx);
        (gate, tx)
    }

    #[test]
    fn lines_wait_while_a_connection_is_behind_and_a_leave_among_them_is_urgent() {
        let now = Instant::now();
        let (mut gate, _tx) = gate_with(vec![line("one"), line("/quit")]);
        assert!(gate.take(now, BEHIND).is_empty());
        assert!(gate.has_more());
        assert!(gate.is_urgent());
        assert_eq!(
            gate.take(now, Waits::default()),
            vec![line("one"), line("/quit")]
        );
        assert!(!gate.is_urgent());
    }

    #[test]
    fn a_turn_takes_at_most_its_budget_of_lines() {
        let now = Instant::now();
        let inputs = (0..BUDGET_LINES + 5)
            .map(|i| line(&i.to_string()))
            .collect();
        let (mut gate, _tx) = gate_with(inputs);
        assert_eq!(gate.take(now, Waits::default()).len(), BUDGET_LINES);
        assert!(gate.has_more());
        assert_eq!(gate.take(now, Waits::default()).len(), 5);
    }

    #[test]
    fn the_start_up_hold_keeps_lines_back_until_it_ends_or_the_user_leaves() {
        let now = Instant::now();
        let until = now + Duration::from_secs(3);
        let (mut gate, _tx) = gate_with(vec![line("early")]);
        gate.hold(until);
        assert!(gate.take(now, SETTLING).is_empty());
        assert_eq!(gate.take(until, SETTLING), vec![line("early")]);

        let (mut leaving, _tx2) = gate_with(vec![line("early"), line("/quit")]);
        leaving.hold(until);
        assert_eq!(leaving.take(now, SETTLING).len(), 2);
    }

    #[test]
    fn the_channel_closing_is_the_end_of_input() {
        let (tx, rx) = sync_channel(4);
        tx.send(line("last")).expect("send");
        drop(tx);
        let mut gate = Gate::new(false);
        gate.attach(rx);
        assert_eq!(
            gate.take(Instant::now(), Waits::default()),
            vec![line("last"), Input::End]
        );
        assert!(!gate.is_open());
        assert!(!gate.has_more());
    }

    #[test]
    fn an_end_sent_before_the_channel_closes_is_one_end_not_two() {
        let (tx, rx) = sync_channel(4);
        tx.send(line("last")).expect("send");
        tx.send(Input::End).expect("send");
        drop(tx);
        let mut gate = Gate::new(true);
        gate.attach(rx);
        assert_eq!(
            gate.take(Instant::now(), Waits::default()),
            vec![line("last"), Input::End]
        );
        assert!(gate.take(Instant::now(), Waits::default()).is_empty());
        assert!(!gate.has_more());
    }

    #[test]
    fn lines_put_back_during_a_lookup_wait_for_it_even_a_leave_until_its_cap() {
        let now = Instant::now();
        let (mut gate, _tx) = gate_with(vec![line("/connect far:1"), line("hi")]);
        let mut taken = gate.take(now, Waits::default());
        assert_eq!(taken.len(), 2);
        gate.put_back(taken.split_off(1));
        assert!(!gate.has_more(), "nothing to do until the lookup is back");
        assert!(gate.take(now, LOOKUP).is_empty());
        assert_eq!(gate.take(now, Waits::default()), vec![line("hi")]);

        let (mut leaving, _tx2) = gate_with(vec![line("/connect far:1"), line("/quit")]);
        let mut taken = leaving.take(now, Waits::default());
        leaving.put_back(taken.split_off(1));
        assert!(!leaving.has_more() && leaving.is_urgent());
        assert!(leaving.waits_for_lookups(now));
        // The leave waits for the lookup too, and (all of it at once) once the cap is over.
        assert!(leaving.take(now, LOOKUP).is_empty());
        assert!(
            leaving.is_urgent(),
            "the leave still shortens a stalled reader's grace"
        );
        let cap = now + LOOKUP_WAIT_LEAVING;
        assert_eq!(leaving.lookup_cap(), Some(cap));
        let later = now + Duration::from_millis(100);
        assert!(leaving.take(later, LOOKUP).is_empty());
        assert_eq!(
            leaving.lookup_cap(),
            Some(cap),
            "the cap runs from the leave"
        );
        assert!(!leaving.waits_for_lookups(cap));
        assert_eq!(leaving.take(cap, LOOKUP), vec![line("/quit")]);
    }

    #[test]
    fn a_lookup_that_comes_back_ends_the_cap_so_the_next_one_waits_again() {
        let now = Instant::now();
        let (mut gate, tx) = gate_with(vec![line("/quit")]);
        assert!(gate.take(now, LOOKUP).is_empty());
        assert!(gate.lookup_cap().is_some());
        assert_eq!(gate.take(now, Waits::default()), vec![line("/quit")]);
        assert_eq!(gate.lookup_cap(), None);
        tx.send(line("after")).expect("send");
        assert!(gate.take(now + LOOKUP_WAIT_LEAVING, LOOKUP).is_empty());
    }
}
