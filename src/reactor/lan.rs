//! `--lan`: the UDP socket of LAN beacons. It sends this node's beacon (see
//! `protocol::beacon`) at start and every [`BEACON_EVERY`], on every IPv4 interface that is up:
//! to the multicast group where the interface can multicast, else (or when that send fails) to
//! the interface's broadcast address. It reads the beacons others send and hands each one of
//! this room to the chat, which decides whether to dial.
//!
//! Without `--lan` none of this exists: no socket is opened. Must not decide whom to dial.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use log::debug;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::setup::{describe, SetupError};
use super::timers::Timer;
use super::Reactor;
use crate::protocol::beacon::{self, BeaconKey, MAX_BEACON};

/// The multicast group beacons are sent to: in 239.255.0.0/16, the organisation-local scope
/// (RFC 2365), with a TTL of 1 they stay on the link.
pub const BEACON_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 80, 67);
/// The UDP port beacons are sent to and read on.
pub const BEACON_PORT: u16 = 5099;
/// How often a node sends its beacon (and once at start).
pub const BEACON_EVERY: Duration = Duration::from_secs(5);
/// At start, how long typed or piped lines may wait for a first peer: the nodes already there
/// dial this one as soon as they hear its first beacon, which on a LAN takes milliseconds.
pub(super) const INPUT_HOLD: Duration = Duration::from_secs(1);
/// Datagrams read in one turn at most; more wait for the next turn.
const READS_PER_TURN: usize = 64;

/// What `--lan` is started with.
#[derive(Clone, Debug)]
pub struct LanSetup {
    /// The room (`--room`): beacons of other rooms are ignored.
    pub room: String,
    /// A private group's beacon key: room and node id hidden, other groups' beacons ignored.
    pub key: Option<BeaconKey>,
}

/// The beacon socket and what the beacons say.
pub(super) struct Lan {
    socket: UdpSocket,
    setup: LanSetup,
    /// The networks of this host's interfaces (address, mask), as last listed: beacons are
    /// taken only from them.
    links: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// An IPv4 interface that is up, as beacons use it.
struct Iface {
    addr: Ipv4Addr,
    netmask: Ipv4Addr,
    multicast: bool,
    broadcast: Option<Ipv4Addr>,
}

/// True when `ip` is on one of `links`' networks (address, mask): a neighbour on the LAN.
/// Beacons are sent with a TTL of 1 and never leave the network, so one from anywhere else was
/// sent to this node's port on purpose (from the internet, say) to have it dial out: dropped.
fn on_link(ip: Ipv4Addr, links: &[(Ipv4Addr, Ipv4Addr)]) -> bool {
    links.iter().any(|&(addr, mask)| {
        let (ip, addr, mask) = (u32::from(ip), u32::from(addr), u32::from(mask));
        ip & mask == addr & mask
    })
}

impl Lan {
    /// Opens the beacon socket on [`BEACON_PORT`] (shared with the other nodes of this host)
    /// and registers it with `token`.
    pub(super) fn open(
        setup: LanSetup,
        registry: &Registry,
        token: Token,
    ) -> Result<Lan, SetupError> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, BEACON_PORT));
        let mut socket = shared_udp(addr).map_err(|e| SetupError::Listen {
            addr,
            why: describe(&e),
        })?;
        socket
            .set_broadcast(true)
            .and_then(|()| socket.set_multicast_ttl_v4(1))
            .and_then(|()| registry.register(&mut socket, token, Interest::READABLE))
            .map_err(|e| SetupError::Register(describe(&e)))?;
        let mut lan = Lan {
            socket,
            setup,
            links: Vec::new(),
        };
        lan.join();
        Ok(lan)
    }

    /// Joins the beacon group on every interface that can multicast (again: an interface that
    /// came up since is joined, one joined already says so and is left as it is).
    /// Also notes the networks beacons are taken from.
    fn join(&mut self) {
        let ifaces = interfaces();
        self.links = ifaces.iter().map(|i| (i.addr, i.netmask)).collect();
        for iface in ifaces.iter().filter(|i| i.multicast) {
            if let Err(e) = self.socket.join_multicast_v4(&BEACON_GROUP, &iface.addr) {
                if e.kind() != io::ErrorKind::AddrInUse {
                    debug!("cannot join {BEACON_GROUP} on {}: {e}", iface.addr);
                }
            }
        }
    }

    /// Sends `bytes` once on every interface: multicast where it can, else broadcast.
    fn send(&self, bytes: &[u8]) {
        for iface in interfaces() {
            let group = SocketAddr::from((BEACON_GROUP, BEACON_PORT));
            let sent = iface.multicast
                && set_multicast_if(&self.socket, iface.addr)
                    .and_then(|()| self.socket.send_to(bytes, group))
                    .inspect_err(|e| debug!("beacon to {group} via {}: {e}", iface.addr))
                    .is_ok();
            if let (false, Some(b)) = (sent, iface.broadcast) {
                let to = SocketAddr::from((b, BEACON_PORT));
                if let Err(e) = self.socket.send_to(bytes, to) {
                    debug!("beacon to {to}: {e}");
                }
            }
        }
    }

    /// The next datagram, as the address it came from and its bytes; `None` when none is left.
    /// A datagram longer than a beacon is read whole into `buf` and reported as such.
    fn recv<'a>(&self, buf: &'a mut [u8; MAX_BEACON + 1]) -> Option<(SocketAddr, &'a [u8])> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => return Some((from, &buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        debug!("reading beacons: {e}");
                    }
                    return None;
                }
            }
        }
    }
}

