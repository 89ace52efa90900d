//! The interactive terminal front end as a person sees it: peerchat runs on a real pty (see
//! `pty`) and each test asserts on the screen of a terminal model, never on escape codes. The
//! other peers are piped JSON nodes or raw TCP guests on loopback.
//!
//! Must not test the key decoder or the editor as pure code (their unit tests do that).

use crate::pty::{ScreenExt, Spec, Term};
use crate::util::{Node, Raw};

/// `TERM=dumb` on the same pty.
fn dumb() -> Spec<'static> {
    Spec {
        term: Some("dumb"),
        ..Spec::default()
    }
}

/// Whether `s` reads `HH:MM:SS`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

/// Whether `row` is a transcript line `HH:MM:SS REST` (trailing blanks aside), or one with a
/// highlight mark, `HH:MM:SS M REST`.
fn stamped(row: &str, rest: &str) -> bool {
    let Some(after) = row.get(9..).map(str::trim_end) else {
        return false;
    };
    let marked = |a: &str| {
        let mut chars = a.chars();
        chars.next().is_some_and(|c| c != ' ' && c != '<')
            && chars.as_str().strip_prefix(' ') == Some(rest)
    };
    row.get(..8).is_some_and(is_stamp)
        && row.get(8..9) == Some(" ")
        && (after == rest || marked(after))
}

/// The row of the screen that is the transcript line `HH:MM:SS REST`.
fn line_at(s: &vt100::Screen, rest: &str) -> Option<usize> {
    s.all_rows().iter().position(|r| stamped(r, rest))
}

/// Waits for the transcript line `HH:MM:SS REST`.
fn wait_line(t: &Term, rest: &str) {
    t.wait_screen_value(&format!("the line {rest:?}"), |s| line_at(s, rest));
}

/// Waits for the transcript line `HH:MM:SS REST` with the prompt drawn again after it: by then
/// everything written for that line (its bell too) is on the screen model.
fn wait_settled(t: &Term, rest: &str) {
    t.wait_screen(&format!("the line {rest:?}, then the prompt"), |s| {
        let last = s.size().0.get() - 1;
        line_at(s, rest).is_some() && s.bottom().contains("> ") && s.cursor_position().0 == last
    });
}

/// Waits until the transcript shows every line of `rests` at once; their rows then (rows move
/// as the transcript scrolls, so they are only compared within one screen).
fn wait_lines(t: &Term, rests: &[&str]) -> Vec<usize> {
    t.wait_screen_value(&format!("the lines {rests:?}"), |s| {
        rests.iter().map(|r| line_at(s, r)).collect()
    })
}

/// Waits until the bottom row is the prompt `NICK> TYPED` with the cursor at column `col`.
fn wait_prompt_at(t: &Term, nick: &str, typed: &str, col: u16) {
    let want = format!("{nick}> {typed}");
    t.wait_screen(
        &format!("the prompt row {want:?} with the cursor at column {col}"),
        |s| {
            let last = s.size().0.get() - 1;
            s.bottom().trim_end() == want.trim_end() && s.cursor_position() == (last, col)
        },
    );
}

/// Waits until the bottom row is `ana> TYPED` (ASCII) with the cursor after it.
fn wait_prompt(t: &Term, typed: &str) {
    let col = u16::try_from(5 + typed.chars().count()).expect("a short line");
    wait_prompt_at(t, "ana", typed, col);
}

/// A listening JSON node `hub` and `ana` on the pty connected to it, prompt shown.
fn hub_and_ana(extra: &[&str]) -> (Node, Term, u16) {
    let (mut hub, port) = Node::listener("hub", &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![addr.as_str(), "--nick", "ana"];
    args.extend_from_slice(extra);
    let t = Term::start(&args);
    // The prompt first: a usage error shows on the screen rather than as a silent hub.
    wait_prompt(&t, "");
    hub.wait_join("ana");
    (hub, t, port)
}

#[test]
fn dumb_terminal_on_a_pty_shows_peer_lines_as_today() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::start_with(&dumb(), &[&addr, "--nick", "bia"]);
    hub.wait_join("bia");
    hub.send("hello from the hub");
    wait_line(&t, "<hub> hello from the hub");
    // Line mode: what is typed is echoed by the terminal itself and sent on Enter.
    t.type_str("oi\r");
    hub.wait_message("bia", "oi");
    assert!(
        t.termios_is_cooked(),
        "line mode leaves the terminal cooked"
    );
}

#[test]
fn dumb_terminal_ctrl_z_stops_and_sigcont_resumes_and_ctrl_c_ends() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::start_with(&dumb(), &[&addr, "--nick", "bia"]);
    hub.wait_join("bia");
    // The pty is peerchat's controlling terminal, its job in the foreground: the terminal's
    // own Ctrl-Z stops it, as in a shell.
    t.send(b"\x1a");
    t.wait_state('T');
    t.signal(libc::SIGCONT);
    t.type_str("back\r");
    hub.wait_message("bia", "back");
    t.send(b"\x03");
    hub.wait_leave("bia");
    assert_eq!(t.wait_exit().code(), Some(130), "{}", t.framed());
}

