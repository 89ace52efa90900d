//! The reactor's terminal room, on the interactive terminal only: keys from the stdin thread go
//! through the decoder and the editor; lines the user sends go on to the stdin gate as typed
//! lines do in line mode; the transcript is written above the prompt line, and the prompt line
//! (with the half-typed text and the cursor) is drawn again after it, once per turn. Ctrl-Z,
//! `fg` and resizes are carried out here, since this room owns what is on the screen.
//!
//! Must not decide what an event says (`term::render`) or what a key does (`term::editor`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use super::timers::Timer;
use crate::event::Event;
use crate::input::Input;
use crate::safe::sanitize;
use crate::signals::TermSignals;
use crate::term::editor::{Edit, Editor};
use crate::term::keys::{Decoder, Key};
use crate::term::render::{self, Bell, Style};
use crate::term::tty::{self, RawMode};

/// Events kept to draw the screen again (Ctrl-L, a resize, `fg`): more than a screen holds.
const KEEP: usize = 500;

/// How long an ESC waits for the rest of a sequence before it is taken for the Esc key: a
/// terminal sends a sequence in one write, a person does not type that fast.
pub(super) const ESCAPE_WAIT: Duration = Duration::from_millis(50);

/// Reads of keys taken per turn, at most (a long paste is taken over several turns).
const READS_PER_TURN: usize = 16;

/// What the interactive terminal needs from the command line.
#[derive(Debug)]
pub struct TermSetup {
    /// Raw mode, entered by the caller (before anything else is drawn); restored when the
    /// reactor is dropped.
    pub raw: RawMode,
    pub bell: Bell,
    pub colour: bool,
}

/// The interactive terminal's state.
pub(super) struct Terminal {
    raw: RawMode,
    bell: Bell,
    colour: bool,
    decoder: Decoder,
    editor: Editor,
    /// Bytes read from the keyboard; `None` once stdin has ended.
    keys: Option<Receiver<Vec<u8>>>,
    /// Lines sent, towards the stdin gate; dropped when stdin ends (the gate then sees the end).
    lines: Option<Sender<Input>>,
    /// The window's size, columns and rows.
    size: (usize, usize),
    /// The user's nick, for the prompt and for mentions.
    me: String,
    /// The prompt row is on the screen (cleared before the transcript is written).
    prompt_shown: bool,
    /// The prompt row on the screen no longer shows the line as it is.
    stale: bool,
    /// The last turn left keys unread.
    more: bool,
    /// Notices about keys (a pasted line left out), for the transcript.
    notices: Vec<String>,
    /// The whole screen must be drawn again (Ctrl-L, a resize, `fg`).
    repaint: bool,
    /// The last events shown, with their times, to draw the screen again.
    recent: VecDeque<(String, Event)>,
}

impl Terminal {
    /// The terminal room, and the channel of lines for the stdin gate.
    pub(super) fn new(setup: TermSetup, me: &str) -> (Terminal, Receiver<Input>) {
        let (tx, rx) = channel();
        let term = Terminal {
            raw: setup.raw,
            bell: setup.bell,
            colour: setup.colour,
            decoder: Decoder::new(),
            editor: Editor::new(crate::chat::COMMANDS),
            keys: None,
            lines: Some(tx),
            size: window_size(),
            me: me.to_string(),
            prompt_shown: false,
            stale: false,
            more: false,
            notices: Vec::new(),
            repaint: false,
            recent: VecDeque::new(),
        };
        (term, rx)
    }

    /// Reads keys from `keys` from now on.
    pub(super) fn attach(&mut self, keys: Receiver<Vec<u8>>) {
        self.keys = Some(keys);
    }

    /// The user's nick changed (or may have): the prompt shows the new one.
    pub(super) fn set_nick(&mut self, me: &str) {
        if self.me != me {
            self.me = me.to_string();
            self.stale = true;
        }
    }

