//! The prompt line's editor: what the user is typing, the cursor, the lines sent this session
//! (Up/Down), completion of nicks and commands (Tab), and the part of a long line shown at a
//! given width.
//!
//! Pure: must not write to the terminal; the reactor's `terminal` room draws [`View`]s.

use super::keys::Key;

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
#[derive(Debug)]
pub struct Editor {
    line: String,
    commands: &'static [&'static str],
}

impl Editor {
    /// `commands` are what Tab completes after a `/` at the start of the line.
    pub fn new(commands: &'static [&'static str]) -> Self {
        Editor {
            line: String::new(),
            commands,
        }
    }

    /// Carries out `key`. `nicks` is asked for the nicks present only when Tab needs them.
    /// What the key did beyond editing is appended to `edits`.
    pub fn handle(&mut self, key: Key, nicks: &dyn Fn() -> Vec<String>, edits: &mut Vec<Edit>) {
        let _ = (nicks, self.commands);
        match key {
            Key::Char(c) => self.line.push(c),
            Key::Enter => edits.push(Edit::Submit(std::mem::take(&mut self.line))),
            Key::Ctrl('d') if self.line.is_empty() => edits.push(Edit::Leave),
            _ => {}
        }
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// What to draw on the prompt line, `width` columns wide, after `prompt`.
    pub fn view(&mut self, prompt: &str, width: usize) -> View {
        let _ = width;
        let text = format!("{prompt}{}", self.line);
        let cursor = text.chars().count();
        View { text, cursor }
    }
}
