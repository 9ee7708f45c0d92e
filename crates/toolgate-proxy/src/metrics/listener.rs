//! `--metrics-listen`: a listener that serves only `GET /metrics`, without a token, for a
//! Prometheus scraper. (The admin listener serves the same text at `/metrics` behind its
//! token.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::Metrics;
use crate::approvals::Approvals;

/// Connections served at once: a scraper or two.
const MAX_CONNECTIONS: usize = 16;

/// What `/metrics` reads: the metrics, and the approval store whose pending requests it counts.
#[derive(Clone)]
pub struct Exposition {
    pub metrics: Arc<Metrics>,
    pub approvals: Option<Arc<Approvals>>,
}

impl Exposition {
    /// The metrics as a Prometheus (OpenMetrics) text response.
    pub async fn response(&self) -> Response {
        let pending = match &self.approvals {
            Some(approvals) => approvals.pending_count().await,
            None => None,
        };
        let mut response = Response::new(axum::body::Body::from(self.metrics.render(pending)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

/// Binds `bind` and serves `/metrics` on a task of its own; returns the bound address.
pub async fn spawn(
    exposition: Exposition,
    bind: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let router = Router::new()
        .route(
            "/metrics",
            get(|State(exposition): State<Exposition>| async move { exposition.response().await }),
        )
        .fallback(|| async {
            let mut response = Response::new(axum::body::Body::from(
                "Not found: metrics are served at /metrics\n",
            ));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        })
        .with_state(exposition);
    let limits = crate::accept::ConnectionLimits {
        max_connections: MAX_CONNECTIONS,
        header_timeout: Duration::from_secs(10),
    };
    let task = tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        crate::accept::serve_until(&listener, router, limits, "metrics", forever).await;
    });
    Ok((addr, task))
}
