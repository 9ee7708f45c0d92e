//! The stdio → HTTP bridge: a local MCP client speaks stdio to toolgate, and toolgate speaks
//! Streamable HTTP (or legacy HTTP+SSE) to a remote server.
//!
//! Client lines go through the pipeline and on to the upstream link, which POSTs each message
//! in a task of its own (a slow call never holds up the next, and a server request inside a
//! streamed answer reaches the client while that answer is still open). Only JSON-RPC ever
//! reaches stdout: HTTP failures become JSON-RPC errors. On the client's EOF or a signal the
//! upstream session is DELETEd.

use std::sync::Arc;
use std::time::Duration;

use super::options::{HttpUpstream, UpstreamTarget};
use super::upstream::{LinkSpec, UpstreamLink};
use crate::gateway::Gateway;
use tokio::sync::mpsc;

use crate::session::{Outbox, Session, CHANNEL_DEPTH};
use crate::stdio::console::{self, Console, ConsoleEnd};

/// The bridge's client side is stdio, so it takes the stdio transport's settings.
pub use crate::stdio::StdioOptions as BridgeOptions;

/// Runs the bridge until the client's input ends or a signal; returns the exit code.
pub async fn run(
    gateway: Arc<Gateway>,
    upstream: Arc<HttpUpstream>,
    options: BridgeOptions,
) -> std::io::Result<i32> {
    let stdout = console::open_stdout()?;
    let (to_server, server_rx) = mpsc::channel(CHANNEL_DEPTH);
    let session = Session::open_with_outboxes(
        options.identity.clone(),
        Outbox::Pipe(Arc::clone(&stdout)),
        Outbox::Channel(to_server),
    );
    gateway.register(&session);
    let spec = LinkSpec {
        target: UpstreamTarget::Http(upstream),
        http: None,
        shutdown_grace: options.shutdown_grace,
        max_line_bytes: options.max_line_bytes,
        child_permit: None,
        sessionless: None,
        end_on_session_loss: false,
        aggregator: None,
    };
    let link = UpstreamLink::start(spec, Arc::clone(&gateway), Arc::clone(&session), server_rx)?;
    let mut watcher = link.watcher();
    tracing::info!(session = %session.id, "bridge started");

    let mut console = Console::start(&gateway, &session, stdout, &options)?;
    let code = match console.run_until(watcher.ended()).await {
        ConsoleEnd::ClientClosed => {
            tracing::info!("client closed its input; ending the upstream session");
            0
        }
        ConsoleEnd::Upstream(reason) => {
            tracing::warn!(%reason, "the upstream link ended");
            1
        }
        ConsoleEnd::Terminated(name) => {
            tracing::info!("received {name}; ending the upstream session");
            0
        }
    };
    console.stop_reading();
    // Answers still on their way get a moment to arrive before the session is deleted.
    let drain = tokio::time::Instant::now() + Duration::from_millis(200);
    while session.inflight_count() > 0 && tokio::time::Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    link.close(options.shutdown_grace + Duration::from_secs(5))
        .await;
    console.finish().await;
    gateway.audit().record_and_flush(
        crate::audit::AuditEvent::Shutdown {
            reason: "bridge stopped".to_string(),
        },
        Duration::from_secs(2),
    );
    Ok(code)
}
