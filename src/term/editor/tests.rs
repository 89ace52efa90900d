//! The line editor's tests: every key, widths, history, completion, paste and the scrolling view.

use std::cell::Cell;

use unicode_width::UnicodeWidthStr;

use super::*;

const COMMANDS: &[&str] = &["/msg", "/me", "/nick", "/names", "/quit"];

fn editor() -> Editor {
    Editor::new(COMMANDS)
}

/// Presses `keys`; the nicks must not be asked for.
fn press(editor: &mut Editor, keys: impl IntoIterator<Item = Key>) -> Vec<Edit> {
    let mut edits = Vec::new();
    for key in keys {
        let nicks = || -> Vec<String> { panic!("nicks asked for without Tab") };
        editor.handle(key, &nicks, &mut edits);
    }
    edits
}

/// Presses `keys` with `nicks` present.
fn press_with(
    editor: &mut Editor,
    keys: impl IntoIterator<Item = Key>,
    nicks: &[&str],
) -> Vec<Edit> {
    let mut edits = Vec::new();
    let nicks = || nicks.iter().map(|n| n.to_string()).collect();
    for key in keys {
        editor.handle(key, &nicks, &mut edits);
    }
    edits
}

fn typed(text: &str) -> Editor {
    let mut editor = editor();
    type_in(&mut editor, text);
    editor
}

fn type_in(editor: &mut Editor, text: &str) {
    assert_eq!(press(editor, text.chars().map(Key::Char)), []);
}

/// The line with `|` at the cursor.
fn shown(editor: &Editor) -> String {
    let (before, after) = editor.line.split_at(editor.cursor);
    format!("{before}|{after}")
}

fn submit(text: &str) -> Edit {
    Edit::Submit(text.to_string())
}

#[test]
fn typing_inserts_at_the_cursor() {
    let mut e = typed("helo");
    press(&mut e, [Key::Left]);
    type_in(&mut e, "l");
    assert_eq!(shown(&e), "hell|o");
    assert_eq!(e.line(), "hello");
}

#[test]
fn control_characters_never_get_into_the_line() {
    let mut e = typed("a");
    press(
        &mut e,
        [Key::Char('\u{7}'), Key::Char('\u{1b}'), Key::Char('\u{9b}')],
    );
    assert_eq!(shown(&e), "a|");
}

#[test]
fn backspace_and_delete_remove_before_and_under_the_cursor() {
    let mut e = typed("abcd");
    press(&mut e, [Key::Left, Key::Left, Key::Backspace]);
    assert_eq!(shown(&e), "a|cd");
    press(&mut e, [Key::Delete]);
    assert_eq!(shown(&e), "a|d");
    press(&mut e, [Key::End, Key::Delete, Key::Home, Key::Backspace]);
    assert_eq!(shown(&e), "|ad");
}

#[test]
fn left_right_home_end_and_their_ctrl_forms() {
    let mut e = typed("abc");
    press(&mut e, [Key::Left]);
    assert_eq!(shown(&e), "ab|c");
    press(&mut e, [Key::Ctrl('b')]);
    assert_eq!(shown(&e), "a|bc");
    press(&mut e, [Key::Right]);
    assert_eq!(shown(&e), "ab|c");
    press(&mut e, [Key::Ctrl('a')]);
    assert_eq!(shown(&e), "|abc");
    press(&mut e, [Key::Left, Key::Ctrl('f')]);
    assert_eq!(shown(&e), "a|bc");
    press(&mut e, [Key::Ctrl('e'), Key::Right]);
    assert_eq!(shown(&e), "abc|");
    press(&mut e, [Key::Home]);
    assert_eq!(shown(&e), "|abc");
    press(&mut e, [Key::End]);
    assert_eq!(shown(&e), "abc|");
}

#[test]
fn ctrl_d_deletes_under_the_cursor_and_leaves_on_an_empty_line() {
    let mut e = typed("ab");
    assert_eq!(press(&mut e, [Key::Home, Key::Ctrl('d')]), []);
    assert_eq!(shown(&e), "|b");
    assert_eq!(press(&mut e, [Key::End, Key::Ctrl('d')]), []);
    assert_eq!(shown(&e), "b|");
    assert_eq!(
        press(&mut e, [Key::Backspace, Key::Ctrl('d')]),
        [Edit::Leave]
    );
}

