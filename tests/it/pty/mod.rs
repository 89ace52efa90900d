//! A pseudo-terminal harness: runs the real `peerchat` on a new pty, as a shell would run it in
//! a terminal window, and reads everything it writes into a terminal model (`vt100`), so a test
//! asserts what a person would see on the screen.
//!
//! The pty is peerchat's controlling terminal and peerchat's process group is the foreground
//! one, so Ctrl-C (0x03) and Ctrl-Z (0x1A) raise SIGINT / SIGTSTP in it while the terminal's
//! signal keys are on (ISIG), and a resize sends it SIGWINCH. Between the test and peerchat stands a small session leader
//! (a fork of the test process that only waits), as the shell stands between a terminal and a
//! job: without one, peerchat's process group would be orphaned and the kernel would drop the
//! SIGTSTP that stops it. `session` starts the process so; `screen` reads the model.
//!
//! Waits have deadlines and panic with the screen printed; there are no fixed sleeps. Must not
//! know what peerchat draws: the tests in `term` say that.

#![allow(dead_code)]

mod screen;
mod session;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::util;

use self::screen::{framed, look, row_of, rows_of, Seen};
pub use self::screen::{Look, ScreenExt};
use self::session::{become_session, open_pty, os_check};

/// How long any one screen condition may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Markers written by `Term::sync` so far, so each is unique.
static SYNCS: AtomicUsize = AtomicUsize::new(0);

/// Rows of scrollback the model keeps above the screen.
const SCROLLBACK: usize = 500;

/// How to start peerchat on the pty.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    pub cols: u16,
    pub rows: u16,
    /// `TERM`; `None` leaves it unset.
    pub term: Option<&'a str>,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            cols: 80,
            rows: 24,
            term: Some("xterm-256color"),
        }
    }
}

/// The terminal as the test sees it.
struct Model {
    parser: vt100::Parser<Seen>,
    /// Every byte read from the master, for failure messages.
    raw: Vec<u8>,
}

/// The model and a condition signalled each time the reader changed it.
struct Shared {
    model: Mutex<Model>,
    changed: Condvar,
}

/// peerchat running on a pty of its own.
pub struct Term {
    master: File,
    /// A slave end the test keeps, to read the terminal's modes after peerchat changed them.
    slave: OwnedFd,
    /// The session leader that waits for peerchat and exits as it did.
    leader: Child,
    /// peerchat's pid (also its process group's).
    pid: libc::pid_t,
    shared: Arc<Shared>,
    /// peerchat's own config directory (its identity key); removed after it has ended.
    _config: Option<util::TempDir>,
}

/// Reads the master until the pty is gone, into the model; answers the model's queries.
fn read_master(mut master: File, shared: Arc<Shared>) {
    let mut answer_to = master.try_clone().ok();
    let mut buf = [0u8; 4096];
    loop {
        let n = match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO: every slave end is closed.
            Err(_) => break,
        };
        let answers = {
            let mut model = shared.model.lock().unwrap_or_else(PoisonError::into_inner);
            model.parser.process(&buf[..n]);
            model.raw.extend_from_slice(&buf[..n]);
            std::mem::take(&mut model.parser.callbacks_mut().answers)
        };
        shared.changed.notify_all();
        if let (false, Some(w)) = (answers.is_empty(), answer_to.as_mut()) {
            let _ = w.write_all(&answers);
        }
    }
}

impl Term {
    /// `peerchat ARGS` on an 80x24 pty with `TERM=xterm-256color`.
    pub fn start(args: &[&str]) -> Term {
        Term::start_with(&Spec::default(), args)
    }

    /// `peerchat ARGS` on a pty as `spec` says; colours allowed, `RUST_LOG` unset.
    pub fn start_with(spec: &Spec, args: &[&str]) -> Term {
        Term::start_program(spec, util::bin(), args)
    }