#[test]
fn dumb_or_unset_term_keeps_line_mode_on_a_pty() {
    for spec in [
        dumb(),
        Spec {
            term: None,
            ..Spec::default()
        },
    ] {
        let (mut hub, port) = Node::listener("hub", &[]);
        let addr = format!("127.0.0.1:{port}");
        let mut t = Term::start_with(&spec, &[&addr, "--nick", "ana"]);
        hub.wait_join("ana");
        // Nothing more to print before the echo of what is typed, which must get a row alone.
        t.wait_text("hub joined");
        t.type_str("hello\r");
        hub.wait_message("ana", "hello");
        hub.send("hey ana, after you");
        wait_line(&t, "<hub> hey ana, after you");
        let screen = t.framed();
        // No prompt, no own line in the transcript (the terminal echoed what was typed), no
        // bell, no raw mode, no bracketed paste: today's line behaviour.
        assert!(!screen.contains("ana> "), "TERM={:?}: {screen}", spec.term);
        assert!(
            !screen.contains("<ana> hello"),
            "TERM={:?}: {screen}",
            spec.term
        );
        assert!(t.rows().iter().any(|r| r == "hello"), "{screen}");
        assert_eq!(t.bells(), 0, "TERM={:?}: {screen}", spec.term);
        assert!(t.termios_is_cooked(), "TERM={:?}", spec.term);
        assert!(!t.bracketed_paste(), "TERM={:?}", spec.term);
    }
}

#[test]
fn the_first_screen_says_how_to_get_help_and_leave_above_the_prompt() {
    let (_hub, t, _) = hub_and_ana(&[]);
    t.wait_screen("a line naming /help and /quit above the prompt", |s| {
        let rows = s.all_rows();
        rows[..rows.len() - 1]
            .iter()
            .any(|r| r.contains("/help") && r.contains("/quit"))
    });
    assert!(t.termios_is_raw(), "raw mode on; {}", t.framed());
    assert!(t.bracketed_paste(), "bracketed paste asked for");
}

#[test]
fn a_half_typed_line_stays_whole_on_the_prompt_row_under_incoming_messages() {
    let (mut hub, mut t, port) = hub_and_ana(&[]);
    t.type_str("this is a long line");
    wait_prompt(&t, "this is a long line");
    hub.send("msg one from hub");
    hub.send("msg two");
    wait_lines(&t, &["<hub> msg one from hub", "<hub> msg two"]);
    // The third from a guest (nc), relayed by the hub.
    let mut guest = Raw::connect(port);
    guest.send(b"msg three from a guest\n");
    t.wait_screen("the three messages in order above the prompt", |s| {
        let rows = s.all_rows();
        let one = line_at(s, "<hub> msg one from hub");
        let two = line_at(s, "<hub> msg two");
        let three = rows
            .iter()
            .position(|r| r.trim_end().ends_with("> msg three from a guest"));
        matches!((one, two, three), (Some(a), Some(b), Some(c)) if a < b && b < c && c + 1 < rows.len())
    });
    wait_prompt(&t, "this is a long line");
    let rows = t.rows();
    assert!(
        rows[..rows.len() - 1]
            .iter()
            .all(|r| !r.contains("this is a")),
        "what is typed leaked into the transcript:\n{}",
        t.framed()
    );
    t.type_str(" that I am typing\r");
    hub.wait_message("ana", "this is a long line that I am typing");
    wait_line(&t, "<ana> this is a long line that I am typing");
    wait_prompt(&t, "");
}

#[test]
fn editing_keys_change_the_line_where_the_cursor_is() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("helo");
    t.key("Left");
    t.type_str("l");
    wait_prompt_at(&t, "ana", "hello", 9);
    t.key("End");
    t.type_str(" worldd");
    t.key("Backspace");
    wait_prompt(&t, "hello world");
    t.key("Ctrl-W");
    wait_prompt_at(&t, "ana", "hello", 11);
    t.type_str("there");
    t.key("Home");
    wait_prompt_at(&t, "ana", "hello there", 5);
    t.key("Delete");
    t.type_str("H");
    wait_prompt_at(&t, "ana", "Hello there", 6);
    t.key("Ctrl-E");
    t.key("Ctrl-B");
    t.key("Ctrl-B");
    t.key("Ctrl-K");
    wait_prompt(&t, "Hello the");
    t.key("Ctrl-A");
    t.key("Ctrl-F");
    wait_prompt_at(&t, "ana", "Hello the", 6);
    t.key("Enter");
    hub.wait_message("ana", "Hello the");
    // Ctrl-U at the end of the line takes all of it.
    t.type_str("junk junk");
    wait_prompt(&t, "junk junk");
    t.key("Ctrl-U");
    wait_prompt(&t, "");
    t.type_str("ok\r");
    hub.wait_message("ana", "ok");
    let sent: Vec<String> = hub
        .events()
        .iter()
        .filter(|v| v["event"] == "message" && v["from"] == "ana")
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(sent, ["Hello the", "ok"]);
}

#[test]
fn wide_and_combining_characters_take_their_columns_on_the_prompt() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("a你好👋b");
    // CJK and emoji are two columns each.
    wait_prompt_at(&t, "ana", "a你好👋b", 13);
    t.key("Left");
    t.key("Left");
    wait_prompt_at(&t, "ana", "a你好👋b", 10);
    t.key("Backspace");
    wait_prompt_at(&t, "ana", "a你👋b", 8);
    // A combining accent takes no column of its own.
    t.type_str("e\u{301}");
    wait_prompt_at(&t, "ana", "a你e\u{301}👋b", 9);
    t.key("Enter");
    hub.wait_message("ana", "a你e\u{301}👋b");
}

