//! Streamable HTTP at `/mcp`: POST carries client messages (answered with JSON, or with an
//! SSE stream when server messages must come first or the answer takes long), GET opens the
//! stream for server-initiated messages, DELETE ends the session.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Event;
use axum::response::Response;
use tokio::sync::mpsc;

use super::listener::App;
use super::reply::{self, HttpError};
use super::sessions::{Endpoint, Expected, HttpSession};
use super::sse;
use super::v2026_07_28;
use crate::envelope::{id_key, EnvelopeError, Kind};
use crate::message::{ClientFrame, ClientMessage, Route, ToClient, Unreadable};

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
    /// Whether it names a method (read leniently when the pipeline will refuse it).
    pub has_method: bool,
    pub id_key: Option<String>,
    pub is_request: bool,
    pub progress_token: Option<String>,
}

impl Incoming {
    fn of(message: &Result<ClientMessage, Unreadable>) -> Incoming {
        match message {
            Ok(m) => Incoming {
                method: m.method().map(str::to_string),
                has_method: m.method().is_some(),
                id_key: m.id().map(|id| id_key(id.get())),
                is_request: m.kind() == Kind::Request,
                // Only a request's token names a stream to route by.
                progress_token: (m.kind() == Kind::Request)
                    .then(|| m.progress_token())
                    .flatten(),
            },
            // Refused by the pipeline, which answers with the id it can read (or null).
            Err(u) => Incoming {
                method: None,
                has_method: u.has_method,
                id_key: u.id.as_deref().map(|id| id_key(id.get())),
                is_request: u.kind == Some(Kind::Request),
                progress_token: None,
            },
        }
    }
}

/// What the transport needs to know of a body's messages: one entry per message, and
/// whether the body is a batch.
pub(crate) fn incoming(frame: &ClientFrame) -> Result<(Vec<Incoming>, bool), HttpError> {
    if let Some(error) = unparsable(frame) {
        return Err(error);
    }
    Ok(match frame {
        ClientFrame::Batch(Ok(messages)) => (messages.iter().map(Incoming::of).collect(), true),
        ClientFrame::One(message) => (vec![Incoming::of(message)], false),
        ClientFrame::Empty | ClientFrame::Batch(Err(_)) => (Vec::new(), false),
    })
}

/// A body that is not JSON at all is refused with HTTP 400 (`-32700`); anything that parses
/// goes on, and the pipeline answers what it refuses.
pub(crate) fn unparsable(frame: &ClientFrame) -> Option<HttpError> {
    match frame {
        ClientFrame::Empty => Some(HttpError::Parse("the body is empty".into())),
        ClientFrame::One(Err(u)) if matches!(u.error, EnvelopeError::Parse(_)) => {
            Some(HttpError::Parse(u.error.to_string()))
        }
        ClientFrame::Batch(Err(e)) => Some(HttpError::Parse(e.clone())),
        _ => None,
    }
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
    let result = handle_post(app, Endpoint::Streamable, headers, body).await;
    result.unwrap_or_else(HttpError::into_response)
}

/// POST at `/mcp/<server>`: one server of a gateway config, under its own names.
pub(crate) async fn post_one(
    State(app): State<Arc<App>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = handle_post(app, Endpoint::OneServer(server), headers, body).await;
    result.unwrap_or_else(HttpError::into_response)
}

async fn handle_post(
    app: Arc<App>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let admitted = app.admit(&headers).await?;
    let identity = admitted.identity.clone();
    app.check_endpoint(&endpoint)?;
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
    let frame = ClientFrame::read(read_body(&app, body).await?);
    let (messages, batch) = incoming(&frame)?;
    if messages.is_empty() {
        return Err(HttpError::InvalidRequest("empty batch".into()));
    }
    if let ClientFrame::One(Ok(message)) = &frame {
        v2026_07_28::check_routing_headers(&headers, message)?;
    }
    let session = match header_text(&headers, SESSION_HEADER) {
        Some(id) => {
            let hs = app.session_for(id, &identity, &endpoint)?;
            admitted.apply(&hs.session);
            hs
        }
        None => {
            // The per-request era first: an `initialize` that claims it is not a handshake.
            match &frame {
                ClientFrame::One(Ok(message)) => {
                    if let Some(request) =
                        v2026_07_28::classify(&headers, message, &app.tool_headers)?
                    {
                        return v2026_07_28::handle(
                            &app, admitted, request, frame, accepts, &endpoint,
                        )
                        .await;
                    }
                }
                ClientFrame::One(Err(unreadable)) if v2026_07_28::claims_era(&headers) => {
                    return Err(HttpError::Unreadable(
                        unreadable.error.clone(),
                        unreadable.id.clone(),
                    ));
                }
                _ => {}
            }
            let initialize = messages
                .iter()
                .any(|m| m.method.as_deref() == Some("initialize"));
            if initialize && !batch {
                let hs = app.open_session(identity, endpoint)?;
                admitted.apply(&hs.session);
                return Ok(exchange(&app, hs, frame, &messages, batch, accepts, true).await);
            }
            check_version(&headers)?;
            return Err(HttpError::SessionRequired);
        }
    };
    check_version(&headers)?;
    Ok(exchange(&app, session, frame, &messages, batch, accepts, false).await)
}

