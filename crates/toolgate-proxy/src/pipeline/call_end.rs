//! Every way a `tools/call` ends, in one place: what happens to its counters and approval,
//! the audit line it leaves, and the answer the client gets.
//!
//! Each end is a [`CallEnd`]; [`Gateway::end_call`] settles the call and writes its audit
//! line, and returns the answer to send (if any). Nothing else builds a call's answer or its
//! `DecisionRecord`, so a new way for a call to end is one variant here, not a new answer
//! shape in some corner of the pipeline.

use std::time::Duration;

use serde_json::json;
use serde_json::value::RawValue;
use toolgate_policy::ir::ApprovalMode;
use toolgate_state::{ApprovalRecord, ApprovalState};

use crate::approvals::mode_name;
use crate::audit::{format_rfc3339_ms, AuditDecision, AuditEvent, DecisionRecord, Outcome};
use crate::gateway::Gateway;
use crate::message::ToClient;
use crate::session::{CallInFlight, CallPhase, Session};
use crate::upstream_ids::MintRefusal;
use crate::wire::{self, DenialMeta, ErrorCode};

/// The first words of the answer to a call that waits for a person.
const APPROVAL_PREFIX: &str = "[APPROVAL REQUIRED]";
/// The same in Intercept's wording, for agents tuned to it: used when `deny_prefix` asks for
/// Intercept's words.
const INTERCEPT_APPROVAL_PREFIX: &str = "[INTERCEPT APPROVAL REQUIRED]";

/// The approval prefix that goes with a denial prefix.
fn approval_prefix(deny_prefix: &str) -> &'static str {
    if deny_prefix.starts_with("[INTERCEPT") {
        INTERCEPT_APPROVAL_PREFIX
    } else {
        APPROVAL_PREFIX
    }
}

const APPROVALS_NOT_CONFIGURED: &str =
    "This call requires human approval, and approvals are not configured on this gateway";
const COUNTER_STORE_UNAVAILABLE: &str = "State backend unavailable: this call needs a rate or budget counter and cannot be counted right now, so it was refused. Try again later.";
const APPROVAL_STORE_UNAVAILABLE: &str = "Approval store unavailable: this call needs a person's approval, which cannot be asked for right now, so it was refused. Try again later.";

/// How the server answered a forwarded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerAnswer {
    Result,
    /// A result with `isError: true`: the tool ran and failed.
    ToolError,
    /// A JSON-RPC error: the tool did not run.
    Error,
    /// The gateway behind this one refused the call: the tool did not run.
    RefusedDownstream,
}

impl ServerAnswer {
    /// What an answer says: a JSON-RPC error, a result with `isError: true`, or a result.
    pub(crate) fn of(is_error: bool, result: Option<&str>) -> ServerAnswer {
        if is_error {
            ServerAnswer::Error
        } else if result.is_some_and(super::settle::result_is_error) {
            ServerAnswer::ToolError
        } else {
            ServerAnswer::Result
        }
    }
}

