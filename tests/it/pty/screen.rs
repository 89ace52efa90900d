//! The screen side of the pty harness: the terminal model's callbacks (bells, answers to status
//! queries) and helpers that read rows and looks off a `vt100::Screen`.
//!
//! Must not start processes or touch the pty.

/// The terminal model's callbacks: bells counted, and answers to the terminal's status queries
/// (as a real terminal sends them back as input).
#[derive(Default)]
pub struct Seen {
    /// How many times the bell rang.
    pub bells: usize,
    /// Answers not yet sent back to the program.
    pub answers: Vec<u8>,
}

impl vt100::Callbacks for Seen {
    fn audible_bell(&mut self, _: &mut vt100::Screen) {
        self.bells += 1;
    }

    fn unhandled_csi(
        &mut self,
        screen: &mut vt100::Screen,
        i1: Option<u8>,
        _: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        if c != 'n' || i1.is_some() {
            return;
        }
        match params.first().and_then(|p| p.first()) {
            Some(5) => self.answers.extend_from_slice(b"\x1b[0n"),
            Some(6) => {
                let (row, col) = screen.cursor_position();
                let answer = format!("\x1b[{};{}R", row + 1, col + 1);
                self.answers.extend_from_slice(answer.as_bytes());
            }
            _ => {}
        }
    }
}

/// How a cell looks: foreground, background, bold, inverse, underline.
pub type Look = (vt100::Color, vt100::Color, bool, bool, bool);

pub fn look(c: &vt100::Cell) -> Look {
    (
        c.fgcolor(),
        c.bgcolor(),
        c.bold(),
        c.inverse(),
        c.underline(),
    )
}

pub fn row_of(screen: &vt100::Screen, i: u16) -> String {
    let (_, cols) = screen.size();
    screen
        .rows(0, cols.get())
        .nth(usize::from(i))
        .unwrap_or_default()
}

pub fn rows_of(screen: &vt100::Screen) -> Vec<String> {
    let (_, cols) = screen.size();
    screen.rows(0, cols.get()).collect()
}

pub fn framed(screen: &vt100::Screen) -> String {
    let (cur_row, cur_col) = screen.cursor_position();
    let mut out = String::new();
    for (i, row) in rows_of(screen).iter().enumerate() {
        out.push_str(&format!("{i:>2}|{row}\n"));
    }
    out.push_str(&format!("cursor at row {cur_row}, col {cur_col}"));
    out
}

/// Helpers on a screen for `wait_screen` predicates.
pub trait ScreenExt {
    /// Row `i` from the top, without trailing blanks.
    fn row(&self, i: u16) -> String;
    /// The last row.
    fn bottom(&self) -> String;
    /// Every row.
    fn all_rows(&self) -> Vec<String>;
    /// Whether some row reads `text` somewhere.
    fn shows(&self, text: &str) -> bool;
    /// The screen framed for a message: each row between bars, with its number.
    fn framed(&self) -> String;
}

impl ScreenExt for vt100::Screen {
    fn row(&self, i: u16) -> String {
        row_of(self, i)
    }

    fn bottom(&self) -> String {
        let (rows, _) = self.size();
        row_of(self, rows.get() - 1)
    }

    fn all_rows(&self) -> Vec<String> {
        rows_of(self)
    }

    fn shows(&self, text: &str) -> bool {
        rows_of(self).iter().any(|r| r.contains(text))
    }

    fn framed(&self) -> String {
        framed(self)
    }
}
