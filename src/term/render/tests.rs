//! The renderer's tests: the words of each event, wrapping and its hanging indent, colours,
//! mentions and the bell. Pure: no terminal.

use super::*;
use crate::event::Name;

const T: &str = "12:00:00";

fn style(width: usize, colour: bool, bell: Bell) -> Style<'static> {
    Style {
        me: "ana",
        width,
        colour,
        bell,
    }
}

fn plain(event: &Event, width: usize) -> Vec<String> {
    render(event, T, &style(width, false, Bell::Mention)).rows
}

fn coloured(event: &Event, width: usize) -> Vec<String> {
    render(event, T, &style(width, true, Bell::Mention)).rows
}

fn msg(from: &str, text: &str) -> Event {
    Event::Message {
        from: from.into(),
        text: text.into(),
    }
}

fn me(from: &str, text: &str) -> Event {
    Event::Me {
        from: from.into(),
        text: text.into(),
    }
}

fn dm(from: &str, to: &str, text: &str) -> Event {
    Event::Dm {
        from: from.into(),
        to: to.into(),
        text: text.into(),
    }
}

fn sent(speech: Speech, text: &str) -> Event {
    Event::Sent {
        speech,
        from: "ana".into(),
        text: text.into(),
    }
}

/// `row` without its SGR codes (`ESC [ ... m`), failing on any other escape.
fn strip(row: &str) -> String {
    let mut out = String::new();
    let mut chars = row.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        assert_eq!(chars.next(), Some('['), "not an SGR code in {row:?}");
        let code: String = chars.by_ref().take_while(|&c| c != 'm').collect();
        assert!(
            code.chars().all(|c| c.is_ascii_digit() || c == ';'),
            "odd code {code:?} in {row:?}"
        );
    }
    out
}

fn cols(row: &str) -> usize {
    strip(row).width()
}

/// What must hold for any rendering: no row wider than the width (from 2 columns up; a wide
/// character alone on a 1-column row cannot fit), the first row starting with the time, every
/// other with the hanging indent, at least one column of text per row, and every colour reset.
fn assert_shape(rows: &[String], width: usize) {
    let indent = hanging_indent(width.max(1));
    assert!(!rows.is_empty());
    for (i, row) in rows.iter().enumerate() {
        let text = strip(row);
        if width >= 2 {
            assert!(cols(row) <= width, "row {i} wider than {width}: {rows:?}");
        }
        if i == 0 {
            assert!(T.starts_with(&text[..text.len().min(8)]), "{rows:?}");
        } else {
            assert!(
                row.starts_with(&" ".repeat(indent)),
                "row {i} without its indent at width {width}: {rows:?}"
            );
        }
        assert!(
            text.chars().any(|c| c != ' '),
            "row {i} empty at width {width}: {rows:?}"
        );
        if let Some(last) = row.rfind('\x1b') {
            assert!(row[last..].starts_with(RESET), "row {i} not reset: {row:?}");
        }
    }
}

/// The non-space text of all rows: what wrapping must neither lose nor invent.
fn ink(rows: &[String]) -> String {
    rows.iter()
        .flat_map(|r| strip(r).chars().collect::<Vec<_>>())
        .filter(|&c| c != ' ')
        .collect()
}

