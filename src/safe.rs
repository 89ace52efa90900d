//! Terminal-safe text: what a peer sent, made harmless to print.
//!
//! Holds the one function that decides how control characters, escape sequences, C1 controls and
//! bidi overrides are shown. Used for human output and for the plain lines sent to guests (whose
//! terminal is as exposed as ours). Must not do IO or drop printable text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters that must never reach a terminal raw: C0 controls (tab included, so a peer
/// cannot realign the screen), DEL, C1 controls, and the invisible characters that reorder or hide
/// text (bidi embeddings/overrides/isolates, zero-width marks, BOM).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// Returns `text` with every unsafe character replaced by a visible escape: caret notation for
/// C0 controls and DEL (`^[` for ESC, `^@` for NUL, `^?` for DEL), `\u{…}` for the rest.
/// Printable text, including any non-ASCII script and emoji, passes through unchanged.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    // Fast path for the common case, printable ASCII, byte by byte.
    // Branch-free, so that it runs many bytes at a time.
    let printable_ascii = text
        .bytes()
        .fold(true, |ok, b| ok & (b.wrapping_sub(0x20) < 0x5f));
    if printable_ascii || !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if (c as u32) < 0x20 {
            out.push('^');
            out.push(char::from(b'@' + c as u8));
        } else if c == '\u{7f}' {
            out.push_str("^?");
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_untouched() {
        for s in ["hello", "ação", "你好", "👋🏽 emoji", "<b> & \"q\""] {
            assert!(matches!(sanitize(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(sanitize("\x1b[31mred\x1b[0m"), "^[[31mred^[[0m");
        assert_eq!(sanitize("\x1b]0;title\x07"), "^[]0;title^G");
        assert_eq!(sanitize("a\0b\x7fc\td\re"), "a^@b^?c^Id^Me");
    }

    #[test]
    fn c1_and_bidi_controls_become_visible() {
        assert_eq!(sanitize("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(sanitize("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(sanitize("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(sanitize("\u{feff}"), "\\u{feff}");
    }

    /// The visible form `sanitize` promises for a control character.
    fn escaped(c: char) -> String {
        match c as u32 {
            n @ 0..=0x1f => format!("^{}", char::from(b'@' + n as u8)),
            0x7f => "^?".to_string(),
            n => format!("\\u{{{n:x}}}"),
        }
    }

    #[test]
    fn every_c0_control_del_and_c1_control_is_escaped_alone_and_amid_text() {
        let controls = (0u32..0x20).chain([0x7f]).chain(0x80..0xa0);
        for c in controls.filter_map(char::from_u32) {
            let e = escaped(c);
            // Alone, amid plain ASCII (the fast path's case) and amid other scripts.
            for (text, want) in [
                (format!("{c}"), e.clone()),
                (format!("x{c}y"), format!("x{e}y")),
                (format!("ação {c}你好"), format!("ação {e}你好")),
            ] {
                let got = sanitize(&text);
                assert_eq!(got, want, "U+{:04X}", c as u32);
                assert!(!got.chars().any(|g| g.is_control()), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn del_alone_in_printable_ascii_is_escaped() {
        // DEL is the one control just past the printable ASCII range the fast path accepts.
        assert_eq!(sanitize("rm -rf\x7f"), "rm -rf^?");
        assert_eq!(sanitize("~\x7f"), "~^?");
        assert!(matches!(sanitize("~ }"), Cow::Borrowed(_)));
    }

    #[test]
    fn output_never_contains_an_unsafe_char() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!sanitize(&all).chars().any(is_unsafe));
    }
}
