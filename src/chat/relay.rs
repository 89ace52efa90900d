//! Relaying frames over the mesh: signed bundles read and checked, each frame taken once (the
//! seen set is `seen.rs`), and one function per frame kind (MSG/ME, DM, NICK, JOIN/HERE, LEAVE)
//! deciding what to show, what to record and whether to pass the frame on. A guest's lines
//! enter the mesh here too (its commands are `guests.rs`'); what this node says itself is
//! signed in `originate.rs`.
//!
//! Must not classify connections (the handshake does) nor do IO: what to send is queued on the
//! chat's one action queue.

use std::rc::Rc;

use super::flood::{Cut, Verdict};
use super::neighbours::{Guest, Incoming, Kind};
use super::{Chat, Command, ConnId, KeyCheck};
use crate::event::{Event, Speech};
use crate::protocol::{self, Frame, MemberId, NodeId, NodeKey, Signed, MAX_BUNDLE_BYTES, MAX_TEXT};

/// What a bundle's frame must be: flooded, from the bundle's node, and about that node or its
/// guests — except a `LOST`, which is about another node.
fn bundle_rule(node: NodeId, frame: &Frame) -> Result<(), &'static str> {
    let Some(id) = frame.id() else {
        return Err("not a flooded frame");
    };
    if id.node != node {
        return Err("a frame from another node");
    }
    let about = match frame {
        // Since protocol 3 a DM between nodes is sealed (`SDM`): a plain one is not relayed.
        Frame::Dm { .. } => return Err("a plain DM (protocol 3 seals them)"),
        Frame::Msg { from, .. } | Frame::Me { from, .. } | Frame::Sdm { from, .. } => *from,
        Frame::Nick { member, .. }
        | Frame::Join { member, .. }
        | Frame::Here { member, .. }
        | Frame::Leave { member, .. } => *member,
        Frame::Lost { member, .. } => {
            return if member.guest == 0 && member.node != node {
                Ok(())
            } else {
                Err("a claim about itself or a guest")
            };
        }
        _ => return Err("not a flooded frame"),
    };
    if about.node != node {
        return Err("a node speaking for another");
    }
    Ok(())
}

/// The key a bundle from `node` announces for `node` itself (its `JOIN` or `HERE`), whose id
/// the parser already checked against the key.
fn announced_key(node: NodeId, frames: &[Frame]) -> Option<NodeKey> {
    frames.iter().find_map(|f| match f {
        Frame::Join {
            member,
            key: Some(key),
            ..
        }
        | Frame::Here {
            member,
            key: Some(key),
            ..
        } if *member == MemberId::node(node) => Some(*key),
        _ => None,
    })
}

/// Whether a frame goes on to the other neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Forward {
    Yes,
    No,
    /// Not, and neither is its bundle, whatever else is in it: a bundle goes on whole, and this
    /// frame must not (a `JOIN` past the roster's caps).
    Never,
}

impl Chat {
    /// A frame from the peer on `conn`, outside a bundle.
    pub(super) fn peer_frame(&mut self, conn: ConnId, frame: Frame) {
        let hist = self
            .neighbours
            .peer_mut(conn)
            .and_then(|p| p.hist.take())
            .map(|h| *h);
        if hist.is_some() && !matches!(frame, Frame::Bundle(_)) {
            return self.drop_conn(conn, "malformed history: no bundle after its head".into());
        }
        match frame {
            Frame::Ping => self.out.send(conn, Frame::Pong),
            Frame::Pong | Frame::Hello(_) | Frame::Unknown(_) | Frame::Proof(_) => {}
            Frame::Close(_) => self.close_frame(conn),
            Frame::Peers(peers) => self.peers_frame(conn, peers),
            Frame::Bundle(head) => {
                if let Some(p) = self.neighbours.peer_mut(conn) {
                    p.bundle = Some(Box::new(Incoming {
                        head,
                        lines: Vec::new(),
                        frames: Vec::new(),
                        hist,
                    }));
                }
            }
            Frame::HistHead(head) => {
                if let Some(p) = self.neighbours.peer_mut(conn) {
                    p.hist = Some(Box::new(head));
                }
            }
            // A flooded frame must come signed: a neighbour sending one bare is not a node
            // of this version, or is trying something.
            _ => self.drop_conn(conn, "unsigned frame".into()),
        }
    }

    /// One frame line of the bundle being read on `conn`.
    pub(super) fn bundle_line(&mut self, conn: ConnId, text: &str) {
        let frame = match protocol::parse_frame(text) {
            Ok(f) => f,
            Err(e) => return self.drop_conn(conn, e.to_string()),
        };
        let Some(p) = self.neighbours.peer_mut(conn) else {
            return;
        };
        let Some(b) = p.bundle.as_mut() else {
            return;
        };
        if let Err(why) = bundle_rule(b.head.node, &frame) {
            return self.drop_conn(conn, format!("malformed bundle: {why}"));
        }
        b.lines.extend_from_slice(text.as_bytes());
        b.lines.push(b'\n');
        b.frames.push(frame);
        if b.lines.len() > MAX_BUNDLE_BYTES {
            return self.drop_conn(conn, "malformed bundle: too long".into());
        }
        if b.frames.len() == b.head.count {
            if let Some(done) = p.bundle.take() {
                self.bundle_done(conn, *done);
            }
        }
    }

