//! Sealed direct messages: the text of a `SDM` frame, encrypted by its sender's node to the node
//! of its recipient, so that the nodes relaying it pass on bytes they cannot read.
//!
//! Pure code: bytes in, bytes out (randomness for the one ephemeral key comes from the operating
//! system through `rand_core`, as the Noise links' does). Never hand-rolled: the sealing is one
//! `snow` handshake message of the one-way pattern [`PATTERN`].
//!
//! # The pattern: `Noise_X_25519_ChaChaPoly_BLAKE2s`
//!
//! One message, sender to recipient: a fresh ephemeral key, the sender's static key encrypted,
//! then the text encrypted under keys mixing both DH results with the recipient's static key
//! (`es`, `ss`). So only the recipient's node can read it, and the recipient learns which static
//! key sent it. Noise's one-way patterns have no forward secrecy for the recipient's key nor
//! replay protection by themselves: the replay protection is the flood's (each message id is
//! shown once), and the [`prologue`] binds the ciphertext to its message id, sender and recipient,
//! so the same bytes under another id, another `from` or another `to` fail to open.
//!
//! # The static keys: each node's Ed25519 identity key, converted to X25519
//!
//! The recipient's X25519 public key is its node's Ed25519 identity key as a Montgomery point
//! (`VerifyingKey::to_montgomery`), its private key the identity key's scalar
//! (`SigningKey::to_scalar_bytes`, which X25519 clamps as Ed25519 does): the same conversion
//! as libsodium's `crypto_sign_ed25519_*_to_curve25519` and age's ssh-ed25519 recipients. Chosen
//! over carrying an extra X25519 key in `JOIN`/`HERE` because every node already knows, checked
//! and pinned (`known.rs`) the identity key of every node whose members it can name: no frame
//! changes, no key that could disagree with the identity, nothing new to trust on first use.
//! Using one key pair for Ed25519 signatures and X25519 is analysed in "On using the same key
//! pair for Ed25519 and an X25519 based KEM" (Thormarker, 2021, eprint 2021/509), which finds
//! it sound; ed25519-dalek's note recommends separate keys where one can, which here would
//! cost an unpinned second key.
//!
//! The sender is authenticated twice: the bundle carrying the frame is signed by its origin
//! node, and the static key inside the sealed message must be that same node's identity key
//! converted ([`open`] checks it), so a node cannot pass off another's sealed text as its own.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::{MemberId, MsgId, MAX_TEXT};
use crate::link::noise::Resolver;

/// The Noise protocol name: one-way, the sender's static key transmitted.
pub const PATTERN: &str = "Noise_X_25519_ChaChaPoly_BLAKE2s";

/// Mixed into the handshake hash before the message ids of [`prologue`].
const DOMAIN: &[u8] = b"peerchat/2 sealed dm v1\n";

/// What sealing adds to the text: ephemeral key (32), static key and its tag (48), text tag (16).
pub const OVERHEAD: usize = 32 + 48 + 16;

/// The longest sealed message, in bytes: its hex takes at most [`MAX_TEXT`] on the line, as a
/// `MSG`'s text does.
pub const MAX_SEALED: usize = MAX_TEXT / 2;

/// The longest text one sealed DM carries; longer text is sent as several.
pub const MAX_SEALED_TEXT: usize = MAX_SEALED - OVERHEAD;

/// Why a DM could not be sealed or opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealError {
    /// `snow` refused to set up, or there was no randomness.
    Setup,
    /// Longer than [`MAX_SEALED_TEXT`].
    TooLong,
    /// Not sealed to this node, altered, or sealed for another id, sender or recipient.
    Open,
    /// Sealed by another static key than the origin node's identity.
    Sender,
    /// The opened text is not one line of text.
    Text,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Setup => write!(f, "cannot seal a direct message here"),
            SealError::TooLong => write!(f, "a direct message too long to seal"),
            SealError::Open => write!(f, "a direct message that does not open here"),
            SealError::Sender => write!(f, "a direct message sealed by another node"),
            SealError::Text => write!(f, "a direct message that is not a line of text"),
        }
    }
}

impl std::error::Error for SealError {}

/// The X25519 public key of the node whose identity key is `key`.
pub fn dh_public(key: &VerifyingKey) -> [u8; 32] {
    key.to_montgomery().to_bytes()
}

/// What both sides mix in before the message: the domain, then `id from to` and a newline.
pub fn prologue(id: MsgId, from: MemberId, to: MemberId) -> Vec<u8> {
    let mut p = DOMAIN.to_vec();
    p.extend_from_slice(format!("{id} {from} {to}\n").as_bytes());
    p
}

fn builder<'a>() -> Result<snow::Builder<'a>, SealError> {
    let params: snow::params::NoiseParams = PATTERN.parse().map_err(|_| SealError::Setup)?;
    Ok(snow::Builder::with_resolver(params, Box::new(Resolver)))
}

/// `text` from member `from` (of the node whose identity is `sender`) to member `to` (of the
/// node whose identity is `recipient`), sealed for `recipient` alone.
pub fn seal(
    sender: &SigningKey,
    recipient: &VerifyingKey,
    id: MsgId,
    from: MemberId,
    to: MemberId,
    text: &str,
) -> Result<Vec<u8>, SealError> {
    if text.len() > MAX_SEALED_TEXT {
        return Err(SealError::TooLong);
    }
    let private = sender.to_scalar_bytes();
    let public = dh_public(recipient);
    let bound = prologue(id, from, to);
    let mut hs = builder()?
        .prologue(&bound)
        .and_then(|b| b.local_private_key(&private[..]))
        .and_then(|b| b.remote_public_key(&public))
        .and_then(|b| b.build_initiator())
        .map_err(|_| SealError::Setup)?;
    let mut out = vec![0u8; text.len() + OVERHEAD];
    let n = hs
        .write_message(text.as_bytes(), &mut out)
        .map_err(|_| SealError::Setup)?;
    out.truncate(n);
    Ok(out)
}

