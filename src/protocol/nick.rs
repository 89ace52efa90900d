//! The nick rules: what a nick may hold so that it cannot pass for another, and the key under
//! which nicks that look alike are the same (Unicode TR39 confusable skeletons, case folded).
//!
//! Pure code. Must not know who holds which nick (the roster does) nor decide how a nick is
//! shown (tags and the guests' `~` are the roster's).

use std::fmt;

use unicode_normalization::char::is_combining_mark;
use unicode_security::skeleton;

use super::MAX_NICK_CHARS;

/// What every guest's shown name starts with; no nick may start with it or a look-alike of it.
pub const GUEST_MARK: &str = "~";

/// Why a nick is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NickError {
    Empty,
    TooLong,
    /// White space or a control character.
    BadChar,
    /// A character that shows as nothing, or as blank (it would make the nick look like another).
    Invisible(char),
    /// A combining mark first: it would sit on whatever is printed before the nick.
    MarkFirst(char),
    /// `~` or a look-alike first: `~` marks guests.
    GuestMark,
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NickError::Empty => write!(f, "a nick cannot be empty"),
            NickError::TooLong => write!(f, "a nick has at most {MAX_NICK_CHARS} characters"),
            NickError::BadChar => write!(f, "a nick cannot hold spaces or control characters"),
            NickError::Invisible(c) => write!(
                f,
                "a nick cannot hold invisible characters (U+{:04X})",
                u32::from(*c)
            ),
            NickError::MarkFirst(c) => write!(
                f,
                "a nick cannot start with a combining mark (U+{:04X})",
                u32::from(*c)
            ),
            NickError::GuestMark => write!(
                f,
                "a nick cannot start with {GUEST_MARK} or a look-alike ({GUEST_MARK} marks guests)"
            ),
        }
    }
}

