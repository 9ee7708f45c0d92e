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
mod duplicates;
mod initialize;
pub(crate) mod pins;
pub(crate) mod poisoning;
pub mod redact_result;
mod request_span;
mod server;
mod settle;
mod tools_list;

use std::sync::Arc;

use crate::audit::{AuditEvent, DroppedMessage};
use crate::envelope::{EnvelopeError, Kind};
use crate::gateway::Gateway;
use crate::message::{
    ClientFrame, ClientMessage, ClientRequest, Method, ToClient, ToServer, Unreadable,
};
use crate::session::{CallPhase, InFlight, Session};
use crate::strict_json::parse_strict;
use crate::upstream_ids::MintRefusal;
use crate::wire::{self, ErrorCode};
use poisoning::PromptAsked;

pub(crate) use call::counter_records;
pub(crate) use call_end::CallEnd;
pub use initialize::patch_initialize_result;
pub(crate) use request_span::RequestSpan;
pub use tools_list::filter_tools_page;

/// The protocol version in which JSON-RPC batches are part of MCP.
const BATCH_PROTOCOL_VERSION: &str = "2025-03-26";

impl Gateway {
    /// Handles what the client wrote: reads it (the one read of its text) and passes it on.
    pub async fn from_client(self: &Arc<Self>, session: &Arc<Session>, text: String) {
        self.from_client_frame(session, ClientFrame::read(text))
            .await;
    }

    /// Handles what the client wrote, already read by its transport.
    pub async fn from_client_frame(self: &Arc<Self>, session: &Arc<Session>, frame: ClientFrame) {
        match frame {
            ClientFrame::Empty => {}
            ClientFrame::One(Ok(message)) => self.client_message(session, message).await,
            ClientFrame::One(Err(unreadable)) => self.refuse(session, unreadable).await,
            ClientFrame::Batch(batch) => self.batch_from_client(session, batch).await,
        }
    }

    async fn client_message(self: &Arc<Self>, session: &Arc<Session>, message: ClientMessage) {
        let message = match message.into_request() {
            Ok(request) => return self.request_from_client(session, request).await,
            Err(message) => message,
        };
        match (message.kind(), &message.method) {
            // A call without an id can never be answered, so it is never forwarded: it is
            // refused here whatever its params say, and audited.
            (Kind::Notification, Some(Method::ToolsCall)) => {
                self.drop_call_notification(session, message.params());
            }
            (Kind::Notification, Some(Method::Cancelled)) => {
                if let Some(cancel) = self.cancel_from_client(session, message.params()) {
                    self.send_upstream(session, cancel).await;
                }
            }
            (Kind::Notification, Some(method)) => {
                let method = method.clone();
                let out = ToServer::notification(message.into_text(), method);
                self.send_upstream(session, out).await;
            }
            _ => {
                let out = ToServer::response(message.into_text());
                self.send_upstream(session, out).await;
            }
        }
    }

    async fn request_from_client(
        self: &Arc<Self>,
        session: &Arc<Session>,
        mut request: ClientRequest,
    ) {
        if session.state.lock().request_waiting(&request.key) {
            let why = MintRefusal::IdInUse;
            return self.refuse_unforwardable(session, &request, why).await;
        }
        if let Some(names) = session.names.get() {
            request = names.inbound(request);
        }
        let follow = match request.method {
            Method::ToolsCall => return self.call_from_client(session, request).await,
            Method::ToolsList => Some(InFlight::ToolsList),
            Method::Initialize => Some(InFlight::Initialize),
            Method::ResourcesRead if !self.policy.load().redactions_for("*").is_empty() => {
                Some(InFlight::ResourcesRead)
            }
            Method::PromptsList => Some(InFlight::PromptsList),
            Method::PromptsGet => {
                let (code, message) = match self.prompt_asked(&mut request) {
                    PromptAsked::Forward => {
                        return self.forward_followed(session, request, None).await
                    }
                    // As for a hidden tool: the prompt cannot be told from one that does not exist.
                    PromptAsked::Hidden(name) => {
                        (ErrorCode::InvalidParams, format!("Unknown prompt: {name}"))
                    }
                    PromptAsked::Unreadable(why) => {
                        (ErrorCode::InvalidRequest, format!("Invalid request: {why}"))
                    }
                };
                let reply = wire::error_response(Some(&request.id), code, &message);
                let reply = ToClient::error(reply, Some(&request.id), code);
                return session.send_to_client(reply).await;
            }
            _ => None,
        };
        self.forward_followed(session, request, follow).await
    }

