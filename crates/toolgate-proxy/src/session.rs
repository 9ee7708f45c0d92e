//! One client's connection through the gateway: where its messages go, and what it has in
//! flight.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use toolgate_state::Ticket;

use crate::aggregate::ClientNames;
use crate::audit::CounterRecord;
use crate::message::{ToClient, ToServer};
use crate::stdio::line_sink::LineSink;

/// One client session. Transports create it with its two outboxes, which they serve.
pub struct Session {
    pub id: String,
    pub identity: Option<String>,
    /// What `scope: session` counters are partitioned by: the session id, except for
    /// sessionless (2026-07-28) requests, which have no session to count in and are counted
    /// per identity instead (see docs/POLICY.md, "Scopes").
    pub counter_session: String,
    pub(crate) to_client: Outbox<ToClient>,
    pub(crate) to_server: Outbox<ToServer>,
    pub(crate) state: Mutex<SessionState>,
    /// The names the client uses, when they are not the ones the gateway decides on (a
    /// gateway config's `/mcp/<server>`, `tool_names: bare_when_unique`).
    pub(crate) names: std::sync::OnceLock<std::sync::Arc<ClientNames>>,
    /// What `identity.…` conditions read: the caller as the latest request's credentials
    /// describe it (an OAuth token's scopes may change within a session: step-up).
    caller: Mutex<Option<std::sync::Arc<toolgate_policy::Caller>>>,
}

/// Where a session's messages in one direction go: a channel its transport drains (an HTTP
/// upstream link POSTs each message), a pipe written by the thread that has the message
/// (stdio), or a router called by that thread (the HTTP listener) — the last two without a
/// hand-off to another task or thread.
pub enum Outbox<T> {
    Channel(mpsc::Sender<T>),
    Pipe(std::sync::Arc<LineSink>),
    /// Handed to a function that routes it at once and never waits (the HTTP listener's
    /// router: an answer goes to its POST's stream, and one nobody reads is dropped).
    Direct(std::sync::Arc<dyn Fn(T) + Send + Sync>),
    /// Handed to a part of the gateway that takes it on the sender's own thread and may
    /// wait: the aggregator in front of many servers, which re-addresses the message to
    /// another gateway's session (`aggregate/`).
    Handler(std::sync::Arc<dyn MessageHandler<T>>),
}

/// What an [`Outbox::Handler`] calls; false when the other side is gone.
pub trait MessageHandler<T>: Send + Sync {
    /// (Boxed: the handler runs another gateway's pipeline, whose future cannot be named.)
    fn handle(&self, message: T) -> futures_util::future::BoxFuture<'_, bool>;
}

impl<T: MessageText> Outbox<T> {
    /// Sends a message; false when the other side is gone.
    async fn send(&self, message: T) -> bool {
        match self {
            Outbox::Channel(channel) => channel.send(message).await.is_ok(),
            Outbox::Pipe(pipe) => pipe.send(message.text()).await,
            Outbox::Direct(route) => {
                route(message);
                true
            }
            Outbox::Handler(handler) => handler.handle(message).await,
        }
    }
}

/// A message that leaves the pipeline: its text is what a pipe carries.
pub trait MessageText {
    fn text(&self) -> &str;
}

impl MessageText for ToClient {
    fn text(&self) -> &str {
        &self.text
    }
}

impl MessageText for ToServer {
    fn text(&self) -> &str {
        &self.text
    }
}

#[derive(Default)]
pub(crate) struct SessionState {
    /// Client requests awaiting the server's answer, by canonical id.
    pub inflight: HashMap<String, InFlight>,
    /// The protocol version the server agreed to in `initialize`.
    pub protocol_version: Option<String>,
    /// Tool names the server listed, to tell whether a reload changes what the client sees.
    pub listed_tools: Option<Vec<String>>,
    /// The ids of every request sent upstream (client requests and toolgate's own).
    pub upstream_ids: crate::upstream_ids::UpstreamIds,
}

impl SessionState {
    /// Whether a client request with this id is still waiting for its answer (decided or
    /// not yet): a second request may not take its id.
    pub fn request_waiting(&self, key: &str) -> bool {
        self.inflight.contains_key(key) || self.upstream_ids.client_waiting(key)
    }
}

/// A client request toolgate must follow to its answer.
pub(crate) enum InFlight {
    Initialize,
    ToolsList,
    Call(CallInFlight),
    /// A call waiting for the answer to an identical one (`idempotency_window`): answered
    /// when that one is, never forwarded.
    Duplicate,
    /// A `resources/read` whose result goes through the policy's `"*"` redact rules.
    ResourcesRead,
    /// A `prompts/list`, whose prompts are scanned for poisoning.
    PromptsList,
}