    /// Takes the keys read since the last turn through the editor; lines sent go to the gate.
    /// `names` gives who is here, for Tab. `None` when nothing was read; else whether an
    /// escape sequence is left unfinished: the caller calls [`Terminal::flush_escape`] if
    /// nothing more comes within [`ESCAPE_WAIT`].
    pub(super) fn read_keys(&mut self, names: &dyn Fn() -> Vec<String>) -> Option<bool> {
        let mut keys = Vec::new();
        let mut read_any = false;
        self.more = false;
        for read in 0..=READS_PER_TURN {
            let Some(rx) = &self.keys else { break };
            if read == READS_PER_TURN {
                self.more = true;
                break;
            }
            match rx.try_recv() {
                Ok(bytes) => {
                    read_any = true;
                    self.decoder.feed(&bytes, &mut keys);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.keys = None;
                    self.lines = None;
                }
            }
        }
        self.edit(keys, names);
        read_any.then(|| self.decoder.is_waiting())
    }

    /// Nothing followed an ESC in time: it was the Esc key (and what came with it, typed).
    pub(super) fn flush_escape(&mut self, names: &dyn Fn() -> Vec<String>) {
        let mut keys = Vec::new();
        self.decoder.flush(&mut keys);
        self.edit(keys, names);
    }

    /// Notices about keys for the transcript, since the last call.
    pub(super) fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    fn edit(&mut self, keys: Vec<Key>, names: &dyn Fn() -> Vec<String>) {
        let mut edits = Vec::new();
        for key in keys {
            if let Key::PasteCut(n) = key {
                self.notices.push(format!(
                    "a pasted line of {n} bytes is too long to send; it was left out"
                ));
            }
            self.editor.handle(key, names, &mut edits);
            self.stale = true;
        }
        for edit in edits {
            match edit {
                Edit::Submit(line) => self.send(line),
                Edit::Leave => self.send("/quit".into()),
                Edit::Redraw => self.repaint = true,
            }
        }
    }

    /// More keys wait than the last turn took.
    pub(super) fn has_more(&self) -> bool {
        self.more
    }

    fn send(&mut self, line: String) {
        if let Some(tx) = &self.lines {
            let _ = tx.send(Input::Line(line));
        }
    }

    /// Carries out the terminal's signals: Ctrl-Z stops the process with the terminal restored
    /// (the prompt row cleared first), `fg` and a resize draw the screen again.
    pub(super) fn handle_signals(&mut self, got: TermSignals, w: &mut impl Write) {
        if got.suspend {
            let _ = self.clear_prompt(w).and_then(|()| w.flush());
            // Back in raw mode when continued; the shell wrote on the screen meanwhile.
            tty::suspend();
            self.repaint = true;
        }
        if got.continued {
            let _ = self.raw.resume();
            self.repaint = true;
        }
        if got.resized {
            self.repaint = true;
        }
    }

    /// Writes `event` above the prompt line, stamped `time`.
    pub(super) fn show(&mut self, event: &Event, time: &str, w: &mut impl Write) -> io::Result<()> {
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back((time.to_string(), event.clone()));
        let shown = render::render(event, time, &self.style());
        if shown.bell {
            // Rung now even if the rows wait for the redraw below: a bell moves nothing.
            w.write_all(b"\x07")?;
        }
        if self.repaint {
            // The whole screen is drawn at the end of the turn, this event with it.
            return Ok(());
        }
        if self.prompt_shown {
            self.clear_prompt(w)?;
        }
        for row in &shown.rows {
            w.write_all(row.as_bytes())?;
            w.write_all(b"\r\n")?;
        }
        Ok(())
    }

    /// Brings the screen up to date at the end of a turn: everything again if asked, else the
    /// prompt line if it changed or was cleared.
    pub(super) fn draw(&mut self, w: &mut impl Write) -> io::Result<()> {
        if self.repaint {
            self.repaint = false;
            self.size = window_size();
            self.draw_all(w)?;
        } else if !self.prompt_shown || self.stale {
            self.draw_prompt(w)?;
        }
        Ok(())
    }

