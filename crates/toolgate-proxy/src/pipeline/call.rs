//! `tools/call`: read the call strictly, decide it, reserve its counters, forward it.
//!
//! Ordering decisions, in the order they are taken:
//! 1. params are parsed strictly before anything else — an ambiguous call is never decided,
//!    let alone forwarded;
//! 2. the decision is taken on one policy snapshot (a reload cannot split a call);
//! 3. a call without counters is forwarded inline, keeping its place among the client's
//!    messages; a call with counters reserves them in a task of its own, so a slow store never
//!    holds up unrelated traffic;
//! 4. the call is registered as in flight *before* the reservation starts, so a cancellation
//!    that overtakes it is seen and the counters are given back.

use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::Value;
use toolgate_policy::{Call, Decision, Permit, Policy};
use toolgate_state::{ReserveItem, ReserveOutcome};

use crate::audit::{AuditEvent, CounterRecord, DecisionRecord};
use crate::gateway::{FailMode, Gateway};
use crate::session::{CallInFlight, CallPhase, InFlight, Session};
use crate::strict_json::{parse_strict, StrictJsonError};
use crate::upstream_ids::{id_in, span_of, MintRefusal};
use crate::wire::{self, DenialMeta, ErrorCode};
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
}

/// The members of `tools/call` params that MCP defines and servers read.
const CALL_MEMBERS: [&str; 4] = ["name", "arguments", "_meta", "task"];

