//! The key decoder's tests: every key and sequence, text and sequences cut at every byte.

use super::*;
use crate::term::editor::{Edit, Editor};

fn decode(bytes: &[u8]) -> Vec<Key> {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.feed(bytes, &mut keys);
    keys
}

/// `bytes` fed in two reads cut at `at`.
fn decode_split(bytes: &[u8], at: usize) -> Vec<Key> {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.feed(&bytes[..at], &mut keys);
    decoder.feed(&bytes[at..], &mut keys);
    keys
}

/// `bytes` fed one byte per read.
fn decode_bytewise(bytes: &[u8]) -> Vec<Key> {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    for byte in bytes {
        decoder.feed(std::slice::from_ref(byte), &mut keys);
    }
    keys
}

fn chars(text: &str) -> Vec<Key> {
    text.chars().map(Key::Char).collect()
}

/// Asserts that `bytes` give `expected` whole, cut at every position, and byte by byte.
fn assert_decodes(bytes: &[u8], expected: &[Key]) {
    assert_eq!(decode(bytes), expected, "whole: {bytes:?}");
    for at in 0..=bytes.len() {
        assert_eq!(decode_split(bytes, at), expected, "cut at {at}: {bytes:?}");
    }
    assert_eq!(decode_bytewise(bytes), expected, "byte by byte: {bytes:?}");
}

#[test]
fn ascii_text_is_chars() {
    assert_decodes(b"hi there!", &chars("hi there!"));
}

#[test]
fn utf8_text_is_chars_even_cut_at_every_byte() {
    assert_decodes("é漢😀a".as_bytes(), &chars("é漢😀a"));
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    let r = Key::Char(char::REPLACEMENT_CHARACTER);
    assert_decodes(b"\xffa", &[r.clone(), Key::Char('a')]);
    assert_decodes(b"\x80a", &[r.clone(), Key::Char('a')]);
    // A character cut short by a byte that cannot continue it.
    assert_decodes(b"\xe6\xbca", &[r.clone(), Key::Char('a')]);
    assert_decodes(b"\xe6\x1b[A", &[r.clone(), Key::Up]);
    // An overlong encoding and a surrogate.
    assert_decodes(b"\xc0\x80", &[r.clone(), r.clone()]);
    assert_decodes(b"\xed\xa0\x80x", &[r, Key::Char('x')]);
}

#[test]
fn every_byte_value_decodes_without_panic() {
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    for at in 0..all.len() {
        let _ = decode_split(&all, at);
    }
}

#[test]
fn carriage_return_and_line_feed_are_enter_and_a_pair_is_one() {
    assert_decodes(b"a\rb", &[Key::Char('a'), Key::Enter, Key::Char('b')]);
    assert_decodes(b"a\nb", &[Key::Char('a'), Key::Enter, Key::Char('b')]);
    assert_decodes(b"a\r\nb", &[Key::Char('a'), Key::Enter, Key::Char('b')]);
    assert_decodes(b"\r\r", &[Key::Enter, Key::Enter]);
    assert_decodes(b"\n\n", &[Key::Enter, Key::Enter]);
    assert_decodes(b"\n\r", &[Key::Enter, Key::Enter]);
    assert_decodes(b"\r\n\r\n", &[Key::Enter, Key::Enter]);
    // The keypad's Enter in application mode.
    assert_decodes(b"\x1bOM", &[Key::Enter]);
}

#[test]
fn control_bytes_are_backspace_tab_and_ctrl_letters() {
    assert_decodes(b"\x7f\x08\t", &[Key::Backspace, Key::Backspace, Key::Tab]);
    assert_decodes(
        b"\x01\x04\x05\x0b\x0c\x15\x17\x1a",
        &[
            Key::Ctrl('a'),
            Key::Ctrl('d'),
            Key::Ctrl('e'),
            Key::Ctrl('k'),
            Key::Ctrl('l'),
            Key::Ctrl('u'),
            Key::Ctrl('w'),
            Key::Ctrl('z'),
        ],
    );
    assert_decodes(b"\x00\x1f", &[Key::Ctrl('@'), Key::Ctrl('_')]);
}

#[test]
fn arrows_in_csi_and_ss3_form() {
    let arrows = [Key::Up, Key::Down, Key::Right, Key::Left];
    assert_decodes(b"\x1b[A\x1b[B\x1b[C\x1b[D", &arrows);
    assert_decodes(b"\x1bOA\x1bOB\x1bOC\x1bOD", &arrows);
}

