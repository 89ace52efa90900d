//! peerchat's entry point: parse the command line, set up logging, ask the seed-style questions
//! when needed, run the reactor, and map the outcome to an exit code (0 done, 1 runtime error,
//! 2 usage error). Holds no chat logic.

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use peerchat::chat::{Mesh, RateLimit};
use peerchat::cli::{self, Args, HostPort, Mode};
use peerchat::eventlog::EventLog;
use peerchat::identity::{self, Identity};
use peerchat::limits;
use peerchat::link::LinkKeys;
use peerchat::output::{Format, Output};
use peerchat::protocol::beacon::BeaconKey;
use peerchat::reactor::{Dial, DialError, Ended, LanSetup, Listen, Reactor, Setup, TermSetup};
use peerchat::secret;
use peerchat::signals::{self, Signals};
use peerchat::term::{tty, warnings};

fn main() -> ExitCode {
    let args = Args::parse();
    // Before any other thread starts: they must inherit the blocked signals.
    let signals = Signals::install(interactive(&args));
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    logger.format_timestamp(None);
    if interactive(&args) {
        // Warnings are shown in the transcript: on stderr they would break the prompt line.
        logger
            .target(env_logger::Target::Pipe(Box::new(warnings::Sink)))
            .format(|w, record| writeln!(w, "{}: {}", record.level(), record.args()));
    }
    logger.init();
    let ended = run(args, signals);
    warnings::to_stderr();
    match ended {
        Ok(Ended::Done) => ExitCode::SUCCESS,
        Ok(Ended::Signal(sig)) => ExitCode::from(signals::exit_code(sig)),
        Err(msg) => {
            eprintln!("peerchat: {msg}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(msg: &str) -> ! {
    Args::command()
        .error(clap::error::ErrorKind::MissingRequiredArgument, msg)
        .exit()
}

fn run(mut args: Args, signals: Signals) -> Result<Ended, String> {
    if args.new_secret {
        // Nothing else happens: no identity, no socket, no question.
        let secret = secret::generate().map_err(|e| e.to_string())?;
        println!("{secret}");
        return Ok(Ended::Done);
    }
    if args.host.is_some() && args.mesh.is_none() {
        usage_error("--host goes with --mesh (for -l, give -l HOST:PORT)");
    }
    if ask_what_is_missing(&mut args)? == Asked::InputEnded {
        // Ctrl-D at a question is the user leaving before the chat started: exit 0.
        return Ok(Ended::Done);
    }
    // After the usage errors (which create nothing), before anything listens.
    let identity = load_identity(&args)?;
    // Before anything listens, once: the Argon2id derivation takes a quarter of a second.
    let psk = load_psk(&args)?;
    let link_keys = match &psk {
        Some(psk) => Some(LinkKeys::new(*psk, &identity.key).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut setup = setup_from(&args, identity)?;
    setup.link_keys = link_keys;
    setup.lan = args.lan.then(|| LanSetup {
        room: args.room.clone(),
        key: psk.as_ref().map(BeaconKey::derive),
    });
    setup.allow_guests = args.allow_guests;
    let colour =
        io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let format = if args.json {
        Format::Json
    } else {
        Format::Human { colour }
    };
    let mut out = Output::new(format, io::stdout());
    if args.quiet {
        out = out.quiet();
    }
    // Every error of starting or running is a runtime error: its message, exit code 1.
    let reactor = match terminal(&args, colour) {
        Some(term) => {
            // On the terminal a client whose connection drops dials again; piped, it ends.
            setup.reconnect = true;
            Reactor::on_terminal(setup, out, term)
        }
        None => Reactor::new(setup, out),
    }
    .map_err(|e| e.to_string())?;
    reactor
        .with_signals(signals)
        .run()
        .map_err(|e| e.to_string())
}

/// The interactive terminal, in raw mode, when stdin and stdout are terminals (`TERM` set and not
/// `dumb`) and JSON was not asked for; `None` for line mode.
fn terminal(args: &Args, colour: bool) -> Option<TermSetup> {
    if !interactive(args) {
        return None;
    }
    tty::restore_on_panic();
    match tty::RawMode::enter() {
        Ok(raw) => Some(TermSetup {
            raw,
            bell: args.bell.into(),
            colour,
        }),
        Err(e) => {
            warnings::pass_through();
            log::warn!("cannot put the terminal in raw mode ({e}); plain lines instead");
            None
        }
    }
}

/// True when the interactive terminal runs: stdin and stdout are terminals, `TERM` is set and
/// not `dumb`, and JSON was not asked for.
fn interactive(args: &Args) -> bool {
    !args.json && tty::wanted()
}

/// How asking what the command line left out ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    /// Nothing is missing any more: the chat can start.
    Complete,
    /// Input ended at a question.
    InputEnded,
}

/// Asks, on a terminal, what the command line left out: the nick in mesh mode, or whether to
/// listen or connect (and the nick) when there is nothing to do.
fn ask_what_is_missing(args: &mut Args) -> Result<Asked, String> {
    let stdin_is_tty = io::stdin().is_terminal();
    if (args.mesh.is_some() || args.lan) && args.nick.is_none() && stdin_is_tty {
        // Like the seed: mesh mode (and LAN mode) asks for the user's name.
        let mut input = io::stdin().lock();
        let asked = cli::ask_nick(&mut input, &mut io::stderr(), &cli::default_nick());
        let Some(nick) = answered(asked)? else {
            return Ok(Asked::InputEnded);
        };
        args.nick = Some(nick);
    }
    if args.listen.is_some() || !args.peers.is_empty() || args.mesh.is_some() || args.lan {
        return Ok(Asked::Complete);
    }
    if !stdin_is_tty {
        usage_error("nothing to do: give -l to listen or HOST[:PORT] to connect (see --help)");
    }
    let mut input = io::stdin().lock();
    let mut prompt = io::stderr();
    let Some(mode) = answered(cli::ask_mode(&mut input, &mut prompt))? else {
        return Ok(Asked::InputEnded);
    };
    match mode {
        Mode::Listen(hp) => args.listen = Some(hp),
        Mode::Connect(hp) => args.peers.push(hp),
    }
    if args.nick.is_none() {
        let asked = cli::ask_nick(&mut input, &mut prompt, &cli::default_nick());
        let Some(nick) = answered(asked)? else {
            return Ok(Asked::InputEnded);
        };
        args.nick = Some(nick);
    }
    Ok(Asked::Complete)
}

/// The identity key (`--identity`, else the default path, else one for this run only) and the
/// keys remembered beside it; its warnings are logged.
fn load_identity(args: &Args) -> Result<Identity, String> {
    let env = identity::Env::from_process();
    let loaded = identity::load(args.identity.as_deref(), &env).map_err(|e| e.to_string())?;
    for warning in &loaded.warnings {
        log::warn!("{warning}");
    }
    Ok(loaded)
}

/// A private group's pre-shared key when a secret is given (`--secret-file` or
/// `PEERCHAT_SECRET`), `None` for a chat in plain text. Errors are one line, as the identity's.
fn load_psk(args: &Args) -> Result<Option<[u8; secret::PSK_LEN]>, String> {
    let env = secret::Env::from_process();
    let secret = secret::load(args.secret_file.as_deref(), &env).map_err(|e| e.to_string())?;
    Ok(secret.map(|s| s.psk()))
}

/// The reactor's setup from the command line and the identity: where to listen, the peers
/// resolved, the log file opened, the limits (fitted to the open-file limit when listening).
fn setup_from(args: &Args, identity: Identity) -> Result<Setup, String> {
    let listen = match (&args.listen, &args.mesh) {
        (Some(hp), _) => Listen::Addr(first_addr(hp)?),
        (None, Some(range)) => Listen::Range(Mesh {
            host: mesh_host(args.host.as_deref().unwrap_or("127.0.0.1")),
            ports: range.first..=range.last,
        }),
        // `--lan` alone: port 5000 on every interface when free, else another.
        (None, None) if args.lan => Listen::Prefer(SocketAddr::from((
            std::net::Ipv4Addr::UNSPECIFIED,
            cli::DEFAULT_PORT,
        ))),
        (None, None) => Listen::None,
    };
    let listening = !matches!(listen, Listen::None);
    let log = match &args.log_file {
        Some(path) => Some(EventLog::open(path)?),
        None => None,
    };
    let dials = args
        .peers
        .iter()
        .map(|hp| {
            Ok(Dial {
                label: hp.to_string(),
                addrs: resolve(hp)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut setup = Setup {
        nick: args.nick.clone().unwrap_or_else(cli::default_nick),
        listen,
        dials,
        keep_open: args.keep_open,
        max_peers: usize::from(args.max_peers),
        peer_timeout: Duration::from_secs(args.timeout),
        log,
        max_backlog: args.max_backlog,
        slow_timeout: args.slow_timeout,
        max_conns: args.max_conns.map_or(usize::MAX, |n| n as usize),
        guest_rate: (args.rate_limit > 0).then(|| RateLimit::per_second(args.rate_limit)),
        max_guests_per_ip: (args.max_guests_per_ip > 0).then_some(args.max_guests_per_ip as usize),
        reconnect: false,
        key: identity.key,
        known: identity.known,
        known_path: identity.known_path,
        link_keys: None,
        allow_guests: false,
        lan: None,
        history: usize::from(args.history),
    };
    if listening {
        fit_fd_limit(&mut setup, args.max_conns.is_some());
    }
    Ok(setup)
}

/// A listener holds one file descriptor per connection, and keeps a few for itself (stdin,
/// stdout, the log file, epoll) and for refusing connections politely: raise the limit, and
/// take `--max-conns` from it unless it was `given`.
fn fit_fd_limit(setup: &mut Setup, given: bool) {
    match limits::raise_fd_limit() {
        Ok(n) => {
            let reserved = limits::RESERVED_FDS.min(n / 4);
            let room = usize::try_from(n - reserved).unwrap_or(usize::MAX);
            if n < limits::WANT_FDS {
                log::warn!(
                    "the open-file limit is {n}: at most about {room} connections; raise it \
                     with `ulimit -n {}` (or the hard limit, as root) for more",
                    limits::WANT_FDS
                );
            }
            if !given {
                setup.max_conns = room.max(1);
            } else if setup.max_conns > room {
                log::warn!(
                    "--max-conns {} is more than the open-file limit {n} allows (about {room})",
                    setup.max_conns
                );
            }
        }
        Err(e) => log::warn!("{e}"),
    }
}

/// `None` when input ended at the question; other errors are runtime errors.
fn answered<T>(r: io::Result<T>) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            eprintln!();
            Ok(None)
        }
        Err(e) => Err(format!("cannot read the answer: {e}")),
    }
}

fn first_addr(hp: &HostPort) -> Result<std::net::SocketAddr, String> {
    // `lookup` gives at least one address or an error.
    let first = resolve(hp)?.into_iter().next();
    first.ok_or_else(|| unresolved(hp, "no address".into()))
}

/// Every address of `hp`, or the one line saying why not.
fn resolve(hp: &HostPort) -> Result<Vec<std::net::SocketAddr>, String> {
    hp.lookup().map_err(|why| unresolved(hp, why))
}

fn unresolved(hp: &HostPort, why: String) -> String {
    let host = hp.host.clone();
    DialError::Resolve { host, why }.to_string()
}

/// The `--host` of mesh mode: an address (or name) the other nodes can be reached at. Anything
/// else is a usage error.
fn mesh_host(host: &str) -> std::net::IpAddr {
    let ip = (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|a| a.ip());
    match ip {
        Some(ip) if !ip.is_unspecified() => ip,
        Some(_) => usage_error(&format!(
            "--host {host}: give an address the nodes listen and connect on, such as 127.0.0.1"
        )),
        None => usage_error(&format!("--host {host}: not a host name or address")),
    }
}
