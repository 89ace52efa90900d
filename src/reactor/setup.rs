//! What the reactor is started with (`Setup`, `Listen`, `Dial`), binding the listener, the
//! node's identity, and the typed errors of starting and running, each with the one-line
//! message the user sees.
//!
//! Must not run the loop or hold chat rules: it only turns a setup into bound sockets.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mio::net::TcpListener;
use rand_core::{OsRng, RngCore};

use crate::chat::{self, KnownKeys, Mesh};
use crate::conn::{MAX_BACKLOG, STALL_LIMIT};
use crate::eventlog::EventLog;
use crate::link::LinkKeys;

/// A peer to dial: as the user wrote it, and every address it resolved to, tried in order
/// (a name may resolve to an IPv6 address first while the peer listens on IPv4 only).
#[derive(Clone, Debug)]
pub struct Dial {
    pub label: String,
    pub addrs: Vec<SocketAddr>,
}

/// Where to listen.
#[derive(Clone, Debug)]
pub enum Listen {
    None,
    Addr(SocketAddr),
    /// Mesh mode: the first free port of the range on `host`.
    Range(Mesh),
    /// This address when its port is free, else any free port on its host (`--lan`).
    Prefer(SocketAddr),
}

/// What the reactor is started with.
pub struct Setup {
    pub nick: String,
    pub listen: Listen,
    pub dials: Vec<Dial>,
    /// Keep running after stdin ends.
    pub keep_open: bool,
    pub max_peers: usize,
    pub peer_timeout: Duration,
    pub log: Option<EventLog>,
    /// A connection with more unsent output than this is closed as too slow.
    pub max_backlog: usize,
    /// A connection past a quarter of `max_backlog` for this long is closed as too slow.
    pub slow_timeout: Duration,
    /// Connections at once, at most: more are told the chat is full and closed.
    pub max_conns: usize,
    /// Flood control for guests.
    pub guest_rate: Option<chat::RateLimit>,
    /// Guests from one IP address at once, at most; `None` for no limit.
    pub max_guests_per_ip: Option<usize>,
    /// A node that does not listen and loses its last connection (after one was up) dials
    /// the peers of `dials` again, with back-off, until one is back or the user leaves. False:
    /// it ends (`no connections left`), as a piped client must.
    pub reconnect: bool,
    /// This node's identity key (see `identity`).
    pub key: SigningKey,
    /// The keys remembered for nicks, as read at start-up.
    pub known: KnownKeys,
    /// Where newly remembered keys are appended (`identity::append_known`); `None` for a key
    /// of this run only.
    pub known_path: Option<PathBuf>,
    /// A private group: the keys every link's Noise handshake uses (the pre-shared key derived
    /// from the group secret once, at start-up). `None`: links in plain text, as always.
    pub link_keys: Option<LinkKeys>,
    /// In a private group, let guests (who cannot encrypt) in as unencrypted guests rather
    /// than refuse them. Means nothing without `link_keys`.
    pub allow_guests: bool,
    /// `--lan`: send and hear LAN beacons. `None`: no UDP socket at all.
    pub lan: Option<super::LanSetup>,
    /// Messages kept for nodes and guests that join or come back (`--history`); 0 for none.
    pub history: usize,
}

impl Setup {
    /// A node that neither listens nor dials yet, with the default limits, a key for this
    /// run only and no remembered keys.
    ///
    /// # Panics
    ///
    /// If the system gives no random bytes for the key.
    pub fn new(nick: String) -> Setup {
        Setup {
            nick,
            listen: Listen::None,
            dials: Vec::new(),
            keep_open: false,
            max_peers: chat::DEFAULT_MAX_PEERS,
            peer_timeout: chat::DEFAULT_PEER_TIMEOUT,
            log: None,
            max_backlog: MAX_BACKLOG,
            slow_timeout: STALL_LIMIT,
            max_conns: usize::MAX,
            guest_rate: Some(chat::RateLimit::per_second(chat::DEFAULT_GUEST_RATE)),
            max_guests_per_ip: Some(chat::DEFAULT_MAX_GUESTS_PER_IP),
            reconnect: false,
            history: chat::DEFAULT_HISTORY,
            key: SigningKey::generate(&mut rand_core::OsRng),
            known: KnownKeys::new(),
            known_path: None,
            link_keys: None,
            allow_guests: false,
            lan: None,
        }
    }
}

