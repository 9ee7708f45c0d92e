//! The Streamable HTTP client side of a link: every client message becomes a POST (each in a
//! task of its own, so a slow call never holds up the next), answers arrive as a JSON body
//! or an SSE stream, server-initiated messages on the GET stream, and the session ends with
//! a DELETE.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::RwLock;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::mpsc;

use super::{http_failure, HttpClient, LinkContext, MAX_UPSTREAM_MESSAGE_BYTES};
use crate::http::sse::EventParser;
use crate::message::{Method, ServerMessage, ToServer};
use crate::wire::ErrorCode;

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";
pub(crate) const METHOD_HEADER: &str = "mcp-method";
pub(crate) const NAME_HEADER: &str = "mcp-name";

/// How many times in a row the GET stream may fail to (re)connect before toolgate stops
/// trying; server→client messages then still arrive on POST streams.
const GET_STREAM_ATTEMPTS: u32 = 5;

/// A 2026-07-28 request: sent on its own, without a session, with the routing headers
/// derived from its body (never copied from the client).
#[derive(Debug, Clone)]
pub(crate) struct SessionlessRequest {
    pub protocol_version: String,
    pub method: String,
    pub name: Option<String>,
    /// `Mcp-Param-*` headers of a `tools/call` (name, value), derived from its arguments.
    pub params: Vec<(String, String)>,
}

/// How the Streamable HTTP side ended.
pub(super) enum Ended {
    Reason(String),
    /// The server refused the `initialize` POST: it may speak legacy HTTP+SSE instead.
    Refused {
        initialize: ToServer,
        rest: mpsc::Receiver<ToServer>,
    },
}

enum PostResult {
    Done,
    Refused,
}

struct Link {
    ctx: LinkContext,
    http: HttpClient,
    session_id: RwLock<Option<String>>,
    protocol_version: RwLock<Option<String>>,
    sessionless: Option<SessionlessRequest>,
    /// Set when the upstream session is gone: later requests get an error at once.
    gone: RwLock<Option<String>>,
    get_disabled: AtomicBool,
}

pub(super) async fn run(
    ctx: &LinkContext,
    http: &HttpClient,
    mut to_server: mpsc::Receiver<ToServer>,
    sessionless: Option<SessionlessRequest>,
    may_fall_back: bool,
) -> Ended {
    let link = Arc::new(Link {
        ctx: ctx.clone(),
        http: http.clone(),
        session_id: RwLock::new(None),
        protocol_version: RwLock::new(sessionless.as_ref().map(|m| m.protocol_version.clone())),
        sessionless,
        gone: RwLock::new(None),
        get_disabled: AtomicBool::new(false),
    });
    let mut posts = tokio::task::JoinSet::new();
    let reason = loop {
        let message = tokio::select! {
            m = to_server.recv() => m,
            _ = ctx.stop.notified() => break "The session ended".to_string(),
            Some(_) = posts.join_next(), if !posts.is_empty() => continue,
        };
        let Some(message) = message else {
            break "The client side closed".to_string();
        };
        let out = message;
        let gone = link.gone.read().clone();
        if let Some(reason) = gone {
            if let Some(id) = out.request {
                ctx.fail_request(id, ErrorCode::UpstreamGone, &reason).await;
            }
            continue;
        }
        let first_initialize =
            out.method == Some(Method::Initialize) && link.session_id.read().is_none();
        if first_initialize {
            // Nothing else can be sent before the session exists: wait for it here.
            if let PostResult::Refused = link.post(&out, may_fall_back).await {
                return Ended::Refused {
                    initialize: out,
                    rest: to_server,
                };
            }
            continue;
        }
        let opens_get = out.method == Some(Method::Initialized);
        let task_link = Arc::clone(&link);
        posts.spawn(async move {
            task_link.post(&out, false).await;
            if opens_get && task_link.sessionless.is_none() {
                task_link.get_loop().await;
            }
        });
    };
    posts.abort_all();
    while posts.join_next().await.is_some() {}
    link.delete().await;
    let gone = link.gone.read().clone();
    Ended::Reason(gone.unwrap_or(reason))
}

impl Link {
    async fn request(&self, builder: RequestBuilder) -> RequestBuilder {
        let mut builder = self.http.authorized(builder).await;
        if let Some(id) = self.session_id.read().as_deref() {
            builder = builder.header(SESSION_HEADER, id);
        }
        if let Some(v) = self.protocol_version.read().as_deref() {
            builder = builder.header(VERSION_HEADER, v);
        }
        builder
    }

