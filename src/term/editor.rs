//! The prompt line's editor: what the user is typing, the cursor, the lines sent this session
//! (Up/Down), completion of nicks and commands (Tab), and the part of a long line shown at a
//! given width.
//!
//! The cursor moves by characters, a character and the zero-width marks after it (combining
//! accents, joiners, variation selectors) counting as one; display widths are `unicode-width`'s.
//! Words, for Ctrl-W, Alt-B/F/D and Alt-Backspace, are runs of non-whitespace.
//!
//! Pure: must not write to the terminal; the reactor's `terminal` room draws [`View`]s.

use std::collections::VecDeque;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::keys::Key;

/// The longest line kept, in bytes: keys that would make it longer are ignored (the chat splits
/// long lines itself; this only bounds memory).
pub const MAX_LINE: usize = 64 * 1024;
/// How many sent lines Up/Down go back through.
pub const MAX_HISTORY: usize = 500;

/// What a key did, beyond changing the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// A line to hand to the chat (Enter, or each line of a paste), in order.
    Submit(String),
    /// Ctrl-D on an empty line: the user leaves.
    Leave,
    /// Ctrl-L: draw the whole screen again.
    Redraw,
}

/// The visible part of the prompt line at some width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The prompt and the visible part of the line, at most `width - 1` columns wide.
    pub text: String,
    /// The cursor's column (0-based) within `text`.
    pub cursor: usize,
}

/// The line being typed, and the session's history.
///
/// Tab completes the word before the cursor: at the start of the line a word starting with `/`
/// from the commands (adding a space), the first word as a nick (adding `: `), a later word as a
/// nick (adding a space). Matching is a case-insensitive prefix. One match is put in whole;
/// several extend the word to their longest common prefix; a Tab that cannot extend the word
/// puts in the first match (in case-insensitive order) and each further Tab the next one, round
/// and round, until another key is pressed.
#[derive(Debug)]
pub struct Editor {
    line: String,
    /// A byte offset into `line`, on a character boundary.
    cursor: usize,
    commands: &'static [&'static str],
    history: History,
    /// Set while Tabs in a row go through several matches.
    cycle: Option<Cycle>,
    /// The last text Ctrl-U/K/W or Alt-D/Backspace removed, for Ctrl-Y.
    killed: String,
    /// The display column of the line at the window's left edge, when the line is too wide.
    scroll: usize,
}

/// The lines sent this session, and where Up/Down are among them.
#[derive(Debug, Default)]
struct History {
    lines: VecDeque<String>,
    /// The index of the line shown, while going through them.
    at: Option<usize>,
    /// The half-typed line that Up left, which Down past the newest line brings back.
    draft: String,
}

/// Tab going round several matches.
#[derive(Debug)]
struct Cycle {
    /// Where the completed word starts; it ends at the cursor.
    start: usize,
    matches: Vec<String>,
    suffix: &'static str,
    next: usize,
}