/// How a call ended.
pub(crate) enum CallEnd {
    /// The call reads differently to different readers: never decided.
    Ambiguous(String),
    /// A hidden or unlisted tool: answered as the server answers a tool it does not have.
    Hidden,
    /// Refused by a rule or a limit (`retry_after_ms` for limits).
    Denied {
        rule: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// The policy wants a person's approval, and this gateway keeps no approvals.
    ApprovalsNotConfigured {
        rule: String,
    },
    /// Retry mode: the approval request waits for a person.
    ApprovalPending {
        record: Box<ApprovalRecord>,
        mode: ApprovalMode,
        /// The rule's own words to the agent.
        note: Option<String>,
    },
    /// A person denied the call, or its request was withdrawn or expired.
    ApprovalEnded(Box<ApprovalRecord>),
    /// A held call's client cancelled, or its session ended: nobody to answer.
    ApprovalAbandoned {
        approval: String,
        reason: String,
    },
    ApprovalStoreUnavailable,
    /// The call needed a counter and the store could not be reached (fail-closed).
    CounterStoreUnavailable,
    /// No id could be minted for it (the client reused it, or has too many waiting).
    Unforwardable(MintRefusal),
    /// The client cancelled before the call was forwarded.
    CancelledBeforeForward,
    Answered(ServerAnswer),
    /// The server did not answer within the call timeout.
    Timeout(Duration),
    /// The client cancelled a forwarded call and no result came within the grace period.
    CancelledAfterForward,
    /// The server went away.
    UpstreamGone(String),
}

impl CallEnd {
    fn decision(&self) -> AuditDecision {
        match self {
            CallEnd::Ambiguous(_) => AuditDecision::Ambiguous,
            CallEnd::Hidden => AuditDecision::Hidden,
            // A person's refusal, or the clock's, is audited as a deny: the call was refused.
            CallEnd::Denied { .. } | CallEnd::ApprovalEnded(_) => AuditDecision::Deny,
            CallEnd::ApprovalsNotConfigured { .. }
            | CallEnd::ApprovalPending { .. }
            | CallEnd::ApprovalAbandoned { .. } => AuditDecision::ApprovalRequired,
            CallEnd::ApprovalStoreUnavailable
            | CallEnd::CounterStoreUnavailable
            | CallEnd::Unforwardable(_) => AuditDecision::Error,
            CallEnd::CancelledBeforeForward
            | CallEnd::Answered(_)
            | CallEnd::Timeout(_)
            | CallEnd::CancelledAfterForward
            | CallEnd::UpstreamGone(_) => AuditDecision::Allow,
        }
    }

    fn outcome(&self, phase: CallPhase) -> Outcome {
        match self {
            CallEnd::Answered(ServerAnswer::Result) => Outcome::Result,
            CallEnd::Answered(ServerAnswer::ToolError) => Outcome::ToolError,
            CallEnd::Answered(ServerAnswer::Error) => Outcome::Error,
            CallEnd::Answered(ServerAnswer::RefusedDownstream) => Outcome::RefusedDownstream,
            CallEnd::Timeout(_) => Outcome::Timeout,
            CallEnd::UpstreamGone(_) => Outcome::UpstreamGone,
            CallEnd::CancelledBeforeForward | CallEnd::CancelledAfterForward => Outcome::Cancelled,
            _ if phase == CallPhase::CancelledBeforeForward => Outcome::Cancelled,
            _ => Outcome::NotForwarded,
        }
    }

    /// Whether the call ended at its approval step, before any counter was reserved.
    fn is_approval_step(&self) -> bool {
        matches!(
            self,
            CallEnd::ApprovalPending { .. }
                | CallEnd::ApprovalEnded(_)
                | CallEnd::ApprovalAbandoned { .. }
                | CallEnd::ApprovalStoreUnavailable
        )
    }

    /// The rule the end names, when the call's own entry does not.
    fn rule(&self) -> Option<String> {
        match self {
            CallEnd::Denied { rule, .. } | CallEnd::ApprovalsNotConfigured { rule } => {
                Some(rule.clone())
            }
            CallEnd::ApprovalPending { record, .. } | CallEnd::ApprovalEnded(record) => {
                Some(record.rule.clone())
            }
            _ => None,
        }
    }

    /// The approval request the audit line names.
    fn approval(&self) -> Option<String> {
        match self {
            CallEnd::ApprovalPending { record, .. } | CallEnd::ApprovalEnded(record) => {
                Some(record.id.clone())
            }
            CallEnd::ApprovalAbandoned { approval, .. } => Some(approval.clone()),
            _ => None,
        }
    }