fn read_params(params: Option<&RawValue>) -> Result<CallParams, String> {
    let params = params.ok_or("tools/call needs params")?;
    let value = parse_strict(params.get()).map_err(|e| match e {
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
    Ok(CallParams { tool, arguments })
}

impl Gateway {
    pub(super) async fn call_from_client(
        self: &Arc<Self>,
        session: &Arc<Session>,
        id: &RawValue,
        key: String,
        params: Option<&RawValue>,
        text: &str,
    ) {
        let started = Instant::now();
        let params = match read_params(params) {
            Ok(p) => p,
            Err(message) => {
                tracing::warn!(session = %session.id, %message, "refused a tools/call");
                let reply = wire::error_response(
                    Some(id),
                    ErrorCode::InvalidRequest,
                    &format!("Invalid request: {message}"),
                );
                return session.send_to_client(reply).await;
            }
        };
        let policy = self.policy.load_full();
        // A tool the policy does not name may take its rules from its risk category; a call
        // that arrives before the tool was ever listed waits for toolgate to list the tools.
        if policy.has_category_rules()
            && !policy.tools.contains_key(&params.tool)
            && self.category_of(&params.tool).is_none()
        {
            let gateway = Arc::clone(self);
            let session = Arc::clone(session);
            let id = id.to_owned();
            let text = text.to_string();
            let tool = params.tool.clone();
            tokio::spawn(async move {
                gateway.learn_category_of(&session, &tool).await;
                gateway
                    .decide_call(&session, &id, key, params, policy, &text, started)
                    .await;
            });
            return;
        }
        self.decide_call(session, id, key, params, policy, text, started)
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide_call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        id: &RawValue,
        key: String,
        params: CallParams,
        policy: Arc<Policy>,
        text: &str,
        started: Instant,
    ) {
        // A tool whose category could not be learned is decided as the most restrictive
        // category the policy names (fail closed).
        let category = self
            .category_of(&params.tool)
            .or_else(|| super::categories::fail_closed_category(&policy));
        let call = Call {
            tool: &params.tool,
            arguments: &params.arguments,
            session: Some(&session.counter_session),
            identity: session.identity.as_deref(),
        };
        let decision = policy.decide_in_category(&call, category);
        let args_hash = self.hasher.as_ref().map(|h| h.hash(&params.arguments));
        let record = |decision: &'static str, rule: Option<String>, message: Option<String>| {
            DecisionRecord {
                session: session.id.clone(),
                identity: session.identity.clone(),
                tool: params.tool.clone(),
                decision,
                rule,
                message,
                policy: policy.revision.clone(),
                counters: Vec::new(),
                outcome: "not_forwarded",
                not_counted: false,
                latency_us: started.elapsed().as_micros() as u64,
                args_hash: args_hash.clone(),
                approval: None,
            }
        };

        let permit = match decision {
            Decision::Ambiguous(message) => {
                tracing::warn!(session = %session.id, %message, "refused an ambiguous tools/call");
                self.audit.record(AuditEvent::Decision(record(
                    "ambiguous",
                    None,
                    Some(message.clone()),
                )));
                let reply = wire::error_response(
                    Some(id),
                    ErrorCode::InvalidRequest,
                    &format!("Invalid request: {message}"),
                );
                return session.send_to_client(reply).await;
            }
            Decision::Hidden => {
                self.audit
                    .record(AuditEvent::Decision(record("hidden", None, None)));
                return session
                    .send_to_client(wire::unknown_tool(id, &params.tool))
                    .await;
            }
            Decision::Deny(denial) => {
                let meta = DenialMeta {
                    decision: "deny",
                    rule: &denial.rule,
                    policy_revision: &policy.revision,
                    retry_after_ms: None,
                    extra: None,
                };
                let reply =
                    wire::denial_result(id, self.deny_prefix(&policy), &denial.message, &meta);
                self.audit.record(AuditEvent::Decision(record(
                    "deny",
                    Some(denial.rule),
                    Some(denial.message),
                )));
                return session.send_to_client(reply).await;
            }
            Decision::ApprovalRequired(request) if self.options.approvals.is_some() => {
                let call = crate::approvals::ApprovalCall {
                    tool: params.tool.clone(),
                    arguments: params.arguments.clone(),
                    started,
                    args_hash: args_hash.clone(),
                };
                return self
                    .require_approval(session, id, key, request, call, policy, text)
                    .await;
            }
            Decision::ApprovalRequired(request) => {
                let message = "This call requires human approval, and approvals are not configured on this gateway";
                let meta = DenialMeta {
                    decision: "approval_required",
                    rule: &request.rule,
                    policy_revision: &policy.revision,
                    retry_after_ms: None,
                    extra: None,
                };
                let reply = wire::denial_result(id, self.deny_prefix(&policy), message, &meta);
                self.audit.record(AuditEvent::Decision(record(
                    "approval_required",
                    Some(request.rule),
                    Some(message.to_string()),
                )));
                return session.send_to_client(reply).await;
            }
            Decision::Allow(permit) => permit,
        };

        let counters = counter_records(&permit);
        let in_flight = CallInFlight {
            tool: params.tool.clone(),
            rule: None,
            policy: policy.revision.clone(),
            started,
            ticket: None,
            counters,
            args_hash,
            not_counted: false,
            approval: None,
            phase: if permit.reservations.is_empty() {
                CallPhase::Forwarded
            } else {
                CallPhase::Admitting
            },
            deadline: started + self.options.call_timeout,
        };
        let registered = {
            let mut state = session.state.lock();
            let free = !state.request_waiting(&key);
            if free {
                state
                    .inflight
                    .insert(key.clone(), InFlight::Call(in_flight));
            }
            free
        };
        if !registered {
            return self
                .refuse_unforwardable(session, id, MintRefusal::IdInUse)
                .await;
        }
        if permit.reservations.is_empty() {
            return self.forward_call(session, id, &key, text).await;
        }
        let gateway = Arc::clone(self);
        let session = Arc::clone(session);
        let id_span = span_of(text, id.get());
        let id = id.to_owned();
        let text = text.to_string();
        tokio::spawn(async move {
            // The id as a slice of the task's own copy of the text, so that forwarding
            // replaces it in place instead of reading the message again.
            let id = id_in(&text, id_span).unwrap_or(&id);
            gateway
                .reserve_and_forward(&session, id, key, permit, policy, &text)
                .await;
        });
    }

    pub(crate) async fn reserve_and_forward(
        &self,
        session: &Session,
        id: &RawValue,
        key: String,
        permit: Permit,
        policy: Arc<Policy>,
        text: &str,
    ) {
        let items: Vec<ReserveItem> = permit
            .reservations
            .iter()
            .map(|r| ReserveItem {
                key: r.key.clone(),
                window: r.window,
                max: r.max,
                amount: r.amount,
            })
            .collect();
        let outcome = self.store.reserve(&items).await;
        let ticket = match outcome {
            Ok(ReserveOutcome::Reserved(ticket)) => Some(ticket),
            Ok(ReserveOutcome::Exceeded { index, .. }) => {
                let Some(InFlight::Call(call)) = session.state.lock().inflight.remove(&key) else {
                    return;
                };
                let Some(limit) = permit.reservations.get(index) else {
                    return;
                };
                let now = self.clock.now_ms();
                let retry_after_ms = limit.window.start_of(now) + limit.window.length_ms - now;
                let meta = DenialMeta {
                    decision: "deny",
                    rule: &limit.rule,
                    policy_revision: &policy.revision,
                    retry_after_ms: Some(retry_after_ms),
                    extra: None,
                };
                let reply =
                    wire::denial_result(id, self.deny_prefix(&policy), &limit.message, &meta);
                self.settle_unforwarded(
                    session,
                    call,
                    "deny",
                    Some(limit.rule.clone()),
                    Some(limit.message.clone()),
                    "not_forwarded",
                )
                .await;
                return session.send_to_client(reply).await;
            }
            Err(error) => match self.options.fail_mode {
                FailMode::Closed => {
                    let Some(InFlight::Call(call)) = session.state.lock().inflight.remove(&key)
                    else {
                        return;
                    };
                    tracing::warn!(session = %session.id, %error, "counter store unavailable; call refused (fail-closed)");
                    let message = "State backend unavailable: this call needs a rate or budget counter and cannot be counted right now, so it was refused. Try again later.";
                    self.settle_unforwarded(
                        session,
                        call,
                        "error",
                        None,
                        Some(message.to_string()),
                        "not_forwarded",
                    )
                    .await;
                    let reply =
                        wire::error_response(Some(id), ErrorCode::StateUnavailable, message);
                    return session.send_to_client(reply).await;
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
            match state.inflight.get_mut(&key) {
                Some(InFlight::Call(call)) if call.phase == CallPhase::Admitting => {
                    call.phase = CallPhase::Forwarded;
                    call.not_counted = ticket.is_none();
                    call.ticket = ticket.clone();
                    AfterReserving::Forward
                }
                Some(InFlight::Call(_)) => match state.inflight.remove(&key) {
                    Some(InFlight::Call(call)) => AfterReserving::Cancelled(call),
                    _ => AfterReserving::Gone,
                },
                _ => AfterReserving::Gone,
            }
        };
        match next {
            AfterReserving::Forward => self.forward_call(session, id, &key, text).await,
            AfterReserving::Cancelled(mut call) => {
                call.ticket = ticket;
                self.settle_unforwarded(session, call, "allow", None, None, "cancelled")
                    .await;
            }
            AfterReserving::Gone => {
                if let Some(ticket) = &ticket {
                    self.rollback(ticket).await;
                }
            }
        }
    }

    /// Forwards an admitted call under a minted id. Should no id be mintable (the client
    /// reused the call's id meanwhile, or has too many requests waiting), the call is refused
    /// and settled unforwarded.
    pub(crate) async fn forward_call(
        &self,
        session: &Session,
        id: &RawValue,
        key: &str,
        text: &str,
    ) {
        let Err(why) = self.forward_request(session, id, key, text).await else {
            return;
        };
        let call = match session.state.lock().inflight.remove(key) {
            Some(InFlight::Call(call)) => call,
            _ => return,
        };
        self.settle_unforwarded(session, call, "error", None, None, "not_forwarded")
            .await;
        self.refuse_unforwardable(session, id, why).await;
    }

    /// Ends a call that was never forwarded: its counters are given back, and so is an
    /// approval it consumed (once forwarded, a call's approval stays consumed whatever the
    /// answer: the server may have run the tool). Then the audit line.
    pub(crate) async fn settle_unforwarded(
        &self,
        session: &Session,
        call: CallInFlight,
        decision: &'static str,
        rule: Option<String>,
        message: Option<String>,
        outcome: &'static str,
    ) {
        if let Some(ticket) = &call.ticket {
            self.rollback(ticket).await;
        }
        if let Some(approval) = &call.approval {
            self.release_approval(approval.to_string());
        }
        self.record_settled(session, call, decision, rule, message, outcome);
    }

    /// Writes the audit line of a call that has ended.
    pub(crate) fn record_settled(
        &self,
        session: &Session,
        call: CallInFlight,
        decision: &'static str,
        rule: Option<String>,
        message: Option<String>,
        outcome: &'static str,
    ) {
        self.audit.record(AuditEvent::Decision(DecisionRecord {
            session: session.id.clone(),
            identity: session.identity.clone(),
            tool: call.tool,
            decision,
            rule: rule.or(call.rule),
            message,
            policy: call.policy,
            counters: call.counters,
            outcome,
            not_counted: call.not_counted,
            latency_us: call.started.elapsed().as_micros() as u64,
            args_hash: call.args_hash,
            approval: call.approval.map(String::from),
        }));
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
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Option<Box<RawValue>> {
        RawValue::from_string(text.to_string()).ok()
    }

    #[test]
    fn params_are_read_strictly() {
        let ok = read_params(
            raw(r#"{"name":"echo","arguments":{"a":1},"_meta":{"progressToken":1}}"#).as_deref(),
        );
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
            assert!(read_params(raw(bad).as_deref()).is_err(), "{bad}");
        }
        assert!(read_params(None).is_err());
    }
}
