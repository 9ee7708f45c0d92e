//! A call that needs approval, from the decision to its answer.
//!
//! Ordering decisions:
//! 1. the call is registered in flight (phase `Admitting`) before anything waits, so a
//!    cancellation that overtakes it is seen, and the server never sees a call whose client
//!    gave up;
//! 2. the store step (`admit`) is one atomic step: it consumes a standing approval, or
//!    reports a standing request or denial, or creates a request — so two retries racing
//!    (in one gateway or several) can never both use one approval;
//! 3. counters are reserved only once an approval has been consumed, through the same
//!    `reserve_and_forward` as any allowed call; a call that then fails to reach the tool
//!    gives its approval back;
//! 4. in hold mode the wait runs on this task, never on the session's reader, so the
//!    session's other calls go on while one waits.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use toolgate_policy::ir::ApprovalMode;
use toolgate_policy::{ApprovalRequest, Policy};
use toolgate_state::{AdmitOutcome, ApprovalError, ApprovalRecord, ApprovalState, NewApproval};

use super::fingerprint::{fingerprint, new_approval_id};
use super::view::Transition;
use super::Approvals;
use crate::audit::{canonical_json, format_rfc3339_ms};
use crate::gateway::Gateway;
use crate::message::{ClientRequest, ToClient};
use crate::pipeline::{counter_records, CallEnd};
use crate::session::{CallInFlight, CallPhase, InFlight, Session};

/// Store steps one call takes at most: each extra one follows a record another call used
/// or took first, which cannot go on for long.
const MAX_ROUNDS: usize = 8;

/// Why a pending request older than the policy's `dedupe_window` was withdrawn.
const SUPERSEDED: &str = "superseded: the same call was asked for again after the policy's dedupe_window, as a new request";

/// Consecutive failed reads a held call tolerates before it gives up on the store.
const MAX_READ_FAILURES: u32 = 20;

/// What the pipeline read from the call.
pub(crate) struct ApprovalCall {
    pub tool: String,
    pub arguments: Value,
    pub started: Instant,
    pub args_hash: Option<String>,
    /// `params._meta.progressToken`, for progress while the call is held.
    pub progress_token: Option<Value>,
}

impl Gateway {
    /// Takes over a call the policy sent for approval; answers it (now or after the wait)
    /// from a task of its own.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn require_approval(
        self: &Arc<Self>,
        session: &Arc<Session>,
        message: ClientRequest,
        request: ApprovalRequest,
        call: ApprovalCall,
        policy: Arc<Policy>,
    ) {
        let Some(approvals) = self.options.approvals.clone() else {
            return;
        };
        let in_flight = CallInFlight {
            tool: call.tool.clone(),
            rule: Some(request.rule.clone()),
            policy: policy.revision.clone(),
            started: call.started,
            ticket: None,
            counters: counter_records(&request.permit),
            args_hash: call.args_hash.as_deref().map(Box::from),
            not_counted: false,
            approval: None,
            phase: CallPhase::Admitting,
            forwarded_after_us: None,
            deadline: call.started + self.options.call_timeout,
            extras: None,
        };
        session
            .state
            .lock()
            .inflight
            .insert(message.key.clone(), InFlight::Call(in_flight));
        let waiting = Waiting {
            gateway: Arc::clone(self),
            approvals,
            session: Arc::clone(session),
            message,
            request,
            call,
            policy,
        };
        tokio::spawn(waiting.run());
    }
}

/// How a held call's wait ended.
enum Held {
    Approved,
    /// Another call with the same fingerprint used the approval first.
    TakenByAnother,
    /// Denied, expired, withdrawn, or gone from the store.
    Ended(Box<ApprovalRecord>),
    /// The client cancelled its call; `withdraw` unless another held call of this process
    /// still waits on the same request.
    Cancelled {
        withdraw: bool,
    },
    /// The call is no longer in flight (the session or the server went away).
    Gone {
        withdraw: bool,
    },
    StoreFailed(ApprovalError),
}

