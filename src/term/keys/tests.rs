//! The key decoder's tests: every key and sequence, text and sequences cut at every byte.

use super::*;

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

#[test]
fn a_huge_paste_is_cut_but_still_ends_at_its_marker() {
    let mut decoder = Decoder::new();
    let mut keys = Vec::new();
    decoder.feed(b"\x1b[200~", &mut keys);
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..32 {
        decoder.feed(&chunk, &mut keys);
        assert!(decoder.paste.len() <= MAX_PASTE);
    }
    decoder.feed(b"\x1b[201~x", &mut keys);
    assert_eq!(keys.len(), 2);
    match &keys[0] {
        Key::Paste(text) => {
            assert_eq!(text.len(), MAX_PASTE);
            assert!(text.bytes().all(|b| b == b'a'));
        }
        other => panic!("not a paste: {other:?}"),
    }
    assert_eq!(keys[1], Key::Char('x'));
}