    /// A whole bundle came on `conn`: checked once (unless every frame in it was seen), then
    /// each new frame is handled, and the bundle is passed on as it came if any frame was.
    fn bundle_done(&mut self, conn: ConnId, mut b: Incoming) {
        if let Some(head) = b.hist.take() {
            return self.history_done(conn, head, b);
        }
        let node = b.head.node;
        let now = self.clock;
        self.seen.expire(now);
        // Ours, come back around a loop; or nothing new in it: every frame seen lately, or
        // older than what was seen and forgotten (a replay, or a late copy from an honest
        // neighbour: no forgery, so the connection stays, and no evidence the node is here).
        if node == self.cfg.node
            || b.frames
                .iter()
                .all(|f| f.id().is_some_and(|id| self.seen.old(id, now)))
        {
            return;
        }
        let Some(key) = self
            .origins
            .node_key(node)
            .or_else(|| announced_key(node, &b.frames))
        else {
            // We do not know who signed it (its announcement never reached us): not passed on
            // either, as nobody could check it for us.
            log::debug!("bundle from unknown node {node:016x} dropped");
            return;
        };
        if !protocol::sign::verify_frames(&key.key, node, &b.lines, &b.head.sig) {
            return self.drop_conn(conn, format!("bad signature on frames from {node:016x}"));
        }
        if !self.origins.learn(node, key, now) {
            return;
        }
        let top = b
            .frames
            .iter()
            .filter_map(Frame::id)
            .map(|id| id.seq)
            .max()
            .unwrap_or(0);
        let fresh = self.origins.is_fresh(node, top);
        self.origins.heard(node, top, now);
        if fresh {
            self.roster.found(&MemberId::node(node));
        }
        let signed = Rc::new(Signed::assemble(node, &b.head.sig, b.frames, &b.lines));
        let (mut forward, mut never, mut speech) = (false, false, false);
        for frame in &signed.frames {
            let Some(id) = frame.id() else { continue };
            if self.seen.first_time(id, now) {
                speech |= matches!(frame, Frame::Msg { .. } | Frame::Me { .. });
                match self.flooded_frame(conn, frame, &signed) {
                    Forward::Yes => forward = true,
                    Forward::No => {}
                    Forward::Never => never = true,
                }
            }
        }
        if speech {
            self.keep_history(&signed, self.wall(now));
        }
        if forward && !never {
            // A sealed DM whose recipient's node is a neighbour goes to it alone.
            match self.toward(&signed) {
                Some(next) if next == conn => {}
                Some(next) => self.out.send(next, Frame::Signed(signed)),
                None => self.out.for_peers(Some(conn), signed),
            }
        }
    }

    /// One checked, new flooded frame from bundle `signed`.
    fn flooded_frame(&mut self, conn: ConnId, frame: &Frame, signed: &Rc<Signed>) -> Forward {
        let alone = signed.frames.len() == 1;
        match frame {
            Frame::Msg {
                from, nick, text, ..
            } => self.msg_frame(conn, frame, *from, nick, text, Speech::Say),
            Frame::Me {
                from, nick, text, ..
            } => self.msg_frame(conn, frame, *from, nick, text, Speech::Act),
            Frame::Dm {
                from,
                nick,
                to,
                text,
                ..
            } => self.dm_frame(frame, *from, nick, *to, text),
            Frame::Sdm { .. } => self.sdm_frame(frame),
            Frame::Nick { member, nick, .. } => {
                if alone {
                    self.roster.keep_rename(*member, signed.clone());
                }
                self.nick_frame(conn, frame, *member, nick)
            }
            Frame::Join {
                member, nick, addr, ..
            }
            | Frame::Here {
                member, nick, addr, ..
            } => {
                // Kept for new peers only when it came alone, as nodes announce their members.
                let announce = alone.then_some(signed);
                self.join_frame(conn, *member, nick, addr, announce)
            }
            Frame::Leave { member, reason, .. } => self.leave_frame(*member, reason.clone()),
            Frame::Lost { member, reason, .. } => self.lost_frame(*member, reason.clone()),
            _ => Forward::No,
        }
    }

    /// A `CLOSE`: its end goes once what it sent is read; ours once what we queued is out.
    fn close_frame(&mut self, conn: ConnId) {
        if self.neighbours.retire(conn) {
            self.out.retire(conn);
        }
    }

