//! Ctrl-C and friends. SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one
//! small thread with `sigwait`, so no code runs inside a signal handler (one the program was
//! started with ignored, as `nohup` does, stays ignored). While the event loop
//! runs, the first one asks it to leave cleanly (peers told, queued output sent, the log file
//! closed) and a second one ends the program at once; before the loop runs (at the start-up
//! questions) the first one ends it at once. The exit code is 128 + the signal's number (130 for
//! SIGINT, 143 for SIGTERM, 129 for SIGHUP), as shells report it. Must not do anything else.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mio::Waker;

const TAKEN: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

#[derive(Default)]
struct State {
    /// The first signal received while the event loop runs, or 0.
    got: AtomicI32,
    /// Wakes the event loop; `None` until it runs.
    waker: Mutex<Option<Arc<Waker>>>,
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
    /// Blocks the signals and starts the thread that takes them. Call before starting any other
    /// thread (threads inherit the blocked set). If the thread cannot start, the signals keep
    /// their default effect.
    pub fn install() -> Signals {
        let signals = Signals::default();
        // SAFETY: sigaction with no new action only reads the current one into `old`, which we
        // own; sigemptyset/sigaddset fill the set we own; pthread_sigmask reads it.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in TAKEN {
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
                let waker = state.waker.lock().unwrap_or_else(PoisonError::into_inner);
                match waker.as_ref() {
                    Some(w) if state.got.swap(sig, Ordering::SeqCst) == 0 => {
                        let _ = w.wake();
                    }
                    // Not chatting yet, or asked a second time: end now.
                    _ => std::process::exit(i32::from(exit_code(sig))),
                }
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

    /// The signal received since [`Signals::attach`], if any.
    pub fn received(&self) -> Option<i32> {
        Some(self.state.got.load(Ordering::SeqCst)).filter(|&s| s != 0)
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
