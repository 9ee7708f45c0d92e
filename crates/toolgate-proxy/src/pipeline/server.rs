//! Messages from the server: answers to the client's requests are matched to what toolgate
//! follows (calls settle, tool lists are filtered, `initialize` is adjusted); everything else
//! — server requests, notifications, progress — goes to the client as it came.

use std::sync::Arc;

use crate::envelope::{id_key, Envelope, Kind, Strictness};
use crate::gateway::Gateway;
use crate::session::{InFlight, Session};
use crate::wire::{self, ErrorCode};

use super::initialize::patch_initialize_result;
use super::tools_list::filter_tools_page;

impl Gateway {
    /// Handles one message from the server.
    pub async fn from_server(self: &Arc<Self>, session: &Arc<Session>, message: String) {
        let text = message.trim();
        if text.is_empty() {
            return;
        }
        let Ok(envelope) = Envelope::parse(text, Strictness::Lenient) else {
            // Servers that log to stdout: never let that reach the client as protocol.
            let shown: String = text.chars().take(200).collect();
            tracing::warn!(session = %session.id, line = %shown, "dropped a non-JSON-RPC line from the server");
            return;
        };
        if envelope.kind() != Some(Kind::Response) {
            return session.send_to_client(compact(text)).await;
        }
        let Some(id) = envelope.id else { return };
        let key = id_key(id);
        let internal = session.state.lock().internal_requests.remove(&key);
        if let Some(waiter) = internal {
            // An answer to toolgate's own request: never the client's business.
            let _ = waiter.send(text.to_string());
            return;
        }
        let pending = session.state.lock().inflight.remove(&key);
        let reply = match pending {
            None => compact(text),
            Some(InFlight::Call(call)) => {
                self.settle_call(session, call, envelope.error.is_some(), envelope.result)
                    .await;
                compact(text)
            }
            Some(InFlight::ToolsList) => match envelope.result {
                Some(result) => {
                    let policy = self.policy.load_full();
                    if policy.has_category_rules() {
                        self.learn_categories_from_page(result.get());
                    }
                    match filter_tools_page(result.get(), &policy) {
                        Some(page) => {
                            session
                                .state
                                .lock()
                                .listed_tools
                                .get_or_insert_with(Vec::new)
                                .extend(page.listed);
                            match page.rewritten {
                                Some(result) => replace_result(id.get(), &result),
                                None => compact(text),
                            }
                        }
                        // A result toolgate cannot read might list hidden tools: refuse it.
                        None => wire::error_response(
                            Some(id),
                            ErrorCode::UpstreamGone,
                            "The server's tools/list result could not be read",
                        ),
                    }
                }
                None => compact(text),
            },
            Some(InFlight::Initialize) => match envelope
                .result
                .and_then(|r| patch_initialize_result(r.get()))
            {
                Some(init) => {
                    session.state.lock().protocol_version = init.protocol_version;
                    match init.rewritten {
                        Some(result) => replace_result(id.get(), &result),
                        None => compact(text),
                    }
                }
                None => compact(text),
            },
        };
        session.send_to_client(reply).await;
    }
}

fn replace_result(id: &str, result: &serde_json::Value) -> String {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}")
}

fn compact(text: &str) -> String {
    super::compact_line(text)
}
