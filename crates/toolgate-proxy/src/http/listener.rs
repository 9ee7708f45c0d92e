//! The HTTP listener: binds, accepts connections (with a header-read timeout), serves
//! Streamable HTTP at `/mcp` and legacy HTTP+SSE at `/sse` + `/message`, opens and reclaims
//! sessions.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use super::guard::{Credential, Guard, Refusal};
use super::options::{ListenerOptions, UpstreamTarget};
use super::reply::HttpError;
use super::sessions::{Endpoint, HttpSession, Outbound, SessionTable};
use super::spare::Spare;
use super::upstream::{HttpClient, LinkSpec, SessionlessRequest, UpstreamLink};
use super::v2026_07_28::ToolHeaders;
use super::{legacy_server, streamable_server};
use crate::gateway::Gateway;
use crate::message::ToClient;
use crate::session::{Outbox, Session, SessionChannels, CHANNEL_DEPTH};

/// Who an admitted request acts as.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub identity: Option<String>,
    /// What `identity.…` conditions read for the request's calls.
    pub caller: Option<Arc<toolgate_policy::Caller>>,
}

impl Admitted {
    fn named(identity: Option<String>) -> Admitted {
        let caller = identity.clone().map(|name| {
            Arc::new(toolgate_policy::Caller {
                name,
                ..Default::default()
            })
        });
        Admitted { identity, caller }
    }

    /// The session's calls are decided for this request's caller from now on.
    pub fn apply(&self, session: &Session) {
        if let Some(caller) = &self.caller {
            session.set_caller(Arc::clone(caller));
        }
    }
}

/// Everything a request handler reaches.
pub(crate) struct App {
    pub gateway: Arc<Gateway>,
    pub target: UpstreamTarget,
    pub http: Option<HttpClient>,
    pub options: ListenerOptions,
    pub guard: Guard,
    pub sessions: SessionTable,
    /// The `x-mcp-header` annotations of the tools listed so far (2026-07-28 requests).
    pub tool_headers: ToolHeaders,
    children: Arc<Semaphore>,
    /// A stdio server started ahead of the next 2026-07-28 request.
    spare: Spare,
    /// Checks OAuth access tokens, for the policy's `oauth` in force.
    oauth: super::oauth_challenge::Verifiers,
}

impl App {
    /// Host, Origin and token checks (an OAuth token verified with the issuer); who the
    /// request acts as.
    pub async fn admit(&self, headers: &HeaderMap) -> Result<Admitted, HttpError> {
        let policy = self.gateway.policy();
        let credential = self.guard.check(headers, &policy).map_err(|refusal| {
            tracing::info!(reason = %refusal.message(), "refused an HTTP request");
            match (&refusal, &policy.oauth) {
                (Refusal::Unauthenticated(_), Some(oauth)) => {
                    super::oauth_challenge::missing_token(oauth, &refusal.message())
                }
                _ => HttpError::Refused(refusal),
            }
        })?;
        let token = match credential {
            Credential::Identity(identity) => return Ok(Admitted::named(identity)),
            Credential::OAuthToken(token) => token,
        };
        let Some(settings) = &policy.oauth else {
            return Err(HttpError::Refused(Refusal::Unauthenticated(
                "the token is not valid",
            )));
        };
        let verifier = self.oauth.verifier(settings).map_err(|why| {
            tracing::error!(%why, "cannot check OAuth tokens");
            HttpError::Busy("The authorization server cannot be used; see the gateway's log")
        })?;
        match verifier.verify(token).await {
            Ok(caller) => Ok(Admitted {
                identity: Some(caller.name.clone()),
                caller: Some(Arc::new(caller)),
            }),
            Err(refusal) => {
                let reason = refusal.reason();
                tracing::info!(%reason, "refused an access token");
                self.gateway
                    .audit()
                    .record(crate::audit::AuditEvent::TokenRefused {
                        reason: reason.clone(),
                    });
                Err(super::oauth_challenge::refused(settings, &refusal))
            }
        }
    }

