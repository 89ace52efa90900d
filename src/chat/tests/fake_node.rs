//! A peerchat node outside the chat under test, played by the test line by line: its hello
//! and proof, its signed bundles and frames, built from its own key and run.
//!
//! Test support only, beside the in-memory network (`net.rs`), which re-exports it.

use super::net::*;

/// A peerchat node outside the chat under test, played by the test line by line. Its own key
/// and run give its node id, so its hello, its proof and its signed frames are really its.
#[derive(Clone, Debug)]
pub(super) struct FakeNode {
    pub(super) nick: String,
    pub(super) key: SigningKey,
    pub(super) run: Run,
    pub(super) listen: Option<u16>,
}

impl FakeNode {
    /// A fake node whose key is made from `seed` (use 100 and up: the test network's nodes
    /// use the seeds from 1).
    pub(super) fn new(nick: &str, seed: u8, listen: Option<u16>) -> FakeNode {
        FakeNode {
            nick: nick.into(),
            key: SigningKey::from_bytes(&[seed; 32]),
            run: [seed; 8],
            listen,
        }
    }

    pub(super) fn node_key(&self) -> NodeKey {
        NodeKey {
            key: self.key.verifying_key(),
            run: self.run,
        }
    }

    pub(super) fn node(&self) -> NodeId {
        self.node_key().node()
    }

    pub(super) fn member(&self) -> MemberId {
        MemberId::node(self.node())
    }

    /// Its id for message number `seq`.
    pub(super) fn id(&self, seq: u64) -> MsgId {
        MsgId {
            node: self.node(),
            seq,
        }
    }

    /// Its hello line on connection `conn` (the nonce is made from `conn`: fresh per
    /// connection).
    pub(super) fn hello_line(&self, conn: ConnId) -> String {
        let mut nonce = [0xf0; 16];
        nonce[8..].copy_from_slice(&(conn as u64).to_be_bytes());
        let hello = Frame::Hello(Hello {
            nick: self.nick.clone(),
            node: self.node(),
            listen: self.listen,
            key: self.node_key(),
            nonce,
        });
        line_of(&hello)
    }

    /// Its `PROOF` line for a connection on which it sent `own` and read the chat's `theirs`.
    pub(super) fn proof(&self, own: &str, theirs: &str) -> String {
        let sig = protocol::sign::sign_proof(&self.key, own, theirs);
        line_of(&Frame::Proof(sig))
    }

    /// `frames` as it sends them: one bundle it signed.
    pub(super) fn signed(&self, frames: Vec<Frame>) -> Frame {
        Frame::Signed(Rc::new(Signed::seal(&self.key, self.node(), frames)))
    }

    /// The lines of a bundle of `frames` it signed, head first.
    pub(super) fn bundle(&self, frames: Vec<Frame>) -> Vec<String> {
        let mut bytes = Vec::new();
        protocol::encode_peer(&self.signed(frames), &mut bytes);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Says hello on `conn` of `chat`, where the chat sent `sent`, and proves it.
    pub(super) fn greet(&self, chat: &mut Chat, conn: ConnId, sent: &str, now: Instant) {
        let own = self.hello_line(conn);
        chat.handle_line(conn, own.as_bytes(), now);
        chat.handle_line(conn, self.proof(&own, sent).as_bytes(), now);
    }

    /// Opens `conn` on `chat` (see [`open`]), then says hello and proves it: a peer from now.
    pub(super) fn connect(&self, chat: &mut Chat, conn: ConnId, link: Link, now: Instant) {
        let sent = open(chat, conn, link, now);
        self.greet(chat, conn, &sent, now);
    }

    /// Sends `frames` on `conn` of `chat` in one bundle it signed.
    pub(super) fn send(&self, chat: &mut Chat, conn: ConnId, frames: Vec<Frame>, now: Instant) {
        for line in self.bundle(frames) {
            chat.handle_line(conn, line.as_bytes(), now);
        }
    }

    /// Its own `JOIN`, with its key, as number `seq`.
    pub(super) fn join(&self, seq: u64) -> Frame {
        Frame::Join {
            id: self.id(seq),
            member: self.member(),
            nick: self.nick.clone(),
            addr: None,
            key: Some(self.node_key()),
        }
    }

    /// A message it says, as number `seq`.
    pub(super) fn msg(&self, seq: u64, text: &str) -> Frame {
        Frame::Msg {
            id: self.id(seq),
            from: self.member(),
            nick: self.nick.clone(),
            text: text.into(),
        }
    }
}
