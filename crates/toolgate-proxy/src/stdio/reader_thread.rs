//! A pipe read on a thread of its own, with the pipeline run on that same thread.
//!
//! Reading on one thread and deciding on another costs a thread wake-up per message. Here
//! the thread that reads a message also reads, decides and writes it (through
//! [`LineSink`](super::line_sink::LineSink)s): the pipeline's future is driven with the
//! runtime's `block_on`, so whatever it spawns (a reservation in a slow store, an approval)
//! still runs on the runtime, and whatever it awaits (a full pipe) parks only this reader —
//! which is the back-pressure wanted: a stalled peer stops the reading of its input.
//!
//! The thread is corked: what it sends waits until no whole line is buffered in its input,
//! then everything goes out, one write per pipe per burst, to every pipe it sent to. For the
//! last message of a burst, an SQLite reservation may run on this thread too (no hand-over
//! to the store's thread; `toolgate_state::reserve_here`).

use std::fs::File;
use std::future::Future;
use std::io::BufReader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::line_sink::{cork_this_thread, flush_this_thread};
use crate::framing::{BlockingLineReader, Frame, READ_BUFFER_BYTES};

/// A reader thread: `done` resolves when its input ended (or it stopped); `stop` makes it
/// handle no further message.
pub(crate) struct ReaderThread {
    pub done: oneshot::Receiver<()>,
    stop: Arc<AtomicBool>,
}

impl ReaderThread {
    /// Reads frames from `input` and hands each to `handle_frame`, on a thread named `name`.
    pub fn spawn<F, Fut>(
        name: &str,
        input: File,
        max_line_bytes: usize,
        mut handle_frame: F,
    ) -> std::io::Result<ReaderThread>
    where
        F: FnMut(Frame) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let runtime = tokio::runtime::Handle::current();
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("toolgate-{name}"))
            .spawn(move || {
                cork_this_thread();
                let mut reader = BlockingLineReader::new(
                    BufReader::with_capacity(READ_BUFFER_BYTES, input),
                    max_line_bytes,
                );
                while let Ok(Some(frame)) = reader.next_frame() {
                    if stopped.load(Ordering::Acquire) {
                        break;
                    }
                    // The last message of a burst may run an SQLite reservation on this
                    // thread: nothing else waits for it here.
                    let last_of_burst = !reader.line_waiting();
                    toolgate_state::reserve_here(last_of_burst);
                    runtime.block_on(handle_frame(frame));
                    if last_of_burst {
                        flush_this_thread();
                    }
                }
                flush_this_thread();
                let _ = done_tx.send(());
            })?;
        Ok(ReaderThread { done, stop })
    }

    /// Handles no further message (the thread itself ends at its next read).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}