    /// `PROGRAM ARGS` on a pty as `spec` says (for checking the harness itself).
    pub fn start_program(spec: &Spec, program: &str, args: &[&str]) -> Term {
        let (master, slave) = open_pty(spec.cols, spec.rows);
        let mut cmd = Command::new(program);
        cmd.args(args).env_remove("RUST_LOG").env_remove("NO_COLOR");
        let config = util::own_config(&mut cmd);
        match spec.term {
            Some(t) => cmd.env("TERM", t),
            None => cmd.env_remove("TERM"),
        };
        let dup = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty slave"));
        cmd.stdin(dup(&slave))
            .stdout(dup(&slave))
            .stderr(dup(&slave));
        become_session(&mut cmd);
        let leader = {
            let _spawning = util::spawning();
            cmd.spawn().expect("start peerchat on a pty")
        };
        drop(cmd);
        // `spawn` returned after peerchat's exec, and it was made the foreground group before.
        let mut pid: libc::pid_t = 0;
        // SAFETY: TIOCGPGRP writes one pid_t we own; on the master it reads the slave's group.
        os_check("TIOCGPGRP", unsafe {
            libc::ioctl(master.as_raw_fd(), libc::TIOCGPGRP, &mut pid)
        });
        assert_ne!(pid, leader.id() as libc::pid_t, "peerchat is its own group");
        let shared = Arc::new(Shared {
            model: Mutex::new(Model {
                parser: vt100::Parser::new_with_callbacks(
                    spec.rows.try_into().expect("rows > 0"),
                    spec.cols.try_into().expect("cols > 0"),
                    SCROLLBACK,
                    Seen::default(),
                ),
                raw: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let master = File::from(master);
        let reader = master.try_clone().expect("dup the pty master");
        let for_reader = shared.clone();
        thread::spawn(move || read_master(reader, for_reader));
        Term {
            master,
            slave,
            leader,
            pid,
            shared,
            _config: config,
        }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.shared
            .model
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// peerchat's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Types `bytes` (keys, escape sequences, a paste) into the terminal.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the pty");
    }

    /// Types `text` (no Enter).
    pub fn type_str(&mut self, text: &str) {
        self.send(text.as_bytes());
    }

    /// Presses the key named `name` as xterm sends it (arrows and Home/End in the cursor mode
    /// the program set): `Left`, `Right`, `Up`, `Down`, `Home`, `End`, `Delete`, `Backspace`,
    /// `Tab`, `Enter`, `Esc`, or `Ctrl-X` / `Alt-X` for a letter X.
    pub fn key(&mut self, name: &str) {
        let app = self.model().parser.screen().application_cursor();
        let csi_or_ss3 = |c: char| format!("{}{c}", if app { "\x1bO" } else { "\x1b[" });
        let bytes = match name {
            "Up" => csi_or_ss3('A'),
            "Down" => csi_or_ss3('B'),
            "Right" => csi_or_ss3('C'),
            "Left" => csi_or_ss3('D'),
            "Home" => csi_or_ss3('H'),
            "End" => csi_or_ss3('F'),
            "Delete" => "\x1b[3~".to_string(),
            "Backspace" => "\x7f".to_string(),
            "Tab" => "\t".to_string(),
            "Enter" => "\r".to_string(),
            "Esc" => "\x1b".to_string(),
            other => {
                let letter = |prefix: &str| {
                    let rest = other.strip_prefix(prefix)?;
                    let mut chars = rest.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
                        _ => None,
                    }
                };
                if let Some(c) = letter("Ctrl-") {
                    ((c as u8 - b'a' + 1) as char).to_string()
                } else if let Some(c) = letter("Alt-") {
                    format!("\x1b{c}")
                } else {
                    panic!("no key named {other:?}")
                }
            }
        };
        self.send(bytes.as_bytes());
    }

    /// Puts `bytes` on the screen model as if another program (the shell, say) wrote them to
    /// the terminal after everything peerchat wrote so far; peerchat does not see them.
    pub fn shell_writes(&mut self, bytes: &[u8]) {
        self.sync();
        self.model().parser.process(bytes);
    }

    /// Waits until `pred` holds for the screen, and returns its contents then; on timeout panics
    /// with `what` and the screen.
    pub fn wait_screen(&self, what: &str, pred: impl Fn(&vt100::Screen) -> bool) -> String {
        self.wait_model(what, |screen, _| pred(screen))
    }

    /// Waits until `f` finds something on the screen, and returns it.
    pub fn wait_screen_value<T>(&self, what: &str, f: impl Fn(&vt100::Screen) -> Option<T>) -> T {
        let found = Mutex::new(None);
        self.wait_screen(what, |s| match f(s) {
            Some(v) => {
                *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
                true
            }
            None => false,
        });
        let found = found.into_inner().unwrap_or_else(PoisonError::into_inner);
        found.expect("wait_screen returns once the value is found")
    }

    /// Waits until the bell has rung `n` times in all.
    pub fn wait_bells(&self, n: usize) {
        self.wait_model(&format!("{n} bells"), |_, bells| bells == n);
    }

    /// Waits until `pred` holds for the screen and the bell count.
    fn wait_model(&self, what: &str, pred: impl Fn(&vt100::Screen, usize) -> bool) -> String {
        let model = self.wait_until(what, |m| {
            pred(m.parser.screen(), m.parser.callbacks().bells)
        });
        model.parser.screen().contents()
    }

    /// Waits (until [`DEADLINE`]) for the model to satisfy `pred`; on timeout, panics with the
    /// screen, the bells and the last bytes read.
    fn wait_until(&self, what: &str, pred: impl Fn(&Model) -> bool) -> MutexGuard<'_, Model> {
        let end = Instant::now() + DEADLINE;
        let mut model = self.model();
        loop {
            if pred(&model) {
                return model;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let screen = framed(model.parser.screen());
                let tail = String::from_utf8_lossy(&model.raw);
                let tail: String = {
                    let chars: Vec<char> = tail.chars().collect();
                    chars[chars.len().saturating_sub(600)..].iter().collect()
                };
                let bells = model.parser.callbacks().bells;
                drop(model);
                panic!(
                    "timed out waiting for {what}; the screen:\n{screen}\n{bells} bells; \
                     last bytes: {tail:?}"
                );
            }
            model = self
                .shared
                .changed
                .wait_timeout(model, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the screen shows `text` somewhere.
    pub fn wait_text(&self, text: &str) -> String {
        self.wait_screen(&format!("{text:?} on the screen"), |s| {
            s.contents().contains(text)
        })
    }

    /// The screen's text, rows joined by `\n`.
    pub fn contents(&self) -> String {
        self.model().parser.screen().contents()
    }

    /// The screen framed for a message: each row between bars, with its number.
    pub fn framed(&self) -> String {
        framed(self.model().parser.screen())
    }

    /// Row `i` (from 0, top) of the screen, without trailing blanks.
    pub fn row(&self, i: u16) -> String {
        row_of(self.model().parser.screen(), i)
    }

    /// Every row of the screen.
    pub fn rows(&self) -> Vec<String> {
        rows_of(self.model().parser.screen())
    }

    /// (rows, cols) of the screen.
    pub fn size(&self) -> (u16, u16) {
        let (r, c) = self.model().parser.screen().size();
        (r.get(), c.get())
    }

    /// The cursor as (row, col), from 0.
    pub fn cursor(&self) -> (u16, u16) {
        self.model().parser.screen().cursor_position()
    }

    /// How the cell at (`row`, `col`) looks.
    pub fn cell_attrs(&self, row: usize, col: u16) -> Look {
        let model = self.model();
        let row = u16::try_from(row).expect("a screen row");
        model
            .parser
            .screen()
            .cell(row, col)
            .map(look)
            .unwrap_or_default()
    }

    /// How each cell with text on `row` from column `from` looks.
    pub fn text_attrs(&self, row: usize, from: u16) -> Vec<Look> {
        let model = self.model();
        let screen = model.parser.screen();
        let row = u16::try_from(row).expect("a screen row");
        (from..screen.size().1.get())
            .filter_map(|col| screen.cell(row, col))
            .filter(|c| c.has_contents() && c.contents() != " ")
            .map(look)
            .collect()
    }

    /// The rows the terminal itself wrapped (something was written past the right edge).
    pub fn wrapped_rows(&self) -> Vec<u16> {
        let model = self.model();
        let screen = model.parser.screen();
        (0..screen.size().0.get())
            .filter(|&r| screen.row_wrapped(r))
            .collect()
    }

    /// Whether the program asked for bracketed paste.
    pub fn bracketed_paste(&self) -> bool {
        self.model().parser.screen().bracketed_paste()
    }

    /// How many times the bell (BEL) rang.
    pub fn bells(&self) -> usize {
        self.model().parser.callbacks().bells
    }

    /// Every byte peerchat wrote so far.
    pub fn raw(&self) -> Vec<u8> {
        self.model().raw.clone()
    }

    /// Resizes the terminal to `cols` x `rows`: the model first, then the pty (which sends
    /// SIGWINCH to peerchat), so what peerchat draws for the new size lands on a screen of it.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        {
            let mut model = self.model();
            model.parser.set_size(
                rows.try_into().expect("rows > 0"),
                cols.try_into().expect("cols > 0"),
            );
        }
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we own.
        os_check("TIOCSWINSZ", unsafe {
            libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size)
        });
    }

    fn termios(&self) -> libc::termios {
        // SAFETY: tcgetattr fills the termios we own from our slave fd.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            os_check("tcgetattr", libc::tcgetattr(self.slave.as_raw_fd(), &mut t));
            t
        }
    }

    /// Whether the terminal is in its usual (cooked) mode: line editing, echo and signal keys on.
    pub fn termios_is_cooked(&self) -> bool {
        let want = libc::ICANON | libc::ECHO | libc::ISIG;
        self.termios().c_lflag & want == want
    }

    /// Whether the terminal is in raw mode: no line editing, no echo.
    pub fn termios_is_raw(&self) -> bool {
        self.termios().c_lflag & (libc::ICANON | libc::ECHO) == 0
    }

    /// peerchat's state letter from `/proc/PID/stat` (`S` sleeping, `T` stopped, ...), or `None`
    /// once it is gone.
    pub fn state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let after = &stat[stat.rfind(')')? + 1..];
        after.trim_start().chars().next()
    }

