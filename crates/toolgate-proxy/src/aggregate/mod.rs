//! Many servers behind one gateway.
//!
//! ```text
//! client ─▶ front gateway ─▶ Aggregator ─▶ server gateway "files"  ─▶ files server
//!          (gateway-wide     (names,      ─▶ server gateway "memory" ─▶ memory server
//!           policy, sees      routing,
//!           files__read)      merging)      (each: the server's own policy, bare names)
//! ```
//!
//! The aggregator is the front gateway's upstream and every server gateway's client, so each
//! gateway runs the one pipeline unchanged: a call passes the gateway-wide policy (which sees
//! `<server>__<tool>`), then the server's (which sees the server's own name). Messages move
//! between them through [`Outbox::Handler`]s, on the thread that has them, with no hand-off.
//!
//! Requests the aggregator relays keep the id the front gateway minted (unique across
//! servers, since one gateway minted them all), so answers pass back unchanged; requests of
//! its own (a merged listing's pages, `initialize` of each server) go under negative ids,
//! which the front never mints. A server's requests to the client get ids the aggregator
//! mints, mapped back when the client answers.

mod client_names;
mod member;
pub(crate) mod merge;
pub(crate) mod names;
mod servers;
pub mod stdio;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::watch;

pub use client_names::ClientNames;
use member::Member;
pub use member::MemberSpec;
pub(crate) use servers::serve_session;
pub use servers::Servers;

use merge::{Listing, Page};

use crate::audit::AuditEvent;
use crate::gateway::Gateway;
use crate::message::{Route, ToClient, ToServer};
use crate::session::{MessageHandler, Session};
use crate::wire::{self, ErrorCode};

/// How long the client's `initialize` waits for servers; one that answers later joins with
/// `list_changed`.
pub(crate) const INITIALIZE_WAIT: Duration = Duration::from_secs(10);
/// How long a merged listing waits for each server's page: a slow server is left out of
/// that page (and the client told to list again when it answers) rather than delaying the
/// others.
const LISTING_WAIT: Duration = Duration::from_secs(5);
/// Requests from servers waiting for the client's answer.
const MAX_SERVER_REQUESTS: usize = 4096;
/// Listing pages a server may still owe after their listings went on without it.
const MAX_LATE_PAGES: usize = 16;
/// Resource URIs and templates remembered for routing: a server listing ever new ones
/// cannot grow the map without end (past it, a URI is routed as an unlisted one is).
const MAX_LEARNED_RESOURCES: usize = 100_000;
/// Resource templates remembered: every unlisted URI is matched against each, so they are
/// kept few (servers have a handful).
const MAX_LEARNED_TEMPLATES: usize = 1_000;

/// Settings for the connections to the servers.
#[derive(Debug, Clone)]
pub struct AggregatorOptions {
    /// The client's identity, which every server's gateway sees too.
    pub identity: Option<String>,
    pub shutdown_grace: Duration,
    pub max_line_bytes: usize,
}

/// What one client session asks of its aggregator beyond the servers' settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionShape {
    /// The one server served alone (`/mcp/<server>`): a request the aggregator has no rule
    /// for is relayed to it as it is (the aggregated view refuses one: no server is "the"
    /// server there).
    pub only: Option<String>,
    /// A single request of the 2026-07-28 era, without a session.
    pub sessionless: Option<Sessionless>,
    /// The client is served over HTTP (`member::StdoutReader` says why that matters).
    pub over_http: bool,
}

/// A single request of the 2026-07-28 era: the servers are asked `server/discover` instead
/// of `initialize` (nothing is sent them before it, and `notifications/initialized` never),
/// every request of the aggregator's own carries the client's `_meta` (the era's version
/// and capabilities), and what the aggregator answers itself is marked complete.
#[derive(Debug, Clone)]
pub(crate) struct Sessionless {
    /// The client request's `params._meta`.
    pub meta: Value,
    /// The key every server's gateway counts `scope: session` under: the front's, so a
    /// server's session counters last across requests as the gateway-wide ones do.
    pub counter_session: String,
}

pub struct Aggregator {
    front: Arc<Gateway>,
    shape: SessionShape,
    /// Marked changed whenever a server becomes ready or gives up (a sessionless request waits on
    /// it for every server to be one or the other).
    settled: watch::Sender<()>,
    front_session: OnceLock<Arc<Session>>,
    /// By index, which never changes for a server (ids, routes and pages name servers by
    /// it); a server removed from the config leaves its slot empty.
    members: parking_lot::RwLock<Vec<Option<Arc<Member>>>>,
    options: AggregatorOptions,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
    supervisors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    me: Weak<Aggregator>,
}

#[derive(Default)]
struct State {
    /// The last id the aggregator used for a request of its own (negative, decreasing).
    last_own: i64,
    own: HashMap<i64, Own>,
    /// Client requests relayed to a server, by the front's id, until answered.
    relayed: HashMap<u64, usize>,
    /// Merged listings and `initialize`s in progress, by the front's id.
    listings: HashMap<u64, ListJob>,
    initializations: HashMap<u64, InitJob>,
    /// Server requests waiting for the client: the id the client sees → (server, the id the
    /// server used, as JSON).
    server_requests: HashMap<u64, (usize, String)>,
    last_server_request: u64,
    /// The params of the client's `initialize`, given to every server that starts later.
    client_initialize: Option<String>,
    /// Whether the client has its `initialize` answer (before it, it is not told of changes).
    client_initialized: bool,
    /// The capabilities that answer gave (the client is told of changes to those only).
    client_capabilities: Vec<String>,
    /// Which servers list each resource URI (routed only when exactly one does).
    resources: HashMap<String, Vec<usize>>,
    /// Resource templates: the text before the first `{`, and the server.
    templates: Vec<(String, usize)>,
    /// Pages that arrived after their listing went on: the next listing asking for the same
    /// page takes it instead of asking again, so a server slower than the wait is still
    /// listed.
    late_pages: HashMap<PageKey, Page>,
}

