//! The transcript on the interactive terminal: each event as rows that fit the width, with a
//! hanging indent so that a continuation row can never be taken for a new message line; colours
//! per nick (your own distinct); a mention of your nick or a direct message highlighted, and
//! whether it rings the bell.
//!
//! Pure: the time of day is given, and nothing is written; the reactor's `terminal` room writes
//! the rows above the prompt line. Must not decide what happened, only show it: the words are
//! those of line mode (`output.rs`), and every piece of peer text goes through
//! [`sanitize`] before it reaches a row.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::event::{Event, Speech, UNENCRYPTED_NOTE};
use crate::output::{clock_of, names_list};
use crate::safe::sanitize;

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

/// What is written after the time on a highlighted line (a mention, a direct message to you),
/// so that it stands out without colours too.
pub const MARK: &str = "!";

/// The widest hanging indent: the width of `HH:MM:SS `.
const INDENT: usize = 9;

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const REVERSE: &str = "\x1b[7m";
const RED: &str = "\x1b[31m";
/// Notices in the terminal's own colour (yellow, as in line mode, is hard to read on a light
/// background); the `-!-` sets them apart.
const NOTICE: &str = "";
/// Your own nick: bold without a colour, which no other nick gets.
const OWN: &str = BOLD;
/// Nick colours readable on dark and light backgrounds alike: no yellow, white or black.
const PALETTE: [&str; 12] = [
    "\x1b[31m",
    "\x1b[32m",
    // A brighter blue than 34, which is dim on many dark themes.
    "\x1b[38;5;33m",
    "\x1b[35m",
    "\x1b[36m",
    "\x1b[38;5;167m",
    "\x1b[38;5;71m",
    "\x1b[38;5;68m",
    "\x1b[38;5;134m",
    "\x1b[38;5;37m",
    "\x1b[38;5;166m",
    "\x1b[38;5;98m",
];

/// `event` as rows, stamped `time` (`HH:MM:SS`). Every event has at least one row; the first
/// starts with `time`, every other one with a hanging indent of spaces.
pub fn render(event: &Event, time: &str, style: &Style) -> Rendered {
    let (body, source) = body(event, style);
    // Said before it reached us: stamped with its own time.
    let own_time = match event {
        Event::Past(p) => Some(clock_of(p.at)),
        _ => None,
    };
    let time = own_time.as_deref().unwrap_or(time);
    let mut spans = vec![Span::new(DIM, time), Span::plain(" ")];
    if source == (Source::Other { highlight: true }) {
        spans.push(Span::new(REVERSE, MARK));
        spans.push(Span::plain(" "));
    }
    spans.extend(body);
    let width = style.width.max(1);
    let indent = hanging_indent(width);
    let rows = wrap(&cells(&spans), width, indent)
        .iter()
        .enumerate()
        .map(|(i, row)| paint_row(row, if i == 0 { 0 } else { indent }, style.colour))
        .collect();
    Rendered {
        rows,
        bell: rings(source, style.bell),
    }
}

/// Whose line an event is, which decides its highlight and its bell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Something the user said.
    Own,
    /// A message from someone else; `highlight` when it mentions the user or is a DM to them.
    Other { highlight: bool },
    /// A join, a leave, a notice, an answer: never rings.
    Notice,
}

fn rings(source: Source, bell: Bell) -> bool {
    match (source, bell) {
        (Source::Other { highlight }, Bell::Mention) => highlight,
        (Source::Other { .. }, Bell::All) => true,
        _ => false,
    }
}

