//! The terminal device: whether to run the interactive front end, raw mode, and its restoring on
//! every way out (a normal return, an error, a panic, a signal that ends the program, Ctrl-Z),
//! and the window's size.
//!
//! The only part of `term` that does IO. Must not decide what is drawn.
//!
//! The settings found at start are kept in a process-wide slot, so that the threads that end the
//! program without returning (the signal thread's second Ctrl-C, a panic) can put them back too.

use std::io::{self, IsTerminal};
use std::sync::{Mutex, PoisonError};

/// Turns bracketed paste on: pasted text arrives between `ESC [200~` and `ESC [201~`.
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The terminal's settings before raw mode, while raw mode is on (or suspended).
static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

/// True when the interactive front end should run: stdin and stdout are both terminals and
/// `TERM` is set to something other than `dumb`.
pub fn wanted() -> bool {
    let term = std::env::var_os("TERM");
    let smart = term.is_some_and(|t| !t.is_empty() && t != "dumb");
    smart && io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// Raw mode on stdin's terminal while this lives; dropping it restores the terminal.
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    /// Saves the terminal's settings and turns raw mode on: no echo, keys one by one, no line
    /// editing by the terminal. Ctrl-C and Ctrl-Z still raise their signals (the signal thread
    /// takes them), Ctrl-\ does not (it would dump core with the terminal left raw). Output
    /// processing stays on, so `\n` still starts a new row for stderr's warnings too.
    pub fn enter() -> io::Result<RawMode> {
        let mut saved = lock();
        let original = match *saved {
            Some(t) => t,
            None => get()?,
        };
        set(&raw(original))?;
        *saved = Some(original);
        write_all(PASTE_ON);
        Ok(RawMode(()))
    }

    /// Raw mode again after a suspension ([`suspend`]) or after something changed the settings.
    pub fn resume(&self) -> io::Result<()> {
        let saved = lock();
        let Some(original) = *saved else {
            return Ok(());
        };
        set(&raw(original))?;
        write_all(PASTE_ON);
        Ok(())
    }
}

#[cfg(test)]
impl RawMode {
    /// A raw mode that was never entered, for tests of what is drawn: dropping it restores
    /// nothing, since nothing was saved.
    pub(crate) fn untouched() -> RawMode {
        RawMode(())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
        *lock() = None;
    }
}

/// Puts back the terminal's settings from before raw mode, if raw mode is on; safe to call from
/// any thread, any number of times. Raw mode can be resumed afterwards.
pub fn restore() {
    let saved = lock();
    if let Some(original) = *saved {
        write_all(PASTE_OFF);
        let _ = set(&original);
    }
}

/// Leaves the prompt row empty and restores the terminal, for a way out that does not return
/// through the screen (the second Ctrl-C, a panic of the loop thread): what the shell or the
/// panic message writes next starts on a clean row.
pub fn abandon() {
    if lock().is_some() {
        write_all(b"\r\x1b[K");
    }
    restore();
}

/// Restores the terminal before the loop thread's panic message is printed, so that the message
/// and the shell after it are readable. A helper thread's panic leaves it alone: the loop goes on
/// drawing, and a cooked terminal under it would echo every key.
pub fn restore_on_panic() {
    let before = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            abandon();
        }
        before(info);
    }));
}

/// The window's size in columns and rows, if stdout is a terminal that knows it.
pub fn size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes one winsize, which we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Stops the whole process as Ctrl-Z does, with the terminal restored; returns once it is
/// continued (`fg`), with raw mode back on if it was on.
pub fn suspend() {
    restore();
    // SAFETY: raising SIGSTOP on our own process; it cannot be caught or blocked, and POSIX
    // delivers it before kill returns, so this returns only once the process is continued.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGSTOP);
    }
    let saved = lock();
    if let Some(original) = *saved {
        if set(&raw(original)).is_ok() {
            write_all(PASTE_ON);
        }
    }
}

/// The settings for raw mode, from the original ones.
fn raw(mut t: libc::termios) -> libc::termios {
    t.c_iflag &= !(libc::IXON | libc::ICRNL | libc::INLCR | libc::IGNCR | libc::ISTRIP);
    t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ECHONL | libc::IEXTEN);
    // Ctrl-C and Ctrl-Z keep raising SIGINT and SIGTSTP; the output queued when they come is
    // not thrown away.
    t.c_lflag |= libc::ISIG | libc::NOFLSH;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    t.c_cc[libc::VQUIT] = 0;
    t
}

fn get() -> io::Result<libc::termios> {
    // SAFETY: tcgetattr writes one termios, which we own.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

fn set(t: &libc::termios) -> io::Result<()> {
    // SAFETY: tcsetattr reads one termios.
    if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes straight to the terminal, past any buffer (also from the signal thread).
fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a slice we hold.
        let n = unsafe { libc::write(libc::STDOUT_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<libc::termios>> {
    SAVED.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_keeps_signals_and_output_processing_and_turns_off_echo_and_lines() {
        // SAFETY: a zeroed termios is a valid value to compute on.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        t.c_lflag = libc::ICANON | libc::ECHO | libc::IEXTEN | libc::ISIG;
        t.c_iflag = libc::ICRNL | libc::IXON;
        t.c_oflag = libc::OPOST | libc::ONLCR;
        t.c_cc[libc::VQUIT] = 0x1c;
        let r = raw(t);
        assert_eq!(r.c_lflag & (libc::ICANON | libc::ECHO | libc::IEXTEN), 0);
        assert_ne!(r.c_lflag & libc::ISIG, 0);
        assert_ne!(r.c_lflag & libc::NOFLSH, 0);
        assert_eq!(r.c_iflag & (libc::ICRNL | libc::IXON), 0);
        assert_eq!(r.c_oflag, libc::OPOST | libc::ONLCR);
        assert_eq!((r.c_cc[libc::VMIN], r.c_cc[libc::VQUIT]), (1, 0));
    }
}