impl Editor {
    /// `commands` are what Tab completes after a `/` at the start of the line.
    pub fn new(commands: &'static [&'static str]) -> Self {
        Editor {
            line: String::new(),
            cursor: 0,
            commands,
            history: History::default(),
            cycle: None,
            killed: String::new(),
            scroll: 0,
        }
    }

    /// Carries out `key`. `nicks` is asked for the nicks present only when Tab needs them.
    /// What the key did beyond editing is appended to `edits`.
    pub fn handle(&mut self, key: Key, nicks: &dyn Fn() -> Vec<String>, edits: &mut Vec<Edit>) {
        let cycle = self.cycle.take();
        match key {
            Key::Char(c) if !c.is_control() => self.insert(c.encode_utf8(&mut [0; 4])),
            Key::Enter => self.submit_line(edits),
            Key::Tab => self.complete(cycle, nicks),
            Key::Paste(text) => self.paste(&text, edits),
            Key::Ctrl('d') if self.line.is_empty() => edits.push(Edit::Leave),
            Key::Ctrl('l') => edits.push(Edit::Redraw),
            Key::Up | Key::Ctrl('p') => self.history_back(),
            Key::Down | Key::Ctrl('n') => self.history_forward(),
            Key::Ctrl('y') => self.insert(&self.killed.clone()),
            key => self.handle_motion(key),
        }
    }

    /// The keys that move the cursor or remove text.
    fn handle_motion(&mut self, key: Key) {
        let (line, at) = (self.line.as_str(), self.cursor);
        match key {
            Key::Backspace => self.remove(prev_boundary(line, at), at),
            Key::Delete | Key::Ctrl('d') => self.remove(at, next_boundary(line, at)),
            Key::Left | Key::Ctrl('b') => self.cursor = prev_boundary(line, at),
            Key::Right | Key::Ctrl('f') => self.cursor = next_boundary(line, at),
            Key::Home | Key::Ctrl('a') => self.cursor = 0,
            Key::End | Key::Ctrl('e') => self.cursor = line.len(),
            Key::WordLeft | Key::Alt('b') => self.cursor = word_start(line, at),
            Key::WordRight | Key::Alt('f') => self.cursor = word_end(line, at),
            Key::Ctrl('u') => self.kill(0, at),
            Key::Ctrl('k') => self.kill(at, line.len()),
            Key::Ctrl('w') | Key::AltBackspace => self.kill(word_start(line, at), at),
            Key::Alt('d') => self.kill(at, word_end(line, at)),
            _ => {}
        }
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The lines sent this session that Up goes back through, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.lines.iter().map(String::as_str)
    }

    /// Puts `text` at the cursor, unless the line would grow past [`MAX_LINE`].
    fn insert(&mut self, text: &str) {
        if self.line.len() + text.len() <= MAX_LINE {
            self.line.insert_str(self.cursor, text);
            self.cursor += text.len();
        }
    }

    /// Removes `from..to` (byte offsets on character boundaries), the cursor ending at `from`.
    fn remove(&mut self, from: usize, to: usize) {
        self.line.replace_range(from..to, "");
        self.cursor = from;
    }

    /// Removes `from..to` and keeps it for Ctrl-Y.
    fn kill(&mut self, from: usize, to: usize) {
        if from < to {
            self.killed = self.line[from..to].to_string();
            self.remove(from, to);
        }
    }

    fn submit_line(&mut self, edits: &mut Vec<Edit>) {
        let line = std::mem::take(&mut self.line);
        self.cursor = 0;
        self.submit(line, edits);
    }

    /// Hands `line` to the chat and keeps it for Up.
    fn submit(&mut self, line: String, edits: &mut Vec<Edit>) {
        self.history.record(&line);
        self.scroll = 0;
        edits.push(Edit::Submit(line));
    }

    /// The pasted text goes in at the cursor; then every complete line is submitted in order,
    /// and what follows the last line end stays, the cursor after the pasted part.
    fn paste(&mut self, text: &str, edits: &mut Vec<Edit>) {
        let text: String = text
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|&c| c == '\n' || !c.is_control())
            .collect();
        let after = self.line.split_off(self.cursor);
        let mut pieces = text.split('\n');
        let last = pieces.next_back().unwrap_or_default();
        for piece in pieces {
            let mut line = std::mem::take(&mut self.line);
            line.push_str(piece);
            self.submit(line, edits);
        }
        let room = MAX_LINE.saturating_sub(self.line.len() + after.len());
        self.line.push_str(cut_to_bytes(last, room));
        self.cursor = self.line.len();
        self.line.push_str(&after);
    }

    fn history_back(&mut self) {
        let lines = &self.history.lines;
        let at = match self.history.at {
            None if lines.is_empty() => return,
            None => {
                self.history.draft = std::mem::take(&mut self.line);
                lines.len() - 1
            }
            Some(0) => return,
            Some(at) => at - 1,
        };
        self.show_history(Some(at));
    }

    fn history_forward(&mut self) {
        match self.history.at {
            None => {}
            Some(at) if at + 1 < self.history.lines.len() => self.show_history(Some(at + 1)),
            Some(_) => self.show_history(None),
        }
    }

    /// Shows the sent line `at`, or the draft for `None`; edits to the line shown before are
    /// dropped (a recalled line edited and sent is sent as edited).
    fn show_history(&mut self, at: Option<usize>) {
        self.history.at = at;
        self.line = match at.and_then(|at| self.history.lines.get(at)) {
            Some(line) => line.clone(),
            None => std::mem::take(&mut self.history.draft),
        };
        self.cursor = self.line.len();
    }

    /// Tab: see [`Editor`] for what it completes and how.
    fn complete(&mut self, cycle: Option<Cycle>, nicks: &dyn Fn() -> Vec<String>) {
        if let Some(cycle) = cycle {
            return self.next_match(cycle);
        }
        let start = after_last_space(&self.line[..self.cursor]);
        let word = &self.line[start..self.cursor];
        let (candidates, suffix) = match (start, word.starts_with('/')) {
            (0, true) => (self.commands.iter().map(|c| c.to_string()).collect(), " "),
            (0, false) => (nicks(), ": "),
            _ => (nicks(), " "),
        };
        let matches = matching(word, candidates);
        let common = common_prefix(&matches);
        match matches.first() {
            None => {}
            // Several that share more than the word: the word grows to what they share.
            Some(first) if matches.len() > 1 && common > word.chars().count() => {
                let prefix: String = first.chars().take(common).collect();
                self.replace_word(start, &prefix);
            }
            // One match, or several sharing no more: a cycle (of one, so that Tab again puts
            // the same match back instead of completing a new, empty word after it).
            Some(_) => self.next_match(Cycle {
                start,
                matches,
                suffix,
                next: 0,
            }),
        }
    }

    /// Puts the cycle's next match in place of the word, and keeps going round.
    fn next_match(&mut self, mut cycle: Cycle) {
        let Some(found) = cycle.matches.get(cycle.next) else {
            return;
        };
        let text = format!("{found}{}", cycle.suffix);
        self.replace_word(cycle.start, &text);
        cycle.next = (cycle.next + 1) % cycle.matches.len();
        self.cycle = Some(cycle);
    }

    /// Replaces `start..cursor` with `text`, unless the line would grow past [`MAX_LINE`].
    fn replace_word(&mut self, start: usize, text: &str) {
        if self.line.len() - (self.cursor - start) + text.len() <= MAX_LINE {
            self.line.replace_range(start..self.cursor, text);
            self.cursor = start + text.len();
        }
    }

    /// What to draw on the prompt line, `width` columns wide, after `prompt`.
    ///
    /// At most `width - 1` columns are used, so the terminal never wraps the prompt line. A line
    /// too wide for the room left scrolls: when the cursor leaves the window, the window moves by
    /// a third of its width, and it never starts or ends inside a wide character. A prompt wider
    /// than the width is cut; control characters in it are left out.
    pub fn view(&mut self, prompt: &str, width: usize) -> View {
        let room = width.saturating_sub(1);
        let prompt: String = prompt.chars().filter(|c| !c.is_control()).collect();
        let cells = cells(&prompt);
        let shown = cells.iter().take_while(|c| c.col + c.width <= room).count();
        let prompt_end = cells.get(shown).map_or(prompt.len(), |c| c.start);
        let mut text = prompt[..prompt_end].to_string();
        let prompt_width = cells.get(shown).map_or_else(|| width_of(&cells), |c| c.col);
        let room = room - prompt_width;
        let cursor = prompt_width + self.visible(room, &mut text);
        View { text, cursor }
    }

    /// Appends to `text` the part of the line in a window `room` columns wide, moving the window
    /// to keep the cursor in it; returns the cursor's column in the window.
    fn visible(&mut self, room: usize, text: &mut String) -> usize {
        let cells = cells(&self.line);
        let total = width_of(&cells);
        let under = cells.iter().find(|c| c.end > self.cursor);
        let col = under.map_or(total, |c| c.col);
        let under_width = under.map_or(1, |c| c.width.max(1));
        let third = (room / 3).max(1);
        if total < room {
            self.scroll = 0;
        } else if col < self.scroll {
            self.scroll = col.saturating_sub(third);
        }
        if col + under_width > self.scroll + room {
            self.scroll = (col + under_width + third).saturating_sub(room).min(col);
        }
        // Snapped to a character's left edge, so no wide character is cut at the left.
        self.scroll = cells
            .iter()
            .map(|c| c.col)
            .find(|&c| c >= self.scroll)
            .unwrap_or(total)
            .min(col);
        let window = cells
            .iter()
            .skip_while(|c| c.col < self.scroll)
            .take_while(|c| c.col + c.width <= self.scroll + room);
        if let (Some(first), Some(last)) = (window.clone().next(), window.last()) {
            text.push_str(&self.line[first.start..last.end]);
        }
        (col - self.scroll).min(room)
    }
}