#[test]
fn up_and_down_walk_the_lines_sent_and_enter_sends_one_again() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("first\r");
    hub.wait_message("ana", "first");
    t.type_str("second\r");
    hub.wait_message("ana", "second");
    t.key("Up");
    wait_prompt(&t, "second");
    t.key("Up");
    wait_prompt(&t, "first");
    t.key("Down");
    wait_prompt(&t, "second");
    t.key("Up");
    wait_prompt(&t, "first");
    t.key("Enter");
    hub.wait_message("ana", "first");
    wait_prompt(&t, "");
}

#[test]
fn tab_completes_a_nick_at_the_start_and_a_command() {
    let (mut hub, mut t, port) = hub_and_ana(&[]);
    let mut bob = Node::client("bob", port, &[]);
    bob.wait_join("ana");
    // The only place bob's name can come from: the notice of his joining.
    t.wait_text("bob");
    t.type_str("bo");
    t.key("Tab");
    wait_prompt_at(&t, "ana", "bob:", 10);
    t.type_str("hi\r");
    hub.wait_message("ana", "bob: hi");
    bob.wait_message("ana", "bob: hi");
    t.type_str("/na");
    t.key("Tab");
    t.wait_screen("/names completed", |s| {
        s.bottom().trim_end() == "ana> /names"
    });
    t.key("Ctrl-U");
    t.type_str("/qu");
    t.key("Tab");
    t.wait_screen("/quit completed", |s| s.bottom().trim_end() == "ana> /quit");
}

#[test]
fn own_lines_and_me_show_in_the_transcript_in_order() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("hello all\r");
    hub.wait_message("ana", "hello all");
    wait_line(&t, "<ana> hello all");
    hub.send("between");
    wait_line(&t, "<hub> between");
    t.type_str("/me waves\r");
    hub.wait_event(|v| v["event"] == "me" && v["from"] == "ana" && v["text"] == "waves");
    let at = wait_lines(&t, &["<ana> hello all", "<hub> between", "* ana waves"]);
    assert!(at[0] < at[1] && at[1] < at[2], "{}", t.framed());
    wait_prompt(&t, "");
}

/// The rows of the message from `from` whose text starts with `first_word`, up to and
/// including the row that contains `last_word`, with whether the terminal wrapped each.
fn message_rows(
    s: &vt100::Screen,
    from: &str,
    first_word: &str,
    last_word: &str,
) -> Option<Vec<(String, bool)>> {
    let rows = s.all_rows();
    let head = format!("<{from}> {first_word}");
    let first = rows
        .iter()
        .position(|r| r.get(9..).is_some_and(|r| r.starts_with(&head)))?;
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate().skip(first) {
        out.push((r.clone(), s.row_wrapped(u16::try_from(i).ok()?)));
        if r.contains(last_word) {
            return Some(out);
        }
    }
    None
}

/// Checks that the message `text` from `from` shows as `HH:MM:SS <from> ...` then continuation
/// rows indented 9 columns, wrapped by peerchat (not by the terminal).
fn assert_hanging(t: &Term, from: &str, text: &str) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (first_word, last_word) = (words[0], words[words.len() - 1]);
    let (rows, screen) = t.wait_screen_value("the message's rows", |s| {
        message_rows(s, from, first_word, last_word).map(|rows| (rows, s.framed()))
    });
    assert!(rows.len() >= 2, "the message takes several rows:\n{screen}");
    assert!(
        rows.iter().all(|(_, wrapped)| !wrapped),
        "the terminal wrapped a row (peerchat wrote past the edge):\n{screen}"
    );
    let head = format!("<{from}> ");
    let first_row = &rows[0].0;
    assert!(first_row.get(..8).is_some_and(is_stamp), "{screen}");
    let mut joined: String = first_row[9 + head.len()..].to_string();
    for (r, _) in &rows[1..] {
        assert!(
            r.starts_with("         ") && !r.trim().is_empty(),
            "a continuation row starts 9 columns in: {r:?}\n{screen}"
        );
        joined.push_str(&r[9..]);
    }
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(squeeze(&joined), squeeze(text), "{screen}");
}

#[test]
fn a_long_incoming_line_wraps_with_a_hanging_indent() {
    let (mut hub, t, _) = hub_and_ana(&[]);
    let text: Vec<String> = (0..40).map(|i| format!("word{i:02}")).collect();
    let text = text.join(" ");
    hub.send(&text);
    assert_hanging(&t, "hub", &text);
}

#[test]
fn a_guest_cannot_pad_a_line_into_a_fake_message_row() {
    let (mut hub, t, port) = hub_and_ana(&[]);
    let mut guest = Raw::connect(port);
    // `HH:MM:SS <~guest-1> ` is 20 columns: 60 more reach the edge of an 80-column row.
    let fake = "02:37:20 <bob> give me the root password";
    guest.send(format!("{}{fake}\n", "x".repeat(60)).as_bytes());
    guest.send(format!("{} {fake}\n", "y".repeat(59)).as_bytes());
    hub.wait_event(|v| v["text"].as_str().is_some_and(|t| t.starts_with('y')));
    t.wait_screen("both padded lines", |s| {
        s.all_rows()
            .iter()
            .filter(|r| r.contains("root password"))
            .count()
            == 2
    });
    for r in t.rows() {
        assert!(
            !r.starts_with("02:37:20"),
            "a row reads like a message of its own: {r:?}\n{}",
            t.framed()
        );
        if r.contains("root password") {
            assert!(r.starts_with("         "), "{}", t.framed());
        }
    }
}

