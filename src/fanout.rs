//! Outbound frames, encoded once per wire format and shared by every connection that gets them.
//!
//! A broadcast to N connections encodes its frame at most twice (peer frame, guest line), not N
//! times. Must not format text for people beyond what `protocol::encode_guest` does.

use std::cell::OnceCell;
use std::rc::Rc;

use crate::core::Role;
use crate::protocol::{self, Frame};

/// One frame on its way out, with its encodings made on first use and shared (reference
/// counted) by every connection that queues them.
pub struct Outgoing {
    pub frame: Rc<Frame>,
    peer: OnceCell<Rc<[u8]>>,
    guest: OnceCell<Rc<[u8]>>,
}

impl Outgoing {
    pub fn new(frame: Rc<Frame>) -> Self {
        Outgoing {
            frame,
            peer: OnceCell::new(),
            guest: OnceCell::new(),
        }
    }

    /// The bytes for a connection of `role` (empty when that role is shown nothing).
    pub fn bytes(&self, role: Role) -> &[u8] {
        self.cell(role)
    }

    /// The same bytes, shared: queueing them costs a reference, not a copy.
    pub fn shared(&self, role: Role) -> Rc<[u8]> {
        self.cell(role).clone()
    }

    fn cell(&self, role: Role) -> &Rc<[u8]> {
        match role {
            Role::Peer => self.peer.get_or_init(|| {
                let mut buf = Vec::new();
                protocol::encode(&self.frame, &mut buf);
                Rc::from(buf)
            }),
            Role::Guest => self.guest.get_or_init(|| {
                let mut buf = Vec::new();
                protocol::encode_guest(&self.frame, &mut buf);
                Rc::from(buf)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MsgId;

    #[test]
    fn each_role_gets_its_format() {
        let out = Outgoing::new(Rc::new(Frame::Msg {
            id: MsgId { node: 1, seq: 2 },
            from: crate::protocol::MemberId::node(1),
            nick: "bob".into(),
            text: "hi".into(),
        }));
        assert_eq!(out.bytes(Role::Guest), b"<bob> hi\n");
        assert_eq!(
            out.bytes(Role::Peer),
            b"MSG 0000000000000001:2 0000000000000001 bob hi\n"
        );
        let unknown = Outgoing::new(Rc::new(Frame::Ping));
        assert!(unknown.bytes(Role::Guest).is_empty());
    }
}
