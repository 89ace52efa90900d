//! The key decoder: bytes read from a terminal in raw mode become [`Key`]s. A UTF-8 character or
//! an escape sequence cut between two reads is kept until the rest arrives.
//!
//! Pure: must not read the terminal or the clock.

/// One key press (or one bracketed paste) as the editor needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// Printable text (a space included).
    Char(char),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    Tab,
    /// Ctrl with a letter not named above, in lower case (`Ctrl('a')` for Ctrl-A).
    Ctrl(char),
    /// Alt (or Esc then) a key, in lower case (`Alt('b')` for Alt-B).
    Alt(char),
    /// Everything between `ESC [200~` and `ESC [201~`, with line ends as `\n`.
    Paste(String),
    /// A sequence peerchat does not use: ignored.
    Unknown,
}

/// Turns bytes into keys, keeping an unfinished character or sequence for the next read.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Appends to `keys` the keys in `bytes` (after what was kept from the last call).
    pub fn feed(&mut self, bytes: &[u8], keys: &mut Vec<Key>) {
        self.pending.extend_from_slice(bytes);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        for c in text.chars() {
            keys.push(match c {
                '\r' | '\n' => Key::Enter,
                '\x7f' => Key::Backspace,
                c => Key::Char(c),
            });
        }
    }
}