/// The words after the time, as output.rs has them, painted; but notices (joins, leaves, nick
/// changes, answers) start with `-!-` instead of `*`, so that an action (`/me left (timed
/// out)`, always `* nick ...`) can never pass for one, even without colours.
fn body(event: &Event, style: &Style) -> (Vec<Span>, Source) {
    let notice = |paint, text: String| (vec![Span::new(paint, &text)], Source::Notice);
    match event {
        Event::Message { from, text } => other(from, Speech::Say, text, style),
        Event::Me { from, text } => other(from, Speech::Act, text, style),
        Event::Sent { speech, from, text } => (said(OWN, from, *speech, text, false), Source::Own),
        // History and late lines are dim as a whole, never highlighted nor rung: old news.
        Event::Past(p) => {
            let mut spans = said(DIM, &p.from, p.speech, &p.text, false);
            for s in &mut spans {
                s.paint = DIM;
            }
            spans.push(Span::plain(" "));
            spans.push(Span::new(DIM, &format!("({})", p.mark())));
            (spans, Source::Notice)
        }
        Event::Dm { from, to, text } => dm(from, to, text, style),
        Event::Nick { old, nick } => notice(
            NOTICE,
            format!("-!- {} is now known as {}", sanitize(old), sanitize(nick)),
        ),
        Event::Join {
            nick,
            addr,
            unencrypted,
        } => {
            let from = addr.as_deref().map(|a| format!(" from {}", sanitize(a)));
            let from = from.unwrap_or_default();
            let note = if *unencrypted {
                format!(" ({UNENCRYPTED_NOTE})")
            } else {
                String::new()
            };
            notice(NOTICE, format!("-!- {} joined{from}{note}", sanitize(nick)))
        }
        Event::Leave { nick, reason, .. } => notice(NOTICE, leave(nick, reason.as_deref())),
        Event::Names(names) => notice(
            DIM,
            format!("-!- {} here: {}", names.len(), names_list(names)),
        ),
        Event::Info(text) => notice(DIM, format!("-!- {}", sanitize(text))),
        Event::Error(text) => notice(RED, format!("-!- error: {}", sanitize(text))),
    }
}

/// A message from someone else, highlighted when it says the user's nick.
fn other(from: &str, speech: Speech, text: &str, style: &Style) -> (Vec<Span>, Source) {
    let highlight = mentions(&sanitize(text), style.me);
    let spans = said(nick_paint(from), from, speech, text, highlight);
    (spans, Source::Other { highlight })
}

/// `<nick> text` or `* nick text`, the nick in `paint`, the text reversed when `highlight`.
fn said(paint: &'static str, from: &str, speech: Speech, text: &str, highlight: bool) -> Vec<Span> {
    let from = sanitize(from);
    let who = match speech {
        Speech::Say => format!("<{from}>"),
        Speech::Act => format!("* {from}"),
    };
    vec![
        Span::new(paint, &who),
        Span::plain(" "),
        Span::new(if highlight { REVERSE } else { "" }, &sanitize(text)),
    ]
}

/// `[dm a -> b] text`. One the user sent is theirs; one to them is highlighted. A DM both from
/// and to the user's nick can only be from a namesake (the chat refuses a DM to yourself).
fn dm(from: &str, to: &str, text: &str, style: &Style) -> (Vec<Span>, Source) {
    let source = if to == style.me {
        Source::Other { highlight: true }
    } else if from == style.me {
        Source::Own
    } else {
        Source::Other { highlight: false }
    };
    let label = format!("[dm {} -> {}]", sanitize(from), sanitize(to));
    let highlight = source == (Source::Other { highlight: true });
    let spans = vec![
        Span::new(BOLD, &label),
        Span::plain(" "),
        Span::new(if highlight { REVERSE } else { "" }, &sanitize(text)),
    ];
    (spans, source)
}

/// `-!- nick timed out` when that is the reason, else `-!- nick left` and the reason if any.
fn leave(nick: &str, reason: Option<&str>) -> String {
    match reason {
        Some("timed out") => format!("-!- {} timed out", sanitize(nick)),
        Some(r) => format!("-!- {} left ({})", sanitize(nick), sanitize(r)),
        None => format!("-!- {} left", sanitize(nick)),
    }
}

/// A nick's colour: the same for the same nick in every run (a fixed hash, not std's seeded one).
fn nick_paint(nick: &str) -> &'static str {
    let h = nick
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    PALETTE[h as usize % PALETTE.len()]
}

