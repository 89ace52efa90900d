//! The chat's public vocabulary: what the caller tells it about connections ([`Link`],
//! [`Origin`]) and about this node ([`Config`], [`Mesh`]), what the chat asks the caller to do
//! ([`Action`]), and the default limits.
//!
//! Types and constants only: no chat rules live here.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::rc::Rc;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::flood::{RateLimit, DEFAULT_GUEST_RATE};
use super::known::KnownKeys;
use crate::event::{Event, Role};
use crate::protocol::sign::{self, Run};
use crate::protocol::{Frame, NodeId};

/// Identifies one connection; the reactor uses its slab key.
pub type ConnId = usize;

/// How long a connection we accepted may stay silent before it is taken for a guest (a person
/// at `nc` who has not typed yet). A peerchat node sends its hello at once, so one round trip
/// suffices.
pub const HELLO_WAIT: Duration = Duration::from_millis(1000);

/// The same for a connection we dialled: a listener that is slow to answer (busy, or on a far
/// network) is more likely than a person typing nothing into `nc -l`.
pub const HELLO_WAIT_DIALLED: Duration = Duration::from_millis(3000);

/// A peer silent this long is dropped (`--timeout`); it is pinged after a third of it.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Direct peer connections a node opens by itself, at most (`--max-peers`).
pub const DEFAULT_MAX_PEERS: usize = 8;

/// Guests from one source address at once, at most (`--max-guests-per-ip`).
pub const DEFAULT_MAX_GUESTS_PER_IP: usize = 8;

/// Which side opened a connection, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Accepted,
    /// The user asked for it (command line, `/connect`): failures are shown.
    Dialled,
    /// The chat asked for it ([`Action::Dial`] of this address): only peerchat nodes are kept.
    Auto(SocketAddr),
}

/// A connection that just opened, as [`Chat::handle_opened`](super::Chat::handle_opened) gets it.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// The other end's address.
    pub addr: SocketAddr,
    /// Our end's address.
    pub local: SocketAddr,
    pub origin: Origin,
}

impl Link {
    /// The dialling side's port and the accepting side's address: both ends of a connection see
    /// the same pair, which settles which of two connections to keep.
    pub(super) fn dialler_and_acceptor(&self) -> (u16, SocketAddr) {
        match self.origin {
            Origin::Accepted => (self.addr.port(), self.local),
            Origin::Dialled | Origin::Auto(_) => (self.local.port(), self.addr),
        }
    }
}

/// What the chat asks the caller to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `conn` is now a peer or a guest: release what was held for it, in that format.
    Classify { conn: ConnId, role: Role },
    /// Send `frame` on every open connection but `except`.
    Broadcast {
        except: Option<ConnId>,
        frame: Rc<Frame>,
    },
    /// Send `frame` on `conn` only (a guest gets the direct form of a DM).
    Send { conn: ConnId, frame: Rc<Frame> },
    /// Send `line` (a protocol line: a proof, a refusal) on `conn` before anything held for
    /// it: the other side waits for it before it classifies us.
    SendFirst { conn: ConnId, line: String },
    /// Send guest `conn` this line of text, from peerchat itself (not from a member).
    Tell { conn: ConnId, text: String },
    /// The node the user dialled on `conn` refused us (it is full): close it and say so, as a
    /// failed dial.
    Refused { conn: ConnId, reason: String },
    /// Close `conn` now; `reason` says why, for the log.
    Close { conn: ConnId, reason: String },
    /// Deliver what is queued for `conn` (a `CLOSE` frame last, or a guest's goodbye), then
    /// close it. Its close is no news: the chat has dealt with whoever was on it.
    Retire { conn: ConnId },
    /// Dial `addr` on the chat's behalf: open it with [`Origin::Auto`], or report
    /// [`Chat::handle_dial_failed`](super::Chat::handle_dial_failed). Failures are not shown.
    Dial(SocketAddr),
    /// The user asked to connect to `HOST[:PORT]`: resolve and dial it as a command-line peer.
    Connect(String),
    /// Show an event to the user.
    Show(Event),
    /// A key seen for a nick for the first time: append `line` to the known-keys file.
    RememberKey { line: String },
    /// The local user left: deliver what is queued, then end.
    Quit,
}

/// Mesh mode: the host and port range scanned for other nodes.
#[derive(Clone, Debug)]
pub struct Mesh {
    pub host: IpAddr,
    pub ports: RangeInclusive<u16>,
}

/// Messages a node keeps for nodes that join or come back, unless told otherwise.
pub const DEFAULT_HISTORY: usize = 100;

/// Who this node is and how it finds others.
#[derive(Clone, Debug)]
pub struct Config {
    pub nick: String,
    /// Derived from `key` and `run` ([`sign::node_id`]).
    pub node: NodeId,
    /// This node's identity key: it proves hellos and signs what the node originates.
    pub key: SigningKey,
    /// The per-run part of the node id.
    pub run: Run,
    /// The port this node listens on, announced in the hello.
    pub listen: Option<u16>,
    pub mesh: Option<Mesh>,
    pub max_peers: usize,
    pub peer_timeout: Duration,
    /// Re-dial peers that drop without saying goodbye (a node that listens stays in the chat).
    pub redial: bool,
    /// Flood control for guests, per guest and per source address; `None` for none.
    pub guest_rate: Option<RateLimit>,
    /// Guests from one source address at once, at most; `None` for no limit.
    pub max_guests_per_ip: Option<usize>,
    /// The keys remembered for nicks when the node started.
    pub known: KnownKeys,
    /// The node is in a private group (its links are encrypted): guests are shown as
    /// unencrypted.
    pub private: bool,
    /// Messages kept to hand to nodes that join or come back (`--history`); 0 for none.
    pub history: usize,
    /// The wall time (unix milliseconds) at the `now` the chat is made with: the chat reads no
    /// clock, and dates what is said from this and the `now` it is passed.
    pub wall: u64,
    /// The local time's offset from UTC, in seconds, when the node started: guests' history
    /// lines are dated in local time without the chat reading the time zone.
    pub utc_offset: i32,
}

impl Config {
    /// A node with the default limits, not in mesh mode, that remembers no keys yet.
    pub fn new(nick: String, key: SigningKey, run: Run, listen: Option<u16>) -> Config {
        Config {
            nick,
            node: sign::node_id(&key.verifying_key(), &run),
            key,
            run,
            listen,
            mesh: None,
            max_peers: DEFAULT_MAX_PEERS,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            redial: listen.is_some(),
            guest_rate: Some(RateLimit::per_second(DEFAULT_GUEST_RATE)),
            max_guests_per_ip: Some(DEFAULT_MAX_GUESTS_PER_IP),
            known: KnownKeys::new(),
            private: false,
            history: DEFAULT_HISTORY,
            wall: 0,
            utc_offset: 0,
        }
    }
}