impl History {
    /// Keeps a sent line for Up: not a blank one, not the same as the one before, not one
    /// longer than [`MAX_LINE`], and no more than [`MAX_HISTORY`].
    fn record(&mut self, line: &str) {
        self.at = None;
        self.draft.clear();
        let repeated = self.lines.back().is_some_and(|last| last == line);
        if line.trim().is_empty() || repeated || line.len() > MAX_LINE {
            return;
        }
        if self.lines.len() == MAX_HISTORY {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
    }
}

/// A character with the zero-width marks after it: what the cursor steps over and the window
/// shows or hides as a whole.
#[derive(Clone, Copy, Debug)]
struct Cell {
    start: usize,
    end: usize,
    /// The display column where it starts.
    col: usize,
    width: usize,
}

fn is_mark(c: char) -> bool {
    c.width() == Some(0) && !c.is_control()
}

/// `text` as cells.
fn cells(text: &str) -> Vec<Cell> {
    let mut cells: Vec<Cell> = Vec::new();
    for (i, c) in text.char_indices() {
        match cells.last_mut() {
            Some(cell) if is_mark(c) => cell.end = i + c.len_utf8(),
            _ => cells.push(Cell {
                start: i,
                end: i + c.len_utf8(),
                col: 0,
                width: 0,
            }),
        }
    }
    let mut col = 0;
    for cell in &mut cells {
        cell.col = col;
        cell.width = text[cell.start..cell.end].width();
        col += cell.width;
    }
    cells
}

/// The cell boundary after the one at `at`.
fn next_boundary(text: &str, at: usize) -> usize {
    let mut chars = text[at..].char_indices();
    if chars.next().is_none() {
        return at;
    }
    chars
        .find(|&(_, c)| !is_mark(c))
        .map_or(text.len(), |(i, _)| at + i)
}

/// The cell boundary before `at`.
fn prev_boundary(text: &str, at: usize) -> usize {
    let mut i = at;
    for c in text[..at].chars().rev() {
        i -= c.len_utf8();
        if !is_mark(c) {
            break;
        }
    }
    i
}

/// How wide `cells` are.
fn width_of(cells: &[Cell]) -> usize {
    cells.last().map_or(0, |c| c.col + c.width)
}

/// The start of the word before `at` (whitespace before `at` skipped first).
fn word_start(text: &str, at: usize) -> usize {
    after_last_space(text[..at].trim_end())
}

/// Where the last run of non-whitespace in `text` starts (`text.len()` after a space).
fn after_last_space(text: &str) -> usize {
    text.char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// The end of the word after `at` (whitespace after `at` skipped first).
fn word_end(text: &str, at: usize) -> usize {
    let after = text[at..].trim_start();
    let skipped = text.len() - at - after.len();
    at + skipped + after.find(char::is_whitespace).unwrap_or(after.len())
}

/// The candidates that start with `word` (any case), once each, in case-insensitive order.
fn matching(word: &str, candidates: Vec<String>) -> Vec<String> {
    let word = word.to_lowercase();
    let mut matches: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&word))
        .collect();
    matches.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
    matches.dedup();
    matches
}

/// How many characters all `matches` start with (any case).
fn common_prefix(matches: &[String]) -> usize {
    let Some((first, rest)) = matches.split_first() else {
        return 0;
    };
    let same = |a: char, b: char| a.to_lowercase().eq(b.to_lowercase());
    rest.iter().fold(first.chars().count(), |common, other| {
        first
            .chars()
            .zip(other.chars())
            .take(common)
            .take_while(|&(a, b)| same(a, b))
            .count()
    })
}

/// The longest start of `text` at most `max` bytes long that ends on a character boundary.
fn cut_to_bytes(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests;
