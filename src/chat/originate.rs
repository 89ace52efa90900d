//! What this node originates, signed: the frames its user and guests said since the last
//! turn, sealed into bundles for the peers (announcements alone, as they are kept for new
//! peers), kept for history, or held unsigned while no peer could read them.
//!
//! Must not do IO: the bundles are queued on the chat's one action queue.

use std::rc::Rc;

use super::Chat;
use crate::protocol::{Frame, Signed, MAX_BUNDLE_BYTES, MAX_BUNDLE_FRAMES};

impl Chat {
    /// Signs what this node said since the last time, in bundles, and sends them to the peers.
    /// Announcements (`JOIN`, `HERE`, `NICK`) go alone, as they are kept and handed to new
    /// peers; the rest only when some peer may read it (speech said with none is kept for
    /// history and the next peer, and signed when one comes).
    pub(super) fn seal(&mut self) {
        let frames = self.out.take_unsealed();
        if frames.is_empty() {
            return;
        }
        let peers = self.neighbours.may_have_peers();
        let at = self.wall(self.clock);
        let mut batch: Vec<Frame> = Vec::new();
        let mut bytes = 0;
        for f in frames {
            let kept = matches!(
                f,
                Frame::Join { .. } | Frame::Here { .. } | Frame::Nick { .. }
            );
            let size = f.wire_len();
            if kept || batch.len() == MAX_BUNDLE_FRAMES || bytes + size > MAX_BUNDLE_BYTES {
                self.seal_batch(std::mem::take(&mut batch), peers);
                bytes = 0;
            }
            let toward = match &f {
                Frame::Sdm { to, .. } if to.node != self.cfg.node => {
                    self.neighbours.peer_conn(to.node)
                }
                _ => None,
            };
            if kept {
                self.seal_announcement(f);
            } else if let Some(conn) = toward {
                self.seal_toward(conn, f);
            } else if peers {
                bytes += size;
                batch.push(f);
            } else if matches!(f, Frame::Msg { .. } | Frame::Me { .. }) {
                // No peer to read it: kept for history and the next peer, unsigned till then.
                self.history.loosen(at, f);
            }
        }
        self.seal_batch(batch, peers);
    }

    /// Signs `batch` for the peers (`peers`: some may read it), kept for history (and held
    /// for the next peer, if none is connected).
    fn seal_batch(&mut self, batch: Vec<Frame>, peers: bool) {
        if batch.is_empty() || !peers {
            return;
        }
        let signed = Rc::new(Signed::seal(&self.cfg.key, self.cfg.node, batch));
        self.keep_own(&signed);
        self.out.for_peers(None, signed);
    }

    /// One announcement of ours, signed alone and kept for new peers.
    fn seal_announcement(&mut self, f: Frame) {
        let member = match &f {
            Frame::Join { member, .. }
            | Frame::Here { member, .. }
            | Frame::Nick { member, .. } => *member,
            _ => return,
        };
        let rename = matches!(f, Frame::Nick { .. });
        let signed = Rc::new(Signed::seal(&self.cfg.key, self.cfg.node, vec![f]));
        if rename {
            self.roster.keep_rename(member, signed.clone());
        } else {
            self.roster.keep_announcement(member, signed.clone());
        }
        self.out.for_peers(None, signed);
    }
}