/// A dial that could not even start, or that failed later when it was the user's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialError {
    /// None of `label`'s addresses could be connected to; `why` is the last reason.
    Connect { label: String, why: String },
    /// `host` could not be looked up (a `/connect` or a peer on the command line).
    Resolve { host: String, why: String },
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Connect { label, why } => write!(f, "cannot connect to {label}: {why}"),
            DialError::Resolve { host, why } => write!(f, "cannot resolve {host}: {why}"),
        }
    }
}

/// Why the node could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The poll or its waker could not be created.
    EventLoop(String),
    /// Binding `addr` failed.
    Listen { addr: SocketAddr, why: String },
    /// The listener could not be added to the poll.
    Register(String),
    /// Mesh mode: every port of the range is taken.
    NoFreePort { host: IpAddr, first: u16, last: u16 },
    /// The stdin thread could not start.
    Stdin(String),
    /// Nothing listens and every peer failed at once.
    Dial(Vec<DialError>),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::EventLoop(e) => write!(f, "cannot start the event loop: {e}"),
            SetupError::Listen { addr, why } => write!(f, "cannot listen on {addr}: {why}"),
            SetupError::Register(why) => write!(f, "cannot listen: {why}"),
            SetupError::NoFreePort { host, first, last } => {
                write!(f, "every port of {first}-{last} on {host} is busy")
            }
            SetupError::Stdin(e) => write!(f, "cannot read stdin: {e}"),
            SetupError::Dial(failures) => {
                for (i, e) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SetupError {}

/// Why a run ended in error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    Setup(SetupError),
    /// Waiting on the poll failed.
    Poll(String),
    /// The only dial left failed, with nothing listening.
    Dial(DialError),
    /// Leaving, `n` connections did not get everything queued for them.
    Undelivered(usize),
    /// The last connection closed with output for it unsent.
    LastUndelivered,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Setup(e) => e.fmt(f),
            RunError::Poll(e) => write!(f, "event loop failed: {e}"),
            RunError::Dial(e) => e.fmt(f),
            RunError::Undelivered(n) => {
                write!(
                    f,
                    "left before everything was delivered to {n} connection(s)"
                )
            }
            RunError::LastUndelivered => {
                f.write_str("the last connection closed before everything was delivered")
            }
        }
    }
}

impl std::error::Error for RunError {}

impl From<SetupError> for RunError {
    fn from(e: SetupError) -> Self {
        RunError::Setup(e)
    }
}

/// Connections the kernel holds for the listener before it accepts them. mio listens with 128;
/// a hub that a thousand peers dial at once (a private group's handshakes take it a fraction of
/// a millisecond each) falls behind that, and every connect past the queue waits a second for
/// its SYN to be sent again. The kernel caps it at `net.core.somaxconn`.
const LISTEN_QUEUE: libc::c_int = 4096;

/// Binds where `listen` says; `None` for a node that does not listen.
pub(super) fn bind(listen: &Listen) -> Result<Option<TcpListener>, SetupError> {
    let listener = match listen {
        Listen::None => return Ok(None),
        Listen::Addr(addr) => bind_addr(*addr)?,
        Listen::Range(mesh) => bind_range(mesh)?,
        // `--lan`: the preferred port when free, else any.
        Listen::Prefer(addr) => match TcpListener::bind(*addr) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                bind_addr(SocketAddr::new(addr.ip(), 0))?
            }
            Err(e) => {
                return Err(SetupError::Listen {
                    addr: *addr,
                    why: describe(&e),
                })
            }
        },
    };
    deepen_queue(&listener);
    Ok(Some(listener))
}

