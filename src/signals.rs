//! Ctrl-C and friends. SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one
//! small thread with `sigwait`, so no code runs inside a signal handler (one the program was
//! started with ignored, as `nohup` does, stays ignored). While the event loop
//! runs, the first one asks it to leave cleanly (peers told, queued output sent, the log file
//! closed) and a second one ends the program at once; before the loop runs (at the start-up
//! questions) the first one ends it at once. The exit code is 128 + the signal's number (130 for
//! SIGINT, 143 for SIGTERM, 129 for SIGHUP), as shells report it.
//!
//! On the interactive terminal three more are taken the same way: SIGTSTP (Ctrl-Z), SIGCONT
//! (`fg`) and SIGWINCH (a resize). The event loop, which owns the screen, restores the terminal
//! and stops the process itself, and redraws when it is continued or resized; before the loop
//! runs, Ctrl-Z stops the process at once. Whatever ends the program from this thread restores
//! the terminal first. Must not do anything else.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mio::Waker;

const TAKEN: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Taken too on the interactive terminal.
const TERMINAL: [libc::c_int; 3] = [libc::SIGTSTP, libc::SIGCONT, libc::SIGWINCH];

/// What happened to the terminal since the event loop last asked: bits of [`TermSignals`].
const SUSPEND: u8 = 1;
const CONTINUED: u8 = 2;
const RESIZED: u8 = 4;

/// The terminal's signals received since the last [`Signals::take_terminal`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TermSignals {
    /// Ctrl-Z (SIGTSTP): restore the terminal and stop.
    pub suspend: bool,
    /// SIGCONT: the process was stopped and goes on; the screen needs drawing again.
    pub continued: bool,
    /// SIGWINCH: the window has a new size.
    pub resized: bool,
}

#[derive(Default)]
struct State {
    /// The first signal received while the event loop runs, or 0.
    got: AtomicI32,
    /// Wakes the event loop; `None` until it runs.
    waker: Mutex<Option<Arc<Waker>>>,
    /// The terminal's signals not yet taken (bits).
    terminal: std::sync::atomic::AtomicU8,
}

/// The signals this process takes; see the module header.
#[derive(Clone, Default)]
pub struct Signals {
    state: Arc<State>,
}

/// The usual exit code for a program ended by `signal`.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}

/// The signal's name, for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

impl Signals {
    /// Blocks the signals (with `terminal`, the terminal's too) and starts the thread that
    /// takes them. Call before starting any other thread (threads inherit the blocked set). If
    /// the thread cannot start, the signals keep their default effect.
    pub fn install(terminal: bool) -> Signals {
        let signals = Signals::default();
        // SAFETY: sigaction with no new action only reads the current one into `old`, which we
        // own; sigemptyset/sigaddset fill the set we own; pthread_sigmask reads it.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            let extra: &[libc::c_int] = if terminal { &TERMINAL } else { &[] };
            for &s in TAKEN.iter().chain(extra) {
                // A signal we were started with ignored (`nohup`, a background job of a
                // script) stays ignored: blocked, it would still reach sigwait.
                let mut old: libc::sigaction = std::mem::zeroed();
                let ignored = libc::sigaction(s, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN;
                if !ignored {
                    libc::sigaddset(&mut set, s);
                }
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let state = signals.state.clone();
        let started = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: sigwait reads the set and writes one int, both ours.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                take(&state, sig);
            });
        if started.is_err() {
            // SAFETY: as above.
            unsafe {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            }
        }
        signals
    }

    /// From now on a signal asks the event loop to leave, waking it with `waker`.
    pub fn attach(&self, waker: Arc<Waker>) {
        *self
            .state
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(waker);
    }

    /// The terminal's signals received since the last call.
    pub fn take_terminal(&self) -> TermSignals {
        let bits = self.state.terminal.swap(0, Ordering::SeqCst);
        TermSignals {
            suspend: bits & SUSPEND != 0,
            continued: bits & CONTINUED != 0,
            resized: bits & RESIZED != 0,
        }
    }

    /// The signal received since [`Signals::attach`], if any.
    pub fn received(&self) -> Option<i32> {
        Some(self.state.got.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

/// What the signal thread does with `sig`.
fn take(state: &State, sig: libc::c_int) {
    let waker = state.waker.lock().unwrap_or_else(PoisonError::into_inner);
    let bit = match sig {
        libc::SIGTSTP => SUSPEND,
        libc::SIGCONT => CONTINUED,
        libc::SIGWINCH => RESIZED,
        _ => 0,
    };
    match waker.as_ref() {
        Some(w) if bit != 0 => {
            state.terminal.fetch_or(bit, Ordering::SeqCst);
            let _ = w.wake();
        }
        // Ctrl-Z before the loop runs: nothing is drawn yet, stop at once.
        None if bit == SUSPEND => crate::term::tty::suspend(),
        // A resize or `fg` before the loop runs: it draws everything when it starts.
        None if bit != 0 => {}
        Some(w) if state.got.swap(sig, Ordering::SeqCst) == 0 => {
            let _ = w.wake();
        }
        // Not chatting yet, or asked a second time: end now.
        _ => {
            crate::term::tty::abandon();
            std::process::exit(i32::from(exit_code(sig)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_names_are_the_shells() {
        assert_eq!(exit_code(libc::SIGINT), 130);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(exit_code(libc::SIGHUP), 129);
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(Signals::default().received(), None);
    }
}
