//! The command line (clap), address parsing and validation, and the seed-style interactive
//! questions for a user who gives no mode on a terminal. Must not touch sockets.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::{Parser, ValueEnum};

use crate::protocol::check_nick;
use crate::term::render::Bell;

/// The port peerchat uses when none is given, as the seed programs did.
pub const DEFAULT_PORT: u16 = 5000;

const EXAMPLES: &str = "\
Examples:
  peerchat -l                     wait for peers on port 5000 (all interfaces)
  peerchat 192.168.0.10           connect to a peer on port 5000
  peerchat -l 6000 10.0.0.7:5000  listen on 6000 and connect to 10.0.0.7:5000
  printf 'hi\\n' | peerchat HOST   send lines from a pipe, then leave
  peerchat                        on a terminal: asks server or client first
  peerchat --mesh --nick ana      join the nodes on ports 5000-5004 here
  peerchat --lan --nick ana        find the others on this network by itself
  peerchat --lan --room lab       the same, only with the nodes of room lab
  peerchat --mesh 6000-6009 --host 10.0.0.7 --log-file logs_chat.txt

Type a line to send it; sair, /quit or /exit leaves; /help lists commands
(/msg, /me, /nick, /names, /whois, /connect).";

/// peerchat: a peer-to-peer terminal chat.
#[derive(Parser, Debug)]
#[command(name = "peerchat", version, after_help = EXAMPLES, max_term_width = 80)]
pub struct Args {
    /// Listen for peers on ADDR: PORT, HOST:PORT or HOST [default: 0.0.0.0:5000]
    #[arg(
        short = 'l',
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = "0.0.0.0:5000",
        value_parser = parse_listen
    )]
    pub listen: Option<HostPort>,

    /// Peers to connect to (default port 5000)
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_peer)]
    pub peers: Vec<HostPort>,

    /// Your name in the chat: 1-32 characters, no spaces [default: $USER, else anon]
    #[arg(long, value_name = "NAME", value_parser = parse_nick)]
    pub nick: Option<String>,

    /// Write events to stdout as JSON lines instead of text
    #[arg(long)]
    pub json: bool,

    /// Keep running (receive only) after standard input ends
    #[arg(long)]
    pub keep_open: bool,

    /// Mesh mode: listen on the first free port of RANGE on --host and connect to every other
    /// port of it, again and again, like the TCP Chat Simulator [default RANGE: 5000-5004]
    #[arg(
        long,
        value_name = "RANGE",
        num_args = 0..=1,
        default_missing_value = "5000-5004",
        value_parser = parse_range,
        conflicts_with = "listen"
    )]
    pub mesh: Option<PortRange>,

    /// Find the other nodes of the local network by themselves: listen (port 5000 when free,
    /// else another, unless -l or --mesh says), announce it by UDP beacons (multicast, else
    /// broadcast) and dial the nodes heard, within --max-peers
    #[arg(long)]
    pub lan: bool,

    /// With --lan, the room: nodes of other rooms are not dialled (1-32 bytes, no spaces)
    #[arg(long, value_name = "NAME", default_value = "lobby", value_parser = parse_room,
          requires = "lan")]
    pub room: String,

    /// The host whose ports --mesh uses [default: 127.0.0.1]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Peer connections to open by itself (mesh scans, peer exchange, LAN beacons), at most
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_peers: u16,

    /// Messages kept and handed to nodes and guests that join, or to a part of the chat that
    /// was cut off and comes back (0: none kept)
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(0..=10_000))]
    pub history: u16,

    /// Seconds a peer may stay silent (it is pinged first) before it is dropped
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    /// Show no chat traffic on stdout, only notices and errors (a node that only relays)
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Unsent output a connection may have before it is closed as too slow (K, M, G suffixes;
    /// 64K to 1G); local input and reads pause while one is past a quarter of it
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub max_backlog: usize,

    /// Connections at once, at most; more are told the chat is full and closed [default: the
    /// open-file limit less 64]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: Option<u32>,

    /// Lines a second a guest (nc, telnet, a script) may send, in bursts of ten seconds' worth,
    /// and all guests from one address together; more are dropped (the guest is told), and ten
    /// seconds of that disconnects it. 0: no limit
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rate_limit: u32,

    /// Guests from one IP address at once, at most; one more is told so and closed, unseen
    /// (peers do not count). 0: no limit
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_guests_per_ip: u32,

    /// Seconds a connection may stay past a quarter of --max-backlog before it is closed
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub slow_timeout: std::time::Duration,

    /// Append events (connections, messages sent and received, leaves) to PATH, one line each
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<std::path::PathBuf>,

    /// Your identity key, created there if missing; the keys remembered for nicks are kept
    /// beside it, in known_keys [default: $XDG_CONFIG_HOME/peerchat/identity, else
    /// ~/.config/peerchat/identity]
    #[arg(long, value_name = "PATH")]
    pub identity: Option<std::path::PathBuf>,

    /// A private group: the group's passphrase is the first line of PATH (mode 0600), or
    /// $PEERCHAT_SECRET; links are encrypted and nodes without it cannot join
    // Never the passphrase itself as an argument: `ps` shows every process's arguments.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<std::path::PathBuf>,

    /// Print a new random group secret (140 bits) and exit
    #[arg(long)]
    pub new_secret: bool,

    /// In a private group, let guests (nc, telnet), who cannot encrypt, in as unencrypted
    /// guests instead of refusing them
    #[arg(long)]
    pub allow_guests: bool,

    /// On a terminal, when to ring the bell: mention (a message that says your nick, or a
    /// direct message), all (every message from someone else) or off
    // The values are said above: listed by clap with their help, they would turn `--help`
    // into the long layout, twice as long as `-h`.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = BellWhen::Mention,
          hide_possible_values = true)]
    pub bell: BellWhen,
}

