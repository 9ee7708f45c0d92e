//! Newline-delimited framing for stdio, with a cap on line length.
//!
//! An over-long line is skipped to its end without being held in memory, and reported so the
//! transport can answer it; one bad line never ends the session.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Default cap on one message: large enough for big tool arguments and results.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// One frame read from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(String),
    /// A line longer than the cap (its content was discarded).
    TooLong(usize),
    /// A line that is not UTF-8.
    NotUtf8,
}

pub struct LineReader<R> {
    inner: R,
    max: usize,
    buffer: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            max,
            buffer: Vec::new(),
        }
    }

    /// The next frame, or `None` at end of stream.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        self.buffer.clear();
        let mut total = 0usize;
        let mut overflow = false;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                // End of stream: a final line without a newline still counts.
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            total += chunk.len();
            if total > self.max {
                overflow = true;
            } else {
                self.buffer.extend_from_slice(chunk);
            }
            let consumed = found.unwrap_or(available.len());
            self.inner.consume(consumed);
            if found.is_some() {
                break;
            }
        }
        if overflow {
            self.buffer.clear();
            return Ok(Some(Frame::TooLong(total)));
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        match String::from_utf8(std::mem::take(&mut self.buffer)) {
            Ok(line) => Ok(Some(Frame::Line(line))),
            Err(_) => Ok(Some(Frame::NotUtf8)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn frames_lines_and_caps_length() {
        let input: &[u8] = b"{\"a\":1}\r\n0123456789ABCDEF\nok\n\xff\xfe\nlast";
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(4, input), 10);
        assert_eq!(
            reader.next_frame().await.unwrap(),
            Some(Frame::Line("{\"a\":1}".into()))
        );
        assert_eq!(reader.next_frame().await.unwrap(), Some(Frame::TooLong(16)));
        assert_eq!(
            reader.next_frame().await.unwrap(),
            Some(Frame::Line("ok".into()))
        );
        assert_eq!(reader.next_frame().await.unwrap(), Some(Frame::NotUtf8));
        assert_eq!(
            reader.next_frame().await.unwrap(),
            Some(Frame::Line("last".into()))
        );
        assert_eq!(reader.next_frame().await.unwrap(), None);
    }
}