#[test]
fn ctrl_u_and_ctrl_k_kill_to_either_end_and_ctrl_y_puts_it_back() {
    let mut e = typed("hello world");
    press(&mut e, [Key::Alt('b'), Key::Ctrl('k')]);
    assert_eq!(shown(&e), "hello |");
    press(&mut e, [Key::Left, Key::Ctrl('u')]);
    assert_eq!(shown(&e), "| ");
    press(&mut e, [Key::End, Key::Ctrl('y')]);
    assert_eq!(shown(&e), " hello|");
}

#[test]
fn ctrl_w_and_alt_backspace_rub_out_the_word_before_the_cursor() {
    let mut e = typed("say héllo  there  ");
    press(&mut e, [Key::Ctrl('w')]);
    assert_eq!(shown(&e), "say héllo  |");
    press(&mut e, [Key::AltBackspace]);
    assert_eq!(shown(&e), "say |");
    let mut e = typed("one\u{3000}two");
    press(&mut e, [Key::Ctrl('w')]);
    assert_eq!(shown(&e), "one\u{3000}|");
    press(&mut e, [Key::Ctrl('w'), Key::Ctrl('w')]);
    assert_eq!(shown(&e), "|");
}

#[test]
fn word_moves_with_alt_b_f_and_ctrl_arrows() {
    let mut e = typed("one  two three");
    press(&mut e, [Key::Alt('b')]);
    assert_eq!(shown(&e), "one  two |three");
    press(&mut e, [Key::WordLeft]);
    assert_eq!(shown(&e), "one  |two three");
    press(&mut e, [Key::Alt('b'), Key::Alt('b')]);
    assert_eq!(shown(&e), "|one  two three");
    press(&mut e, [Key::Alt('f')]);
    assert_eq!(shown(&e), "one|  two three");
    press(&mut e, [Key::WordRight]);
    assert_eq!(shown(&e), "one  two| three");
    press(&mut e, [Key::Alt('f'), Key::Alt('f')]);
    assert_eq!(shown(&e), "one  two three|");
    press(&mut e, [Key::Home, Key::Alt('d')]);
    assert_eq!(shown(&e), "|  two three");
}

#[test]
fn ctrl_l_asks_for_a_redraw_and_keeps_the_line() {
    let mut e = typed("ab");
    assert_eq!(press(&mut e, [Key::Ctrl('l')]), [Edit::Redraw]);
    assert_eq!(shown(&e), "ab|");
}

#[test]
fn enter_submits_the_line_and_clears_it_even_when_empty() {
    let mut e = typed("hi there");
    press(&mut e, [Key::Left]);
    assert_eq!(press(&mut e, [Key::Enter]), [submit("hi there")]);
    assert_eq!(shown(&e), "|");
    assert_eq!(press(&mut e, [Key::Enter]), [submit("")]);
}

#[test]
fn other_keys_change_nothing() {
    let mut e = typed("ab");
    let edits = press(
        &mut e,
        [Key::Unknown, Key::Ctrl('c'), Key::Alt('x'), Key::Ctrl('z')],
    );
    assert_eq!(edits, []);
    assert_eq!(shown(&e), "ab|");
}

#[test]
fn a_character_and_its_combining_marks_move_and_go_as_one() {
    let mut e = typed("ae\u{301}\u{302}b");
    press(&mut e, [Key::Left, Key::Left]);
    assert_eq!(shown(&e), "a|e\u{301}\u{302}b");
    press(&mut e, [Key::Right]);
    assert_eq!(shown(&e), "ae\u{301}\u{302}|b");
    press(&mut e, [Key::Backspace]);
    assert_eq!(shown(&e), "a|b");
    let mut e = typed("e\u{301}x");
    press(&mut e, [Key::Home, Key::Delete]);
    assert_eq!(shown(&e), "|x");
}

