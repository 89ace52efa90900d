//! A peerchat node played by the test itself, over a raw TCP connection: it says a protocol-2
//! hello with its own key, proves it, and then sends whatever the test wants — honest signed
//! bundles, or the forgeries and floods a hostile node on a LAN would try.
//!
//! Test support only: no assertions beyond the handshake it must complete.

use ed25519_dalek::SigningKey;
use peerchat::protocol::sign::{self, Run};
use peerchat::protocol::{self, Frame, Hello, MemberId, MsgId, NodeId, NodeKey, Signed};

use crate::util::Raw;

/// A hostile or honest node of the test's, connected to a real node.
pub struct FakePeer {
    pub raw: Raw,
    pub key: SigningKey,
    pub run: Run,
    pub node: NodeId,
    pub nick: String,
    seq: u64,
    /// The real node's hello, as it came.
    pub their: Hello,
}

/// A key from a one-byte seed: tests that need two nodes with the same key use one seed.
pub fn key_of(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The hello line of a node with `key`, `run` and `nick` (no listening port), claiming `node`.
pub fn hello_line_with_key(key: &SigningKey, run: Run, nick: &str, node: NodeId) -> String {
    let key = NodeKey {
        key: key.verifying_key(),
        run,
    };
    hello_line_with(&key, nick, node)
}

/// The hello line naming public key and run `key`, claiming `node`.
pub fn hello_line_with(key: &NodeKey, nick: &str, node: NodeId) -> String {
    let hello = Frame::Hello(Hello {
        nick: nick.into(),
        node,
        listen: None,
        key: *key,
        nonce: [7; 16],
    });
    let mut line = Vec::new();
    protocol::encode(&hello, &mut line);
    line.pop();
    String::from_utf8(line).expect("utf-8 hello")
}

impl FakePeer {
    /// Connects to the node on `port` as `nick` with key `seed` and a fresh run, and completes
    /// the proven hello; the node's own first frames are left unread.
    pub fn connect(port: u16, nick: &str, seed: u8) -> FakePeer {
        let run: Run = rand_run();
        let key = key_of(seed);
        let node = sign::node_id(&key.verifying_key(), &run);
        FakePeer::connect_as(port, nick, key, run, node)
    }

    /// As [`FakePeer::connect`], claiming node id `node` (which may not be its key's).
    pub fn connect_as(port: u16, nick: &str, key: SigningKey, run: Run, node: NodeId) -> FakePeer {
        let mut raw = Raw::connect(port);
        let ours = hello_line_with_key(&key, run, nick, node);
        raw.send(format!("{ours}\n").as_bytes());
        let theirs = raw.line().expect("the node's hello");
        let their = protocol::parse_hello(&theirs).expect("a protocol-2 hello");
        let proof = sign::sign_proof(&key, &ours, &theirs);
        raw.send(format!("PROOF {}\n", sign::to_hex(&proof.to_bytes())).as_bytes());
        FakePeer {
            raw,
            key,
            run,
            node,
            nick: nick.into(),
            seq: 0,
            their,
        }
    }

    /// The next message id of this node.
    pub fn next_id(&mut self) -> MsgId {
        self.seq += 1;
        MsgId {
            node: self.node,
            seq: self.seq,
        }
    }

    /// This node's member id.
    pub fn me(&self) -> MemberId {
        MemberId::node(self.node)
    }

    /// Sends `frames` in one bundle signed with this node's key, as node `self.node`; returns
    /// the bytes sent.
    pub fn send_signed(&mut self, frames: Vec<Frame>) -> usize {
        let bundle = Signed::seal(&self.key, self.node, frames);
        self.raw.send(&bundle.wire);
        bundle.wire.len()
    }

    /// Announces itself (a signed `JOIN` with its key), as a real node does first.
    pub fn announce(&mut self) {
        let frame = Frame::Join {
            id: self.next_id(),
            member: self.me(),
            nick: self.nick.clone(),
            addr: None,
            key: Some(NodeKey {
                key: self.key.verifying_key(),
                run: self.run,
            }),
        };
        self.send_signed(vec![frame]);
    }

    /// A chat message of its own, signed.
    pub fn say(&mut self, text: &str) {
        let frame = Frame::Msg {
            id: self.next_id(),
            from: self.me(),
            nick: self.nick.clone(),
            text: text.into(),
        };
        self.send_signed(vec![frame]);
    }
}

/// A run part no other test uses.
pub fn rand_run() -> Run {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()) << 32;
    n.to_be_bytes()
}
