//! Requests of the 2026-07-28 protocol era: no `initialize`, no session; each POST carries
//! one request whose protocol version is in `params._meta`, and routing headers
//! (`Mcp-Method`, `Mcp-Name`) that mirror the body.
//!
//! toolgate decides from the body, always. A routing header that disagrees with the body is
//! refused (`-32020`, HTTP 400): an intermediary that routes or logs by header would
//! otherwise see a different call from the one the server runs.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::listener::App;
use super::reply::{self, HttpError};
use super::sse;
use super::streamable_server::{Accepts, VERSION_HEADER};
use super::upstream::ModernRequest;
use crate::envelope::{Envelope, Kind, Strictness};

const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// `params._meta` key of a request's protocol version.
const VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The first protocol version of the per-request era.
const FIRST_MODERN_VERSION: &str = "2026-07-28";

fn is_modern_version(v: &str) -> bool {
    v.len() == FIRST_MODERN_VERSION.len() && v >= FIRST_MODERN_VERSION
}

/// The body parameter each name-bearing method mirrors into `Mcp-Name`.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

struct Body {
    id: Option<Value>,
    method: Option<String>,
    params: Option<Value>,
}

fn read(text: &str) -> Option<Body> {
    let envelope = Envelope::parse(text, Strictness::Lenient).ok()?;
    Some(Body {
        id: envelope
            .id
            .and_then(|id| serde_json::from_str(id.get()).ok()),
        method: envelope.method.as_deref().map(str::to_string),
        params: envelope
            .params
            .and_then(|p| serde_json::from_str(p.get()).ok()),
    })
}

fn meta_version(params: Option<&Value>) -> Option<&str> {
    params?.get("_meta")?.get(VERSION_META_KEY)?.as_str()
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("{name} header given more than once"));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| format!("{name} header is not readable text")),
    }
}

/// Refuses a single-message POST whose routing headers disagree with its body.
pub(crate) fn check_routing_headers(headers: &HeaderMap, text: &str) -> Result<(), HttpError> {
    let Some(body) = read(text) else {
        return Ok(());
    };
    let mismatch = |m: String| HttpError::HeaderMismatch(m, body.id.clone());
    let method_header = single(headers, METHOD_HEADER).map_err(mismatch)?;
    let name_header = single(headers, NAME_HEADER).map_err(mismatch)?;
    let version_header = single(headers, VERSION_HEADER).map_err(mismatch)?;
    if let Some(h) = method_header {
        if Some(h) != body.method.as_deref() {
            return Err(mismatch(format!(
                "Mcp-Method header {h:?} does not match the request body's method"
            )));
        }
    }
    if let Some(h) = name_header {
        let key = body.method.as_deref().and_then(name_key);
        let in_body = key.and_then(|k| body.params.as_ref()?.get(k)?.as_str());
        let decoded = super::upstream::decode_header_value(h);
        if in_body.is_none() || decoded.as_deref() != in_body {
            return Err(mismatch(format!(
                "Mcp-Name header does not match the request body's {:?} parameter",
                key.unwrap_or("name")
            )));
        }
    }
    if let (Some(h), Some(v)) = (version_header, meta_version(body.params.as_ref())) {
        if h != v {
            return Err(mismatch(
                "MCP-Protocol-Version header does not match the request's protocol version"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

/// A sessionless request of the per-request era, if this is one.
pub(crate) fn classify(headers: &HeaderMap, text: &str) -> Option<ModernRequest> {
    let body = read(text)?;
    let header = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let version = header
        .filter(|v| is_modern_version(v))
        .or_else(|| meta_version(body.params.as_ref()).filter(|v| is_modern_version(v)))?
        .to_string();
    let method = body.method?;
    let name =
        name_key(&method).and_then(|k| body.params.as_ref()?.get(k)?.as_str().map(str::to_string));
    Some(ModernRequest {
        protocol_version: version,
        method,
        name,
    })
}

/// HTTP status of a JSON-RPC error code on this transport.
fn status_of(code: i64) -> StatusCode {
    match code {
        -32700 | -32600 | -32602 | -32020 | -32021 | -32022 => StatusCode::BAD_REQUEST,
        -32601 => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// Sends one request through the pipeline to the upstream and answers with its response
/// (and, on an SSE answer, the notifications that came before it).
pub(crate) async fn handle(
    app: &Arc<App>,
    identity: Option<String>,
    request: ModernRequest,
    text: String,
    accepts: Accepts,
) -> Result<Response, HttpError> {
    let is_request = Envelope::parse(&text, Strictness::Lenient)
        .map(|e| e.kind() == Some(Kind::Request))
        .unwrap_or(false);
    if !is_request {
        // No client notification means anything without a session in this era.
        return Ok(reply::accepted());
    }
    let (session, mut client_rx, link) = app.open_single_exchange(identity, request)?;
    app.gateway.from_client(&session, text).await;
    let mut notes: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let answer = loop {
        tokio::select! {
            m = client_rx.recv() => match m {
                Some(m) if super::sessions::is_response(&m) => break Some(m),
                Some(m) => notes.push(m),
                None => break None,
            },
            _ = tick.tick() => app.gateway.expire_calls(&session).await,
        }
    };
    let grace = app.options.shutdown_grace;
    tokio::spawn(async move { link.close(grace * 3).await });
    let Some(answer) = answer else {
        return Err(HttpError::Upstream(
            "The upstream did not answer".to_string(),
        ));
    };
    if !notes.is_empty() && accepts.sse {
        let (tx, rx) = tokio::sync::mpsc::channel(notes.len() + 1);
        for n in notes.iter().chain(std::iter::once(&answer)) {
            let _ = tx.try_send(sse::message_event(n, None));
        }
        return Ok(reply::sse_response(rx));
    }
    let code = serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| v.get("error")?.get("code")?.as_i64());
    let status = code.map(status_of).unwrap_or(StatusCode::OK);
    Ok(reply::json_response(status, answer))
}