    async fn post(&self, out: &ToServer, may_fall_back: bool) -> PostResult {
        let mut builder = self
            .request(self.http.client.post(self.http.target.url.clone()))
            .await
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(out.text.clone());
        if let Some(sessionless) = &self.sessionless {
            builder = builder.header(METHOD_HEADER, sessionless.method.as_str());
            if let Some(name) = &sessionless.name {
                if let Ok(value) = HeaderValue::from_str(&encode_header_value(name)) {
                    builder = builder.header(NAME_HEADER, value);
                }
            }
            for (name, value) in &sessionless.params {
                if let Ok(value) = HeaderValue::from_str(value) {
                    builder = builder.header(name.as_str(), value);
                }
            }
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                if may_fall_back {
                    // A connection failure is not a refusal: report it, do not guess.
                    tracing::warn!(error = %e, "cannot reach the upstream");
                }
                self.fail(
                    out,
                    ErrorCode::UpstreamHttp,
                    &format!("Cannot reach the upstream server: {}", without_url(&e)),
                )
                .await;
                return PostResult::Done;
            }
        };
        let status = response.status();
        let is_initialize = out.method == Some(Method::Initialize);
        if is_initialize {
            if let Some(id) = header_text(&response, SESSION_HEADER) {
                *self.session_id.write() = Some(id);
            }
        }
        if status.is_success() {
            self.read_answer(out, response).await;
            if is_initialize && self.sessionless.is_none() {
                if let Some(v) = self.ctx.session.protocol_version() {
                    *self.protocol_version.write() = Some(v);
                }
            }
            return PostResult::Done;
        }
        let body = read_limited(response).await.unwrap_or_default();
        if may_fall_back
            && is_initialize
            && matches!(
                status,
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            )
        {
            return PostResult::Refused;
        }
        let answer = answer_in(&body, out.request);
        let session_lost = matches!(status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST)
            && self.session_id.read().is_some()
            && !is_initialize
            && answer.is_none();
        if session_lost {
            let reason = format!(
                "The upstream session has ended (HTTP {}); reconnect to start a new session",
                status.as_u16()
            );
            *self.gone.write() = Some(reason.clone());
            self.fail(out, ErrorCode::UpstreamGone, &reason).await;
            if self.ctx.end_on_session_loss {
                self.ctx.stop.notify_one();
            }
            return PostResult::Done;
        }
        // A JSON-RPC answer to this request in an error status (2026-07-28 maps error codes
        // to statuses): it is the server's answer, pass it on.
        if let Some(answer) = answer {
            self.ctx.deliver_message(answer).await;
            return PostResult::Done;
        }
        self.fail(out, ErrorCode::UpstreamHttp, &http_failure(status, &body))
            .await;
        PostResult::Done
    }

    async fn fail(&self, out: &ToServer, code: ErrorCode, message: &str) {
        if let Some(id) = out.request {
            self.ctx.fail_request(id, code, message).await;
        } else {
            tracing::warn!(session = %self.ctx.session.id, %message, "the upstream refused a message");
        }
    }

    async fn read_answer(&self, out: &ToServer, response: Response) {
        let content_type = header_text(&response, CONTENT_TYPE.as_str()).unwrap_or_default();
        if content_type.starts_with("text/event-stream") {
            let answered = self.read_events(response, out.request).await;
            if out.is_request() && !answered {
                self.fail(
                    out,
                    ErrorCode::UpstreamHttp,
                    "The upstream server closed the response stream before answering",
                )
                .await;
            }
            return;
        }
        let body = match read_limited(response).await {
            Ok(b) => b,
            Err(e) => {
                self.fail(out, ErrorCode::UpstreamHttp, &e).await;
                return;
            }
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            if out.is_request() {
                self.fail(
                    out,
                    ErrorCode::UpstreamHttp,
                    "The upstream server sent an empty answer",
                )
                .await;
            }
            return;
        }
        if content_type.starts_with("application/json")
            || serde_json::from_slice::<serde_json::Value>(&body).is_ok()
        {
            self.deliver_json(&body).await;
        } else if out.is_request() {
            self.fail(
                out,
                ErrorCode::UpstreamHttp,
                "The upstream server's answer is not JSON",
            )
            .await;
        }
    }

    /// A JSON body: one message or a batch of them.
    async fn deliver_json(&self, body: &[u8]) {
        let Ok(text) = std::str::from_utf8(body) else {
            return;
        };
        let text = text.trim();
        if text.starts_with('[') {
            if let Ok(items) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) {
                for item in items {
                    self.ctx.deliver(item.get().to_string()).await;
                }
            }
            return;
        }
        self.ctx.deliver(text.to_string()).await;
    }

    /// Reads an SSE stream to its end; returns whether the answer to `id` was among it.
    async fn read_events(&self, response: Response, id: Option<u64>) -> bool {
        let wanted = id.map(|id| id.to_string());
        let mut answered = false;
        let mut parser = EventParser::new(MAX_UPSTREAM_MESSAGE_BYTES);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            for event in parser.feed(&chunk) {
                if event.event != "message" || event.data.trim().is_empty() {
                    continue;
                }
                let Some(message) = ServerMessage::read(event.data) else {
                    tracing::warn!(session = %self.ctx.session.id, "dropped an event from the upstream that is not JSON-RPC");
                    continue;
                };
                if wanted.as_deref().is_some_and(|key| message.answers(key)) {
                    answered = true;
                }
                self.ctx.deliver_message(message).await;
            }
            if answered {
                // The answer is the last message that belongs to this request.
                break;
            }
        }
        answered
    }

    /// The GET stream: server-initiated messages, reconnected (with `Last-Event-ID`) while
    /// the session lives.
    async fn get_loop(&self) {
        let mut failures = 0u32;
        let mut last_event_id: Option<String> = None;
        while failures < GET_STREAM_ATTEMPTS && !self.get_disabled.load(Ordering::Relaxed) {
            if self.gone.read().is_some() {
                return;
            }
            let mut builder = self
                .request(self.http.client.get(self.http.target.url.clone()))
                .await
                .header(ACCEPT, "text/event-stream");
            if let Some(id) = &last_event_id {
                builder = builder.header("last-event-id", id.as_str());
            }
            let response = match builder.send().await {
                Ok(r) => r,
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_IMPLEMENTED {
                // The server offers no GET stream.
                return;
            }
            if status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST {
                if self.session_id.read().is_some() {
                    let reason = format!(
                        "The upstream session has ended (HTTP {}); reconnect to start a new session",
                        status.as_u16()
                    );
                    *self.gone.write() = Some(reason);
                    if self.ctx.end_on_session_loss {
                        self.ctx.stop.notify_one();
                    }
                }
                return;
            }
            if !status.is_success() {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                continue;
            }
            failures = 0;
            let mut parser = EventParser::new(MAX_UPSTREAM_MESSAGE_BYTES);
            let mut stream = response.bytes_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                for event in parser.feed(&chunk) {
                    if event.event == "message" && !event.data.trim().is_empty() {
                        self.ctx.deliver(event.data).await;
                    }
                }
            }
            last_event_id = parser.last_event_id.clone();
            let wait = parser.retry_ms.unwrap_or(1000).min(30_000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            failures += 1;
        }
    }

    /// Ends the upstream session (servers that keep none answer 405; that is fine).
    async fn delete(&self) {
        if self.session_id.read().is_none() || self.gone.read().is_some() {
            return;
        }
        let request = self
            .request(self.http.client.delete(self.http.target.url.clone()))
            .await;
        match tokio::time::timeout(Duration::from_secs(5), request.send()).await {
            Ok(Ok(r)) => tracing::debug!(status = %r.status(), "upstream session deleted"),
            Ok(Err(e)) => {
                tracing::debug!(error = %without_url(&e), "DELETE of the upstream session failed")
            }
            Err(_) => tracing::debug!("DELETE of the upstream session timed out"),
        }
    }
}