#[test]
fn the_cursor_column_counts_display_widths() {
    for (text, width) in [
        ("abc", 3),
        ("漢字", 4),
        ("😀!", 3),
        ("e\u{301}e\u{301}", 2),
        ("a\u{200b}b", 2),
    ] {
        let mut e = typed(text);
        assert_eq!(e.view("", 80).cursor, width, "{text:?}");
        assert_eq!(e.view("> ", 80).cursor, width + 2, "{text:?}");
        press(&mut e, [Key::Left]);
        let last = text
            .chars()
            .rev()
            .find(|&c| !is_mark(c))
            .map(|c| c.to_string());
        let last_width = last.as_deref().map_or(0, UnicodeWidthStr::width);
        assert_eq!(e.view("", 80).cursor, width - last_width, "{text:?}");
    }
}

#[test]
fn the_line_is_bounded() {
    let mut e = editor();
    e.handle(
        Key::Paste("x".repeat(MAX_LINE - 1)),
        &Vec::new,
        &mut Vec::new(),
    );
    type_in(&mut e, "é");
    assert_eq!(e.line().len(), MAX_LINE - 1);
    type_in(&mut e, "y");
    assert_eq!(e.line().len(), MAX_LINE);
    type_in(&mut e, "z");
    press(&mut e, [Key::Ctrl('y')]);
    assert_eq!(e.line().len(), MAX_LINE);
    assert!(e.line().ends_with("xy"));
}

#[test]
fn up_and_down_go_through_the_lines_sent_and_back_to_the_draft() {
    let mut e = editor();
    for line in ["one", "two", "", "   ", "two", "three"] {
        type_in(&mut e, line);
        press(&mut e, [Key::Enter]);
    }
    assert_eq!(e.history().collect::<Vec<_>>(), ["one", "two", "three"]);
    type_in(&mut e, "draft");
    press(&mut e, [Key::Up]);
    assert_eq!(shown(&e), "three|");
    press(&mut e, [Key::Up, Key::Ctrl('p')]);
    assert_eq!(shown(&e), "one|");
    press(&mut e, [Key::Up]);
    assert_eq!(shown(&e), "one|");
    press(&mut e, [Key::Down]);
    assert_eq!(shown(&e), "two|");
    press(&mut e, [Key::Ctrl('n'), Key::Down]);
    assert_eq!(shown(&e), "draft|");
    press(&mut e, [Key::Down]);
    assert_eq!(shown(&e), "draft|");
}

#[test]
fn a_recalled_line_edited_is_sent_as_edited() {
    let mut e = editor();
    type_in(&mut e, "hello");
    press(&mut e, [Key::Enter]);
    press(&mut e, [Key::Up, Key::Backspace]);
    type_in(&mut e, "p!");
    assert_eq!(press(&mut e, [Key::Enter]), [submit("hellp!")]);
    assert_eq!(e.history().collect::<Vec<_>>(), ["hello", "hellp!"]);
    // The draft was empty, so Down after Up comes back to an empty line.
    press(&mut e, [Key::Up, Key::Down]);
    assert_eq!(shown(&e), "|");
}

#[test]
fn up_with_no_history_keeps_the_line() {
    let mut e = typed("abc");
    press(&mut e, [Key::Left, Key::Up, Key::Down]);
    assert_eq!(shown(&e), "ab|c");
}

#[test]
fn the_history_is_bounded() {
    let mut e = editor();
    for i in 0..MAX_HISTORY + 10 {
        type_in(&mut e, &i.to_string());
        press(&mut e, [Key::Enter]);
    }
    let history: Vec<&str> = e.history().collect();
    assert_eq!(history.len(), MAX_HISTORY);
    assert_eq!(history[0], "10");
}

const NICKS: &[&str] = &["ana", "Anabel", "bia", "carl", "Carla"];

#[test]
fn tab_completes_one_nick_at_the_start_as_an_address() {
    let mut e = typed("b");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "bia: |");
}

#[test]
fn tab_completes_a_later_nick_with_a_space_and_keeps_what_follows() {
    let mut e = typed("hi BI there");
    press(&mut e, [Key::Alt('b'), Key::Left]);
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "hi bia | there");
}

#[test]
fn tab_completes_commands_at_the_start_only() {
    let mut e = typed("/na");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "/names |");
    let mut e = typed("/Q");
    // Commands never need the nicks.
    press(&mut e, [Key::Tab]);
    assert_eq!(shown(&e), "/quit |");
    let mut e = typed("x /na");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "x /na|");
}

