//! The stdio transport: toolgate as the server command in an MCP client's config, with the
//! real server as its child.
//!
//! Two threads move messages, one per direction, and neither ever waits on the other: the
//! client's stdin is read, decided and written to the child's stdin on one; the child's
//! stdout is read, settled and written to the client's stdout on the other
//! (`reader_thread.rs`, `line_sink.rs`). The main task watches the child, the client's end of
//! input, and signals.

pub(crate) mod child;
pub mod console;
pub(crate) mod line_sink;
pub(crate) mod reader_thread;

use console::ConsoleEnd;

use crate::message::ToServer;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Notify};

use crate::framing::{Frame, LineReader, READ_BUFFER_BYTES};
use crate::gateway::Gateway;
use crate::session::{Outbox, Session};
use line_sink::LineSink;
use reader_thread::ReaderThread;

pub use child::{exit_code, ServerCommand};

/// Settings of the stdio transport.
#[derive(Debug, Clone)]
pub struct StdioOptions {
    pub max_line_bytes: usize,
    /// How long to wait at each step of stopping the server.
    pub shutdown_grace: Duration,
    /// Who this client acts as, for `scope: identity` counters and the audit log.
    pub identity: Option<String>,
    /// Reloaded on SIGHUP.
    pub policy_path: Option<PathBuf>,
}

/// Runs the proxy until the server exits or the client goes away; returns the exit code to
/// leave with (the server's).
pub async fn run(
    gateway: Arc<Gateway>,
    command: &[OsString],
    options: StdioOptions,
) -> std::io::Result<i32> {
    let (mut child, to_server, child_stdout) = spawn_piped(&ServerCommand::new(command.to_vec()))?;
    let stdout = console::open_stdout()?;
    let session = Session::open_with_outboxes(
        options.identity.clone(),
        Outbox::Pipe(Arc::clone(&stdout)),
        Outbox::Pipe(Arc::clone(&to_server)),
    );
    gateway.register(&session);
    tracing::info!(session = %session.id, "proxy started");

    let mut console = console::Console::start(&gateway, &session, stdout, &options)?;
    // Child stdout → pipeline → client. Ends when the child closes its stdout (usually: exits).
    let server_reader = read_server_on_thread(
        Arc::clone(&gateway),
        Arc::clone(&session),
        child_stdout,
        options.max_line_bytes,
    )?;

    let status = match console.run_until(child.wait()).await {
        ConsoleEnd::Upstream(status) => status?,
        ConsoleEnd::ClientClosed => {
            tracing::info!("client closed its input; stopping the server");
            to_server.close();
            child::stop(&mut child, options.shutdown_grace).await?
        }
        ConsoleEnd::Terminated(name) => {
            tracing::info!("received {name}; stopping the server");
            child::signal_group(&child, nix::sys::signal::Signal::SIGTERM);
            child::stop(&mut child, options.shutdown_grace).await?
        }
    };

    // The server is gone: its last words first, then errors for whatever it left unanswered.
    let _ = tokio::time::timeout(Duration::from_secs(2), server_reader.done).await;
    console.stop_reading();
    gateway
        .upstream_gone(&session, "The server exited before answering")
        .await;
    to_server.close();
    console.finish().await;
    let code = exit_code(status);
    tracing::info!(code, "server exited");
    gateway.audit().record_and_flush(
        crate::audit::AuditEvent::Shutdown {
            reason: format!("server exited with code {code}"),
        },
        Duration::from_secs(2),
    );
    Ok(code)
}

/// Starts a stdio server with its stdin as a sink the pipeline writes directly; its stdout is
/// for [`read_server_on_thread`], once the session the sink belongs to exists.
pub(crate) fn spawn_piped(
    command: &ServerCommand,
) -> std::io::Result<(
    tokio::process::Child,
    Arc<LineSink>,
    tokio::process::ChildStdout,
)> {
    let mut child = child::spawn(command)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(std::io::Error::other(
            "the server's stdio could not be captured",
        ));
    };
    let sink = LineSink::start("server-stdin", stdin.into_owned_fd()?)?;
    Ok((child, sink, stdout))
}

