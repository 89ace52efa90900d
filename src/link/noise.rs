//! The Noise link: the handshake two nodes of a private group run over a fresh connection, and
//! the records that carry the connection's bytes once it is done. Owns the pattern, the identity
//! binding in the handshake payloads, the wire framing and the per-link cipher state.
//!
//! Pure code: bytes in, bytes out. Must not read sockets, clocks or files, nor turn a passphrase
//! into the pre-shared key (the caller derives it, slowly), nor decide what an error means for
//! the chat: every [`LinkError`] means "close this connection", and a [`Link`] that returned one
//! returns it again for anything it is given.
//!
//! Never hand-rolled: the handshake, the key agreement and the record cipher are `snow`'s, the
//! signatures ed25519-dalek's. This file only chooses, frames and checks.
//!
//! # The pattern: `Noise_XXpsk0_25519_AESGCM_BLAKE2s`
//!
//! AES-256-GCM rather than ChaCha20-Poly1305 for the records, both through ring: a hub seals
//! every coalesced write of every encrypted link, and on CPUs with AES instructions (x86-64
//! since 2010, ARMv8 with its crypto extension) ring's AES-GCM seals 64 KiB records at about
//! 7.5 GB/s here against ChaCha20-Poly1305's 2.5 (1.1 for the pure-Rust ChaCha20-Poly1305).
//! Without them ring's AES is a constant-time one, slower but still far above what a chat
//! needs. Both are Noise ciphers; the choice is only speed.
//!
//! XX because neither side knows the other's key in advance (a node dials addresses, not keys).
//! The pre-shared key at position 0, not 3: with `psk0` every handshake message, the first one
//! included, is encrypted and authenticated under a key that mixes in the group secret, so a
//! node without the secret gets nothing but an ephemeral key before the handshake fails. With
//! `psk3` the responder's message 2 (its static key and identity payload) is readable by anyone
//! who dials it, and the responder decrypts the initiator's static key in message 3 before the
//! secret is checked: a stranger without the secret could collect the identity keys (and so the
//! fingerprints, the people) of every listening node. The cost of `psk0`: message 1's payload is
//! not forward-secret, which does not matter, since it is empty.
//!
//! Who sees a wrong secret, and when: the responder, on message 1 (it fails to authenticate);
//! it sends nothing back and the caller closes. The initiator never gets a message 2; it learns
//! of the failure when the connection closes during the handshake ([`Link::end`]).
//!
//! The prologue names peerchat and the version of this framing, so a node speaking another
//! version fails the handshake rather than misreading records.
//!
//! # The identity binding, as libp2p's Noise does it
//!
//! Each node has one X25519 static key per process ([`LinkKeys`]), signed once by its Ed25519
//! identity key. The payload of message 2 (responder) and message 3 (initiator) is exactly
//! `identity public key (32) || signature (64)`, the signature over [`STATIC_KEY_DOMAIN`] followed
//! by the sender's Noise static public key. The receiver checks it against the static key that
//! the handshake itself authenticated (`snow`'s remote static), so an identity key cannot be
//! claimed by a node that does not hold it, and a signed payload copied from another handshake
//! (over another static key) is refused. libp2p signs `"noise-libp2p-static-key:" || static`
//! inside a protobuf; peerchat uses a fixed layout and a domain line in the style of
//! `protocol::sign`, distinct from its three.
//!
//! # The wire
//!
//! Every Noise message, handshake and transport alike, is a 2-byte big-endian length then that
//! many bytes (at most 65 535, Noise's limit). Handshake messages are at most
//! [`MAX_HANDSHAKE_MESSAGE`] bytes; a longer length is refused before it is buffered. A transport
//! record carries at most [`MAX_RECORD_PLAIN`] bytes of plaintext plus a 16-byte tag; [`Link::seal`]
//! makes one record of a write up to that size (the reactor's coalesced write), and splits a
//! larger one. Records are numbered implicitly (Noise's nonce counter), so a replayed, dropped,
//! reordered or altered record fails authentication.
//!
//! Memory: a link holds at most one incomplete message (2 + 65 535 bytes) between reads.

use std::borrow::Cow;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{HandshakeState, TransportState};

/// The Noise protocol name: XX, the pre-shared key mixed in before the first message.
pub const PATTERN: &str = "Noise_XXpsk0_25519_AESGCM_BLAKE2s";

/// Mixed into the handshake hash by both sides: peerchat, and the version of this framing.
const PROLOGUE: &[u8] = b"peerchat/2 noise link v1\n";