    /// Clears the prompt line, leaving the cursor at the start of an empty row for the shell.
    pub(super) fn finish(&mut self, w: &mut impl Write) -> io::Result<()> {
        self.clear_prompt(w)
    }

    /// Empties the prompt row (the last one) and puts the cursor at its start: the transcript
    /// goes on from there, scrolling up. Placed absolutely, so that whatever moved the cursor
    /// meanwhile cannot make the transcript overwrite other rows.
    fn clear_prompt(&mut self, w: &mut impl Write) -> io::Result<()> {
        self.prompt_shown = false;
        write!(w, "\x1b[{};1H\x1b[K", self.size.1.max(1))
    }

    /// Every row drawn again: the last events that fit above the prompt line (blank rows above
    /// them), at the window's size now.
    fn draw_all(&mut self, w: &mut impl Write) -> io::Result<()> {
        let (_, height) = self.size;
        let style = self.style();
        let mut rows: VecDeque<String> = VecDeque::new();
        for (time, event) in self.recent.iter().rev() {
            let shown = render::render(event, time, &style);
            for row in shown.rows.into_iter().rev() {
                rows.push_front(row);
            }
            if rows.len() >= height.saturating_sub(1) {
                break;
            }
        }
        while rows.len() > height.saturating_sub(1) {
            rows.pop_front();
        }
        // Row by row, each cleared then written, ending just above the prompt's row: erasing
        // the whole screen would push a copy of it into the scrollback at every redraw. (Each
        // row is cleared before it is written: after a row as wide as the window, clearing
        // would erase its last character.)
        let blank = height.saturating_sub(1).saturating_sub(rows.len());
        let rows = std::iter::repeat_n(String::new(), blank).chain(rows);
        for (at, row) in (1..height).zip(rows) {
            write!(w, "\x1b[{at};1H\x1b[K")?;
            w.write_all(row.as_bytes())?;
        }
        self.draw_prompt(w)
    }

    fn draw_prompt(&mut self, w: &mut impl Write) -> io::Result<()> {
        let prompt = prompt_for(&sanitize(&self.me), self.size.0);
        let view = self.editor.view(&prompt, self.size.0);
        self.clear_prompt(w)?;
        w.write_all(view.text.as_bytes())?;
        w.write_all(b"\r")?;
        if view.cursor > 0 {
            write!(w, "\x1b[{}C", view.cursor)?;
        }
        self.prompt_shown = true;
        self.stale = false;
        Ok(())
    }

    /// Puts the prompt on the last row at start, so the transcript grows above it.
    pub(super) fn start(&mut self, w: &mut impl Write) -> io::Result<()> {
        write!(w, "\x1b[{};1H", self.size.1)?;
        self.prompt_shown = false;
        Ok(())
    }

    fn style(&self) -> Style<'_> {
        Style {
            me: &self.me,
            width: self.size.0,
            colour: self.colour,
            bell: self.bell,
        }
    }
}

/// The nicks Tab completes: everyone here but the user.
fn completions(chat: &crate::chat::Chat) -> Vec<String> {
    chat.names()
        .into_iter()
        .filter(|n| !n.you)
        .map(|n| n.nick)
        .collect()
}

/// `nick> `, the nick cut with `…` so that the prompt takes at most half the width: a long nick
/// in a narrow window still leaves room for what is typed.
fn prompt_for(nick: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let room = (width / 2).saturating_sub(2);
    if unicode_width::UnicodeWidthStr::width(nick) <= room {
        return format!("{nick}> ");
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in nick.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > room {
            break;
        }
        used += w;
        cut.push(c);
    }
    format!("{cut}…> ")
}

/// The window's size, or 80x24 if the terminal does not say.
fn window_size() -> (usize, usize) {
    tty::size().map_or((80, 24), |(c, r)| (usize::from(c), usize::from(r)))
}