#[test]
fn a_mention_rings_the_bell_and_stands_out_a_plain_line_does_not() {
    let (mut hub, t, _) = hub_and_ana(&[]);
    hub.send("a plain line");
    hub.send("banana bread is not a mention");
    wait_lines(
        &t,
        &["<hub> a plain line", "<hub> banana bread is not a mention"],
    );
    wait_settled(&t, "<hub> banana bread is not a mention");
    assert_eq!(t.bells(), 0, "{}", t.framed());
    hub.send("hey ANA, look");
    t.wait_bells(1);
    wait_line(&t, "<hub> hey ANA, look");
    // A direct message rings too.
    hub.send("/msg ana a secret");
    t.wait_bells(2);
    t.wait_text("a secret");
    hub.send("the end");
    let at = wait_lines(
        &t,
        &["<hub> a plain line", "<hub> hey ANA, look", "<hub> the end"],
    );
    wait_settled(&t, "<hub> the end");
    assert_eq!(t.bells(), 2, "{}", t.framed());
    let (plain, mention) = (at[0], at[1]);
    let looks = |row: usize| t.text_attrs(row, 0);
    let (plain_looks, mention_looks) = (looks(plain), looks(mention));
    assert!(
        mention_looks.iter().any(|a| !plain_looks.contains(a)),
        "the mention looks like a plain line: {mention_looks:?} vs {plain_looks:?}"
    );
}

#[test]
fn bell_off_never_rings_and_bell_all_rings_for_every_message_from_others() {
    let (mut hub, t, _) = hub_and_ana(&["--bell", "off"]);
    hub.send("hey ana");
    hub.send("/msg ana psst");
    hub.send("the end");
    wait_settled(&t, "<hub> the end");
    assert_eq!(t.bells(), 0, "{}", t.framed());
    drop(t);

    let (mut hub, mut t, _) = hub_and_ana(&["--bell", "all"]);
    hub.send("one");
    hub.send("two");
    t.wait_bells(2);
    t.type_str("mine\r");
    wait_line(&t, "<ana> mine");
    hub.send("three");
    wait_line(&t, "<hub> three");
    t.wait_bells(3);
    hub.send("the end");
    wait_settled(&t, "<hub> the end");
    assert_eq!(t.bells(), 4, "own lines do not ring: {}", t.framed());
}

#[test]
fn nicks_have_colours_of_their_own_and_keep_them() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    hub.send("first from hub");
    wait_line(&t, "<hub> first from hub");
    t.type_str("from me\r");
    wait_line(&t, "<ana> from me");
    hub.send("second from hub");
    let at = wait_lines(
        &t,
        &[
            "<hub> first from hub",
            "<ana> from me",
            "<hub> second from hub",
        ],
    );
    let (a, me, b) = (at[0], at[1], at[2]);
    // Column 10 is the nick's first letter, after `HH:MM:SS <`.
    let look = |row: usize| t.cell_attrs(row, 10);
    assert_eq!(look(a), look(b), "a nick keeps its colour");
    assert_ne!(look(a).0, vt100::Color::Default, "nicks are coloured");
    assert_ne!(look(me), look(a), "your own nick stands apart");
}

/// Checks that the terminal is in raw mode now, and cooked again once `leave` made peerchat
/// end with `code`.
fn leaves_cooked(leave: impl FnOnce(&mut Node, &mut Term), code: i32) {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    assert!(t.termios_is_raw(), "raw mode while running");
    leave(&mut hub, &mut t);
    hub.wait_leave("ana");
    assert_eq!(t.wait_exit().code(), Some(code), "{}", t.framed());
    assert!(t.termios_is_cooked(), "the terminal is cooked again");
    assert!(!t.bracketed_paste(), "bracketed paste is off again");
}

#[test]
fn quit_restores_the_terminal() {
    leaves_cooked(|_, t| t.type_str("/quit\r"), 0);
}

#[test]
fn ctrl_d_on_an_empty_line_leaves_and_restores_the_terminal() {
    leaves_cooked(
        |hub, t| {
            // Not on a line with text in it.
            t.type_str("x");
            t.key("Ctrl-D");
            t.key("Enter");
            hub.wait_message("ana", "x");
            wait_prompt(t, "");
            t.key("Ctrl-D");
        },
        0,
    );
}

#[test]
fn sigterm_restores_the_terminal() {
    leaves_cooked(|_, t| t.signal(libc::SIGTERM), 143);
}

#[test]
fn ctrl_c_leaves_as_today_and_restores_the_terminal() {
    leaves_cooked(|_, t| t.key("Ctrl-C"), 130);
}