    /// Forwards a request, following its answer as `follow` says.
    async fn forward_followed(
        self: &Arc<Self>,
        session: &Arc<Session>,
        request: ClientRequest,
        follow: Option<InFlight>,
    ) {
        if let Some(entry) = follow {
            session
                .state
                .lock()
                .inflight
                .insert(request.key.clone(), entry);
        }
        if let Err(why) = self.forward_request(session, &request).await {
            session.state.lock().inflight.remove(&request.key);
            self.refuse_unforwardable(session, &request, why).await;
        }
    }

    pub(crate) async fn send_upstream(&self, session: &Session, message: ToServer) {
        if !session.send_to_server(message).await {
            tracing::debug!(session = %session.id, "server side closed; message not forwarded");
        }
    }

    /// Sends a client request on to the server under an id the gateway mints (see
    /// `upstream_ids.rs`), unless no id can be minted for it.
    pub(crate) async fn forward_request(
        &self,
        session: &Session,
        request: &ClientRequest,
    ) -> Result<(), MintRefusal> {
        let span = self.start_request_span(request);
        let upstream = {
            let ids = &mut session.state.lock().upstream_ids;
            let upstream = ids.mint_for_client(&request.id, &request.key)?;
            if let Some(span) = span {
                ids.trace(upstream, span);
            }
            upstream
        };
        let text = request.with_id(&upstream.to_string());
        let out = ToServer::request(text, upstream, request.method.clone());
        self.send_upstream(session, out).await;
        Ok(())
    }

    /// Answers a request that cannot go upstream (`-32600`).
    pub(crate) async fn refuse_unforwardable(
        &self,
        session: &Session,
        request: &ClientRequest,
        why: MintRefusal,
    ) {
        let code = ErrorCode::InvalidRequest;
        let reply = wire::error_response(Some(&request.id), code, &why.message());
        session
            .send_to_client(ToClient::error(reply, Some(&request.id), code))
            .await;
    }

    async fn refuse(&self, session: &Session, unreadable: Unreadable) {
        let (code, message) = match &unreadable.error {
            EnvelopeError::Parse(m) => (ErrorCode::Parse, format!("Parse error: {m}")),
            EnvelopeError::Invalid(m) => {
                (ErrorCode::InvalidRequest, format!("Invalid request: {m}"))
            }
        };
        tracing::warn!(session = %session.id, %message, "refused a client message");
        let id = unreadable.id.as_deref();
        let reply = wire::error_response(id, code, &message);
        session
            .send_to_client(ToClient::error(reply, id, code))
            .await;
    }

    /// Batches belong to one protocol version; elsewhere they are refused whole.
    async fn batch_from_client(
        self: &Arc<Self>,
        session: &Arc<Session>,
        batch: Result<Vec<Result<ClientMessage, Unreadable>>, String>,
    ) {
        let refusal = if session.protocol_version().as_deref() != Some(BATCH_PROTOCOL_VERSION) {
            Some((
                ErrorCode::InvalidRequest,
                "Invalid request: JSON-RPC batches are not supported in this protocol version"
                    .to_string(),
            ))
        } else {
            match &batch {
                Err(e) => Some((ErrorCode::Parse, format!("Parse error: {e}"))),
                Ok(elements) if elements.is_empty() => Some((
                    ErrorCode::InvalidRequest,
                    "Invalid request: empty batch".to_string(),
                )),
                Ok(_) => None,
            }
        };
        if let Some((code, message)) = refusal {
            let reply = wire::error_response(None, code, &message);
            return session
                .send_to_client(ToClient::error(reply, None, code))
                .await;
        }
        // Each element goes through the pipeline on its own, exactly as if sent alone.
        for element in batch.unwrap_or_default() {
            match element {
                Ok(message) => Box::pin(self.client_message(session, message)).await,
                Err(unreadable) => self.refuse(session, unreadable).await,
            }
        }
    }

    /// A client cancelled a request. Returns the notification to send upstream, naming the
    /// request by the id the server knows; `None` when nothing upstream is to be cancelled.
    fn cancel_from_client(&self, session: &Session, params: Option<&str>) -> Option<ToServer> {
        let mut params = match params.map(parse_strict) {
            Some(Ok(serde_json::Value::Object(map))) => map,
            _ => return None,
        };
        let request_id = params.get("requestId")?;
        let key = toolgate_policy::canonical::canonical_json(request_id);
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
        let text = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": params,
        })
        .to_string();
        Some(ToServer::notification(text, Method::Cancelled))
    }

    /// An id-less `tools/call`: dropped, and audited as such.
    fn drop_call_notification(&self, session: &Session, params: Option<&str>) {
        let tool = params
            .and_then(|p| parse_strict(p).ok())
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
