//! The server side of one session: a stdio child, a Streamable HTTP session or a legacy
//! HTTP+SSE connection, behind one handle.
//!
//! A link drains the session's `to_server` channel and hands every server message to
//! [`Gateway::from_server`]. When the upstream fails a request at the HTTP level, the link
//! writes a JSON-RPC error *as if the server had sent it* — through the pipeline, so the call
//! settles (its counters roll back) exactly as for a server error. When the upstream goes
//! away for good the link calls [`Gateway::upstream_gone`] and reports the reason.

mod child;
mod legacy;
mod streamable;

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::options::{HttpUpstream, UpstreamProtocol, UpstreamTarget};
use crate::gateway::Gateway;
use crate::message::{ServerMessage, ToServer};
use crate::session::Session;
use crate::wire::{self, ErrorCode};

pub(crate) use streamable::{decode_header_value, encode_header_value, SessionlessRequest};

/// Largest body or event toolgate reads from an upstream.
pub(crate) const MAX_UPSTREAM_MESSAGE_BYTES: usize = crate::framing::DEFAULT_MAX_LINE_BYTES;

/// Shared by every link to one HTTP upstream: the target and a pooled client.
#[derive(Clone)]
pub struct HttpClient {
    pub(crate) target: Arc<HttpUpstream>,
    pub(crate) client: reqwest::Client,
}

impl HttpClient {
    /// A request with what toolgate sends every upstream request: the `--header` values and,
    /// with `upstream_auth`, its own bearer token (never anything the client sent). A token
    /// that cannot be had is logged, and the request goes without it (the server then
    /// refuses it, and the client is told).
    pub(crate) async fn authorized(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        let builder = builder.headers(self.target.headers.clone());
        let Some(token) = &self.target.token else {
            return builder;
        };
        match token.bearer().await {
            Ok(bearer) => builder.bearer_auth(bearer),
            Err(why) => {
                tracing::warn!(%why, "no upstream access token");
                builder
            }
        }
    }

    pub fn new(target: Arc<HttpUpstream>) -> Result<HttpClient, reqwest::Error> {
        let origin = target.url.origin();
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(target.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Only same-origin redirects: `--header` values (credentials) must never follow a
            // redirect to another host.
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() < 3 && attempt.url().origin() == origin {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()?;
        Ok(HttpClient { target, client })
    }
}

/// What a link needs to start.
pub(crate) struct LinkSpec {
    pub target: UpstreamTarget,
    /// A pooled client for HTTP targets (built once per listener or bridge).
    pub http: Option<HttpClient>,
    pub shutdown_grace: Duration,
    pub max_line_bytes: usize,
    /// Held for as long as a child process lives.
    pub child_permit: Option<OwnedSemaphorePermit>,
    /// A single 2026-07-28 request, sent without a session.
    pub sessionless: Option<SessionlessRequest>,
    /// Whether the link ends when the upstream session is lost (a listener's client then
    /// sees 404 and starts over), or stays and answers each later request with an error (the
    /// bridge: its stdio client cannot be told to reconnect).
    pub end_on_session_loss: bool,
    /// The aggregator of a gateway config's session (the session's messages reach it
    /// directly; the link starts it and stops it with the session).
    pub aggregator: Option<Arc<crate::aggregate::Aggregator>>,
}

/// A running upstream connection.
pub(crate) struct UpstreamLink {
    stop: Arc<Notify>,
    task: Option<JoinHandle<()>>,
    ended: watch::Receiver<Option<String>>,
}

impl UpstreamLink {
    /// Starts the link. Fails only when a child process cannot be started.
    pub fn start(
        spec: LinkSpec,
        gateway: Arc<Gateway>,
        session: Arc<Session>,
        to_server: mpsc::Receiver<ToServer>,
    ) -> std::io::Result<UpstreamLink> {
        UpstreamLink::start_with(spec, None, gateway, session, to_server)
    }

    /// Starts a link to a stdio server with a child already started for it (a spare that
    /// has received nothing yet).
    pub fn start_with_child(
        spec: LinkSpec,
        child: tokio::process::Child,
        gateway: Arc<Gateway>,
        session: Arc<Session>,
        to_server: mpsc::Receiver<ToServer>,
    ) -> std::io::Result<UpstreamLink> {
        UpstreamLink::start_with(spec, Some(child), gateway, session, to_server)
    }

    fn start_with(
        spec: LinkSpec,
        started: Option<tokio::process::Child>,
        gateway: Arc<Gateway>,
        session: Arc<Session>,
        to_server: mpsc::Receiver<ToServer>,
    ) -> std::io::Result<UpstreamLink> {
        let stop = Arc::new(Notify::new());
        let (ended_tx, ended) = watch::channel(None);
        let ctx = LinkContext {
            gateway,
            session,
            stop: Arc::clone(&stop),
            end_on_session_loss: spec.end_on_session_loss,
        };
        let task = match spec.target {
            UpstreamTarget::Command(command) => {
                let child = match started {
                    Some(child) => child,
                    None => crate::stdio::child::spawn(&command)?,
                };
                tokio::spawn(async move {
                    let reason = child::run(
                        &ctx,
                        child,
                        to_server,
                        spec.shutdown_grace,
                        spec.max_line_bytes,
                    )
                    .await;
                    drop(spec.child_permit);
                    ctx.finish(&reason, &ended_tx).await;
                })
            }
            UpstreamTarget::Aggregate(_) => {
                let aggregator = spec.aggregator.ok_or_else(|| {
                    std::io::Error::other("a gateway config's session has no aggregator")
                })?;
                let stop = Arc::clone(&ctx.stop);
                // The session's messages go to the aggregator directly (`Outbox::Handler`):
                // nothing arrives on the channel.
                drop(to_server);
                tokio::spawn(async move {
                    let reason = crate::aggregate::serve_session(aggregator, stop).await;
                    drop(spec.child_permit);
                    ctx.finish(&reason, &ended_tx).await;
                })
            }
            UpstreamTarget::Http(target) => {
                let http = match spec.http {
                    Some(h) => h,
                    None => HttpClient::new(target).map_err(std::io::Error::other)?,
                };
                let sessionless = spec.sessionless;
                tokio::spawn(async move {
                    let reason = run_http(&ctx, http, to_server, sessionless).await;
                    ctx.finish(&reason, &ended_tx).await;
                })
            }
        };
        Ok(UpstreamLink {
            stop,
            task: Some(task),
            ended,
        })
    }

    /// A handle that tells when the upstream has gone away.
    pub fn watcher(&self) -> LinkWatcher {
        LinkWatcher(self.ended.clone())
    }

    /// Ends the upstream side gracefully (stdin closed → SIGTERM → SIGKILL, or DELETE) and
    /// waits for it, bounded.
    pub async fn close(mut self, limit: Duration) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(limit, task).await.is_err() {
                tracing::warn!("an upstream link did not stop in time");
            }
        }
    }
}