impl<W: io::Write> Reactor<W> {
    /// `--lan` at start, no peer yet: lines typed or piped wait (at most [`INPUT_HOLD`]) for
    /// the nodes that hear the first beacon, so that `echo hi | peerchat --lan` reaches them.
    pub(super) fn lan_settling(&self) -> bool {
        self.lan.is_some()
            && self.roles[super::table::role_slot(Some(crate::event::Role::Peer))] == 0
    }

    /// Sends this node's beacon now, and sets the next one.
    pub(super) fn beacon_due(&mut self, now: Instant) {
        let (Some(lan), Some(listen)) = (&mut self.lan, self.acceptor.local_addr()) else {
            return;
        };
        lan.join();
        let bytes = beacon::encode(
            listen.port(),
            self.node,
            &lan.setup.room,
            lan.setup.key.as_ref(),
            super::setup::random(),
        );
        lan.send(&bytes);
        self.timers.set(Timer::Beacon, now + BEACON_EVERY);
    }

    /// The beacon socket is readable: hand each beacon of this room to the chat, a few per
    /// turn. Anything else is dropped, never answered.
    pub(super) fn beacons_ready(&mut self, now: Instant) {
        let mut buf = [0u8; MAX_BEACON + 1];
        for _ in 0..READS_PER_TURN {
            let Some(lan) = &self.lan else { return };
            let Some((from, bytes)) = lan.recv(&mut buf) else {
                return;
            };
            let IpAddr::V4(ip) = from.ip() else { continue };
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                continue;
            }
            if !on_link(ip, &lan.links) {
                debug!("dropped a beacon from {from}: not on this host's networks");
                continue;
            }
            let key = lan.setup.key.clone();
            match beacon::parse(bytes, &lan.setup.room, key.as_ref()) {
                Ok(b) => {
                    let addr = SocketAddr::V4(SocketAddrV4::new(ip, b.port));
                    self.chat
                        .handle_beacon(addr, |node| b.is_from(node, key.as_ref()), now);
                    self.apply_actions(now);
                }
                Err(why) => debug!("dropped a datagram from {from}: {why:?}"),
            }
        }
        // Edge-triggered: datagrams left unread would raise no new event. Registering again
        // reports the socket readable at the next poll if they are there.
        if let Some(lan) = &mut self.lan {
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(&mut lan.socket, super::LAN, Interest::READABLE)
            {
                debug!("beacon socket: {e}");
            }
        }
    }
}