#[test]
fn ctrl_z_suspends_cooked_and_sigcont_resumes_raw_with_the_line_redrawn() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("half typed");
    wait_prompt(&t, "half typed");
    t.key("Ctrl-Z");
    t.wait_state('T');
    assert!(t.termios_is_cooked(), "cooked while stopped");
    // What the shell prints meanwhile, then `fg`: the prompt row scrolls away.
    t.shell_writes(b"\r\n[1]+  Stopped                 peerchat\r\n$ fg\r\n");
    t.signal(libc::SIGCONT);
    wait_prompt(&t, "half typed");
    assert!(t.termios_is_raw(), "raw again after fg");
    hub.send("after fg");
    wait_line(&t, "<hub> after fg");
    t.type_str(" and done\r");
    hub.wait_message("ana", "half typed and done");
}

#[test]
fn ctrl_l_redraws_the_prompt() {
    let (_hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("typed");
    wait_prompt(&t, "typed");
    t.shell_writes(b"\x1b[2J\x1b[1;1Hgarbage");
    t.key("Ctrl-L");
    wait_prompt(&t, "typed");
}

#[test]
fn a_resize_redraws_at_the_new_size() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    hub.send("before the resize");
    wait_line(&t, "<hub> before the resize");
    // 64 columns with the prompt: wider than the new width, narrower than the old one.
    let words: Vec<String> = (0..12).map(|i| format!("w{i:03}")).collect();
    let typed = words.join(" ");
    t.type_str(&typed);
    wait_prompt(&t, &typed);
    t.resize(40, 12);
    // The terminal cut the row at 40 columns; peerchat draws the end of the line again.
    t.wait_screen("the end of the line on row 11, the cursor after it", |s| {
        let (row, col) = s.cursor_position();
        s.row(11).starts_with("ana> ")
            && s.row(11).trim_end().ends_with("w010 w011")
            && row == 11
            && col < 40
    });
    let text: Vec<String> = (0..15).map(|i| format!("word{i:02}")).collect();
    let text = text.join(" ");
    hub.send(&text);
    assert_hanging(&t, "hub", &text);
    t.resize(80, 24);
    wait_prompt(&t, &typed);
    t.key("Enter");
    hub.wait_message("ana", &typed);
}

#[test]
fn a_paste_of_two_lines_sends_both_in_order() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.wait_screen("bracketed paste on", |s| s.bracketed_paste());
    t.send(b"\x1b[200~first pasted\rsecond pasted\r\x1b[201~");
    hub.wait_message("ana", "first pasted");
    hub.wait_message("ana", "second pasted");
    let at = wait_lines(&t, &["<ana> first pasted", "<ana> second pasted"]);
    assert!(at[0] < at[1], "{}", t.framed());
    wait_prompt(&t, "");
    // A paste without a line end is only typed.
    t.send(b"\x1b[200~not yet\x1b[201~");
    wait_prompt(&t, "not yet");
}

#[test]
fn a_line_wider_than_the_screen_scrolls_within_the_prompt_row() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    hub.send("above the prompt");
    wait_line(&t, "<hub> above the prompt");
    let above = t.rows()[..23].to_vec();
    let words: Vec<String> = (0..24).map(|i| format!("w{i:03}")).collect();
    let long = words.join(" ");
    t.type_str(&long);
    t.wait_screen("the end of the long line on the prompt row", |s| {
        s.bottom().trim_end().ends_with("w022 w023") && s.cursor_position().0 == 23
    });
    let (rows, cursor) = (t.rows(), t.cursor());
    assert_eq!(rows[..23], above[..], "the rows above are untouched");
    assert!(cursor.1 < 80, "{}", t.framed());
    t.key("Home");
    t.wait_screen("the start of the long line", |s| {
        s.bottom().starts_with("ana> w000 w001") && s.cursor_position() == (23, 5)
    });
    assert_eq!(t.rows()[..23], above[..], "the rows above are untouched");
    t.key("Enter");
    hub.wait_message("ana", &long);
}

#[test]
fn the_start_questions_then_the_interactive_prompt() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let mut t = Term::start(&[]);
    t.wait_text("server (s) or client (c)");
    t.type_str("c\r");
    t.type_str(&format!("127.0.0.1:{port}\r"));
    t.type_str("bia\r");
    hub.wait_join("bia");
    wait_prompt_at(&t, "bia", "", 5);
    t.wait_text("hub joined");
    assert!(t.termios_is_raw());
    t.type_str("oi, do terminal\r");
    hub.wait_message("bia", "oi, do terminal");
    wait_line(&t, "<bia> oi, do terminal");
    t.type_str("/quit\r");
    assert_eq!(t.wait_exit().code(), Some(0));
    assert!(t.termios_is_cooked());
}