fn header_text(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// A body, bounded.
pub(super) async fn read_limited(response: Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| format!("Reading the upstream answer failed: {}", without_url(&e)))?;
        if body.len() + chunk.len() > MAX_UPSTREAM_MESSAGE_BYTES {
            return Err("The upstream answer is too large".to_string());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The JSON-RPC answer to the request minted `id` when an error-status body is one (an error
/// with `id: null` is the transport refusing the message, not an answer).
fn answer_in(body: &[u8], id: Option<u64>) -> Option<ServerMessage> {
    let text = std::str::from_utf8(body).ok()?;
    let message = ServerMessage::read(text.to_string())?;
    message.answers(&id?.to_string()).then_some(message)
}

/// A reqwest error without its URL (which may carry credentials in its query).
pub(super) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<upstream>");
    }
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        format!("connection failed ({text})")
    } else {
        text
    }
}

/// A header value as the 2026-07-28 transport writes it: printable ASCII as is, anything
/// else base64-wrapped (`=?base64?…?=`).
pub(crate) fn encode_header_value(value: &str) -> String {
    use base64::Engine as _;
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// The inverse of [`encode_header_value`]; `None` for a malformed sentinel.
pub(crate) fn decode_header_value(value: &str) -> Option<String> {
    use base64::Engine as _;
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    String::from_utf8(bytes).ok()
}