#[test]
fn tab_with_no_match_changes_nothing() {
    let mut e = typed("zed");
    press_with(&mut e, [Key::Tab, Key::Tab], NICKS);
    assert_eq!(shown(&e), "zed|");
}

#[test]
fn several_matches_extend_to_their_common_prefix_then_cycle() {
    let mut e = typed("A");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "ana|");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "ana: |");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "Anabel: |");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "ana: |");
    // Another key ends the cycle: the next Tab completes the word as it now is, from the first.
    press_with(
        &mut e,
        [Key::Backspace, Key::Backspace, Key::Backspace, Key::Tab],
        NICKS,
    );
    assert_eq!(shown(&e), "ana|");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "ana: |");
}

#[test]
fn a_tab_that_cannot_extend_starts_the_cycle_at_once() {
    let mut e = typed("hey c");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "hey carl|");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "hey carl |");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "hey Carla |");
    press_with(&mut e, [Key::Tab], NICKS);
    assert_eq!(shown(&e), "hey carl |");
}

#[test]
fn the_nicks_are_asked_for_only_on_tab() {
    let asked = Cell::new(0);
    let nicks = || {
        asked.set(asked.get() + 1);
        vec!["bia".to_string()]
    };
    let mut e = editor();
    let mut edits = Vec::new();
    for key in "hi b"
        .chars()
        .map(Key::Char)
        .chain([Key::Left, Key::Right, Key::Up])
    {
        e.handle(key, &nicks, &mut edits);
    }
    assert_eq!(asked.get(), 0);
    e.handle(Key::Tab, &nicks, &mut edits);
    assert_eq!(asked.get(), 1);
    assert_eq!(e.line(), "hi bia ");
}

#[test]
fn a_paste_of_several_lines_submits_each_in_order() {
    let mut e = typed("ab");
    press(&mut e, [Key::Left]);
    let edits = press(&mut e, [Key::Paste("1\n2\n\n3".into())]);
    assert_eq!(edits, [submit("a1"), submit("2"), submit("")]);
    assert_eq!(shown(&e), "3|b");
    let edits = press(&mut e, [Key::Paste("\n".into())]);
    assert_eq!(edits, [submit("3")]);
    assert_eq!(shown(&e), "|b");
    let mut e = typed("ab");
    press(&mut e, [Key::Left]);
    let edits = press(&mut e, [Key::Paste("x\ny\tz".into())]);
    assert_eq!(edits, [submit("ax")]);
    assert_eq!(shown(&e), "y z|b");
    assert_eq!(e.history().collect::<Vec<_>>(), ["ax"]);
}

#[test]
fn a_paste_without_a_line_end_only_inserts() {
    let mut e = typed("ac");
    press(&mut e, [Key::Left]);
    assert_eq!(press(&mut e, [Key::Paste("b\u{7}".into())]), []);
    assert_eq!(shown(&e), "ab|c");
}

/// The rest of `text` from display column `col`; `None` inside a wide character.
fn from_column(text: &str, col: usize) -> Option<&str> {
    let mut at = 0;
    for (i, c) in text.char_indices() {
        if at == col && !is_mark(c) {
            return Some(&text[i..]);
        }
        at += c.to_string().width();
    }
    (at == col).then_some("")
}

/// Checks a view of `editor` at `width`: within `width - 1` columns, the prompt first, the line
/// shown a piece of the line, and the cursor on the character under it.
fn check_view(editor: &mut Editor, prompt: &str, width: usize) -> View {
    let view = editor.view(prompt, width);
    let room = width.saturating_sub(1);
    assert!(view.text.width() <= room, "{view:?} wider than {room}");
    assert!(view.cursor <= room, "{view:?}");
    let shown = match view.text.strip_prefix(prompt) {
        Some(shown) => shown,
        None => {
            assert!(
                prompt.starts_with(&view.text),
                "{view:?} not the prompt cut"
            );
            ""
        }
    };
    assert!(editor.line.contains(shown), "{view:?}");
    let under = &editor.line[editor.cursor..];
    let rest = from_column(&view.text, view.cursor).expect("cursor on a character's edge");
    let first = under
        .chars()
        .next()
        .map(|c| c.to_string())
        .unwrap_or_default();
    if view.cursor + first.width().max(1) <= room {
        assert!(under.starts_with(rest), "{view:?} cursor at {}", shown);
        assert!(
            rest.starts_with(&first),
            "{view:?} hides the character under the cursor"
        );
    }
    view
}