    /// The live session named by the request, if it belongs to the same identity and was
    /// opened at the same endpoint (another identity's session, or a legacy `/sse` session
    /// named on `/mcp`, looks exactly like an unknown one).
    pub fn session_for(
        &self,
        id: &str,
        identity: &Option<String>,
        endpoint: &Endpoint,
    ) -> Result<Arc<HttpSession>, HttpError> {
        match self.sessions.get(id) {
            Some(s) if &s.identity == identity && &s.endpoint == endpoint => Ok(s),
            _ => Err(HttpError::UnknownSession),
        }
    }

    /// The gateway config's server an endpoint serves alone, when it names one that exists
    /// (one that does not is answered like any unknown path).
    pub fn check_endpoint(&self, endpoint: &Endpoint) -> Result<(), HttpError> {
        let Endpoint::OneServer(name) = endpoint else {
            return Ok(());
        };
        match &self.target {
            UpstreamTarget::Aggregate(servers) if servers.has(name) => Ok(()),
            _ => Err(HttpError::MethodNotFound(
                format!("Not found: the gateway config has no server {name:?}"),
                None,
            )),
        }
    }

    fn link_spec(
        &self,
        sessionless: Option<SessionlessRequest>,
        only_server: Option<&str>,
    ) -> Result<LinkSpec, HttpError> {
        let child_permit = match &self.target {
            UpstreamTarget::Command(_) => {
                let acquire = || Arc::clone(&self.children).try_acquire_owned().ok();
                // A spare process gives its place up to a session that needs it.
                let permit = acquire().or_else(|| self.spare.release().then(acquire).flatten());
                Some(permit.ok_or(HttpError::Busy(
                    "Too many server processes; try again later",
                ))?)
            }
            // A session in front of a gateway config starts a process per stdio server.
            UpstreamTarget::Aggregate(servers) => {
                let processes = servers.processes(only_server);
                let wanted = u32::try_from(processes).unwrap_or(u32::MAX);
                let permit = Arc::clone(&self.children)
                    .try_acquire_many_owned(wanted)
                    .ok();
                Some(permit.ok_or(HttpError::Busy(
                    "Too many server processes; try again later",
                ))?)
            }
            UpstreamTarget::Http(_) => None,
        };
        Ok(self.spec_with(child_permit, sessionless))
    }

    fn spec_with(
        &self,
        child_permit: Option<tokio::sync::OwnedSemaphorePermit>,
        sessionless: Option<SessionlessRequest>,
    ) -> LinkSpec {
        LinkSpec {
            target: self.target.clone(),
            http: self.http.clone(),
            shutdown_grace: self.options.shutdown_grace,
            max_line_bytes: self.options.max_line_bytes,
            child_permit,
            sessionless,
            end_on_session_loss: true,
            aggregator: None,
        }
    }

