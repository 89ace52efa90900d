//! What the user sees, and the event log: every event goes to the log file (if any) and to
//! stdout (human or JSON lines, or on the interactive terminal through the `terminal` room);
//! a failing log is said once and dropped; stdout going away (`| head -1`) is noticed once,
//! and the caller then leaves quietly.
//!
//! Must not decide what is shown (the chat does) nor act on stdout going away itself.

use std::io::{self, Write};

use log::debug;

use super::terminal::Terminal;
use crate::event::Event;
use crate::eventlog::{EventLog, Tag};
use crate::output::Output;

/// Stdout just went away: leave as if input had ended. Returned once.
#[derive(Debug)]
pub(super) struct StdoutGone;

/// Stdout and the event log.
pub(super) struct Screen<W: Write> {
    out: Output<W>,
    log: Option<EventLog>,
    /// Stdout failed: nothing more is written to it.
    broken: bool,
    /// The interactive terminal, which draws instead of writing lines.
    term: Option<Terminal>,
}

impl<W: Write> Screen<W> {
    pub(super) fn new(out: Output<W>, log: Option<EventLog>) -> Self {
        Screen {
            out,
            log,
            broken: false,
            term: None,
        }
    }

    /// Draws on the interactive terminal from now on.
    pub(super) fn set_terminal(&mut self, mut term: Terminal) -> Result<(), StdoutGone> {
        let started = term.start(self.out.writer());
        self.term = Some(term);
        self.stdout_failed(started)
    }

    /// True on the interactive terminal.
    pub(super) fn is_terminal(&self) -> bool {
        self.term.is_some()
    }

    /// The interactive terminal, if this is one.
    pub(super) fn terminal(&mut self) -> Option<&mut Terminal> {
        self.term.as_mut()
    }

    /// Carries out Ctrl-Z, `fg` and resizes on the interactive terminal. Anywhere else Ctrl-Z
    /// only stops the process, as it would have without being taken.
    pub(super) fn handle_signals(&mut self, got: crate::signals::TermSignals) {
        match &mut self.term {
            Some(term) => term.handle_signals(got, self.out.writer()),
            None if got.suspend => {
                let _ = self.out.flush();
                crate::term::tty::suspend();
            }
            None => {}
        }
    }

    /// Logs and shows `event`.
    pub(super) fn show(&mut self, event: &Event) -> Result<(), StdoutGone> {
        let logged = match &mut self.log {
            Some(log) => log.event(event),
            None => Ok(()),
        };
        self.log_failed(logged)?;
        self.write_stdout(event)
    }

    /// Appends a line to the event log, if there is one.
    pub(super) fn record(&mut self, tag: Tag, text: &str) -> Result<(), StdoutGone> {
        let logged = match &mut self.log {
            Some(log) => log.write(tag, text),
            None => Ok(()),
        };
        self.log_failed(logged)
    }

    /// Writes out what stdout holds (on the terminal, the prompt line drawn again after it).
    pub(super) fn flush(&mut self) -> Result<(), StdoutGone> {
        if self.broken {
            return Ok(());
        }
        let flushed = match &mut self.term {
            Some(term) => term.draw(self.out.writer()).and_then(|()| self.out.flush()),
            None => self.out.flush(),
        };
        self.stdout_failed(flushed)
    }

    /// A failing log is closed, and said once on stdout.
    fn log_failed(&mut self, logged: io::Result<()>) -> Result<(), StdoutGone> {
        let Err(e) = logged else {
            return Ok(());
        };
        self.log = None;
        self.write_stdout(&Event::Error(format!(
            "log file failed, no longer written: {e}"
        )))
    }

    fn write_stdout(&mut self, event: &Event) -> Result<(), StdoutGone> {
        if self.broken {
            return Ok(());
        }
        let shown = match &mut self.term {
            Some(term) if self.out.shows(event) => {
                let time = chrono::Local::now().format("%H:%M:%S").to_string();
                term.show(event, &time, self.out.writer())
            }
            Some(_) => Ok(()),
            None => self.out.show(event),
        };
        self.stdout_failed(shown)
    }

    fn stdout_failed(&mut self, r: io::Result<()>) -> Result<(), StdoutGone> {
        let Err(e) = r else {
            return Ok(());
        };
        debug!("stdout failed: {e}");
        self.broken = true;
        Err(StdoutGone)
    }
}

impl<W: Write> Drop for Screen<W> {
    /// On the terminal, the prompt line goes, so that the shell's prompt starts on a clean row.
    /// (Raw mode itself is restored by the terminal room's `RawMode` as it is dropped.)
    fn drop(&mut self) {
        // Unwinding from a panic: its message is on the screen already, and chat rows still
        // buffered would land after it.
        if std::thread::panicking() {
            return;
        }
        if let (Some(term), false) = (&mut self.term, self.broken) {
            let _ = term.finish(self.out.writer());
            let _ = self.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    /// Takes `room` bytes, then fails as a closed pipe does.
    struct Pipe {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.got.len() + buf.len() > self.room {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.got.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn stdout_going_away_is_said_once_and_nothing_more_is_written() {
        let pipe = Pipe {
            room: 0,
            got: Vec::new(),
        };
        let mut screen = Screen::new(Output::new(Format::Json, pipe), None);
        let mut gone = 0;
        for _ in 0..3 {
            gone += usize::from(screen.show(&Event::Info("x".into())).is_err());
            gone += usize::from(screen.flush().is_err());
        }
        assert_eq!(gone, 1);
    }
}