/// `--bell`: when the terminal rings the bell. The terminal takes it as a [`Bell`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BellWhen {
    /// A message that says your nick, or a direct message
    #[default]
    Mention,
    /// Every message from someone else
    All,
    /// Never
    Off,
}

impl From<BellWhen> for Bell {
    fn from(when: BellWhen) -> Bell {
        match when {
            BellWhen::Mention => Bell::Mention,
            BellWhen::All => Bell::All,
            BellWhen::Off => Bell::Off,
        }
    }
}

/// An inclusive port range, `A-B`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Parses a byte count: `65536`, `64K`, `4M`, `1G` (powers of 1024; `KiB`, `MB`… also
/// read), from 64 KiB to 1 GiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{s}' is not a size like 4M or 65536")),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 4M or 65536"))?;
    let bytes = n.checked_shl(shift).filter(|&b| b >> shift == n);
    match bytes {
        Some(b) if (64 << 10..=1 << 30).contains(&b) => Ok(b as usize),
        _ => Err(format!("'{s}': give from 64K to 1G")),
    }
}

/// Parses seconds, fractions allowed: from 0.1 to 3600.
pub fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(std::time::Duration::from_secs_f64(v)),
        Ok(_) => Err(format!("'{s}': give from 0.1 to 3600 seconds")),
        Err(_) => Err(format!("'{s}' is not a number of seconds")),
    }
}

/// Parses `A-B` (or a single port `A`): ports 1-65535, A <= B, at most 1000 ports.
pub fn parse_range(s: &str) -> Result<PortRange, String> {
    let s = s.trim();
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "'{s}' is not a port range like 5000-5004 (ports 1-65535)"
            )),
            Ok(n) => Ok(n),
        }
    };
    let (first, last) = (port(a)?, port(b)?);
    if first > last {
        return Err(format!(
            "'{s}': the range is inverted (write {last}-{first})"
        ));
    }
    if last - first >= 1000 {
        return Err(format!("'{s}': at most 1000 ports"));
    }
    Ok(PortRange { first, last })
}

/// A host and port as the user wrote them, not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl HostPort {
    /// Looks the host up: every address, or why not (the reason only; the caller says which
    /// host, see `reactor::DialError::Resolve`).
    pub fn lookup(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .collect();
        if addrs.is_empty() {
            return Err("no address".into());
        }
        Ok(addrs)
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("'{s}' is not a port (0-65535)"))
}

/// Parses `PORT`, `HOST:PORT`, `[V6]:PORT` or `HOST`. A bare number is a port on `port_host`,
/// or an error when there is none.
fn parse_addr(s: &str, port_host: Option<&str>) -> Result<HostPort, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an address cannot be empty".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match port_host {
            Some(host) => Ok(HostPort {
                host: host.into(),
                port: parse_port(s)?,
            }),
            None => Err(format!(
                "'{s}' looks like a port; give HOST or HOST:PORT (e.g. 127.0.0.1:{s})"
            )),
        };
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{s}': missing ']'"))?;
        let port = match after {
            "" => DEFAULT_PORT,
            _ => parse_port(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("'{s}': expected :PORT after ']'"))?,
            )?,
        };
        return Ok(HostPort {
            host: host.into(),
            port,
        });
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(HostPort {
            host: s.into(),
            port: DEFAULT_PORT,
        });
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok(HostPort {
            host: host.into(),
            port: parse_port(port)?,
        }),
        Some(_) => Err(format!("'{s}': missing host")),
        None => Ok(HostPort {
            host: s.into(),
            port: DEFAULT_PORT,
        }),
    }
}

