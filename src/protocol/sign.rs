//! Identity on the wire: node ids derived from a public key, the hello's proof of the key, and
//! the signature over a bundle of flooded frames. Every signature is Ed25519 (ed25519-dalek)
//! over a byte string that starts with its own domain line, so a signature made for one purpose
//! is never accepted for another.
//!
//! Pure code: keys and bytes in, ids and verdicts out. Must not read key files (the identity
//! room does) nor decide what a bad signature means for a connection (the chat does).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256, Sha512};

use super::ids::NodeId;

/// The per-run part of a node id: a person may restart, or run two nodes with one key.
pub type Run = [u8; 8];

/// A hello's fresh nonce, new for every connection.
pub type Nonce = [u8; 16];

/// Domain lines: what each kind of signature is over starts with one of these.
const NODE_DOMAIN: &[u8] = b"peerchat/2 node\n";
const PROOF_DOMAIN: &[u8] = b"peerchat/2 proof\n";
const FRAMES_DOMAIN: &[u8] = b"peerchat/2 frames\n";

/// The node id of the node with public key `key` in the run `run`: the first 8 bytes of
/// SHA-512 over the key and the run. Anyone holding the key and the run checks it, so a node id
/// cannot be claimed without the key (finding another key with the same id is a 2^64 search).
pub fn node_id(key: &VerifyingKey, run: &Run) -> NodeId {
    let mut h = Sha512::new();
    h.update(NODE_DOMAIN);
    h.update(key.as_bytes());
    h.update(run);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A short, stable name of a public key for people to compare: the first 8 bytes of SHA-256
/// over it, as `xxxx:xxxx:xxxx:xxxx`.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex = to_hex(&digest[..8]);
    let groups: Vec<&str> = (0..4).map(|i| &hex[i * 4..i * 4 + 4]).collect();
    groups.join(":")
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Exactly `2 * N` lower-case hex digits into `N` bytes; anything else is `None` (one spelling
/// per value, so a signed line has one form).
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// An even number of lower-case hex digits into bytes; anything else is `None`.
pub fn from_hex_vec(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// A public key from its 64 hex digits, if it is a valid curve point.
pub fn parse_key(s: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&from_hex::<32>(s)?).ok()
}

/// A signature from its 128 hex digits.
pub fn parse_signature(s: &str) -> Option<Signature> {
    Some(Signature::from_bytes(&from_hex::<64>(s)?))
}

fn proof_message(signer_hello: &str, other_hello: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(PROOF_DOMAIN.len() + signer_hello.len() + other_hello.len() + 1);
    m.extend_from_slice(PROOF_DOMAIN);
    m.extend_from_slice(signer_hello.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(other_hello.as_bytes());
    m
}

/// The proof a node sends after reading the other side's hello: its signature over both hello
/// lines of this connection (its own first). Both carry fresh nonces and both node ids, so the
/// proof is good for this connection only and cannot be turned around.
pub fn sign_proof(key: &SigningKey, own_hello: &str, their_hello: &str) -> Signature {
    key.sign(&proof_message(own_hello, their_hello))
}

/// Checks the other side's proof: signed by `key` (from its hello) over its hello then ours.
pub fn verify_proof(
    key: &VerifyingKey,
    sig: &Signature,
    their_hello: &str,
    own_hello: &str,
) -> bool {
    key.verify_strict(&proof_message(their_hello, own_hello), sig)
        .is_ok()
}

/// What a bundle's signature covers: the domain, the origin node, then the frame lines exactly
/// as sent, each with its `\n`.
fn frames_message(node: NodeId, lines: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(FRAMES_DOMAIN.len() + 17 + lines.len());
    m.extend_from_slice(FRAMES_DOMAIN);
    m.extend_from_slice(format!("{node:016x}\n").as_bytes());
    m.extend_from_slice(lines);
    m
}

/// Signs the frame lines `lines` (each ending in `\n`) that node `node` originates.
pub fn sign_frames(key: &SigningKey, node: NodeId, lines: &[u8]) -> Signature {
    key.sign(&frames_message(node, lines))
}

/// Checks a bundle's signature by its origin's key.
pub fn verify_frames(key: &VerifyingKey, node: NodeId, lines: &[u8], sig: &Signature) -> bool {
    key.verify_strict(&frames_message(node, lines), sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_node_id_depends_on_the_key_and_the_run() {
        let (a, b) = (key(1).verifying_key(), key(2).verifying_key());
        let run = [7u8; 8];
        assert_eq!(node_id(&a, &run), node_id(&a, &run));
        assert_ne!(node_id(&a, &run), node_id(&b, &run));
        assert_ne!(node_id(&a, &run), node_id(&a, &[8u8; 8]));
    }

    #[test]
    fn hex_has_one_spelling() {
        assert_eq!(to_hex(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(from_hex::<2>("0fa0"), Some([0x0f, 0xa0]));
        for bad in ["0FA0", "0fa", "0fa00", "0fg0", "+fa0"] {
            assert_eq!(from_hex::<2>(bad), None, "{bad}");
        }
    }

    #[test]
    fn fingerprints_are_four_groups_of_four() {
        let fp = fingerprint(&key(1).verifying_key());
        assert_eq!(fp.len(), 19);
        assert_eq!(fp.matches(':').count(), 3);
        assert_ne!(fp, fingerprint(&key(2).verifying_key()));
    }

    #[test]
    fn a_proof_holds_for_its_connection_only() {
        let k = key(3);
        let (mine, theirs) = (
            "peerchat/2 hello from a (n=1)",
            "peerchat/2 hello from b (n=2)",
        );
        let sig = sign_proof(&k, mine, theirs);
        let vk = k.verifying_key();
        assert!(verify_proof(&vk, &sig, mine, theirs));
        // Turned around, or on another connection (other nonces), it fails.
        assert!(!verify_proof(&vk, &sig, theirs, mine));
        assert!(!verify_proof(
            &vk,
            &sig,
            mine,
            "peerchat/2 hello from b (n=3)"
        ));
        assert!(!verify_proof(&key(4).verifying_key(), &sig, mine, theirs));
    }

    #[test]
    fn a_bundle_signature_covers_the_node_and_every_byte() {
        let k = key(5);
        let lines = b"MSG 0000000000000001:1 0000000000000001 a hi\n";
        let sig = sign_frames(&k, 1, lines);
        let vk = k.verifying_key();
        assert!(verify_frames(&vk, 1, lines, &sig));
        assert!(!verify_frames(&vk, 2, lines, &sig));
        let mut flipped = lines.to_vec();
        flipped[40] ^= 1;
        assert!(!verify_frames(&vk, 1, &flipped, &sig));
        // A proof signature is not a bundle signature, even over the same bytes.
        let proof = sign_proof(&k, "x", "y");
        assert!(!verify_frames(&vk, 1, b"x\ny", &proof));
    }
}
