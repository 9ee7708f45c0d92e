//! A stdio server as the upstream of one HTTP session: the same child handling as the stdio
//! proxy (own process group, escalating stop), one child per session.

use std::time::Duration;

use tokio::process::Child;
use tokio::sync::{mpsc, Notify};

use super::LinkContext;
use crate::message::ToServer;
use crate::stdio::{child as process, spawn_server_reader, write_lines};

/// Runs until the child exits or the link is stopped; returns why it ended.
pub(super) async fn run(
    ctx: &LinkContext,
    mut child: Child,
    to_server: mpsc::Receiver<ToServer>,
    grace: Duration,
    max_line_bytes: usize,
) -> String {
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = process::stop(&mut child, Duration::ZERO).await;
        return "the server's stdio could not be captured".to_string();
    };
    let close_stdin = std::sync::Arc::new(Notify::new());
    let writer = tokio::spawn(write_lines(
        stdin,
        to_server,
        std::sync::Arc::clone(&close_stdin),
    ));
    let reader = spawn_server_reader(
        std::sync::Arc::clone(&ctx.gateway),
        std::sync::Arc::clone(&ctx.session),
        stdout,
        max_line_bytes,
    );
    let reason = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => format!("The server exited (code {})", process::exit_code(status)),
            Err(e) => format!("The server could not be watched: {e}"),
        },
        _ = ctx.stop.notified() => {
            close_stdin.notify_one();
            let _ = process::stop(&mut child, grace).await;
            "The session ended".to_string()
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    close_stdin.notify_one();
    writer.abort();
    reason
}