    /// The audit line's message: what the client was told, or why nothing was.
    fn message(&self, deny_prefix: &str) -> Option<String> {
        match self {
            CallEnd::Ambiguous(message) | CallEnd::Denied { message, .. } => Some(message.clone()),
            CallEnd::ApprovalsNotConfigured { .. } => Some(APPROVALS_NOT_CONFIGURED.to_string()),
            CallEnd::ApprovalPending { record, note, .. } => {
                Some(approval_pending_text(record, note.as_deref(), deny_prefix))
            }
            CallEnd::ApprovalEnded(record) => Some(approval_ended(record).1),
            CallEnd::ApprovalAbandoned { reason, .. } => Some(reason.clone()),
            CallEnd::ApprovalStoreUnavailable => Some(APPROVAL_STORE_UNAVAILABLE.to_string()),
            CallEnd::CounterStoreUnavailable => Some(COUNTER_STORE_UNAVAILABLE.to_string()),
            CallEnd::Unforwardable(why) => Some(why.message()),
            CallEnd::UpstreamGone(reason) => Some(reason.clone()),
            CallEnd::Hidden
            | CallEnd::CancelledBeforeForward
            | CallEnd::Answered(_)
            | CallEnd::Timeout(_)
            | CallEnd::CancelledAfterForward => None,
        }
    }

    /// The JSON-RPC answer to the call, when toolgate answers it (a server's answer is
    /// relayed, and a cancelled call is not answered).
    pub(crate) fn answer(
        &self,
        id: &RawValue,
        tool: &str,
        context: &AnswerContext<'_>,
    ) -> Option<ToClient> {
        let denial = |decision: &str, rule: &str, message: &str, retry_after_ms, extra| {
            let meta = DenialMeta {
                decision,
                rule,
                policy_revision: context.revision,
                retry_after_ms,
                extra,
            };
            let text = wire::denial_result(id, context.deny_prefix, message, &meta);
            ToClient::answer(text, Some(id), None)
        };
        let error = |code, message: &str| {
            ToClient::error(
                wire::error_response(Some(id), code, message),
                Some(id),
                code,
            )
        };
        let unrun = !matches!(self, CallEnd::Timeout(_) | CallEnd::UpstreamGone(_));
        let answer = match self {
            CallEnd::Ambiguous(message) => {
                error(ErrorCode::InvalidRequest, &format!("Invalid request: {message}"))
            }
            CallEnd::Hidden => error(ErrorCode::InvalidParams, &wire::unknown_tool_message(tool)),
            CallEnd::Denied {
                rule,
                message,
                retry_after_ms,
            } => denial("deny", rule, message, *retry_after_ms, None),
            CallEnd::ApprovalsNotConfigured { rule } => {
                denial("approval_required", rule, APPROVALS_NOT_CONFIGURED, None, None)
            }
            CallEnd::ApprovalPending { record, mode, note } => {
                let meta = json!({
                    "decision": "approval_required",
                    "rule": record.rule,
                    "policy": context.revision,
                    "approval": {
                        "id": record.id,
                        "status": record.state.as_str(),
                        "mode": mode_name(*mode),
                        "expires_at": format_rfc3339_ms(record.expires_ms),
                        "expires_at_ms": record.expires_ms,
                    },
                });
                let text = approval_pending_text(record, note.as_deref(), context.deny_prefix);
                ToClient::answer(wire::tool_error_result(id, &text, meta), Some(id), None)
            }
            CallEnd::ApprovalEnded(record) => {
                let (decision, message) = approval_ended(record);
                let extra = json!({"approval": {"id": record.id, "status": record.state.as_str()}});
                denial(decision, &record.rule, &message, None, Some(extra))
            }
            CallEnd::ApprovalStoreUnavailable => {
                error(ErrorCode::StateUnavailable, APPROVAL_STORE_UNAVAILABLE)
            }
            CallEnd::CounterStoreUnavailable => {
                error(ErrorCode::StateUnavailable, COUNTER_STORE_UNAVAILABLE)
            }
            CallEnd::Unforwardable(why) => error(ErrorCode::InvalidRequest, &why.message()),
            CallEnd::Timeout(after) => error(
                ErrorCode::UpstreamTimeout,
                &format!(
                    "The server did not answer within {} s. The call counts against its limits: the server may have run it.",
                    after.as_secs()
                ),
            ),
            CallEnd::UpstreamGone(reason) => error(ErrorCode::UpstreamGone, reason),
            CallEnd::ApprovalAbandoned { .. }
            | CallEnd::CancelledBeforeForward
            | CallEnd::Answered(_)
            | CallEnd::CancelledAfterForward => return None,
        };
        Some(if unrun { answer.unrun() } else { answer })
    }
}

/// What an answer needs to know besides the call: the words toolgate answers in.
pub(crate) struct AnswerContext<'a> {
    pub deny_prefix: &'a str,
    pub revision: &'a str,
}