    /// Opens a session with its own upstream (a child process, or an upstream session).
    pub fn open_session(
        self: &Arc<Self>,
        identity: Option<String>,
        endpoint: Endpoint,
    ) -> Result<Arc<HttpSession>, HttpError> {
        if self.sessions.len() >= self.options.max_sessions {
            return Err(HttpError::Busy("Too many sessions; try again later"));
        }
        // One identity cannot take every session slot from the others.
        let policy = self.gateway.policy();
        let authenticates = !policy.identities.is_empty() || policy.oauth.is_some();
        drop(policy);
        if identity.is_some()
            && authenticates
            && self.sessions.count_of(&identity) >= self.options.max_sessions_per_identity
        {
            return Err(HttpError::Busy(
                "Too many sessions for this identity; end one (DELETE) or try again later",
            ));
        }
        let only_server = match &endpoint {
            Endpoint::OneServer(name) => Some(name.clone()),
            _ => None,
        };
        let mut spec = self.link_spec(None, only_server.as_deref())?;
        let legacy = endpoint == Endpoint::Legacy;
        let outbound = Arc::new(Outbound::new(legacy));
        let (to_server, server_rx) = mpsc::channel(CHANNEL_DEPTH);
        // A gateway config's session hands its messages to its aggregator on the thread that
        // has them, as over stdio; another upstream's link drains a channel.
        let to_server = match &self.target {
            UpstreamTarget::Aggregate(servers) => {
                let only = only_server.as_deref();
                let shape = crate::aggregate::SessionShape {
                    only: only.map(str::to_string),
                    over_http: true,
                    ..Default::default()
                };
                let aggregator =
                    servers.aggregator(Arc::clone(&self.gateway), identity.clone(), shape);
                let handler = aggregator.front_handler();
                spec.aggregator = Some(aggregator);
                Outbox::Handler(handler)
            }
            _ => Outbox::Channel(to_server),
        };
        let router = Arc::clone(&outbound);
        let session = Session::open_with_outboxes(
            identity,
            Outbox::Direct(Arc::new(move |message| router.deliver(message))),
            to_server,
        );
        if let (UpstreamTarget::Aggregate(servers), Some(aggregator)) =
            (&self.target, &spec.aggregator)
        {
            session.set_names(servers.client_names(only_server.as_deref()));
            // Bound to the session (and its servers started) before any message can reach it.
            aggregator.start(Arc::clone(&session));
        }
        self.gateway.register(&session);
        let link = UpstreamLink::start(
            spec,
            Arc::clone(&self.gateway),
            Arc::clone(&session),
            server_rx,
        )
        .map_err(not_started)?;
        let hs = Arc::new(HttpSession::new(session, outbound, endpoint, link));
        self.sessions.insert(Arc::clone(&hs));
        tracing::info!(session = %hs.id, identity = ?hs.identity, endpoint = ?hs.endpoint, "session opened");
        tokio::spawn(end_when_upstream_ends(Arc::clone(self), Arc::clone(&hs)));
        Ok(hs)
    }

    /// A one-request session for a 2026-07-28 request: its own upstream exchange, not kept.
    /// `meta` is the request's `params._meta`.
    pub async fn open_single_exchange(
        &self,
        identity: Option<String>,
        sessionless: SessionlessRequest,
        endpoint: &Endpoint,
        meta: serde_json::Value,
    ) -> Result<SingleExchange, HttpError> {
        if let UpstreamTarget::Aggregate(servers) = &self.target {
            return self
                .open_aggregate_exchange(servers, identity, &sessionless, endpoint, meta)
                .await;
        }
        let SessionChannels {
            session,
            to_client: client_rx,
            to_server: server_rx,
        } = Session::open_sessionless(identity);
        let gateway = Arc::clone(&self.gateway);
        let started = match self.spare.take() {
            Some(spare) => UpstreamLink::start_with_child(
                self.spec_with(Some(spare.permit), Some(sessionless)),
                spare.child,
                gateway,
                Arc::clone(&session),
                server_rx,
            ),
            None => UpstreamLink::start(
                self.link_spec(Some(sessionless), None)?,
                gateway,
                Arc::clone(&session),
                server_rx,
            ),
        };
        let link = started.map_err(not_started)?;
        if let UpstreamTarget::Command(command) = &self.target {
            self.spare.refill(command, &self.children);
        }
        Ok((session, client_rx, link))
    }

