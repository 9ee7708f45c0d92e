//! The aggregated gateway over stdio: one MCP server for a desktop client, every configured
//! server behind it.

use std::sync::Arc;

use super::Servers;
use crate::gateway::Gateway;
use crate::session::{Outbox, Session};
use crate::stdio::console::{self, Console, ConsoleEnd};
use crate::stdio::StdioOptions;

/// Serves the client on stdin/stdout until its input ends or a signal; returns the exit
/// code. Servers that fail are restarted as their config says; none of them ends the
/// gateway.
pub async fn run(
    front: Arc<Gateway>,
    servers: Arc<Servers>,
    options: StdioOptions,
) -> std::io::Result<i32> {
    let stdout = console::open_stdout()?;
    let shape = super::SessionShape::default();
    let aggregator = servers.aggregator(Arc::clone(&front), options.identity.clone(), shape);
    let session = Session::open_with_outboxes(
        options.identity.clone(),
        Outbox::Pipe(Arc::clone(&stdout)),
        Outbox::Handler(aggregator.front_handler()),
    );
    session.set_names(servers.client_names(None));
    front.register(&session);
    aggregator.start(Arc::clone(&session));
    tracing::info!(session = %session.id, "gateway started");

    let mut console = Console::start(&front, &session, stdout, &options)?;
    let code = match console.run_until(std::future::pending::<()>()).await {
        ConsoleEnd::ClientClosed => {
            tracing::info!("client closed its input; stopping the servers");
            0
        }
        ConsoleEnd::Terminated(name) => {
            tracing::info!("received {name}; stopping the servers");
            0
        }
        ConsoleEnd::Upstream(()) => 0,
    };
    console.stop_reading();
    aggregator.stop().await;
    console.finish().await;
    Ok(code)
}