/// What an identity key signs to vouch for a Noise static key: this line, then the 32 bytes.
pub const STATIC_KEY_DOMAIN: &[u8] = b"peerchat/2 noise static key\n";

/// The largest Noise message, and so the largest length the 2-byte prefix can announce.
pub const MAX_MESSAGE: usize = 65_535;

/// The AEAD tag every encrypted Noise message carries.
pub const TAG: usize = 16;

/// The most plaintext one transport record carries.
pub const MAX_RECORD_PLAIN: usize = MAX_MESSAGE - TAG;

/// The most bytes one record takes on the wire: its 2-byte length, then the largest message.
pub const MAX_RECORD: usize = 2 + MAX_MESSAGE;

/// The longest handshake message peerchat sends is message 2: ephemeral key (32), encrypted
/// static key (32 + 16), encrypted payload (96 + 16) = 192 bytes. Anything much longer is not a
/// peerchat handshake, and is refused before it is buffered.
pub const MAX_HANDSHAKE_MESSAGE: usize = 256;

/// The identity payload: Ed25519 public key, then its signature over the static key.
const PAYLOAD: usize = 32 + 64;

/// Why a link failed. Each means: close the connection (a record may have been lost, altered or
/// forged; nothing on the link can be trusted after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The handshake could not be set up here (no randomness, or `snow` refused the pattern).
    Setup,
    /// A handshake message failed: wrong secret, another protocol, or an altered message.
    Handshake,
    /// The peer's handshake payload is not its identity key signing its static key.
    Identity,
    /// A length prefix out of bounds for what the link expects now.
    Length(usize),
    /// A transport record failed authentication: altered, replayed, reordered or forged.
    Record,
    /// `seal` before the handshake is done.
    NotOpen,
    /// The peer closed the connection before the handshake was done.
    ClosedInHandshake,
    /// The peer closed the connection in the middle of a record.
    Truncated,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Setup => write!(f, "cannot set up an encrypted link"),
            LinkError::Handshake => write!(
                f,
                "encrypted handshake failed: wrong secret, or not a private group"
            ),
            LinkError::Identity => write!(f, "the peer's identity key does not vouch for its link"),
            LinkError::Length(n) => write!(f, "a link message of {n} bytes is out of bounds"),
            LinkError::Record => write!(
                f,
                "an encrypted record failed: tampered with, replayed or out of order"
            ),
            LinkError::NotOpen => write!(f, "the encrypted link is not open yet"),
            LinkError::ClosedInHandshake => write!(
                f,
                "the peer closed during the handshake: wrong secret, or not a private group"
            ),
            LinkError::Truncated => write!(f, "the peer closed in the middle of a record"),
        }
    }
}

impl std::error::Error for LinkError {}

/// What one [`Link::feed`] produced: bytes to write to the connection (handshake messages), and
/// the plaintext of every complete record, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub send: Vec<u8>,
    pub plain: Vec<u8>,
}

/// A node's keys for its links, made once per process: the group's pre-shared key, a fresh
/// X25519 static key, and the identity key's signature over it. One per process rather than one
/// per link, as libp2p does: the signature is made once, not per handshake; the static key
/// never leaves the process, and the handshake's ephemeral keys give each link its own secrets.
#[derive(Clone)]
pub struct LinkKeys {
    psk: [u8; 32],
    static_private: Vec<u8>,
    static_public: [u8; 32],
    identity: VerifyingKey,
    payload: [u8; PAYLOAD],
}

impl fmt::Debug for LinkKeys {
    /// The identity only: the secret and the static private key are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkKeys")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LinkKeys {
    /// Keys for links of the group whose pre-shared key is `psk`, vouched for by `identity`.
    pub fn new(psk: [u8; 32], identity: &SigningKey) -> Result<LinkKeys, LinkError> {
        let pair = builder()?
            .generate_keypair()
            .map_err(|_| LinkError::Setup)?;
        let static_public: [u8; 32] = pair
            .public
            .as_slice()
            .try_into()
            .map_err(|_| LinkError::Setup)?;
        let signature = identity.sign(&signed_text(&static_public));
        let public = identity.verifying_key();
        let mut payload = [0u8; PAYLOAD];
        payload[..32].copy_from_slice(public.as_bytes());
        payload[32..].copy_from_slice(&signature.to_bytes());
        Ok(LinkKeys {
            psk,
            static_private: pair.private,
            static_public,
            identity: public,
            payload,
        })
    }