/// Feeds a child server's stdout to the pipeline until it closes, on a task (for a child
/// behind the HTTP listener, whose answers go to channels anyway).
pub(crate) fn spawn_server_reader(
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    stdout: tokio::process::ChildStdout,
    max_line_bytes: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = LineReader::new(
            BufReader::with_capacity(READ_BUFFER_BYTES, stdout),
            max_line_bytes,
        );
        while let Ok(Some(frame)) = reader.next_frame().await {
            server_frame(&gateway, &session, frame).await;
        }
    })
}

/// Feeds a child server's stdout to the pipeline until it closes, on a thread of its own
/// that also writes the answers to the client (see `reader_thread.rs`).
pub(crate) fn read_server_on_thread(
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    stdout: tokio::process::ChildStdout,
    max_line_bytes: usize,
) -> std::io::Result<ReaderThread> {
    let fd = stdout.into_owned_fd()?;
    // Tokio made the pipe non-blocking for its reactor; this thread blocks on it instead.
    line_sink::set_nonblocking(&fd, false)?;
    let input = std::fs::File::from(fd);
    ReaderThread::spawn("server-stdout", input, max_line_bytes, move |frame| {
        let gateway = Arc::clone(&gateway);
        let session = Arc::clone(&session);
        async move { server_frame(&gateway, &session, frame).await }
    })
}

/// One frame from a server. Lines that are too long or not UTF-8 are dropped with a
/// warning: they are not protocol, and never reach the client.
async fn server_frame(gateway: &Arc<Gateway>, session: &Arc<Session>, frame: Frame) {
    match frame {
        Frame::Line(line) => gateway.from_server(session, line).await,
        Frame::TooLong(n) => tracing::warn!(bytes = n, "dropped an over-long line from the server"),
        Frame::NotUtf8 => tracing::warn!("dropped a non-UTF-8 line from the server"),
    }
}

/// Writes messages as lines. Everything queued since the last write goes out in one write
/// and one flush, so a burst costs one system call, not one per message. When `close` is
/// notified, whatever is queued is written and the stream is closed.
pub(crate) async fn write_lines<W: AsyncWrite + Unpin>(
    mut out: W,
    mut rx: mpsc::Receiver<ToServer>,
    close: Arc<Notify>,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = close.notified() => {
                rx.close();
                while let Some(m) = rx.recv().await {
                    append_line(&mut batch, &m.text);
                }
                let _ = write_batch(&mut out, &mut batch).await;
                break;
            }
        };
        let Some(first) = first else { break };
        append_line(&mut batch, &first.text);
        while batch.len() < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => append_line(&mut batch, &m.text),
                Err(_) => break,
            }
        }
        if write_batch(&mut out, &mut batch).await.is_err() {
            break;
        }
    }
    let _ = out.shutdown().await;
}

/// Most bytes gathered into one write.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

fn append_line(batch: &mut Vec<u8>, message: &str) {
    batch.extend_from_slice(message.as_bytes());
    batch.push(b'\n');
}

async fn write_batch<W: AsyncWrite + Unpin>(
    out: &mut W,
    batch: &mut Vec<u8>,
) -> std::io::Result<()> {
    let result = async {
        out.write_all(batch).await?;
        out.flush().await
    }
    .await;
    batch.clear();
    result
}

pub(crate) enum SignalKind {
    Reload,
    Terminate(&'static str),
}

pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind as K};
        Ok(Signals {
            term: signal(K::terminate())?,
            int: signal(K::interrupt())?,
            hup: signal(K::hangup())?,
        })
    }

    pub(crate) async fn next(&mut self) -> SignalKind {
        tokio::select! {
            _ = self.term.recv() => SignalKind::Terminate("SIGTERM"),
            _ = self.int.recv() => SignalKind::Terminate("SIGINT"),
            _ = self.hup.recv() => SignalKind::Reload,
        }
    }
}
