//! LAN beacons (`--lan`): the small UDP datagram a node sends to say where it listens, and its
//! parsing. docs/PROTOCOL.md ("LAN beacons") describes the same bytes for people.
//!
//! An open beacon carries the node id and the room in clear. A private group's beacon carries
//! neither: a random nonce, a tag that lets a member test "is this node id the sender's?" and a
//! tag of the room, both keyed BLAKE2s MACs under a key derived from the group's pre-shared key.
//! A stranger learns only that some node listens on that port; a member learns the room matches
//! and can tell its own beacons and its peers' from others'.
//!
//! Pure code: bytes in, beacons out. A beacon is never trusted beyond the (rate-limited) dial it
//! may cause: its only effect is an address to try.

use blake2::digest::consts::{U16, U32};
use blake2::digest::{FixedOutput, KeyInit, Mac};
use blake2::Blake2sMac;

use super::{NodeId, VERSION};

/// The first bytes of every beacon.
pub const MAGIC: [u8; 4] = *b"pcLB";
/// The longest room name, in bytes.
pub const MAX_ROOM: usize = 32;
/// The longest beacon; a longer datagram is dropped unread.
pub const MAX_BEACON: usize = 64;
/// A private beacon's size: header, nonce, node tag, room tag.
pub const PRIVATE_LEN: usize = HEAD + NONCE + TAG + TAG;

const HEAD: usize = 9;
const NONCE: usize = 16;
const TAG: usize = 16;
const OPEN: u8 = 0;
const PRIVATE: u8 = 1;

type Mac16 = Blake2sMac<U16>;

/// The key of a private group's beacons, derived from the group's pre-shared key.
#[derive(Clone)]
pub struct BeaconKey([u8; 32]);

impl BeaconKey {
    /// BLAKE2s keyed with the group's pre-shared key, over a label of its own: the beacon key
    /// says nothing of the link key, and the link key nothing of it.
    pub fn derive(psk: &[u8; 32]) -> BeaconKey {
        let mut mac = <Blake2sMac<U32> as KeyInit>::new_from_slice(psk)
            .unwrap_or_else(|_| unreachable!("32 bytes is a BLAKE2s key"));
        Mac::update(&mut mac, b"peerchat lan beacon key v1");
        BeaconKey(mac.finalize_fixed().into())
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Mac16 {
        let mut mac = <Mac16 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("32 bytes is a BLAKE2s key"));
        Mac::update(&mut mac, label);
        for p in parts {
            Mac::update(&mut mac, p);
        }
        mac
    }

    fn node_tag(&self, nonce: &[u8], node: NodeId) -> [u8; TAG] {
        self.mac(b"node", &[nonce, &node.to_be_bytes()])
            .finalize_fixed()
            .into()
    }
}

impl std::fmt::Debug for BeaconKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeaconKey(..)")
    }
}

/// Who sent a beacon, as far as it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// An open beacon names its node.
    Node(NodeId),
    /// A private beacon only lets a member test a node id against it.
    Tagged { nonce: [u8; NONCE], tag: [u8; TAG] },
}

/// A beacon of this node's room, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beacon {
    /// The TCP port the sender listens on (its address is the datagram's source).
    pub port: u16,
    pub sender: Sender,
}

impl Beacon {
    /// True if node `node` sent this beacon (for a private one, under `key`).
    pub fn is_from(&self, node: NodeId, key: Option<&BeaconKey>) -> bool {
        match (&self.sender, key) {
            (Sender::Node(n), _) => *n == node,
            (Sender::Tagged { nonce, tag }, Some(key)) => {
                // The constant-time comparison of the MAC crate, not `==`.
                let mac = key.mac(b"node", &[nonce, &node.to_be_bytes()]);
                mac.verify_slice(tag).is_ok()
            }
            (Sender::Tagged { .. }, None) => false,
        }
    }
}

/// Why a datagram is not a beacon of this room; every one is dropped the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    TooLong,
    NotABeacon,
    Version,
    Malformed,
    /// A beacon of another room (or another group, or open where this node is private).
    OtherRoom,
}

fn head(kind: u8, port: u16) -> [u8; HEAD] {
    let mut h = [0u8; HEAD];
    h[..4].copy_from_slice(&MAGIC);
    // `VERSION` is small: the beacon keeps two bytes of it.
    h[4..6].copy_from_slice(&(VERSION as u16).to_be_bytes());
    h[6] = kind;
    h[7..9].copy_from_slice(&port.to_be_bytes());
    h
}