/// Binds `addr`; the error names it.
fn bind_addr(addr: SocketAddr) -> Result<TcpListener, SetupError> {
    TcpListener::bind(addr).map_err(|e| SetupError::Listen {
        addr,
        why: describe(&e),
    })
}

/// Listens again with [`LISTEN_QUEUE`]: on a listening socket, `listen` only sets the queue's
/// length. Best effort: the queue mio set stays if this fails.
fn deepen_queue(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: `listen` on a descriptor the listener owns and keeps open; no memory is passed.
    let _ = unsafe { libc::listen(listener.as_raw_fd(), LISTEN_QUEUE) };
}

/// Binds the first port of `mesh`'s range that is free; the error names the range.
fn bind_range(mesh: &Mesh) -> Result<TcpListener, SetupError> {
    for port in mesh.ports.clone() {
        let addr = SocketAddr::new(mesh.host, port);
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                return Err(SetupError::Listen {
                    addr,
                    why: describe(&e),
                })
            }
        }
    }
    Err(SetupError::NoFreePort {
        host: mesh.host,
        first: *mesh.ports.start(),
        last: *mesh.ports.end(),
    })
}

/// A short, lower-case description of an IO error, for one-line messages.
pub fn describe(e: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = match e.kind() {
        AddrInUse => "address in use",
        AddrNotAvailable => "address not available",
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "connection broken",
        PermissionDenied => "permission denied",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        _ => {
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s);
            let mut c = s.chars();
            return match c.next() {
                Some(first) => first.to_lowercase().chain(c).collect(),
                None => s.to_string(),
            };
        }
    };
    text.to_string()
}

/// Random bytes from the operating system (a node id's run part, a hello's nonce, a key).
pub(super) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of `listener`'s queue as the kernel holds it: for a listening socket, Linux
    /// reports it in `TCP_INFO`'s `tcpi_sacked`.
    fn queue_length(listener: &TcpListener) -> u32 {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero bytes are a valid `tcp_info` (integers only).
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` and `len` outlive the call, and `len` is `info`'s size.
        let rc = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
        info.tcpi_sacked
    }

    #[test]
    fn the_listener_queues_as_many_connections_as_the_kernel_allows_not_mios_128() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
        let listener = bind(&Listen::Addr(addr))
            .expect("bind")
            .expect("a listener");
        let cap: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(LISTEN_QUEUE as u32);
        // mio alone gives 128.
        assert_eq!(queue_length(&listener), cap.min(LISTEN_QUEUE as u32));
    }

    #[test]
    fn errors_read_as_one_line_messages() {
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap_or_else(|_| unreachable!());
        let refused = DialError::Connect {
            label: "a:1".into(),
            why: "connection refused".into(),
        };
        let cases = [
            (
                SetupError::Dial(vec![refused.clone(), refused.clone()]),
                "cannot connect to a:1: connection refused; cannot connect to a:1: connection refused",
            ),
            (
                SetupError::Listen {
                    addr,
                    why: "address in use".into(),
                },
                "cannot listen on 127.0.0.1:7: address in use",
            ),
            (
                SetupError::NoFreePort {
                    host: addr.ip(),
                    first: 5000,
                    last: 5002,
                },
                "every port of 5000-5002 on 127.0.0.1 is busy",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(RunError::from(e).to_string(), text);
        }
        assert_eq!(
            RunError::Undelivered(2).to_string(),
            "left before everything was delivered to 2 connection(s)"
        );
    }

    #[test]
    fn a_busy_range_names_the_range() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let mesh = Mesh {
            host: "127.0.0.1".parse().expect("ip"),
            ports: port..=port,
        };
        match bind(&Listen::Range(mesh)) {
            Err(e) => assert_eq!(
                e.to_string(),
                format!("every port of {port}-{port} on 127.0.0.1 is busy")
            ),
            Ok(_) => panic!("bound a port that is taken"),
        }
    }
}
