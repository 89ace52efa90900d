//! The `--log-file` event log: one line per event, appended, written and flushed as it happens
//! so that a killed node loses nothing it had already shown.
//!
//! Line format: `YYYY-MM-DD HH:MM:SS [TAG] text` (local time, to the second). Text is made
//! terminal-safe and never holds a newline, so there are no blank or split lines. Must not decide
//! what happened, only record it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use chrono::Local;

use crate::event::{Event, UNENCRYPTED_NOTE};
use crate::safe::sanitize;

/// What kind of event a log line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// A connection came in (`connection from ADDR`).
    Accepted,
    /// A dial succeeded (`connected to ADDR`).
    Connected,
    Join,
    /// A message from someone else.
    Received,
    /// A message the local user sent (once, however many connections it went to).
    Sent,
    Dm,
    Nick,
    Left,
    Info,
    Error,
    /// The chat ended; the last line of a run.
    Closed,
}

impl Tag {
    fn as_str(self) -> &'static str {
        match self {
            Tag::Accepted => "ACCEPTED",
            Tag::Connected => "CONNECTED",
            Tag::Join => "JOIN",
            Tag::Received => "RECEIVED",
            Tag::Sent => "SENT",
            Tag::Dm => "DM",
            Tag::Nick => "NICK",
            Tag::Left => "LEFT",
            Tag::Info => "INFO",
            Tag::Error => "ERROR",
            Tag::Closed => "CLOSED",
        }
    }
}

/// An open event log.
pub struct EventLog<W: Write = File> {
    w: W,
}

impl EventLog<File> {
    /// Opens `path` for appending, creating it if needed. The error is a one-line message.
    pub fn open(path: &Path) -> Result<Self, String> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(EventLog::new)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))
    }
}

impl<W: Write> EventLog<W> {
    pub fn new(w: W) -> Self {
        EventLog { w }
    }

    /// Appends one line and flushes it.
    pub fn write(&mut self, tag: Tag, text: &str) -> io::Result<()> {
        let time = Local::now().format("%Y-%m-%d %H:%M:%S");
        let line = format!("{time} [{}] {}\n", tag.as_str(), sanitize(text.trim_end()));
        self.w.write_all(line.as_bytes())?;
        self.w.flush()
    }

    /// Records a chat event (those worth a line: not `/names` answers).
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let (tag, text) = match event {
            Event::Message { from, text } => (Tag::Received, format!("<{from}> {text}")),
            Event::Me { from, text } => (Tag::Received, format!("* {from} {text}")),
            Event::Past(p) => {
                let time = crate::output::clock_of(p.at);
                let said = p.speech.line(&p.from, &p.text);
                (
                    Tag::Received,
                    format!("({}, said at {time}) {said}", p.mark()),
                )
            }
            Event::Dm { from, to, text } => (Tag::Dm, format!("{from} -> {to}: {text}")),
            Event::Nick { old, nick } => (Tag::Nick, format!("{old} is now known as {nick}")),
            Event::Join {
                nick,
                addr,
                unencrypted,
            } => {
                let mut line = match addr {
                    Some(a) => format!("{nick} joined from {a}"),
                    None => format!("{nick} joined"),
                };
                if *unencrypted {
                    line.push_str(&format!(" ({UNENCRYPTED_NOTE})"));
                }
                (Tag::Join, line)
            }
            Event::Leave { nick, reason, .. } => (
                Tag::Left,
                match reason {
                    Some(r) => format!("{nick} left ({r})"),
                    None => format!("{nick} left"),
                },
            ),
            Event::Sent { speech, from, text } => (Tag::Sent, speech.line(from, text)),
            Event::Info(text) => (Tag::Info, text.clone()),
            Event::Error(text) => (Tag::Error, text.clone()),
            Event::Names(_) => return Ok(()),
        };
        self.write(tag, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Past, Speech};

    fn lines(log: EventLog<Vec<u8>>) -> Vec<String> {
        String::from_utf8(log.w)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn one_line_per_event_with_time_and_tag() {
        let mut log = EventLog::new(Vec::new());
        log.write(Tag::Accepted, "connection from 127.0.0.1:4000")
            .unwrap();
        log.event(&Event::Message {
            from: "bob".into(),
            text: "oi\x1b[2J\n".into(),
        })
        .unwrap();
        log.event(&Event::Sent {
            speech: Speech::Say,
            from: "alice".into(),
            text: "hi".into(),
        })
        .unwrap();
        log.event(&Event::Names(Vec::new())).unwrap();
        log.event(&Event::Past(Past {
            speech: Speech::Act,
            from: "eve".into(),
            text: "waved".into(),
            at: 1_795_269_852_310,
            late: true,
        }))
        .unwrap();
        log.write(Tag::Closed, "chat closed").unwrap();
        let mut lines = lines(log);
        let late = lines.remove(3);
        let said_at = crate::output::clock_of(1_795_269_852_310);
        assert!(
            late.ends_with(&format!("[RECEIVED] (late, said at {said_at}) * eve waved")),
            "{late}"
        );
        assert_eq!(lines.len(), 4, "{lines:?}");
        for line in &lines {
            // YYYY-MM-DD HH:MM:SS [TAG] text
            let b = line.as_bytes();
            assert!(b.len() > 22, "{line}");
            for (i, &c) in b[..19].iter().enumerate() {
                let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16);
                assert_eq!(c.is_ascii_digit(), want_digit, "{line}");
            }
            assert_eq!(b[19..21], *b" [", "{line}");
        }
        assert!(lines[0].ends_with("[ACCEPTED] connection from 127.0.0.1:4000"));
        assert!(
            lines[1].ends_with("[RECEIVED] <bob> oi^[[2J"),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with("[SENT] <alice> hi"));
        assert!(lines[3].ends_with("[CLOSED] chat closed"));
    }
}
