//! The stdin thread: reads typed (or piped) lines, hands each over a bounded channel and wakes
//! the reactor. The end of input is an event too. On the interactive terminal it hands over the
//! bytes as read instead (keys, which the reactor's terminal room decodes). Must not do anything
//! else.

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

/// Starts the thread over the process's stdin in raw mode: each read's bytes as they come; the
/// channel closes when stdin ends or fails.
pub fn spawn_raw(waker: Arc<Waker>) -> std::io::Result<Receiver<Vec<u8>>> {
    let (tx, rx) = sync_channel(RAW_QUEUE);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_raw(std::io::stdin().lock(), &tx, &|| waker.wake()))?;
    Ok(rx)
}

/// How many reads may wait for the reactor in raw mode (a long paste is read at its pace).
const RAW_QUEUE: usize = 64;

/// Sends what each read of `input` gives until it ends; `wake` is called after each send.
pub fn read_raw(
    mut input: impl Read,
    tx: &SyncSender<Vec<u8>>,
    wake: &dyn Fn() -> std::io::Result<()>,
) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if tx.send(buf[..n].to_vec()).is_err() || wake().is_err() {
            return;
        }
    }
    // The channel closes as `tx` goes; the reactor sees it on this wake.
    let _ = wake();
}

/// Reads `input` to its end, sending each line, then `End`; `wake` is called after each send.
pub fn read_lines(
    mut input: impl BufRead,
    tx: &SyncSender<Input>,
    wake: &dyn Fn() -> std::io::Result<()>,
) {
    let mut buf = Vec::new();
    // The start of a character cut by the length limit, kept for the next piece.
    let mut carry = Vec::new();
    loop {
        buf.clear();
        buf.append(&mut carry);
        let n = match input
            .by_ref()
            .take(MAX_INPUT_LINE)
            .read_until(b'\n', &mut buf)
        {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 && buf.is_empty() {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if n > 0 {
            // Cut by the limit, not by a newline: do not split a character in two.
            if let Err(e) = std::str::from_utf8(&buf) {
                if e.error_len().is_none() {
                    carry = buf.split_off(e.valid_up_to());
                }
            }
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        if tx.send(Input::Line(line)).is_err() || wake().is_err() {
            return;
        }
        if n == 0 {
            break;
        }
    }
    let _ = tx.send(Input::End);
    let _ = wake();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_reads_are_sent_as_they_come_until_the_end() {
        let (tx, rx) = sync_channel(16);
        let woken = std::cell::Cell::new(0);
        read_raw(&b"\x1b[Ah\xc3"[..], &tx, &|| {
            woken.set(woken.get() + 1);
            Ok(())
        });
        drop(tx);
        let got: Vec<u8> = rx.iter().flatten().collect();
        assert_eq!(got, b"\x1b[Ah\xc3");
        assert_eq!(woken.get(), 2);
    }

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

    #[test]
    fn a_line_over_the_limit_is_split_between_characters() {
        let (tx, rx) = sync_channel(16);
        // The limit falls inside the first 'é' after MAX_INPUT_LINE - 1 ASCII bytes.
        let mut input = vec![b'a'; MAX_INPUT_LINE as usize - 1];
        input.extend_from_slice("ééé\n".as_bytes());
        read_lines(&input[..], &tx, &|| Ok(()));
        let got: Vec<Input> = rx.try_iter().collect();
        let Input::Line(first) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(first.len(), MAX_INPUT_LINE as usize - 1);
        assert_eq!(got[1], Input::Line("ééé".into()));
        assert_eq!(got[2], Input::End);
    }
}
