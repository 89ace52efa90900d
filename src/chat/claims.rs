//! Claims that a node was lost, and the answers to them: a suspicion waits for fresh news of the
//! node before it is believed (or is believed at once when nothing can bring news), this node
//! says `HERE` when it is claimed lost or has a new peer (at most once a second), and a
//! heartbeat says `HERE` now and then and forgets nodes nobody has heard from.
//!
//! The state is the origins table's (`origins.rs`) and the roster's; this file holds the
//! chat's steps over them. Must not do IO: what to send is queued on the chat's action queue.

use std::time::{Duration, Instant};

use super::origins::{Claim, HEARTBEAT, SILENT_MAX, SUSPECT_WAIT};
use super::{Chat, Due};
use crate::protocol::{Frame, MemberId, NodeId};

/// At most one `HERE` of ours a second, however many claims or new peers ask for one: no
/// stimulus makes this node send more than a small, bounded amount.
const HERE_EVERY: Duration = Duration::from_secs(1);

impl Chat {
    /// `node` may be lost: believed when [`Due::Suspect`] fires, unless fresh news came.
    pub(super) fn suspect(&mut self, node: NodeId, reason: Option<String>) {
        if self.origins.claim(node, reason) == Claim::Suspected {
            self.timers
                .set(Due::Suspect(node), self.clock + SUSPECT_WAIT);
        }
    }

    /// A suspicion's time is up: if nothing fresh came from the node, and we have no
    /// connection to it, it is shown leaving (with its guests), lost but not gone.
    pub(super) fn suspect_due(&mut self, node: NodeId) {
        let Some(s) = self.origins.judge(node) else {
            return;
        };
        let member = MemberId::node(node);
        if self.neighbours.peer_conn(node).is_some() || !self.roster.contains(&member) {
            return;
        }
        let addr = self.roster.addr_of(&member);
        self.roster.mark_lost(member, self.clock);
        self.remove_member(member, addr, s.reason);
    }

    /// With no peer left, this node is cut off from every other node: the claims waiting for
    /// news through others (see [`Chat::suspect`]) can only be believed, now.
    pub(super) fn believe_if_cut_off(&mut self) {
        if !self.neighbours.any_active_peer() {
            self.believe_suspicions();
        }
    }

    /// Every suspicion is judged now rather than at its time: nothing fresh can come, so the
    /// nodes suspected are shown leaving.
    pub(super) fn believe_suspicions(&mut self) {
        for node in self.origins.suspected() {
            self.timers.cancel(&Due::Suspect(node));
            self.suspect_due(node);
        }
    }

    /// This node owes the others a fresh `HERE` (it was claimed lost, or has a new peer):
    /// sent at once, or when the rate limit allows (one a second), however often it is owed.
    pub(super) fn owe_here(&mut self) {
        match self.here_sent {
            Some(at) if self.clock < at + HERE_EVERY => {
                if !self.here_owed {
                    self.here_owed = true;
                    self.timers.set(Due::Here, at + HERE_EVERY);
                }
            }
            _ => self.say_here(),
        }
    }

    /// Says `HERE` for this node, signed with its key.
    pub(super) fn say_here(&mut self) {
        if self.quitting {
            return;
        }
        self.here_owed = false;
        self.here_sent = Some(self.clock);
        let id = self.next_id();
        let here = Frame::Here {
            id,
            member: self.me,
            nick: self.cfg.nick.clone(),
            addr: None,
            key: Some(self.node_key()),
        };
        self.out.originate(None, here);
    }

    /// Now and then: say we are here (if anyone can hear it), and forget nodes nobody has
    /// heard from for [`SILENT_MAX`], whoever announced them.
    pub(super) fn heartbeat(&mut self, now: Instant) {
        self.timers.set(Due::Heartbeat, now + HEARTBEAT);
        if !self.neighbours.active_peers().is_empty() {
            self.say_here();
        }
        let Some(before) = now.checked_sub(SILENT_MAX) else {
            return;
        };
        for node in self.origins.silent_since(before) {
            if node == self.cfg.node || self.neighbours.peer_conn(node).is_some() {
                self.origins.touch(node, now);
                continue;
            }
            let member = MemberId::node(node);
            let addr = self.roster.addr_of(&member);
            self.roster.mark_lost(member, now);
            self.remove_member(member, addr, Some("not heard from in 3 minutes".into()));
            self.origins.forget(node);
        }
    }
}