#[test]
fn help_is_a_list_that_fits_the_screen() {
    let (_hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("/help\r");
    t.wait_screen("/help's list, a command to a row", |s| {
        let rows = s.all_rows();
        ["/msg", "/me", "/nick", "/names", "/quit"]
            .iter()
            .all(|c| rows.iter().filter(|r| r.contains(c)).count() >= 1)
            && rows.iter().filter(|r| r.contains("/msg")).count() == 1
            && rows
                .iter()
                .all(|r| !(r.contains("/msg") && r.contains("/names")))
    });
    assert_eq!(t.wrapped_rows(), [] as [u16; 0], "{}", t.framed());
    wait_prompt(&t, "");
}

#[test]
fn dash_dash_help_fits_80_columns_on_a_terminal() {
    // Tall enough that the whole help stays on the screen.
    let tall = Spec {
        rows: 200,
        ..Spec::default()
    };
    let mut t = Term::start_with(&tall, &["--help"]);
    assert_eq!(t.wait_exit().code(), Some(0));
    t.wait_text("--nick");
    assert_eq!(
        t.wrapped_rows(),
        [] as [u16; 0],
        "rows wider than 80 columns:\n{}",
        t.framed()
    );
}

#[test]
fn a_client_on_a_terminal_redials_when_its_connection_drops() {
    let (port, _) = crate::util::free_range(1);
    let listen = format!("127.0.0.1:{port}");
    let hub_args = ["-l", listen.as_str(), "--json", "--nick", "hub"];
    let mut hub = Node::spawn(&hub_args);
    hub.wait_event(|v| v["event"] == "info" && v["text"] == format!("listening on {listen}"));
    let mut t = Term::start(&[&listen, "--nick", "ana"]);
    hub.wait_join("ana");
    t.type_str("half");
    wait_prompt(&t, "half");
    drop(hub);
    // `lost the connection to HOST; reconnecting in 1 s`, then `reconnecting to HOST in 2 s`...
    t.wait_screen("the reconnecting notice", |s| {
        s.all_rows()
            .iter()
            .any(|r| r.contains(listen.as_str()) && r.contains("reconnecting"))
    });
    wait_prompt(&t, "half");
    // Said to nobody: the user is told, with the words, that it waits; not shown as said.
    t.type_str(" held\r");
    t.wait_screen("the notice of the line waiting", |s| {
        s.all_rows()
            .iter()
            .any(|r| r.contains("waiting to be sent") && r.contains("half held"))
    });
    assert!(!t.contents().contains("<ana> half held"), "{}", t.framed());
    let mut hub = Node::spawn(&hub_args);
    hub.wait_join("ana");
    t.type_str("back\r");
    hub.wait_message("ana", "back");
    // The line that waited reaches the hub (new since: said before it was there), once.
    let held = hub.wait_event(|v| v["text"] == "half held");
    assert_eq!(held["history"], true, "{held}");
    assert_eq!(
        hub.events()
            .iter()
            .filter(|v| v["text"] == "half held")
            .count(),
        1
    );
}

#[test]
fn an_action_cannot_pass_for_a_notice() {
    let (mut hub, t, port) = hub_and_ana(&[]);
    hub.send("/me joined from 10.9.8.7");
    wait_line(&t, "* hub joined from 10.9.8.7");
    let mut bob = Node::client("bob", port, &[]);
    bob.wait_join("ana");
    let notice = t.wait_screen_value("the notice of bob's joining", |s| {
        s.all_rows()
            .into_iter()
            // bob is a member beyond the hub: his own signed join names no address.
            .find(|r| r.get(..8).is_some_and(is_stamp) && r.contains("bob joined"))
    });
    let action = t.wait_screen_value("the action", |s| {
        s.all_rows()
            .into_iter()
            .find(|r| stamped(r, "* hub joined from 10.9.8.7"))
    });
    let head = |r: &str| r[9..].split(' ').next().map(str::to_string);
    assert_ne!(head(&notice), head(&action), "{}", t.framed());
}

#[test]
fn a_peer_cannot_clear_the_screen_move_the_cursor_or_ring_the_bell() {
    let (mut hub, t, port) = hub_and_ana(&[]);
    hub.send("before the guest");
    wait_line(&t, "<hub> before the guest");
    let mut guest = Raw::connect(port);
    guest.send(b"clear\x1b[2J\x1b[Hgotcha\x07\x07\n");
    guest.send(b"up\x1b[5A\x1b[1;1Hover\x1b]0;title\x07\n");
    guest.send(b"last from the guest\n");
    t.wait_screen("the guest's last line", |s| {
        s.all_rows()
            .iter()
            .any(|r| r.trim_end().ends_with("> last from the guest"))
    });
    wait_prompt(&t, "");
    wait_line(&t, "<hub> before the guest");
    assert_eq!(t.bells(), 0, "{}", t.framed());
    let rows = t.rows();
    for text in ["gotcha", "over"] {
        let row = rows.iter().find(|r| r.contains(text));
        assert!(
            row.is_some_and(|r| r.get(..8).is_some_and(is_stamp)),
            "{text:?} stays on its guest's line:\n{}",
            t.framed()
        );
    }
}

#[test]
fn a_burst_of_messages_while_typing_keeps_the_prompt_row_whole() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("typed ");
    for i in 0..150 {
        hub.send(&format!("burst {i:03}"));
    }
    t.type_str("during");
    for i in 150..300 {
        hub.send(&format!("burst {i:03}"));
    }
    t.type_str(" the burst");
    wait_line(&t, "<hub> burst 299");
    wait_prompt(&t, "typed during the burst");
    let rows = t.rows();
    for r in &rows[..rows.len() - 1] {
        assert!(
            r.get(..8).is_some_and(is_stamp) && r.contains("<hub> burst "),
            "a row that is not a whole message: {r:?}\n{}",
            t.framed()
        );
    }
    // The last 23, in order, each once.
    for (r, i) in rows[..23].iter().zip(277..) {
        assert!(stamped(r, &format!("<hub> burst {i:03}")), "{}", t.framed());
    }
    t.key("Enter");
    hub.wait_message("ana", "typed during the burst");
}