/// True when `text` holds `me` as a whole word in any case: no letter, digit, `_` or `-`
/// right before or after it, so `ana` is in `hi ana!` but not in `banana`.
fn mentions(text: &str, me: &str) -> bool {
    let (hay, needle) = (text.to_lowercase(), me.to_lowercase());
    if needle.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut start = 0;
    while let Some(i) = hay[start..].find(&needle) {
        let at = start + i;
        let before = hay[..at].chars().next_back();
        let after = hay[at + needle.len()..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        // Next try one character further on: matches may overlap.
        start = at + hay[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// The indent of a continuation row: the width of `HH:MM:SS `, less on a narrow terminal so
/// that at least two columns are left for text (a wide character).
fn hanging_indent(width: usize) -> usize {
    (width / 3).min(INDENT)
}

/// Text in one look; `paint` is an escape code, or empty for none.
#[derive(Debug)]
struct Span {
    paint: &'static str,
    text: String,
}

impl Span {
    fn new(paint: &'static str, text: &str) -> Self {
        Span {
            paint,
            text: text.to_string(),
        }
    }

    fn plain(text: &str) -> Self {
        Span::new("", text)
    }
}

/// What takes columns on screen and is never split: a character with the zero-width marks
/// (combining accents, variation selectors) that follow it.
#[derive(Clone, Copy, Debug)]
struct Cell<'a> {
    text: &'a str,
    width: usize,
    paint: &'static str,
}

impl Cell<'_> {
    fn is_space(&self) -> bool {
        self.text == " "
    }
}

fn cells(spans: &[Span]) -> Vec<Cell<'_>> {
    let mut out: Vec<Cell> = Vec::new();
    for span in spans {
        let mut start = None;
        for (i, c) in span.text.char_indices() {
            if c.width().unwrap_or(0) > 0 {
                if let Some(s) = start {
                    out.push(cell(&span.text[s..i], span.paint));
                }
                start = Some(i);
            } else if start.is_none() {
                // A mark with nothing before it in this span stands alone.
                start = Some(i);
            }
        }
        if let Some(s) = start {
            out.push(cell(&span.text[s..], span.paint));
        }
    }
    out
}

fn cell<'a>(text: &'a str, paint: &'static str) -> Cell<'a> {
    Cell {
        text,
        width: text.width(),
        paint,
    }
}

/// Cells cut into rows: the first `width` columns wide, the others `width - indent`. Breaks at
/// spaces (dropping them), inside a word only when it is wider than a whole row.
fn wrap<'a>(cells: &[Cell<'a>], width: usize, indent: usize) -> Vec<Vec<Cell<'a>>> {
    let mut rows = Rows {
        rows: vec![Vec::new()],
        used: 0,
        room: width,
        next_room: width - indent,
    };
    let mut rest = cells;
    while !rest.is_empty() {
        let gap = rest.iter().take_while(|c| c.is_space()).count();
        let word = rest[gap..].iter().take_while(|c| !c.is_space()).count();
        rows.place(&rest[..gap], &rest[gap..gap + word]);
        rest = &rest[gap + word..];
    }
    rows.rows
}

/// Rows being filled.
struct Rows<'a> {
    rows: Vec<Vec<Cell<'a>>>,
    /// Columns taken on the last row.
    used: usize,
    /// Columns on the last row.
    room: usize,
    /// Columns on a continuation row.
    next_room: usize,
}

impl<'a> Rows<'a> {
    /// One word and the spaces before it.
    fn place(&mut self, gap: &[Cell<'a>], word: &[Cell<'a>]) {
        // Spaces that begin a row are dropped: on a continuation row the indent alone starts it.
        let fresh = self.rows.last().is_none_or(Vec::is_empty);
        let gap = if fresh { &[] } else { gap };
        let (gap_w, word_w) = (columns(gap), columns(word));
        if word.is_empty() {
            return; // Spaces at the end of the line show nothing.
        }
        if self.used + gap_w + word_w <= self.room {
            self.extend(gap);
            self.extend(word);
        } else if word_w <= self.next_room {
            self.break_row();
            self.extend(word);
        } else {
            // Wider than any row: cut it, starting here when a column is left.
            if self.used + gap_w < self.room {
                self.extend(gap);
            } else {
                self.break_row();
            }
            for &c in word {
                if self.used + c.width > self.room && self.used > 0 {
                    self.break_row();
                }
                self.extend(&[c]);
            }
        }
    }

    fn extend(&mut self, cells: &[Cell<'a>]) {
        self.used += columns(cells);
        if let Some(row) = self.rows.last_mut() {
            row.extend_from_slice(cells);
        }
    }

    fn break_row(&mut self) {
        if let Some(row) = self.rows.last_mut() {
            while row.last().is_some_and(Cell::is_space) {
                row.pop();
            }
        }
        self.rows.push(Vec::new());
        self.used = 0;
        self.room = self.next_room;
    }
}

fn columns(cells: &[Cell]) -> usize {
    cells.iter().map(|c| c.width).sum()
}

/// One row as text: the indent, then each run of cells in its paint, reset before the row ends
/// so that no colour bleeds into the next row or the prompt.
fn paint_row(cells: &[Cell], indent: usize, colour: bool) -> String {
    let mut row = " ".repeat(indent);
    let mut current = "";
    for c in cells {
        let paint = if colour { c.paint } else { "" };
        if paint != current {
            if !current.is_empty() {
                row.push_str(RESET);
            }
            row.push_str(paint);
            current = paint;
        }
        row.push_str(c.text);
    }
    if !current.is_empty() {
        row.push_str(RESET);
    }
    row
}

#[cfg(test)]
mod tests;
