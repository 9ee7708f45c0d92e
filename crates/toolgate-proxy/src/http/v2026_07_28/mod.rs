//! Requests of the 2026-07-28 protocol era: no `initialize`, no session; each POST carries
//! one request whose protocol version is in `params._meta`, and routing headers
//! (`Mcp-Method`, `Mcp-Name`) that mirror the body.
//!
//! toolgate decides from the body, always. A routing header that disagrees with the body is
//! refused (`-32020`, HTTP 400): an intermediary that routes or logs by header would
//! otherwise see a different call from the one the server runs. In this era the headers are
//! required, not optional, and toolgate is the HTTP server the client talks to (a stdio
//! child never sees them), so it also checks the rest of what the era's HTTP transport
//! demands before anything is forwarded: the per-request `_meta`, the version, and the
//! `Mcp-Param-*` headers of tools it has listed.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::listener::{Admitted, App};
use super::sessions::Endpoint;
mod param_headers;

use super::reply::{self, HttpError};
use super::sse;
use super::streamable_server::{Accepts, KNOWN_VERSIONS, VERSION_HEADER};
use super::upstream::SessionlessRequest;
use crate::envelope::Kind;
use crate::message::{ClientFrame, ClientMessage, Route, ToClient};
use param_headers::upstream_params;
pub(crate) use param_headers::ToolHeaders;

const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// `params._meta` key of a request's protocol version.
const VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// `params._meta` key of the client's capabilities, required on every request of the era.
const CAPABILITIES_META_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The first protocol version of the per-request era.
const FIRST_SESSIONLESS_VERSION: &str = "2026-07-28";

fn is_sessionless_version(v: &str) -> bool {
    v.len() == FIRST_SESSIONLESS_VERSION.len() && v >= FIRST_SESSIONLESS_VERSION
}

/// The body parameter each name-bearing method mirrors into `Mcp-Name`.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// What the era's checks read of a request: its id, method and params (the params as the
/// strict reader read them, which the pipeline then reuses).
struct Body<'a> {
    id: Option<Value>,
    method: Option<&'a str>,
    params: Option<&'a Value>,
}

fn read(message: &ClientMessage) -> Body<'_> {
    Body {
        id: message
            .id()
            .and_then(|id| serde_json::from_str(id.get()).ok()),
        method: message.method(),
        params: message.strict_params().and_then(|p| p.as_ref().ok()),
    }
}

