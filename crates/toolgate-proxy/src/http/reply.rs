//! Every HTTP answer the listener itself writes: one place maps toolgate's refusals to
//! statuses and JSON-RPC error bodies (never HTML, never internals).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::guard::Refusal;

/// What the listener refuses, each with its status.
#[derive(Debug)]
pub(crate) enum HttpError {
    Refused(Refusal),
    /// No `Mcp-Session-Id` where one is required.
    SessionRequired,
    /// The session id is unknown, ended, or belongs to another identity.
    UnknownSession,
    UnsupportedVersion(String),
    /// A 2026-07-28 routing header disagrees with the body.
    HeaderMismatch(String, Option<serde_json::Value>),
    /// A 2026-07-28 request without the per-request `_meta` it needs.
    InvalidParams(String, Option<serde_json::Value>),
    /// A per-request protocol version toolgate does not relay: `-32022`, naming those it
    /// does.
    UnsupportedProtocolVersion(String, Option<serde_json::Value>),
    /// A method that does not exist in the request's protocol era (`initialize` in
    /// 2026-07-28).
    MethodNotFound(String, Option<serde_json::Value>),
    NotAcceptable(&'static str),
    UnsupportedMediaType,
    TooLarge(usize),
    /// The body did not arrive within the body timeout.
    BodyTimeout(std::time::Duration),
    Parse(String),
    InvalidRequest(String),
    /// A single message the strict reader refused, answered with the id it can read.
    Unreadable(
        crate::envelope::EnvelopeError,
        Option<Box<serde_json::value::RawValue>>,
    ),
    /// Session or child-process cap reached.
    Busy(&'static str),
    /// The upstream could not be started.
    Upstream(String),
    /// A refusal with a `WWW-Authenticate` challenge of its own (OAuth: RFC 6750, RFC 9728).
    Challenge {
        status: StatusCode,
        message: String,
        challenge: String,
    },
}

/// JSON-RPC code toolgate uses for the HTTP-level refusal of a 2026-07-28 header mismatch.
pub(crate) const HEADER_MISMATCH: i32 = -32020;
/// JSON-RPC code of a 2026-07-28 request whose protocol version is not served.
pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

impl HttpError {
    pub fn into_response(self) -> Response {
        let (status, code, message, id) = match self {
            HttpError::Refused(refusal) => {
                let status = refusal.status();
                let mut response = error_body(status, -32600, &refusal.message(), None);
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"toolgate\""),
                    );
                }
                return response;
            }
            HttpError::SessionRequired => (
                StatusCode::BAD_REQUEST,
                -32600,
                "Bad Request: Mcp-Session-Id header is required".to_string(),
                None,
            ),
            HttpError::UnknownSession => (
                StatusCode::NOT_FOUND,
                -32001,
                "Session not found".to_string(),
                None,
            ),
            HttpError::UnsupportedVersion(v) => (
                StatusCode::BAD_REQUEST,
                -32600,
                format!("Bad Request: unsupported MCP-Protocol-Version {v:?}"),
                None,
            ),
            HttpError::HeaderMismatch(m, id) => (StatusCode::BAD_REQUEST, HEADER_MISMATCH, m, id),
            HttpError::InvalidParams(m, id) => (StatusCode::BAD_REQUEST, -32602, m, id),
            HttpError::UnsupportedProtocolVersion(requested, id) => {
                let supported = super::v2026_07_28::sessionless_versions();
                let body = json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": UNSUPPORTED_PROTOCOL_VERSION,
                    "message": "Unsupported protocol version",
                    "data": {"supported": supported, "requested": requested},
                }});
                return json_response(StatusCode::BAD_REQUEST, body.to_string());
            }
            HttpError::MethodNotFound(m, id) => (StatusCode::NOT_FOUND, -32601, m, id),
            HttpError::NotAcceptable(m) => (
                StatusCode::NOT_ACCEPTABLE,
                -32600,
                format!("Not Acceptable: {m}"),
                None,
            ),
            HttpError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                -32600,
                "Unsupported Media Type: Content-Type must be application/json".to_string(),
                None,
            ),
            HttpError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                format!("Request body exceeds the {limit} byte limit"),
                None,
            ),
            HttpError::BodyTimeout(limit) => (
                StatusCode::REQUEST_TIMEOUT,
                -32600,
                format!(
                    "The request body did not arrive within {} s",
                    limit.as_secs()
                ),
                None,
            ),
            HttpError::Parse(m) => (
                StatusCode::BAD_REQUEST,
                -32700,
                format!("Parse error: {m}"),
                None,
            ),
            HttpError::InvalidRequest(m) => (
                StatusCode::BAD_REQUEST,
                -32600,
                format!("Invalid request: {m}"),
                None,
            ),
            HttpError::Unreadable(error, id) => {
                let (code, message) = match error {
                    crate::envelope::EnvelopeError::Parse(m) => {
                        (-32700, format!("Parse error: {m}"))
                    }
                    crate::envelope::EnvelopeError::Invalid(m) => {
                        (-32600, format!("Invalid request: {m}"))
                    }
                };
                let id = id.and_then(|id| serde_json::from_str(id.get()).ok());
                (StatusCode::BAD_REQUEST, code, message, id)
            }
            HttpError::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, -32000, m.to_string(), None),
            HttpError::Upstream(m) => (StatusCode::BAD_GATEWAY, -32000, m, None),
            HttpError::Challenge {
                status,
                message,
                challenge,
            } => {
                let mut response = error_body(status, -32600, &message, None);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                return response;
            }
        };
        error_body(status, code, &message, id)
    }
}

fn error_body(
    status: StatusCode,
    code: i32,
    message: &str,
    id: Option<serde_json::Value>,
) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    json_response(status, body.to_string())
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn accepted() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}