    fn msg_frame(
        &mut self,
        conn: ConnId,
        frame: &Frame,
        from: MemberId,
        nick: &str,
        text: &str,
        speech: Speech,
    ) -> Forward {
        if self.roster.note(from, nick, self.clock) {
            self.learn_key(from);
        }
        // Guests read the nick the frame carries: the one the roster holds, as shown here
        // (the guest line puts a guest's `~` back).
        let mut for_guests = frame.clone();
        if let Frame::Msg { nick, .. } | Frame::Me { nick, .. } = &mut for_guests {
            if self.roster.contains(&from) {
                let shown = self.roster.display(from);
                *nick = shown
                    .strip_prefix(protocol::GUEST_MARK)
                    .unwrap_or(&shown)
                    .to_string();
            }
        }
        self.out.for_guests(Some(conn), for_guests);
        let (from, text) = (self.roster.shown(from), text.to_string());
        self.out.show(match speech {
            Speech::Act => Event::Me { from, text },
            Speech::Say => Event::Message { from, text },
        });
        Forward::Yes
    }

    /// A DM: shown if it is for us, handed to our guest if for one, else passed on unless it
    /// is for a guest of ours that is gone.
    pub(super) fn dm_frame(
        &mut self,
        frame: &Frame,
        from: MemberId,
        nick: &str,
        to: MemberId,
        text: &str,
    ) -> Forward {
        if to == self.me {
            if self.roster.note(from, nick, self.clock) {
                self.learn_key(from);
            }
            self.out.show(Event::Dm {
                from: self.roster.shown(from),
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

    fn nick_frame(&mut self, conn: ConnId, frame: &Frame, member: MemberId, nick: &str) -> Forward {
        if member == self.me {
            return Forward::No;
        }
        self.out.for_guests(Some(conn), frame.clone());
        if !self.roster.contains(&member) {
            // Unknown here: it will be known by its new nick when it speaks.
            return Forward::Yes;
        }
        let before = self.roster.display(member);
        self.roster.update(member, nick, None);
        self.learn_key(member);
        self.out.show(Event::Nick {
            old: before,
            nick: self.roster.display(member),
        });
        Forward::Yes
    }

    /// A JOIN or HERE from the member's own node: records a member not known yet (unless it
    /// or its node left for good, or was lost and this is no fresh news), shown to our guests,
    /// and keeps `announce`, the bundle it came alone in, for new peers. Both within the
    /// roster's caps: a new member whose announcement does not fit is not recorded.
    fn join_frame(
        &mut self,
        conn: ConnId,
        member: MemberId,
        nick: &str,
        addr: &Option<String>,
        announce: Option<&Rc<Signed>>,
    ) -> Forward {
        let host = MemberId::node(member.node);
        let host_away = member.guest > 0 && self.roster.is_away(&host, self.clock);
        if host_away || self.roster.is_away(&member, self.clock) {
            return Forward::Yes;
        }
        if self.roster.contains(&member) {
            self.roster.update(member, nick, addr.clone());
            if let Some(bundle) = announce {
                // Kept if it fits the roster's caps; the member stays known either way.
                self.roster.keep_announcement(member, bundle.clone());
            }
            self.learn_key(member);
        } else if self.add_member(member, nick, addr.clone(), announce) {
            self.tell_guests_joined(conn, member, nick);
        } else {
            // Past the roster's caps: not recorded here, so not passed on either (nor the
            // bundle it came in: nodes announce each member alone, so one packed with others
            // is not what a node of ours sends).
            return Forward::Never;
        }
        Forward::Yes
    }

    /// Records the fingerprint of `member`'s node key in the roster (a guest shows its
    /// node's), checked against the key remembered for its nick: the first key seen for a nick
    /// is remembered; another one later is shown with a warning wherever that member is named.
    pub(super) fn learn_key(&mut self, member: MemberId) {
        let Some(key) = self.origins.key(member.node) else {
            return;
        };
        let fp = protocol::sign::fingerprint(key);
        let Some(nick) = self.roster.get(&member).map(|m| m.nick.clone()) else {
            return;
        };
        let was = match member.guest {
            // A guest has no key of its own, and our own key is ours whatever the file says:
            // nothing to check or remember.
            _ if member.node == self.cfg.node => None,
            0 => match self.cfg.known.check(&nick, &fp) {
                KeyCheck::New => {
                    if let Some(line) = self.cfg.known.remember(&nick, &fp) {
                        self.out.remember_key(line);
                    }
                    None
                }
                KeyCheck::Same => None,
                KeyCheck::Changed { remembered } => Some(remembered),
            },
            _ => None,
        };
        self.roster.set_key(member, fp, was);
    }

    /// A LEAVE, from the member's own node: it (or its guest) left for good.
    fn leave_frame(&mut self, member: MemberId, reason: Option<String>) -> Forward {
        let direct = self
            .neighbours
            .peer_conn(member.node)
            .filter(|_| member.guest == 0);
        self.said_bye(member, direct, reason);
        if member.guest == 0 {
            self.origins.forget(member.node);
        }
        Forward::Yes
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

    /// A claim by another node that it lost node `member`: we are here (and say so), or we
    /// still reach it ourselves, or we wait a little for fresh news of it before believing it.
    fn lost_frame(&mut self, member: MemberId, reason: Option<String>) -> Forward {
        if member == self.me {
            self.owe_here();
        } else if self.neighbours.peer_conn(member.node).is_none() {
            self.suspect(member.node, reason);
        }
        Forward::Yes
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
            self.out.originate(
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