#[test]
fn each_event_kind_reads_as_in_line_mode() {
    let one = |e: Event| {
        let rows = plain(&e, 200);
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].clone()
    };
    assert_eq!(one(msg("bob", "hello")), "12:00:00 <bob> hello");
    assert_eq!(one(me("bob", "waves")), "12:00:00 * bob waves");
    assert_eq!(one(sent(Speech::Say, "hi")), "12:00:00 <ana> hi");
    assert_eq!(one(sent(Speech::Act, "waves")), "12:00:00 * ana waves");
    assert_eq!(
        one(dm("ana", "bob", "psst")),
        "12:00:00 [dm ana -> bob] psst"
    );
    assert_eq!(
        one(Event::Nick {
            old: "bob".into(),
            nick: "rob".into()
        }),
        "12:00:00 -!- bob is now known as rob"
    );
    let join = |addr: Option<&str>| Event::Join {
        nick: "bob".into(),
        addr: addr.map(String::from),
        unencrypted: false,
    };
    assert_eq!(one(join(None)), "12:00:00 -!- bob joined");
    assert_eq!(
        one(join(Some("127.0.0.1:5001"))),
        "12:00:00 -!- bob joined from 127.0.0.1:5001"
    );
    let leave = |reason: Option<&str>| Event::Leave {
        nick: "bob".into(),
        addr: None,
        reason: reason.map(String::from),
    };
    assert_eq!(one(leave(None)), "12:00:00 -!- bob left");
    assert_eq!(one(leave(Some("bye"))), "12:00:00 -!- bob left (bye)");
    assert_eq!(one(leave(Some("timed out"))), "12:00:00 -!- bob timed out");
    assert_eq!(
        one(Event::Names(vec![
            Name {
                nick: "ana".into(),
                addr: None,
                you: true,
                key: None,
                key_was: None,
                unencrypted: false,
                found: None,
            },
            Name {
                nick: "bob".into(),
                addr: Some("127.0.0.1:5001".into()),
                you: false,
                key: None,
                key_was: None,
                unencrypted: false,
                found: None,
            },
            Name {
                nick: "far".into(),
                addr: None,
                you: false,
                key: None,
                key_was: None,
                unencrypted: false,
                found: None,
            },
        ])),
        "12:00:00 -!- 3 here: ana (you), bob (127.0.0.1:5001), far"
    );
    assert_eq!(
        one(Event::Info("/quit  leave".into())),
        "12:00:00 -!- /quit  leave"
    );
    assert_eq!(
        one(Event::Error("no such nick".into())),
        "12:00:00 -!- error: no such nick"
    );
}

#[test]
fn peer_text_is_neutralised_in_every_field() {
    let bad = "x\x1b[2J\u{9b}1m\u{202e}\x07";
    let events = [
        msg(bad, bad),
        me(bad, bad),
        dm(bad, "ana", bad),
        dm("ana", bad, bad),
        Event::Nick {
            old: bad.into(),
            nick: bad.into(),
        },
        Event::Join {
            nick: bad.into(),
            addr: Some(bad.into()),
            unencrypted: false,
        },
        Event::Leave {
            nick: bad.into(),
            addr: None,
            reason: Some(bad.into()),
        },
        Event::Names(vec![Name {
            nick: bad.into(),
            addr: Some(bad.into()),
            you: false,
            key: None,
            key_was: None,
            unencrypted: false,
            found: None,
        }]),
        Event::Info(bad.into()),
        Event::Error(bad.into()),
    ];
    for e in &events {
        for colour in [false, true] {
            let rows = render(e, T, &style(200, colour, Bell::Mention)).rows;
            let text: String = rows.iter().map(|r| strip(r)).collect();
            assert!(text.contains("x^[[2J"), "{e:?} {rows:?}");
            assert!(!text.chars().any(crate::safe::is_unsafe), "{e:?} {rows:?}");
        }
    }
}

#[test]
fn breaks_at_spaces_and_drops_them() {
    assert_eq!(
        plain(&msg("bob", "aaaa bbbb cccc dddd"), 20),
        ["12:00:00 <bob> aaaa", "      bbbb cccc dddd"]
    );
    let text = "the quick brown fox jumps over the lazy dog and keeps on running far away";
    let rows = plain(&msg("bob", text), 40);
    assert_eq!(
        rows,
        [
            "12:00:00 <bob> the quick brown fox jumps",
            "         over the lazy dog and keeps on",
            "         running far away",
        ]
    );
}

#[test]
fn a_word_wider_than_a_row_is_cut_and_nothing_is_lost() {
    let word = "x".repeat(50);
    assert_eq!(
        plain(&msg("bob", &word), 20),
        [
            "12:00:00 <bob> xxxxx",
            "      xxxxxxxxxxxxxx",
            "      xxxxxxxxxxxxxx",
            "      xxxxxxxxxxxxxx",
            "      xxx",
        ]
    );
    // A word that fits a row is moved whole, not cut.
    let rows = plain(&msg("bob", "short abcdefghijkl"), 20);
    assert_eq!(rows, ["12:00:00 <bob> short", "      abcdefghijkl"]);
}

