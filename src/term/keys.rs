//! The key decoder: bytes read from a terminal in raw mode (xterm, VTE, tmux, screen, the Linux
//! console, vt100) become [`Key`]s. A UTF-8 character, an escape sequence or a bracketed paste cut
//! between two reads is kept until the rest arrives; what is kept is bounded, so a broken or
//! hostile stream cannot grow memory.
//!
//! Pure: must not read the terminal or the clock, and must not panic on any bytes.

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
    /// Ctrl-Left or Alt-Left: a word back.
    WordLeft,
    /// Ctrl-Right or Alt-Right: a word on.
    WordRight,
    /// Alt-Backspace (Esc then DEL): rub out the word before the cursor.
    AltBackspace,
}

/// The longest escape sequence kept between reads; a longer one is dropped as one `Unknown`.
const MAX_SEQUENCE: usize = 32;
/// The most of one bracketed paste kept; the rest is dropped, the paste still ends at its marker.
pub const MAX_PASTE: usize = 1 << 20;

const ESC: u8 = 0x1b;
const PASTE_END: &[u8] = b"\x1b[201~";

/// Where the decoder is between two bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After `ESC [`: parameters and intermediates are in `seq`.
    Csi,
    /// After `ESC O`: parameters are in `seq`.
    Ss3,
    /// A sequence grew past [`MAX_SEQUENCE`]: its bytes are skipped up to its final byte.
    CsiSkip,
    /// After `ESC [ [` (the Linux console's F1-F5): one byte more.
    LinuxFunction,
    /// Inside a bracketed paste; `matched` bytes of its end marker have been seen.
    Paste { matched: usize },
}