/// This node's beacon: it listens on `port`, is `node`, in `room` (at most [`MAX_ROOM`] bytes,
/// see `cli::parse_room`). With `key` (a private group) the node id and room are hidden and
/// `nonce` (fresh random bytes each beacon) keeps two beacons from looking alike.
pub fn encode(
    port: u16,
    node: NodeId,
    room: &str,
    key: Option<&BeaconKey>,
    nonce: [u8; NONCE],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAX_BEACON);
    match key {
        None => {
            b.extend_from_slice(&head(OPEN, port));
            b.extend_from_slice(&node.to_be_bytes());
            let room = &room.as_bytes()[..room.len().min(MAX_ROOM)];
            b.push(room.len() as u8);
            b.extend_from_slice(room);
        }
        Some(key) => {
            let h = head(PRIVATE, port);
            b.extend_from_slice(&h);
            b.extend_from_slice(&nonce);
            b.extend_from_slice(&key.node_tag(&nonce, node));
            let room_tag: [u8; TAG] = key
                .mac(b"room", &[&h, &nonce, room.as_bytes()])
                .finalize_fixed()
                .into();
            b.extend_from_slice(&room_tag);
        }
    }
    b
}

/// Reads `bytes` as a beacon of `room` (under `key` for a private group). Anything else is
/// [`Dropped`]: too long, not a beacon, another version, malformed, another room or group.
pub fn parse(bytes: &[u8], room: &str, key: Option<&BeaconKey>) -> Result<Beacon, Dropped> {
    if bytes.len() > MAX_BEACON {
        return Err(Dropped::TooLong);
    }
    if bytes.len() < HEAD || bytes[..4] != MAGIC {
        return Err(Dropped::NotABeacon);
    }
    if u16::from_be_bytes([bytes[4], bytes[5]]) != VERSION as u16 {
        return Err(Dropped::Version);
    }
    let port = u16::from_be_bytes([bytes[7], bytes[8]]);
    if port == 0 {
        return Err(Dropped::Malformed);
    }
    let body = &bytes[HEAD..];
    let sender = match (bytes[6], key) {
        (OPEN, None) => open_body(body, room)?,
        (PRIVATE, Some(key)) => private_body(&bytes[..HEAD], body, room, key)?,
        (OPEN | PRIVATE, _) => return Err(Dropped::OtherRoom),
        _ => return Err(Dropped::Malformed),
    };
    Ok(Beacon { port, sender })
}

fn open_body(body: &[u8], room: &str) -> Result<Sender, Dropped> {
    let (node, rest) = body.split_first_chunk::<8>().ok_or(Dropped::Malformed)?;
    let (&len, name) = rest.split_first().ok_or(Dropped::Malformed)?;
    if usize::from(len) != name.len() || name.is_empty() || name.len() > MAX_ROOM {
        return Err(Dropped::Malformed);
    }
    if name != room.as_bytes() {
        return Err(Dropped::OtherRoom);
    }
    Ok(Sender::Node(NodeId::from_be_bytes(*node)))
}

