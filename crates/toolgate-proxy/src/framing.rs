//! Newline-delimited framing for stdio, with a cap on line length.
//!
//! An over-long line is skipped to its end without being held in memory, and reported so the
//! transport can answer it; one bad line never ends the session. The framing logic lives in
//! [`FrameAssembler`], shared by the async reader (pipes to a child) and the blocking reader
//! (the process's own stdin, read on a thread of its own).

use std::io::BufRead;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Default cap on one message: large enough for big tool arguments and results.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Read buffer size: large messages arrive in few reads.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

/// One frame read from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(String),
    /// A line longer than the cap (its content was discarded).
    TooLong(usize),
    /// A line that is not UTF-8.
    NotUtf8,
}

/// Turns chunks of bytes into frames.
struct FrameAssembler {
    max: usize,
    buffer: Vec<u8>,
    total: usize,
}

impl FrameAssembler {
    fn new(max: usize) -> FrameAssembler {
        FrameAssembler {
            max,
            buffer: Vec::new(),
            total: 0,
        }
    }

    /// Takes what it can from `available`; returns how much it consumed and the frame it
    /// completed, if any.
    fn feed(&mut self, available: &[u8]) -> (usize, Option<Frame>) {
        let (chunk, found) = match memchr_newline(available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        self.total += chunk.len();
        if self.total <= self.max {
            self.buffer.extend_from_slice(chunk);
        }
        match found {
            Some(consumed) => (consumed, Some(self.finish())),
            None => (available.len(), None),
        }
    }

    /// End of stream: a final line without a newline still counts.
    fn finish_at_eof(&mut self) -> Option<Frame> {
        (self.total > 0).then(|| self.finish())
    }

    fn finish(&mut self) -> Frame {
        let total = std::mem::take(&mut self.total);
        let mut line = std::mem::take(&mut self.buffer);
        if total > self.max {
            return Frame::TooLong(total);
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        match String::from_utf8(line) {
            Ok(line) => Frame::Line(line),
            Err(_) => Frame::NotUtf8,
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// Frames from an async stream.
pub struct LineReader<R> {
    inner: R,
    assembler: FrameAssembler,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            assembler: FrameAssembler::new(max),
        }
    }

    /// The next frame, or `None` at end of stream.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(self.assembler.finish_at_eof());
            }
            let (consumed, frame) = self.assembler.feed(available);
            self.inner.consume(consumed);
            if frame.is_some() {
                return Ok(frame);
            }
        }
    }
}

/// Frames from a blocking stream.
pub struct BlockingLineReader<R> {
    inner: R,
    assembler: FrameAssembler,
}

impl<R: BufRead> BlockingLineReader<R> {
    pub fn new(inner: R, max: usize) -> BlockingLineReader<R> {
        BlockingLineReader {
            inner,
            assembler: FrameAssembler::new(max),
        }
    }

    /// The next frame, or `None` at end of stream.
    pub fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            let available = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(self.assembler.finish_at_eof());
            }
            let (consumed, frame) = self.assembler.feed(available);
            self.inner.consume(consumed);
            if frame.is_some() {
                return Ok(frame);
            }
        }
    }
}

impl<R: std::io::Read> BlockingLineReader<std::io::BufReader<R>> {
    /// Whether a whole line is already buffered: the next frame is ready without a read.
    pub fn line_waiting(&self) -> bool {
        memchr_newline(self.inner.buffer()).is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const INPUT: &[u8] = b"{\"a\":1}\r\n0123456789ABCDEF\nok\n\xff\xfe\nlast";

    fn expected() -> Vec<Frame> {
        vec![
            Frame::Line("{\"a\":1}".into()),
            Frame::TooLong(16),
            Frame::Line("ok".into()),
            Frame::NotUtf8,
            Frame::Line("last".into()),
        ]
    }

    #[tokio::test]
    async fn async_reader_frames_lines_and_caps_length() {
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(4, INPUT), 10);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().await.unwrap() {
            frames.push(frame);
        }
        assert_eq!(frames, expected());
    }

    #[test]
    fn blocking_reader_frames_the_same() {
        let mut reader = BlockingLineReader::new(std::io::BufReader::with_capacity(3, INPUT), 10);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            frames.push(frame);
        }
        assert_eq!(frames, expected());
    }

    #[test]
    fn a_buffered_whole_line_is_seen_as_waiting() {
        // One read takes all of it: two whole lines and the start of a third.
        let input: &[u8] = b"one\ntwo\nthr";
        let mut reader = BlockingLineReader::new(std::io::BufReader::new(input), 10);
        assert!(
            !reader.line_waiting(),
            "nothing is read before the first frame"
        );
        assert_eq!(
            reader.next_frame().unwrap(),
            Some(Frame::Line("one".into()))
        );
        assert!(reader.line_waiting());
        assert_eq!(
            reader.next_frame().unwrap(),
            Some(Frame::Line("two".into()))
        );
        assert!(!reader.line_waiting(), "half a line is not a line");
        assert_eq!(
            reader.next_frame().unwrap(),
            Some(Frame::Line("thr".into()))
        );
    }
}