/// A UDP socket bound to `addr` with `SO_REUSEADDR`, so every node of one host can bind the
/// beacon port and each gets its copy of a multicast or broadcast beacon. Non-blocking.
fn shared_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::ErrorKind::Unsupported.into());
    };
    // SAFETY: a plain socket(2) call; the descriptor is checked before use and owned by the
    // std socket made from it, which closes it (also on the errors below).
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid socket that nothing else owns.
    let socket = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
    setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        &1 as *const libc::c_int,
        4,
    )?;
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sa` is a valid sockaddr_in of the size given.
    let r = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from_std(socket))
}

/// Multicast from `socket` goes out of the interface with address `addr`.
fn set_multicast_if(socket: &UdpSocket, addr: Ipv4Addr) -> io::Result<()> {
    let a = libc::in_addr {
        s_addr: u32::from(addr).to_be(),
    };
    let size = std::mem::size_of::<libc::in_addr>() as libc::socklen_t;
    setsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &a,
        size,
    )
}

fn setsockopt<T>(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: *const T,
    size: libc::socklen_t,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of `size` bytes for the call.
    let r = unsafe { libc::setsockopt(fd, level, name, value.cast(), size) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The IPv4 interfaces that are up, loopback left out.
fn interfaces() -> Vec<Iface> {
    let mut list = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        debug!("cannot list interfaces: {}", io::Error::last_os_error());
        return list;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs gave, not freed yet.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags as libc::c_int;
        let up = flags & libc::IFF_UP != 0 && flags & libc::IFF_LOOPBACK == 0;
        let Some(addr) = ipv4(ifa.ifa_addr).filter(|_| up) else {
            continue;
        };
        // No mask (rare): the address alone is its network.
        let netmask = ipv4(ifa.ifa_netmask).unwrap_or(Ipv4Addr::BROADCAST);
        let broadcast = if flags & libc::IFF_BROADCAST != 0 {
            ipv4(ifa.ifa_ifu)
        } else {
            None
        };
        list.push(Iface {
            addr,
            netmask,
            multicast: flags & libc::IFF_MULTICAST != 0,
            broadcast,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    list
}

/// The IPv4 address at `sa`, if it is one.
fn ipv4(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null sockaddr from getifaddrs; its family says which struct it is.
    unsafe {
        if i32::from((*sa).sa_family) != libc::AF_INET {
            return None;
        }
        let sin = &*(sa as *const libc::sockaddr_in);
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_are_taken_only_from_the_networks_of_this_hosts_interfaces() {
        let links = [
            (
                Ipv4Addr::new(192, 168, 1, 20),
                Ipv4Addr::new(255, 255, 255, 0),
            ),
            (Ipv4Addr::new(10, 7, 0, 1), Ipv4Addr::new(255, 255, 0, 0)),
        ];
        for ip in [[192, 168, 1, 1], [192, 168, 1, 254], [10, 7, 200, 9]] {
            assert!(on_link(Ipv4Addr::from(ip), &links), "{ip:?}");
        }
        for ip in [
            [192, 168, 2, 1],
            [10, 8, 0, 1],
            [203, 0, 113, 5],
            [127, 0, 0, 1],
        ] {
            assert!(!on_link(Ipv4Addr::from(ip), &links), "{ip:?}");
        }
        // No interface up: no beacon is anyone's.
        assert!(!on_link(Ipv4Addr::new(192, 168, 1, 1), &[]));
        // An interface without a mask is its own network: only itself.
        let alone = [(Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::BROADCAST)];
        assert!(on_link(Ipv4Addr::new(10, 0, 0, 5), &alone));
        assert!(!on_link(Ipv4Addr::new(10, 0, 0, 6), &alone));
    }
}
