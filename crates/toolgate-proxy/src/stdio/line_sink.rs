//! A pipe written by whichever thread has a message for it.
//!
//! Handing every message to a writer thread costs a thread wake-up per message in each
//! direction, and at one call in flight those wake-ups were most of what the proxy added. A
//! `LineSink` is written by the thread that produced the message, and never blocks it: the
//! pipe is non-blocking, and a write that would block leaves the rest to the sink's flusher
//! thread, which waits for the reader to drain the pipe. One buffer under one lock keeps the
//! messages in order. Once [`MAX_PENDING_BYTES`] are waiting, senders wait (asynchronously)
//! for room, so a reader that stops reading slows its producers instead of growing memory or
//! stalling a runtime thread.
//!
//! A reader thread that handles a burst of input *corks* itself ([`cork_this_thread`]): what
//! it sends is only buffered, and it calls [`flush_this_thread`] once its input runs dry, so a
//! burst's answers leave in one write — to every sink it wrote to, which behind a gateway
//! config includes other sessions' (the client's stdout, each server's stdin). A corked
//! thread's buffer that reaches [`MAX_PENDING_BYTES`] is written at once: the thread must not
//! wait for room that only its own flush would make.

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::{fstat, SFlag};
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

/// Bytes that may wait in a sink before senders wait for room. One message may take it over
/// (a message is never split across waits), so this bounds the backlog, not a message.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// A buffer grown past this by a large message is given back once written.
const KEEP_CAPACITY: usize = 256 * 1024;