impl<W: Write> super::Reactor<W> {
    /// Draws on the terminal from now on: raw mode is on, the prompt at the bottom, and a first
    /// line says how to get help and leave.
    pub(super) fn start_terminal(&mut self, setup: TermSetup) {
        let (term, lines) = Terminal::new(setup, self.chat.nick());
        self.term_lines = Some(lines);
        if let Err(gone) = self.screen.set_terminal(term) {
            self.stdout_gone(gone);
        }
        self.show(&Event::Info(
            "type a line and Enter to send it; /help for commands; /quit or Ctrl-D to leave".into(),
        ));
    }

    /// Keys read since the last turn go through the editor; lines sent reach the gate. An
    /// unfinished escape sequence arms [`Timer::Escape`].
    pub(super) fn read_keys(&mut self, now: Instant) {
        let chat = &self.chat;
        let Some(term) = self.screen.terminal() else {
            return;
        };
        term.set_nick(chat.nick());
        let names = || completions(chat);
        if let Some(waiting) = term.read_keys(&names) {
            let at = waiting.then(|| now + ESCAPE_WAIT);
            super::timers::arm(&mut self.timers, Timer::Escape, at);
            self.show_key_notices();
        }
    }

    /// [`Timer::Escape`] fired: the ESC kept was the Esc key.
    pub(super) fn escape_due(&mut self) {
        let chat = &self.chat;
        let Some(term) = self.screen.terminal() else {
            return;
        };
        term.flush_escape(&|| completions(chat));
        self.show_key_notices();
    }

    fn show_key_notices(&mut self) {
        let notices = match self.screen.terminal() {
            Some(term) => term.take_notices(),
            None => return,
        };
        for text in notices {
            self.show(&Event::Info(text));
        }
    }

    /// Brings the terminal up to date before it is drawn: the nick in the prompt, and the
    /// warnings logged since (shown in the transcript, not on stderr).
    pub(super) fn sync_terminal(&mut self) {
        let Some(term) = self.screen.terminal() else {
            return;
        };
        term.set_nick(self.chat.nick());
        for line in crate::term::warnings::take() {
            self.show(&Event::Info(line));
        }
    }