#[test]
fn modified_arrows_are_plain_but_ctrl_and_alt_left_right_move_by_words() {
    assert_decodes(b"\x1b[1;2A\x1b[1;5B", &[Key::Up, Key::Down]);
    assert_decodes(b"\x1b[1;2C\x1b[1;2D", &[Key::Right, Key::Left]);
    assert_decodes(b"\x1b[1;5C\x1b[1;5D", &[Key::WordRight, Key::WordLeft]);
    assert_decodes(b"\x1b[1;3C\x1b[1;3D", &[Key::WordRight, Key::WordLeft]);
    assert_decodes(b"\x1bOc\x1bOd", &[Key::WordRight, Key::WordLeft]);
    assert_decodes(b"\x1bO5C", &[Key::Right]);
}

#[test]
fn home_end_and_delete_in_every_form() {
    assert_decodes(b"\x1b[H\x1bOH\x1b[1~\x1b[7~\x1b[1;5H", &vec![Key::Home; 5]);
    assert_decodes(b"\x1b[F\x1bOF\x1b[4~\x1b[8~\x1b[1;2F", &vec![Key::End; 5]);
    assert_decodes(b"\x1b[3~\x1b[3;5~", &[Key::Delete, Key::Delete]);
}

#[test]
fn other_complete_sequences_are_one_unknown_each() {
    let x = Key::Char('x');
    // F12, a device attribute reply, an SGR mouse report, focus in, a kitty key.
    for seq in [
        &b"\x1b[24~x"[..],
        b"\x1b[?1;2cx",
        b"\x1b[<0;10;20Mx",
        b"\x1b[Ix",
        b"\x1b[97;5ux",
        b"\x1b[1 qx",
        b"\x1bOPx",
        b"\x1b[201~x",
    ] {
        assert_decodes(seq, &[Key::Unknown, x.clone()]);
    }
    // The Linux console's F1: `ESC [ [ A`, the A included.
    assert_decodes(b"\x1b[[Ax", &[Key::Unknown, x]);
}

#[test]
fn a_sequence_broken_by_a_control_byte_is_unknown_and_the_byte_counts() {
    assert_decodes(b"\x1b[1\r", &[Key::Unknown, Key::Enter]);
    assert_decodes(b"\x1bO\x7f", &[Key::Unknown, Key::Backspace]);
}

#[test]
fn a_too_long_sequence_is_one_unknown_and_memory_stays_bounded() {
    let mut bytes = b"\x1b[".to_vec();
    bytes.extend(std::iter::repeat_n(b'1', 10_000));
    bytes.extend_from_slice(b"~ab");
    assert_eq!(
        decode(&bytes),
        [Key::Unknown, Key::Char('a'), Key::Char('b')]
    );

    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.feed(b"\x1b[", &mut keys);
    for _ in 0..1000 {
        decoder.feed(b"1;1;1;1;", &mut keys);
        assert!(decoder.seq.len() <= MAX_SEQUENCE);
    }
    decoder.feed(b"~x", &mut keys);
    assert_eq!(keys, [Key::Unknown, Key::Char('x')]);

    let mut bytes = b"\x1bO".to_vec();
    bytes.extend(std::iter::repeat_n(b'5', 100));
    bytes.extend_from_slice(b"Cy");
    assert_eq!(decode(&bytes), [Key::Unknown, Key::Char('y')]);
}

#[test]
fn esc_then_a_key_is_alt() {
    assert_decodes(
        b"\x1bb\x1bF\x1b.",
        &[Key::Alt('b'), Key::Alt('f'), Key::Alt('.')],
    );
    assert_decodes(b"\x1b\x7f\x1b\x08", &[Key::AltBackspace, Key::AltBackspace]);
    assert_decodes(b"\x1b\x1bb", &[Key::Unknown, Key::Alt('b')]);
    assert_decodes(b"\x1b\x1b[A", &[Key::Unknown, Key::Up]);
    assert_decodes(b"\x1b\r", &[Key::Unknown, Key::Enter]);
    assert_decodes("\x1bé".as_bytes(), &[Key::Unknown, Key::Char('é')]);
}

#[test]
fn a_lone_esc_at_the_end_of_a_read_waits_for_the_next() {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.feed(b"a\x1b", &mut keys);
    assert_eq!(keys, [Key::Char('a')]);
    decoder.feed(b"[D", &mut keys);
    assert_eq!(keys, [Key::Char('a'), Key::Left]);
}

