//! The process's own stdin and stdout, each served by a thread of its own.
//!
//! Tokio's `stdin()`/`stdout()` hand every read, write and flush to the blocking thread pool
//! and back — several thread hand-offs per message, which dominated the proxy's cost per call.
//! A dedicated reader thread blocks on stdin and hands whole frames to the async side; a
//! dedicated writer thread takes every message queued since its last write and writes them
//! with one system call.

use crate::message::ToClient;
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::framing::{BlockingLineReader, Frame, READ_BUFFER_BYTES};

/// Queued to the writer after the last message: write what came before it, then stop.
/// An empty string is never a message (the pipeline drops blank lines).
pub const END_OF_OUTPUT: &str = "";

/// Most bytes gathered into one write.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Frames read from stdin; the channel closes at end of input.
pub fn spawn_stdin_reader(max_line_bytes: usize) -> std::io::Result<mpsc::Receiver<Frame>> {
    let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let (tx, rx) = mpsc::channel(1024);
    std::thread::Builder::new()
        .name("toolgate-stdin".into())
        .spawn(move || {
            let mut reader = BlockingLineReader::new(
                BufReader::with_capacity(READ_BUFFER_BYTES, stdin),
                max_line_bytes,
            );
            while let Ok(Some(frame)) = reader.next_frame() {
                if tx.blocking_send(frame).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// The stdout writer thread; [`StdoutWriter::finish`] flushes it and waits for it.
pub struct StdoutWriter {
    done: oneshot::Receiver<()>,
}

pub fn spawn_stdout_writer(mut rx: mpsc::Receiver<ToClient>) -> std::io::Result<StdoutWriter> {
    let mut stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name("toolgate-stdout".into())
        .spawn(move || {
            let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
            while let Some(first) = rx.blocking_recv() {
                let mut ended = first.text == END_OF_OUTPUT;
                if !ended {
                    append_line(&mut batch, &first.text);
                }
                while !ended && batch.len() < MAX_BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(m) if m.text == END_OF_OUTPUT => ended = true,
                        Ok(m) => append_line(&mut batch, &m.text),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() && stdout.write_all(&batch).is_err() {
                    break;
                }
                batch.clear();
                if ended {
                    break;
                }
            }
            let _ = done_tx.send(());
        })?;
    Ok(StdoutWriter { done })
}

fn append_line(batch: &mut Vec<u8>, message: &str) {
    batch.extend_from_slice(message.as_bytes());
    batch.push(b'\n');
}

impl StdoutWriter {
    /// Queues the end marker behind everything already sent and waits (bounded) until it is
    /// all written.
    pub async fn finish(self, sender: &mpsc::Sender<ToClient>, limit: Duration) {
        let _ = sender
            .send(ToClient::notice(END_OF_OUTPUT.to_string()))
            .await;
        let _ = tokio::time::timeout(limit, self.done).await;
    }
}

/// Feeds the client's stdin to the pipeline until end of input. Over-long and non-UTF-8
/// lines are answered with errors; the session carries on.
pub fn spawn_client_reader(
    gateway: std::sync::Arc<crate::Gateway>,
    session: std::sync::Arc<crate::Session>,
    max_line_bytes: usize,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use crate::wire::{self, ErrorCode};
    let mut frames = spawn_stdin_reader(max_line_bytes)?;
    Ok(tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            match frame {
                Frame::Line(line) => gateway.from_client(&session, line).await,
                Frame::TooLong(n) => {
                    let message = format!("Invalid request: message of {n} bytes exceeds the {max_line_bytes} byte limit");
                    let code = ErrorCode::InvalidRequest;
                    let reply = wire::error_response(None, code, &message);
                    session
                        .send_to_client(ToClient::error(reply, None, code))
                        .await;
                }
                Frame::NotUtf8 => {
                    let code = ErrorCode::Parse;
                    let reply =
                        wire::error_response(None, code, "Parse error: message is not UTF-8");
                    session
                        .send_to_client(ToClient::error(reply, None, code))
                        .await;
                }
            }
        }
    }))
}

/// The client side of a stdio session, shared by the proxy (a child server) and the bridge
/// (an HTTP server): the client's stdin read into the pipeline, its stdout written from it,
/// the call-expiry sweeper, and the signals.
pub struct Console {
    gateway: std::sync::Arc<crate::Gateway>,
    session: std::sync::Arc<crate::Session>,
    writer: StdoutWriter,
    reader: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
    signals: super::Signals,
    policy_path: Option<std::path::PathBuf>,
}

/// Why a console stopped waiting.
pub enum ConsoleEnd<T> {
    /// The client closed its input.
    ClientClosed,
    /// The upstream side ended first, with this.
    Upstream(T),
    /// SIGTERM or SIGINT.
    Terminated(&'static str),
}

impl Console {
    /// Starts reading the client's stdin and writing its stdout for `session`.
    pub fn start(
        gateway: &std::sync::Arc<crate::Gateway>,
        session: &std::sync::Arc<crate::Session>,
        to_client: mpsc::Receiver<ToClient>,
        options: &super::StdioOptions,
    ) -> std::io::Result<Console> {
        use std::sync::Arc;
        Ok(Console {
            writer: spawn_stdout_writer(to_client)?,
            reader: spawn_client_reader(
                Arc::clone(gateway),
                Arc::clone(session),
                options.max_line_bytes,
            )?,
            sweeper: gateway.spawn_expiry_sweeper(session),
            signals: super::Signals::install()?,
            gateway: Arc::clone(gateway),
            session: Arc::clone(session),
            policy_path: options.policy_path.clone(),
        })
    }

    /// Serves until the client's input ends, `upstream` resolves, or a terminating signal;
    /// SIGHUP reloads the policy meanwhile.
    pub async fn run_until<T>(
        &mut self,
        upstream: impl std::future::Future<Output = T>,
    ) -> ConsoleEnd<T> {
        tokio::pin!(upstream);
        loop {
            tokio::select! {
                _ = &mut self.reader => return ConsoleEnd::ClientClosed,
                ended = &mut upstream => return ConsoleEnd::Upstream(ended),
                signal = self.signals.next() => match signal {
                    super::SignalKind::Reload => {
                        if let Some(path) = &self.policy_path {
                            crate::reload::reload_from(&self.gateway, path).await;
                        }
                    }
                    super::SignalKind::Terminate(name) => return ConsoleEnd::Terminated(name),
                },
            }
        }
    }

    /// Stops reading the client and expiring calls; what is queued for the client is still
    /// written by [`Console::finish`].
    pub fn stop_reading(&self) {
        self.reader.abort();
        self.sweeper.abort();
    }

    /// Writes what is queued for the client (bounded) and stops.
    pub async fn finish(self) {
        self.stop_reading();
        self.writer
            .finish(&self.session.to_client, Duration::from_secs(5))
            .await;
    }
}
