//! The key decoder: bytes read from a terminal in raw mode (xterm, VTE, tmux, screen, the Linux
//! console, vt100) become [`Key`]s. A UTF-8 character, an escape sequence or a bracketed paste cut
//! between two reads is kept until the rest arrives; what is kept is bounded, so a broken or
//! hostile stream cannot grow memory. A long paste is handed on in pieces that end at line ends.
//!
//! Pure: must not read the terminal or the clock, and must not panic on any bytes. Whether a kept
//! ESC was Esc pressed alone depends on time, so the caller decides when to [`Decoder::flush`].

/// One key press (or a bracketed paste, or a piece of a long one) as the editor needs it.
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
    /// Text between `ESC [200~` and `ESC [201~`, with line ends as `\n`: the whole paste, or
    /// for a long one each piece in order, every piece but the last ending with `\n`.
    Paste(String),
    /// A pasted line of [`MAX_PASTE`] bytes or more (its line end not counted) was dropped whole,
    /// with its line end; holds how many bytes it had. The rest of the paste goes on.
    PasteCut(usize),
    /// Esc pressed alone: an ESC that nothing followed before [`Decoder::flush`].
    Escape,
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
/// A paste is handed on as soon as this many bytes of it are kept and they hold a line end.
pub const PASTE_PIECE: usize = 64 * 1024;
/// A pasted line this long or longer (in bytes, its line end not counted) is dropped whole (see
/// [`Key::PasteCut`]); what a paste keeps stays within this and its line end.
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

/// Whether a pasted line too long to keep is being skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Overlong {
    #[default]
    No,
    /// This many bytes of the line were skipped so far.
    Skipping(usize),
    /// The line of this many bytes ended at a `\r`: a `\n` right after it is part of its end.
    EndedAtCr(usize),
}

/// Turns bytes into keys, keeping an unfinished character or sequence for the next read.
///
/// A `\r\n` pair is one Enter even when split between reads, so a `\n` right after a `\r`
/// (Ctrl-J typed just after Enter, in practice never) is swallowed. An ESC at the end of a read,
/// or an escape sequence cut short there, is kept: its rest may come with the next read. Only
/// the caller knows that nothing came for a while (then it calls [`Decoder::flush`]).
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    /// The parameter and intermediate bytes of the sequence being read.
    seq: Vec<u8>,
    /// The bytes of an unfinished UTF-8 character.
    utf8: Vec<u8>,
    /// How many bytes `utf8` needs in all.
    utf8_len: usize,
    /// The bytes of a paste not handed on yet.
    paste: Vec<u8>,
    /// Where the last complete line in `paste` ends (after its line end).
    paste_line_end: Option<usize>,
    overlong: Overlong,
    after_cr: bool,
}

impl Decoder {
    /// A decoder with nothing kept.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Appends to `keys` the keys in `bytes` (after what was kept from the last call).
    pub fn feed(&mut self, bytes: &[u8], keys: &mut Vec<Key>) {
        for &byte in bytes {
            self.handle_byte(byte, keys);
        }
    }