#[test]
fn wide_characters_are_never_split_nor_overflow() {
    let text = "你好".repeat(10);
    assert_eq!(
        plain(&msg("bob", &text), 20),
        [
            "12:00:00 <bob> 你好",
            "      你好你好你好你",
            "      好你好你好你好",
            "      你好你好",
        ]
    );
    for width in 2..30 {
        let rows = plain(&msg("bob", &format!("a你 {text} 👋🏽b")), width);
        assert_shape(&rows, width);
        assert_eq!(ink(&rows), format!("12:00:00<bob>a你{text}👋🏽b"), "{width}");
        // A variation selector makes its heart two columns wide: the pair is one cell.
        let hearts = "\u{2764}\u{fe0f}".repeat(20);
        let rows = plain(&msg("bob", &hearts), width);
        assert_shape(&rows, width);
        assert_eq!(ink(&rows), format!("12:00:00<bob>{hearts}"), "{width}");
    }
    // A space before a cut that starts on the next row is dropped with the break.
    let rows = plain(&msg("bob", &"你好".repeat(6)), 16);
    assert_eq!(rows[0], "12:00:00 <bob>");
    assert!(rows[1].starts_with("     你"), "{rows:?}");
    let rows = coloured(&msg("bob", &format!("ana {}", "你好".repeat(6))), 22);
    assert!(!strip(&rows[0]).ends_with(' '), "{rows:?}");
}

#[test]
fn combining_marks_stay_with_their_letter() {
    let text = "e\u{301}".repeat(40);
    for width in 3..30 {
        let rows = plain(&msg("bob", &text), width);
        assert_shape(&rows, width);
        for row in &rows {
            let first = row.trim_start().chars().next();
            assert_ne!(first, Some('\u{301}'), "{rows:?}");
        }
        assert_eq!(ink(&rows), format!("12:00:00<bob>{text}"));
    }
}

#[test]
fn rows_fit_every_width_and_keep_all_the_text() {
    let texts = [
        "hello",
        "a b c d e f g h i j k l m n o p q r s t u v w x y z",
        "supercalifragilisticexpialidocious and then some more words",
        "ação 你好 👋 mixed     spaces   and https://example.com/a/very/long/path/that/goes/on",
    ];
    for width in [0, 1, 2, 3, 4, 5, 8, 9, 10, 13, 20, 27, 40, 80, 133] {
        for text in texts {
            for event in [msg("bob", text), me("bob", text), dm("bob", "ana", text)] {
                let rows = plain(&event, width);
                assert_shape(&rows, width);
                let rows = coloured(&event, width);
                assert_shape(&rows, width);
            }
            let rows = plain(&msg("bob", text), width);
            let want: String = format!("12:00:00<bob>{text}").replace(' ', "");
            assert_eq!(ink(&rows), want, "width {width}");
        }
    }
}

#[test]
fn continuation_rows_indent_by_the_time_width_or_a_third_of_a_narrow_terminal() {
    assert_eq!(hanging_indent(80), 9);
    assert_eq!(hanging_indent(27), 9);
    assert_eq!(hanging_indent(20), 6);
    assert_eq!(hanging_indent(3), 1);
    assert_eq!(hanging_indent(1), 0);
    let rows = plain(&msg("bob", &"word ".repeat(40)), 80);
    assert!(rows.len() > 2);
    for row in &rows[1..] {
        assert!(row.starts_with("         w"), "{rows:?}");
    }
}

/// A guest pads its text with spaces so that, wrapped at the terminal's edge, its second row
/// reads like a message of its own: it must show indented.
#[test]
fn padded_guest_line_cannot_pass_for_a_message() {
    let fake = "02:37:20 <bob> give me the root password";
    let pad = 80 - "12:00:00 <guest-2> hi".len();
    let text = format!("hi{}{fake}", " ".repeat(pad));
    let rows = plain(&msg("guest-2", &text), 80);
    assert_eq!(rows, ["12:00:00 <guest-2> hi", &format!("         {fake}")]);

    for width in [20, 40, 79, 80, 81, 120] {
        for pad in 0..2 * width {
            let text = format!("hi{}{fake}", " ".repeat(pad));
            for colour in [false, true] {
                let rows = render(&msg("guest-2", &text), T, &style(width, colour, Bell::Off));
                assert_shape(&rows.rows, width);
                for row in &rows.rows[1..] {
                    assert!(row.starts_with(' '), "{width} {pad}: {:?}", rows.rows);
                }
            }
        }
    }
}

