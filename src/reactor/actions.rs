//! Carrying out what the chat asks, in the order it asks (the order is visible to users):
//! classifying, broadcasting through the shared log, direct frames and lines, closing,
//! retiring duplicates, dialling, showing, leaving. Also hands typed lines to the chat.
//!
//! Must not decide anything the chat decides; it only turns actions into bytes and calls.

use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

use log::debug;

use super::gate::Waits;
use super::table::role_slot;
use super::timers::{Timer, RETIRE_GRACE};
use super::{dial, timers, Reactor};
use crate::chat::{Action, ConnId};
use crate::event::{Event, Role};
use crate::input::Input;
use crate::protocol::Frame;

impl<W: Write> Reactor<W> {
    /// Carries out every action the chat has queued.
    pub(super) fn apply_actions(&mut self, now: Instant) {
        while let Some(action) = self.chat.poll_action() {
            self.apply_action(action, now);
        }
    }

    /// Carries out one action of the chat's.
    fn apply_action(&mut self, action: Action, now: Instant) {
        match action {
            Action::Classify { conn, role } => self.classify(conn, role),
            Action::Broadcast { except, frame } => self.broadcast(except, frame),
            Action::Close { conn, reason } => self.close_warning(conn, reason, now),
            Action::Send { conn, frame } => {
                if let Some(e) = self.conns.get_mut(conn) {
                    e.conn.queue_direct(&frame, self.shared.end());
                    self.mark_dirty(conn);
                }
            }
            Action::Refused { conn, reason } => {
                if let Some(label) = self.conns.get(conn).map(|e| e.conn.addr().to_string()) {
                    self.close(conn, Some(reason.clone()), now);
                    self.dial_failed(super::DialError::Connect { label, why: reason });
                }
            }
            Action::SendFirst { conn, line } => {
                if let Some(e) = self.conns.get_mut(conn) {
                    e.conn.queue_urgent(format!("{line}\n").into_bytes());
                    self.mark_dirty(conn);
                }
            }
            Action::Tell { conn, text } => {
                if let Some(e) = self.conns.get_mut(conn) {
                    let line = format!("{}\n", crate::safe::sanitize(&text));
                    e.conn.queue_raw(line.as_bytes(), self.shared.end());
                    self.mark_dirty(conn);
                }
            }
            Action::Retire { conn } => self.retire(conn, now),
            Action::Dial(addr) => self.auto_dial(addr, now),
            Action::Connect(label) => self.connect(&label, now),
            Action::Show(event) => self.show(&event),
            Action::RememberKey { line } => self.remember_key(&line),
            Action::Quit => self.quit(now),
        }
    }

    /// The chat knows what `conn` is: what was held for it goes out in that format.
    fn classify(&mut self, conn: ConnId, role: Role) {
        if let Some(e) = self.conns.get_mut(conn) {
            self.roles[role_slot(e.conn.role())] -= 1;
            self.roles[role_slot(Some(role))] += 1;
            e.conn.classify(role, &self.shared);
            self.mark_dirty(conn);
            // A guest's unfinished line is due by other rules than a connection not known yet.
            self.arm_partial(conn);
        }
    }

    /// A duplicate link: no more broadcasts, closed once what is queued is out or the grace
    /// is over.
    fn retire(&mut self, conn: ConnId, now: Instant) {
        if let Some(e) = self.conns.get_mut(conn) {
            debug!("retiring a duplicate connection to {}", e.conn.addr());
            e.conn.retire(self.shared.end());
            self.timers
                .set_earliest(Timer::Retire(conn), now + RETIRE_GRACE);
            self.mark_dirty(conn);
        }
    }