pub(crate) struct CallInFlight {
    pub tool: String,
    pub rule: Option<String>,
    pub policy: String,
    pub started: Instant,
    /// Counters reserved for the call; settled when it ends.
    pub ticket: Option<Ticket>,
    pub counters: Vec<CounterRecord>,
    /// (Boxed: every entry of the in-flight map carries it.)
    pub args_hash: Option<Box<str>>,
    pub not_counted: bool,
    /// The approval this call consumed; given back if the call does not happen. (A boxed
    /// `str`: every entry of the in-flight map carries this field.)
    pub approval: Option<Box<str>>,
    pub phase: CallPhase,
    /// How long after `started` the call was forwarded (none: not forwarded yet): the part
    /// of the call's time that is the gateway's own.
    /// (Microseconds, saturating at ~71 minutes: every entry of the in-flight map has it.)
    pub forwarded_after_us: Option<std::num::NonZeroU32>,
    /// When toolgate stops waiting for the server.
    pub deadline: Instant,
    /// What few calls carry (boxed: every entry of the in-flight map has the field).
    pub extras: Option<Box<CallExtras>>,
}

#[derive(Default)]
pub(crate) struct CallExtras {
    /// What a dry-run rule would have done to the call.
    pub shadow: Option<toolgate_policy::ShadowVerdict>,
    /// The call is the first of its kind within an `idempotency_window` of this many ms:
    /// duplicates wait on it under this key.
    pub idempotency: Option<(crate::idempotency::CallKey, u64)>,
    /// The arguments for the audit line, as the policy's `audit.arguments` asks.
    pub arguments: Option<crate::audit::AuditedArguments>,
    /// What the `redact` rules found in the result, and the rule that withheld it.
    pub redactions: Option<toolgate_policy::redact::RedactionCounts>,
    pub withheld_by: Option<String>,
    /// The call's trace span, when tracing samples it.
    pub span: Option<crate::otel::CallSpan>,
}