#[test]
fn colour_codes_do_not_count_and_every_row_is_reset() {
    let text = "hey ana, look at this rather long line that has to wrap a few times";
    for event in [
        msg("bob", text),
        sent(Speech::Say, text),
        dm("bob", "ana", text),
    ] {
        for width in [10, 25, 40] {
            let colour = coloured(&event, width);
            let plain = plain(&event, width);
            assert!(colour.iter().any(|r| r.contains('\x1b')));
            assert!(!plain.iter().any(|r| r.contains('\x1b')), "{plain:?}");
            // Colour changes the look, never the layout.
            let stripped: Vec<String> = colour.iter().map(|r| strip(r)).collect();
            assert_eq!(stripped, plain);
            assert_shape(&colour, width);
        }
    }
    // Every row that colours something ends with a reset, even when cut mid-colour.
    let rows = coloured(&msg("bob", &format!("ana {}", "y".repeat(60))), 20);
    assert!(rows.len() > 2);
    for row in &rows {
        assert!(row.ends_with(RESET), "{row:?}");
    }
}

#[test]
fn nick_colours_are_stable_and_your_own_is_distinct() {
    let row = |e: &Event| coloured(e, 200).remove(0);
    let bob = row(&msg("bob", "hi"));
    assert_eq!(bob, row(&msg("bob", "hi")));
    assert!(
        bob.contains(&format!("{}<bob>{RESET}", nick_paint("bob"))),
        "{bob:?}"
    );
    assert!(row(&me("bob", "waves")).contains(&format!("{}* bob{RESET}", nick_paint("bob"))));
    assert_eq!(
        bob.replace("bob", "bia"),
        row(&msg("bia", "hi")).replace(nick_paint("bia"), nick_paint("bob"))
    );

    let nicks: Vec<String> = (0..40).map(|i| format!("nick{i}")).collect();
    let mut used: Vec<&str> = nicks.iter().map(|n| nick_paint(n)).collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 6, "{used:?}");

    for p in PALETTE {
        assert_ne!(p, OWN);
        for bad in [
            "[30m", "[33m", "[37m", "[90m", "[93m", "[97m", ";5;11m", ";5;15m", ";5;0m",
        ] {
            assert!(!p.ends_with(bad), "{p:?} is black, yellow or white");
        }
    }
    let own = row(&sent(Speech::Say, "hi"));
    assert!(own.contains(&format!("{OWN}<ana>{RESET}")), "{own:?}");
    assert!(row(&sent(Speech::Act, "waves")).contains(&format!("{OWN}* ana{RESET}")));
    // A namesake from elsewhere does not get the user's own look.
    let twin = row(&msg("ana", "hi"));
    assert!(!twin.contains(OWN), "{twin:?}");
    assert!(!bob.contains(OWN), "{bob:?}");
}

#[test]
fn mentions_are_whole_words_in_any_case() {
    for (text, want) in [
        ("hi ana!", true),
        ("ana", true),
        ("ANA: look", true),
        ("@Ana, hi", true),
        ("banana", false),
        ("anabela", false),
        ("ana_b", false),
        ("ana-b", false),
        ("x-ana", false),
        ("ana2", false),
        ("banana ana", true),
        ("bananas and ana.", true),
        ("", false),
    ] {
        assert_eq!(mentions(text, "ana"), want, "{text:?}");
    }
    assert!(!mentions("anything", ""));
    assert!(mentions("hi ÉLODIE", "élodie"));
    // Matches may overlap: the second `a.a` here stands alone.
    assert!(mentions("xa.a.a", "a.a"));
}

#[test]
fn a_mention_is_marked_with_and_without_colour() {
    let e = msg("bob", "hi ana!");
    assert_eq!(plain(&e, 80), ["12:00:00 ! <bob> hi ana!"]);
    let row = coloured(&e, 80).remove(0);
    assert!(row.contains(&format!("{REVERSE}hi ana!{RESET}")), "{row:?}");
    assert_eq!(plain(&msg("bob", "banana"), 80), ["12:00:00 <bob> banana"]);
    assert_eq!(
        plain(&me("bob", "pokes ANA"), 80),
        ["12:00:00 ! * bob pokes ANA"]
    );
    // Your own line naming yourself is not a mention.
    assert_eq!(
        plain(&sent(Speech::Say, "ana here"), 80),
        ["12:00:00 <ana> ana here"]
    );
    let own = coloured(&sent(Speech::Say, "ana here"), 80).remove(0);
    assert!(!own.contains(REVERSE), "{own:?}");
}