#[test]
fn a_short_line_shows_whole() {
    let mut e = typed("héllo 漢");
    press(&mut e, [Key::Left]);
    let view = check_view(&mut e, "ana> ", 80);
    assert_eq!(
        view,
        View {
            text: "ana> héllo 漢".into(),
            cursor: 11
        }
    );
}

#[test]
fn a_long_line_scrolls_by_a_third_when_the_cursor_leaves_the_window() {
    let line: String = (0..40).map(|i| char::from(b'a' + i % 26)).collect();
    let mut e = typed(&line);
    // 31 columns, 30 usable, 28 after the prompt: a third is 9.
    let view = check_view(&mut e, "> ", 31);
    assert_eq!(view.text, format!("> {}", &line[22..]));
    assert_eq!(view.cursor, 20);
    for _ in 0..18 {
        press(&mut e, [Key::Left]);
        let moved = check_view(&mut e, "> ", 31);
        assert_eq!(moved.text, view.text, "the window must not move inside it");
    }
    press(&mut e, [Key::Left]);
    let view = check_view(&mut e, "> ", 31);
    assert_eq!(view.text, format!("> {}", &line[12..40]));
    assert_eq!(view.cursor, 2 + 9);
    press(&mut e, [Key::Home]);
    let view = check_view(&mut e, "> ", 31);
    assert_eq!(view.text, format!("> {}", &line[..28]));
    assert_eq!(view.cursor, 2);
}

#[test]
fn scrolling_never_cuts_a_wide_character_at_any_width() {
    let line = "a漢字x😀e\u{301}yかなカナ12漢字b".repeat(4);
    for width in 0..40 {
        let mut e = typed(&line);
        check_view(&mut e, "ana> ", width);
        for _ in 0..line.chars().count() {
            press(&mut e, [Key::Left]);
            check_view(&mut e, "ana> ", width);
        }
        for _ in 0..line.chars().count() {
            press(&mut e, [Key::Right]);
            check_view(&mut e, "ana> ", width);
        }
        press(&mut e, [Key::Ctrl('u')]);
        let view = check_view(&mut e, "ana> ", width);
        assert_eq!(view.cursor, 5.min(width.saturating_sub(1)));
    }
}

#[test]
fn a_prompt_wider_than_the_width_is_cut() {
    let mut e = typed("hi");
    let view = e.view("漢字漢字> ", 6);
    assert_eq!(
        view,
        View {
            text: "漢字".into(),
            cursor: 4
        }
    );
    let view = e.view("ab\u{7}c> ", 4);
    assert_eq!(
        view,
        View {
            text: "abc".into(),
            cursor: 3
        }
    );
    assert_eq!(
        e.view("ana> ", 0),
        View {
            text: String::new(),
            cursor: 0
        }
    );
    assert_eq!(
        e.view("ana> ", 1),
        View {
            text: String::new(),
            cursor: 0
        }
    );
}

#[test]
fn a_narrowed_window_keeps_the_cursor_in_view() {
    let line = "漢".repeat(50);
    let mut e = typed(&line);
    press(&mut e, [Key::Home, Key::Right, Key::Right, Key::Right]);
    for width in [100, 40, 12, 7, 3, 200, 5] {
        let view = check_view(&mut e, "> ", width);
        if width >= 5 {
            assert!(view.text[2..].starts_with('漢') || view.text.len() == 2);
        }
    }
}

#[test]
fn tab_again_after_the_only_match_leaves_the_line_as_it_is() {
    // "again to cycle through several": with one match there is nothing to cycle to, and a
    // second Tab must not start completing an empty word after it.
    let mut e = typed("b");
    press_with(&mut e, [Key::Tab, Key::Tab], NICKS);
    assert_eq!(shown(&e), "bia: |");
}