    /// The user leaves: stop listening, drop our own dials nobody waits for, and give the rest
    /// the quit grace to deliver.
    fn quit(&mut self, now: Instant) {
        // The grace runs from the leave: only a dial completing while leaving extends it
        // (see `opened`), so nothing that came before may stretch it.
        self.quit_deadline = None;
        self.extend_quit_grace(now);
        self.acceptor.close(self.poll.registry());
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            if self.conns.get(k).is_some_and(|e| e.is_speculative()) {
                // Not worth delaying the exit for.
                self.drop_speculative(k);
            } else {
                self.mark_dirty(k);
            }
        }
    }

    /// Appends `frame` to the shared log, which every connection receiving broadcasts reads
    /// (all but `except`, a duplicate being retired, and those we are leaving): one encoding
    /// per format, no copy per connection. They are written at the end of the turn.
    fn broadcast(&mut self, except: Option<ConnId>, frame: Rc<Frame>) {
        let unknown = self.roles[role_slot(None)];
        let wanted = [
            self.roles[role_slot(Some(Role::Peer))] + unknown > 0,
            self.roles[role_slot(Some(Role::Guest))] + unknown > 0,
        ];
        let (start, end) = self.shared.append(&frame, wanted);
        self.log_grew = true;
        if let Some(e) = except.and_then(|k| self.conns.get_mut(k)) {
            e.conn.skip(start, end);
        }
        let own_speech =
            matches!(&*frame, Frame::Msg { id, .. } | Frame::Me { id, .. } if id.node == self.node);
        // Peers get what the user said later, signed in a bundle: skipped on a trial too.
        let own_signed_speech = matches!(&*frame, Frame::Signed(b) if b.node == self.node
            && b.frames.iter().any(|f| matches!(f, Frame::Msg { .. } | Frame::Me { .. })));
        if (own_speech || own_signed_speech) && self.redial.is_waiting() {
            // A re-dial still coming up is nobody yet: what the user says meanwhile is not
            // sent on it, as the notice below tells them, even if it comes up a moment later.
            for (_, e) in self.conns.iter_mut() {
                if self.redial.is_trial(e) {
                    e.conn.skip(start, end);
                }
            }
        }
        if own_speech && except.is_none() {
            self.tell_if_nobody(&frame);
        }
    }

    /// The user's own message or action reaches nobody now (the chat holds it for the next
    /// peer): said once until someone connects in line mode (not once per line of a pipe, and
    /// only for messages, as ever); on the terminal, where the typed line is gone from the
    /// prompt, for every line, with its text.
    fn tell_if_nobody(&mut self, frame: &Frame) {
        let terminal = self.screen.is_terminal();
        let said = match frame {
            Frame::Msg { text, .. } => text.clone(),
            Frame::Me { nick, text, .. } if terminal => format!("* {nick} {text}"),
            _ => return,
        };
        if self.told_nobody && !terminal {
            return;
        }
        let someone = self.conns.iter().any(|(_, e)| {
            e.conn.is_subscribed() && !e.is_speculative() && !self.redial.is_trial(e)
        });
        if someone {
            return;
        }
        if terminal {
            self.show(&Event::Info(format!(
                "waiting to be sent (nobody is connected): {said}"
            )));
        } else {
            self.told_nobody = true;
            self.show(&Event::Info(
                "nobody is connected; what you say waits to be sent until a peer connects".into(),
            ));
        }
    }

    /// Takes typed or piped lines through the gate (see `gate`) to the chat, then carries out
    /// what they asked for, as one batch. A `/connect` of a name ends the batch: the lines
    /// after it wait for the lookup, so that they reach the new peer as when the lookup
    /// blocked the loop. A leave command among the waiting lines shortens the time a stalled
    /// reader may hold them up, and caps the wait for a lookup.
    pub(super) fn drain_input(&mut self, now: Instant) {
        let was_urgent = self.gate.is_urgent();
        let waits = Waits {
            settling: self.chat.is_settling() || self.lan_settling(),
            lookup: self.resolver.is_pending(),
            behind: !self.behind.is_empty(),
        };
        let mut taken = self.gate.take(now, waits).into_iter();
        let mut batch = Vec::new();
        while let Some(input) = taken.next() {
            match input {
                Input::Line(line) => self.chat.handle_input(&line, now),
                Input::End if self.gate.keeps_open() => self.show(&Event::Info(
                    "input ended; still receiving (--keep-open)".into(),
                )),
                Input::End => self.chat.handle_input_end(),
            }
            let from = batch.len();
            // Unsigned for now: the whole batch of typed lines is signed once, below.
            batch.extend(std::iter::from_fn(|| self.chat.poll_queued()));
            let looks_up = batch[from..]
                .iter()
                .any(|a| matches!(a, Action::Connect(label) if dial::needs_lookup(label)));
            if looks_up && self.gate.waits_for_lookups(now) {
                self.gate.put_back(taken.collect());
                break;
            }
        }
        batch.extend(std::iter::from_fn(|| self.chat.poll_action()));
        for action in batch {
            self.apply_action(action, now);
        }
        // Only a cap still ahead: one passed would wake the loop at once, every turn.
        let cap = self.gate.lookup_cap().filter(|&cap| cap > now);
        timers::arm(&mut self.timers, Timer::LookupWait, cap);
        if self.gate.is_urgent() != was_urgent {
            self.rearm_stalls();
        }
    }
}