/// `-l` value: a bare number is a port on all interfaces; port 0 picks a free one.
pub fn parse_listen(s: &str) -> Result<HostPort, String> {
    parse_addr(s, Some("0.0.0.0"))
}

/// A peer to connect to.
pub fn parse_peer(s: &str) -> Result<HostPort, String> {
    let hp = parse_addr(s, None)?;
    if hp.port == 0 {
        return Err(format!("'{s}': port 0 cannot be connected to"));
    }
    Ok(hp)
}

/// A `--room` name: 1 to 32 bytes of printable characters, no spaces.
pub fn parse_room(s: &str) -> Result<String, String> {
    let max = crate::protocol::beacon::MAX_ROOM;
    if s.is_empty() || s.len() > max {
        return Err(format!("a room name has 1 to {max} bytes"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a room name has no spaces or control characters".into());
    }
    Ok(s.to_string())
}

pub fn parse_nick(s: &str) -> Result<String, String> {
    check_nick(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `$USER` when it is a valid nick, else `anon`.
pub fn default_nick() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| check_nick(u).is_ok())
        .unwrap_or_else(|| "anon".to_string())
}

/// What the interactive questions decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Listen(HostPort),
    Connect(HostPort),
}

fn ask(input: &mut impl BufRead, out: &mut impl Write, question: &str) -> io::Result<String> {
    write!(out, "{question}")?;
    out.flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "input ended before the question was answered",
        ));
    }
    Ok(line.trim().to_string())
}

/// The seed's flow: server or client, and for a client the server's address. Asks again until
/// the answer is valid.
pub fn ask_mode(input: &mut impl BufRead, out: &mut impl Write) -> io::Result<Mode> {
    loop {
        let answer = ask(input, out, "Run as server (s) or client (c)? ")?;
        match answer.as_str() {
            "s" | "S" | "server" => {
                return Ok(Mode::Listen(HostPort {
                    host: "0.0.0.0".into(),
                    port: DEFAULT_PORT,
                }))
            }
            "c" | "C" | "client" => loop {
                let addr = ask(input, out, "Server address (IP or IP:PORT): ")?;
                match parse_peer(&addr) {
                    Ok(hp) => return Ok(Mode::Connect(hp)),
                    Err(e) => writeln!(out, "{e}")?,
                }
            },
            _ => writeln!(out, "Please answer s (server) or c (client).")?,
        }
    }
}

