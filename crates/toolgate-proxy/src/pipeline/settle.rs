//! Settling calls: every reservation ends in a commit or a rollback, whatever happens —
//! an answer, an error, a timeout, a cancellation, or the server going away.
//!
//! The rule: once a call has been forwarded, the server may have run it, so its counters
//! are committed and its approval stays consumed — unless the server answers with a
//! JSON-RPC error, the one answer that says the tool did not run (then the counters are
//! rolled back). A timeout answers the client once; the late answer is dropped
//! (`upstream_ids.rs`). Calls that were never forwarded roll back and give their approval
//! back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use toolgate_state::Ticket;

use super::call_end::CallEnd;
use crate::gateway::Gateway;
use crate::message::{Method, ToClient, ToServer};
use crate::session::{CallInFlight, CallPhase, InFlight, Session};
use crate::wire::{self, ErrorCode};

/// How long answers to calls left in flight may take to reach the client when the server is
/// gone.
const ANSWER_WHEN_GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

impl Gateway {
    pub(crate) async fn commit(&self, ticket: &Ticket) {
        if ticket.taken.is_empty() {
            return;
        }
        if let Err(e) = self.store.commit(ticket).await {
            tracing::warn!(error = %e, "committing a reservation failed");
        }
    }

    pub(crate) async fn rollback(&self, ticket: &Ticket) {
        if ticket.taken.is_empty() {
            return;
        }
        if let Err(e) = self.store.rollback(ticket).await {
            tracing::warn!(error = %e, "rolling back a reservation failed; the quota stays used");
        }
    }

    /// The server is gone: every request waiting for it is answered with an error. Calls
    /// already forwarded count (the server may have run them); the rest are given back.
    pub async fn upstream_gone(&self, session: &Session, reason: &str) {
        let (entries, waiting) = {
            let mut state = session.state.lock();
            let entries: Vec<(String, InFlight)> = state.inflight.drain().collect();
            (entries, state.upstream_ids.drain_clients())
        };
        let mut ids: HashMap<String, Box<RawValue>> = waiting.into_iter().collect();
        let mut answers = Vec::new();
        for (key, entry) in entries {
            // A call's id as the client wrote it; one not minted yet is read back from its key.
            let id = ids
                .remove(&key)
                .or_else(|| RawValue::from_string(key.clone()).ok());
            let InFlight::Call(call) = entry else {
                answers.extend(id.map(|id| gone_answer(&id, reason)));
                continue;
            };
            // A call its client cancelled is not answered.
            let id = id.filter(|_| call.phase != CallPhase::CancelledAfterForward);
            let end = CallEnd::UpstreamGone(reason.to_string());
            answers.extend(self.end_call(session, id.as_deref(), call, end).await);
        }
        answers.extend(ids.values().map(|id| gone_answer(id, reason)));
        // A client that does not read must not hold up shutdown: the answers get a few
        // seconds in all, then the rest are dropped.
        let deadline = tokio::time::Instant::now() + ANSWER_WHEN_GONE_WITHIN;
        for answer in answers {
            if tokio::time::timeout_at(deadline, session.send_to_client(answer))
                .await
                .is_err()
            {
                tracing::warn!(session = %session.id, "the client is not reading; dropped the remaining answers");
                break;
            }
        }
    }

    /// Ends calls that have waited past their deadline: timeouts, and cancelled calls whose
    /// grace period passed without a result. Both count: they were forwarded. A timed-out
    /// call is answered here, once; whatever the server sends later is dropped.
    pub async fn expire_calls(self: &Arc<Self>, session: &Session) {
        let now = Instant::now();
        let expired: Vec<(CallInFlight, Option<u64>, Option<Box<RawValue>>)> = {
            let mut state = session.state.lock();
            let keys: Vec<String> = state
                .inflight
                .iter()
                .filter(|(_, e)| matches!(e, InFlight::Call(c) if c.deadline <= now && matches!(c.phase, CallPhase::Forwarded | CallPhase::CancelledAfterForward)))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| match state.inflight.remove(&k) {
                    Some(InFlight::Call(c)) => {
                        let client_id = RawValue::from_string(k.clone()).ok();
                        let upstream = state.upstream_ids.end_client(&k, Some(c.tool.clone()));
                        Some((c, upstream, client_id))
                    }
                    _ => None,
                })
                .collect()
        };
        for (call, upstream, client_id) in expired {
            // A cancelled call's grace ran out: the client was told nothing more would come,
            // and the server was already told to cancel.
            if call.phase == CallPhase::CancelledAfterForward {
                self.end_call(session, None, call, CallEnd::CancelledAfterForward)
                    .await;
                continue;
            }
            let end = CallEnd::Timeout(self.options.call_timeout);
            if let Some(answer) = self
                .end_call(session, client_id.as_deref(), call, end)
                .await
            {
                session.send_to_client(answer).await;
            }
            if let Some(upstream) = upstream {
                let _ = session
                    .send_to_server(ToServer::notification(
                        wire::cancelled(upstream, "toolgate call timeout"),
                        Method::Cancelled,
                    ))
                    .await;
            }
        }
    }
}

impl Gateway {
    /// Runs [`Gateway::expire_calls`] for `session` twice a second until aborted.
    pub fn spawn_expiry_sweeper(
        self: &Arc<Self>,
        session: &Arc<Session>,
    ) -> tokio::task::JoinHandle<()> {
        let gateway = Arc::clone(self);
        let session = Arc::clone(session);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tick.tick().await;
                gateway.expire_calls(&session).await;
            }
        })
    }
}

/// The answer to a request left waiting when the server went away.
fn gone_answer(id: &RawValue, reason: &str) -> ToClient {
    let code = ErrorCode::UpstreamGone;
    ToClient::error(wire::error_response(Some(id), code, reason), Some(id), code)
}

/// Whether a tool result says `isError: true`, read without parsing the whole result.
pub(super) fn result_is_error(result: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    serde_json::from_str::<Flag>(result)
        .map(|f| f.is_error)
        .unwrap_or(false)
}