    /// The identity key these links present.
    pub fn identity(&self) -> VerifyingKey {
        self.identity
    }

    /// The Noise static public key these links present.
    pub fn static_public(&self) -> [u8; 32] {
        self.static_public
    }

    /// Keys with this identity payload instead of the real one: for tests of the binding.
    #[cfg(test)]
    pub(crate) fn with_payload(mut self, payload: [u8; 96]) -> LinkKeys {
        self.payload = payload;
        self
    }

    fn handshake(&self, initiator: bool) -> Result<HandshakeState, LinkError> {
        let b = builder()?
            .prologue(PROLOGUE)
            .and_then(|b| b.psk(0, &self.psk))
            .and_then(|b| b.local_private_key(&self.static_private))
            .map_err(|_| LinkError::Setup)?;
        let built = if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        };
        built.map_err(|_| LinkError::Setup)
    }
}

/// What an identity key signs for the static key `static_public`.
fn signed_text(static_public: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(STATIC_KEY_DOMAIN.len() + static_public.len());
    text.extend_from_slice(STATIC_KEY_DOMAIN);
    text.extend_from_slice(static_public);
    text
}

/// The peer's identity key, if `payload` is that key's signature over `remote_static`.
fn verify_payload(payload: &[u8], remote_static: &[u8]) -> Result<VerifyingKey, LinkError> {
    let payload: &[u8; PAYLOAD] = payload.try_into().map_err(|_| LinkError::Identity)?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[..32]);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&payload[32..]);
    let key = VerifyingKey::from_bytes(&key).map_err(|_| LinkError::Identity)?;
    // Strict: no small-order keys, no malleable signatures; one valid payload per key and link.
    key.verify_strict(&signed_text(remote_static), &Signature::from_bytes(&sig))
        .map_err(|_| LinkError::Identity)?;
    Ok(key)
}

/// A `snow` builder for [`PATTERN`] whose randomness is the operating system's through
/// `rand_core` (the getrandom peerchat already uses), whose curve and hash are `snow`'s
/// default pure-Rust ones and whose cipher is ring's (see [`Resolver`]).
fn builder() -> Result<snow::Builder<'static>, LinkError> {
    let params: NoiseParams = PATTERN.parse().map_err(|_| LinkError::Setup)?;
    Ok(snow::Builder::with_resolver(params, Box::new(Resolver)))
}

/// `snow`'s default resolver with the operating system's randomness and ring's cipher (also
/// the sealed DMs', `protocol::seal`).
pub(crate) struct Resolver;

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SystemRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    /// ring's ciphers (assembly, with the CPU's AES and vector instructions): the hub seals
    /// every coalesced write of every encrypted link, and ring's are several times the pure-Rust
    /// ones' speed, most of all on small records (see the module's note on the pattern).
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver.resolve_cipher(choice)
    }
}

/// The operating system's random bytes, for ephemeral and static keys.
struct SystemRandom;

impl Random for SystemRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        OsRng.try_fill_bytes(dest).map_err(|_| snow::Error::Rng)
    }
}

enum State {
    /// Boxed: a handshake state is large, and a link spends most of its life open.
    Handshake(Box<HandshakeState>),
    Open(Box<TransportState>),
    /// An error was returned; every later call returns it again.
    Failed(LinkError),
}

/// One connection's end of an encrypted link: the handshake, then records both ways.
///
/// Feed it every byte read from the connection with [`Link::feed`], in any pieces; write what
/// it returns in [`Progress::send`]; once [`Link::is_open`], encrypt writes with [`Link::seal`].
pub struct Link {
    state: State,
    /// This side's identity payload, sent in message 2 (responder) or 3 (initiator).
    payload: [u8; PAYLOAD],
    /// The peer's identity key, once its payload checked out.
    peer: Option<VerifyingKey>,
    /// The start of one message whose end has not been read yet: at most 2 + 65 535 bytes.
    partial: Vec<u8>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Handshake(_) => "handshake",
            State::Open(_) => "open",
            State::Failed(_) => "failed",
        };
        f.debug_struct("Link")
            .field("state", &state)
            .field("peer", &self.peer)
            .field("partial", &self.partial.len())
            .finish()
    }
}

impl Link {
    /// The dialling side's link, and the first handshake message to write (the ephemeral key,
    /// 50 bytes with its length, naming nobody).
    pub fn initiator(keys: &LinkKeys) -> Result<(Link, Vec<u8>), LinkError> {
        let mut hs = keys.handshake(true)?;
        let mut first = Vec::new();
        write_handshake(&mut hs, &[], &mut first)?;
        Ok((Link::new(State::Handshake(Box::new(hs)), keys), first))
    }