/// The answer to a call whose approval request waits (retry mode).
fn approval_pending_text(record: &ApprovalRecord, note: Option<&str>, deny_prefix: &str) -> String {
    let mut text = format!(
        "{} A person must approve this call before it runs (rule \"{}\").",
        approval_prefix(deny_prefix),
        record.rule
    );
    if let Some(note) = note {
        text.push(' ');
        text.push_str(note.trim_end());
    }
    text.push_str(&format!(
        " Approval request: {}. The tool was not called. Once the request is approved, retry exactly the same call (same tool, same arguments); the request expires at {}.",
        record.id,
        format_rfc3339_ms(record.expires_ms)
    ));
    text
}

/// The decision the answer names, and its words, for a request that ended without approval.
fn approval_ended(record: &ApprovalRecord) -> (&'static str, String) {
    match record.state {
        ApprovalState::Denied => (
            "approval_denied",
            match &record.reason {
                Some(reason) => format!("A person denied this call: {}", reason.trim_end()),
                None => "A person denied this call".to_string(),
            },
        ),
        ApprovalState::Withdrawn => (
            "approval_withdrawn",
            match &record.reason {
                Some(reason) => format!(
                    "Approval request {} was withdrawn: {}",
                    record.id,
                    reason.trim_end()
                ),
                None => format!("Approval request {} was withdrawn", record.id),
            },
        ),
        _ => (
            "approval_expired",
            format!(
                "Nobody approved this call in time (approval request {} expired)",
                record.id
            ),
        ),
    }
}

impl Gateway {
    /// Ends a call: settles its counters and approval, writes its audit line, and returns
    /// the answer the client is to get (none when the server's own answer is relayed, or the
    /// client cancelled).
    ///
    /// Settlement follows one rule. Once forwarded, the server may have run the call, so its
    /// counters are committed and its approval stays consumed — unless the server answered
    /// with a JSON-RPC error (or an `isError` result, when those do not count), the answers
    /// that say the tool did not run or may be retried for free. A call never forwarded
    /// gives its counters and its approval back.
    pub(crate) async fn end_call(
        &self,
        session: &Session,
        id: Option<&RawValue>,
        call: CallInFlight,
        end: CallEnd,
    ) -> Option<ToClient> {
        let forwarded = matches!(
            call.phase,
            CallPhase::Forwarded | CallPhase::CancelledAfterForward
        );
        if forwarded {
            let counts = match end {
                CallEnd::Answered(ServerAnswer::Error | ServerAnswer::RefusedDownstream) => false,
                CallEnd::Answered(ServerAnswer::ToolError) => self.options.count_error_results,
                _ => true,
            };
            if let Some(ticket) = &call.ticket {
                if counts {
                    self.commit(ticket).await;
                } else {
                    self.rollback(ticket).await;
                }
            }
        } else {
            if let Some(ticket) = &call.ticket {
                self.rollback(ticket).await;
            }
            if let Some(approval) = &call.approval {
                self.release_approval(approval.to_string());
            }
        }
        // The policy's words are read only when toolgate answers, or audits what a waiting call
        // was told; not for a server's answer, which is relayed (the common end of a call).
        let policy = (id.is_some() || end.is_approval_step()).then(|| self.policy.load());
        let deny_prefix = policy
            .as_ref()
            .map_or(wire::DEFAULT_DENY_PREFIX, |p| self.deny_prefix(p));
        let context = AnswerContext {
            deny_prefix,
            revision: &call.policy,
        };
        let answer = match (id, call.phase) {
            (_, CallPhase::CancelledBeforeForward) | (None, _) => None,
            (Some(id), _) => end.answer(id, &call.tool, &context),
        };
        // Duplicates waiting on a call the server answered are answered with that answer,
        // where it arrives (`server.rs`); those of a call that ended otherwise, below.
        let ended_without_answer = match (call.idempotency(), &end) {
            (_, CallEnd::Answered(_)) | (None, _) => None,
            (Some((key, _)), _) => Some((key, call.policy.clone())),
        };
        // A call let through although a dry-run rule would have refused it is audited as
        // what that rule would have done.
        let gateway_us = call.gateway_us();
        let (shadow, arguments, redactions, withheld_by, span) = match call.extras {
            Some(e) => (e.shadow, e.arguments, e.redactions, e.withheld_by, e.span),
            None => (None, None, None, None, None),
        };
        let (decision, rule, message) = match (end.decision(), shadow) {
            (AuditDecision::Allow, Some(shadow)) => (
                AuditDecision::from(shadow.decision),
                shadow.rule,
                shadow.message,
            ),
            (decision, _) => (
                decision,
                call.rule.or_else(|| end.rule()),
                end.message(deny_prefix),
            ),
        };
        drop(policy);
        let outcome = end.outcome(call.phase);
        if let (Some(span), Some(tracer)) = (span, &self.options.tracer) {
            let about = SpanFacts {
                tool: &call.tool,
                decision,
                rule: rule.as_deref(),
                outcome,
            };
            tracer.finish(self.call_span(session, span, &about));
        }
        self.audit.record(AuditEvent::Decision(DecisionRecord {
            session: session.id.clone(),
            identity: session.identity.clone(),
            decision,
            rule,
            message,
            policy: call.policy,
            outcome,
            not_counted: call.not_counted,
            latency_us: call.started.elapsed().as_micros() as u64,
            gateway_us,
            args_hash: call.args_hash.map(String::from),
            approval: end.approval().or(call.approval.map(String::from)),
            arguments,
            redactions,
            withheld_by,
            // A call still waiting on a person has reserved nothing yet.
            counters: if end.is_approval_step() {
                Vec::new()
            } else {
                call.counters
            },
            tool: call.tool,
        }));
        if let Some((key, revision)) = ended_without_answer {
            // Not holding the snapshot above across the wait.
            let policy = self.policy.load_full();
            let context = AnswerContext {
                deny_prefix: self.deny_prefix(&policy),
                revision: &revision,
            };
            self.end_duplicates(key, &end, &context).await;
        }
        answer
    }
}

