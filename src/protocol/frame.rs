//! Frames: the lines peers exchange after their hellos, the hello itself, and the bundles that
//! carry signed frames. This file holds the types; `frame/encode.rs` writes them
//! (`encode`, `encode_peer`) and `frame/parse.rs` reads them (`parse_frame`, `parse_hello`).
//! docs/PROTOCOL.md describes the same format for people.
//!
//! Pure code: one line in, one frame out, and back. Must not split byte streams into lines
//! (`decoder.rs` does), format lines for guests (`guest.rs`), or decide what a frame means to the
//! chat.

use std::net::SocketAddr;
use std::rc::Rc;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use super::ids::{MemberId, MsgId, NodeId};
use super::sign::{self, Nonce, Run};

/// The first line a peerchat node sends on every connection. It reads as a sentence, because the
/// other side may be a person at `nc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub nick: String,
    pub node: NodeId,
    /// The port the node listens on, if it listens.
    pub listen: Option<u16>,
    /// The node's public key and run: `node` is derived from them ([`sign::node_id`]).
    pub key: NodeKey,
    /// Fresh for this connection: the other side's proof signs it.
    pub nonce: Nonce,
}

/// A node's public key and the per-run part of its id, which together give its node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeKey {
    pub key: VerifyingKey,
    pub run: Run,
}

impl NodeKey {
    /// The node id these make.
    pub fn node(&self) -> NodeId {
        sign::node_id(&self.key, &self.run)
    }
}

/// The head of a bundle: `SIGNED <node> <count> <signature>`, followed by `count` frame lines
/// that node `node` originated and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleHead {
    pub node: NodeId,
    pub count: usize,
    pub sig: Signature,
}

/// The most frames one bundle carries, and the most bytes its frame lines take.
pub const MAX_BUNDLE_FRAMES: usize = 64;
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// The head of a bundle of history: `HIST <at> <from> <key> <run>`, followed by one signed
/// bundle (its `SIGNED` head and frame lines) that the sender kept, for a peer that may have
/// missed it. `at` is when the sender first had the bundle (unix milliseconds, its own clock):
/// shown, never trusted (it is not signed). `from` is the first counter of the bundle that is
/// history: the sender keeps the last messages, and a bundle may hold older ones too. `key`
/// and `run` are the bundle's origin's, so that a bundle of a node the receiver never heard of
/// (gone before it came) can still be checked: they must give the bundle's node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistHead {
    pub at: u64,
    pub from: u64,
    pub key: NodeKey,
}

/// A kept bundle, with its history head: what `HIST` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub head: HistHead,
    pub bundle: Rc<Signed>,
}

/// Flooded frames as they travel between peers: signed by their origin, and passed on as the
/// very bytes the origin sent (`wire`), so every node can check the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub node: NodeId,
    pub frames: Vec<Frame>,
    /// The head line and the frame lines, each with its `\n`.
    pub wire: Vec<u8>,
}

impl Signed {
    /// Signs `frames`, which this node (`node`, with `key`) originates.
    pub fn seal(key: &SigningKey, node: NodeId, frames: Vec<Frame>) -> Signed {
        let mut lines = Vec::new();
        for f in &frames {
            encode(f, &mut lines);
        }
        let sig = sign::sign_frames(key, node, &lines);
        Signed::assemble(node, &sig, frames, &lines)
    }

    /// A bundle read from a peer, whose signature was checked: kept as it came, to pass on.
    /// Without spare capacity: a node keeps one for each member of the chat (its announcement),
    /// and a decoded frame is about 300 bytes, so room for the four frames a vector grown by
    /// pushes holds would triple what a member takes.
    pub fn assemble(node: NodeId, sig: &Signature, mut frames: Vec<Frame>, lines: &[u8]) -> Signed {
        let head = format!(
            "SIGNED {node:016x} {} {}\n",
            frames.len(),
            sign::to_hex(&sig.to_bytes())
        );
        let mut wire = Vec::with_capacity(head.len() + lines.len());
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(lines);
        frames.shrink_to_fit();
        Signed { node, frames, wire }
    }
}