/// What one of the aggregator's own requests was for.
enum Own {
    Initialize {
        job: u64,
        member: usize,
    },
    /// `initialize` of a server that started after the client's.
    Handshake {
        member: usize,
    },
    Page {
        job: u64,
        member: usize,
    },
    /// A page that came too late for its listing: kept for the next listing that asks for
    /// it, and the client told to list again.
    LatePage {
        key: PageKey,
    },
    Discard,
}

struct InitJob {
    waiting: usize,
    requested: Option<String>,
}

struct ListJob {
    listing: Listing,
    waiting: usize,
    /// The servers asked, in order, with the cursor each was asked with.
    asked: Vec<(usize, Option<String>)>,
    pages: HashMap<usize, Page>,
}

/// A page asked of a server: which server, which listing, from which cursor.
type PageKey = (usize, Listing, Option<String>);

/// The members of a JSON-RPC message the aggregator reads.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
}

impl Aggregator {
    pub(crate) fn new(
        front: Arc<Gateway>,
        members: Vec<MemberSpec>,
        options: AggregatorOptions,
        shape: SessionShape,
    ) -> Arc<Aggregator> {
        Arc::new_cyclic(|me| Aggregator {
            me: Weak::clone(me),
            front,
            shape,
            settled: watch::channel(()).0,
            front_session: OnceLock::new(),
            members: parking_lot::RwLock::new(
                members
                    .into_iter()
                    .map(|spec| Some(Arc::new(Member::new(spec))))
                    .collect(),
            ),
            options,
            state: Mutex::new(State::default()),
            stop: watch::channel(false).0,
            supervisors: Mutex::new(Vec::new()),
        })
    }

    /// The handler the front session's `to_server` outbox calls.
    pub fn front_handler(self: &Arc<Self>) -> Arc<dyn MessageHandler<ToServer>> {
        Arc::new(FrontReturn(Arc::downgrade(self)))
    }

    /// Binds the client's session at the front gateway and starts every server.
    pub fn start(self: &Arc<Self>, front_session: Arc<Session>) {
        let _ = self.front_session.set(front_session);
        // Every server is started before the client is read, so the client's `initialize`
        // reaches them all.
        for (index, member) in self.current() {
            self.launch(index, member);
        }
    }

    /// Waits, at most `limit`, until every server has answered `server/discover` (or
    /// `initialize`), refused it, or gone away: a sessionless request is relayed only then,
    /// as a session's first request waits for `initialize`.
    pub(crate) async fn settle(&self, limit: Duration) {
        let mut settled = self.settled.subscribe();
        let all_settled = |_: &()| self.current().iter().all(|(_, m)| m.settled());
        let _ = tokio::time::timeout(limit, settled.wait_for(all_settled)).await;
    }

    /// The key the servers' gateways count `scope: session` under, when not their own
    /// session's.
    fn counter_session(&self) -> Option<String> {
        let sessionless = self.shape.sessionless.as_ref()?;
        Some(sessionless.counter_session.clone())
    }