/// Asks for a nick; an empty answer takes `default`.
pub fn ask_nick(
    input: &mut impl BufRead,
    out: &mut impl Write,
    default: &str,
) -> io::Result<String> {
    loop {
        let answer = ask(input, out, &format!("Your nick [{default}]: "))?;
        if answer.is_empty() {
            return Ok(default.to_string());
        }
        match check_nick(&answer) {
            Ok(()) => return Ok(answer),
            Err(e) => writeln!(out, "{e}")?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn sizes_and_seconds() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100000"), Ok(100_000));
        for bad in ["", "M", "4X", "-1M", "1000", "2G", "99999999999999999999M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_secs("0.5"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(parse_secs("10"), Ok(std::time::Duration::from_secs(10)));
        for bad in ["0", "0.01", "x", "3601", "NaN", "inf"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("6000"), Ok(hp("0.0.0.0", 6000)));
        assert_eq!(parse_listen("127.0.0.1:0"), Ok(hp("127.0.0.1", 0)));
        assert_eq!(parse_listen("127.0.0.1"), Ok(hp("127.0.0.1", 5000)));
        assert_eq!(parse_listen("localhost"), Ok(hp("localhost", 5000)));
        assert_eq!(parse_listen("[::1]:7000"), Ok(hp("::1", 7000)));
        assert_eq!(parse_listen("::1"), Ok(hp("::1", 5000)));
        assert!(parse_listen("70000").is_err());
        assert!(parse_listen("host:port").is_err());
        assert!(parse_listen(":5000").is_err());
        assert!(parse_listen("").is_err());
    }

    #[test]
    fn peer_addresses() {
        assert_eq!(parse_peer("10.0.0.7"), Ok(hp("10.0.0.7", 5000)));
        assert_eq!(parse_peer("box.lan:5001"), Ok(hp("box.lan", 5001)));
        assert!(parse_peer("5000")
            .unwrap_err()
            .contains("looks like a port"));
        assert!(parse_peer("10.0.0.7:0").is_err());
        assert_eq!(hp("::1", 5000).to_string(), "[::1]:5000");
    }

    #[test]
    fn port_ranges() {
        let r = |first, last| Ok(PortRange { first, last });
        assert_eq!(parse_range("5000-5004"), r(5000, 5004));
        assert_eq!(parse_range("6000"), r(6000, 6000));
        assert_eq!(parse_range(" 1-1 "), r(1, 1));
        for bad in [
            "",
            "abc",
            "5000-",
            "-5000",
            "5004-5000",
            "0-10",
            "70000-70001",
            "1-2000",
        ] {
            assert!(parse_range(bad).is_err(), "{bad:?}");
        }
        assert!(parse_range("5004-5000").unwrap_err().contains("inverted"));
    }

    #[test]
    fn interactive_flow_reasks_until_valid() {
        let mut input = &b"x\nc\nnot a host:99999\n127.0.0.1:6001\n"[..];
        let mut out = Vec::new();
        let mode = ask_mode(&mut input, &mut out).unwrap();
        assert_eq!(mode, Mode::Connect(hp("127.0.0.1", 6001)));
        let shown = String::from_utf8(out).unwrap();
        assert!(shown.contains("Please answer s"));
        assert_eq!(shown.matches("Server address").count(), 2);

        for answer in ["s", "S", "server"] {
            let mut input = format!("{answer}\n");
            let mode = ask_mode(&mut input.as_bytes(), &mut Vec::new()).unwrap();
            assert_eq!(mode, Mode::Listen(hp("0.0.0.0", 5000)));
            input.clear();
        }
        assert!(ask_mode(&mut &b""[..], &mut Vec::new()).is_err());
    }

    #[test]
    fn bell_is_mention_unless_told_and_maps_to_the_terminals_bell() {
        let bell = |extra: &[&str]| {
            let argv = ["peerchat", "-l"].iter().chain(extra);
            Args::try_parse_from(argv).map(|a| Bell::from(a.bell))
        };
        assert_eq!(bell(&[]).ok(), Some(Bell::Mention));
        assert_eq!(bell(&["--bell", "all"]).ok(), Some(Bell::All));
        assert_eq!(bell(&["--bell=off"]).ok(), Some(Bell::Off));
        assert_eq!(bell(&["--bell", "mention"]).ok(), Some(Bell::Mention));
        assert!(bell(&["--bell", "loud"]).is_err());
    }

    #[test]
    fn max_guests_per_ip_is_8_unless_told_and_0_is_taken() {
        let max = |extra: &[&str]| {
            let argv = ["peerchat", "-l"].iter().chain(extra);
            Args::try_parse_from(argv).map(|a| a.max_guests_per_ip)
        };
        assert_eq!(max(&[]).ok(), Some(8));
        assert_eq!(max(&["--max-guests-per-ip", "0"]).ok(), Some(0));
        assert_eq!(max(&["--max-guests-per-ip=2"]).ok(), Some(2));
        assert!(max(&["--max-guests-per-ip", "-1"]).is_err());
        assert!(max(&["--max-guests-per-ip", "many"]).is_err());
    }

    #[test]
    fn room_is_lobby_unless_told_needs_lan_and_is_checked() {
        let room = |extra: &[&str]| {
            let argv = ["peerchat"].iter().chain(extra);
            Args::try_parse_from(argv).map(|a| (a.lan, a.room))
        };
        assert_eq!(room(&["--lan"]).ok(), Some((true, "lobby".to_string())));
        assert_eq!(
            room(&["--lan", "--room", "lab-2"]).ok(),
            Some((true, "lab-2".to_string()))
        );
        assert_eq!(room(&[]).ok(), Some((false, "lobby".to_string())));
        assert!(room(&["--room", "lab"]).is_err(), "--room without --lan");
        for bad in ["", "a b", "x\u{7}", &"r".repeat(33)] {
            assert!(room(&["--lan", "--room", bad]).is_err(), "{bad:?}");
        }
        assert!(room(&["--lan", "--room", &"r".repeat(32)]).is_ok());
    }

    #[test]
    fn nick_question_has_a_default_and_checks_rules() {
        let mut out = Vec::new();
        assert_eq!(ask_nick(&mut &b"\n"[..], &mut out, "anon").unwrap(), "anon");
        let got = ask_nick(&mut &b"a b\nbia\n"[..], &mut out, "anon").unwrap();
        assert_eq!(got, "bia");
    }
}
