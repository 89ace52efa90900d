//! Direct messages sealed to their recipient's node (`protocol::seal`): made here for this
//! node's member and its guests, opened here when they are for one of them, passed on unread
//! otherwise, and sent toward the recipient alone when its node is a neighbour.
//!
//! Guests hold no identity key: a DM to a guest is sealed to its host node, which opens it and
//! hands the guest the plain line (the host carries all of its guest's traffic anyway); a DM
//! from a guest is sealed by its host.
//!
//! Must not do IO: what to send is queued on the chat's one action queue. The one thing here
//! that is not deterministic: sealing draws a fresh ephemeral key from the operating system's
//! randomness (inside `protocol::seal`, as the Noise links do); tests compare what is shown,
//! never the sealed bytes.

use std::rc::Rc;

use super::relay::Forward;
use super::{Chat, ConnId, Event};
use crate::protocol::seal::{self, SealError};
use crate::protocol::{Frame, MemberId, Signed};

impl Chat {
    /// A `SDM` from member `from` (called `nick`) of this node to member `to`, with a new id,
    /// `text` sealed to `to`'s node; or why not, as a line for the user.
    pub(super) fn seal_dm(
        &mut self,
        from: MemberId,
        nick: &str,
        to: MemberId,
        text: &str,
    ) -> Result<Frame, String> {
        let Some(key) = self.origins.key(to.node).copied() else {
            return Err(format!(
                "cannot seal a direct message to {}: its node's key is not known yet; nothing was sent",
                self.roster.display(to)
            ));
        };
        let id = self.next_id();
        let sealed = seal::seal(&self.cfg.key, &key, id, from, to, text)
            .map_err(|e| format!("{e}; nothing was sent"))?;
        Ok(Frame::Sdm {
            id,
            from,
            nick: nick.to_string(),
            to,
            sealed,
        })
    }

    /// A new `SDM` from bundle origin `frame.id.node`: passed on unread unless it is for this
    /// node or one of its guests; then opened once (the seen set lets each id through once)
    /// and shown, or handed to the guest as a plain `DM`. One that does not open is an error
    /// line, and dropped.
    pub(super) fn sdm_frame(&mut self, frame: &Frame) -> Forward {
        let Frame::Sdm {
            id,
            from,
            nick,
            to,
            sealed,
        } = frame
        else {
            return Forward::No;
        };
        if to.node != self.cfg.node {
            return Forward::Yes;
        }
        let opened = self
            .origins
            .key(id.node)
            .copied()
            .ok_or(SealError::Sender)
            .and_then(|k| seal::open(&self.cfg.key, &k, *id, *from, *to, sealed));
        let text = match opened {
            Ok(text) => text,
            Err(e) => {
                self.out.show(Event::Error(format!(
                    "a direct message from {nick} was dropped: {e}"
                )));
                return Forward::No;
            }
        };
        let plain = Frame::Dm {
            id: *id,
            from: *from,
            nick: nick.clone(),
            to: *to,
            text: text.clone(),
        };
        self.dm_frame(&plain, *from, nick, *to, &text)
    }

    /// The neighbour connection a bundle should go to alone: a bundle of one `SDM` whose
    /// recipient's node (a guest's host) is a direct peer, not this node.
    pub(super) fn toward(&self, signed: &Signed) -> Option<ConnId> {
        match signed.frames.as_slice() {
            [Frame::Sdm { to, .. }] if to.node != self.cfg.node => {
                self.neighbours.peer_conn(to.node)
            }
            _ => None,
        }
    }

    /// Our own `SDM`, signed alone and sent on `conn` only: its recipient's node is there.
    pub(super) fn seal_toward(&mut self, conn: ConnId, frame: Frame) {
        let signed = Signed::seal(&self.cfg.key, self.cfg.node, vec![frame]);
        self.out.send(conn, Frame::Signed(Rc::new(signed)));
    }
}