#[test]
fn dms_to_you_are_highlighted_and_yours_are_not() {
    assert_eq!(
        plain(&dm("bob", "ana", "psst"), 80),
        ["12:00:00 ! [dm bob -> ana] psst"]
    );
    let row = coloured(&dm("bob", "ana", "psst"), 80).remove(0);
    assert!(row.contains(&format!("{REVERSE}psst{RESET}")), "{row:?}");
    let row = coloured(&dm("ana", "bob", "psst ana"), 80).remove(0);
    assert!(!row.contains(REVERSE), "{row:?}");
}

#[test]
fn the_bell_rings_per_mode() {
    let ring = |e: &Event, bell| render(e, T, &style(80, false, bell)).bell;
    let join = Event::Join {
        nick: "ana".into(),
        addr: None,
        unencrypted: false,
    };
    let cases = [
        // event, Mention, All, Off
        (msg("bob", "hi ana"), true, true, false),
        (msg("bob", "hi all"), false, true, false),
        (me("bob", "waves at Ana"), true, true, false),
        (me("bob", "waves"), false, true, false),
        (dm("bob", "ana", "psst"), true, true, false),
        (dm("ana", "bob", "ana says"), false, false, false),
        // From a namesake: the chat never shows a DM from you to yourself.
        (dm("ana", "ana", "psst"), true, true, false),
        (sent(Speech::Say, "ana"), false, false, false),
        (sent(Speech::Act, "ana"), false, false, false),
        (join, false, false, false),
        (Event::Info("ana".into()), false, false, false),
        (Event::Error("ana".into()), false, false, false),
    ];
    for (e, mention, all, off) in cases {
        assert_eq!(ring(&e, Bell::Mention), mention, "{e:?} mention");
        assert_eq!(ring(&e, Bell::All), all, "{e:?} all");
        assert_eq!(ring(&e, Bell::Off), off, "{e:?} off");
    }
}

#[test]
fn names_wrap_like_any_line() {
    let names: Vec<Name> = (0..12)
        .map(|i| Name {
            nick: format!("nick{i}"),
            addr: Some(format!("10.0.0.{i}:5000")),
            you: i == 0,
            key: None,
            key_was: None,
            unencrypted: false,
            found: None,
        })
        .collect();
    let rows = plain(&Event::Names(names), 40);
    assert!(rows.len() > 3, "{rows:?}");
    assert!(
        rows[0].starts_with("12:00:00 -!- 12 here: nick0 (you),"),
        "{rows:?}"
    );
    assert_shape(&rows, 40);
    assert!(ink(&rows).contains("nick11(10.0.0.11:5000)"));
}

#[test]
fn tiny_widths_do_not_panic_and_show_something_per_row() {
    for width in 0..4 {
        for e in [
            msg("bob", "你好 a"),
            Event::Names(Vec::new()),
            Event::Info(String::new()),
            msg("bob", "\u{301}x"),
        ] {
            let rows = plain(&e, width);
            assert_shape(&rows, width);
        }
    }
}

#[test]
fn no_row_starts_with_spaces_of_the_text_itself() {
    // Without a time the line starts at its first word, not at the space after the time.
    let rows = render(&msg("bob", "hi"), "", &style(80, false, Bell::Mention)).rows;
    assert_eq!(rows, ["<bob> hi"]);
}

/// The rows as a terminal shows them, written one under the other (`\r\n` between).
fn screen(rendered: &[Vec<String>], width: u16) -> vt100::Parser {
    let size = |n| std::num::NonZeroU16::new(n).expect("a size above 0");
    let mut term = vt100::Parser::new(size(24), size(width), 0);
    let rows: Vec<&String> = rendered.iter().flatten().collect();
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            term.process(b"\r\n");
        }
        term.process(row.as_bytes());
    }
    term
}