    /// What a server is asked first: `initialize`, or `server/discover` in the
    /// 2026-07-28 era.
    fn handshake_method(&self) -> &'static str {
        match self.shape.sessionless {
            Some(_) => "server/discover",
            None => "initialize",
        }
    }

    fn mark_settled(&self) {
        self.settled.send_modify(|_| ());
    }

    /// Starts a server and the task that watches it.
    fn launch(self: &Arc<Self>, index: usize, member: Arc<Member>) {
        let first = member::start(self, index, &member);
        let task = member::supervise(Arc::clone(self), index, member, first);
        self.supervisors.lock().push(tokio::spawn(task));
    }

    /// A server added to the config: started, and introduced to the client if it has
    /// initialized (its tools then come with `list_changed`).
    pub(crate) async fn add(self: &Arc<Self>, spec: MemberSpec) {
        if *self.stop.borrow() {
            return;
        }
        let member = Arc::new(Member::new(spec));
        let index = {
            let mut members = self.members.write();
            members.push(Some(Arc::clone(&member)));
            members.len() - 1
        };
        tracing::info!(server = %member.spec.name, "server added");
        self.launch(index, member);
    }

    /// A server removed from the config: out of the client's view at once, then stopped
    /// (what it had in flight is answered as when a server exits).
    pub(crate) async fn remove(&self, name: &str) {
        let found = self
            .current()
            .into_iter()
            .find(|(_, m)| m.spec.name == name);
        let Some((index, member)) = found else { return };
        if let Some(slot) = self.members.write().get_mut(index) {
            *slot = None;
        }
        tracing::info!(server = %name, "server removed");
        let _ = member.stop.send(true);
        self.forget(index, &member, "it was removed from the gateway config")
            .await;
    }

    /// The servers in the config now, with their indexes.
    fn current(&self) -> Vec<(usize, Arc<Member>)> {
        self.members
            .read()
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, Arc::clone(m.as_ref()?))))
            .collect()
    }

    fn member(&self, index: usize) -> Option<Arc<Member>> {
        self.members.read().get(index).cloned().flatten()
    }

    /// A server's name for the log (a removed one's slot has none).
    fn name_of(&self, index: usize) -> String {
        self.member(index)
            .map_or_else(|| "(removed)".to_string(), |m| m.spec.name.clone())
    }

    /// Stops every server (stdin closed → SIGTERM → SIGKILL), bounded by the grace period.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        for (_, member) in self.current() {
            let _ = member.stop.send(true);
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.supervisors.lock());
        for task in tasks {
            let _ = task.await;
        }
    }

    fn member_index(&self, name: &str) -> Option<usize> {
        let members = self.members.read();
        members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.spec.name == name))
    }

    // ---- to the client ----

    async fn to_front(&self, text: String) {
        if let Some(session) = self.front_session.get() {
            self.front.from_server(session, text).await;
        }
    }

    async fn answer(&self, front_id: u64, result: &Value) {
        self.to_front(format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{front_id},\"result\":{result}}}"
        ))
        .await;
    }

    /// An answer of the kind the 2026-07-28 era lets a client cache (`server/discover`, a
    /// listing): the only answers of the aggregator's own a sessionless request can get
    /// (`initialize`, `ping` and `logging/setLevel` are not of the era). There it is marked
    /// complete, never to be cached (`ttlMs: 0`) and never to be shared (`private`): a
    /// merged view changes with every server and with the policy in force, whose hidden
    /// tools may differ by caller.
    async fn answer_cacheable(&self, front_id: u64, mut result: Value) {
        if let (Some(_), Some(members)) = (&self.shape.sessionless, result.as_object_mut()) {
            members.entry("resultType").or_insert("complete".into());
            members.entry("ttlMs").or_insert(0.into());
            members.entry("cacheScope").or_insert("private".into());
        }
        self.answer(front_id, &result).await;
    }

    async fn fail(&self, front_id: u64, code: ErrorCode, message: &str) {
        let id = RawValue::from_string(front_id.to_string()).ok();
        self.to_front(wire::error_response(id.as_deref(), code, message))
            .await;
    }

    /// Applies `change` to the client's names; true when the client sees other names now.
    fn client_names_changed(&self, change: impl FnOnce(&ClientNames) -> bool) -> bool {
        let names = self.front_session.get().and_then(|s| s.names.get());
        names.is_some_and(|names| change(names))
    }

    async fn notify_changed(&self, listing: Listing) {
        let method = listing.changed_notification();
        let told = {
            let state = self.state.lock();
            state.client_initialized
                && state
                    .client_capabilities
                    .iter()
                    .any(|c| c == listing.capability())
        };
        if told {
            self.to_front(format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\"}}"))
                .await;
        }
    }

    // ---- to the servers ----

    async fn to_member(&self, session: &Arc<Session>, index: usize, text: String) {
        if let Some(member) = self.member(index) {
            member.spec.gateway.from_client(session, text).await;
        }
    }

    /// Sends a request of the aggregator's own to a server.
    async fn ask(
        &self,
        session: &Arc<Session>,
        index: usize,
        method: &str,
        params: Option<&str>,
        own: Own,
    ) {
        let id = {
            let mut state = self.state.lock();
            state.last_own -= 1;
            let id = state.last_own;
            state.own.insert(id, own);
            id
        };
        let with_meta;
        let params = match &self.shape.sessionless {
            Some(sessionless) => {
                let mut value = params
                    .and_then(|p| serde_json::from_str::<Value>(p).ok())
                    .filter(Value::is_object)
                    .unwrap_or_else(|| serde_json::json!({}));
                value["_meta"] = sessionless.meta.clone();
                with_meta = value.to_string();
                Some(with_meta.as_str())
            }
            None => params,
        };
        let text = match params {
            Some(p) => format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\",\"params\":{p}}}"
            ),
            None => format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}"),
        };
        self.to_member(session, index, text).await;
    }

    /// Relays a client request to a server under the front's id.
    async fn relay(&self, index: usize, front_id: u64, text: String) {
        let Some(member) = self.member(index) else {
            let message = "The server is not available: it was removed from the gateway config";
            return self.fail(front_id, ErrorCode::UpstreamHttp, message).await;
        };
        let Some(session) = member.ready_session() else {
            let reason = member.down_reason.lock().clone();
            let message = format!(
                "The server {:?} is not available: {reason}",
                member.spec.name
            );
            return self.fail(front_id, ErrorCode::UpstreamHttp, &message).await;
        };
        self.state.lock().relayed.insert(front_id, index);
        self.to_member(&session, index, text).await;
    }

    // ---- from the client (through the front gateway) ----

    pub(crate) async fn on_client_message(&self, message: ToServer) {
        let Ok(envelope) = serde_json::from_str::<Envelope>(&message.text) else {
            tracing::warn!("the aggregator could not read a client message; dropped");
            return;
        };
        match (&envelope.method, message.request) {
            (Some(method), Some(front_id)) => {
                self.client_request(front_id, method, &envelope, &message.text)
                    .await
            }
            (Some(method), None) => {
                self.client_notification(method, &envelope, &message.text)
                    .await
            }
            (None, _) => self.client_response(&envelope, &message.text).await,
        }
    }

    async fn client_request(
        &self,
        front_id: u64,
        method: &str,
        envelope: &Envelope<'_>,
        text: &str,
    ) {
        if let Some(listing) = Listing::of(method) {
            return self.list(front_id, listing, envelope.params).await;
        }
        match method {
            "initialize" => self.initialize(front_id, envelope.params).await,
            "server/discover" if self.shape.sessionless.is_some() => self.discover(front_id).await,
            // Neither is a method of the 2026-07-28 era: a sessionless request for one is
            // refused as the server would (or relayed to the one server served alone).
            "ping" if self.shape.sessionless.is_none() => {
                self.answer(front_id, &serde_json::json!({})).await
            }
            "tools/call" | "prompts/get" => {
                let name = envelope
                    .params
                    .and_then(|p| names::named_in(p.get(), method));
                self.route_by_name(front_id, text, name).await
            }
            "completion/complete" => {
                if let Some(name) = envelope
                    .params
                    .and_then(|p| names::named_in(p.get(), method))
                {
                    return self.route_by_name(front_id, text, Some(name)).await;
                }
                let params: Value = parse_params(envelope.params);
                let uri = params.pointer("/ref/uri").and_then(Value::as_str);
                self.route_by_uri(front_id, uri, text).await
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let params: Value = parse_params(envelope.params);
                let uri = params.get("uri").and_then(Value::as_str);
                self.route_by_uri(front_id, uri, text).await
            }
            "logging/setLevel" if self.shape.sessionless.is_none() => {
                let params = envelope.params.map(RawValue::get);
                for (index, member) in self.current() {
                    if let (true, Some(session)) =
                        (member.has_capability("logging"), member.ready_session())
                    {
                        self.ask(&session, index, method, params, Own::Discard)
                            .await;
                    }
                }
                self.answer(front_id, &serde_json::json!({})).await
            }
            _ if self.shape.only.is_some() => {
                // The one server served alone is the only one the request can be for.
                match self.current().first() {
                    Some((index, _)) => self.relay(*index, front_id, text.to_string()).await,
                    None => {
                        let message =
                            "The server is not available: it was removed from the gateway config";
                        self.fail(front_id, ErrorCode::UpstreamHttp, message).await
                    }
                }
            }
            _ => {
                let id = RawValue::from_string(front_id.to_string()).ok();
                let text = wire::error_response(
                    id.as_deref(),
                    ErrorCode::MethodNotFound,
                    &format!("Method not found: {method}"),
                );
                self.to_front(text).await
            }
        }
    }

    /// A request naming a server's tool or prompt as `<server>__<name>` (`name`, a slice of
    /// `text`): relayed with the server's own name in its place, the rest byte for byte.
    async fn route_by_name(&self, front_id: u64, text: &str, name: Option<&RawValue>) {
        // The front gateway read the request strictly, so it has one name, a string.
        let aggregated = name.and_then(|n| serde_json::from_str::<String>(n.get()).ok());
        let Some((name, aggregated)) = name.zip(aggregated) else {
            let message = "Invalid params: no name";
            return self.fail(front_id, ErrorCode::InvalidParams, message).await;
        };
        let target = toolgate_policy::gateway_config::split_aggregated_name(&aggregated)
            .and_then(|(server, own)| Some((self.member_index(server)?, own)));
        let renamed = target.and_then(|(index, own)| {
            let quoted = serde_json::to_string(own).ok()?;
            Some((
                index,
                crate::message::replace_slice(text, name.get(), &quoted)?,
            ))
        });
        let Some((index, text)) = renamed else {
            let message = wire::unknown_tool_message(&aggregated);
            return self
                .fail(front_id, ErrorCode::InvalidParams, &message)
                .await;
        };
        self.relay(index, front_id, text).await;
    }

    /// A request about a resource: relayed to the one server that listed the URI, or whose
    /// template it starts like; refused when none does or several do.
    async fn route_by_uri(&self, front_id: u64, uri: Option<&str>, text: &str) {
        let target = uri.and_then(|uri| {
            let state = self.state.lock();
            if let Some(owners) = state.resources.get(uri) {
                return (owners.len() == 1).then(|| owners[0]);
            }
            let mut matches = state
                .templates
                .iter()
                .filter(|(prefix, _)| uri.starts_with(prefix.as_str()))
                .map(|(_, index)| *index);
            let first = matches.next()?;
            matches.all(|i| i == first).then_some(first)
        });
        let target = target.or_else(|| {
            // One server with resources can only mean that one.
            let mut with = self
                .current()
                .into_iter()
                .filter(|(_, m)| m.has_capability("resources"))
                .map(|(i, _)| i);
            let first = with.next()?;
            with.next().is_none().then_some(first)
        });
        match target {
            Some(index) => self.relay(index, front_id, text.to_string()).await,
            None => {
                let message = format!("Unknown resource: {}", uri.unwrap_or("(no uri)"));
                self.fail(front_id, ErrorCode::InvalidParams, &message)
                    .await
            }
        }
    }

    async fn client_notification(&self, method: &str, envelope: &Envelope<'_>, text: &str) {
        match method {
            // Each server was sent its own when it answered `initialize`.
            "notifications/initialized" => {}
            "notifications/cancelled" => {
                let params: Value = parse_params(envelope.params);
                let target = params
                    .get("requestId")
                    .and_then(Value::as_u64)
                    .and_then(|id| self.state.lock().relayed.get(&id).copied());
                if let Some(index) = target {
                    if let Some(session) = self.member(index).and_then(|m| m.ready_session()) {
                        self.to_member(&session, index, text.to_string()).await;
                    }
                }
            }
            _ => {
                for (index, member) in self.current() {
                    if let Some(session) = member.ready_session() {
                        self.to_member(&session, index, text.to_string()).await;
                    }
                }
            }
        }
    }

    /// The client's answer to a server's request: back to that server, under its own id.
    async fn client_response(&self, envelope: &Envelope<'_>, text: &str) {
        let id = envelope.id.and_then(|id| id.get().parse::<u64>().ok());
        let Some((index, original)) =
            id.and_then(|id| self.state.lock().server_requests.remove(&id))
        else {
            // Debug, not warn: a client could otherwise fill the log at its own pace.
            tracing::debug!("the client answered a request no server sent; dropped");
            return;
        };
        let Some(text) = with_id(text, &original) else {
            return;
        };
        if let Some(session) = self.member(index).and_then(|m| m.started_session()) {
            self.to_member(&session, index, text).await;
        }
    }

    // ---- initialize and listings ----

    async fn initialize(&self, front_id: u64, params: Option<&RawValue>) {
        let params_text = params.map_or("{}", RawValue::get).to_string();
        let requested = parse_params(params)
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let started: Vec<(usize, Arc<Session>)> = {
            let mut state = self.state.lock();
            state.client_initialize = Some(params_text.clone());
            // Under the state lock, so a server starting now is introduced here or by
            // `member_started`, never both.
            let started: Vec<_> = self
                .current()
                .into_iter()
                .filter_map(|(i, m)| Some((i, m.introduce()?)))
                .collect();
            state.initializations.insert(
                front_id,
                InitJob {
                    waiting: started.len(),
                    requested,
                },
            );
            started
        };
        if started.is_empty() {
            return self.finish_initialize(front_id).await;
        }
        for (index, session) in started {
            let own = Own::Initialize {
                job: front_id,
                member: index,
            };
            self.ask(&session, index, "initialize", Some(&params_text), own)
                .await;
        }
        self.spawn_deadline(INITIALIZE_WAIT, Deadline::Initialize(front_id));
    }

    /// `server/discover` of a sessionless request: what the servers that answered theirs
    /// can do, together (the servers were asked before the request was relayed).
    async fn discover(&self, front_id: u64) {
        let result = merge::discover_result(&self.initialized_answers());
        self.answer_cacheable(front_id, result).await;
    }

    /// The `initialize` (or `server/discover`) results of the servers ready now, by name.
    fn initialized_answers(&self) -> Vec<(String, Value)> {
        self.current()
            .into_iter()
            .filter_map(|(_, m)| {
                let live = m.live.lock();
                let result = live.as_ref().filter(|l| l.ready)?.initialized.clone()?;
                Some((m.spec.name.clone(), result))
            })
            .collect()
    }

    async fn finish_initialize(&self, front_id: u64) {
        let Some(job) = self.state.lock().initializations.remove(&front_id) else {
            return;
        };
        // Servers still starting join when they answer.
        for own in self.state.lock().own.values_mut() {
            if let Own::Initialize { job, member } = own {
                if *job == front_id {
                    *own = Own::Handshake { member: *member };
                }
            }
        }
        let result =
            merge::initialize_result(job.requested.as_deref(), &self.initialized_answers());
        self.answer(front_id, &result).await;
        let mut state = self.state.lock();
        state.client_initialized = true;
        if let Some(capabilities) = result.get("capabilities").and_then(Value::as_object) {
            state.client_capabilities = capabilities.keys().cloned().collect();
        }
    }

    async fn list(&self, front_id: u64, listing: Listing, params: Option<&RawValue>) {
        let cursor = parse_params(params)
            .get("cursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        let resume: names::Resume = match cursor {
            None => self
                .current()
                .into_iter()
                .filter(|(_, m)| m.has_capability(listing.capability()))
                .map(|(_, m)| (m.spec.name.clone(), None))
                .collect(),
            Some(cursor) => match names::decode_cursor(&cursor) {
                Some(resume) => resume,
                None => {
                    return self
                        .fail(
                            front_id,
                            ErrorCode::InvalidParams,
                            "Invalid params: unknown cursor",
                        )
                        .await
                }
            },
        };
        // (`decode_cursor` names each server once.)
        let asks: Vec<(usize, Arc<Session>, Option<String>)> = resume
            .into_iter()
            .filter_map(|(name, cursor)| {
                let index = self.member_index(&name)?;
                Some((index, self.member(index)?.ready_session()?, cursor))
            })
            .collect();
        let asks: Vec<_> = {
            let mut state = self.state.lock();
            let mut job = ListJob {
                listing,
                waiting: 0,
                asked: asks.iter().map(|(i, _, c)| (*i, c.clone())).collect(),
                pages: HashMap::new(),
            };
            let asks: Vec<_> = asks
                .into_iter()
                .filter(|(index, _, cursor)| {
                    let key = (*index, listing, cursor.clone());
                    match state.late_pages.remove(&key) {
                        Some(page) => {
                            job.pages.insert(*index, page);
                            false
                        }
                        None => true,
                    }
                })
                .collect();
            job.waiting = asks.len();
            state.listings.insert(front_id, job);
            asks
        };
        if asks.is_empty() {
            return self.finish_listing(front_id).await;
        }
        for (index, session, cursor) in asks {
            let params = cursor.map(|c| serde_json::json!({ "cursor": c }).to_string());
            let own = Own::Page {
                job: front_id,
                member: index,
            };
            self.ask(&session, index, listing.method(), params.as_deref(), own)
                .await;
        }
        self.spawn_deadline(LISTING_WAIT, Deadline::Listing(front_id));
    }

    async fn finish_listing(&self, front_id: u64) {
        let Some(mut job) = self.state.lock().listings.remove(&front_id) else {
            return;
        };
        let mut items = Vec::new();
        let mut resume = names::Resume::new();
        {
            let mut state = self.state.lock();
            // A server that never answers is waited on by a bounded number of late pages:
            // past that, its answers are simply dropped.
            let mut late: HashMap<usize, usize> = HashMap::new();
            for own in state.own.values() {
                if let Own::LatePage { key } = own {
                    *late.entry(key.0).or_default() += 1;
                }
            }
            let listing = job.listing;
            let asked = &job.asked;
            state.own.retain(|_, own| match own {
                Own::Page { job, member } if *job == front_id => {
                    let count = late.entry(*member).or_default();
                    *count += 1;
                    if *count > MAX_LATE_PAGES {
                        return false;
                    }
                    let cursor = asked
                        .iter()
                        .find(|(i, _)| i == member)
                        .and_then(|(_, c)| c.clone());
                    *own = Own::LatePage {
                        key: (*member, listing, cursor),
                    };
                    true
                }
                _ => true,
            });
            for (index, _) in &job.asked {
                let Some(page) = job.pages.remove(index) else {
                    continue;
                };
                learn_resources(&mut state, job.listing, *index, &page.items);
                items.extend(page.items);
                if let Some(next) = page.next {
                    if let Some(member) = self.member(*index) {
                        resume.push((member.spec.name.clone(), Some(next)));
                    }
                }
            }
        }
        let mut result = serde_json::Map::new();
        result.insert(job.listing.items_key().into(), Value::Array(items));
        if !resume.is_empty() {
            result.insert(
                "nextCursor".into(),
                Value::String(names::encode_cursor(&resume)),
            );
        }
        self.answer_cacheable(front_id, Value::Object(result)).await;
    }

    fn spawn_deadline(&self, after: Duration, deadline: Deadline) {
        let aggregator = Weak::clone(&self.me);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(aggregator) = aggregator.upgrade() else {
                return;
            };
            match deadline {
                Deadline::Initialize(id) => aggregator.finish_initialize(id).await,
                Deadline::Listing(id) => aggregator.finish_listing(id).await,
            }
        });
    }

    // ---- from the servers (through their gateways) ----

    async fn on_server_message(&self, index: usize, message: ToClient) {
        if let Route::Answer { id_key, .. } = &message.route {
            match id_key.parse::<i64>() {
                Ok(id) if id < 0 => return self.own_answer(index, id, &message.text).await,
                Ok(id) => {
                    self.state.lock().relayed.remove(&(id as u64));
                    // The server's own policy refused the call: the gateway-wide policy's
                    // counters are given back, so a refused call costs neither.
                    if message.unrun {
                        if let Some(session) = self.front_session.get() {
                            self.front.from_server_refused(session, message.text).await;
                        }
                        return;
                    }
                    return self.to_front(message.text).await;
                }
                Err(_) => {
                    tracing::warn!(server = %self.name_of(index), "an answer under an id the aggregator never used; dropped");
                    return;
                }
            }
        }
        let Ok(envelope) = serde_json::from_str::<Envelope>(&message.text) else {
            return self.to_front(message.text).await;
        };
        match (envelope.id, envelope.method.as_deref()) {
            (Some(id), Some(_)) => self.server_request(index, id.get(), &message.text).await,
            (None, Some("notifications/cancelled")) => {
                // A server taking back a request of its own: the client knows it by our id.
                let params: Value = parse_params(envelope.params);
                let original = params.get("requestId").map(Value::to_string);
                let mapped = original.and_then(|original| {
                    let state = self.state.lock();
                    state
                        .server_requests
                        .iter()
                        .find(|(_, (i, o))| *i == index && *o == original)
                        .map(|(id, _)| *id)
                });
                if let Some(id) = mapped {
                    let mut params = params;
                    params["requestId"] = Value::from(id);
                    let text = serde_json::json!({
                        "jsonrpc": "2.0", "method": "notifications/cancelled", "params": params
                    });
                    self.to_front(text.to_string()).await;
                }
            }
            _ => self.to_front(message.text).await,
        }
    }

    /// A server's request to the client (sampling, elicitation, roots, ping): relayed under
    /// an id the aggregator mints, since two servers may use the same ids.
    async fn server_request(&self, index: usize, original: &str, text: &str) {
        let minted = {
            let mut state = self.state.lock();
            if state.server_requests.len() >= MAX_SERVER_REQUESTS {
                None
            } else {
                state.last_server_request += 1;
                let id = state.last_server_request;
                state
                    .server_requests
                    .insert(id, (index, original.to_string()));
                Some(id)
            }
        };
        let Some(minted) = minted else {
            tracing::warn!(server = %self.name_of(index), "too many server requests waiting for the client; refused");
            let id = RawValue::from_string(original.to_string()).ok();
            let refusal = wire::error_response(
                id.as_deref(),
                ErrorCode::InvalidRequest,
                "Too many requests are waiting for the client",
            );
            if let Some(session) = self.member(index).and_then(|m| m.started_session()) {
                self.to_member(&session, index, refusal).await;
            }
            return;
        };
        if let Some(text) = with_id(text, &minted.to_string()) {
            self.to_front(text).await;
        }
    }

    async fn own_answer(&self, index: usize, id: i64, text: &str) {
        let Some(own) = self.state.lock().own.remove(&id) else {
            return;
        };
        let result: Option<Value> = serde_json::from_str::<Envelope>(text)
            .ok()
            .and_then(|e| e.result)
            .and_then(|r| serde_json::from_str(r.get()).ok());
        let name = &self.name_of(index);
        match own {
            Own::Initialize { job, .. } => {
                self.initialized(index, result).await;
                let done = {
                    let mut state = self.state.lock();
                    state.initializations.get_mut(&job).is_some_and(|j| {
                        j.waiting = j.waiting.saturating_sub(1);
                        j.waiting == 0
                    })
                };
                if done {
                    self.finish_initialize(job).await;
                }
            }
            Own::Handshake { .. } => {
                if self.initialized(index, result).await {
                    for listing in [Listing::Tools, Listing::Prompts, Listing::Resources] {
                        self.notify_changed(listing).await;
                    }
                }
            }
            Own::Page { job, .. } => {
                let page = match result {
                    Some(result) => {
                        let listing = self.state.lock().listings.get(&job).map(|j| j.listing);
                        listing.map(|l| merge::page_of(l, name, result))
                    }
                    None => {
                        tracing::warn!(server = %name, "a server refused a listing; its items are left out");
                        None
                    }
                };
                let done = {
                    let mut state = self.state.lock();
                    state.listings.get_mut(&job).is_some_and(|j| {
                        if let Some(page) = page {
                            j.pages.insert(index, page);
                        }
                        j.waiting = j.waiting.saturating_sub(1);
                        j.waiting == 0
                    })
                };
                if done {
                    self.finish_listing(job).await;
                }
            }
            Own::LatePage { key } => {
                tracing::info!(server = %name, "a server answered a listing late; the client is told to list again");
                let listing = key.1;
                if let Some(result) = result {
                    let page = merge::page_of(listing, name, result);
                    let mut state = self.state.lock();
                    let kept = state.late_pages.keys().filter(|k| k.0 == index).count();
                    if kept < MAX_LATE_PAGES {
                        state.late_pages.insert(key, page);
                    }
                }
                self.notify_changed(listing).await;
            }
            Own::Discard => {}
        }
    }

    /// A server answered `initialize`: from now on it is routed to. Returns whether it is.
    async fn initialized(&self, index: usize, result: Option<Value>) -> bool {
        let Some(member) = self.member(index) else {
            return false;
        };
        let Some(result) = result else {
            let asked = self.handshake_method();
            tracing::error!(server = %member.spec.name, "the server refused {asked}");
            *member.down_reason.lock() = format!("it refused {asked}");
            if let Some(live) = member.live.lock().as_mut() {
                live.refused = true;
            }
            self.mark_settled();
            return false;
        };
        let session = {
            let mut live = member.live.lock();
            let Some(live) = live.as_mut() else {
                return false;
            };
            live.ready = true;
            live.initialized = Some(result);
            Arc::clone(&live.session)
        };
        self.mark_settled();
        tracing::info!(server = %member.spec.name, "server ready");
        member
            .spec
            .gateway
            .audit()
            .record(AuditEvent::ServerHealth {
                up: true,
                reason: None,
            });
        if self.shape.sessionless.is_none() {
            let note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
            self.to_member(&session, index, note.to_string()).await;
        }
        true
    }

    /// A server started: if the client has already initialized, the aggregator introduces
    /// it with the client's own `initialize` params.
    async fn member_started(&self, index: usize) {
        if self.shape.sessionless.is_some() {
            // Nothing comes before `server/discover` in the era, and nothing waits for the
            // client: there is no `initialize` to wait for.
            let Some(session) = self.member(index).and_then(|m| m.introduce()) else {
                return;
            };
            let own = Own::Handshake { member: index };
            let method = self.handshake_method();
            return self.ask(&session, index, method, None, own).await;
        }
        let introduced = {
            let state = self.state.lock();
            let params = state.client_initialize.clone();
            params.and_then(|p| Some((p, self.member(index)?.introduce()?)))
        };
        let Some((params, session)) = introduced else {
            return;
        };
        let own = Own::Handshake { member: index };
        self.ask(&session, index, "initialize", Some(&params), own)
            .await;
    }

    /// A server went away: its tools leave the client's view, and what it was asked (by the
    /// client, or waiting for the client) is answered or forgotten.
    async fn member_down(&self, index: usize, reason: &str) {
        let Some(member) = self.member(index) else {
            return;
        };
        tracing::warn!(server = %member.spec.name, %reason, "server down");
        self.forget(index, &member, reason).await;
    }

    /// What a server that went away (or was removed) leaves behind: its routes, resources,
    /// pages and requests are forgotten, listings waiting on it go on, and the client is
    /// told its tools are gone.
    async fn forget(&self, index: usize, member: &Member, reason: &str) {
        let was_ready = member.live.lock().take().is_some_and(|live| live.ready);
        self.mark_settled();
        *member.down_reason.lock() = reason.to_string();
        member
            .spec
            .gateway
            .audit()
            .record(AuditEvent::ServerHealth {
                up: false,
                reason: Some(reason.to_string()),
            });
        let pending: Vec<Own> = {
            let mut state = self.state.lock();
            state.server_requests.retain(|_, (i, _)| *i != index);
            state.relayed.retain(|_, i| *i != index);
            for owners in state.resources.values_mut() {
                owners.retain(|i| *i != index);
            }
            state.resources.retain(|_, owners| !owners.is_empty());
            state.templates.retain(|(_, i)| *i != index);
            state.late_pages.retain(|(i, _, _), _| *i != index);
            let ids: Vec<i64> = state
                .own
                .iter()
                .filter(|(_, own)| own_member(own) == Some(index))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| state.own.remove(&id))
                .collect()
        };
        // Listings and initializations waiting on it go on without it.
        for own in pending {
            match own {
                Own::Initialize { job, .. } => {
                    let done = self
                        .state
                        .lock()
                        .initializations
                        .get_mut(&job)
                        .is_some_and(|j| {
                            j.waiting = j.waiting.saturating_sub(1);
                            j.waiting == 0
                        });
                    if done {
                        self.finish_initialize(job).await;
                    }
                }
                Own::Page { job, .. } => {
                    let done = self.state.lock().listings.get_mut(&job).is_some_and(|j| {
                        j.waiting = j.waiting.saturating_sub(1);
                        j.waiting == 0
                    });
                    if done {
                        self.finish_listing(job).await;
                    }
                }
                _ => {}
            }
        }
        if was_ready {
            for listing in [Listing::Tools, Listing::Prompts, Listing::Resources] {
                self.notify_changed(listing).await;
            }
        }
    }
}