/// Feeds a body's messages to the pipeline and answers with what comes back.
async fn exchange(
    app: &Arc<App>,
    hs: Arc<HttpSession>,
    frame: ClientFrame,
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
    if expected.is_empty() && messages.iter().all(|m| m.has_method || m.id_key.is_some()) {
        // Notifications and responses only: accepted, nothing to wait for. A malformed one
        // is refused here with 400, since no stream will carry its error.
        if let ClientFrame::One(Err(unreadable)) = &frame {
            return HttpError::InvalidRequest(unreadable.error.to_string()).into_response();
        }
        app.gateway.from_client_frame(&hs.session, frame).await;
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
    app.gateway.from_client_frame(&hs.session, frame).await;
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
    mut rx: mpsc::Receiver<ToClient>,
    mut pending: HashSet<String>,
    batch: bool,
    accepts: Accepts,
    busy: super::sessions::Busy,
) -> (Response, bool) {
    let deadline = tokio::time::Instant::now() + app.options.json_window;
    let mut collected: Vec<ToClient> = Vec::new();
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
        match &message.route {
            Route::Answer { id_key, error } => {
                any_error |= error.is_some();
                settle_pending(&mut pending, id_key);
                collected.push(message);
                if pending.is_empty() {
                    hs.outbound.close_post(post_id, &mut rx);
                    drop(busy);
                    let mut texts: Vec<String> = collected.into_iter().map(|m| m.text).collect();
                    let body = if batch {
                        format!("[{}]", texts.join(","))
                    } else {
                        texts.pop().unwrap_or_default()
                    };
                    return (
                        reply::json_response(StatusCode::OK, body),
                        any_error && !batch,
                    );
                }
            }
            _ if accepts.sse => {
                collected.push(message);
                break;
            }
            _ => {
                // The client takes JSON only: this message must travel another way.
                hs.outbound.cannot_stream(post_id);
                hs.outbound.deliver(message);
            }
        }
    }
    // Stream: what came so far, then the rest as it comes.
    let (tx, events) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let _busy = busy;
        let mut open = true;
        for message in collected {
            if tx.send(sse::message(&message.text)).await.is_err() {
                open = false;
                break;
            }
        }
        while open && !pending.is_empty() {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(message) => {
                        if let Route::Answer { id_key, .. } = &message.route {
                            settle_pending(&mut pending, id_key);
                        }
                        open = tx.send(sse::message(&message.text)).await.is_ok();
                    }
                    None => break,
                },
                _ = tx.closed() => open = false,
            }
        }
        hs.outbound.close_post(post_id, &mut rx);
    });
    (sse::response(events, app.options.keepalive_interval), false)
}

/// An answer came for `id_key`: the POST no longer waits for it (an error with id null
/// answers a message whose id could not be read, so it ends the wait).
fn settle_pending(pending: &mut HashSet<String>, id_key: &str) {
    if id_key == "null" {
        pending.clear();
    } else {
        pending.remove(id_key);
    }
}

pub(crate) async fn get(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    open_get_stream(app, Endpoint::Streamable, headers).await
}

/// GET at `/mcp/<server>`.
pub(crate) async fn get_one(
    State(app): State<Arc<App>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    open_get_stream(app, Endpoint::OneServer(server), headers).await
}

async fn open_get_stream(app: Arc<App>, endpoint: Endpoint, headers: HeaderMap) -> Response {
    let result = async {
        let identity = app.admit(&headers).await?.identity;
        app.check_endpoint(&endpoint)?;
        if !Accepts::of(&headers).sse {
            return Err(HttpError::NotAcceptable(
                "the GET stream is text/event-stream",
            ));
        }
        let id = header_text(&headers, SESSION_HEADER).ok_or(HttpError::SessionRequired)?;
        let hs = app.session_for(id, &identity, &endpoint)?;
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
    first: Option<Event>,
) -> Response {
    let (stream_id, mut rx) = hs.outbound.open_stream();
    let (tx, events) = mpsc::channel::<Event>(64);
    let app = Arc::clone(app);
    let keepalive = app.options.keepalive_interval;
    tokio::spawn(async move {
        let busy = hs.busy();
        let mut open = match first {
            Some(event) => tx.send(event).await.is_ok(),
            None => true,
        };
        while open {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(message) => open = tx.send(sse::message(&message.text)).await.is_ok(),
                    None => break,
                },
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
    sse::response(events, keepalive)
}

pub(crate) async fn delete(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    end_session(app, Endpoint::Streamable, headers).await
}

/// DELETE at `/mcp/<server>`.
pub(crate) async fn delete_one(
    State(app): State<Arc<App>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    end_session(app, Endpoint::OneServer(server), headers).await
}

async fn end_session(app: Arc<App>, endpoint: Endpoint, headers: HeaderMap) -> Response {
    let result = async {
        let identity = app.admit(&headers).await?.identity;
        let id = header_text(&headers, SESSION_HEADER).ok_or(HttpError::SessionRequired)?;
        let hs = app.session_for(id, &identity, &endpoint)?;
        app.end_session(&hs.id, "the client ended it").await;
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        Ok(response)
    }
    .await;
    result.unwrap_or_else(HttpError::into_response)
}