    /// Whether bytes of an unfinished escape sequence are kept: a lone ESC, `ESC [` or `ESC O`
    /// with or without parameters, the Linux console's `ESC [ [`, or the rest of a too long
    /// sequence being skipped. Never inside a bracketed paste (its end marker may be cut between
    /// reads for any time). The caller calls [`Decoder::flush`] once nothing more came for a
    /// while (~50 ms): a terminal writes a whole sequence at once, a person types slower.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self.state,
            State::Escape | State::Csi | State::Ss3 | State::LinuxFunction | State::CsiSkip
        )
    }

    /// Ends the unfinished escape sequence kept, as keys typed by a person: a lone ESC is
    /// [`Key::Escape`]; `ESC [`, `ESC O` and `ESC [ [` are Escape and then those characters; a
    /// sequence cut after its parameters (`ESC [ 1 ;`) is one [`Key::Unknown`]; a too long one
    /// being skipped adds nothing more. Does nothing when [`Decoder::is_waiting`] is false.
    pub fn flush(&mut self, keys: &mut Vec<Key>) {
        let typed: &[char] = match self.state {
            State::Ground | State::Paste { .. } => return,
            State::Csi | State::Ss3 if !self.seq.is_empty() => {
                keys.push(Key::Unknown);
                &[]
            }
            State::CsiSkip => &[],
            State::Escape => {
                keys.push(Key::Escape);
                &[]
            }
            State::Csi => {
                keys.push(Key::Escape);
                &['[']
            }
            State::Ss3 => {
                keys.push(Key::Escape);
                &['O']
            }
            State::LinuxFunction => {
                keys.push(Key::Escape);
                &['[', '[']
            }
        };
        keys.extend(typed.iter().copied().map(Key::Char));
        self.state = State::Ground;
        self.seq.clear();
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
                    self.paste_line_end = None;
                    self.overlong = Overlong::No;
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
                self.end_paste(keys);
            } else {
                self.state = State::Paste {
                    matched: matched + 1,
                };
            }
            return;
        }
        // Part of the marker that turned out not to be one is text (only its first byte is ESC).
        for &text in &PASTE_END[..matched] {
            self.keep_pasted(text, keys);
        }
        let matched = usize::from(byte == ESC);
        if matched == 0 {
            self.keep_pasted(byte, keys);
        }
        self.state = State::Paste { matched };
    }

    /// Keeps one byte of pasted text. Once [`PASTE_PIECE`] bytes are kept, the complete lines
    /// among them are handed on; a line that grows past [`MAX_PASTE`] is dropped whole.
    fn keep_pasted(&mut self, byte: u8, keys: &mut Vec<Key>) {
        match self.overlong {
            Overlong::No => {}
            Overlong::Skipping(n) => {
                self.overlong = match byte {
                    b'\n' => return self.end_overlong(n, keys),
                    b'\r' => Overlong::EndedAtCr(n),
                    _ => Overlong::Skipping(n + 1),
                };
                return;
            }
            Overlong::EndedAtCr(n) => {
                self.end_overlong(n, keys);
                if byte == b'\n' {
                    return;
                }
            }
        }
        let len = self.paste.len();
        // A `\r` ends a line once the next byte shows it is not the start of a `\r\n`.
        let after_cr = self.paste.last() == Some(&b'\r');
        if after_cr && byte != b'\n' {
            self.paste_line_end = Some(len);
        }
        let ends_crlf = after_cr && byte == b'\n';
        if self.paste_line_end.is_none() && len >= MAX_PASTE && !ends_crlf {
            // What is kept is one line, and it does not fit: none of it is handed on.
            self.paste.clear();
            self.overlong = Overlong::Skipping(len);
            return self.keep_pasted(byte, keys);
        }
        self.paste.push(byte);
        if byte == b'\n' {
            self.paste_line_end = Some(len + 1);
        }
        if let Some(end) = self.paste_line_end.filter(|_| len + 1 >= PASTE_PIECE) {
            let rest = self.paste.split_off(end);
            let piece = std::mem::replace(&mut self.paste, rest);
            self.paste_line_end = None;
            keys.push(Key::Paste(clean_paste(&piece)));
        }
    }

    fn end_overlong(&mut self, n: usize, keys: &mut Vec<Key>) {
        self.overlong = Overlong::No;
        keys.push(Key::PasteCut(n));
    }

    /// The end marker came: an over-long last line is reported, then the rest is handed on.
    fn end_paste(&mut self, keys: &mut Vec<Key>) {
        if let Overlong::Skipping(n) | Overlong::EndedAtCr(n) = self.overlong {
            self.end_overlong(n, keys);
        }
        let text = clean_paste(&self.paste);
        self.paste = Vec::new();
        self.paste_line_end = None;
        keys.push(Key::Paste(text));
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
