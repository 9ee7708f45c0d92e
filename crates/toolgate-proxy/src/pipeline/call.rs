//! `tools/call`: read the call strictly, decide it, reserve its counters, forward it.
//!
//! Ordering decisions, in the order they are taken:
//! 1. params are parsed strictly before anything else — an ambiguous call is never decided,
//!    let alone forwarded;
//! 2. the decision is taken on one policy snapshot (a reload cannot split a call);
//! 3. a call without counters, or whose store answers at once (memory), is forwarded inline,
//!    keeping its place among the client's messages; a call whose store waits (SQLite, Redis)
//!    is handed to the store with the rest of its work, which runs where the answer arrives
//!    (the SQLite thread, a task for Redis), so a slow store never holds up unrelated traffic;
//! 4. the call is registered as in flight *before* the reservation starts, so a cancellation
//!    that overtakes it is seen and the counters are given back.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use toolgate_policy::{
    AuditArguments, Call, Decision, Denial, Permit, Policy, ShadowDecision, ShadowVerdict,
};
use toolgate_state::{AfterReserve, ReserveItem, ReserveOutcome, ReserveResult, Ticket};

use super::call_end::CallEnd;
use super::pins::PinAction;
use crate::approvals::redact::redact_arguments;
use crate::audit::{AuditedArguments, CounterRecord};
use crate::gateway::{FailMode, Gateway};
use crate::idempotency::call_key;
use crate::message::{ClientRequest, ToClient};
use crate::session::{CallInFlight, CallPhase, InFlight, Session};
use crate::strict_json::StrictJsonError;
use crate::upstream_ids::MintRefusal;
use crate::wire::{self, ErrorCode};
use toolgate_policy::fold::fold;

/// What becomes of a call once its counters are reserved.
enum AfterReserving {
    Forward,
    /// The client cancelled meanwhile: not forwarded.
    Cancelled(CallInFlight),
    /// Already settled elsewhere (the server went away): only the reservation is left.
    Gone,
}

/// What toolgate reads from `tools/call` params.
struct CallParams {
    tool: String,
    arguments: Value,
    /// `_meta.progressToken`, when it is one (a string or a number).
    progress_token: Option<Value>,
    /// `_meta.traceparent`, when it is a string.
    traceparent: Option<String>,
}

/// The members of `tools/call` params that MCP defines and servers read.
const CALL_MEMBERS: [&str; 4] = ["name", "arguments", "_meta", "task"];