struct Waiting {
    gateway: Arc<Gateway>,
    approvals: Arc<Approvals>,
    session: Arc<Session>,
    /// The call as the client sent it.
    message: ClientRequest,
    request: ApprovalRequest,
    call: ApprovalCall,
    policy: Arc<Policy>,
}

/// Pending records read to count one identity's (a bound on the work, far above any cap).
const PENDING_SCAN_LIMIT: usize = 10_000;

impl Waiting {
    /// Whether a pending request is too old for an identical call to join it.
    fn past_dedupe_window(&self, record: &ApprovalRecord) -> bool {
        self.policy
            .approvals
            .dedupe_window_ms
            .is_some_and(|window| {
                self.approvals.now_ms() >= record.created_ms.saturating_add(window)
            })
    }

    async fn run(self) {
        let binding = fingerprint(
            self.session.identity.as_deref(),
            &self.call.tool,
            &self.call.arguments,
            &self.request.rule,
            &self.policy.revision,
        );
        let arguments = canonical_json(&self.call.arguments);
        let mut last = None;
        for _ in 0..MAX_ROUNDS {
            let new = NewApproval {
                id: new_approval_id(),
                fingerprint: binding.clone(),
                tool: self.call.tool.clone(),
                identity: self.session.identity.clone(),
                session: Some(self.session.id.clone()),
                rule: self.request.rule.clone(),
                policy: self.policy.revision.clone(),
                mode: self.request.settings.mode,
                message: self.request.message.clone(),
                arguments: arguments.clone(),
                timeout_ms: self.request.settings.timeout_ms,
            };
            let admission = match self.approvals.store.admit(new).await {
                Ok(a) => a,
                Err(e) => return self.store_failed(e).await,
            };
            for expired in &admission.expired {
                self.gateway
                    .approval_transition(Transition::Expired, expired);
            }
            let record = admission.record;
            match admission.outcome {
                AdmitOutcome::Consumed => {
                    self.gateway
                        .approval_transition(Transition::Consumed, &record);
                    return self.forward(record).await;
                }
                AdmitOutcome::Denied => return self.answer_ended(&record).await,
                AdmitOutcome::Created => {
                    self.gateway
                        .approval_transition(Transition::Requested, &record);
                    if self.over_pending_cap().await {
                        return self.withdraw_over_cap(&record).await;
                    }
                    self.approvals
                        .announce(&record, &self.policy.approvals.notify);
                }
                AdmitOutcome::Pending if self.past_dedupe_window(&record) => {
                    // Superseded: withdrawn (once, by whoever gets there first), and the next
                    // round makes the new request.
                    match self.approvals.store.withdraw(&record.id, SUPERSEDED).await {
                        Ok(withdrawn) => self
                            .gateway
                            .approval_transition(Transition::Withdrawn, &withdrawn),
                        Err(ApprovalError::Conflict { .. }) => {}
                        Err(e) => return self.store_failed(e).await,
                    }
                    continue;
                }
                AdmitOutcome::Pending => {}
            }
            if self.request.settings.mode == ApprovalMode::Retry {
                return self.answer_pending(&record).await;
            }
            let held = self.hold(&record).await;
            last = Some(record);
            let Some(record) = last.as_ref() else { return };
            match held {
                Held::Approved => match self.approvals.store.consume(&record.id).await {
                    Ok(used) => {
                        self.gateway
                            .approval_transition(Transition::Consumed, &used);
                        return self.forward(used).await;
                    }
                    // Used (or lapsed) in between: the next round sees what stands now.
                    Err(ApprovalError::Conflict { .. }) => continue,
                    Err(e) => return self.store_failed(e).await,
                },
                Held::TakenByAnother => continue,
                Held::Ended(r) => return self.answer_ended(&r).await,
                Held::Cancelled { withdraw } => return self.withdraw(record, withdraw, true).await,
                Held::Gone { withdraw } => return self.withdraw(record, withdraw, false).await,
                Held::StoreFailed(e) => return self.store_failed(e).await,
            }
        }
        // Only reached when other calls kept using the approvals this one waited for.
        tracing::warn!(session = %self.session.id, tool = %self.call.tool, "approvals kept being used by other identical calls; answering as pending");
        if let Some(record) = &last {
            self.answer_pending(record).await;
        }
    }

