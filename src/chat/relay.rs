//! Relaying frames over the mesh: the seen set that drops what came back over another path, and
//! one function per frame kind (MSG/ME, DM, NICK, JOIN/HERE, LEAVE) deciding what to show, what
//! to record and whether to pass the frame on. A guest's lines enter the mesh here too (its
//! commands are `guests.rs`').
//!
//! Must not classify connections (the handshake does) nor do IO: what to send is queued on the
//! chat's one action queue.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::flood::{Cut, Verdict};
use super::neighbours::{Guest, Kind};
use super::recent::Recent;
use super::{Chat, Command, ConnId};
use crate::event::{Event, Speech};
use crate::protocol::{self, Frame, MemberId, MsgId, NodeId, MAX_TEXT};

/// How many message ids are remembered to drop duplicates that come back over another path,
/// and for how long at most.
pub(super) const SEEN_CAP: usize = 100_000;
pub(super) const SEEN_AGE: Duration = Duration::from_secs(600);

/// Whether a frame goes on to the other neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forward {
    Yes,
    No,
}

/// The ids of frames from other nodes seen lately.
#[derive(Debug)]
pub(super) struct Seen(Recent<MsgId>);

impl Seen {
    pub(super) fn new() -> Seen {
        Seen(Recent::new(SEEN_CAP, Some(SEEN_AGE)))
    }

    /// True the first time `id` is seen (within the cap and age).
    fn first_time(&mut self, id: MsgId, now: Instant) -> bool {
        self.0.insert(id, now)
    }
}

impl Chat {
    /// A frame from the peer on `conn`.
    pub(super) fn peer_frame(&mut self, conn: ConnId, frame: Frame) {
        match frame {
            Frame::Ping => return self.out.send(conn, Frame::Pong),
            Frame::Pong => return self.confirm_alive(conn),
            Frame::Hello(_) | Frame::Unknown(_) => return,
            Frame::Close(_) => return self.close_frame(conn),
            Frame::Peers(peers) => return self.peers_frame(conn, peers),
            _ => {}
        }
        let Some(id) = frame.id() else {
            return;
        };
        // Our own frames coming back around a loop: dropped without a lookup (they are not
        // recorded in `seen`, which keeps the sending path cheap).
        if id.node == self.cfg.node || !self.seen.first_time(id, self.clock) {
            return;
        }
        let forward = match &frame {
            Frame::Msg {
                from, nick, text, ..
            } => self.msg_frame(*from, nick, text, Speech::Say),
            Frame::Me {
                from, nick, text, ..
            } => self.msg_frame(*from, nick, text, Speech::Act),
            Frame::Dm {
                from,
                nick,
                to,
                text,
                ..
            } => self.dm_frame(&frame, *from, nick, *to, text),
            Frame::Nick { member, nick, .. } => self.nick_frame(*member, nick),
            Frame::Join {
                id,
                member,
                nick,
                addr,
            } => self.join_frame(*id, *member, nick, addr, Evidence::Relayed),
            Frame::Here {
                id,
                member,
                nick,
                addr,
            } => self.join_frame(*id, *member, nick, addr, Evidence::Fresh),
            Frame::Leave {
                id, member, reason, ..
            } => self.leave_frame(*id, *member, reason.clone()),
            _ => Forward::No,
        };
        if forward == Forward::Yes {
            self.out.broadcast(Some(conn), frame);
        }
    }

    /// A `CLOSE`: its end goes once what it sent is read; ours once what we queued is out.
    fn close_frame(&mut self, conn: ConnId) {
        if self.neighbours.retire(conn) {
            self.out.retire(conn);
        }
    }

    fn msg_frame(&mut self, from: MemberId, nick: &str, text: &str, speech: Speech) -> Forward {
        self.roster.note(from, nick, self.clock);
        let (from, text) = (self.roster.display(from), text.to_string());
        self.out.show(match speech {
            Speech::Act => Event::Me { from, text },
            Speech::Say => Event::Message { from, text },
        });
        Forward::Yes
    }

    /// A DM: shown if it is for us, handed to our guest if for one, else passed on unless it
    /// is for a guest of ours that is gone.
    fn dm_frame(
        &mut self,
        frame: &Frame,
        from: MemberId,
        nick: &str,
        to: MemberId,
        text: &str,
    ) -> Forward {
        if to == self.me {
            self.roster.note(from, nick, self.clock);
            self.out.show(Event::Dm {
                from: self.roster.display(from),
                to: self.cfg.nick.clone(),
                text: text.to_string(),
            });
            Forward::No
        } else if let Some(guest) = self.neighbours.guest_conn(to, self.cfg.node) {
            self.out.send(guest, frame.clone());
            Forward::No
        } else if to.node == self.cfg.node {
            // For a guest of ours that is gone: nobody else can deliver it.
            Forward::No
        } else {
            Forward::Yes
        }
    }

    fn nick_frame(&mut self, member: MemberId, nick: &str) -> Forward {
        if member == self.me {
            return Forward::No;
        }
        if !self.roster.contains(&member) {
            // Unknown here: it will be known by its new nick when it speaks.
            return Forward::Yes;
        }
        let before = self.roster.display(member);
        self.roster.update(member, nick, None);
        self.out.show(Event::Nick {
            old: before,
            nick: self.roster.display(member),
        });
        Forward::Yes
    }