fn read_params(params: Option<Result<Value, StrictJsonError>>) -> Result<CallParams, String> {
    let params = params.ok_or("tools/call needs params")?;
    let value = params.map_err(|e| match e {
        StrictJsonError::Ambiguous(m) => format!("ambiguous params: {m}"),
        StrictJsonError::Syntax(m) => m,
    })?;
    let Value::Object(mut map) = value else {
        return Err("tools/call params must be an object".into());
    };
    // `{"name":"pay","Arguments":{...}}` is a call with arguments to a Go server and a call
    // without them to a reader that matches names exactly: refused, never decided.
    for member in map.keys() {
        let folded = fold(member);
        if let Some(name) = CALL_MEMBERS
            .iter()
            .find(|name| **name == folded && *name != member)
        {
            return Err(format!(
                "ambiguous params: member {member:?} differs from {name:?} only in case"
            ));
        }
    }
    let tool = match map.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Err("tools/call \"name\" must be a string".into()),
        None => return Err("tools/call params need a \"name\"".into()),
    };
    let arguments = match map.remove("arguments") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(args @ Value::Object(_)) => args,
        Some(_) => return Err("tools/call \"arguments\" must be an object".into()),
    };
    let meta = map.get("_meta");
    let progress_token = meta
        .and_then(|meta| meta.get("progressToken"))
        .filter(|token| token.is_string() || token.is_number())
        .cloned();
    let traceparent = meta
        .and_then(|meta| meta.get("traceparent"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(CallParams {
        tool,
        arguments,
        progress_token,
        traceparent,
    })
}

impl Gateway {
    pub(super) async fn call_from_client(
        self: &Arc<Self>,
        session: &Arc<Session>,
        mut request: ClientRequest,
    ) {
        let started = Instant::now();
        let params = match read_params(request.take_strict_params()) {
            Ok(p) => p,
            Err(message) => {
                tracing::warn!(session = %session.id, %message, "refused a tools/call");
                let code = ErrorCode::InvalidRequest;
                let reply = wire::error_response(
                    Some(&request.id),
                    code,
                    &format!("Invalid request: {message}"),
                );
                return session
                    .send_to_client(ToClient::error(reply, Some(&request.id), code))
                    .await;
            }
        };
        let policy = self.policy.load_full();
        // A tool the policy does not name may take its rules from its risk category, and a
        // policy that hides poisoned tools must have seen the tool's definition: a call that
        // arrives before the tool was ever listed waits for toolgate to list the tools.
        let needs_definition = (policy.has_category_rules()
            && !policy.tools.contains_key(&params.tool))
            || policy.poisoning.on_finding == toolgate_policy::OnFinding::Hide
            || (policy.pinning.can_withhold() && self.pins_kept());
        if needs_definition && self.category_of(&params.tool).is_none() {
            let gateway = Arc::clone(self);
            let session = Arc::clone(session);
            let tool = params.tool.clone();
            tokio::spawn(async move {
                gateway.learn_category_of(&session, &tool).await;
                gateway
                    .decide_call(&session, request, params, policy, started)
                    .await;
            });
            return;
        }
        self.decide_call(session, request, params, policy, started)
            .await;
    }

    async fn decide_call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        request: ClientRequest,
        params: CallParams,
        policy: Arc<Policy>,
        started: Instant,
    ) {
        // A tool whose category could not be learned is decided as the most restrictive
        // category the policy names (fail closed).
        let category = self
            .category_of(&params.tool)
            .or_else(|| super::categories::fail_closed_category(&policy));
        let caller = session.caller();
        let call = Call {
            tool: &params.tool,
            arguments: &params.arguments,
            session: Some(&session.counter_session),
            identity: session.identity.as_deref(),
            caller: caller.as_deref(),
        };
        let decision = if self.hides_as_poisoned(&params.tool, &policy) {
            Decision::Hidden
        } else {
            match self.pin_action(&params.tool, &policy) {
                PinAction::Hide => Decision::Hidden,
                PinAction::Deny => Decision::Deny(Denial {
                    rule: "pinning".into(),
                    message: self.pin_denial_message(&params.tool),
                }),
                PinAction::Allow => policy.decide_in_category(&call, category),
            }
        };
        let args_hash = self
            .hasher
            .as_ref()
            .map(|h| h.hash(&params.arguments).into_boxed_str());
        let mut in_flight = CallInFlight {
            tool: params.tool.clone(),
            rule: None,
            policy: policy.revision.clone(),
            started,
            ticket: None,
            counters: Vec::new(),
            args_hash,
            not_counted: false,
            approval: None,
            phase: CallPhase::Admitting,
            forwarded_after_us: None,
            deadline: started + self.options.call_timeout,
            extras: None,
        };
        let audited = match policy.audit_arguments {
            AuditArguments::Hash => None,
            AuditArguments::Redacted => Some(AuditedArguments::Redacted(redact_arguments(
                &params.arguments,
            ))),
            AuditArguments::Full => Some(AuditedArguments::Full(params.arguments.clone())),
        };
        if let Some(tracer) = &self.options.tracer {
            let span = tracer.start_call(params.traceparent.as_deref(), request.id.get());
            if span.is_some() {
                in_flight.extras_mut().span = span;
            }
        }
        if audited.is_some() {
            in_flight.extras_mut().arguments = audited;
        }
        let refused = match decision {
            Decision::Allow(mut permit) => {
                if let Some(shadow) = permit.shadow.take() {
                    in_flight.extras_mut().shadow = Some(shadow);
                }
                if let Some(window) = policy.idempotency_window_ms(&params.tool) {
                    let key =
                        call_key(session.identity.as_deref(), &params.tool, &params.arguments);
                    let revision = &policy.revision;
                    let claimed = self
                        .claim_first(session, &request, key, started, &params.tool, revision)
                        .await;
                    if !claimed {
                        return;
                    }
                    in_flight.extras_mut().idempotency = Some((key, window));
                }
                Ok(permit)
            }
            Decision::Ambiguous(message) => {
                tracing::warn!(session = %session.id, %message, "refused an ambiguous tools/call");
                Err(CallEnd::Ambiguous(message))
            }
            Decision::Hidden => Err(CallEnd::Hidden),
            Decision::Deny(denial) => Err(CallEnd::Denied {
                rule: denial.rule,
                message: denial.message,
                retry_after_ms: None,
            }),
            Decision::ApprovalRequired(approval) if self.options.approvals.is_some() => {
                let call = crate::approvals::ApprovalCall {
                    tool: params.tool,
                    arguments: params.arguments,
                    started,
                    args_hash: in_flight.args_hash.map(String::from),
                    progress_token: params.progress_token,
                };
                return self
                    .require_approval(session, request, approval, call, policy)
                    .await;
            }
            Decision::ApprovalRequired(approval) => Err(CallEnd::ApprovalsNotConfigured {
                rule: approval.rule,
            }),
        };
        let permit = match refused {
            Ok(permit) => permit,
            Err(end) => return self.finish_call(session, &request, in_flight, end).await,
        };
        in_flight.counters = counter_records(&permit);
        if permit.reservations.is_empty() {
            in_flight.mark_forwarded();
        }
        let registered = {
            let mut state = session.state.lock();
            if state.request_waiting(&request.key) {
                Err(in_flight)
            } else {
                state
                    .inflight
                    .insert(request.key.clone(), InFlight::Call(in_flight));
                Ok(())
            }
        };
        if let Err(in_flight) = registered {
            let end = CallEnd::Unforwardable(MintRefusal::IdInUse);
            return self.finish_call(session, &request, in_flight, end).await;
        }
        if permit.reservations.is_empty() {
            return self.forward_call(session, &request).await;
        }
        if self.store.reserves_at_once() {
            return self.reserve_and_forward(session, &request, permit).await;
        }
        // The rest of the call runs where the store answers (its own thread, for SQLite).
        let gateway = Arc::clone(self);
        let session = Arc::clone(session);
        let runtime = tokio::runtime::Handle::current();
        let items = reserve_items(&permit);
        let then = AfterReserve::new(move |outcome| {
            run_here_or_spawn(&runtime, async move {
                gateway
                    .after_reserving(&session, &request, permit, outcome)
                    .await;
            });
        });
        Arc::clone(&self.store).reserve_then(items, then);
    }

    pub(crate) async fn reserve_and_forward(
        &self,
        session: &Session,
        request: &ClientRequest,
        permit: Permit,
    ) {
        let outcome = self.store.reserve(&reserve_items(&permit)).await;
        self.after_reserving(session, request, permit, outcome)
            .await;
    }

    /// Forwards a call whose counters were reserved, or ends it.
    async fn after_reserving(
        &self,
        session: &Session,
        request: &ClientRequest,
        permit: Permit,
        outcome: ReserveResult,
    ) {
        let key = &request.key;
        let ticket = match outcome {
            Ok(ReserveOutcome::Reserved(ticket)) => Some(ticket),
            Ok(ReserveOutcome::Exceeded { index, .. })
                if permit.reservations.get(index).is_some_and(|r| r.shadow) =>
            {
                return Box::pin(self.past_a_shadow_limit(session, request, permit, index)).await;
            }
            Ok(ReserveOutcome::Exceeded { index, .. }) => {
                let Some(limit) = permit.reservations.get(index) else {
                    return;
                };
                let now = self.clock.now_ms();
                let end = CallEnd::Denied {
                    rule: limit.rule.clone(),
                    message: limit.message.clone(),
                    retry_after_ms: Some(limit.window.start_of(now) + limit.window.length_ms - now),
                };
                return self.end_unforwarded(session, request, end).await;
            }
            Err(error) => match self.options.fail_mode {
                FailMode::Closed => {
                    tracing::warn!(session = %session.id, %error, "counter store unavailable; call refused (fail-closed)");
                    let end = CallEnd::CounterStoreUnavailable;
                    return self.end_unforwarded(session, request, end).await;
                }
                FailMode::Open => {
                    tracing::warn!(session = %session.id, %error, "counter store unavailable; call forwarded uncounted (fail-open)");
                    None
                }
            },
        };

        // Between reserving and forwarding, the client may have cancelled, or the server may
        // have gone away (the call was then settled there).
        let next = {
            let mut state = session.state.lock();
            match state.inflight.get_mut(key) {
                Some(InFlight::Call(call)) if call.phase == CallPhase::Admitting => {
                    call.mark_forwarded();
                    call.not_counted = ticket.is_none();
                    call.ticket = ticket.clone();
                    AfterReserving::Forward
                }
                Some(InFlight::Call(_)) => match state.inflight.remove(key) {
                    Some(InFlight::Call(call)) => AfterReserving::Cancelled(call),
                    _ => AfterReserving::Gone,
                },
                _ => AfterReserving::Gone,
            }
        };
        match next {
            AfterReserving::Forward => self.forward_call(session, request).await,
            AfterReserving::Cancelled(mut call) => {
                call.ticket = ticket;
                self.end_call(session, None, call, CallEnd::CancelledBeforeForward)
                    .await;
            }
            AfterReserving::Gone => {
                if let Some(ticket) = &ticket {
                    self.rollback(ticket).await;
                }
            }
        }
    }

    /// A dry-run limit the call does not fit: the call is `would_deny`, and goes on with its
    /// enforced reservations alone (in the shadow world a refused call counts nothing).
    async fn past_a_shadow_limit(
        &self,
        session: &Session,
        request: &ClientRequest,
        permit: Permit,
        index: usize,
    ) {
        let limit = &permit.reservations[index];
        let verdict = ShadowVerdict {
            decision: ShadowDecision::WouldDeny,
            rule: Some(limit.rule.clone()),
            message: Some(limit.message.clone()),
        };
        let enforced = Permit {
            reservations: permit.enforced().cloned().collect(),
            shadow: None,
        };
        if let Some(InFlight::Call(call)) = session.state.lock().inflight.get_mut(&request.key) {
            call.extras_mut().shadow = Some(verdict);
            call.counters = counter_records(&enforced);
        }
        let outcome = if enforced.reservations.is_empty() {
            Ok(ReserveOutcome::Reserved(Ticket { taken: Vec::new() }))
        } else {
            self.store.reserve(&reserve_items(&enforced)).await
        };
        self.after_reserving(session, request, enforced, outcome)
            .await;
    }

    /// Forwards an admitted call under a minted id. Should no id be mintable (the client
    /// reused the call's id meanwhile, or has too many requests waiting), the call is refused
    /// and settled unforwarded.
    pub(crate) async fn forward_call(&self, session: &Session, request: &ClientRequest) {
        // A traced call goes on with toolgate's span as the server's parent.
        let traced = self.options.tracer.as_ref().and_then(|_| {
            let context = {
                let state = session.state.lock();
                let Some(InFlight::Call(call)) = state.inflight.get(&request.key) else {
                    return None;
                };
                call.extras.as_ref()?.span.as_ref()?.context
            };
            crate::otel::with_traceparent(request, &context.format())
        });
        let request = traced.as_ref().unwrap_or(request);
        if let Err(why) = self.forward_request(session, request).await {
            self.end_unforwarded(session, request, CallEnd::Unforwardable(why))
                .await;
        }
    }

    /// Ends a registered call that was not forwarded, if it is still in flight (the server
    /// going away may have ended it already).
    pub(crate) async fn end_unforwarded(
        &self,
        session: &Session,
        request: &ClientRequest,
        end: CallEnd,
    ) {
        let entry = session.state.lock().inflight.remove(&request.key);
        if let Some(InFlight::Call(call)) = entry {
            self.finish_call(session, request, call, end).await;
        }
    }

    /// Ends a call and sends the client its answer.
    pub(crate) async fn finish_call(
        &self,
        session: &Session,
        request: &ClientRequest,
        call: CallInFlight,
        end: CallEnd,
    ) {
        if let Some(answer) = self.end_call(session, Some(&request.id), call, end).await {
            session.send_to_client(answer).await;
        }
    }
}