enum Deadline {
    Initialize(u64),
    Listing(u64),
}

fn own_member(own: &Own) -> Option<usize> {
    match own {
        Own::Initialize { member, .. }
        | Own::Handshake { member }
        | Own::Page { member, .. }
        | Own::LatePage {
            key: (member, _, _),
        } => Some(*member),
        Own::Discard => None,
    }
}

/// Remembers which server lists each resource URI and template, and says so when two do.
fn learn_resources(state: &mut State, listing: Listing, index: usize, items: &[Value]) {
    match listing {
        Listing::Resources => {
            for uri in items.iter().filter_map(|r| r.get("uri")?.as_str()) {
                if state.resources.len() >= MAX_LEARNED_RESOURCES
                    && !state.resources.contains_key(uri)
                {
                    break;
                }
                let owners = state.resources.entry(uri.to_string()).or_default();
                if !owners.contains(&index) {
                    owners.push(index);
                    if owners.len() == 2 {
                        tracing::error!(%uri, "two servers list the same resource URI; it is routed to neither");
                    }
                }
            }
        }
        Listing::Templates => {
            for template in items.iter().filter_map(|t| t.get("uriTemplate")?.as_str()) {
                let prefix = template.split('{').next().unwrap_or_default().to_string();
                if state.templates.len() < MAX_LEARNED_TEMPLATES
                    && !state.templates.contains(&(prefix.clone(), index))
                {
                    state.templates.push((prefix, index));
                }
            }
        }
        Listing::Tools | Listing::Prompts => {}
    }
}