    /// A 2026-07-28 request to a gateway config. The servers it can reach (every one, the
    /// one its endpoint serves, or the one its `<server>__` name points at) are started for
    /// it alone, under its identity's sessionless counters, and asked `server/discover`;
    /// the request is relayed once each has answered or given up.
    async fn open_aggregate_exchange(
        &self,
        servers: &crate::aggregate::Servers,
        identity: Option<String>,
        request: &SessionlessRequest,
        endpoint: &Endpoint,
        meta: serde_json::Value,
    ) -> Result<SingleExchange, HttpError> {
        let only = match endpoint {
            Endpoint::OneServer(name) => Some(name.as_str()),
            _ => None,
        };
        // A name that points at no server reaches none: nothing is started for it, and the
        // aggregator answers that the tool is unknown.
        let route_to = match (only, request.method.as_str(), &request.name) {
            (None, "tools/call" | "prompts/get", Some(name)) => Some(
                toolgate_policy::gateway_config::split_aggregated_name(name)
                    .map_or(name.as_str(), |(server, _)| server),
            ),
            _ => None,
        };
        let mut spec = self.link_spec(None, only.or(route_to))?;
        let counter_session = Session::sessionless_counter_key(identity.as_deref());
        let sessionless = crate::aggregate::Sessionless {
            meta,
            counter_session: counter_session.clone(),
        };
        let gateway = Arc::clone(&self.gateway);
        let aggregator =
            servers.sessionless_aggregator(gateway, identity.clone(), only, route_to, sessionless);
        let (to_client, client_rx) = mpsc::channel(CHANNEL_DEPTH);
        let session = Session::open_counted_with_outboxes(
            identity,
            Outbox::Channel(to_client),
            Outbox::Handler(aggregator.front_handler()),
            Some(counter_session),
        );
        session.set_names(servers.sessionless_names(only));
        aggregator.start(Arc::clone(&session));
        spec.aggregator = Some(Arc::clone(&aggregator));
        // The session's messages reach the aggregator directly: the channel stays empty.
        let (_, server_rx) = mpsc::channel(1);
        let link = UpstreamLink::start(
            spec,
            Arc::clone(&self.gateway),
            Arc::clone(&session),
            server_rx,
        )
        .map_err(not_started)?;
        aggregator.settle(crate::aggregate::INITIALIZE_WAIT).await;
        Ok((session, client_rx, link))
    }

    /// Ends a session (DELETE, idle, upstream gone, shutdown).
    pub async fn end_session(&self, id: &str, reason: &str) {
        let Some(hs) = self.sessions.remove(id) else {
            return;
        };
        tracing::info!(session = %id, %reason, "session ended");
        hs.close(self.options.shutdown_grace).await;
    }
}

/// An upstream link that could not start (a child process that could not be spawned):
/// logged with its cause, answered without it.
fn not_started(e: std::io::Error) -> HttpError {
    tracing::error!(error = %e, "cannot start the upstream");
    HttpError::Upstream("The MCP server could not be started".to_string())
}

/// A one-request session, what it sends the client, and its upstream.
pub(crate) type SingleExchange = (Arc<Session>, mpsc::Receiver<ToClient>, UpstreamLink);

/// Ends a session when its upstream goes away (what the upstream left unanswered has been
/// answered by then, each answer routed as it was sent).
async fn end_when_upstream_ends(app: Arc<App>, hs: Arc<HttpSession>) {
    let reason = hs.watcher.clone().ended().await;
    app.end_session(&hs.id, &reason).await;
}

/// A bound listener, ready to serve.
pub struct HttpServer {
    app: Arc<App>,
    listener: TcpListener,
}

impl HttpServer {
    /// Binds the listener. `default_identity` is the identity of every request when the policy
    /// configures no `identities`.
    pub async fn bind(
        gateway: Arc<Gateway>,
        target: UpstreamTarget,
        options: ListenerOptions,
        default_identity: Option<String>,
    ) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(options.bind).await?;
        let bound = listener.local_addr()?;
        let http = match &target {
            UpstreamTarget::Http(t) => {
                Some(HttpClient::new(Arc::clone(t)).map_err(std::io::Error::other)?)
            }
            UpstreamTarget::Command(_) | UpstreamTarget::Aggregate(_) => None,
        };
        gateway.mark_serving_http();
        let guard = Guard::new(
            bound,
            &options.allowed_hosts,
            &options.allowed_origins,
            default_identity,
        );
        let app = Arc::new(App {
            gateway,
            target,
            http,
            guard,
            sessions: SessionTable::default(),
            tool_headers: ToolHeaders::default(),
            children: Arc::new(Semaphore::new(options.max_children.max(1))),
            spare: Spare::default(),
            oauth: Default::default(),
            options,
        });
        Ok(HttpServer { app, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.app.sessions.len()
    }

    /// A handle to watch the server from outside (tests, metrics).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(Arc::clone(&self.app))
    }