fn private_body(h: &[u8], body: &[u8], room: &str, key: &BeaconKey) -> Result<Sender, Dropped> {
    if body.len() != NONCE + TAG + TAG {
        return Err(Dropped::Malformed);
    }
    let (nonce, rest) = body.split_at(NONCE);
    let (tag, room_tag) = rest.split_at(TAG);
    key.mac(b"room", &[h, nonce, room.as_bytes()])
        .verify_slice(room_tag)
        .map_err(|_| Dropped::OtherRoom)?;
    let mut n = [0u8; NONCE];
    n.copy_from_slice(nonce);
    let mut t = [0u8; TAG];
    t.copy_from_slice(tag);
    Ok(Sender::Tagged { nonce: n, tag: t })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE_A: [u8; NONCE] = [7; NONCE];

    fn key(b: u8) -> BeaconKey {
        BeaconKey::derive(&[b; 32])
    }

    #[test]
    fn an_open_beacon_reads_back_and_is_small() {
        let b = encode(5000, 0xDEAD_BEEF_0123_4567, "lobby", None, NONCE_A);
        assert_eq!(b.len(), HEAD + 8 + 1 + 5);
        let got = parse(&b, "lobby", None).expect("a beacon");
        assert_eq!(got.port, 5000);
        assert_eq!(got.sender, Sender::Node(0xDEAD_BEEF_0123_4567));
        assert!(got.is_from(0xDEAD_BEEF_0123_4567, None));
        assert!(!got.is_from(1, None));
        let longest = encode(1, 1, &"r".repeat(MAX_ROOM), None, NONCE_A);
        assert!(longest.len() <= MAX_BEACON);
        assert!(parse(&longest, &"r".repeat(MAX_ROOM), None).is_ok());
    }

    #[test]
    fn another_room_version_or_kind_is_dropped() {
        let b = encode(5000, 9, "lobby", None, NONCE_A);
        assert_eq!(parse(&b, "lab", None), Err(Dropped::OtherRoom));
        assert_eq!(parse(&b, "lobby", Some(&key(1))), Err(Dropped::OtherRoom));
        let mut old = b.clone();
        old[5] ^= 0x7f;
        assert_eq!(parse(&old, "lobby", None), Err(Dropped::Version));
        let mut kind = b.clone();
        kind[6] = 9;
        assert_eq!(parse(&kind, "lobby", None), Err(Dropped::Malformed));
        let p = encode(5000, 9, "lobby", Some(&key(1)), NONCE_A);
        assert_eq!(parse(&p, "lobby", None), Err(Dropped::OtherRoom));
    }

    #[test]
    fn malformed_and_oversized_datagrams_are_dropped_whatever_their_bytes() {
        let b = encode(5000, 9, "lobby", None, NONCE_A);
        for cut in 0..b.len() {
            assert!(parse(&b[..cut], "lobby", None).is_err(), "cut at {cut}");
        }
        let mut longer = b.clone();
        longer.push(b'x');
        assert_eq!(parse(&longer, "lobby", None), Err(Dropped::Malformed));
        let mut zero_port = b.clone();
        zero_port[7..9].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&zero_port, "lobby", None), Err(Dropped::Malformed));
        assert_eq!(
            parse(&[0u8; MAX_BEACON + 1], "lobby", None),
            Err(Dropped::TooLong)
        );
        assert_eq!(parse(b"hello", "lobby", None), Err(Dropped::NotABeacon));
        // Random bytes after a valid header never panic and never pass as another room's.
        let mut rng = crate::test_rng::Rng(14);
        for _ in 0..2000 {
            let len = rng.below(MAX_BEACON as u64 + 8) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            if d.len() >= HEAD && rng.below(2) == 0 {
                d[..HEAD].copy_from_slice(&head(rng.below(2) as u8, 5000));
            }
            for k in [None, Some(key(3))] {
                if let Ok(got) = parse(&d, "lobby", k.as_ref()) {
                    assert_eq!(got.port, 5000);
                    assert!(k.is_none(), "a random private beacon passed the MAC");
                }
            }
        }
    }

    #[test]
    fn a_private_beacon_hides_the_room_and_node_and_passes_only_its_group() {
        let k = key(1);
        let node: NodeId = 0x0102_0304_0506_0708;
        let b = encode(5001, node, "secretroom", Some(&k), NONCE_A);
        assert_eq!(b.len(), PRIVATE_LEN);
        assert!(b.len() <= MAX_BEACON);
        let shows = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        assert!(!shows(b"secretroom"));
        assert!(!shows(&node.to_be_bytes()));
        let got = parse(&b, "secretroom", Some(&k)).expect("its group's beacon");
        assert_eq!(got.port, 5001);
        assert!(got.is_from(node, Some(&k)));
        assert!(!got.is_from(node + 1, Some(&k)));
        assert!(!got.is_from(node, None));
        assert_eq!(parse(&b, "lobby", Some(&k)), Err(Dropped::OtherRoom));
        assert_eq!(
            parse(&b, "secretroom", Some(&key(2))),
            Err(Dropped::OtherRoom)
        );
        // The port is covered by the room's tag: a changed port is not this group's beacon.
        let mut moved = b.clone();
        moved[8] ^= 1;
        assert_eq!(
            parse(&moved, "secretroom", Some(&k)),
            Err(Dropped::OtherRoom)
        );
        // Two beacons of one node under fresh nonces share no tag.
        let again = encode(5001, node, "secretroom", Some(&k), [8; NONCE]);
        assert_ne!(b[HEAD + NONCE..], again[HEAD + NONCE..]);
    }
}
