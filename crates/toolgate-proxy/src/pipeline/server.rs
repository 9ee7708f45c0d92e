//! Messages from the server: answers to the client's requests are matched to what toolgate
//! follows (calls settle, tool lists are filtered, `initialize` is adjusted); everything else
//! — server requests, notifications, progress — goes to the client as it came. Answers come
//! back under ids the gateway minted (`upstream_ids.rs`) and leave with the client's own id;
//! an answer under any other id is dropped.

use std::sync::Arc;

use crate::audit::{AuditEvent, DroppedMessage};
use crate::envelope::Kind;
use crate::gateway::Gateway;
use crate::message::{Route, ServerMessage, ToClient};
use crate::session::{InFlight, Session};
use crate::upstream_ids::{Answer, Pending};
use crate::wire::{self, ErrorCode};

use super::call_end::{CallEnd, ServerAnswer};

use super::initialize::patch_initialize_result;
use super::redact_result::{redact_answer, RedactionOutcome};
use super::tools_list::filter_tools_page_hiding;
use crate::idempotency::KeptAnswer;

impl Gateway {
    /// Handles one message from the server: reads it (the one read of its text) and routes it.
    pub async fn from_server(self: &Arc<Self>, session: &Arc<Session>, text: String) {
        if text.trim().is_empty() {
            return;
        }
        match ServerMessage::read(text) {
            Some(message) => self.from_server_message(session, message).await,
            None => {
                // Servers that log to stdout: never let that reach the client as protocol.
                tracing::warn!(session = %session.id, "dropped a non-JSON-RPC line from the server");
            }
        }
    }

    /// Handles one message from the server, already read by its transport.
    pub async fn from_server_message(
        self: &Arc<Self>,
        session: &Arc<Session>,
        message: ServerMessage,
    ) {
        self.from_upstream(session, message, false).await;
    }

    /// An answer from a gateway behind this one (a server's own, behind a gateway config)
    /// that refused the call itself: it never ran, so what this gateway reserved for it is
    /// given back, as on a JSON-RPC error.
    pub async fn from_server_refused(self: &Arc<Self>, session: &Arc<Session>, text: String) {
        if let Some(message) = ServerMessage::read(text) {
            self.from_upstream(session, message, true).await;
        }
    }