/// Params as a value (absent or unreadable: null).
fn parse_params(params: Option<&RawValue>) -> Value {
    params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null)
}

/// The message with its id replaced by `id` (JSON text).
fn with_id(text: &str, id: &str) -> Option<String> {
    let mut message: Value = serde_json::from_str(text).ok()?;
    message["id"] = serde_json::from_str(id).ok()?;
    Some(message.to_string())
}

/// Takes what the front gateway sends "to the server".
struct FrontReturn(Weak<Aggregator>);

impl MessageHandler<ToServer> for FrontReturn {
    fn handle(&self, message: ToServer) -> futures_util::future::BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.0.upgrade() {
                Some(aggregator) => {
                    aggregator.on_client_message(message).await;
                    true
                }
                None => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn what_servers_list_is_remembered_within_bounds() {
        let mut state = State::default();
        let uris: Vec<Value> = (0..MAX_LEARNED_RESOURCES + 10)
            .map(|i| serde_json::json!({"uri": format!("r://{i}")}))
            .collect();
        learn_resources(&mut state, Listing::Resources, 0, &uris);
        assert_eq!(state.resources.len(), MAX_LEARNED_RESOURCES);
        // A URI already known still learns its second server (and so is routed to neither).
        learn_resources(&mut state, Listing::Resources, 1, &uris[..1]);
        assert_eq!(state.resources["r://0"], vec![0, 1]);
        let templates: Vec<Value> = (0..MAX_LEARNED_TEMPLATES + 10)
            .map(|i| serde_json::json!({"uriTemplate": format!("t://{i}/{{id}}")}))
            .collect();
        learn_resources(&mut state, Listing::Templates, 0, &templates);
        learn_resources(&mut state, Listing::Templates, 0, &templates[..5]);
        assert_eq!(state.templates.len(), MAX_LEARNED_TEMPLATES);
    }
}