thread_local! {
    static CORKED: Cell<bool> = const { Cell::new(false) };
    /// The sinks this corked thread has buffered lines in since it last flushed.
    static CORKED_SINKS: std::cell::RefCell<Vec<Arc<LineSink>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// From now on, what this thread sends is buffered until it calls [`flush_this_thread`].
pub fn cork_this_thread() {
    CORKED.with(|c| c.set(true));
}

/// Writes what this corked thread left waiting, in every sink it sent to.
pub fn flush_this_thread() {
    let sinks = CORKED_SINKS.with(|s| std::mem::take(&mut *s.borrow_mut()));
    for sink in sinks {
        sink.flush();
    }
}

pub struct LineSink {
    name: &'static str,
    state: Mutex<SinkState>,
    /// Wakes the flusher: the pipe was full, or the sink is closing.
    flusher_wanted: Condvar,
    /// Wakes senders waiting for room, and [`LineSink::closed`].
    drained: Notify,
}

struct SinkState {
    /// `None` once closed, or once a write failed (the reader is gone).
    file: Option<File>,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written.
    written: usize,
    /// The pipe was full: the flusher writes until `buf` is empty, and senders only append.
    flusher_writes: bool,
    closing: bool,
}

enum Progress {
    AllWritten,
    PipeFull,
    Failed(std::io::Error),
}

impl SinkState {
    fn waiting_bytes(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Writes what is waiting without blocking.
    fn write_waiting(&mut self) -> Progress {
        let Some(file) = &mut self.file else {
            return Progress::AllWritten;
        };
        while self.written < self.buf.len() {
            match file.write(&self.buf[self.written..]) {
                Ok(0) => return Progress::Failed(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Keep the unwritten tail only, so a slow reader does not let the written
                    // head pile up in front of it.
                    if self.written > self.buf.len() / 2 {
                        self.buf.drain(..self.written);
                        self.written = 0;
                    }
                    return Progress::PipeFull;
                }
                Err(e) => return Progress::Failed(e),
            }
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        Progress::AllWritten
    }
}

impl LineSink {
    /// A sink writing to `fd`, with its flusher thread.
    ///
    /// A pipe or socket is made non-blocking. The flag belongs to the open file, which other
    /// processes may share; for a pipe or socket that is the client's or the server's end of
    /// a channel made for this process, but a terminal is shared with the shell that started
    /// toolgate (which would then find its terminal non-blocking), so a terminal or a file is
    /// written with blocking writes: those wait for a terminal's flow control at worst.
    pub fn start(name: &'static str, fd: OwnedFd) -> std::io::Result<Arc<LineSink>> {
        let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK {
            set_nonblocking(&fd, true)?;
        }
        let sink = Arc::new(LineSink {
            name,
            state: Mutex::new(SinkState {
                file: Some(File::from(fd)),
                buf: Vec::with_capacity(64 * 1024),
                written: 0,
                flusher_writes: false,
                closing: false,
            }),
            flusher_wanted: Condvar::new(),
            drained: Notify::new(),
        });
        // The flusher polls its own duplicate of the descriptor, so the sink may close its
        // file at any time; the duplicate goes when the flusher ends, at close.
        let pipe = sink
            .state
            .lock()
            .file
            .as_ref()
            .map(|f| f.as_fd().try_clone_to_owned());
        let pipe = pipe.ok_or_else(|| std::io::Error::other("sink without a pipe"))??;
        let flusher = Arc::clone(&sink);
        std::thread::Builder::new()
            .name(format!("toolgate-{name}"))
            .spawn(move || flusher.run_flusher(&pipe))?;
        Ok(sink)
    }

    /// Queues one message as a line and, unless this thread is corked, writes it now.
    /// Waits while the sink is full. Returns false once the sink is closed or its reader gone.
    pub async fn send(self: &Arc<Self>, message: &str) -> bool {
        loop {
            match self.try_send(message) {
                Some(sent) => return sent,
                None => {
                    let room = self.drained.notified();
                    tokio::pin!(room);
                    room.as_mut().enable();
                    // Room may have been made between the try and the `enable`.
                    match self.try_send(message) {
                        Some(sent) => return sent,
                        None => room.await,
                    }
                }
            }
        }
    }

    /// Sends unless the sink is full (`None`).
    fn try_send(self: &Arc<Self>, message: &str) -> Option<bool> {
        let mut state = self.state.lock();
        if state.file.is_none() || state.closing {
            return Some(false);
        }
        if state.waiting_bytes() >= MAX_PENDING_BYTES {
            return None;
        }
        state.buf.extend_from_slice(message.as_bytes());
        state.buf.push(b'\n');
        // A corked thread's lines wait for its flush, but not past the bound: the thread
        // that would then wait for room is the one that would write them.
        if CORKED.with(Cell::get) && state.waiting_bytes() < MAX_PENDING_BYTES {
            CORKED_SINKS.with(|sinks| {
                let mut sinks = sinks.borrow_mut();
                if !sinks.iter().any(|s| Arc::ptr_eq(s, self)) {
                    sinks.push(Arc::clone(self));
                }
            });
        } else {
            self.write_now(&mut state);
        }
        Some(true)
    }

    /// Writes what corked senders left waiting.
    pub fn flush(&self) {
        let mut state = self.state.lock();
        self.write_now(&mut state);
    }

    /// Writes what is waiting, then closes the pipe (its reader sees end of input). Later
    /// sends are refused.
    pub fn close(&self) {
        self.state.lock().closing = true;
        self.flusher_wanted.notify_one();
    }

    /// Waits until the sink is closed and everything before the close written (or the
    /// reader is gone).
    pub async fn closed(&self) {
        loop {
            let done = self.drained.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.state.lock().file.is_none() {
                return;
            }
            done.await;
        }
    }

    fn write_now(&self, state: &mut SinkState) {
        if state.flusher_writes || state.waiting_bytes() == 0 {
            return;
        }
        match state.write_waiting() {
            Progress::AllWritten => {}
            Progress::PipeFull => {
                state.flusher_writes = true;
                self.flusher_wanted.notify_one();
            }
            Progress::Failed(e) => self.reader_gone(state, &e),
        }
    }

    fn reader_gone(&self, state: &mut SinkState, error: &std::io::Error) {
        tracing::debug!(sink = self.name, %error, "the reader of a pipe is gone");
        state.file = None;
        state.buf = Vec::new();
        state.written = 0;
        self.drained.notify_waiters();
    }

    /// The flusher: whenever the pipe was found full, waits for room and writes until
    /// nothing waits; on close, writes the rest and closes the pipe.
    fn run_flusher(&self, pipe: &OwnedFd) {
        let mut state = self.state.lock();
        loop {
            while !state.flusher_writes && !state.closing {
                self.flusher_wanted.wait(&mut state);
            }
            loop {
                match state.write_waiting() {
                    Progress::AllWritten => break,
                    Progress::PipeFull => {
                        self.drained.notify_waiters();
                        parking_lot::MutexGuard::unlocked(&mut state, || wait_writable(pipe));
                    }
                    Progress::Failed(e) => {
                        self.reader_gone(&mut state, &e);
                        break;
                    }
                }
            }
            state.flusher_writes = false;
            self.drained.notify_waiters();
            if state.closing {
                state.file = None;
                self.drained.notify_waiters();
                return;
            }
        }
    }
}

/// Sets or clears `O_NONBLOCK` on the open file behind `fd`.
pub(crate) fn set_nonblocking(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Blocks until the pipe can take a write (or a second passed, or its reader hung up: the
/// next write says which).
fn wait_writable(pipe: &OwnedFd) {
    let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLOUT)];
    let _ = poll(&mut fds, PollTimeout::from(1000u16));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    fn pipe() -> (File, OwnedFd) {
        let (read, write) = nix::unistd::pipe().unwrap();
        (File::from(read), write)
    }

    #[tokio::test]
    async fn lines_arrive_in_order_and_close_ends_the_stream() {
        let (mut read, write) = pipe();
        let sink = LineSink::start("test", write).unwrap();
        for i in 0..1000 {
            assert!(sink.send(&format!("{{\"n\":{i}}}")).await);
        }
        sink.close();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            read.read_to_string(&mut all).unwrap();
            all
        });
        sink.closed().await;
        let all = reader.join().unwrap();
        let expected: String = (0..1000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        assert_eq!(all, expected);
        assert!(!sink.send("late").await, "a closed sink refuses messages");
    }

    #[tokio::test]
    async fn a_reader_that_does_not_read_makes_senders_wait_not_memory_grow() {
        let (mut read, write) = pipe();
        let sink = LineSink::start("test", write).unwrap();
        let line = "x".repeat(64 * 1024);
        // The pipe takes 64 KiB, then the sink its bound; the next send must wait.
        let mut sent = 0usize;
        loop {
            let send = sink.send(&line);
            match tokio::time::timeout(Duration::from_millis(200), send).await {
                Ok(ok) => assert!(ok),
                Err(_) => break,
            }
            sent += 1;
            assert!(sent < 1000, "the sink never made a sender wait");
        }
        assert!(sink.state.lock().waiting_bytes() <= MAX_PENDING_BYTES + line.len() + 1);
        // Once the reader reads, everything sent arrives.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            read.read_to_end(&mut all).unwrap();
            all.len()
        });
        sink.close();
        sink.closed().await;
        assert_eq!(reader.join().unwrap(), sent * (line.len() + 1));
    }

    #[tokio::test]
    async fn a_reader_gone_is_seen_by_senders() {
        let (read, write) = pipe();
        let sink = LineSink::start("test", write).unwrap();
        drop(read);
        // The first write fails with EPIPE (SIGPIPE is ignored by the Rust runtime).
        let _ = sink.send("one").await;
        assert!(!sink.send("two").await);
        sink.closed().await;
    }

    #[test]
    fn a_corked_thread_writes_only_when_it_flushes() {
        let (mut read, write) = pipe();
        let sink = LineSink::start("test", write).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        set_nonblocking(&OwnedFd::from(read.try_clone().unwrap()), true).unwrap();
        std::thread::spawn({
            let sink = Arc::clone(&sink);
            move || {
                cork_this_thread();
                runtime.block_on(async {
                    assert!(sink.send("a").await);
                    assert!(sink.send("b").await);
                });
            }
        })
        .join()
        .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            read.read(&mut buf).is_err(),
            "corked lines were written early"
        );
        sink.flush();
        let n = read.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a\nb\n");
    }

    /// A burst that buffers more than the bound is written as it goes: the corked thread
    /// must not wait for room only its own flush would make.
    #[test]
    fn a_corked_thread_never_waits_for_its_own_flush() {
        let (mut read, write) = pipe();
        let sink = LineSink::start("test", write).unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            read.read_to_end(&mut all).unwrap();
            all.len()
        });
        let line = "x".repeat(3 * 1024 * 1024);
        let (sent, sent_rx) = std::sync::mpsc::channel();
        std::thread::spawn({
            let sink = Arc::clone(&sink);
            let line = line.clone();
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                cork_this_thread();
                for _ in 0..5 {
                    assert!(runtime.block_on(sink.send(&line)));
                }
                flush_this_thread();
                sent.send(()).unwrap();
            }
        });
        sent_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the corked thread waited for room it alone could make");
        sink.close();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(sink.closed());
        assert_eq!(reader.join().unwrap(), 5 * (line.len() + 1));
    }

    #[test]
    fn a_corked_thread_flushes_every_sink_it_sent_to() {
        let pipes: Vec<_> = (0..2).map(|_| pipe()).collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut readers = Vec::new();
        let mut sinks = Vec::new();
        for (read, write) in pipes {
            set_nonblocking(&OwnedFd::from(read.try_clone().unwrap()), true).unwrap();
            readers.push(read);
            sinks.push(LineSink::start("test", write).unwrap());
        }
        std::thread::spawn(move || {
            cork_this_thread();
            runtime.block_on(async {
                assert!(sinks[0].send("to the client").await);
                assert!(sinks[1].send("to a server").await);
            });
            flush_this_thread();
        })
        .join()
        .unwrap();
        let mut buf = [0u8; 32];
        let n = readers[0].read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"to the client\n");
        let n = readers[1].read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"to a server\n");
    }
}
