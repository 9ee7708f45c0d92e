//! Streamable HTTP at `/mcp`: POST carries client messages (answered with JSON, or with an
//! SSE stream when server messages must come first or the answer takes long), GET opens the
//! stream for server-initiated messages, DELETE ends the session.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::mpsc;

use super::listener::App;
use super::modern;
use super::reply::{self, HttpError};
use super::sessions::{request_progress_token, Expected, HttpSession};
use super::sse;
use crate::envelope::{id_key, Envelope, Kind, Strictness};

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";

/// Protocol versions this listener accepts in `MCP-Protocol-Version`.
pub(crate) const KNOWN_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// What the client accepts in answer to a POST.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accepts {
    pub json: bool,
    pub sse: bool,
}

impl Accepts {
    pub fn of(headers: &HeaderMap) -> Accepts {
        let values: Vec<String> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        if values.is_empty() {
            return Accepts {
                json: true,
                sse: false,
            };
        }
        let any = values.iter().any(|v| v == "*/*");
        Accepts {
            json: any
                || values
                    .iter()
                    .any(|v| v == "application/json" || v == "application/*"),
            sse: values
                .iter()
                .any(|v| v == "text/event-stream" || v == "text/*"),
        }
    }
}

/// One client message of a POST body, as far as the transport needs to know it.
pub(crate) struct Incoming {
    pub method: Option<String>,
    pub id_key: Option<String>,
    pub is_request: bool,
    pub progress_token: Option<String>,
}

/// The messages of a body: one object, or a batch (whose elements the pipeline checks).
pub(crate) fn read_messages(text: &str) -> Result<(Vec<Incoming>, bool), HttpError> {
    let trimmed = text.trim_start();
    let batch = trimmed.starts_with('[');
    let elements: Vec<&serde_json::value::RawValue> = if batch {
        serde_json::from_str(text).map_err(|e| HttpError::Parse(e.to_string()))?
    } else {
        vec![serde_json::from_str(text).map_err(|e| HttpError::Parse(e.to_string()))?]
    };
    let mut out = Vec::with_capacity(elements.len());
    for element in elements {
        match Envelope::parse(element.get(), Strictness::Lenient) {
            Ok(e) => out.push(Incoming {
                method: e.method.as_deref().map(str::to_string),
                is_request: e.kind() == Some(Kind::Request),
                id_key: e.id.map(id_key),
                progress_token: request_progress_token(e.params),
            }),
            // Not an object: the pipeline answers it (with id null).
            Err(_) => out.push(Incoming {
                method: None,
                id_key: None,
                is_request: false,
                progress_token: None,
            }),
        }
    }
    Ok((out, batch))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn check_version(headers: &HeaderMap) -> Result<(), HttpError> {
    match header_text(headers, VERSION_HEADER) {
        Some(v) if !KNOWN_VERSIONS.contains(&v) => {
            Err(HttpError::UnsupportedVersion(v.to_string()))
        }
        _ => Ok(()),
    }
}

/// Reads a request body, within the size limit and the body timeout (a client that sends
/// its body slowly, or never, does not hold a connection for long).
pub(crate) async fn read_body(app: &App, body: Body) -> Result<String, HttpError> {
    let limit = app.options.max_body_bytes;
    let timeout = app.options.body_timeout;
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| HttpError::BodyTimeout(timeout))?
        .map_err(|_| HttpError::TooLarge(limit))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| HttpError::Parse("the body is not UTF-8".into()))
}