/// The text of `sealed`, if it was sealed to `recipient` (this node) by the node whose identity
/// is `sender`, for message `id` from `from` to `to`; and one line of text.
pub fn open(
    recipient: &SigningKey,
    sender: &VerifyingKey,
    id: MsgId,
    from: MemberId,
    to: MemberId,
    sealed: &[u8],
) -> Result<String, SealError> {
    if sealed.len() < OVERHEAD || sealed.len() > MAX_SEALED {
        return Err(SealError::Open);
    }
    let private = recipient.to_scalar_bytes();
    let bound = prologue(id, from, to);
    let mut hs = builder()?
        .prologue(&bound)
        .and_then(|b| b.local_private_key(&private[..]))
        .and_then(|b| b.build_responder())
        .map_err(|_| SealError::Setup)?;
    let mut plain = vec![0u8; sealed.len()];
    let n = hs
        .read_message(sealed, &mut plain)
        .map_err(|_| SealError::Open)?;
    if hs.get_remote_static() != Some(&dh_public(sender)[..]) {
        return Err(SealError::Sender);
    }
    plain.truncate(n);
    let text = String::from_utf8(plain).map_err(|_| SealError::Text)?;
    if text.contains(['\n', '\r', '\0']) {
        return Err(SealError::Text);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    const ID: MsgId = MsgId { node: 1, seq: 7 };

    fn from() -> MemberId {
        MemberId::node(1)
    }

    fn to() -> MemberId {
        MemberId::node(2)
    }

    #[test]
    fn converted_keys_agree() {
        // snow derives the public key from the scalar as X25519 does; it must be the
        // Montgomery form of the Ed25519 key, or nobody could open anything.
        let (a, b) = (key(1), key(2));
        let sealed = seal(&a, &b.verifying_key(), ID, from(), to(), "olá").unwrap();
        assert_eq!(
            open(&b, &a.verifying_key(), ID, from(), to(), &sealed),
            Ok("olá".to_string())
        );
        assert_eq!(sealed.len(), "olá".len() + OVERHEAD);
    }

    #[test]
    fn the_text_is_not_in_the_sealed_bytes_and_each_seal_differs() {
        let (a, b) = (key(1), key(2));
        let text = "a secret meeting at noon";
        let one = seal(&a, &b.verifying_key(), ID, from(), to(), text).unwrap();
        let two = seal(&a, &b.verifying_key(), ID, from(), to(), text).unwrap();
        assert_ne!(one, two);
        assert!(!one.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn only_the_recipient_opens() {
        let (a, b, c) = (key(1), key(2), key(3));
        let sealed = seal(&a, &b.verifying_key(), ID, from(), to(), "hi").unwrap();
        assert_eq!(
            open(&c, &a.verifying_key(), ID, from(), to(), &sealed),
            Err(SealError::Open)
        );
    }

    #[test]
    fn any_flipped_bit_fails() {
        let (a, b) = (key(1), key(2));
        let sealed = seal(&a, &b.verifying_key(), ID, from(), to(), "hello").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&b, &a.verifying_key(), ID, from(), to(), &bad).is_err());
        }
        assert!(open(
            &b,
            &a.verifying_key(),
            ID,
            from(),
            to(),
            &sealed[..OVERHEAD]
        )
        .is_err());
    }

    #[test]
    fn bound_to_id_sender_and_recipient() {
        let (a, b) = (key(1), key(2));
        let sealed = seal(&a, &b.verifying_key(), ID, from(), to(), "hello").unwrap();
        let other = MsgId { node: 1, seq: 8 };
        let guest = MemberId { node: 1, guest: 3 };
        let open_as = |id, f, t| open(&b, &a.verifying_key(), id, f, t, &sealed);
        assert_eq!(open_as(other, from(), to()), Err(SealError::Open));
        assert_eq!(open_as(ID, guest, to()), Err(SealError::Open));
        assert_eq!(
            open_as(ID, from(), MemberId { node: 2, guest: 1 }),
            Err(SealError::Open)
        );
    }

    #[test]
    fn another_node_cannot_pass_it_off_as_its_own() {
        // Node 3 seals to b; a bundle from node 1 carrying it opens, but not as node 1's.
        let (a, b, c) = (key(1), key(2), key(3));
        let sealed = seal(&c, &b.verifying_key(), ID, from(), to(), "hello").unwrap();
        assert_eq!(
            open(&b, &a.verifying_key(), ID, from(), to(), &sealed),
            Err(SealError::Sender)
        );
    }

    #[test]
    fn the_longest_text_seals_and_longer_is_refused() {
        let (a, b) = (key(1), key(2));
        let text = "x".repeat(MAX_SEALED_TEXT);
        let sealed = seal(&a, &b.verifying_key(), ID, from(), to(), &text).unwrap();
        assert_eq!(sealed.len(), MAX_SEALED);
        assert_eq!(
            open(&b, &a.verifying_key(), ID, from(), to(), &sealed),
            Ok(text.clone())
        );
        let longer = format!("{text}x");
        assert_eq!(
            seal(&a, &b.verifying_key(), ID, from(), to(), &longer),
            Err(SealError::TooLong)
        );
    }

    #[test]
    fn a_sealed_newline_is_refused_on_opening() {
        let (a, b) = (key(1), key(2));
        let sealed = seal(&a, &b.verifying_key(), ID, from(), to(), "a\nb").unwrap();
        assert_eq!(
            open(&b, &a.verifying_key(), ID, from(), to(), &sealed),
            Err(SealError::Text)
        );
    }
}
