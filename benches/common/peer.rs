//! A peer for the benchmarks, built from peerchat's own code: a client that dials the hub, says
//! its hello, proves it (`protocol::sign`), answers pings, and hands every other line to the
//! benchmark; in plain text, or in a private group through a Noise link (`link::noise`: the
//! handshake first, then every line sealed and opened). For a private group, its secret in a
//! 0600 file for the hub and the pre-shared key derived from it once. One type for both, so
//! that the two differ in the link alone.
//!
//! Driven by the benchmark's own `mio` loop, one read at a time, so that thousands of these cost
//! the benchmark little next to the hub. Must not time or print anything itself.

use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use mio::net::TcpStream as MioStream;
use peerchat::link::{Link, LinkKeys};
use peerchat::protocol::sign::{self, Nonce, Run};
use peerchat::protocol::{self, Frame, Hello, NodeKey};
use rand_core::{OsRng, RngCore};

/// A private group for one benchmark run: its secret in a file only this user may read (the
/// hub's `--secret-file`), and the links' pre-shared key, derived once (Argon2id takes about a
/// quarter of a second). The file and its folder are removed on drop.
pub struct Group {
    dir: PathBuf,
    pub secret_file: PathBuf,
    pub psk: [u8; 32],
}

impl Group {
    pub fn new() -> Result<Group, String> {
        let dir = std::env::temp_dir().join(format!("peerchat-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let secret_file = dir.join("secret");
        let passphrase = peerchat::secret::generate().map_err(|e| e.to_string())?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&secret_file)
            .map_err(|e| format!("{}: {e}", secret_file.display()))?;
        writeln!(file, "{passphrase}").map_err(|e| e.to_string())?;
        // Read back as the hub reads it, so both derive the key from the same text.
        let psk = peerchat::secret::read_file(&secret_file)
            .map_err(|e| e.to_string())?
            .psk();
        Ok(Group {
            dir,
            secret_file,
            psk,
        })
    }

    /// The hub's arguments for this group, with the benchmark's plain sender let in as a guest.
    pub fn hub_args(&self) -> Vec<String> {
        vec![
            "--secret-file".into(),
            self.secret_file.to_string_lossy().into_owned(),
            "--allow-guests".into(),
        ]
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a peer needs before it dials: an identity key of its own (one each: two peers with one
/// key would be one person to the hub) and, in a private group, its link keys. Made before
/// anything is timed.
pub struct PeerKeys {
    identity: SigningKey,
    link: Option<LinkKeys>,
}

impl PeerKeys {
    /// Keys for a private group's peer with `psk`, or for a plain-text peer without.
    pub fn new(psk: Option<[u8; 32]>) -> Result<PeerKeys, String> {
        let identity = peerchat::identity::fresh_key().map_err(|e| e.to_string())?;
        let link = psk
            .map(|psk| LinkKeys::new(psk, &identity))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(PeerKeys { identity, link })
    }
}

/// Where a peer is in joining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The Noise handshake is under way.
    Handshake,
    /// The link is open and our hello is sent; the hub's hello is awaited.
    Hello,
    /// Our proof is sent; the hub's welcome (its first signed bundle) is awaited.
    Proving,
    /// Welcomed: the hub took the proof, this is a peer.
    In,
}

/// One peer's connection.
pub struct Peer {
    pub stream: MioStream,
    identity: SigningKey,
    /// A private group's link; `None` in plain text.
    link: Option<Link>,
    stage: Stage,
    /// Our hello line, without its newline (the proof signs it).
    ours: String,
    /// Bytes not written yet (ciphertext in a private group), from `off`.
    out: Vec<u8>,
    off: usize,
    /// Bytes of a line not complete yet (decrypted in a private group).
    partial: Vec<u8>,
}

impl Peer {
    /// Starts joining on `stream` (connected, non-blocking): in a private group Noise message 1
    /// goes out, in plain text the hello.
    pub fn start(stream: MioStream, keys: PeerKeys, nick: &str) -> Result<Peer, String> {
        let (link, first) = match &keys.link {
            Some(k) => {
                let (link, first) = Link::initiator(k).map_err(|e| e.to_string())?;
                (Some(link), first)
            }
            None => (None, Vec::new()),
        };
        let mut run: Run = [0; 8];
        let mut nonce: Nonce = [0; 16];
        OsRng.fill_bytes(&mut run);
        OsRng.fill_bytes(&mut nonce);
        let key = NodeKey {
            key: keys.identity.verifying_key(),
            run,
        };
        let hello = Frame::Hello(Hello {
            nick: nick.into(),
            node: key.node(),
            listen: None,
            key,
            nonce,
        });
        let mut line = Vec::new();
        protocol::encode(&hello, &mut line);
        line.pop();
        let ours = String::from_utf8(line).map_err(|e| e.to_string())?;
        let mut peer = Peer {
            stream,
            identity: keys.identity,
            link,
            stage: Stage::Handshake,
            ours,
            out: first,
            off: 0,
            partial: Vec::new(),
        };
        if peer.link.is_none() {
            peer.say_hello()?;
        }
        peer.flush().map_err(|e| e.to_string())?;
        Ok(peer)
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Writes what is pending until the socket would block (the caller registered it for
    /// writable events, and calls this again on one).
    pub fn flush(&mut self) -> io::Result<()> {
        while self.off < self.out.len() {
            match self.stream.write(&self.out[self.off..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.off = 0;
        Ok(())
    }

    /// Our hello goes out (the link, if any, is open): the hub's hello is awaited.
    fn say_hello(&mut self) -> Result<(), String> {
        self.stage = Stage::Hello;
        let line = format!("{}\n", self.ours);
        self.seal(line.as_bytes())
    }

    /// One read from the socket into `buf`: through the link if any, then each complete line that is
    /// not the handshake's (hello, proof) nor a ping goes to `on_line`. `Ok(true)` when there
    /// may be more to read, `Ok(false)` when the socket would block; an error when the hub
    /// closed the connection or the link failed.
    pub fn read_some(
        &mut self,
        buf: &mut [u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<bool, String> {
        let n = match self.stream.read(buf) {
            Ok(0) => return Err("closed by the hub".into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e.to_string()),
        };
        match &mut self.link {
            Some(link) => {
                let progress = link.feed(&buf[..n]).map_err(|e| e.to_string())?;
                self.out.extend_from_slice(&progress.send);
                if self.stage == Stage::Handshake && link.is_open() {
                    self.say_hello()?;
                }
                self.partial.extend_from_slice(&progress.plain);
            }
            None => self.partial.extend_from_slice(&buf[..n]),
        }
        let mut start = 0;
        while let Some(len) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + len;
            let line = std::mem::take(&mut self.partial);
            let result = self.line(&line[start..end], &mut on_line);
            self.partial = line;
            result?;
            start = end + 1;
        }
        self.partial.drain(..start);
        self.flush().map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// One decrypted line.
    fn line(&mut self, line: &[u8], on_line: &mut impl FnMut(&[u8])) -> Result<(), String> {
        match self.stage {
            Stage::Handshake => Err("a line before the link opened".into()),
            Stage::Hello => {
                let theirs = std::str::from_utf8(line).map_err(|e| e.to_string())?;
                let hello = protocol::parse_hello(theirs).ok_or("the hub's hello is malformed")?;
                let proved = self.link.as_ref().map(|l| l.peer_identity());
                if proved.is_some_and(|key| key != Some(&hello.key.key)) {
                    return Err("the hub's hello names another key than its link".into());
                }
                let proof = sign::sign_proof(&self.identity, &self.ours, theirs);
                let mut text = Vec::new();
                protocol::encode(&Frame::Proof(proof), &mut text);
                self.stage = Stage::Proving;
                self.seal(&text)
            }
            _ if line == b"PING" => self.seal(b"PONG\n"),
            // The hub's proof of its hello; we do not check it, the hub checks ours.
            Stage::Proving if line.starts_with(b"PROOF ") => Ok(()),
            Stage::Proving => {
                self.stage = Stage::In;
                on_line(line);
                Ok(())
            }
            Stage::In => {
                on_line(line);
                Ok(())
            }
        }
    }

    /// Queues `plain` for the hub: sealed in a private group, as it is in plain text.
    fn seal(&mut self, plain: &[u8]) -> Result<(), String> {
        match &mut self.link {
            Some(link) => link.seal(plain, &mut self.out).map_err(|e| e.to_string()),
            None => {
                self.out.extend_from_slice(plain);
                Ok(())
            }
        }
    }
}