    /// Keys wait that the last turn did not take.
    pub(super) fn keys_wait(&mut self) -> bool {
        self.screen.terminal().is_some_and(|t| t.has_more())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Speech;
    use std::sync::mpsc::sync_channel;

    /// A terminal room drawing into a screen model 80x24, and the sender of its keys.
    struct Screen {
        term: Terminal,
        lines: Receiver<Input>,
        keys: std::sync::mpsc::SyncSender<Vec<u8>>,
        bytes: Vec<u8>,
    }

    impl Screen {
        fn new() -> Screen {
            let setup = TermSetup {
                raw: RawMode::untouched(),
                bell: Bell::Mention,
                colour: true,
            };
            let (mut term, lines) = Terminal::new(setup, "ana");
            term.size = (80, 24);
            let (keys, rx) = sync_channel(64);
            term.attach(rx);
            let mut bytes = Vec::new();
            term.start(&mut bytes).unwrap();
            Screen {
                term,
                lines,
                keys,
                bytes,
            }
        }

        fn type_keys(&mut self, keys: &str) {
            self.keys.send(keys.as_bytes().to_vec()).unwrap();
            self.term.read_keys(&|| vec!["bob".to_string()]);
            self.term.draw(&mut self.bytes).unwrap();
        }

        fn show(&mut self, event: Event) {
            self.term.show(&event, "12:00:00", &mut self.bytes).unwrap();
            self.term.draw(&mut self.bytes).unwrap();
        }

        fn parsed(&self) -> vt100::Parser {
            let size = |n| std::num::NonZeroU16::new(n).expect("not zero");
            let mut p = vt100::Parser::new(size(24), size(80), 0);
            p.process(&self.bytes);
            p
        }

        fn row(&self, i: u16) -> String {
            let p = self.parsed();
            p.screen()
                .contents_between(i, 0, i, 80)
                .trim_end()
                .to_string()
        }

        fn sent(&self) -> Vec<String> {
            self.lines
                .try_iter()
                .map(|i| match i {
                    Input::Line(l) => l,
                    Input::End => "<end>".into(),
                })
                .collect()
        }
    }

    fn says(from: &str, text: &str) -> Event {
        Event::Message {
            from: from.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_half_typed_line_stays_on_the_last_row_under_incoming_messages() {
        let mut s = Screen::new();
        s.type_keys("this is a long");
        for i in 1..=3 {
            s.show(says("bia", &format!("msg {i}")));
        }
        assert_eq!(s.row(23), "ana> this is a long");
        assert_eq!(s.parsed().screen().cursor_position(), (23, 19));
        for (row, i) in (20..23).zip(1..) {
            assert!(
                s.row(row).ends_with(&format!("<bia> msg {i}")),
                "{}",
                s.row(row)
            );
        }
        s.type_keys(" line\r");
        assert_eq!(s.sent(), vec!["this is a long line".to_string()]);
        assert_eq!(s.row(23), "ana>");
    }

    #[test]
    fn own_lines_are_shown_as_chat_lines_above_the_prompt() {
        let mut s = Screen::new();
        s.type_keys("draft");
        s.show(Event::Sent {
            speech: Speech::Act,
            from: "ana".into(),
            text: "waves".into(),
        });
        assert!(s.row(22).ends_with("* ana waves"), "{}", s.row(22));
        assert_eq!(s.row(23), "ana> draft");
    }

    #[test]
    fn ctrl_d_on_an_empty_line_leaves_and_the_end_of_stdin_ends_input() {
        let mut s = Screen::new();
        s.type_keys("\x04");
        assert_eq!(s.sent(), vec!["/quit".to_string()]);
        let Screen {
            mut term,
            lines,
            keys,
            ..
        } = s;
        drop(keys);
        term.read_keys(&Vec::new);
        drop(term);
        assert!(lines.try_recv().is_err(), "the channel closed");
    }

    #[test]
    fn a_redraw_clears_the_screen_and_draws_the_last_events_and_the_prompt() {
        let mut s = Screen::new();
        s.show(says("bob", "before"));
        s.type_keys("half");
        s.bytes
            .extend_from_slice(b"\x1b[5;1Hgarbage from elsewhere");
        s.type_keys("\x0c");
        assert!(!s.parsed().screen().contents().contains("garbage"));
        assert_eq!(s.parsed().screen().cursor_position(), (23, 9));
        assert!(s.row(22).ends_with("<bob> before"), "{}", s.row(22));
        assert_eq!(s.row(23), "ana> half");
    }

    #[test]
    fn a_mention_in_the_same_turn_as_a_redraw_still_rings() {
        let mut s = Screen::new();
        s.term.repaint = true;
        s.term
            .show(&says("bob", "hey ana"), "12:00:00", &mut s.bytes)
            .unwrap();
        s.term.draw(&mut s.bytes).unwrap();
        assert_eq!(s.bytes.iter().filter(|&&b| b == 0x07).count(), 1);
        assert!(s.row(22).contains("<bob> hey ana"), "{}", s.row(22));
    }

    #[test]
    fn esc_alone_then_typing_keeps_every_letter_once_the_wait_is_over() {
        let mut s = Screen::new();
        s.keys.send(b"\x1b".to_vec()).unwrap();
        assert_eq!(s.term.read_keys(&Vec::new), Some(true), "an ESC waits");
        assert_eq!(s.term.read_keys(&Vec::new), None, "nothing read, no news");
        s.term.flush_escape(&Vec::new);
        s.type_keys("Open the door");
        assert_eq!(s.row(23), "ana> Open the door");
        // A sequence read whole is a key, not an Esc: Left, then a letter before the last.
        s.type_keys("\x1b[Dx");
        assert_eq!(s.row(23), "ana> Open the dooxr");
    }

    #[test]
    fn a_nick_too_long_for_half_the_window_is_cut_in_the_prompt() {
        assert_eq!(prompt_for("ana", 80), "ana> ");
        assert_eq!(prompt_for("abcdefgh", 20), "abcdefgh> ");
        assert_eq!(prompt_for("abcdefghij", 20), "abcdefg…> ");
        assert_eq!(prompt_for("日本語の名前", 12), "日…> ");
        assert_eq!(prompt_for("ana", 2), "…> ");
        let mut s = Screen::new();
        s.term.set_nick(&"n".repeat(32));
        s.term.size = (20, 24);
        s.type_keys("typed");
        assert_eq!(s.row(23), format!("{}…> typed", "n".repeat(7)));
    }

    #[test]
    fn a_redraw_fills_the_screen_with_the_last_events_that_fit_and_keeps_at_most_keep() {
        let mut s = Screen::new();
        for i in 0..KEEP + 5 {
            s.show(says("bob", &format!("n{i}")));
        }
        assert_eq!(s.term.recent.len(), KEEP);
        s.type_keys("\x0c");
        // 23 rows above the prompt: the last 23 events, the oldest at the top.
        let last = KEEP + 4;
        assert!(
            s.row(0).ends_with(&format!("<bob> n{}", last - 22)),
            "{}",
            s.row(0)
        );
        assert!(
            s.row(22).ends_with(&format!("<bob> n{last}")),
            "{}",
            s.row(22)
        );
        assert_eq!(s.row(23), "ana>");
    }

    #[test]
    fn a_redraw_with_few_events_leaves_the_rows_above_them_blank() {
        let mut s = Screen::new();
        s.bytes.extend_from_slice(b"\x1b[1;1Hleft by the shell");
        s.show(says("bob", "one"));
        s.show(says("bob", "two"));
        s.type_keys("\x0c");
        assert_eq!(s.row(0), "");
        assert!(s.row(21).ends_with("<bob> one") && s.row(22).ends_with("<bob> two"));
    }

    #[test]
    fn keys_left_unread_by_a_turn_are_said_to_wait() {
        let mut s = Screen::new();
        for _ in 0..READS_PER_TURN + 3 {
            s.keys.send(b"x".to_vec()).unwrap();
        }
        s.term.read_keys(&Vec::new);
        assert!(s.term.has_more());
        s.term.read_keys(&Vec::new);
        assert!(!s.term.has_more());
        assert_eq!(s.term.editor.line(), "x".repeat(READS_PER_TURN + 3));
    }

    #[test]
    fn an_esc_alone_waits_escape_wait_and_the_rest_of_a_sequence_cancels_the_wait() {
        use crate::output::{Format, Output};
        use crate::reactor::{Reactor, Setup};
        let term = TermSetup {
            raw: RawMode::untouched(),
            bell: Bell::Mention,
            colour: false,
        };
        let out = Output::new(Format::Human { colour: false }, Vec::new());
        let mut r = Reactor::on_terminal(Setup::new("ana".into()), out, term).expect("start");
        let (tx, rx) = sync_channel(4);
        r.screen.terminal().expect("a terminal").attach(rx);
        let now = Instant::now();
        tx.send(b"\x1b".to_vec()).unwrap();
        r.read_keys(now);
        assert_eq!(r.timers.get(&Timer::Escape), Some(now + ESCAPE_WAIT));
        // A wake with nothing read leaves the wait as it was.
        r.read_keys(now + Duration::from_millis(20));
        assert_eq!(r.timers.get(&Timer::Escape), Some(now + ESCAPE_WAIT));
        tx.send(b"[D".to_vec()).unwrap();
        r.read_keys(now + Duration::from_millis(30));
        assert_eq!(r.timers.get(&Timer::Escape), None, "it was Left, not Esc");
    }

    #[test]
    fn a_nick_change_shows_in_the_prompt() {
        let mut s = Screen::new();
        s.type_keys("x");
        s.term.set_nick("zoe");
        s.term.draw(&mut s.bytes).unwrap();
        assert_eq!(s.row(23), "zoe> x");
    }
}