pub(crate) async fn post(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match handle_post(app, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle_post(app: Arc<App>, headers: HeaderMap, body: Body) -> Result<Response, HttpError> {
    let identity = app.admit(&headers)?;
    let content_type = header_text(&headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(HttpError::UnsupportedMediaType);
    }
    let accepts = Accepts::of(&headers);
    if !accepts.json && !accepts.sse {
        return Err(HttpError::NotAcceptable(
            "the client must accept application/json or text/event-stream",
        ));
    }
    let text = read_body(&app, body).await?;
    let (messages, batch) = read_messages(&text)?;
    if messages.is_empty() {
        return Err(HttpError::InvalidRequest("empty batch".into()));
    }
    if !batch {
        modern::check_routing_headers(&headers, &text)?;
    }
    let session = match header_text(&headers, SESSION_HEADER) {
        Some(id) => app.session_for(id, &identity, false)?,
        None => {
            // The per-request era first: an `initialize` that claims it is not a handshake.
            if !batch {
                if let Some(request) = modern::classify(&headers, &text, &app.tool_headers)? {
                    return modern::handle(&app, identity, request, text, accepts).await;
                }
            }
            let initialize = messages
                .iter()
                .any(|m| m.method.as_deref() == Some("initialize"));
            if initialize && !batch {
                let hs = app.open_session(identity, false)?;
                return Ok(exchange(&app, hs, text, &messages, batch, accepts, true).await);
            }
            check_version(&headers)?;
            return Err(HttpError::SessionRequired);
        }
    };
    check_version(&headers)?;
    Ok(exchange(&app, session, text, &messages, batch, accepts, false).await)
}

/// Feeds a body's messages to the pipeline and answers with what comes back.
async fn exchange(
    app: &Arc<App>,
    hs: Arc<HttpSession>,
    text: String,
    messages: &[Incoming],
    batch: bool,
    accepts: Accepts,
    new_session: bool,
) -> Response {
    let busy = hs.busy();
    let expected: Vec<Expected> = messages
        .iter()
        .filter(|m| m.is_request)
        .filter_map(|m| {
            m.id_key.clone().map(|id_key| Expected {
                id_key,
                progress_token: m.progress_token.clone(),
            })
        })
        .collect();
    if expected.is_empty()
        && messages
            .iter()
            .all(|m| m.method.is_some() || m.id_key.is_some())
    {
        // Notifications and responses only: accepted, nothing to wait for. A malformed one
        // is refused here with 400, since no stream will carry its error.
        if !batch {
            if let Err(e) = Envelope::parse(&text, Strictness::Strict) {
                return HttpError::InvalidRequest(e.to_string()).into_response();
            }
        }
        app.gateway.from_client(&hs.session, text).await;
        return reply::accepted();
    }
    let (post_id, rx) = match hs.outbound.open_post(&expected, accepts.sse) {
        Ok(p) => p,
        Err(dup) => {
            return HttpError::InvalidRequest(format!(
                "request id {dup} is already in use by a request in flight"
            ))
            .into_response()
        }
    };
    let pending: HashSet<String> = expected.into_iter().map(|e| e.id_key).collect();
    app.gateway.from_client(&hs.session, text).await;
    let (mut response, answered_with_error) = answer(
        app,
        Arc::clone(&hs),
        post_id,
        rx,
        pending,
        batch,
        accepts,
        busy,
    )
    .await;
    if new_session {
        if answered_with_error || response.status() != StatusCode::OK {
            // A failed initialize leaves no session behind.
            app.end_session(&hs.id, "initialize failed").await;
        } else if let Ok(value) = HeaderValue::from_str(&hs.id) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
    }
    response
}

/// Waits for a POST's answers: plain JSON when they come before anything else and within
/// the JSON window; otherwise an SSE stream that carries server messages, keep-alives, and
/// the answers.
#[allow(clippy::too_many_arguments)]
async fn answer(
    app: &Arc<App>,
    hs: Arc<HttpSession>,
    post_id: u64,
    mut rx: mpsc::Receiver<String>,
    mut pending: HashSet<String>,
    batch: bool,
    accepts: Accepts,
    busy: super::sessions::Busy,
) -> (Response, bool) {
    let deadline = tokio::time::Instant::now() + app.options.json_window;
    let mut collected: Vec<String> = Vec::new();
    let mut any_error = false;
    loop {
        let next = if accepts.sse {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            rx.recv().await
        };
        let Some(message) = next else {
            hs.outbound.close_post(post_id, &mut rx);
            return (HttpError::UnknownSession.into_response(), true);
        };
        match answer_key(&message) {
            Some((key, is_error)) => {
                any_error |= is_error;
                if key == "null" {
                    pending.clear();
                } else {
                    pending.remove(&key);
                }
                collected.push(message);
                if pending.is_empty() {
                    hs.outbound.close_post(post_id, &mut rx);
                    drop(busy);
                    let body = if batch {
                        format!("[{}]", collected.join(","))
                    } else {
                        collected.pop().unwrap_or_default()
                    };
                    return (
                        reply::json_response(StatusCode::OK, body),
                        any_error && !batch,
                    );
                }
            }
            None if accepts.sse => {
                collected.push(message);
                break;
            }
            None => {
                // The client takes JSON only: this message must travel another way.
                hs.outbound.cannot_stream(post_id);
                hs.outbound.deliver(message);
            }
        }
    }
    // Stream: what came so far, then the rest as it comes.
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let keepalive = app.options.keepalive_interval;
    tokio::spawn(async move {
        let _busy = busy;
        let mut open = true;
        for message in collected {
            if tx.send(sse::message_event(&message, None)).await.is_err() {
                open = false;
                break;
            }
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        while open && !pending.is_empty() {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(message) => {
                        if let Some((key, _)) = answer_key(&message) {
                            if key == "null" { pending.clear(); } else { pending.remove(&key); }
                        }
                        open = tx.send(sse::message_event(&message, None)).await.is_ok();
                    }
                    None => break,
                },
                _ = tick.tick() => open = tx.send(sse::keepalive()).await.is_ok(),
                _ = tx.closed() => open = false,
            }
        }
        hs.outbound.close_post(post_id, &mut rx);
    });
    (reply::sse_response(body_rx), false)
}

/// The id key of an answer, and whether it is an error.
fn answer_key(message: &str) -> Option<(String, bool)> {
    let e = Envelope::parse(message, Strictness::Lenient).ok()?;
    if e.kind() != Some(Kind::Response)
        && !(e.id.is_some_and(|i| i.get() == "null") && e.error.is_some())
    {
        return None;
    }
    Some((
        e.id.map(id_key).unwrap_or_else(|| "null".into()),
        e.error.is_some(),
    ))
}

pub(crate) async fn get(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let result = async {
        let identity = app.admit(&headers)?;
        if !Accepts::of(&headers).sse {
            return Err(HttpError::NotAcceptable(
                "the GET stream is text/event-stream",
            ));
        }
        let id = header_text(&headers, SESSION_HEADER).ok_or(HttpError::SessionRequired)?;
        let hs = app.session_for(id, &identity, false)?;
        check_version(&headers)?;
        Ok(stream_to_client(&app, hs, None))
    }
    .await;
    result.unwrap_or_else(HttpError::into_response)
}

/// A session's stream for server-initiated messages (the GET stream, or the legacy event
/// stream, which starts with `first` and whose end ends the session).
pub(crate) fn stream_to_client(
    app: &Arc<App>,
    hs: Arc<HttpSession>,
    first: Option<Bytes>,
) -> Response {
    let (stream_id, mut rx) = hs.outbound.open_stream();
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let keepalive = app.options.keepalive_interval;
    let app = Arc::clone(app);
    tokio::spawn(async move {
        let busy = hs.busy();
        let mut open = match first {
            Some(event) => tx.send(event).await.is_ok(),
            None => true,
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        while open {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(message) => open = tx.send(sse::message_event(&message, None)).await.is_ok(),
                    None => break,
                },
                _ = tick.tick() => open = tx.send(sse::keepalive()).await.is_ok(),
                _ = tx.closed() => open = false,
            }
        }
        hs.outbound.close_stream(stream_id);
        drop(busy);
        if hs.legacy {
            // A legacy session lives as long as its event stream.
            app.end_session(&hs.id, "the client closed its event stream")
                .await;
        }
    });
    reply::sse_response(body_rx)
}

pub(crate) async fn delete(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let result = async {
        let identity = app.admit(&headers)?;
        let id = header_text(&headers, SESSION_HEADER).ok_or(HttpError::SessionRequired)?;
        let hs = app.session_for(id, &identity, false)?;
        app.end_session(&hs.id, "the client ended it").await;
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        Ok(response)
    }
    .await;
    result.unwrap_or_else(HttpError::into_response)
}