fn reserve_items(permit: &Permit) -> Vec<ReserveItem> {
    permit.reservations.iter().map(ReserveItem::from).collect()
}

/// Runs `future` on this thread if it completes without waiting; otherwise hands it, as far
/// as it got, to the runtime. For continuations that a store's thread runs: they must never
/// block that thread, and nearly always complete at once (a non-blocking write).
fn run_here_or_spawn(
    runtime: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let _context = runtime.enter();
    let mut future = Box::pin(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if future.as_mut().poll(&mut cx).is_pending() {
        // The task polls it again with a waker of its own, which replaces the no-op one
        // wherever the future registered it.
        runtime.spawn(future);
    }
}

pub(crate) fn counter_records(permit: &Permit) -> Vec<CounterRecord> {
    permit
        .reservations
        .iter()
        .map(|r| CounterRecord {
            key: r.key.clone(),
            amount: r.amount,
            max: r.max,
            window: r.window,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strict_json::parse_strict;

    fn raw(text: &str) -> Option<Result<Value, StrictJsonError>> {
        Some(parse_strict(text))
    }

    #[test]
    fn params_are_read_strictly() {
        let ok = read_params(raw(
            r#"{"name":"echo","arguments":{"a":1},"_meta":{"progressToken":1}}"#,
        ));
        assert!(matches!(ok, Ok(CallParams { ref tool, .. }) if tool == "echo"));
        for bad in [
            r#"{"name":"a","name":"b"}"#,
            r#"{"name":"a","Name":"b"}"#,
            r#"{"name":5}"#,
            r#"{"arguments":{}}"#,
            r#"{"name":"a","arguments":[1]}"#,
            r#"{"name":"a","arguments":{"amount":1,"AMOUNT":2}}"#,
            r#"{"name":"pay","Arguments":{"amount":5000}}"#,
            r#"{"Name":"pay","arguments":{}}"#,
            r#"{"name":"pay","argument\u017f":{"amount":5000}}"#,
            r#"{"name":"pay","arguments":{},"argument\u017f":{"amount":5000}}"#,
        ] {
            assert!(read_params(raw(bad)).is_err(), "{bad}");
        }
        assert!(read_params(None).is_err());
    }
}