    /// Serves until `shutdown` resolves, then ends every session (children are reaped).
    pub async fn run_until<F: Future<Output = ()>>(self, shutdown: F) -> std::io::Result<()> {
        let app = Arc::clone(&self.app);
        let router = router(Arc::clone(&app));
        let sweeper = tokio::spawn(sweep(Arc::clone(&app)));
        let limits = crate::accept::ConnectionLimits {
            max_connections: app.options.max_connections,
            header_timeout: app.options.header_timeout,
        };
        crate::accept::serve_until(&self.listener, router, limits, "listener", shutdown).await;
        sweeper.abort();
        let sessions = app.sessions.all();
        let closing = sessions
            .iter()
            .map(|s| app.end_session(&s.id, "toolgate is shutting down"));
        futures_util::future::join_all(closing).await;
        app.spare.shut_down(app.options.shutdown_grace).await;
        Ok(())
    }
}

/// Read-only view of a running server.
#[derive(Clone)]
pub struct ServerHandle(Arc<App>);

impl ServerHandle {
    pub fn session_count(&self) -> usize {
        self.0.sessions.len()
    }
}

fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    if app.options.endpoints.streamable {
        router = router.route(
            "/mcp",
            post(streamable_server::post)
                .get(streamable_server::get)
                .delete(streamable_server::delete),
        );
    }
    if app.options.endpoints.streamable && matches!(app.target, UpstreamTarget::Aggregate(_)) {
        router = router.route(
            "/mcp/{server}",
            post(streamable_server::post_one)
                .get(streamable_server::get_one)
                .delete(streamable_server::delete_one),
        );
    }
    router = router
        .route(
            "/.well-known/oauth-protected-resource",
            get(super::oauth_challenge::metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(super::oauth_challenge::metadata),
        );
    if app.options.endpoints.legacy_sse {
        router = router
            .route("/sse", get(legacy_server::open))
            .route("/message", post(legacy_server::message))
            .route("/messages", post(legacy_server::message));
    }
    router
        .fallback(|headers: HeaderMap, axum::extract::State(app): axum::extract::State<Arc<App>>| async move {
            match app.admit(&headers).await {
                Err(e) => e.into_response(),
                Ok(_) => super::reply::json_response(
                    axum::http::StatusCode::NOT_FOUND,
                    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Not found: MCP is served at /mcp (Streamable HTTP) and /sse (HTTP+SSE)"}}"#.to_string(),
                ),
            }
        })
        .with_state(app)
}

/// Expires calls past their deadline and ends idle sessions.
async fn sweep(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        for hs in app.sessions.all() {
            app.gateway.expire_calls(&hs.session).await;
            if hs.is_idle(app.options.session_idle_timeout) {
                let app = Arc::clone(&app);
                tokio::spawn(async move { app.end_session(&hs.id, "idle timeout").await });
            }
        }
    }
}

/// Runs the listener until SIGTERM or SIGINT (SIGHUP reloads the policy). The URL is printed
/// on stderr once bound, so `--port 0` is usable from scripts.
pub async fn run(
    gateway: Arc<Gateway>,
    target: UpstreamTarget,
    options: ListenerOptions,
    default_identity: Option<String>,
    policy_path: Option<PathBuf>,
) -> std::io::Result<i32> {
    let endpoints = options.endpoints;
    let server = HttpServer::bind(Arc::clone(&gateway), target, options, default_identity).await?;
    let addr = server.local_addr()?;
    if endpoints.streamable {
        eprintln!("toolgate: listening on http://{addr}/mcp");
    }
    if endpoints.legacy_sse {
        eprintln!("toolgate: legacy HTTP+SSE on http://{addr}/sse");
    }
    let mut signals = crate::stdio::Signals::install()?;
    let reload_gateway = Arc::clone(&gateway);
    let shutdown = async move {
        loop {
            match signals.next().await {
                crate::stdio::SignalKind::Reload => {
                    if let Some(path) = &policy_path {
                        crate::reload::reload_from(&reload_gateway, path).await;
                    }
                }
                crate::stdio::SignalKind::Terminate(name) => {
                    tracing::info!("received {name}; shutting down");
                    return;
                }
            }
        }
    };
    server.run_until(shutdown).await?;
    gateway.audit().record_and_flush(
        crate::audit::AuditEvent::Shutdown {
            reason: "listener stopped".to_string(),
        },
        Duration::from_secs(2),
    );
    Ok(0)
}
