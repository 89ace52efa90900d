//! Warnings on the interactive terminal: the logger writes into this buffer instead of stderr
//! (whose lines would land inside the prompt line), and the reactor shows them in the
//! transcript once per turn. What is left when the program ends goes to stderr.
//!
//! Must not format or filter: the logger does.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Kept at most, in bytes, until the reactor takes them; older ones go first.
const CAP: usize = 64 * 1024;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Nobody shows the buffer (the terminal refused raw mode): warnings go to stderr at once.
static PASS_THROUGH: AtomicBool = AtomicBool::new(false);

/// The logger's target on the interactive terminal.
#[derive(Debug, Default)]
pub struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if PASS_THROUGH.load(Ordering::Relaxed) {
            return io::stderr().write(buf);
        }
        let mut kept = lock();
        kept.extend_from_slice(buf);
        if kept.len() > CAP {
            let cut = kept.len() - CAP;
            // From the start of a line, so no warning is shown cut in half.
            let from = kept[cut..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(kept.len(), |p| cut + p + 1);
            kept.drain(..from);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The whole lines written since the last call.
pub fn take() -> Vec<String> {
    let mut kept = lock();
    let Some(end) = kept.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let lines: Vec<u8> = kept.drain(..=end).collect();
    String::from_utf8_lossy(&lines)
        .lines()
        .map(str::to_string)
        .collect()
}

/// From now on warnings go to stderr, as in line mode; what was kept goes there first.
pub fn pass_through() {
    PASS_THROUGH.store(true, Ordering::Relaxed);
    to_stderr();
}

/// Writes what nobody took to stderr (the program is ending, the terminal restored).
pub fn to_stderr() {
    let kept = std::mem::take(&mut *lock());
    let _ = io::stderr().write_all(&kept);
}

fn lock() -> std::sync::MutexGuard<'static, Vec<u8>> {
    BUFFER.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_are_taken_and_a_full_buffer_drops_the_oldest_whole_lines() {
        // One test: the buffer is shared by the whole process.
        let mut sink = Sink;
        sink.write_all(b"one\ntw").unwrap();
        assert_eq!(take(), vec!["one".to_string()]);
        sink.write_all(b"o\n").unwrap();
        assert_eq!(take(), vec!["two".to_string()]);
        let line = format!("{}\n", "x".repeat(999));
        for _ in 0..100 {
            sink.write_all(line.as_bytes()).unwrap();
        }
        let got = take();
        assert_eq!(got.len(), CAP / 1000);
        assert!(got.iter().all(|l| l.len() == 999));
        assert!(take().is_empty());
    }
}
