//! The process's own stdin and stdout: the client's end of a stdio session.
//!
//! Stdin is read on a thread of its own that also runs the pipeline on each message
//! (`reader_thread.rs`), and stdout is a [`LineSink`] written by whichever thread has an answer
//! (`line_sink.rs`): a call crosses no thread hand-off between reading and forwarding, nor
//! between the server's answer and the client.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use super::line_sink::LineSink;
use super::reader_thread::ReaderThread;
use crate::framing::Frame;
use crate::message::ToClient;

/// The process's stdout as a sink.
pub fn open_stdout() -> std::io::Result<Arc<LineSink>> {
    LineSink::start("stdout", std::io::stdout().as_fd().try_clone_to_owned()?)
}

/// Reads the client's stdin into the pipeline until end of input. Over-long and non-UTF-8
/// lines are answered with errors; the session carries on.
fn spawn_client_reader(
    gateway: Arc<crate::Gateway>,
    session: Arc<crate::Session>,
    max_line_bytes: usize,
) -> std::io::Result<ReaderThread> {
    use crate::wire::{self, ErrorCode};
    let stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    ReaderThread::spawn("stdin", stdin, max_line_bytes, move |frame| {
        let gateway = Arc::clone(&gateway);
        let session = Arc::clone(&session);
        async move {
            let (code, message) = match frame {
                Frame::Line(line) => return gateway.from_client(&session, line).await,
                Frame::TooLong(n) => (
                    ErrorCode::InvalidRequest,
                    format!("Invalid request: message of {n} bytes exceeds the {max_line_bytes} byte limit"),
                ),
                Frame::NotUtf8 => (ErrorCode::Parse, "Parse error: message is not UTF-8".into()),
            };
            let reply = wire::error_response(None, code, &message);
            session
                .send_to_client(ToClient::error(reply, None, code))
                .await;
        }
    })
}

/// The client side of a stdio session, shared by the proxy (a child server) and the bridge
/// (an HTTP server): the client's stdin read into the pipeline, its stdout written from it,
/// the call-expiry sweeper, and the signals.
pub struct Console {
    gateway: Arc<crate::Gateway>,
    stdout: Arc<LineSink>,
    reader: ReaderThread,
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
    /// Starts reading the client's stdin for `session`, whose answers go to `stdout` (from
    /// [`open_stdout`]).
    pub fn start(
        gateway: &Arc<crate::Gateway>,
        session: &Arc<crate::Session>,
        stdout: Arc<LineSink>,
        options: &super::StdioOptions,
    ) -> std::io::Result<Console> {
        Ok(Console {
            stdout,
            reader: spawn_client_reader(
                Arc::clone(gateway),
                Arc::clone(session),
                options.max_line_bytes,
            )?,
            sweeper: gateway.spawn_expiry_sweeper(session),
            signals: super::Signals::install()?,
            gateway: Arc::clone(gateway),
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
                _ = &mut self.reader.done => return ConsoleEnd::ClientClosed,
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
        self.reader.stop();
        self.sweeper.abort();
    }

    /// Writes what is queued for the client (bounded: a client that does not read gets
    /// five seconds) and closes stdout.
    pub async fn finish(self) {
        self.stop_reading();
        self.stdout.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stdout.closed()).await;
    }
}