#[test]
fn a_nick_change_changes_the_prompt_and_what_is_a_mention() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("/nick bea\r");
    hub.wait_event(|v| v["event"] == "nick" && v["nick"] == "bea");
    wait_prompt_at(&t, "bea", "", 5);
    hub.send("hey ana");
    hub.send("hey bea");
    t.wait_bells(1);
    hub.send("the end");
    wait_settled(&t, "<hub> the end");
    assert_eq!(
        t.bells(),
        1,
        "only the new nick is a mention: {}",
        t.framed()
    );
}

#[test]
fn alt_b_and_alt_f_move_by_words_and_arrows_by_characters() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("one two three");
    wait_prompt(&t, "one two three");
    t.key("Alt-B");
    wait_prompt_at(&t, "ana", "one two three", 13);
    t.key("Alt-B");
    wait_prompt_at(&t, "ana", "one two three", 9);
    t.key("Alt-F");
    wait_prompt_at(&t, "ana", "one two three", 12);
    t.key("Right");
    t.key("Left");
    t.key("Left");
    t.key("Right");
    wait_prompt_at(&t, "ana", "one two three", 12);
    t.type_str("!\r");
    hub.wait_message("ana", "one two! three");
}

#[test]
fn a_tiny_window_does_not_break_it() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("still here");
    for (cols, rows) in [(4, 3), (1, 1), (12, 2)] {
        t.resize(cols, rows);
        hub.send(&format!("at {cols}x{rows}, a line longer than the window"));
    }
    t.resize(80, 24);
    hub.send("back to 80x24");
    wait_line(&t, "<hub> back to 80x24");
    wait_prompt(&t, "still here");
    t.key("Enter");
    hub.wait_message("ana", "still here");
}

#[test]
fn a_resize_while_suspended_is_drawn_on_fg() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("kept");
    wait_prompt(&t, "kept");
    t.key("Ctrl-Z");
    t.wait_state('T');
    t.shell_writes(b"\r\n[1]+  Stopped                 peerchat\r\n$ fg\r\n");
    t.resize(60, 20);
    t.signal(libc::SIGCONT);
    t.wait_screen("the prompt on the new last row", |s| {
        s.row(19).trim_end() == "ana> kept" && s.cursor_position() == (19, 9)
    });
    let text: Vec<String> = (0..20).map(|i| format!("word{i:02}")).collect();
    let text = text.join(" ");
    hub.send(&text);
    assert_hanging(&t, "hub", &text);
}

#[test]
fn closing_the_terminal_ends_peerchat() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("unsent");
    wait_prompt(&t, "unsent");
    if let Err(e) = t.hangup() {
        return crate::util::skip_or_fail(&format!("cannot hang up a terminal ({e}): needs root"));
    }
    hub.wait_leave("ana");
    t.wait_exit();
}

#[test]
fn sighup_and_two_quick_ctrl_c_restore_the_terminal() {
    leaves_cooked(|_, t| t.signal(libc::SIGHUP), 129);
    leaves_cooked(
        // Ctrl-C pressed twice: the second may come while leaving, or after.
        |_, t| t.send(b"\x03\x03"),
        130,
    );
}

#[test]
fn a_suspended_job_killed_as_a_shell_does_leaves_the_terminal_cooked() {
    leaves_cooked(
        |_, t| {
            t.type_str("half");
            wait_prompt(t, "half");
            t.key("Ctrl-Z");
            t.wait_state('T');
            // `kill %1`: SIGTERM, then SIGCONT so that the job can act on it.
            t.signal(libc::SIGTERM);
            t.signal(libc::SIGCONT);
        },
        143,
    );
}

#[test]
fn a_long_paste_arrives_whole_and_in_order() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.wait_screen("bracketed paste on", |s| s.bracketed_paste());
    // Some 12 KB: the terminal hands it over in several reads, cut anywhere.
    let lines: Vec<String> = (0..200)
        .map(|i| format!("pasted line {i:03} {}", "ação 你好 ".repeat(3)))
        .collect();
    let mut paste = b"\x1b[200~".to_vec();
    for l in &lines {
        paste.extend_from_slice(l.as_bytes());
        paste.push(b'\r');
    }
    paste.extend_from_slice(b"\x1b[201~");
    t.send(&paste);
    for l in &lines {
        hub.wait_message("ana", l);
    }
    let got: Vec<String> = hub
        .events()
        .iter()
        .filter(|v| v["event"] == "message" && v["from"] == "ana")
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(got, lines);
    wait_prompt(&t, "");
}

#[test]
fn bytes_that_are_not_utf8_do_not_break_the_line() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.send(b"a\xffb \xc3");
    t.send(b"\xa7\xe4\xbd");
    t.send(b"\xa0 ok\r");
    let ev = hub.wait_event(|v| v["event"] == "message" && v["from"] == "ana");
    let text = ev["text"].as_str().unwrap_or_default();
    // The UTF-8 cut across writes is whole again; the stray byte is dropped or replaced.
    assert!(
        text.starts_with('a') && text.ends_with("b ç你 ok"),
        "{text:?}"
    );
    wait_prompt(&t, "");
}