    /// Waits until peerchat's state is `want`.
    pub fn wait_state(&self, want: char) {
        util::wait_until(&format!("peerchat in state {want}"), || {
            match self.state() {
                Some(s) if s == want => Ok(()),
                s => Err(format!("state {s:?}; screen:\n{}", self.framed())),
            }
        });
    }

    /// Hangs the terminal up, as closing its window does: peerchat's reads of it end and its
    /// writes fail. (No SIGHUP reaches peerchat: its session leader does not pass one on.)
    /// Needs CAP_SYS_ADMIN.
    pub fn hangup(&self) -> io::Result<()> {
        // SAFETY: an ioctl without arguments on the slave fd we own.
        if unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCVHANGUP) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `sig` to peerchat.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill with our child's child's pid, which its session leader has not reaped
        // while the leader runs.
        os_check("kill", unsafe { libc::kill(self.pid, sig) });
    }

    /// Waits for peerchat to end (with the deadline); its status, as the session leader
    /// passes it on. Everything it wrote is on the screen model by then.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.leader.try_wait().expect("try_wait") {
                self.sync();
                return status;
            }
            if Instant::now() > end {
                panic!(
                    "peerchat did not exit (state {:?}); the screen:\n{}",
                    self.state(),
                    self.framed()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the reader has put on the model every byte written to the terminal so far:
    /// writes a marker through the slave end (the terminal keeps order) and waits for it. The
    /// marker is an OSC sequence the model ignores. Does nothing on a hung-up terminal.
    pub fn sync(&mut self) {
        let n = SYNCS.fetch_add(1, Ordering::Relaxed);
        let marker = format!("\x1b]9999;pty-sync-{n}\x1b\\");
        let mut slave = match self.slave.try_clone() {
            Ok(fd) => File::from(fd),
            Err(_) => return,
        };
        if slave.write_all(marker.as_bytes()).is_err() {
            return;
        }
        let wanted = marker.as_bytes();
        let _read = self.wait_until("the pty's output to be all read", |m| {
            m.raw.windows(wanted.len()).any(|w| w == wanted)
        });
    }

    /// Whether peerchat has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.leader.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if !self.exited() {
            // SAFETY: the leader still runs, so peerchat's pid is not reaped and not reused.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let _ = self.leader.kill();
        }
        let _ = self.leader.wait();
        // Dropping the slave and the master ends the reader (EIO on the master).
    }
}