/// Characters that show as nothing or as a blank, as inclusive ranges in order: general
/// category Cf (format: soft hyphen, zero-width and bidi controls, invisible operators, BOM,
/// interlinear annotations, tags; as of Unicode 15.1), Default_Ignorable_Code_Point (CGJ, Hangul
/// fillers, variation selectors, Mongolian selectors, Khmer inherent vowels, the whole E0000 plane
/// part), and the blank-looking letters and symbols U+2800 (braille blank) and U+16FE4 (Khitan
/// filler). White space and controls are refused apart, by `char` itself.
const INVISIBLE: &[(char, char)] = &[
    ('\u{AD}', '\u{AD}'),
    ('\u{34F}', '\u{34F}'),
    ('\u{600}', '\u{605}'),
    ('\u{61C}', '\u{61C}'),
    ('\u{6DD}', '\u{6DD}'),
    ('\u{70F}', '\u{70F}'),
    ('\u{890}', '\u{891}'),
    ('\u{8E2}', '\u{8E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{16FE4}', '\u{16FE4}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// True for a character that shows as nothing or as a blank (see [`INVISIBLE`]).
pub fn is_invisible(c: char) -> bool {
    INVISIBLE
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Checks the nick rules: 1 to 32 characters; no white space, control, invisible or blank
/// characters; neither a combining mark nor `~` (or a look-alike of it) first.
///
/// Runs for the nick of every frame read, so plain ASCII nicks take a short way.
pub fn check_nick(nick: &str) -> Result<(), NickError> {
    let Some(first) = nick.chars().next() else {
        return Err(NickError::Empty);
    };
    if nick.bytes().all(|b| b.is_ascii_graphic()) {
        return if nick.len() > MAX_NICK_CHARS {
            Err(NickError::TooLong)
        } else if nick.starts_with(GUEST_MARK) {
            Err(NickError::GuestMark)
        } else {
            Ok(())
        };
    }
    if nick.chars().count() > MAX_NICK_CHARS {
        return Err(NickError::TooLong);
    }
    for c in nick.chars() {
        if c.is_whitespace() || c.is_control() {
            return Err(NickError::BadChar);
        }
        if is_invisible(c) {
            return Err(NickError::Invisible(c));
        }
    }
    if is_combining_mark(first) {
        return Err(NickError::MarkFirst(first));
    }
    let first_looks: String = skeleton(first.encode_utf8(&mut [0; 4])).collect();
    if first_looks.starts_with(GUEST_MARK) {
        return Err(NickError::GuestMark);
    }
    Ok(())
}

/// The key under which nicks that look alike are one: the TR39 skeleton, lower-cased, and the
/// skeleton of that again (lower-casing can make characters the skeleton maps, such as `I`
/// from `İ`). `bob`, `Bob`, `B0B` and Cyrillic `bоb` share the key `bob`.
///
/// For comparing only: the key is no name to show (it mixes scripts at will).
pub fn skeleton_key(nick: &str) -> String {
    let once: String = skeleton(nick).collect();
    skeleton(&once.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe::is_unsafe;

    #[test]
    fn a_refused_nick_is_told_which_rule_it_broke() {
        assert_eq!(NickError::Empty.to_string(), "a nick cannot be empty");
        assert_eq!(
            NickError::TooLong.to_string(),
            "a nick has at most 32 characters"
        );
        assert_eq!(
            NickError::BadChar.to_string(),
            "a nick cannot hold spaces or control characters"
        );
        assert_eq!(
            check_nick("bob\u{2060}").map_err(|e| e.to_string()),
            Err("a nick cannot hold invisible characters (U+2060)".to_string())
        );
        assert_eq!(
            check_nick("\u{301}bob").map_err(|e| e.to_string()),
            Err("a nick cannot start with a combining mark (U+0301)".to_string())
        );
        assert_eq!(
            check_nick("~bob").map_err(|e| e.to_string()),
            Err("a nick cannot start with ~ or a look-alike (~ marks guests)".to_string())
        );
    }

    #[test]
    fn nick_rules() {
        assert_eq!(check_nick("alice"), Ok(()));
        assert_eq!(check_nick("ação-你好"), Ok(()));
        assert_eq!(check_nick(&"x".repeat(32)), Ok(()));
        assert_eq!(check_nick("b~b"), Ok(()), "a ~ past the first character");
        assert_eq!(check_nick("👋🏽"), Ok(()), "an emoji with a skin tone");
        assert_eq!(check_nick(""), Err(NickError::Empty));
        assert_eq!(check_nick(&"x".repeat(33)), Err(NickError::TooLong));
        assert_eq!(check_nick(&"é".repeat(33)), Err(NickError::TooLong));
        for bad in ["a b", "a\tb", "a\x1bb", "a\u{85}", "a\u{3000}b", "a\u{a0}b"] {
            assert_eq!(check_nick(bad), Err(NickError::BadChar), "{bad:?}");
        }
    }

    /// The classes the issue names, each in the middle of a nick and alone at its end.
    #[test]
    fn invisible_and_blank_characters_are_refused() {
        let classes = [
            ('\u{2060}', "word joiner"),
            ('\u{2063}', "invisible separator"),
            ('\u{034F}', "combining grapheme joiner"),
            ('\u{061C}', "Arabic letter mark"),
            ('\u{E0062}', "tag b"),
            ('\u{FE0F}', "variation selector 16"),
            ('\u{E0100}', "variation selector 17"),
            ('\u{3164}', "Hangul filler"),
            ('\u{115F}', "Hangul choseong filler"),
            ('\u{1160}', "Hangul jungseong filler"),
            ('\u{FFA0}', "halfwidth Hangul filler"),
            ('\u{200B}', "zero width space"),
            ('\u{200D}', "zero width joiner"),
            ('\u{00AD}', "soft hyphen"),
            ('\u{202E}', "right-to-left override"),
            ('\u{2066}', "left-to-right isolate"),
            ('\u{FEFF}', "byte order mark"),
            ('\u{2800}', "braille blank"),
            ('\u{180E}', "Mongolian vowel separator"),
        ];
        for (c, name) in classes {
            for nick in [format!("bo{c}b"), format!("bob{c}")] {
                assert_eq!(
                    check_nick(&nick),
                    Err(NickError::Invisible(c)),
                    "{name} (U+{:04X})",
                    u32::from(c)
                );
            }
        }
    }

    #[test]
    fn a_combining_mark_cannot_come_first_but_may_follow_a_letter() {
        assert_eq!(check_nick("\u{301}a"), Err(NickError::MarkFirst('\u{301}')));
        assert_eq!(check_nick("\u{903}a"), Err(NickError::MarkFirst('\u{903}')));
        assert_eq!(check_nick("e\u{301}"), Ok(()));
    }

    #[test]
    fn no_nick_starts_with_the_guest_mark_or_a_look_alike() {
        for nick in [
            "~bob",
            "\u{2DC}bob",
            "\u{223C}bob",
            "\u{FF5E}bob",
            "\u{301C}bob",
        ] {
            assert_eq!(check_nick(nick), Err(NickError::GuestMark), "{nick:?}");
        }
    }

    #[test]
    fn every_character_unsafe_to_print_is_refused_in_a_nick() {
        for c in (0u32..0x3_0000)
            .filter_map(char::from_u32)
            .filter(|&c| is_unsafe(c))
        {
            assert!(
                check_nick(&format!("a{c}")).is_err(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    /// The skeleton drops exactly the default-ignorable code points of the crate's (newer)
    /// Unicode data: each of them is in our table, so a new one is found here.
    #[test]
    fn every_character_the_skeleton_drops_is_refused() {
        for c in (0u32..0x11_0000).filter_map(char::from_u32) {
            if skeleton(c.encode_utf8(&mut [0; 4])).next().is_none() {
                assert!(is_invisible(c), "U+{:04X}", u32::from(c));
            }
        }
    }

    #[test]
    fn the_table_is_in_order_without_overlaps() {
        assert!(INVISIBLE.iter().all(|(lo, hi)| lo <= hi));
        assert!(INVISIBLE.windows(2).all(|w| w[0].1 < w[1].0));
    }

    #[test]
    fn nicks_that_look_alike_share_a_key() {
        let bob = skeleton_key("bob");
        for alike in ["bob", "Bob", "BOB", "b\u{43E}b", "B0B", "\u{13CF}ob"] {
            assert_eq!(skeleton_key(alike), bob, "{alike}");
        }
        assert_eq!(skeleton_key("aIice"), skeleton_key("alice"));
        assert_eq!(skeleton_key("guest-1"), skeleton_key("guest-l"));
        assert_ne!(skeleton_key("bob"), skeleton_key("rob"));
        assert_ne!(skeleton_key("ana"), skeleton_key("anna"));
    }
}
