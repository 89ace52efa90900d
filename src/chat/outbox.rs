//! The chat's one queue of actions for the caller, in the order they were decided.
//!
//! Every room queues through these verbs, so each kind of [`Action`] is built in one place.
//! Must not reorder, merge or drop actions: their order is what users see (a join before the
//! message that follows it, a goodbye before the close). Besides the queue it holds only the
//! frames this node originated that are still to be signed (the chat seals them).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use super::{Action, ConnId};
use crate::event::{Event, Role};
use crate::protocol::{self, Frame, Signed};

/// The actions decided and not taken by the caller yet, oldest first.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    queue: VecDeque<Action>,
    /// Flooded frames this node originated, in order, not signed yet.
    unsealed: Vec<Frame>,
}

impl Outbox {
    /// The oldest action not taken yet.
    pub(super) fn next(&mut self) -> Option<Action> {
        self.queue.pop_front()
    }

    /// `frame` to one connection.
    pub(super) fn send(&mut self, conn: ConnId, frame: Frame) {
        self.send_shared(conn, Rc::new(frame));
    }

    /// A frame already shared with other sends, to one connection.
    pub(super) fn send_shared(&mut self, conn: ConnId, frame: Rc<Frame>) {
        self.queue.push_back(Action::Send { conn, frame });
    }

    /// `frame` on every open connection but `except`. A flooded frame reaches guests only
    /// this way; peers get flooded frames in signed bundles ([`Outbox::for_peers`]).
    fn broadcast(&mut self, except: Option<ConnId>, frame: Frame) {
        self.queue.push_back(Action::Broadcast {
            except,
            frame: Rc::new(frame),
        });
    }

    /// A flooded frame this node originates: guests (but `except`) get it now, peers once it
    /// is signed.
    pub(super) fn originate(&mut self, except: Option<ConnId>, frame: Frame) {
        self.unsealed.push(frame.clone());
        self.broadcast(except, frame);
    }

    /// A flooded frame this node originates for peers only (a sealed DM: guests have nothing
    /// to read in it), once it is signed.
    pub(super) fn sign_later(&mut self, frame: Frame) {
        self.unsealed.push(frame);
    }

    /// A frame for guests only (a frame relayed, a leave this node decided to show).
    pub(super) fn for_guests(&mut self, except: Option<ConnId>, frame: Frame) {
        self.broadcast(except, frame);
    }

    /// A signed bundle for every peer but `except`.
    pub(super) fn for_peers(&mut self, except: Option<ConnId>, bundle: Rc<Signed>) {
        self.broadcast(except, Frame::Signed(bundle));
    }

    /// A line that must go out on `conn` before anything held for it.
    pub(super) fn send_first(&mut self, conn: ConnId, frame: &Frame) {
        let mut line = Vec::new();
        protocol::encode(frame, &mut line);
        line.pop();
        self.queue.push_back(Action::SendFirst {
            conn,
            line: String::from_utf8_lossy(&line).into_owned(),
        });
    }

    /// The frames originated since the last call, to be signed.
    pub(super) fn take_unsealed(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.unsealed)
    }

    /// Plain text to one guest (not a frame).
    pub(super) fn tell(&mut self, conn: ConnId, text: String) {
        self.queue.push_back(Action::Tell { conn, text });
    }

    /// Something for the local user to see.
    pub(super) fn show(&mut self, event: Event) {
        self.queue.push_back(Action::Show(event));
    }

    /// A nick's first key, to keep in the known-keys file.
    pub(super) fn remember_key(&mut self, line: String) {
        self.queue.push_back(Action::RememberKey { line });
    }

    /// `conn` is known for what it is.
    pub(super) fn classify(&mut self, conn: ConnId, role: Role) {
        self.queue.push_back(Action::Classify { conn, role });
    }

    /// Close `conn` now, saying why.
    pub(super) fn close(&mut self, conn: ConnId, reason: impl Into<String>) {
        self.queue.push_back(Action::Close {
            conn,
            reason: reason.into(),
        });
    }

    /// The node the user dialled on `conn` refused us (it is full).
    pub(super) fn refused(&mut self, conn: ConnId, reason: impl Into<String>) {
        self.queue.push_back(Action::Refused {
            conn,
            reason: reason.into(),
        });
    }

    /// Close `conn` once what was queued for it is out.
    pub(super) fn retire(&mut self, conn: ConnId) {
        self.queue.push_back(Action::Retire { conn });
    }

    /// Dial `addr` (the chat looking for a peer by itself).
    pub(super) fn dial(&mut self, addr: SocketAddr) {
        self.queue.push_back(Action::Dial(addr));
    }

    /// Connect to `host`, as the user asked.
    pub(super) fn connect(&mut self, host: String) {
        self.queue.push_back(Action::Connect(host));
    }

    /// The local user left: the caller ends once the goodbyes are out.
    pub(super) fn quit(&mut self) {
        self.queue.push_back(Action::Quit);
    }
}
