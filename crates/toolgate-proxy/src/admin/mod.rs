//! The admin API: a separate HTTP listener, on loopback only, through which a person (or a
//! tool of theirs) lists, inspects, approves and denies approval requests, and follows new
//! requests as server-sent events.
//!
//! | method and path | |
//! |---|---|
//! | `GET /v1/approvals[?all=true&limit=N]` | pending requests (all recent ones with `all`), newest first |
//! | `GET /v1/approvals/{id}` | one request, with the call's full arguments |
//! | `POST /v1/approvals/{id}/approve` | body `{"note": "…"}` (optional) |
//! | `POST /v1/approvals/{id}/deny` | body `{"reason": "…"}` (required; the agent is told it) |
//! | `GET /v1/approvals/events` | `text/event-stream`: `requested` for every new request (those pending when the stream opens first), and this gateway's other transitions |
//!
//! Every request needs `Authorization: Bearer <admin token>` (see `auth`), or the web
//! console's sign-in cookie (`console/logins.rs`; with its CSRF header for approve and deny). It is a separate
//! listener, not a path of the MCP listener, so the MCP port can be exposed to agents while
//! the admin port stays on this machine, and the stdio transport can have one too.

pub(crate) mod auth;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::approvals::Approvals;
use crate::gateway::Gateway;

pub use auth::{
    load_or_create_token, parse_addr, parse_listen, AdminRefusal, AdminToken, MIN_TOKEN_LEN,
};

/// What the admin listener needs.
#[derive(Clone)]
pub struct AdminOptions {
    /// A loopback address (see [`parse_listen`]).
    pub bind: SocketAddr,
    pub token: AdminToken,
    /// How often the event stream looks for requests made by other processes.
    pub poll_interval: Duration,
    /// How often an idle event stream sends a comment, so proxies keep it open.
    pub keepalive: Duration,
    /// The process's metrics, served at `/metrics` (none: metrics are off).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The web console, served at `/` (none: it is off).
    pub console: Option<Arc<crate::console::Console>>,
}

impl AdminOptions {
    pub fn new(bind: SocketAddr, token: AdminToken) -> AdminOptions {
        AdminOptions {
            bind,
            token,
            poll_interval: Duration::from_secs(1),
            keepalive: Duration::from_secs(15),
            metrics: None,
            console: None,
        }
    }
}

pub(crate) struct AdminApp {
    pub gateway: Arc<Gateway>,
    pub approvals: Arc<Approvals>,
    pub console: Option<Arc<crate::console::Console>>,
    pub options: AdminOptions,
}

/// A bound admin listener.
pub struct AdminServer {
    app: Arc<AdminApp>,
    listener: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("approvals are not configured on this gateway")]
    NoApprovals,
    #[error("the admin API only listens on loopback addresses, not {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl AdminServer {
    pub async fn bind(
        gateway: Arc<Gateway>,
        options: AdminOptions,
    ) -> Result<AdminServer, AdminError> {
        if !options.bind.ip().is_loopback() {
            return Err(AdminError::NotLoopback(options.bind));
        }
        let approvals = gateway
            .approvals()
            .cloned()
            .ok_or(AdminError::NoApprovals)?;
        let listener =
            TcpListener::bind(options.bind)
                .await
                .map_err(|source| AdminError::Bind {
                    addr: options.bind,
                    source,
                })?;
        if let Ok(addr) = listener.local_addr() {
            approvals.set_admin_url(format!("http://{addr}"));
        }
        Ok(AdminServer {
            app: Arc::new(AdminApp {
                gateway,
                approvals,
                console: options.console.clone(),
                options,
            }),
            listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped or aborted.
    pub async fn run(self) {
        let router = routes::router(Arc::clone(&self.app));
        let limits = crate::accept::ConnectionLimits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
        };
        let forever = std::future::pending::<()>();
        crate::accept::serve_until(&self.listener, router, limits, "admin API", forever).await;
    }
}

/// Connections the admin API serves at once: it is for a handful of people and scripts.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Binds the admin listener and serves it on a task of its own; the bound address is
/// returned (for `--admin-listen 127.0.0.1:0`).
pub async fn spawn(
    gateway: Arc<Gateway>,
    options: AdminOptions,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdminError> {
    let bind = options.bind;
    let server = AdminServer::bind(gateway, options).await?;
    let addr = server.local_addr().unwrap_or(bind);
    Ok((addr, tokio::spawn(server.run())))
}