/// One line on a peer connection.
///
/// Frames with an `id` are flooded: every node handles each id once and passes it on to its
/// other peers. `Peers`, `Ping`, `Pong` and `Close` concern one connection only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    /// A chat message from member `from` (called `nick`), first sent by node `id.node`.
    Msg {
        id: MsgId,
        from: MemberId,
        nick: String,
        text: String,
    },
    /// An action (`/me waves`): shown as `* nick waves`.
    Me {
        id: MsgId,
        from: MemberId,
        nick: String,
        text: String,
    },
    /// A direct message for member `to` only; other nodes pass it on without showing it.
    Dm {
        id: MsgId,
        from: MemberId,
        nick: String,
        to: MemberId,
        text: String,
    },
    /// A direct message for member `to`, its text sealed to `to`'s node (`protocol::seal`):
    /// the nodes that pass it on cannot read it. Hex on the wire.
    Sdm {
        id: MsgId,
        from: MemberId,
        nick: String,
        to: MemberId,
        sealed: Vec<u8>,
    },
    /// Member `member` changed its nick from `old` to `nick`.
    Nick {
        id: MsgId,
        member: MemberId,
        old: String,
        nick: String,
    },
    /// `member`, called `nick`, is in the chat (at `addr`, when its node knows it). Sent by the
    /// member's own node; for a node itself it carries the node's key.
    Join {
        id: MsgId,
        member: MemberId,
        nick: String,
        addr: Option<String>,
        key: Option<NodeKey>,
    },
    /// As `Join`, and fresh: the node says it is here now (after a connection of its own came
    /// up, in answer to a claim that it was lost, and now and then while it runs).
    Here {
        id: MsgId,
        member: MemberId,
        nick: String,
        addr: Option<String>,
        key: Option<NodeKey>,
    },
    /// `member` left the chat for good: its own node says so (it left, or its guest did).
    Leave {
        id: MsgId,
        member: MemberId,
        nick: String,
        reason: Option<String>,
    },
    /// Node `id.node` lost its own connection to node `member` (`reason` says how). A claim,
    /// not a leave: others drop `member` only if nothing fresh comes from it soon.
    Lost {
        id: MsgId,
        member: MemberId,
        nick: String,
        reason: Option<String>,
    },
    /// The proof of the key in the hello (see [`sign::sign_proof`]).
    Proof(Signature),
    /// The head of a bundle of signed frames, as read; the frame lines follow.
    Bundle(BundleHead),
    /// A bundle of signed frames to send.
    Signed(Rc<Signed>),
    /// The head of a bundle of history, as read; the bundle follows.
    HistHead(HistHead),
    /// A bundle of history to send: its head, then the bundle.
    Hist(Rc<Kept>),
    /// The peers the sender is connected to, by node and listening address (peer exchange).
    Peers(Vec<(NodeId, SocketAddr)>),
    /// Keepalive: answer with `Pong`.
    Ping,
    Pong,
    /// The sender closes this connection on purpose (`reason`); nobody left the chat.
    Close(String),
    /// A well-formed frame of a kind this version does not know; ignored for forward compatibility.
    Unknown(String),
}

impl Frame {
    /// At least the bytes of this frame's line (flooded frames): what a bundle's size cap
    /// counts before encoding.
    pub fn wire_len(&self) -> usize {
        // Ids, member ids, a key and a run, the verb and the spaces take less than this.
        const FIXED: usize = 400;
        FIXED
            + match self {
                Frame::Msg { nick, text, .. }
                | Frame::Me { nick, text, .. }
                | Frame::Dm { nick, text, .. } => nick.len() + text.len(),
                Frame::Sdm { nick, sealed, .. } => nick.len() + 2 * sealed.len(),
                Frame::Nick { old, nick, .. } => old.len() + nick.len(),
                Frame::Join { nick, addr, .. } | Frame::Here { nick, addr, .. } => {
                    nick.len() + addr.as_ref().map_or(0, String::len)
                }
                Frame::Leave { nick, reason, .. } | Frame::Lost { nick, reason, .. } => {
                    nick.len() + reason.as_ref().map_or(0, String::len)
                }
                _ => 0,
            }
    }

    /// The flood id, for frames that have one.
    pub fn id(&self) -> Option<MsgId> {
        self.head().map(|h| h.id)
    }

    /// The head, for flooded frames: the one place that names each flooded kind's verb.
    fn head(&self) -> Option<Head<'_>> {
        let (verb, id, member, nick) = match self {
            Frame::Msg { id, from, nick, .. } => ("MSG", id, from, nick),
            Frame::Me { id, from, nick, .. } => ("ME", id, from, nick),
            Frame::Dm { id, from, nick, .. } => ("DM", id, from, nick),
            Frame::Sdm { id, from, nick, .. } => ("SDM", id, from, nick),
            Frame::Nick {
                id, member, old, ..
            } => ("NICK", id, member, old),
            Frame::Join {
                id, member, nick, ..
            } => ("JOIN", id, member, nick),
            Frame::Here {
                id, member, nick, ..
            } => ("HERE", id, member, nick),
            Frame::Leave {
                id, member, nick, ..
            } => ("LEAVE", id, member, nick),
            Frame::Lost {
                id, member, nick, ..
            } => ("LOST", id, member, nick),
            _ => return None,
        };
        Some(Head {
            verb,
            id: *id,
            member: *member,
            nick,
        })
    }
}

/// What every flooded frame starts with on the wire: `VERB <id> <member> <nick>`.
struct Head<'a> {
    verb: &'static str,
    id: MsgId,
    member: MemberId,
    /// The member's nick as the frame starts: for `NICK`, the old one.
    nick: &'a str,
}

/// The most addresses one `PEERS` frame carries (and the most taken from one).
pub const MAX_PEERS_LISTED: usize = 64;

mod encode;
mod parse;
pub use encode::{encode, encode_peer};
pub use parse::{hello_version, parse_frame, parse_hello};

#[cfg(test)]
mod tests;
