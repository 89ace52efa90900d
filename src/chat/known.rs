//! Remembered keys, as SSH's `known_hosts`: which key fingerprint was first seen for each nick,
//! and the short fingerprint itself. The first key seen for a nick is kept for good, so a later
//! node taking that nick with another key can be shown as a changed key.
//!
//! Pure: parses and produces the lines of the `known_keys` file, but must not read or write it
//! (`identity.rs` does, outside the chat core), nor read the clock.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::protocol::check_nick;

/// Nicks remembered, at most: a `known_keys` file past this many entries is read up to here, and
/// nothing more is remembered (a key past the cap is shown as new every time, never as changed).
pub const MAX_KNOWN: usize = 10_000;

/// Nicks remembered for one key, at most: a node renaming itself over and over (or announcing
/// nick after nick) takes a few entries of the file, not all of them.
pub const MAX_NICKS_PER_KEY: usize = 4;

/// New nicks remembered in one run, at most: what one session with hostile nodes (many keys,
/// many nicks) can add to the file for good.
pub const MAX_NEW_PER_RUN: usize = 256;

/// Length of a fingerprint as text: 16 hex digits in four groups, three colons.
const FINGERPRINT_LEN: usize = 19;

/// The short, human-comparable name of a public key: the first 8 bytes of SHA-256 of its 32
/// bytes, as 16 lowercase hex digits in four groups of four joined by `:`
/// (`3f9a:1c0d:8e7f:6a5b`).
pub fn fingerprint(key: &VerifyingKey) -> String {
    crate::protocol::sign::fingerprint(key)
}

/// True for text shaped as [`fingerprint`] writes it (lowercase hex only).
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == FINGERPRINT_LEN
        && text.char_indices().all(|(i, c)| match i % 5 {
            4 => c == ':',
            _ => matches!(c, '0'..='9' | 'a'..='f'),
        })
}

/// The form of a nick that remembered keys are filed under: two nicks that fold alike share one
/// remembered key. The look-alike key (TR39 skeleton, without case), so that Cyrillic `bоb`
/// while bob is away is checked against bob's key, not remembered as someone new.
pub fn fold(nick: &str) -> String {
    crate::protocol::skeleton_key(nick)
}

/// What a nick's key is, compared with the one remembered for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// No key is remembered for this nick.
    New,
    /// The key is the one remembered.
    Same,
    /// Another key was remembered for this nick first: the one shown here.
    Changed { remembered: String },
}

/// Nick (folded) to the fingerprint first seen for it. Two are equal when they remember the
/// same keys (how many were added in this run is not what they know).
#[derive(Clone, Debug, Default)]
pub struct KnownKeys {
    /// By the look-alike key: what a nick with no line of its own is checked against.
    by_nick: HashMap<String, String>,
    /// By the nick itself, without case: a file may hold two look-alike nicks of two people
    /// (lines written before nicks were compared by look), each checked against its own line.
    exact: HashMap<String, String>,
    /// How many nicks each fingerprint has (see [`MAX_NICKS_PER_KEY`]).
    per_key: HashMap<String, usize>,
    /// Nicks remembered since this was read (see [`MAX_NEW_PER_RUN`]).
    added: usize,
}

impl PartialEq for KnownKeys {
    fn eq(&self, other: &KnownKeys) -> bool {
        self.by_nick == other.by_nick && self.exact == other.exact
    }
}

impl Eq for KnownKeys {}

impl KnownKeys {
    /// Nothing remembered yet.
    pub fn new() -> KnownKeys {
        KnownKeys::default()
    }