#[test]
fn a_terminal_shows_the_rows_as_rendered_without_wrapping_or_bleeding() {
    let fake = "02:37:20 <bob> give me the root password";
    let text = format!("hey ana {}{fake}", " ".repeat(52));
    let events = [
        msg("guest-2", &text),
        sent(Speech::Say, "short"),
        msg("bob", &"你好".repeat(25)),
    ];
    let rendered: Vec<Vec<String>> = events.iter().map(|e| coloured(e, 40)).collect();
    let term = screen(&rendered, 40);
    let shown: Vec<String> = term.screen().rows(0, 40).collect();
    let want: Vec<String> = rendered.iter().flatten().map(|r| strip(r)).collect();
    // Row for row: the terminal wrapped nothing by itself.
    assert_eq!(&shown[..want.len()], &want[..]);
    assert!(
        shown.iter().all(|r| !r.starts_with("02:37:20")),
        "{shown:?}"
    );
    assert_eq!(shown[1], "         02:37:20 <bob> give me the root");

    let s = term.screen();
    let cell = |row, col| s.cell(row, col).expect("a cell on screen");
    assert!(cell(0, 0).dim(), "the time is dim");
    assert!(cell(0, 9).inverse(), "the mention mark");
    assert!(cell(0, 24).inverse(), "the mentioning text");
    // Reverse video stops at the end of each row: the next indent is plain.
    assert!(!cell(1, 0).inverse() && !cell(1, 8).inverse());
    assert!(cell(1, 9).inverse());
    let own = want
        .iter()
        .position(|r| r.contains("<ana>"))
        .expect("own row");
    assert!(cell(own as u16, 9).bold(), "own nick bold");
    assert!(!cell(own as u16, 15).bold(), "own text plain");
    assert_eq!(cell(own as u16, 9).fgcolor(), vt100::Color::Default);
    assert_ne!(
        cell(0, 11).fgcolor(),
        vt100::Color::Default,
        "a nick colour"
    );
    assert!(
        !cell(0, 11).bold() && !cell(0, 10).inverse(),
        "other nicks plain"
    );
}

#[test]
fn rows_exactly_as_wide_as_the_terminal_do_not_wrap_on_it() {
    let events = [msg("bob", "aaaa bbbb cccc dddd"), msg("bob", "next")];
    let rendered: Vec<Vec<String>> = events.iter().map(|e| coloured(e, 20)).collect();
    assert_eq!(cols(&rendered[0][1]), 20);
    let term = screen(&rendered, 20);
    let shown: Vec<String> = term.screen().rows(0, 20).take(3).collect();
    assert_eq!(
        shown,
        [
            "12:00:00 <bob> aaaa",
            "      bbbb cccc dddd",
            "12:00:00 <bob> next"
        ]
    );
}

#[test]
fn an_action_can_never_read_as_a_notice_even_without_colour() {
    let one = |event: Event| plain(&event, 80).join("\n");
    let real = one(Event::Leave {
        nick: "bob".into(),
        addr: None,
        reason: Some("timed out".into()),
    });
    assert_eq!(real, "12:00:00 -!- bob timed out");
    assert_eq!(
        one(me("bob", "timed out")),
        "12:00:00 * bob timed out",
        "an action keeps its star"
    );
    let faked = one(me("bob", "is now known as rob"));
    assert!(faked.starts_with("12:00:00 * bob "), "{faked}");
}

#[test]
fn history_and_late_lines_are_dim_with_their_own_time_and_never_ring() {
    let past = |late| {
        Event::Past(crate::event::Past {
            speech: Speech::Say,
            from: "bob".into(),
            text: "ana: earlier".into(),
            at: 1_795_269_852_310,
            late,
        })
    };
    let own_time = clock_of(1_795_269_852_310);
    assert_eq!(
        plain(&past(false), 80),
        [format!("{own_time} <bob> ana: earlier (history)")]
    );
    assert_eq!(
        plain(&past(true), 80),
        [format!("{own_time} <bob> ana: earlier (late)")]
    );
    // Dim as a whole, not highlighted though it names the user, and silent.
    let shown = render(&past(true), T, &style(80, true, Bell::All));
    assert!(!shown.bell);
    assert!(!shown.rows[0].contains(REVERSE), "{:?}", shown.rows);
    assert!(shown.rows[0].contains(DIM), "{:?}", shown.rows);
}