impl CallInFlight {
    /// The call goes to the server now.
    pub fn mark_forwarded(&mut self) {
        self.phase = CallPhase::Forwarded;
        let us = u32::try_from(self.started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.forwarded_after_us = std::num::NonZeroU32::new(us.max(1));
    }

    /// The gateway's own share of the call's time: until it was forwarded, or all of it for
    /// a call the gateway answered itself.
    pub fn gateway_us(&self) -> u64 {
        match self.forwarded_after_us {
            Some(us) => u64::from(us.get()),
            None => self.started.elapsed().as_micros() as u64,
        }
    }

    pub fn extras_mut(&mut self) -> &mut CallExtras {
        self.extras.get_or_insert_with(Default::default)
    }

    pub fn idempotency(&self) -> Option<(crate::idempotency::CallKey, u64)> {
        self.extras.as_ref().and_then(|e| e.idempotency)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallPhase {
    /// Counters are being reserved; not yet sent to the server.
    Admitting,
    /// The client cancelled while counters were being reserved: do not forward.
    CancelledBeforeForward,
    /// Sent to the server.
    Forwarded,
    /// Sent, then cancelled by the client: the server may have run it, so it counts.
    CancelledAfterForward,
}

/// Messages a session's channels hold before a sender waits: enough for bursts, bounded so
/// a stalled peer slows its sender instead of growing memory.
pub const CHANNEL_DEPTH: usize = 1024;

/// A new session and the receiving ends of its two channels (to the client, to the server).
pub struct SessionChannels {
    pub session: std::sync::Arc<Session>,
    pub to_client: mpsc::Receiver<ToClient>,
    pub to_server: mpsc::Receiver<ToServer>,
}

impl Session {
    /// The one-request session of a sessionless (2026-07-28) request: its `scope: session`
    /// counters are the identity's (`sessionless:"alice"`), or, without one, shared by every
    /// unauthenticated caller (`sessionless:null`). A random id per request would let every
    /// request start a fresh counter. Real session ids are hex, so the two never meet.
    pub fn open_sessionless(identity: Option<String>) -> SessionChannels {
        let counter_session = Session::sessionless_counter_key(identity.as_deref());
        Session::open_with(identity, Some(counter_session))
    }

    /// The key a sessionless request's `scope: session` counters are kept under.
    pub fn sessionless_counter_key(identity: Option<&str>) -> String {
        match identity {
            Some(name) => format!(
                "sessionless:{}",
                serde_json::to_string(name).unwrap_or_default()
            ),
            None => "sessionless:null".to_string(),
        }
    }

    /// A session with a fresh random id and its two bounded channels.
    pub fn open(identity: Option<String>) -> SessionChannels {
        Session::open_with(identity, None)
    }

    fn open_with(identity: Option<String>, counter_session: Option<String>) -> SessionChannels {
        let (to_client, client_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (to_server, server_rx) = mpsc::channel(CHANNEL_DEPTH);
        let mut session = Session::new(random_id(), identity, to_client, to_server);
        if let Some(key) = counter_session {
            session.counter_session = key;
        }
        SessionChannels {
            session: std::sync::Arc::new(session),
            to_client: client_rx,
            to_server: server_rx,
        }
    }

    /// A session whose messages go to channels its transport drains.
    pub fn new(
        id: String,
        identity: Option<String>,
        to_client: mpsc::Sender<ToClient>,
        to_server: mpsc::Sender<ToServer>,
    ) -> Session {
        let (to_client, to_server) = (Outbox::Channel(to_client), Outbox::Channel(to_server));
        Session::with_outboxes(id, identity, to_client, to_server)
    }

    /// A session with a fresh random id whose messages go where its transport says.
    pub fn open_with_outboxes(
        identity: Option<String>,
        to_client: Outbox<ToClient>,
        to_server: Outbox<ToServer>,
    ) -> std::sync::Arc<Session> {
        Session::open_counted_with_outboxes(identity, to_client, to_server, None)
    }

    /// As `open_with_outboxes`, with its `scope: session` counters kept under
    /// `counter_session` when given (a sessionless request's, `sessionless_counter_key`).
    pub fn open_counted_with_outboxes(
        identity: Option<String>,
        to_client: Outbox<ToClient>,
        to_server: Outbox<ToServer>,
        counter_session: Option<String>,
    ) -> std::sync::Arc<Session> {
        let mut session = Session::with_outboxes(random_id(), identity, to_client, to_server);
        if let Some(key) = counter_session {
            session.counter_session = key;
        }
        std::sync::Arc::new(session)
    }

    fn with_outboxes(
        id: String,
        identity: Option<String>,
        to_client: Outbox<ToClient>,
        to_server: Outbox<ToServer>,
    ) -> Session {
        let caller = identity.clone().map(|name| {
            std::sync::Arc::new(toolgate_policy::Caller {
                name,
                ..Default::default()
            })
        });
        Session {
            counter_session: id.clone(),
            id,
            identity,
            caller: Mutex::new(caller),
            to_client,
            to_server,
            state: Mutex::new(SessionState::default()),
            names: std::sync::OnceLock::new(),
        }
    }

    /// The caller the next calls are decided for (set by the listener from each request's
    /// credentials).
    pub fn set_caller(&self, caller: std::sync::Arc<toolgate_policy::Caller>) {
        *self.caller.lock() = Some(caller);
    }

    pub fn caller(&self) -> Option<std::sync::Arc<toolgate_policy::Caller>> {
        self.caller.lock().clone()
    }

    /// Gives the session the client's names (before it carries any message).
    pub fn set_names(&self, names: std::sync::Arc<ClientNames>) {
        let _ = self.names.set(names);
    }

    /// Sends a message to the client; a closed client is not an error here (the transport
    /// notices and shuts the session down).
    pub(crate) async fn send_to_client(&self, message: ToClient) {
        let Some(names) = self.names.get() else {
            let _ = self.to_client.send(message).await;
            return;
        };
        let out = names.outbound(message);
        let _ = self.to_client.send(out.message).await;
        if let Some(listing) = out.relist {
            let text = format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"{}\"}}",
                listing.changed_notification()
            );
            let _ = self.to_client.send(ToClient::notice(text)).await;
        }
    }

    pub(crate) async fn send_to_server(&self, message: ToServer) -> bool {
        self.to_server.send(message).await
    }

    /// The session's negotiated protocol version, if `initialize` has completed.
    pub fn protocol_version(&self) -> Option<String> {
        self.state.lock().protocol_version.clone()
    }

    /// The id under which the client request with id `client_id` (JSON text) went to the
    /// server, while it waits for its answer.
    pub fn upstream_id_of(&self, client_id: &str) -> Option<u64> {
        let key = crate::envelope::id_key(client_id);
        self.state.lock().upstream_ids.upstream_of(&key)
    }

    /// Number of client requests still waiting for the server.
    pub fn inflight_count(&self) -> usize {
        self.state.lock().inflight.len()
    }
}

/// A random identifier: 16 bytes from the operating system's generator, as hex.
///
/// Session ids are capabilities over HTTP (whoever knows one can use the session), so there
/// is no fallback to guessable values: without an entropy source the process cannot run
/// safely, and stops.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "the operating system's random generator failed");
        std::process::abort();
    }
    hex::encode(bytes)
}