#[test]
fn every_sequence_cut_at_every_byte_gives_the_same_keys() {
    let stream: &[u8] =
        b"a\x1b[1;5C\x1bOH\x1b[3~\x1bb\x1b\x7f\x1b[?25h\r\n\x1b[200~p\r\nq\x1b[201~\xe6\xbc\xa2z";
    let expected = [
        Key::Char('a'),
        Key::WordRight,
        Key::Home,
        Key::Delete,
        Key::Alt('b'),
        Key::AltBackspace,
        Key::Unknown,
        Key::Enter,
        Key::Paste("p\nq".into()),
        Key::Char('漢'),
        Key::Char('z'),
    ];
    assert_decodes(stream, &expected);
}

#[test]
fn a_bracketed_paste_is_one_key_with_clean_line_ends() {
    assert_decodes(
        b"\x1b[200~one\r\ntwo\rthree\nfour\x1b[201~x",
        &[Key::Paste("one\ntwo\nthree\nfour".into()), Key::Char('x')],
    );
    assert_decodes(
        "\x1b[200~a\tb\x01c\x7fd\x1b[Ae\u{9b}é\x1b[201~".as_bytes(),
        &[Key::Paste("a\tbcd[Aeé".into())],
    );
    assert_decodes(b"\x1b[200~\x1b[201~", &[Key::Paste(String::new())]);
}

#[test]
fn a_broken_end_marker_in_a_paste_is_text() {
    assert_decodes(
        b"\x1b[200~a\x1b[20b\x1b[2\x1b[201~",
        &[Key::Paste("a[20b[2".into())],
    );
    assert_decodes(b"\x1b[200~\x1b\x1b\x1b[201~", &[Key::Paste(String::new())]);
}

/// `bytes` fed in reads of `size` bytes (the last one shorter); the paste text kept after each
/// read must stay within `bound` bytes.
fn decode_in_reads(bytes: &[u8], size: usize, bound: usize) -> (Decoder, Vec<Key>) {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    for read in bytes.chunks(size) {
        decoder.feed(read, &mut keys);
        assert!(decoder.paste.len() <= bound, "kept {}", decoder.paste.len());
    }
    (decoder, keys)
}

/// `keys` in short: a long paste by its length and its ends, so a failure stays readable.
fn summary(keys: &[Key]) -> Vec<String> {
    keys.iter()
        .map(|key| match key {
            Key::Paste(text) if text.len() > 40 => {
                let start: String = text.chars().take(8).collect();
                let end: String = text.chars().rev().take(8).collect();
                let end: String = end.chars().rev().collect();
                format!("Paste({} bytes: {start:?}..{end:?})", text.len())
            }
            other => format!("{other:?}"),
        })
        .collect()
}

/// The texts of `keys`, which must all be pastes.
fn pastes(keys: &[Key]) -> Vec<&str> {
    keys.iter()
        .map(|key| match key {
            Key::Paste(text) => text.as_str(),
            other => panic!("not a paste: {other:?}"),
        })
        .collect()
}

#[test]
fn a_lone_esc_flushed_is_escape_and_what_follows_is_typed() {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.feed(b"\x1b", &mut keys);
    assert!(decoder.is_waiting());
    decoder.flush(&mut keys);
    assert!(!decoder.is_waiting());
    decoder.feed(b"Open the door", &mut keys);
    let mut expected = vec![Key::Escape];
    expected.extend(chars("Open the door"));
    assert_eq!(keys, expected);

    keys.clear();
    decoder.feed(b"\x1b", &mut keys);
    decoder.flush(&mut keys);
    decoder.feed(b"[hello]", &mut keys);
    let mut expected = vec![Key::Escape];
    expected.extend(chars("[hello]"));
    assert_eq!(keys, expected);
}

