//! The interactive terminal front end, used when stdin and stdout are both terminals and `TERM`
//! is set and not `dumb`: a prompt line at the bottom that incoming messages never break, line
//! editing with history and completion, a transcript wrapped with a hanging indent, colours per
//! nick, and the bell on a mention.
//!
//! `keys`, `editor` and `render` are pure (no IO, no clock) and unit-tested without a terminal;
//! `tty` is the only part that talks to the terminal device (raw mode, its restoring, the
//! window size). The reactor's `terminal` room wires them into the event loop. In line mode
//! (pipes, scripts, `TERM=dumb`) none of this runs.

pub mod editor;
pub mod keys;
pub mod render;
pub mod tty;
pub mod warnings;