/// What a call's span says about how it ended.
struct SpanFacts<'a> {
    tool: &'a str,
    decision: AuditDecision,
    rule: Option<&'a str>,
    outcome: Outcome,
}

impl Gateway {
    /// A call's finished span, with the conventions' attributes and toolgate's own.
    fn call_span(
        &self,
        session: &Session,
        span: crate::otel::CallSpan,
        facts: &SpanFacts<'_>,
    ) -> crate::otel::FinishedSpan {
        use crate::otel::AttributeValue::Str;
        let error_type = crate::metrics::error_type(facts.decision, facts.outcome);
        let mut attributes = vec![
            ("mcp.method.name", Str("tools/call".into())),
            ("gen_ai.operation.name", Str("execute_tool".into())),
            ("gen_ai.tool.name", Str(facts.tool.to_string())),
            ("mcp.session.id", Str(session.id.clone())),
            ("jsonrpc.request.id", Str(span.request_id)),
            (
                "toolgate.decision",
                Str(crate::metrics::decision_label(facts.decision).into()),
            ),
        ];
        if let Some(version) = session.protocol_version() {
            attributes.push(("mcp.protocol.version", Str(version)));
        }
        if !error_type.is_empty() {
            attributes.push(("error.type", Str(error_type.into())));
        }
        if let Some(rule) = facts.rule {
            attributes.push(("toolgate.rule", Str(rule.into())));
        }
        if let Some(server) = self.audit.server() {
            attributes.push(("toolgate.server", Str(server.into())));
        }
        crate::otel::FinishedSpan {
            context: span.context,
            parent: span.parent,
            name: format!("tools/call {}", facts.tool),
            start_unix_nanos: span.start_unix_nanos,
            end_unix_nanos: crate::otel::unix_nanos(),
            attributes,
            error: (!error_type.is_empty()).then(|| error_type.to_string()),
        }
    }
}
