//! Settling calls: every reservation ends in a commit or a rollback, whatever happens —
//! an answer, an error, a timeout, a cancellation, or the server going away.

use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use toolgate_state::Ticket;

use crate::gateway::Gateway;
use crate::session::{CallInFlight, CallPhase, InFlight, Session};
use crate::wire::{self, ErrorCode};

impl Gateway {
    /// The server answered a call.
    pub(crate) async fn settle_call(
        &self,
        session: &Session,
        call: CallInFlight,
        is_error: bool,
        result: Option<&RawValue>,
    ) {
        let tool_error = result.is_some_and(|r| result_is_error(r.get()));
        let counts = !is_error && (!tool_error || self.options.count_error_results);
        if let Some(ticket) = &call.ticket {
            if counts {
                self.commit(ticket).await;
            } else {
                self.rollback(ticket).await;
            }
        }
        if is_error {
            // The server refused the call: the approval it used is usable again, before the
            // client hears of the failure (and retries).
            if let Some(approval) = &call.approval {
                self.release_approval_now(approval).await;
            }
        }
        let outcome = match (is_error, tool_error) {
            (true, _) => "error",
            (false, true) => "tool_error",
            (false, false) => "result",
        };
        self.record_settled(session, call, "allow", None, None, outcome);
    }

    pub(crate) async fn commit(&self, ticket: &Ticket) {
        if let Err(e) = self.store.commit(ticket).await {
            tracing::warn!(error = %e, "committing a reservation failed");
        }
    }

    pub(crate) async fn rollback(&self, ticket: &Ticket) {
        if let Err(e) = self.store.rollback(ticket).await {
            tracing::warn!(error = %e, "rolling back a reservation failed; the quota stays used");
        }
    }

    /// The server is gone: every request in flight is answered with an error and every
    /// reservation given back.
    pub async fn upstream_gone(&self, session: &Session, reason: &str) {
        let pending: Vec<(String, InFlight)> = session.state.lock().inflight.drain().collect();
        for (key, entry) in pending {
            if let InFlight::Call(call) = entry {
                if let Some(ticket) = &call.ticket {
                    self.rollback(ticket).await;
                }
                let answered = call.phase != CallPhase::CancelledAfterForward;
                self.record_settled(
                    session,
                    call,
                    "allow",
                    None,
                    Some(reason.to_string()),
                    "upstream_gone",
                );
                if !answered {
                    continue;
                }
            }
            if let Ok(id) = serde_json::from_str::<&RawValue>(&key) {
                session
                    .send_to_client(wire::error_response(
                        Some(id),
                        ErrorCode::UpstreamGone,
                        reason,
                    ))
                    .await;
            }
        }
    }

    /// Ends calls that have waited past their deadline: timeouts, and cancelled calls whose
    /// grace period passed without a result. Transports call this periodically.
    pub async fn expire_calls(self: &Arc<Self>, session: &Session) {
        let now = Instant::now();
        let expired: Vec<(String, CallInFlight)> = {
            let mut state = session.state.lock();
            let keys: Vec<String> = state
                .inflight
                .iter()
                .filter(|(_, e)| matches!(e, InFlight::Call(c) if c.deadline <= now && c.phase != CallPhase::Admitting))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| match state.inflight.remove(&k) {
                    Some(InFlight::Call(c)) => Some((k, c)),
                    _ => None,
                })
                .collect()
        };
        for (key, call) in expired {
            if let Some(ticket) = &call.ticket {
                self.rollback(ticket).await;
            }
            let cancelled = call.phase == CallPhase::CancelledAfterForward;
            let timeout = self.options.call_timeout;
            self.record_settled(
                session,
                call,
                "allow",
                None,
                None,
                if cancelled { "cancelled" } else { "timeout" },
            );
            if cancelled {
                continue;
            }
            let Ok(id) = serde_json::from_str::<&RawValue>(&key) else {
                continue;
            };
            let message = format!(
                "The server did not answer within {} s; the call's quota was returned",
                timeout.as_secs()
            );
            session
                .send_to_client(wire::error_response(
                    Some(id),
                    ErrorCode::UpstreamTimeout,
                    &message,
                ))
                .await;
            let _ = session
                .send_to_server(wire::cancelled(id, "toolgate call timeout"))
                .await;
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

/// Whether a tool result says `isError: true`, read without parsing the whole result.
fn result_is_error(result: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    serde_json::from_str::<Flag>(result)
        .map(|f| f.is_error)
        .unwrap_or(false)
}