    /// The keys in the text of a `known_keys` file: lines `NICK FINGERPRINT`. Lines that are not
    /// (a bad nick, a bad fingerprint, more or fewer fields) are skipped; for a nick listed
    /// twice the first line wins, as it did when it was written; at most [`MAX_KNOWN`] entries.
    pub fn from_text(text: &str) -> KnownKeys {
        let mut known = KnownKeys::new();
        for (nick, fp) in text.lines().filter_map(parse_line) {
            if known.exact.len() >= MAX_KNOWN {
                break;
            }
            if let std::collections::hash_map::Entry::Vacant(e) =
                known.exact.entry(nick.to_lowercase())
            {
                *known.per_key.entry(fp.clone()).or_default() += 1;
                known
                    .by_nick
                    .entry(fold(nick))
                    .or_insert_with(|| fp.clone());
                e.insert(fp);
            }
        }
        known
    }

    /// How many nicks have a remembered key.
    pub fn len(&self) -> usize {
        self.exact.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// `fp` for `nick`, compared with what is remembered.
    pub fn check(&self, nick: &str, fp: &str) -> KeyCheck {
        let known = self
            .exact
            .get(&nick.to_lowercase())
            .or_else(|| self.by_nick.get(&fold(nick)));
        match known {
            None => KeyCheck::New,
            Some(known) if known == fp => KeyCheck::Same,
            Some(known) => KeyCheck::Changed {
                remembered: known.clone(),
            },
        }
    }

    /// Remembers `fp` for `nick` if nothing is remembered for it yet: returns the line to append
    /// to the file (`NICK FINGERPRINT`, without its newline). `None` when the nick already has a
    /// key (the first stays), when a cap is reached (in all, for this key, in this run), or for
    /// a nick or fingerprint that could not be read back.
    pub fn remember(&mut self, nick: &str, fp: &str) -> Option<String> {
        let full = self.exact.len() >= MAX_KNOWN
            || self.added >= MAX_NEW_PER_RUN
            || self
                .per_key
                .get(fp)
                .is_some_and(|&n| n >= MAX_NICKS_PER_KEY);
        if full || check_nick(nick).is_err() || !is_fingerprint(fp) {
            return None;
        }
        let (folded, lower) = (fold(nick), nick.to_lowercase());
        if self.by_nick.contains_key(&folded) || self.exact.contains_key(&lower) {
            return None;
        }
        self.by_nick.insert(folded, fp.to_string());
        self.exact.insert(lower, fp.to_string());
        *self.per_key.entry(fp.to_string()).or_default() += 1;
        self.added += 1;
        Some(format!("{nick} {fp}"))
    }
}

/// One `NICK FINGERPRINT` line, or `None`.
fn parse_line(line: &str) -> Option<(&str, String)> {
    let mut fields = line.split_whitespace();
    let (nick, fp) = (fields.next()?, fields.next()?);
    if fields.next().is_some() || check_nick(nick).is_err() {
        return None;
    }
    // A hand-edited file may say it in capitals; it is the same key.
    let fp = fp.to_ascii_lowercase();
    is_fingerprint(&fp).then_some((nick, fp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use sha2::{Digest, Sha256};

    fn fp_of(seed: u8) -> String {
        fingerprint(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
    }

    const A: &str = "3f9a:1c0d:8e7f:6a5b";
    const B: &str = "0000:1111:2222:abcd";

    #[test]
    fn a_fingerprint_is_the_first_8_bytes_of_sha256_of_the_key_in_four_groups() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let want = format!(
            "{}:{}:{}:{}",
            &hex[..4],
            &hex[4..8],
            &hex[8..12],
            &hex[12..]
        );
        assert_eq!(fingerprint(&key), want);
        assert!(is_fingerprint(&want));
        assert_ne!(fp_of(1), fp_of(2));
    }

    fn bytes32(hex: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default())
            .collect();
        v.try_into().unwrap_or([0; 32])
    }

    #[test]
    fn the_rfc_8032_test_key_has_a_known_fingerprint() {
        // RFC 8032 section 7.1, TEST 1: secret key and the public key it gives.
        let secret = bytes32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = bytes32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let key = SigningKey::from_bytes(&secret).verifying_key();
        assert_eq!(key.as_bytes(), &public);
        // `echo d75a98...511a | xxd -r -p | sha256sum` starts 21fe31dfa154a261.
        assert_eq!(fingerprint(&key), "21fe:31df:a154:a261");
    }

    #[test]
    fn fingerprint_shapes() {
        for good in [A, B, "ffff:ffff:ffff:ffff"] {
            assert!(is_fingerprint(good), "{good}");
        }
        for bad in [
            "",
            "3f9a1c0d8e7f6a5b",
            "3f9a:1c0d:8e7f:6a5",
            "3f9a:1c0d:8e7f:6a5bc",
            "3F9A:1c0d:8e7f:6a5b",
            "3f9a-1c0d-8e7f-6a5b",
            "3f9a:1c0d:8e7f:6a5g",
            "3f9a::1c0d:8e7f:6a5",
        ] {
            assert!(!is_fingerprint(bad), "{bad}");
        }
    }

    #[test]
    fn the_first_key_seen_for_a_nick_is_remembered_and_a_later_one_is_a_change() {
        let mut known = KnownKeys::new();
        assert_eq!(known.check("bob", A), KeyCheck::New);
        assert_eq!(known.remember("bob", A), Some(format!("bob {A}")));
        assert_eq!(known.check("bob", A), KeyCheck::Same);
        assert_eq!(
            known.check("bob", B),
            KeyCheck::Changed {
                remembered: A.into()
            }
        );
        // The first stays: another key for bob is not remembered, nor written.
        assert_eq!(known.remember("bob", B), None);
        assert_eq!(known.remember("bob", A), None);
        assert_eq!(known.check("bob", A), KeyCheck::Same);
        assert_eq!(known.len(), 1);
    }

    #[test]
    fn nicks_are_compared_without_case() {
        let mut known = KnownKeys::new();
        assert!(known.remember("Bob", A).is_some());
        assert_eq!(known.check("bob", A), KeyCheck::Same);
        assert_eq!(
            known.check("BOB", B),
            KeyCheck::Changed {
                remembered: A.into()
            }
        );
        assert_eq!(known.remember("bOb", B), None);
        assert_eq!(fold("ÀNA"), fold("àna"));
    }

    /// A fingerprint made from a counter.
    fn fp_n(n: usize) -> String {
        let hex = format!("{n:016x}");
        (0..4)
            .map(|i| &hex[i * 4..i * 4 + 4])
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn one_key_is_remembered_for_a_few_nicks_and_one_run_adds_a_bounded_number() {
        let mut known = KnownKeys::new();
        let kept = (0..100)
            .filter(|i| known.remember(&format!("rename{i}"), A).is_some())
            .count();
        assert_eq!(kept, MAX_NICKS_PER_KEY);
        assert_eq!(known.check("rename99", B), KeyCheck::New);
        let kept = (0..10 * MAX_NEW_PER_RUN)
            .filter(|&i| known.remember(&format!("sybil{i}"), &fp_n(i)).is_some())
            .count();
        assert_eq!(kept, MAX_NEW_PER_RUN - MAX_NICKS_PER_KEY);
        // The next run reads them all back and may add as many again.
        let text: String = (0..MAX_NICKS_PER_KEY)
            .map(|i| format!("rename{i} {A}\n"))
            .collect();
        let mut again = KnownKeys::from_text(&text);
        assert!(again.remember("fresh", B).is_some());
        assert_eq!(again.remember("rename-more", A), None);
    }

    #[test]
    fn two_look_alike_nicks_in_the_file_are_each_checked_against_their_own_line() {
        // Written before nicks were compared by look: two people, two lines.
        let known = KnownKeys::from_text(&format!("bob {A}\nb0b {B}\n"));
        assert_eq!(known.len(), 2);
        assert_eq!(known.check("bob", A), KeyCheck::Same);
        assert_eq!(known.check("B0B", B), KeyCheck::Same);
        // A third look-alike with no line of its own: checked against the first.
        assert_eq!(
            known.check("b\u{043e}b", B),
            KeyCheck::Changed {
                remembered: A.into()
            }
        );
    }

    #[test]
    fn a_look_alike_nick_is_checked_against_the_key_remembered_for_the_nick_it_imitates() {
        let mut known = KnownKeys::new();
        assert!(known.remember("bob", A).is_some());
        // Cyrillic о, and a zero for an o.
        for imitation in ["b\u{043e}b", "B0B"] {
            assert_eq!(
                known.check(imitation, B),
                KeyCheck::Changed {
                    remembered: A.into()
                },
                "{imitation}"
            );
            assert_eq!(known.remember(imitation, B), None);
        }
    }

    #[test]
    fn the_file_text_is_read_skipping_bad_lines_and_the_first_line_for_a_nick_wins() {
        let text = format!(
            "bob {A}\n\
             \n\
             # a comment is a bad line\n\
             carol not-a-fingerprint\n\
             dave {A} extra\n\
             {A}\n\
             BOB {B}\n\
             eve {}\n\
             ana\t{B}\r\n",
            A.to_uppercase()
        );
        let known = KnownKeys::from_text(&text);
        assert_eq!(known.len(), 3, "{known:?}");
        assert_eq!(known.check("bob", A), KeyCheck::Same);
        assert_eq!(known.check("eve", A), KeyCheck::Same);
        assert_eq!(known.check("ana", B), KeyCheck::Same);
        for skipped in ["carol", "dave", "#"] {
            assert_eq!(known.check(skipped, A), KeyCheck::New, "{skipped}");
        }
    }

    #[test]
    fn a_bad_nick_in_the_file_is_skipped() {
        let long = "n".repeat(33);
        let text = format!("{long} {A}\nbob\u{7} {A}\nok {B}\n");
        let known = KnownKeys::from_text(&text);
        assert_eq!(known.len(), 1);
        assert_eq!(known.check("ok", B), KeyCheck::Same);
    }

    #[test]
    fn what_remember_writes_reads_back_the_same() {
        let mut known = KnownKeys::new();
        let mut file = String::new();
        for (i, nick) in ["ana", "Bob", "çé", "x_y-z"].iter().enumerate() {
            let fp = fp_of(i as u8);
            let line = known
                .remember(nick, &fp)
                .unwrap_or_else(|| panic!("{nick}"));
            file.push_str(&line);
            file.push('\n');
        }
        assert_eq!(KnownKeys::from_text(&file), known);
    }

    #[test]
    fn remember_refuses_what_could_not_be_read_back() {
        let mut known = KnownKeys::new();
        assert_eq!(known.remember("two words", A), None);
        assert_eq!(known.remember("bob\nmallory", A), None);
        assert_eq!(known.remember("bob", "3f9a:1c0d:8e7f:6a5b\nx y"), None);
        assert_eq!(known.remember("", A), None);
        assert!(known.is_empty());
    }

    fn numbered(n: usize) -> String {
        (0..n).map(|i| format!("n{i} {A}\n")).collect()
    }

    #[test]
    fn at_most_max_known_entries_are_read() {
        let known = KnownKeys::from_text(&numbered(MAX_KNOWN + 5));
        assert_eq!(known.len(), MAX_KNOWN);
        assert_eq!(
            known.check(&format!("n{}", MAX_KNOWN - 1), A),
            KeyCheck::Same
        );
        assert_eq!(known.check(&format!("n{MAX_KNOWN}"), A), KeyCheck::New);
    }

    #[test]
    fn nothing_is_remembered_past_the_cap() {
        let mut known = KnownKeys::from_text(&numbered(MAX_KNOWN));
        assert_eq!(known.len(), MAX_KNOWN);
        assert_eq!(known.remember("late", A), None);
        assert_eq!(known.check("late", A), KeyCheck::New);
        let mut one_short = KnownKeys::from_text(&numbered(MAX_KNOWN - 1));
        // (Another key than the numbered nicks', which has all the nicks a key may.)
        assert!(one_short.remember("last", B).is_some());
        assert_eq!(one_short.remember("later", B), None);
    }
}
