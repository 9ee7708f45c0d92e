//! The pipeline: the one place where client messages are checked and `tools/call` decided,
//! and server messages routed back — whatever transports sit at either end.
//!
//! A transport hands each framed message to [`Gateway::from_client`] or
//! [`Gateway::from_server`] together with its [`Session`]; the pipeline writes what must be
//! written to the session's channels. Only `tools/call`, `tools/list` and `initialize` are
//! looked into; everything else passes byte for byte.

mod call;
mod call_end;
mod categories;
mod initialize;
mod server;
mod settle;
mod tools_list;

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::audit::{AuditEvent, DroppedMessage};
use crate::envelope::{id_key, Envelope, EnvelopeError, Kind, Strictness};
use crate::gateway::Gateway;
use crate::session::{CallPhase, InFlight, Session};
use crate::strict_json::parse_strict;
use crate::upstream_ids::{replace_id, MintRefusal};
use crate::wire::{self, ErrorCode};

pub(crate) use call::counter_records;
pub(crate) use call_end::CallEnd;
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
                if session.state.lock().request_waiting(&key) {
                    return self
                        .refuse_unforwardable(session, id, MintRefusal::IdInUse)
                        .await;
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
                            .insert(key.clone(), InFlight::ToolsList);
                    }
                    "initialize" => {
                        session
                            .state
                            .lock()
                            .inflight
                            .insert(key.clone(), InFlight::Initialize);
                    }
                    _ => {}
                }
                if let Err(why) = self.forward_request(session, id, &key, text).await {
                    session.state.lock().inflight.remove(&key);
                    self.refuse_unforwardable(session, id, why).await;
                }
            }
            // A call without an id can never be answered, so it is never forwarded: it is
            // refused here whatever its params say, and audited.
            (Kind::Notification, Some("tools/call")) => {
                self.drop_call_notification(session, envelope.params);
            }
            (Kind::Notification, Some("notifications/cancelled")) => {
                if let Some(cancel) = self.cancel_from_client(session, envelope.params) {
                    self.forward(session, &cancel).await;
                }
            }
            _ => self.forward(session, text).await,
        }
    }

    /// Sends a client message on to the server, one line, as it was written.
    pub(crate) async fn forward(&self, session: &Session, text: &str) {
        self.forward_owned(session, text.to_string()).await;
    }

    async fn forward_owned(&self, session: &Session, text: String) {
        if !session.send_to_server(compact_owned(text)).await {
            tracing::debug!(session = %session.id, "server side closed; message not forwarded");
        }
    }

    /// Sends a client request on to the server under an id the gateway mints (see
    /// `upstream_ids.rs`), unless no id can be minted for it.
    pub(crate) async fn forward_request(
        &self,
        session: &Session,
        id: &RawValue,
        key: &str,
        text: &str,
    ) -> Result<(), MintRefusal> {
        let upstream = session.state.lock().upstream_ids.mint_for_client(id, key)?;
        // `id` may be a copy (calls decided on a task of their own), so the id is found in
        // the text again rather than by position.
        match replace_id(text, id, &upstream.to_string()) {
            Some(rewritten) => self.forward_owned(session, rewritten).await,
            None => {
                // Unreachable for a message the envelope reader accepted; a client id is
                // never forwarded upstream, so the request is refused instead.
                {
                    let mut state = session.state.lock();
                    state.upstream_ids.end_client(key, None);
                    state.inflight.remove(key);
                }
                tracing::error!(session = %session.id, "could not rewrite a request id; not forwarded");
                let reply = wire::error_response(
                    Some(id),
                    ErrorCode::InvalidRequest,
                    "Invalid request: the request could not be forwarded",
                );
                session.send_to_client(reply).await;
            }
        }
        Ok(())
    }

    /// Answers a request that cannot go upstream (`-32600`).
    pub(crate) async fn refuse_unforwardable(
        &self,
        session: &Session,
        id: &RawValue,
        why: MintRefusal,
    ) {
        let reply = wire::error_response(Some(id), ErrorCode::InvalidRequest, &why.message());
        session.send_to_client(reply).await;
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

    /// A client cancelled a request. Returns the notification to send upstream, naming the
    /// request by the id the server knows; `None` when nothing upstream is to be cancelled.
    fn cancel_from_client(&self, session: &Session, params: Option<&RawValue>) -> Option<String> {
        let mut params = match params.map(|p| parse_strict(p.get())) {
            Some(Ok(serde_json::Value::Object(map))) => map,
            _ => return None,
        };
        let request_id = params.get("requestId")?;
        let raw = serde_json::value::to_raw_value(request_id).ok()?;
        let key = id_key(&raw);
        let mut state = session.state.lock();
        if let Some(InFlight::Call(call)) = state.inflight.get_mut(&key) {
            match call.phase {
                CallPhase::Admitting => {
                    // Not sent yet: it never will be, and there is nothing upstream to cancel.
                    call.phase = CallPhase::CancelledBeforeForward;
                    return None;
                }
                CallPhase::Forwarded => {
                    call.phase = CallPhase::CancelledAfterForward;
                    call.deadline = std::time::Instant::now() + self.options.cancel_grace;
                }
                _ => {}
            }
        }
        let upstream = state.upstream_ids.upstream_of(&key)?;
        params.insert("requestId".to_string(), serde_json::Value::from(upstream));
        Some(
            serde_json::json!({
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": params,
            })
            .to_string(),
        )
    }

    /// An id-less `tools/call`: dropped, and audited as such.
    fn drop_call_notification(&self, session: &Session, params: Option<&RawValue>) {
        let tool = params
            .and_then(|p| parse_strict(p.get()).ok())
            .and_then(|p| p.get("name").and_then(|n| n.as_str()).map(str::to_string));
        tracing::warn!(session = %session.id, tool = ?tool, "dropped a tools/call without an id");
        self.audit.record(AuditEvent::Dropped {
            session: session.id.clone(),
            identity: session.identity.clone(),
            tool,
            what: DroppedMessage::CallWithoutId,
            reason: "a tools/call without an id cannot be answered, so it is never forwarded"
                .to_string(),
        });
    }
}

/// A message bound for a line-framed peer must be one line; text that spans lines (a
/// pretty-printed body from HTTP) is re-serialized compactly.
pub(crate) fn compact_line(text: &str) -> String {
    compact_owned(text.to_string())
}

/// [`compact_line`] for text already owned: a one-line message is passed on as it is.
pub(crate) fn compact_owned(text: String) -> String {
    if !text.contains('\n') && !text.contains('\r') {
        return text;
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v.to_string(),
        Err(_) => text.replace(['\n', '\r'], " "),
    }
}