    /// Waits for the record to leave `pending`, sending progress to clients that asked for
    /// it, and watching for the client's cancellation.
    async fn hold(&self, record: &ApprovalRecord) -> Held {
        let guard = self.approvals.wait_on(&record.id);
        let mut events = self.approvals.subscribe();
        let options = &self.approvals.options;
        let mut next_progress = Instant::now();
        let mut progress = 0u64;
        let mut failures = 0u32;
        loop {
            match self.phase() {
                None => {
                    return Held::Gone {
                        withdraw: guard.is_last(),
                    }
                }
                Some(CallPhase::CancelledBeforeForward) => {
                    return Held::Cancelled {
                        withdraw: guard.is_last(),
                    }
                }
                Some(_) => {}
            }
            if let Some(token) = &self.call.progress_token {
                if Instant::now() >= next_progress {
                    progress += 1;
                    next_progress = Instant::now() + options.progress_interval;
                    let note = json!({
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {
                            "progressToken": token,
                            "progress": progress,
                            "message": format!(
                                "Waiting for a person to approve request {} (until {})",
                                record.id,
                                format_rfc3339_ms(record.expires_ms)
                            ),
                        },
                    });
                    self.session
                        .send_to_client(ToClient::notice(note.to_string()))
                        .await;
                }
            }
            match self.approvals.store.get(&record.id).await {
                Ok(Some(now)) => {
                    failures = 0;
                    match now.state {
                        ApprovalState::Pending => {}
                        ApprovalState::Approved => return Held::Approved,
                        ApprovalState::Consumed => return Held::TakenByAnother,
                        _ => return Held::Ended(Box::new(now)),
                    }
                }
                Ok(None) => {
                    let mut gone = record.clone();
                    gone.state = ApprovalState::Expired;
                    return Held::Ended(Box::new(gone));
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(approval = %record.id, error = %e, "reading a held approval failed");
                    if failures >= MAX_READ_FAILURES {
                        return Held::StoreFailed(e);
                    }
                }
            }
            // Woken early by a transition in this process (the admin API), else polled:
            // decisions from other processes (the CLI) are only seen by reading.
            let wake = async {
                loop {
                    match events.recv().await {
                        Ok(e) if e.record.id == record.id => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(_) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(options.poll_interval) => {}
                _ = wake => {}
            }
        }
    }

    fn phase(&self) -> Option<CallPhase> {
        match self.session.state.lock().inflight.get(&self.message.key) {
            Some(InFlight::Call(call)) => Some(call.phase),
            _ => None,
        }
    }

    /// The approval is consumed: reserve the call's counters and forward it, as any
    /// allowed call. Its in-flight entry now carries the approval, so every way the call
    /// can fail to reach the tool gives it back.
    async fn forward(self, record: ApprovalRecord) {
        let no_counters = self.request.permit.reservations.is_empty();
        let cancelled = {
            let mut state = self.session.state.lock();
            match state.inflight.get_mut(&self.message.key) {
                Some(InFlight::Call(call)) if call.phase == CallPhase::Admitting => {
                    call.approval = Some(record.id.as_str().into());
                    // The wait for a person is not the server's time to answer.
                    call.deadline = Instant::now() + self.gateway.options.call_timeout;
                    if no_counters {
                        call.mark_forwarded();
                    }
                    None
                }
                Some(InFlight::Call(_)) => match state.inflight.remove(&self.message.key) {
                    Some(InFlight::Call(mut call)) => {
                        call.approval = Some(record.id.as_str().into());
                        Some(Some(call))
                    }
                    _ => Some(None),
                },
                _ => Some(None),
            }
        };
        match cancelled {
            Some(Some(call)) => {
                // Cancelled while the approval was being taken: never forwarded, so the
                // approval is given back.
                let end = CallEnd::CancelledBeforeForward;
                self.gateway.end_call(&self.session, None, call, end).await;
                return;
            }
            Some(None) => {
                self.gateway.release_approval_now(&record.id).await;
                return;
            }
            None => {}
        }
        if no_counters {
            return self
                .gateway
                .forward_call(&self.session, &self.message)
                .await;
        }
        self.gateway
            .reserve_and_forward(&self.session, &self.message, self.request.permit.clone())
            .await;
    }

    /// Whether this caller's identity now has more pending requests than it may: each one
    /// is a notification and a person's attention, so one client cannot flood them.
    async fn over_pending_cap(&self) -> bool {
        let cap = self.approvals.options.max_pending_per_identity;
        let filter = toolgate_state::ListFilter {
            all: false,
            limit: PENDING_SCAN_LIMIT,
        };
        match self.approvals.store.list(filter).await {
            Ok(pending) => {
                pending
                    .iter()
                    .filter(|r| r.identity == self.session.identity)
                    .count()
                    > cap
            }
            // The store just answered `admit`; if it fails now, the request stands.
            Err(_) => false,
        }
    }

    /// Withdraws a request just made over the caller's cap, and refuses the call.
    async fn withdraw_over_cap(&self, record: &ApprovalRecord) {
        let reason = format!(
            "too many approval requests are waiting for this caller (at most {}); wait for decisions, then retry",
            self.approvals.options.max_pending_per_identity
        );
        tracing::warn!(session = %self.session.id, identity = ?self.session.identity, "approval request refused: too many pending for this identity");
        match self.approvals.store.withdraw(&record.id, &reason).await {
            Ok(r) => {
                self.gateway.approval_transition(Transition::Withdrawn, &r);
                self.answer_ended(&r).await
            }
            Err(e) => self.store_failed(e).await,
        }
    }

    /// Retry mode: the request waits; tell the agent to retry the same call later.
    async fn answer_pending(&self, record: &ApprovalRecord) {
        let end = CallEnd::ApprovalPending {
            record: Box::new(record.clone()),
            mode: self.request.settings.mode,
            note: self.request.message.clone(),
        };
        self.finish(end).await;
    }

    /// A denial (by a person), an expiry or a withdrawal: the call will not run.
    async fn answer_ended(&self, record: &ApprovalRecord) {
        self.finish(CallEnd::ApprovalEnded(Box::new(record.clone())))
            .await;
    }

    /// The held call's client cancelled (or its session ended): withdraw the request,
    /// unless another held call still waits on it.
    async fn withdraw(&self, record: &ApprovalRecord, withdraw: bool, cancelled: bool) {
        let reason = if cancelled {
            "the client cancelled the call"
        } else {
            "the client's session ended"
        };
        if withdraw {
            match self.approvals.store.withdraw(&record.id, reason).await {
                Ok(r) => self.gateway.approval_transition(Transition::Withdrawn, &r),
                // Decided in the meantime: the decision stands for the next identical call.
                Err(ApprovalError::Conflict { .. }) => {}
                Err(e) => {
                    tracing::warn!(approval = %record.id, error = %e, "could not withdraw an approval request")
                }
            }
        }
        let end = CallEnd::ApprovalAbandoned {
            approval: record.id.clone(),
            reason: reason.to_string(),
        };
        self.finish(end).await;
    }

    async fn store_failed(&self, error: ApprovalError) {
        tracing::warn!(session = %self.session.id, error = %error, "approval store unavailable; call refused");
        self.finish(CallEnd::ApprovalStoreUnavailable).await;
    }

    /// Ends the call without forwarding it (unless the session ended first, and with it
    /// the call).
    async fn finish(&self, end: CallEnd) {
        self.gateway
            .end_unforwarded(&self.session, &self.message, end)
            .await;
    }
}
