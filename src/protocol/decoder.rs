//! The line decoder: splits a connection's byte stream into lines and refuses any line over its
//! cap, before the line is whole, so one connection's memory stays bounded.
//!
//! Pure code: bytes in, lines out. Must not read sockets or know what a line means.

use super::{ProtocolError, MAX_LINE};

/// Splits a byte stream into lines. Feed it with [`LineDecoder::push`], then call
/// [`LineDecoder::next_line`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    start: usize,
    /// Bytes before this offset (from `start`) hold no `\n`: no need to scan them again.
    scanned: usize,
    max: usize,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder whose lines may hold at most `max` bytes (without the `\n`).
    pub fn new(max: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, without `\n` or `\r\n`. An error means the stream is unusable.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ProtocolError> {
        if self.start > 0 && self.start == self.buf.len() {
            // All taken: start over, and give back what one long line made the buffer grow to.
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            self.buf.shrink_to(16 * 1024);
        }
        let pending = &self.buf[self.scanned..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i;
                let line_start = self.start;
                self.start = end + 1;
                self.scanned = self.start;
                if end - line_start > self.max {
                    return Err(ProtocolError::LineTooLong);
                }
                let mut line = &self.buf[line_start..end];
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
                Ok(Some(line))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max {
                    Err(ProtocolError::LineTooLong)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Bytes received after the last complete line.
    pub fn partial(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Takes the bytes after the last complete line, as if a `\n` had followed them.
    pub fn take_partial(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(dec: &mut LineDecoder) -> Result<Vec<Vec<u8>>, ProtocolError> {
        // Every line ends in a byte already pushed: more lines than that means the decoder is
        // handing the same bytes out again (fail here rather than loop forever).
        let most = dec.partial().len();
        let mut out = Vec::new();
        while let Some(line) = dec.next_line()? {
            out.push(line.to_vec());
            assert!(out.len() <= most, "more lines than bytes pushed");
        }
        Ok(out)
    }

    #[test]
    fn decoder_gives_the_same_lines_whatever_the_split() {
        let input = "one\r\ntwo\n\nação 你好 👋\nlast\n".as_bytes();
        let want: Vec<Vec<u8>> = ["one", "two", "", "ação 你好 👋", "last"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        for cut in 0..=input.len() {
            for cut2 in cut..=input.len() {
                let mut dec = LineDecoder::default();
                let mut got = Vec::new();
                for part in [&input[..cut], &input[cut..cut2], &input[cut2..]] {
                    dec.push(part);
                    got.extend(lines_of(&mut dec).unwrap());
                }
                assert_eq!(got, want, "split at {cut},{cut2}");
                assert!(dec.partial().is_empty());
            }
        }
    }

    #[test]
    fn decoder_byte_by_byte() {
        let mut dec = LineDecoder::default();
        let mut got = Vec::new();
        for b in b"ab\ncd\r\nef" {
            dec.push(&[*b]);
            got.extend(lines_of(&mut dec).unwrap());
        }
        assert_eq!(got, vec![b"ab".to_vec(), b"cd".to_vec()]);
        assert_eq!(dec.take_partial(), b"ef");
        assert!(dec.partial().is_empty());
    }

    #[test]
    fn decoder_refuses_an_overlong_line_with_or_without_newline() {
        let mut dec = LineDecoder::new(10);
        dec.push(b"0123456789");
        assert_eq!(lines_of(&mut dec), Ok(vec![]));
        dec.push(b"x");
        assert_eq!(lines_of(&mut dec), Err(ProtocolError::LineTooLong));

        let mut dec = LineDecoder::new(10);
        dec.push(b"ok\n0123456789ab\n");
        assert_eq!(dec.next_line(), Ok(Some(&b"ok"[..])));
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));

        let mut dec = LineDecoder::new(10);
        dec.push(b"0123456789\n");
        assert_eq!(lines_of(&mut dec), Ok(vec![b"0123456789".to_vec()]));
    }

    #[test]
    fn decoder_refuses_one_byte_past_the_cap_with_a_newline() {
        let mut dec = LineDecoder::new(10);
        dec.push(b"0123456789x\n");
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));
    }

    #[test]
    fn default_cap_is_64_kib_a_line_of_exactly_that_passes_whole_one_more_byte_is_refused() {
        // The promise is 64 KiB a line, without its newline; pinned here by value, not by
        // MAX_LINE, so that moving the cap fails a test.
        const CAP: usize = 64 * 1024;
        let full = vec![b'x'; CAP];
        let over = vec![b'y'; CAP + 1];

        let mut dec = LineDecoder::default();
        dec.push(&full);
        assert_eq!(
            dec.next_line(),
            Ok(None),
            "exactly the cap waits for its newline"
        );
        dec.push(b"\nnext\n");
        assert_eq!(dec.next_line(), Ok(Some(&full[..])));
        assert_eq!(dec.next_line(), Ok(Some(&b"next"[..])));

        let mut dec = LineDecoder::default();
        dec.push(&full);
        dec.push(b"\n");
        assert_eq!(lines_of(&mut dec), Ok(vec![full.clone()]));

        // One byte more is refused at once, before any newline comes...
        let mut dec = LineDecoder::default();
        dec.push(&over);
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));

        // ...and with its newline too, even after a line that was fine.
        let mut dec = LineDecoder::default();
        dec.push(b"ok\n");
        dec.push(&over);
        dec.push(b"\n");
        assert_eq!(dec.next_line(), Ok(Some(&b"ok"[..])));
        assert_eq!(dec.next_line(), Err(ProtocolError::LineTooLong));
    }

    #[test]
    fn decoder_gives_short_and_empty_lines_whole_in_every_chunk_size() {
        // Lines no longer than the cap, many of them empty or one byte long, so that the buffer
        // is compacted with a partial line of every length left in it.
        let input = b"\na\nb\n\ncd\n\n\nefg\nh\r\n\nij\nk\n";
        let want: Vec<Vec<u8>> = ["", "a", "b", "", "cd", "", "", "efg", "h", "", "ij", "k"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        for size in 1..=input.len() {
            let mut dec = LineDecoder::new(3);
            let mut got = Vec::new();
            for chunk in input.chunks(size) {
                dec.push(chunk);
                match lines_of(&mut dec) {
                    Ok(lines) => got.extend(lines),
                    Err(e) => panic!("chunks of {size}: {e:?} after {got:?}"),
                }
            }
            assert_eq!(got, want, "chunks of {size}");
            assert!(dec.partial().is_empty(), "chunks of {size}");
        }
    }

    #[test]
    fn a_short_partial_line_after_taken_lines_is_not_refused() {
        let mut dec = LineDecoder::new(5);
        dec.push(b"ok\nabc");
        assert_eq!(dec.next_line(), Ok(Some(&b"ok"[..])));
        assert_eq!(dec.next_line(), Ok(None));
        dec.push(b"de");
        assert_eq!(dec.next_line(), Ok(None));
        assert_eq!(dec.partial(), b"abcde");
        dec.push(b"\n");
        assert_eq!(dec.next_line(), Ok(Some(&b"abcde"[..])));
    }

    #[test]
    fn decoder_passes_invalid_utf8_bytes_through() {
        let mut dec = LineDecoder::default();
        dec.push(b"\xff\xfeok\n");
        let line = dec.next_line().unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(line), "\u{fffd}\u{fffd}ok");
    }

    #[test]
    fn decoder_memory_is_reclaimed_as_lines_are_taken() {
        let mut dec = LineDecoder::new(100);
        for _ in 0..10_000 {
            dec.push(b"0123456789\n");
            assert!(dec.next_line().unwrap().is_some());
        }
        assert!(dec.buf.capacity() < 1000, "{}", dec.buf.capacity());
        dec = LineDecoder::default();
        dec.push(&[b'x'; 60_000]);
        dec.push(b"\n");
        assert!(dec.next_line().unwrap().is_some());
        assert_eq!(dec.next_line(), Ok(None));
        assert!(dec.buf.capacity() <= 16 * 1024, "{}", dec.buf.capacity());
    }
}