/// Whether the request's `MCP-Protocol-Version` header names a version of the era.
pub(crate) fn claims_era(headers: &HeaderMap) -> bool {
    headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| is_sessionless_version(v.trim()))
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
pub(crate) fn check_routing_headers(
    headers: &HeaderMap,
    message: &ClientMessage,
) -> Result<(), HttpError> {
    // Most requests carry none of the headers: then there is nothing to read.
    if [METHOD_HEADER, NAME_HEADER, VERSION_HEADER]
        .iter()
        .all(|h| !headers.contains_key(*h))
    {
        return Ok(());
    }
    let body = read(message);
    let mismatch = |m: String| HttpError::HeaderMismatch(m, body.id.clone());
    let method_header = single(headers, METHOD_HEADER).map_err(mismatch)?;
    let name_header = single(headers, NAME_HEADER).map_err(mismatch)?;
    let version_header = single(headers, VERSION_HEADER).map_err(mismatch)?;
    if let Some(h) = method_header {
        if Some(h) != body.method {
            return Err(mismatch(format!(
                "Mcp-Method header {h:?} does not match the request body's method"
            )));
        }
    }
    if let Some(h) = name_header {
        let key = body.method.and_then(name_key);
        let in_body = key.and_then(|k| body.params?.get(k)?.as_str());
        let decoded = super::upstream::decode_header_value(h);
        if in_body.is_none() || decoded.as_deref() != in_body {
            return Err(mismatch(format!(
                "Mcp-Name header does not match the request body's {:?} parameter",
                key.unwrap_or("name")
            )));
        }
    }
    if let (Some(h), Some(v)) = (version_header, meta_version(body.params)) {
        if h != v {
            return Err(mismatch(
                "MCP-Protocol-Version header does not match the request's protocol version"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

/// The per-request-era versions toolgate relays.
pub(crate) fn sessionless_versions() -> Vec<&'static str> {
    KNOWN_VERSIONS
        .iter()
        .copied()
        .filter(|v| is_sessionless_version(v))
        .collect()
}

/// Decides whether a POST without a session belongs to the per-request era: its
/// `MCP-Protocol-Version` header names a version of that era, or its `params._meta` names a
/// version at all. `Ok(None)` when it does not (the caller treats it as the handshake era).
///
/// A request of the era is then checked, in the order the era's transport prescribes, and
/// refused with the request's id before anything is forwarded:
/// 1. `params._meta` carries the protocol version and the client capabilities (`-32602`);
/// 2. `MCP-Protocol-Version`, `Mcp-Method` and, for a call that names something, `Mcp-Name`
///    are present and mirror the body, and so do the `Mcp-Param-*` headers of a tool toolgate
///    has listed (`-32020`);
/// 3. the version is one toolgate relays (`-32022`, naming those it does);
/// 4. the method exists in the era (`initialize` does not: `-32601`).
pub(crate) fn classify(
    headers: &HeaderMap,
    message: &ClientMessage,
    tools: &ToolHeaders,
) -> Result<Option<SessionlessRequest>, HttpError> {
    let body = read(message);
    let header = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let meta = body.params.and_then(|p| p.get("_meta"));
    let meta_version = meta.and_then(|m| m.get(VERSION_META_KEY));
    if !(header.is_some_and(is_sessionless_version) || meta_version.is_some()) {
        return Ok(None);
    }
    let Some(method) = body.method.map(str::to_string) else {
        return Ok(None);
    };
    let name = name_key(&method).and_then(|k| body.params?.get(k)?.as_str().map(str::to_string));
    let Some(id) = body.id.clone() else {
        // A notification: nothing in this era acts on one (the caller acknowledges it).
        let version = header.unwrap_or_default().to_string();
        return Ok(Some(SessionlessRequest {
            protocol_version: version,
            method,
            name,
            params: Vec::new(),
        }));
    };
    let id = Some(id);

    let meta = meta.and_then(Value::as_object);
    let missing: Vec<&str> = [VERSION_META_KEY, CAPABILITIES_META_KEY]
        .into_iter()
        .filter(|k| !meta.is_some_and(|m| m.contains_key(*k)))
        .collect();
    if !missing.is_empty() {
        return Err(HttpError::InvalidParams(
            format!(
                "Invalid params: params._meta must carry {}",
                missing.join(" and ")
            ),
            id,
        ));
    }
    let Some(version) = meta_version.and_then(Value::as_str) else {
        return Err(HttpError::InvalidParams(
            format!("Invalid params: {VERSION_META_KEY} must be a string"),
            id,
        ));
    };
    let mismatch = |m: String| HttpError::HeaderMismatch(m, id.clone());
    if header != Some(version) {
        return Err(mismatch(
            "MCP-Protocol-Version header is required and must match params._meta".to_string(),
        ));
    }
    if single(headers, METHOD_HEADER).map_err(mismatch)? != Some(method.as_str()) {
        return Err(mismatch(
            "Mcp-Method header is required and must match the request body's method".to_string(),
        ));
    }
    if let (Some(key), Some(_)) = (name_key(&method), &name) {
        if single(headers, NAME_HEADER).map_err(mismatch)?.is_none() {
            return Err(mismatch(format!(
                "Mcp-Name header is required when the request body has {key:?}"
            )));
        }
    }
    let mut params = Vec::new();
    if let (true, Some(tool)) = (method == "tools/call", &name) {
        let arguments = body.params.and_then(|p| p.get("arguments"));
        tools.check(headers, tool, arguments).map_err(mismatch)?;
        params = upstream_params(tools, headers, tool, arguments);
    }
    if !sessionless_versions().contains(&version) {
        return Err(HttpError::UnsupportedProtocolVersion(
            version.to_string(),
            id,
        ));
    }
    if method == "initialize" {
        return Err(HttpError::MethodNotFound(
            format!("Method not found: initialize is not part of protocol {version}"),
            id,
        ));
    }
    Ok(Some(SessionlessRequest {
        protocol_version: version.to_string(),
        method,
        name,
        params,
    }))
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
    admitted: Admitted,
    request: SessionlessRequest,
    frame: ClientFrame,
    accepts: Accepts,
    endpoint: &Endpoint,
) -> Result<Response, HttpError> {
    let ClientFrame::One(Ok(message)) = &frame else {
        return Ok(reply::accepted());
    };
    if message.kind() != Kind::Request {
        // No client notification means anything without a session in this era.
        return Ok(reply::accepted());
    }
    let meta = read(message)
        .params
        .and_then(|p| p.get("_meta"))
        .cloned()
        .unwrap_or_default();
    let method = request.method.clone();
    let (session, mut client_rx, link) = app
        .open_single_exchange(admitted.identity.clone(), request, endpoint, meta)
        .await?;
    admitted.apply(&session);
    app.gateway.from_client_frame(&session, frame).await;
    let mut notes: Vec<ToClient> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let answer = loop {
        tokio::select! {
            m = client_rx.recv() => match m {
                Some(m) if m.is_answer() => break Some(m),
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
    if method == "tools/list" {
        app.tool_headers.learn(&answer.text);
    }
    if !notes.is_empty() && accepts.sse {
        let (tx, rx) = tokio::sync::mpsc::channel(notes.len() + 1);
        for n in notes.iter().chain(std::iter::once(&answer)) {
            let _ = tx.try_send(sse::message(&n.text));
        }
        return Ok(sse::response(rx, app.options.keepalive_interval));
    }
    let status = match answer.route {
        Route::Answer {
            error: Some(Some(code)),
            ..
        } => status_of(code),
        _ => StatusCode::OK,
    };
    Ok(reply::json_response(status, answer.text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    const V: &str = FIRST_SESSIONLESS_VERSION;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn meta(version: &str) -> Value {
        json!({VERSION_META_KEY: version, CAPABILITIES_META_KEY: {}})
    }

    fn classify_json(h: &HeaderMap, body: Value) -> Result<Option<SessionlessRequest>, HttpError> {
        let message = ClientMessage::read(body.to_string()).unwrap();
        classify(h, &message, &ToolHeaders::default())
    }

    #[test]
    fn handshake_era_messages_are_not_this_era() {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert!(classify_json(&HeaderMap::new(), body.clone())
            .unwrap()
            .is_none());
        let h = headers(&[("mcp-protocol-version", "2025-06-18")]);
        assert!(classify_json(&h, body).unwrap().is_none());
    }

    #[test]
    fn a_well_formed_request_passes() {
        let h = headers(&[
            ("mcp-protocol-version", V),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ]);
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": "echo", "_meta": meta(V)}});
        let request = classify_json(&h, body).unwrap().unwrap();
        assert_eq!(request.method, "tools/call");
        assert_eq!(request.name.as_deref(), Some("echo"));
        assert_eq!(request.protocol_version, V);
    }

    #[test]
    fn missing_meta_is_invalid_params() {
        let h = headers(&[
            ("mcp-protocol-version", V),
            ("mcp-method", "server/discover"),
        ]);
        let body = json!({"jsonrpc": "2.0", "id": 101, "method": "server/discover", "params": {}});
        match classify_json(&h, body) {
            Err(HttpError::InvalidParams(_, id)) => assert_eq!(id, Some(json!(101))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routing_headers_are_required() {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "echo", "_meta": meta(V)}});
        for h in [
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
            headers(&[("mcp-protocol-version", V), ("mcp-name", "echo")]),
            headers(&[("mcp-protocol-version", V), ("mcp-method", "tools/call")]),
        ] {
            assert!(
                matches!(
                    classify_json(&h, body.clone()),
                    Err(HttpError::HeaderMismatch(..))
                ),
                "{h:?}"
            );
        }
    }

    #[test]
    fn unknown_versions_and_handshake_methods_are_refused() {
        let h = headers(&[
            ("mcp-protocol-version", "v999"),
            ("mcp-method", "server/discover"),
        ]);
        let body = json!({"jsonrpc": "2.0", "id": 301, "method": "server/discover",
                          "params": {"_meta": meta("v999")}});
        match classify_json(&h, body) {
            Err(HttpError::UnsupportedProtocolVersion(v, id)) => {
                assert_eq!(v, "v999");
                assert_eq!(id, Some(json!(301)));
            }
            other => panic!("{other:?}"),
        }
        let h = headers(&[("mcp-protocol-version", V), ("mcp-method", "initialize")]);
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "initialize",
                          "params": {"_meta": meta(V)}});
        assert!(matches!(
            classify_json(&h, body),
            Err(HttpError::MethodNotFound(..))
        ));
    }
}
