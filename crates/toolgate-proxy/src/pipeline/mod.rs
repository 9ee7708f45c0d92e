//! The pipeline: the one place where client messages are checked and `tools/call` decided,
//! and server messages routed back — whatever transports sit at either end.
//!
//! A transport hands each framed message to [`Gateway::from_client`] or
//! [`Gateway::from_server`] together with its [`Session`]; the pipeline writes what must be
//! written to the session's channels. Only `tools/call`, `tools/list` and `initialize` are
//! looked into; everything else passes byte for byte.

mod call;
mod categories;
mod initialize;
mod server;
mod settle;
mod tools_list;

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::envelope::{id_key, Envelope, EnvelopeError, Kind, Strictness};
use crate::gateway::Gateway;
use crate::session::{CallPhase, InFlight, Session};
use crate::wire::{self, ErrorCode};

pub(crate) use call::counter_records;
pub use initialize::patch_initialize_result;
pub use tools_list::filter_tools_page;

/// The protocol version in which JSON-RPC batches are part of MCP.
const BATCH_PROTOCOL_VERSION: &str = "2025-03-26";

impl Gateway {
    /// Handles one message from the client.
    pub async fn from_client(self: &Arc<Self>, session: &Arc<Session>, message: String) {
        let text = message.trim();
        if text.is_empty() {
            return;
        }
        if text.starts_with('[') {
            return self.batch_from_client(session, text).await;
        }
        let envelope = match Envelope::parse(text, Strictness::Strict) {
            Ok(e) => e,
            Err(error) => return self.refuse(session, text, error).await,
        };
        let Some(kind) = envelope.kind() else { return };
        let method = envelope.method.as_deref();
        match (kind, method) {
            (Kind::Request, Some(method)) => {
                let Some(id) = envelope.id else { return };
                let key = id_key(id);
                if session.state.lock().inflight.contains_key(&key) {
                    let reply = wire::error_response(
                        Some(id),
                        ErrorCode::InvalidRequest,
                        "request id is already in use by a request in flight",
                    );
                    return session.send_to_client(reply).await;
                }
                match method {
                    "tools/call" => {
                        return self
                            .call_from_client(session, id, key, envelope.params, text)
                            .await
                    }
                    "tools/list" => {
                        session
                            .state
                            .lock()
                            .inflight
                            .insert(key, InFlight::ToolsList);
                    }
                    "initialize" => {
                        session
                            .state
                            .lock()
                            .inflight
                            .insert(key, InFlight::Initialize);
                    }
                    _ => {}
                }
            }
            (Kind::Notification, Some("notifications/cancelled")) => {
                let call_reached_server = self.cancel_from_client(session, envelope.params);
                if !call_reached_server {
                    // Nothing was sent, so there is nothing there to cancel.
                    return;
                }
            }
            _ => {}
        }
        self.forward(session, text).await;
    }

    /// Sends a client message on to the server, one line, as it was written.
    pub(crate) async fn forward(&self, session: &Session, text: &str) {
        if !session.send_to_server(compact_line(text)).await {
            tracing::debug!(session = %session.id, "server side closed; message not forwarded");
        }
    }

    async fn refuse(&self, session: &Session, text: &str, error: EnvelopeError) {
        let (code, message) = match &error {
            EnvelopeError::Parse(m) => (ErrorCode::Parse, format!("Parse error: {m}")),
            EnvelopeError::Invalid(m) => {
                (ErrorCode::InvalidRequest, format!("Invalid request: {m}"))
            }
        };
        tracing::warn!(session = %session.id, %message, "refused a client message");
        // Answer with the request's id when it can be read at all.
        let id = Envelope::parse(text, Strictness::Lenient)
            .ok()
            .and_then(|e| e.id);
        session
            .send_to_client(wire::error_response(id, code, &message))
            .await;
    }

    /// Batches belong to one protocol version; elsewhere they are refused whole.
    async fn batch_from_client(self: &Arc<Self>, session: &Arc<Session>, text: &str) {
        if session.protocol_version().as_deref() != Some(BATCH_PROTOCOL_VERSION) {
            let reply = wire::error_response(
                None,
                ErrorCode::InvalidRequest,
                "Invalid request: JSON-RPC batches are not supported in this protocol version",
            );
            return session.send_to_client(reply).await;
        }
        let elements: Vec<&RawValue> = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let reply =
                    wire::error_response(None, ErrorCode::Parse, &format!("Parse error: {e}"));
                return session.send_to_client(reply).await;
            }
        };
        if elements.is_empty() {
            let reply = wire::error_response(
                None,
                ErrorCode::InvalidRequest,
                "Invalid request: empty batch",
            );
            return session.send_to_client(reply).await;
        }
        // Each element goes through the pipeline on its own, exactly as if sent alone.
        for element in elements {
            Box::pin(self.from_client(session, element.get().to_string())).await;
        }
    }

    /// A client cancelled a request. Returns whether the notification should reach the server.
    fn cancel_from_client(&self, session: &Session, params: Option<&RawValue>) -> bool {
        let Some(request_id) = params
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok())
            .and_then(|p| p.get("requestId").map(|id| id.to_string()))
        else {
            return true;
        };
        let Ok(raw) = serde_json::from_str::<&RawValue>(&request_id) else {
            return true;
        };
        let key = id_key(raw);
        let mut state = session.state.lock();
        match state.inflight.get_mut(&key) {
            Some(InFlight::Call(call)) => match call.phase {
                CallPhase::Admitting => {
                    call.phase = CallPhase::CancelledBeforeForward;
                    false
                }
                CallPhase::Forwarded => {
                    call.phase = CallPhase::CancelledAfterForward;
                    call.deadline = std::time::Instant::now() + self.options.cancel_grace;
                    true
                }
                _ => true,
            },
            _ => true,
        }
    }
}

/// A message bound for a line-framed peer must be one line; text that spans lines (a
/// pretty-printed body from HTTP) is re-serialized compactly.
pub(crate) fn compact_line(text: &str) -> String {
    if !text.contains('\n') && !text.contains('\r') {
        return text.to_string();
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.to_string(),
        Err(_) => text.replace(['\n', '\r'], " "),
    }
}
