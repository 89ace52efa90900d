//! The stdin thread: reads typed (or piped) lines, hands each over a bounded channel and wakes
//! the reactor. The end of input is an event too. Must not do anything else.

use std::io::{BufRead, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use mio::Waker;

/// The longest line read from stdin in one piece; a longer one arrives as several lines.
const MAX_INPUT_LINE: u64 = 1024 * 1024;

/// How many lines may wait for the reactor: past that the thread stops reading, so a large file
/// piped in is not loaded into memory at once.
const QUEUE: usize = 1024;

/// What the stdin thread hands over.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// One line, without its `\n` or `\r\n`; invalid UTF-8 replaced by U+FFFD.
    Line(String),
    /// Stdin ended or failed.
    End,
}

/// Starts the thread over the process's stdin.
pub fn spawn(waker: Arc<Waker>) -> std::io::Result<Receiver<Input>> {
    let (tx, rx) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_lines(std::io::stdin().lock(), &tx, &|| waker.wake()))?;
    Ok(rx)
}

/// Reads `input` to its end, sending each line, then `End`; `wake` is called after each send.
pub fn read_lines(
    mut input: impl BufRead,
    tx: &SyncSender<Input>,
    wake: &dyn Fn() -> std::io::Result<()>,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input
            .by_ref()
            .take(MAX_INPUT_LINE)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                if tx.send(Input::Line(line)).is_err() || wake().is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Input::End);
    let _ = wake();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_then_end() {
        let (tx, rx) = sync_channel(16);
        read_lines(&b"one\r\ntwo\n\xffthree"[..], &tx, &|| Ok(()));
        let got: Vec<Input> = rx.try_iter().collect();
        assert_eq!(
            got,
            vec![
                Input::Line("one".into()),
                Input::Line("two".into()),
                Input::Line("\u{fffd}three".into()),
                Input::End
            ]
        );
    }
}