    async fn from_upstream(
        self: &Arc<Self>,
        session: &Arc<Session>,
        message: ServerMessage,
        refused_downstream: bool,
    ) {
        if message.kind() != Some(Kind::Response) {
            return session.send_to_client(ToClient::relay(message)).await;
        }
        let (Some(id), Some(key)) = (message.id(), message.answer_key()) else {
            return;
        };
        let answer = session.state.lock().upstream_ids.answer(key);
        let (client_id, key) = match answer {
            Answer::Pending(Pending::Internal(waiter)) => {
                // An answer to toolgate's own request: never the client's business.
                let _ = waiter.send(message);
                return;
            }
            Answer::Pending(Pending::Client { id, key, span }) => {
                if let Some(span) = span {
                    self.finish_request_span(session, *span, &message);
                }
                (id, key)
            }
            Answer::Ended { tool } => {
                return self.drop_answer(session, tool, DroppedMessage::LateResult, id)
            }
            Answer::Unknown => {
                return self.drop_answer(session, None, DroppedMessage::UnknownAnswer, id)
            }
        };
        // From here on the answer carries the client's own id.
        let mut error = message.is_error().then(|| message.error_code());
        let with_client_id = || message.with_id(client_id.get());
        let pending = session.state.lock().inflight.remove(&key);
        // Identical calls that waited on this one get its answer after it.
        let mut duplicates = None;
        let text = match pending {
            None | Some(InFlight::Duplicate) => with_client_id(),
            Some(InFlight::Call(mut call)) => {
                // A guard, not a clone: on every answered call, and not held past this line.
                let redacted = redact_answer(&self.policy.load(), &call.tool, message.result());
                let replacement = redacted.and_then(|r| {
                    if !r.counts.is_empty() {
                        let extras = call.extras_mut();
                        extras.redactions = Some(r.counts);
                        extras.withheld_by = r.withheld_by;
                    }
                    r.replacement
                });
                if let Some((key, window_ms)) = call.idempotency() {
                    // Duplicates get what this caller gets, redactions included.
                    duplicates =
                        Some((key, window_ms, kept_answer(&message, replacement.as_ref())));
                }
                let answer = if refused_downstream {
                    ServerAnswer::RefusedDownstream
                } else {
                    ServerAnswer::of(message.is_error(), message.result())
                };
                self.end_call(session, None, call, CallEnd::Answered(answer))
                    .await;
                match &replacement {
                    Some(result) => replace_result(client_id.get(), result),
                    None => with_client_id(),
                }
            }
            Some(InFlight::ResourcesRead) => {
                match redact_answer(&self.policy.load(), "*", message.result()) {
                    Some(r) => {
                        self.audit_resource_redaction(session, &r);
                        match r.replacement {
                            Some(result) => replace_result(client_id.get(), &result),
                            None => with_client_id(),
                        }
                    }
                    None => with_client_id(),
                }
            }
            Some(InFlight::ToolsList) => match message.result() {
                Some(result) => {
                    let policy = self.policy.load_full();
                    let page = serde_json::from_str(result).ok();
                    if let Some(page) = &page {
                        self.learn_from_page(page, &policy).await;
                    }
                    let filtered = page.and_then(|page| {
                        filter_tools_page_hiding(page, &policy, |tool| !self.shows(tool, &policy))
                    });
                    match filtered {
                        Some(page) => {
                            session
                                .state
                                .lock()
                                .listed_tools
                                .get_or_insert_with(Vec::new)
                                .extend(page.listed);
                            match page.rewritten {
                                Some(result) => replace_result(client_id.get(), &result),
                                None => with_client_id(),
                            }
                        }
                        // A result toolgate cannot read might list hidden tools: refuse it.
                        None => {
                            let code = ErrorCode::UpstreamGone;
                            error = Some(Some(code as i64));
                            wire::error_response(
                                Some(&client_id),
                                code,
                                "The server's tools/list result could not be read",
                            )
                        }
                    }
                }
                None => with_client_id(),
            },
            Some(InFlight::PromptsList) => {
                let policy = self.policy.load_full();
                match message
                    .result()
                    .and_then(|r| self.scan_prompts_page(r, &policy))
                {
                    Some(result) => replace_result(client_id.get(), &result),
                    None => with_client_id(),
                }
            }
            Some(InFlight::Initialize) => {
                match message.result().and_then(patch_initialize_result) {
                    Some(mut init) => {
                        session.state.lock().protocol_version = init.protocol_version.take();
                        let policy = self.policy.load_full();
                        let instructions = init.instructions();
                        let poisoned = self.instructions_poisoned(instructions, &policy);
                        let drifted = self.pins_kept()
                            && self.check_instructions_pin(instructions, &policy).await;
                        if poisoned || drifted {
                            init.withhold_instructions();
                        }
                        match init.rewritten() {
                            Some(result) => replace_result(client_id.get(), &result),
                            None => with_client_id(),
                        }
                    }
                    None => with_client_id(),
                }
            }
        };
        let route = Route::Answer { id_key: key, error };
        let answer = ToClient {
            text,
            route,
            unrun: false,
        };
        session.send_to_client(answer).await;
        if let Some((key, window_ms, Some(answer))) = duplicates {
            self.answer_duplicates(key, window_ms, &answer).await;
        }
    }

    /// What the `"*"` redact rules found in a `resources/read` result (a read is not a call,
    /// so it has a line of its own).
    fn audit_resource_redaction(&self, session: &Session, outcome: &RedactionOutcome) {
        if outcome.counts.is_empty() {
            return;
        }
        tracing::info!(session = %session.id, withheld = outcome.withheld_by.is_some(), "redacted a resources/read result");
        self.audit.record(AuditEvent::Redacted {
            session: session.id.clone(),
            identity: session.identity.clone(),
            method: "resources/read",
            redactions: outcome.counts.clone(),
            withheld_by: outcome.withheld_by.clone(),
        });
    }

    /// An answer that no client is waiting for: logged and audited, never relayed.
    fn drop_answer(&self, session: &Session, tool: Option<String>, what: DroppedMessage, id: &str) {
        let reason = match what {
            DroppedMessage::LateResult => "the server answered after the call had ended (timeout or cancellation); the client was already answered".to_string(),
            _ => format!("the server answered with id {} that toolgate never sent or that was already answered", shorten(id)),
        };
        tracing::warn!(session = %session.id, %reason, "dropped a server answer");
        self.audit.record(AuditEvent::Dropped {
            session: session.id.clone(),
            identity: session.identity.clone(),
            tool,
            what,
            reason,
        });
    }
}

/// The answer an identical call gets: the result as this caller got it, or the error.
fn kept_answer(
    message: &ServerMessage,
    replacement: Option<&serde_json::Value>,
) -> Option<KeptAnswer> {
    let (is_error, member) = match (replacement, message.result(), message.error()) {
        (Some(result), _, _) => (false, result.to_string()),
        (None, Some(result), _) => (false, result.to_string()),
        (None, None, Some(error)) => (true, error.to_string()),
        (None, None, None) => return None,
    };
    Some(KeptAnswer {
        is_error,
        member: member.into(),
    })
}

/// At most 64 characters of untrusted text, for logs.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

fn replace_result(id: &str, result: &serde_json::Value) -> String {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}")
}