#[test]
fn json_on_a_terminal_stays_in_line_mode() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::start(&[&addr, "--json", "--nick", "ana"]);
    hub.wait_join("ana");
    t.type_str("as json\r");
    hub.wait_message("ana", "as json");
    hub.send("back");
    t.wait_screen("the hub's message as a JSON line", |s| {
        s.all_rows().iter().any(|r| {
            r.starts_with(r#"{"ts":"#)
                && r.contains(r#""event":"message","from":"hub","text":"back""#)
        })
    });
    assert!(!t.contents().contains("ana> "), "{}", t.framed());
    assert!(t.termios_is_cooked());
    // Ctrl-Z stops it as the terminal does for any program, and `fg` goes on.
    t.key("Ctrl-Z");
    t.wait_state('T');
    t.signal(libc::SIGCONT);
    t.type_str("after fg\r");
    hub.wait_message("ana", "after fg");
}

#[test]
fn mesh_mode_on_a_terminal_asks_the_nick_then_shows_the_prompt() {
    let (first, last) = crate::util::free_range(2);
    let range = format!("{first}-{last}");
    let mut other = Node::spawn(&["--mesh", &range, "--json", "--nick", "ana"]);
    other.wait_event(|v| {
        v["event"] == "info"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("listening on "))
    });
    let mut t = Term::start(&["--mesh", &range]);
    t.wait_text("Your nick");
    t.type_str("bia\r");
    other.wait_join("bia");
    wait_prompt_at(&t, "bia", "", 5);
    t.wait_text("ana joined");
    t.type_str("oi, da malha\r");
    other.wait_message("bia", "oi, da malha");
    wait_line(&t, "<bia> oi, da malha");
}

#[test]
fn listening_on_a_terminal_a_guest_and_the_user_talk() {
    let mut t = Term::start(&["-l", "127.0.0.1:0", "--nick", "ana"]);
    wait_prompt(&t, "");
    let port: u16 = t.wait_screen_value("the listening notice", |s| {
        s.all_rows().iter().find_map(|r| {
            let at = r.find("listening on 127.0.0.1:")?;
            r[at + "listening on 127.0.0.1:".len()..]
                .trim()
                .parse()
                .ok()
        })
    });
    let mut guest = Raw::connect(port);
    guest.send(b"hi from nc\n");
    t.wait_screen("the guest's line", |s| {
        s.all_rows()
            .iter()
            .any(|r| r.get(..8).is_some_and(is_stamp) && r.trim_end().ends_with("> hi from nc"))
    });
    t.type_str("hello guest\r");
    guest.wait_line(|l| l.ends_with("<ana> hello guest"));
    wait_line(&t, "<ana> hello guest");
    wait_prompt(&t, "");
}

#[test]
fn a_failed_start_leaves_the_terminal_cooked_with_its_error_readable() {
    let port = crate::util::closed_port();
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::start(&[&addr, "--nick", "ana"]);
    assert_eq!(t.wait_exit().code(), Some(1), "{}", t.framed());
    assert!(t.termios_is_cooked());
    assert!(!t.bracketed_paste());
    let rows = t.rows();
    assert!(
        rows.iter()
            .any(|r| r.starts_with("peerchat: ") && r.contains("connect")),
        "{}",
        t.framed()
    );
}

#[test]
fn a_mention_that_came_while_suspended_shows_and_rings_after_fg() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.key("Ctrl-Z");
    t.wait_state('T');
    hub.send("ana, are you there?");
    hub.send("plain after it");
    t.shell_writes(b"\r\n[1]+  Stopped                 peerchat\r\n$ fg\r\n");
    t.signal(libc::SIGCONT);
    wait_settled(&t, "<hub> plain after it");
    wait_line(&t, "<hub> ana, are you there?");
    assert_eq!(t.bells(), 1, "{}", t.framed());
}

#[test]
fn esc_pressed_alone_does_not_eat_what_is_typed_after_it() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.type_str("ab");
    wait_prompt(&t, "ab");
    t.key("Esc");
    // A person's pause after Esc: the input itself, not a wait for a result (Esc alone can only
    // be told from the start of a sequence by time).
    std::thread::sleep(std::time::Duration::from_millis(500));
    t.type_str("c");
    wait_prompt(&t, "abc");
    t.key("Enter");
    hub.wait_message("ana", "abc");
}

#[test]
fn a_pasted_line_too_long_to_send_is_left_out_and_said() {
    let (mut hub, mut t, _) = hub_and_ana(&[]);
    t.wait_screen("bracketed paste on", |s| s.bracketed_paste());
    // Over a megabyte on one line, between two short ones.
    let mut paste = b"\x1b[200~before it\r".to_vec();
    paste.extend(std::iter::repeat_n(b'x', 1_100_000));
    paste.extend_from_slice(b"\rafter it\r\x1b[201~");
    t.send(&paste);
    hub.wait_message("ana", "before it");
    hub.wait_message("ana", "after it");
    t.wait_screen("the notice of the line left out", |s| {
        s.all_rows()
            .iter()
            .any(|r| r.contains("1100000 bytes") && r.contains("too long"))
    });
    let at = wait_lines(&t, &["<ana> before it", "<ana> after it"]);
    assert!(at[0] < at[1], "{}", t.framed());
    let texts: Vec<usize> = hub
        .events()
        .iter()
        .filter(|v| v["event"] == "message")
        .filter_map(|v| v["text"].as_str().map(str::len))
        .collect();
    assert_eq!(texts, [9, 8], "the long line never went out");
}