impl Drop for UpstreamLink {
    fn drop(&mut self) {
        // A link dropped without `close` still stops: the task sees the notification.
        self.stop.notify_one();
    }
}

/// Tells when a link's upstream has gone away, and why.
#[derive(Clone)]
pub(crate) struct LinkWatcher(watch::Receiver<Option<String>>);

impl LinkWatcher {
    /// Resolves when the upstream has gone away, with the reason.
    pub async fn ended(&mut self) -> String {
        match self.0.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the upstream link stopped".to_string(),
        }
    }
}

/// What every link task carries.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub gateway: Arc<Gateway>,
    pub session: Arc<Session>,
    pub stop: Arc<Notify>,
    pub end_on_session_loss: bool,
}

impl LinkContext {
    /// A message from the server, as the link received it.
    pub async fn deliver(&self, text: String) {
        self.gateway.from_server(&self.session, text).await;
    }

    /// A message from the server the link has already read.
    pub async fn deliver_message(&self, message: ServerMessage) {
        self.gateway
            .from_server_message(&self.session, message)
            .await;
    }

    /// An error for a request the upstream could not answer (`upstream`: the id the gateway
    /// minted for it), written as the server's answer.
    pub async fn fail_request(&self, upstream: u64, code: ErrorCode, message: &str) {
        let id = RawValue::from_string(upstream.to_string()).ok();
        self.deliver(wire::error_response(id.as_deref(), code, message))
            .await;
    }

    async fn finish(&self, reason: &str, ended: &watch::Sender<Option<String>>) {
        tracing::info!(session = %self.session.id, %reason, "upstream link ended");
        self.gateway.upstream_gone(&self.session, reason).await;
        let _ = ended.send(Some(reason.to_string()));
    }
}

async fn run_http(
    ctx: &LinkContext,
    http: HttpClient,
    to_server: mpsc::Receiver<ToServer>,
    sessionless: Option<SessionlessRequest>,
) -> String {
    match http.target.protocol {
        UpstreamProtocol::LegacySse => legacy::run(ctx, &http, to_server, None).await,
        UpstreamProtocol::Streamable | UpstreamProtocol::Auto => {
            let auto = http.target.protocol == UpstreamProtocol::Auto && sessionless.is_none();
            match streamable::run(ctx, &http, to_server, sessionless, auto).await {
                streamable::Ended::Reason(reason) => reason,
                streamable::Ended::Refused { initialize, rest } => {
                    tracing::info!(
                        url = %http.target.url,
                        "the upstream refused the Streamable HTTP handshake; trying legacy HTTP+SSE"
                    );
                    legacy::run(ctx, &http, rest, Some(initialize)).await
                }
            }
        }
    }
}

/// The reason phrase a client sees when an upstream answered a request with an HTTP error.
pub(crate) fn http_failure(status: reqwest::StatusCode, body: &[u8]) -> String {
    let detail = std::str::from_utf8(body)
        .ok()
        .filter(|t| !t.trim_start().starts_with('<'))
        .map(|t| t.trim().chars().take(200).collect::<String>())
        .filter(|t| !t.is_empty());
    match detail {
        Some(d) => format!("The upstream server answered HTTP {status}: {d}"),
        None => format!("The upstream server answered HTTP {status}"),
    }
}
