//! Calls under an `idempotency_window` (see `idempotency.rs`): the first of its kind is
//! forwarded; a duplicate waits for its answer, or gets the answer kept from it, and is
//! audited as `duplicate`. Every duplicate is answered exactly once: it is registered in its
//! session's in-flight map while it waits, and whoever removes it from there answers it.

use std::sync::Arc;
use std::time::Instant;

use super::call_end::{AnswerContext, CallEnd};
use super::settle::result_is_error;
use crate::audit::{AuditDecision, AuditEvent, DecisionRecord, Outcome};
use crate::gateway::Gateway;
use crate::idempotency::{CallKey, Claim, KeptAnswer, Waiter};
use crate::message::{ClientRequest, ToClient};
use crate::session::{InFlight, Session};
use crate::upstream_ids::MAX_WAITING;
use crate::wire::{self, ErrorCode};

impl Gateway {
    /// Looks a call under an idempotency window up. True when it is the first of its kind
    /// and goes on to be decided and forwarded; false when it has been answered, or waits.
    pub(super) async fn claim_first(
        &self,
        session: &Arc<Session>,
        request: &ClientRequest,
        key: CallKey,
        started: Instant,
        tool: &str,
        policy: &str,
    ) -> bool {
        let session_full = {
            let state = session.state.lock();
            // A request reusing an id still in flight is refused on the usual path.
            if state.request_waiting(&request.key) {
                return true;
            }
            // Waiting duplicates count against the bound on what one session has waiting,
            // as requests sent to the server do: 64 per call would otherwise be 64 times it.
            state.inflight.len() >= MAX_WAITING
        };
        let waiter = || {
            (!session_full).then(|| Waiter {
                session: Arc::downgrade(session),
                id: request.id.clone(),
                key: request.key.clone(),
                started,
                tool: tool.to_string(),
                policy: policy.to_string(),
            })
        };
        match self.idempotency.claim(key, self.clock.now_ms(), waiter) {
            Claim::First => true,
            Claim::Waiting => {
                session
                    .state
                    .lock()
                    .inflight
                    .insert(request.key.clone(), InFlight::Duplicate);
                false
            }
            Claim::Answered(answer) => {
                let text = answer.for_id(request.id.get());
                self.answer_duplicate(
                    session,
                    &request.id,
                    text,
                    outcome_of(&answer),
                    started,
                    tool,
                    policy,
                )
                .await;
                false
            }
            Claim::TooManyWaiting => {
                let code = ErrorCode::InvalidRequest;
                let text = wire::error_response(
                    Some(&request.id),
                    code,
                    "Too many calls are waiting (identical ones for the same answer, or this session's in all); retry when they are answered",
                );
                session
                    .send_to_client(ToClient::error(text, Some(&request.id), code))
                    .await;
                false
            }
        }
    }

    /// The first call of its kind was answered by the server: its duplicates get the same
    /// answer, and a result is kept for the window.
    pub(super) async fn answer_duplicates(
        &self,
        key: CallKey,
        window_ms: u64,
        answer: &KeptAnswer,
    ) {
        let now = self.clock.now_ms();
        for waiter in self.idempotency.answered(key, answer, window_ms, now) {
            let text = answer.for_id(waiter.id.get());
            self.answer_waiter(waiter, text, outcome_of(answer)).await;
        }
    }

    /// The first call of its kind ended without the server's answer: its duplicates get the
    /// answer it got.
    pub(super) async fn end_duplicates(
        &self,
        key: CallKey,
        end: &CallEnd,
        context: &AnswerContext<'_>,
    ) {
        for waiter in self.idempotency.ended(key) {
            let answer = end.answer(&waiter.id, &waiter.tool, context);
            let text = answer.map_or_else(
                || {
                    wire::error_response(
                        Some(&waiter.id),
                        ErrorCode::UpstreamGone,
                        "The identical call this one waited on ended without an answer; retry it",
                    )
                },
                |a| a.text,
            );
            self.answer_waiter(waiter, text, Outcome::NotForwarded)
                .await;
        }
    }

    async fn answer_waiter(&self, waiter: Waiter, text: String, outcome: Outcome) {
        let Some(session) = waiter.session.upgrade() else {
            return;
        };
        // Gone from the map: the session ended and answered it already.
        if !matches!(
            session.state.lock().inflight.remove(&waiter.key),
            Some(InFlight::Duplicate)
        ) {
            return;
        }
        self.answer_duplicate(
            &session,
            &waiter.id,
            text,
            outcome,
            waiter.started,
            &waiter.tool,
            &waiter.policy,
        )
        .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn answer_duplicate(
        &self,
        session: &Session,
        id: &serde_json::value::RawValue,
        text: String,
        outcome: Outcome,
        started: Instant,
        tool: &str,
        policy: &str,
    ) {
        let error = (outcome == Outcome::Error).then_some(None);
        let took_us = started.elapsed().as_micros() as u64;
        self.audit.record(AuditEvent::Decision(DecisionRecord {
            session: session.id.clone(),
            identity: session.identity.clone(),
            tool: tool.to_string(),
            decision: AuditDecision::Duplicate,
            rule: None,
            message: None,
            policy: policy.to_string(),
            counters: Vec::new(),
            outcome,
            not_counted: false,
            // Answered by the gateway: all of it is the gateway's.
            latency_us: took_us,
            gateway_us: took_us,
            args_hash: None,
            approval: None,
            arguments: None,
            redactions: None,
            withheld_by: None,
        }));
        session
            .send_to_client(ToClient::answer(text, Some(id), error))
            .await;
    }
}

fn outcome_of(answer: &KeptAnswer) -> Outcome {
    if answer.is_error {
        Outcome::Error
    } else if result_is_error(&answer.member) {
        Outcome::ToolError
    } else {
        Outcome::Result
    }
}