#[test]
fn an_unfinished_sequence_flushed_is_escape_and_characters_or_unknown() {
    let flushed = |bytes: &[u8]| {
        let mut decoder = Decoder::new();
        let mut keys = Vec::new();
        decoder.feed(bytes, &mut keys);
        assert!(decoder.is_waiting(), "{bytes:?}");
        decoder.flush(&mut keys);
        decoder.feed(b"pen", &mut keys);
        keys
    };
    let typed = |text: &str| {
        let mut keys = vec![Key::Escape];
        keys.extend(chars(text));
        keys
    };
    assert_eq!(flushed(b"\x1bO"), typed("Open"));
    assert_eq!(flushed(b"\x1b["), typed("[pen"));
    assert_eq!(flushed(b"\x1b[["), typed("[[pen"));
    assert_eq!(
        flushed(b"a\x1b[1;"),
        [&chars("a")[..], &[Key::Unknown], &chars("pen")].concat()
    );
    assert_eq!(
        flushed(b"\x1bO5"),
        [&[Key::Unknown][..], &chars("pen")].concat()
    );
    // A too long sequence gave its Unknown already; the flush only ends the skipping.
    let mut long = b"\x1b[".to_vec();
    long.extend(std::iter::repeat_n(b'1', MAX_SEQUENCE + 5));
    assert_eq!(
        flushed(&long),
        [&[Key::Unknown][..], &chars("pen")].concat()
    );
}

#[test]
fn a_split_arrow_without_a_flush_is_still_an_arrow() {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    for read in [&b"\x1b"[..], b"[", b"1;5"] {
        decoder.feed(read, &mut keys);
        assert!(decoder.is_waiting(), "after {read:?}");
    }
    decoder.feed(b"Cx\x1b", &mut keys);
    decoder.feed(b"OA", &mut keys);
    assert!(!decoder.is_waiting());
    assert_eq!(keys, [Key::WordRight, Key::Char('x'), Key::Up]);
}

#[test]
fn a_flush_with_nothing_kept_adds_nothing() {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.flush(&mut keys);
    for read in [&b"ab"[..], b"\x1b[A", b"\x1bb", b"\r", b"\n", b"\xe6"] {
        decoder.feed(read, &mut keys);
        assert!(!decoder.is_waiting(), "after {read:?}");
        decoder.flush(&mut keys);
    }
    // The `\r\n` stayed one Enter, and the half character is still kept.
    decoder.feed(b"\xbc\xa2", &mut keys);
    let expected = [
        &chars("ab")[..],
        &[Key::Up, Key::Alt('b'), Key::Enter],
        &chars("漢"),
    ];
    assert_eq!(keys, expected.concat());
}

#[test]
fn a_paste_in_progress_is_not_flushed() {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    for read in [&b"\x1b[200~"[..], b"a\x1b", b"b\x1b[20"] {
        decoder.feed(read, &mut keys);
        assert!(!decoder.is_waiting(), "after {read:?}");
        decoder.flush(&mut keys);
    }
    decoder.feed(b"1~x", &mut keys);
    assert_eq!(keys, [Key::Paste("ab".into()), Key::Char('x')]);
}

#[test]
fn a_long_paste_comes_in_pieces_with_every_line_in_order() {
    let mut text = String::new();
    let mut lines = Vec::new();
    for i in 0.. {
        let line = format!("line {i} of many, é漢😀 {}", "x".repeat(i % 97));
        text.push_str(&line);
        text.push_str(["\r\n", "\r", "\n"][i % 3]);
        lines.push(line);
        if text.len() > 3 << 20 {
            break;
        }
    }
    let mut bytes = b"\x1b[200~".to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(b"\x1b[201~");
    for size in [4093, 65536, 1 << 20] {
        let (_, keys) = decode_in_reads(&bytes, size, PASTE_PIECE + 200);
        let pieces = pastes(&keys);
        assert!(
            pieces.len() >= 3 * 1024 * 1024 / PASTE_PIECE,
            "{} pieces",
            pieces.len()
        );
        for piece in &pieces[..pieces.len() - 1] {
            assert!(piece.ends_with('\n'), "a piece cut inside a line");
            assert!(
                piece.len() < PASTE_PIECE + 200,
                "a piece of {}",
                piece.len()
            );
        }
        assert_eq!(pieces.concat().lines().collect::<Vec<_>>(), lines);
        // The editor sends the same lines as for the paste in one piece.
        let mut editor = Editor::new(&[]);
        let mut edits = Vec::new();
        for key in keys {
            editor.handle(key, &|| Vec::new(), &mut edits);
        }
        let sent: Vec<_> = edits
            .into_iter()
            .filter_map(|edit| match edit {
                Edit::Submit(line) => Some(line),
                _ => None,
            })
            .collect();
        assert_eq!(sent, lines);
    }
}