    /// The accepting side's link: it speaks only after the initiator's first message.
    pub fn responder(keys: &LinkKeys) -> Result<Link, LinkError> {
        let hs = keys.handshake(false)?;
        Ok(Link::new(State::Handshake(Box::new(hs)), keys))
    }

    fn new(state: State, keys: &LinkKeys) -> Link {
        Link {
            state,
            payload: keys.payload,
            peer: None,
            partial: Vec::new(),
        }
    }

    /// Whether the handshake is done: `seal` works and records are read.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Whether the handshake is still under way (neither open nor failed).
    pub fn in_handshake(&self) -> bool {
        matches!(self.state, State::Handshake(_))
    }

    /// The peer's identity key, checked against the handshake: `Some` once the peer's payload
    /// was verified (for the initiator a message before the link opens).
    pub fn peer_identity(&self) -> Option<&VerifyingKey> {
        self.peer.as_ref()
    }

    /// Bytes of an incomplete message held between reads.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Takes bytes read from the connection, any number, split anywhere. Returns what to write
    /// back and the plaintext of every record completed by them; keeps an incomplete message for
    /// the next call. On an error the link is dead: the caller closes the connection.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, LinkError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        let mut progress = Progress::default();
        match self.feed_messages(input, &mut progress) {
            Ok(()) => Ok(progress),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Encrypts `plain` into records appended to `out`: one record for up to
    /// [`MAX_RECORD_PLAIN`] bytes, more for a larger write. Nothing for an empty one.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
        let records = plain.len().div_ceil(MAX_RECORD_PLAIN);
        out.reserve(plain.len() + records * (2 + TAG));
        for chunk in plain.chunks(MAX_RECORD_PLAIN) {
            let start = out.len();
            out.resize(start + 2 + chunk.len() + TAG, 0);
            if let Err(e) = self.seal_record(chunk, &mut out[start..]) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Encrypts `plain` (at most [`MAX_RECORD_PLAIN`] bytes) into one record at the start of
    /// `out`, which must have room for it (`2 + plain.len() + TAG`, at most [`MAX_RECORD`]);
    /// returns the record's length. For a writer that seals into a buffer it keeps, so that a
    /// write neither allocates nor clears memory.
    pub fn seal_record(&mut self, plain: &[u8], out: &mut [u8]) -> Result<usize, LinkError> {
        let transport = match &mut self.state {
            State::Open(t) => t,
            State::Handshake(_) => return Err(LinkError::NotOpen),
            State::Failed(e) => return Err(e.clone()),
        };
        let len = plain.len() + TAG;
        if plain.len() > MAX_RECORD_PLAIN || out.len() < 2 + len {
            return Err(LinkError::Length(plain.len()));
        }
        match transport.write_message(plain, &mut out[2..2 + len]) {
            Ok(n) if n == len => {
                out[..2].copy_from_slice(&(len as u16).to_be_bytes());
                Ok(2 + len)
            }
            // Only nonce exhaustion (2^64 records) gets here: the link cannot go on.
            _ => Err(self.fail(LinkError::Record)),
        }
    }

    /// The peer closed the connection (end of file). `Ok` if that ends a healthy link between
    /// records; otherwise what went wrong, for the line the caller shows.
    pub fn end(&mut self) -> Result<(), LinkError> {
        let e = match &self.state {
            State::Failed(e) => e.clone(),
            State::Handshake(_) => LinkError::ClosedInHandshake,
            State::Open(_) if !self.partial.is_empty() => LinkError::Truncated,
            State::Open(_) => return Ok(()),
        };
        Err(self.fail(e))
    }

    /// Marks the link dead with `e`, drops its buffer and keys, and returns `e`.
    fn fail(&mut self, e: LinkError) -> LinkError {
        self.state = State::Failed(e.clone());
        self.partial = Vec::new();
        e
    }

    fn feed_messages(
        &mut self,
        mut input: &[u8],
        progress: &mut Progress,
    ) -> Result<(), LinkError> {
        loop {
            let max = match self.state {
                State::Handshake(_) => MAX_HANDSHAKE_MESSAGE,
                _ => MAX_MESSAGE,
            };
            let Some(message) = next_message(&mut self.partial, &mut input, max)? else {
                return Ok(());
            };
            let body = &message[2..];
            if self.in_handshake() {
                self.handshake_message(body, progress)?;
            } else if let State::Open(t) = &mut self.state {
                open_record(t, body, &mut progress.plain)?;
            }
            if let Cow::Owned(mut buf) = message {
                // Keep the allocation for the next message that spans reads.
                buf.clear();
                self.partial = buf;
            }
        }
    }

    /// Reads one handshake message, checks the peer's identity when the message carries it,
    /// answers when it is this side's turn, and opens the link when the handshake is done.
    fn handshake_message(&mut self, body: &[u8], progress: &mut Progress) -> Result<(), LinkError> {
        let State::Handshake(hs) = &mut self.state else {
            return Err(LinkError::Handshake);
        };
        let mut payload = [0u8; MAX_HANDSHAKE_MESSAGE];
        let n = hs
            .read_message(body, &mut payload)
            .map_err(|_| LinkError::Handshake)?;
        let payload = &payload[..n];
        match hs.get_remote_static() {
            // Message 2 (read by the initiator) or 3 (by the responder): the peer's static key
            // came with it, authenticated; its payload must be its identity vouching for it.
            Some(remote) if self.peer.is_none() => {
                self.peer = Some(verify_payload(payload, remote)?)
            }
            // Message 1 carries nothing.
            None if payload.is_empty() => {}
            _ => return Err(LinkError::Handshake),
        }
        if hs.is_my_turn() && !hs.is_handshake_finished() {
            write_handshake(hs, &self.payload, &mut progress.send)?;
        }
        if hs.is_handshake_finished() {
            if self.peer.is_none() {
                return Err(LinkError::Identity);
            }
            let State::Handshake(hs) =
                std::mem::replace(&mut self.state, State::Failed(LinkError::Handshake))
            else {
                return Err(LinkError::Handshake);
            };
            let transport = hs.into_transport_mode().map_err(|_| LinkError::Handshake)?;
            self.state = State::Open(Box::new(transport));
        }
        Ok(())
    }
}

/// Writes the next handshake message, with `payload`, length first, onto `out`.
fn write_handshake(
    hs: &mut HandshakeState,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), LinkError> {
    let mut message = [0u8; MAX_HANDSHAKE_MESSAGE];
    let n = hs
        .write_message(payload, &mut message)
        .map_err(|_| LinkError::Setup)?;
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&message[..n]);
    Ok(())
}

/// Decrypts one record straight onto the end of `plain`.
fn open_record(t: &mut TransportState, body: &[u8], plain: &mut Vec<u8>) -> Result<(), LinkError> {
    let start = plain.len();
    plain.resize(start + body.len().saturating_sub(TAG), 0);
    match t.read_message(body, &mut plain[start..]) {
        Ok(n) => {
            plain.truncate(start + n);
            Ok(())
        }
        Err(_) => {
            plain.truncate(start);
            Err(LinkError::Record)
        }
    }
}

/// The next whole message (length prefix included), taken from `input` when it lies there whole
/// or from `partial` once the bytes that complete it arrive; `None` when the input ran out first,
/// its bytes kept in `partial`. A length of less than a tag or more than `max` is refused as
/// soon as its two bytes are read, so `partial` never holds more than 2 + `max` bytes.
fn next_message<'a>(
    partial: &mut Vec<u8>,
    input: &mut &'a [u8],
    max: usize,
) -> Result<Option<Cow<'a, [u8]>>, LinkError> {
    let check = |header: &[u8]| {
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        if (TAG..=max).contains(&len) {
            Ok(len)
        } else {
            Err(LinkError::Length(len))
        }
    };
    if partial.is_empty() {
        if input.len() >= 2 {
            let len = check(input)?;
            if input.len() >= 2 + len {
                let (message, rest) = input.split_at(2 + len);
                *input = rest;
                return Ok(Some(Cow::Borrowed(message)));
            }
        }
        // Shorter than the message it starts, so at most 2 + max bytes.
        partial.extend_from_slice(input);
        *input = &[];
        return Ok(None);
    }
    if partial.len() < 2 {
        let take = (2 - partial.len()).min(input.len());
        partial.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if partial.len() < 2 {
            return Ok(None);
        }
    }
    let len = check(partial)?;
    let take = (2 + len - partial.len()).min(input.len());
    partial.extend_from_slice(&input[..take]);
    *input = &input[take..];
    if partial.len() < 2 + len {
        return Ok(None);
    }
    Ok(Some(Cow::Owned(std::mem::take(partial))))
}