/// Turns bytes into keys, keeping an unfinished character or sequence for the next read.
///
/// A `\r\n` pair is one Enter even when split between reads, so a `\n` right after a `\r`
/// (Ctrl-J typed just after Enter, in practice never) is swallowed. A lone ESC at the end of a
/// read is kept: it may start a sequence whose rest comes with the next read.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    /// The parameter and intermediate bytes of the sequence being read.
    seq: Vec<u8>,
    /// The bytes of an unfinished UTF-8 character.
    utf8: Vec<u8>,
    /// How many bytes `utf8` needs in all.
    utf8_len: usize,
    paste: Vec<u8>,
    after_cr: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Appends to `keys` the keys in `bytes` (after what was kept from the last call).
    pub fn feed(&mut self, bytes: &[u8], keys: &mut Vec<Key>) {
        for &byte in bytes {
            self.handle_byte(byte, keys);
        }
    }

    fn handle_byte(&mut self, byte: u8, keys: &mut Vec<Key>) {
        let after_cr = std::mem::take(&mut self.after_cr);
        match self.state {
            State::Ground if after_cr && byte == b'\n' => {}
            State::Ground => self.handle_ground(byte, keys),
            State::Escape => self.handle_escape(byte, keys),
            State::Csi => self.handle_csi(byte, keys),
            State::Ss3 => self.handle_ss3(byte, keys),
            State::CsiSkip => self.handle_csi_skip(byte, keys),
            State::LinuxFunction if (0x40..=0x7e).contains(&byte) => {
                self.state = State::Ground;
                keys.push(Key::Unknown);
            }
            State::LinuxFunction => self.abort_sequence(byte, keys),
            State::Paste { matched } => self.handle_paste(byte, matched, keys),
        }
    }

    fn handle_ground(&mut self, byte: u8, keys: &mut Vec<Key>) {
        if !self.utf8.is_empty() {
            if (0x80..0xc0).contains(&byte) {
                self.utf8.push(byte);
                if self.utf8.len() == self.utf8_len {
                    let c = std::str::from_utf8(&self.utf8)
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    self.utf8.clear();
                    keys.push(Key::Char(c));
                }
                return;
            }
            // The character was cut short: it is invalid, and this byte starts afresh.
            self.utf8.clear();
            keys.push(Key::Char(char::REPLACEMENT_CHARACTER));
        }
        match byte {
            ESC => self.state = State::Escape,
            b'\r' => {
                self.after_cr = true;
                keys.push(Key::Enter);
            }
            0x00..=0x1f | 0x7f => keys.push(control(byte)),
            0x20..=0x7e => keys.push(Key::Char(char::from(byte))),
            _ => self.start_utf8(byte, keys),
        }
    }

    fn start_utf8(&mut self, byte: u8, keys: &mut Vec<Key>) {
        self.utf8_len = match byte {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => {
                keys.push(Key::Char(char::REPLACEMENT_CHARACTER));
                return;
            }
        };
        self.utf8.push(byte);
    }

    fn handle_escape(&mut self, byte: u8, keys: &mut Vec<Key>) {
        self.state = State::Ground;
        match byte {
            b'[' => self.start_sequence(State::Csi),
            b'O' => self.start_sequence(State::Ss3),
            ESC => {
                keys.push(Key::Unknown);
                self.state = State::Escape;
            }
            0x7f | 0x08 => keys.push(Key::AltBackspace),
            0x20..=0x7e => keys.push(Key::Alt(char::from(byte).to_ascii_lowercase())),
            _ => {
                // Esc, then a key that has no Alt form here: the key still counts.
                keys.push(Key::Unknown);
                self.handle_ground(byte, keys);
            }
        }
    }

    fn start_sequence(&mut self, state: State) {
        self.seq.clear();
        self.state = state;
    }

    fn handle_csi(&mut self, byte: u8, keys: &mut Vec<Key>) {
        match byte {
            0x20..=0x3f if self.seq.len() >= MAX_SEQUENCE => {
                keys.push(Key::Unknown);
                self.state = State::CsiSkip;
            }
            0x20..=0x3f => self.seq.push(byte),
            b'[' if self.seq.is_empty() => self.state = State::LinuxFunction,
            0x40..=0x7e => {
                self.state = State::Ground;
                if self.seq == b"200" && byte == b'~' {
                    self.paste.clear();
                    self.state = State::Paste { matched: 0 };
                } else {
                    keys.push(csi_key(&self.seq, byte));
                }
            }
            _ => self.abort_sequence(byte, keys),
        }
    }

    fn handle_ss3(&mut self, byte: u8, keys: &mut Vec<Key>) {
        match byte {
            0x30..=0x3f if self.seq.len() >= MAX_SEQUENCE => {
                keys.push(Key::Unknown);
                self.state = State::CsiSkip;
            }
            0x30..=0x3f => self.seq.push(byte),
            0x40..=0x7e => {
                self.state = State::Ground;
                keys.push(ss3_key(byte));
            }
            _ => self.abort_sequence(byte, keys),
        }
    }

    fn handle_csi_skip(&mut self, byte: u8, keys: &mut Vec<Key>) {
        match byte {
            0x20..=0x3f => {}
            0x40..=0x7e => self.state = State::Ground,
            _ => {
                self.state = State::Ground;
                self.handle_ground(byte, keys);
            }
        }
    }

    /// A byte that cannot be in a sequence ends it unfinished; the byte itself still counts.
    fn abort_sequence(&mut self, byte: u8, keys: &mut Vec<Key>) {
        self.state = State::Ground;
        keys.push(Key::Unknown);
        self.handle_ground(byte, keys);
    }

    fn handle_paste(&mut self, byte: u8, matched: usize, keys: &mut Vec<Key>) {
        if PASTE_END.get(matched) == Some(&byte) {
            if matched + 1 == PASTE_END.len() {
                self.state = State::Ground;
                let text = clean_paste(&self.paste);
                self.paste = Vec::new();
                keys.push(Key::Paste(text));
            } else {
                self.state = State::Paste {
                    matched: matched + 1,
                };
            }
            return;
        }
        // Part of the marker that turned out not to be one is text (only its first byte is ESC).
        self.keep_pasted(&PASTE_END[..matched]);
        let matched = usize::from(byte == ESC);
        if matched == 0 {
            self.keep_pasted(&[byte]);
        }
        self.state = State::Paste { matched };
    }

    fn keep_pasted(&mut self, bytes: &[u8]) {
        let room = MAX_PASTE.saturating_sub(self.paste.len());
        self.paste
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// A C0 control byte (or DEL) as a key.
fn control(byte: u8) -> Key {
    match byte {
        b'\n' => Key::Enter,
        b'\t' => Key::Tab,
        0x08 | 0x7f => Key::Backspace,
        0x01..=0x1a => Key::Ctrl(char::from(byte + 0x60)),
        _ => Key::Ctrl(char::from(byte.wrapping_add(0x40) & 0x7f)),
    }
}

/// A complete CSI sequence: `params` between `ESC [` and the `last` byte.
fn csi_key(params: &[u8], last: u8) -> Key {
    let Some((first, modifier)) = numbers(params) else {
        return Key::Unknown;
    };
    let word_move = matches!(modifier, Some(3 | 5));
    match (last, first) {
        (b'A', _) => Key::Up,
        (b'B', _) => Key::Down,
        (b'C', _) if word_move => Key::WordRight,
        (b'D', _) if word_move => Key::WordLeft,
        (b'C', _) => Key::Right,
        (b'D', _) => Key::Left,
        (b'H', _) | (b'~', Some(1 | 7)) => Key::Home,
        (b'F', _) | (b'~', Some(4 | 8)) => Key::End,
        (b'~', Some(3)) => Key::Delete,
        _ => Key::Unknown,
    }
}

/// The first number and the modifier of `1;5`-style parameters; `None` for anything else (a
/// private marker such as `?` or `<`, an intermediate byte).
fn numbers(params: &[u8]) -> Option<(Option<u32>, Option<u32>)> {
    let text = std::str::from_utf8(params).ok()?;
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b';') {
        return None;
    }
    let mut fields = text.split(';');
    let first = fields.next().and_then(|f| f.parse().ok());
    let modifier = fields.next().and_then(|f| f.parse().ok());
    Some((first, modifier))
}

/// A complete SS3 sequence (`ESC O` and `last`); rxvt sends `ESC O c`/`d` for Ctrl-Right/Left.
fn ss3_key(last: u8) -> Key {
    match last {
        b'A' => Key::Up,
        b'B' => Key::Down,
        b'C' => Key::Right,
        b'D' => Key::Left,
        b'H' => Key::Home,
        b'F' => Key::End,
        b'M' => Key::Enter,
        b'c' => Key::WordRight,
        b'd' => Key::WordLeft,
        _ => Key::Unknown,
    }
}

/// Pasted bytes as text: line ends as `\n`, no control characters but `\n` and `\t`.
fn clean_paste(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests;
