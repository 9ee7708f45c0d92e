//! The one accept loop: every HTTP server toolgate runs (the MCP listener, the admin API)
//! accepts and serves connections here, so each is bounded the same way.
//!
//! At most `max_connections` connections are served at once; past that, new ones wait in the
//! kernel's backlog until one ends. A client must send its headers within `header_timeout`,
//! so a connection that sends nothing cannot hold a place for long.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How a server's connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves. A failed `accept` (out of file
/// descriptors and the like) is logged and retried after a short pause.
pub async fn serve_until<F: Future<Output = ()>>(
    listener: &TcpListener,
    router: Router,
    limits: ConnectionLimits,
    name: &'static str,
    shutdown: F,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // The permit is taken before `accept`, so a full server leaves new connections in
        // the backlog instead of accepting them and holding them unserved.
        let permit = tokio::select! {
            p = Arc::clone(&connections).acquire_owned() => p,
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(server = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(server = name, error = %e, "connection ended with an error");
            }
        });
    }
}
