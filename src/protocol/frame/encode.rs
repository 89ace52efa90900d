//! The peer encoding of frames and hellos: a frame in, its line out (`\n` included), formatted
//! straight into the caller's buffer.
//!
//! Pure code. Must not parse (`parse.rs` does) nor sign (`Signed::seal` in `frame.rs` does).

use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use super::{Frame, Head, Hello, HistHead, NodeKey, MAX_PEERS_LISTED};
use crate::protocol::ids::NodeId;
use crate::protocol::{sign, VERSION};

/// Appends the peer encoding of `frame`, `\n` included.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let mut s = Appender(out);
    // Appending to a Vec cannot fail.
    let _ = match frame {
        Frame::Hello(h) => write_hello(&mut s, h),
        Frame::Peers(peers) => write_peers(&mut s, peers),
        Frame::Ping => s.write_str("PING"),
        Frame::Pong => s.write_str("PONG"),
        Frame::Close(reason) => write!(s, "CLOSE {reason}"),
        Frame::Unknown(line) => s.write_str(line),
        Frame::Proof(sig) => write!(s, "PROOF {}", sign::to_hex(&sig.to_bytes())),
        Frame::Bundle(h) => write!(
            s,
            "SIGNED {:016x} {} {}",
            h.node,
            h.count,
            sign::to_hex(&h.sig.to_bytes())
        ),
        Frame::Signed(b) => {
            // Already whole lines, as the origin signed them.
            out.extend_from_slice(&b.wire);
            return;
        }
        Frame::HistHead(h) => write_hist(&mut s, h),
        Frame::Hist(p) => {
            let _ = write_hist(&mut s, &p.head);
            out.push(b'\n');
            out.extend_from_slice(&p.bundle.wire);
            return;
        }
        flooded => write_flooded(&mut s, flooded),
    };
    out.push(b'\n');
}

/// Appends what a peer is sent for `frame`: a flooded frame goes to peers only inside a signed
/// bundle ([`Frame::Signed`]), so on its own it is nothing here (it is there for guests).
pub fn encode_peer(frame: &Frame, out: &mut Vec<u8>) {
    if frame.id().is_none() {
        encode(frame, out);
    }
}

fn write_hello(s: &mut Appender<'_>, h: &Hello) -> fmt::Result {
    write!(
        s,
        "peerchat/{VERSION} hello from {} (node={:016x} ",
        h.nick, h.node
    )?;
    match h.listen {
        Some(port) => write!(s, "listen={port} ")?,
        None => s.write_str("listen=- ")?,
    }
    write!(
        s,
        "key={} run={} nonce={})",
        sign::to_hex(h.key.key.as_bytes()),
        sign::to_hex(&h.key.run),
        sign::to_hex(&h.nonce)
    )
}

fn write_hist(s: &mut Appender<'_>, h: &HistHead) -> fmt::Result {
    write!(
        s,
        "HIST {} {} {} {}",
        h.at,
        h.from,
        sign::to_hex(h.key.key.as_bytes()),
        sign::to_hex(&h.key.run)
    )
}

/// Appends ` KEY RUN` for a frame that carries a node's key.
fn write_key(s: &mut Appender<'_>, key: &Option<NodeKey>) -> fmt::Result {
    match key {
        Some(k) => write!(
            s,
            " {} {}",
            sign::to_hex(k.key.as_bytes()),
            sign::to_hex(&k.run)
        ),
        None => Ok(()),
    }
}

fn write_peers(s: &mut Appender<'_>, peers: &[(NodeId, SocketAddr)]) -> fmt::Result {
    s.write_str("PEERS")?;
    for (node, addr) in peers.iter().take(MAX_PEERS_LISTED) {
        write!(s, " {node:016x}@{addr}")?;
    }
    Ok(())
}

/// Writes a flooded frame: its head, then what its kind adds after the nick.
fn write_flooded(s: &mut Appender<'_>, frame: &Frame) -> fmt::Result {
    let Some(Head {
        verb,
        id,
        member,
        nick,
    }) = frame.head()
    else {
        return Ok(());
    };
    write!(s, "{verb} {id} {member} {nick}")?;
    match frame {
        Frame::Msg { text, .. } | Frame::Me { text, .. } => write!(s, " {text}"),
        Frame::Dm { to, text, .. } => write!(s, " {to} {text}"),
        Frame::Sdm { to, sealed, .. } => write!(s, " {to} {}", sign::to_hex(sealed)),
        Frame::Nick { nick, .. } => write!(s, " {nick}"),
        Frame::Join { addr, key, .. } | Frame::Here { addr, key, .. } => {
            write!(s, " {}", addr.as_deref().unwrap_or("-"))?;
            write_key(s, key)
        }
        Frame::Leave {
            reason: Some(r), ..
        }
        | Frame::Lost {
            reason: Some(r), ..
        } => write!(s, " {r}"),
        // A `LEAVE` without a reason ends at the nick.
        _ => Ok(()),
    }
}

/// Formats straight into a byte buffer (no `String` in between).
struct Appender<'a>(&'a mut Vec<u8>);

impl fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