#[test]
fn a_piece_boundary_never_splits_a_line_end_or_a_character() {
    // The piece size is reached on the `\r` of a `\r\n`, then inside a character: each time
    // the piece ends at the last line end before.
    let mut bytes = b"\x1b[200~".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', PASTE_PIECE - 1));
    bytes.extend_from_slice(b"\r\ny\r");
    bytes.extend(std::iter::repeat_n(b'z', PASTE_PIECE - 6));
    bytes.extend_from_slice("é漢\rw\x1b[201~".as_bytes());
    let first = format!("{}\n", "x".repeat(PASTE_PIECE - 1));
    let third = format!("{}é漢\n", "z".repeat(PASTE_PIECE - 6));
    for size in [1, 2, 3, 7, 4096, bytes.len()] {
        let (_, keys) = decode_in_reads(&bytes, size, PASTE_PIECE + 8);
        let expected = [first.as_str(), "y\n", &third, "w"].map(|t| Key::Paste(t.into()));
        assert_eq!(summary(&keys), summary(&expected), "reads of {size}");
        assert_eq!(keys, expected);
    }
}

#[test]
fn an_overlong_pasted_line_is_dropped_whole_and_said() {
    let mut bytes = b"\x1b[200~before\r\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', MAX_PASTE - 1));
    bytes.extend_from_slice(b"\nnext\n");
    bytes.extend(std::iter::repeat_n(b'b', MAX_PASTE));
    bytes.extend_from_slice(b"\r\nafter\r");
    bytes.extend(
        std::iter::repeat_n('é', MAX_PASTE)
            .collect::<String>()
            .as_bytes(),
    );
    bytes.extend_from_slice(b"\x1b[201~\x1b[200~");
    bytes.extend(std::iter::repeat_n(b'c', 3 * MAX_PASTE));
    bytes.extend_from_slice(b"\r\x1b[201~!");
    let longest = format!("{}\n", "a".repeat(MAX_PASTE - 1));
    for size in [1000, 1 << 16, bytes.len()] {
        let (decoder, keys) = decode_in_reads(&bytes, size, MAX_PASTE + 1);
        let expected = [
            Key::Paste("before\n".into()),
            Key::Paste(longest.clone()),
            Key::Paste("next\n".into()),
            Key::PasteCut(MAX_PASTE),
            Key::Paste("after\n".into()),
            Key::PasteCut(2 * MAX_PASTE),
            Key::Paste(String::new()),
            // The `\r` ended the dropped line, and went with it.
            Key::PasteCut(3 * MAX_PASTE),
            Key::Paste(String::new()),
            Key::Char('!'),
        ];
        assert_eq!(summary(&keys), summary(&expected), "reads of {size}");
        assert_eq!(keys, expected);
        assert!(decoder.paste.capacity() <= 2 * MAX_PASTE + 2);
    }
}

#[test]
fn the_editor_ignores_escape_and_a_paste_cut() {
    let mut editor = Editor::new(&[]);
    let mut edits = Vec::new();
    let keys = [
        Key::Char('h'),
        Key::Char('i'),
        Key::Left,
        Key::Escape,
        Key::PasteCut(MAX_PASTE),
        Key::Char('!'),
        Key::Enter,
    ];
    for key in keys {
        editor.handle(key, &Vec::new, &mut edits);
    }
    assert_eq!(edits, [Edit::Submit("h!i".into())]);
}

#[test]
fn review_long_paste_pieces_join_to_the_whole_text_whatever_the_reads() {
    // Lines of assorted lengths and line ends, over several pieces, read in assorted sizes.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for round in 0..20 {
        let mut text = Vec::new();
        while text.len() < 3 * PASTE_PIECE {
            let len = [0, 1, 80, 4000, 70_000][next(5) as usize];
            text.extend(std::iter::repeat_n(b'a' + (next(26) as u8), len));
            text.extend_from_slice([&b"\n"[..], b"\r\n", b"\r", b"\xc3\xa9\n"][next(4) as usize]);
        }
        let mut bytes = b"\x1b[200~".to_vec();
        bytes.extend_from_slice(&text);
        bytes.extend_from_slice(b"\x1b[201~");
        let mut decoder = Decoder::new();
        let mut keys = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let n = (1 + next(9000) as usize).min(bytes.len() - at);
            decoder.feed(&bytes[at..at + n], &mut keys);
            at += n;
        }
        let mut joined = String::new();
        for key in &keys {
            match key {
                Key::Paste(p) => joined.push_str(p),
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(joined, clean_paste(&text), "round {round}");
        assert!(keys.len() > 1, "round {round}: handed on in pieces");
    }
}