    /// A JOIN or HERE: records a member not known yet, and passes that news on.
    fn join_frame(
        &mut self,
        id: MsgId,
        member: MemberId,
        nick: &str,
        addr: &Option<String>,
        evidence: Evidence,
    ) -> Forward {
        // Fresh evidence: from the member's own node, or from a node that just heard it.
        if evidence == Evidence::Fresh || id.node == member.node {
            self.roster.found(&member);
        }
        let host = MemberId::node(member.node);
        let host_away = member.guest > 0 && self.roster.is_away(&host, self.clock);
        if member.node == self.cfg.node || host_away || self.roster.is_away(&member, self.clock) {
            Forward::No
        } else if self.roster.contains(&member) {
            // Known: the flood stops here.
            self.roster.update(member, nick, addr.clone());
            Forward::No
        } else if self.add_member(member, nick, addr.clone()) {
            Forward::Yes
        } else {
            // Past the roster's caps: not recorded here, so not passed on either.
            Forward::No
        }
    }

    /// A LEAVE: from the member's own node it left for good; from another node, that node lost
    /// it (which we check with a `PING` if it is our neighbour too).
    fn leave_frame(&mut self, id: MsgId, member: MemberId, reason: Option<String>) -> Forward {
        if member == self.me {
            // A neighbour lost us, but we are here: say so to everyone, for our guests too.
            self.announce_here(self.cfg.node);
            return Forward::No;
        }
        if member.node == self.cfg.node {
            return Forward::No;
        }
        let direct = self
            .neighbours
            .peer_conn(member.node)
            .filter(|_| member.guest == 0);
        // Sent by the member's own node: it (or its guest) left for good.
        if id.node == member.node {
            self.said_bye(member, direct, reason);
            return Forward::Yes;
        }
        if let Some(k) = direct {
            // We still have a connection to it, but it may be dying too (a crash reaches its
            // neighbours one by one): ask it, and tell the others it is here only if it answers.
            self.verify_alive(k);
            return Forward::No;
        }
        if member.guest == 0 && self.roster.contains(&member) {
            let addr = self.roster.addr_of(&member);
            self.roster.mark_lost(member, self.clock);
            return if self.remove_member(member, addr, reason) {
                Forward::Yes
            } else {
                Forward::No
            };
        }
        Forward::No
    }

    /// `member` left for good, its own node says; `direct` is our connection to it, if any.
    fn said_bye(&mut self, member: MemberId, direct: Option<ConnId>, reason: Option<String>) {
        self.roster.mark_gone(member, self.clock);
        // Its own goodbye: its connection's close needs no announcement, and it is not dialled
        // again.
        let said = direct.and_then(|k| self.neighbours.said_bye(k));
        let (addr, listen) = (said.map(|s| s.0), said.and_then(|s| s.1));
        if let Some(l) = listen {
            self.forget_redial(l);
        }
        let addr = addr
            .map(|a| a.to_string())
            .or_else(|| self.roster.addr_of(&member));
        self.remove_member(member, addr, reason);
    }

    /// Tells everyone that node `node` and the guests it hosts are here (`HERE`), as this node
    /// knows them.
    pub(super) fn announce_here(&mut self, node: NodeId) {
        // To peers only: this node's guests never saw them go.
        let peers = self.neighbours.active_peers();
        for (member, m) in self.roster.hosted(node) {
            let id = self.next_id();
            let frame = Rc::new(Frame::Here {
                id,
                member,
                nick: m.nick,
                addr: m.addr,
            });
            for &conn in &peers {
                self.out.send_shared(conn, frame.clone());
            }
        }
    }

    /// A line from guest `conn`, within its flood limit: a command (see `guests.rs`), or
    /// shown and sent on as its message.
    pub(super) fn guest_line(&mut self, conn: ConnId, text: &str) {
        let now = self.clock;
        let limit = self.cfg.guest_rate;
        let Some(Kind::Guest(Guest {
            member,
            nick,
            bucket,
            ..
        })) = self.neighbours.get_mut(conn).map(|c| &mut c.kind)
        else {
            return;
        };
        if self.quitting || text.trim().is_empty() {
            return;
        }
        if let Some(limit) = limit {
            if let Verdict::Drop { tell, cut } = bucket.take(now, limit) {
                return self.flood_dropped(conn, limit.per_sec, tell, cut);
            }
        }
        let (member, nick) = (*member, nick.clone());
        let text = match Command::parse(text) {
            Command::Say(text) => text,
            command => return self.guest_command(conn, member, command),
        };
        let from = self.roster.display(member);
        for piece in protocol::split_text(text, MAX_TEXT) {
            let id = self.next_id();
            self.out.show(Event::Message {
                from: from.clone(),
                text: piece.to_string(),
            });
            self.out.broadcast(
                Some(conn),
                Frame::Msg {
                    id,
                    from: member,
                    nick: nick.clone(),
                    text: piece.to_string(),
                },
            );
        }
    }

    /// A guest's line was dropped for flooding: tell it (at most once a second), and cut it off
    /// when it has flooded too long.
    fn flood_dropped(&mut self, conn: ConnId, per_sec: f64, tell: Option<u64>, cut: Cut) {
        if let Some(n) = tell {
            let text =
                format!("peerchat: slow down: {n} line(s) not sent (at most {per_sec} a second)");
            self.out.tell(conn, text);
        }
        if cut == Cut::Disconnect {
            self.out
                .tell(conn, "peerchat: disconnected for flooding".into());
            self.drop_conn(conn, "flooding".into());
        }
    }
}

/// Whether a join is fresh evidence of the member (a `HERE`) or news relayed (a `JOIN`, fresh
/// only when from the member's own node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Evidence {
    Fresh,
    Relayed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once() {
        let now = Instant::now();
        let mut seen = Seen::new();
        let id = MsgId { node: 2, seq: 1 };
        assert!(seen.first_time(id, now));
        assert!(!seen.first_time(id, now));
        assert!(
            seen.first_time(id, now + SEEN_AGE * 2),
            "forgotten past the age"
        );
    }
}
