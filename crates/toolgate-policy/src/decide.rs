//! Deciding one tool call from one policy snapshot: pure, allocation-light, no I/O.
//!
//! Order (each step can end the decision):
//! 1. a hidden tool is `Hidden`; with `default: deny`, so is a tool the policy does not list
//!    (wildcard rules never rescue it);
//! 2. the tool's own rules in file order, then the `"*"` rules in file order: the first rule
//!    whose conditions deny decides; `require_approval` rules that match are remembered, since a
//!    later matching `deny` still wins;
//! 3. every limit of every rule becomes a [`Reservation`]; the caller reserves them all at once
//!    in its counter store and denies with the first that does not fit.
//!
//! Argument checks run before counters are touched, so a call that breaks an argument rule
//! never reads or moves a counter.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::amount::Amount;
use crate::args::Lookup;
use crate::caller::Caller;
use crate::counter_key::KeyError;
use crate::ir::{
    ApprovalSettings, Condition, ConditionPath, DefaultAction, Effect, Increment, Limit, Policy,
    PolicyMode, Rule,
};
use crate::operators::{evaluate, Truth};
use crate::window::Window;

pub use crate::counter_key::counter_key;

/// A `tools/call` as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub tool: &'a str,
    /// The call's `arguments` (an object; `Null` when absent).
    pub arguments: &'a Value,
    /// The client session, for `scope: session` counters.
    pub session: Option<&'a str>,
    /// Who is calling, for `scope: identity` counters.
    pub identity: Option<&'a str>,
    /// What `identity.…` conditions read: the caller's name, and its token's scopes and
    /// claims (none: every such path is missing).
    pub caller: Option<&'a Caller>,
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward the call once these reservations are taken.
    Allow(Permit),
    /// Answer with a denial; the server never sees the call.
    Deny(Denial),
    /// Answer exactly as a server answers an unknown tool.
    Hidden,
    /// A person must approve the call first; the permit applies once it is forwarded.
    ApprovalRequired(ApprovalRequest),
    /// The arguments can be read two ways (a member that differs from a name the policy
    /// reads only by case folding): the call is refused as malformed, never decided.
    Ambiguous(String),
}

/// Counters an allowed call must reserve before it is forwarded.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Permit {
    /// The enforced reservations first, then the shadow ones (`shadow: true`): a shadow
    /// limit that does not fit makes the call `would_deny`, never refuses it.
    pub reservations: Vec<Reservation>,
    /// What a dry-run rule (or a policy in shadow mode) would have done to this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowVerdict>,
}

impl Permit {
    /// The reservations that refuse a call when they do not fit.
    pub fn enforced(&self) -> impl Iterator<Item = &Reservation> {
        self.reservations.iter().filter(|r| !r.shadow)
    }
}

/// What a shadowed rule would have done to a call that goes through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowVerdict {
    pub decision: ShadowDecision,
    /// The rule that would have decided (none for a tool that would be hidden).
    pub rule: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowDecision {
    WouldDeny,
    WouldHide,
    WouldRequireApproval,
}

impl ShadowDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowDecision::WouldDeny => "would_deny",
            ShadowDecision::WouldHide => "would_hide",
            ShadowDecision::WouldRequireApproval => "would_require_approval",
        }
    }
}

/// Shadow counters are counters of their own: a rule that leaves dry-run starts afresh
/// rather than inheriting counts of calls it never refused.
pub const SHADOW_KEY_PREFIX: &str = "shadow:";

/// One counter increment, with the limit it must stay within.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reservation {
    /// The counter's identity, e.g. `create_issue._rate_hour` or
    /// `_global.calls@session:"abc"`; stores add the window to it.
    pub key: String,
    pub max: Amount,
    pub amount: Amount,
    pub window: Window,
    /// The rule that owns the limit, and what to tell the agent when it is reached.
    pub rule: String,
    pub message: String,
    /// A dry-run limit: counted in a shadow counter, never refuses the call.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Denial {
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    pub rule: String,
    pub message: Option<String>,
    pub settings: ApprovalSettings,
    pub permit: Permit,
}

/// One step of an explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStep {
    pub rule: String,
    pub result: &'static str,
    pub detail: String,
}

/// Where evaluation reports its steps; the hot path passes [`NoTrace`].
pub trait Tracer {
    fn step(&mut self, rule: &Rule, result: &'static str, detail: impl FnOnce() -> String);
}

pub struct NoTrace;

impl Tracer for NoTrace {
    #[inline]
    fn step(&mut self, _: &Rule, _: &'static str, _: impl FnOnce() -> String) {}
}

impl Tracer for Vec<TraceStep> {
    fn step(&mut self, rule: &Rule, result: &'static str, detail: impl FnOnce() -> String) {
        self.push(TraceStep {
            rule: rule.name.clone(),
            result,
            detail: detail(),
        });
    }
}

impl Policy {
    /// Decides a call.
    pub fn decide(&self, call: &Call<'_>) -> Decision {
        self.evaluate_in_category(call, None, &mut NoTrace)
    }

    /// Decides a call to a tool whose risk category is known: a tool the policy does not name
    /// takes its own rules from `categories.<category>`.
    pub fn decide_in_category(&self, call: &Call<'_>, category: Option<&str>) -> Decision {
        self.evaluate_in_category(call, category, &mut NoTrace)
    }

    /// How long an identical call to `tool` (same identity and canonical arguments) gets the
    /// first one's answer instead of being forwarded again (`idempotency_window`), in ms.
    pub fn idempotency_window_ms(&self, tool: &str) -> Option<u64> {
        if self.idempotency_windows.is_empty() {
            // The common case, on every call: no hashing of the tool name.
            return None;
        }
        let own = self.idempotency_windows.get(tool);
        let every = self.idempotency_windows.get("*");
        own.into_iter().chain(every).copied().max()
    }

    /// The `redact` rules a result of `tool` goes through: its own, then the `"*"` ones (each
    /// rule once).
    pub fn redactions_for(&self, tool: &str) -> Vec<&crate::redact::Redaction> {
        if self.redactions.is_empty() {
            return Vec::new();
        }
        let mut rules: Vec<&crate::redact::Redaction> = Vec::new();
        let own = self.redactions.get(tool).into_iter().flatten();
        for rule in own.chain(self.redactions.get("*").into_iter().flatten()) {
            if !rules.iter().any(|r| r.name == rule.name) {
                rules.push(rule);
            }
        }
        rules
    }

    /// Whether any `categories` rules exist (the gateway then needs to know tool categories).
    pub fn has_category_rules(&self) -> bool {
        !self.categories.is_empty()
    }

    /// The category whose rules apply to `tool`, if any: only for tools the policy does not
    /// name, and only when that category has rules.
    pub fn applied_category<'a>(&self, tool: &str, category: Option<&'a str>) -> Option<&'a str> {
        category.filter(|c| !self.tools.contains_key(tool) && self.categories.contains_key(*c))
    }

    /// Whether a tool appears in `tools/list` for clients of this policy (in shadow mode,
    /// every tool does).
    pub fn is_visible(&self, tool: &str) -> bool {
        self.mode == PolicyMode::Shadow || self.would_list(tool)
    }

    /// Whether the policy, enforced, lists the tool.
    fn would_list(&self, tool: &str) -> bool {
        !self.hidden.contains(tool)
            && (self.default == DefaultAction::Allow || self.tools.contains_key(tool))
    }

    /// Decides a call, reporting each rule's outcome to `tracer`.
    pub fn evaluate(&self, call: &Call<'_>, tracer: &mut impl Tracer) -> Decision {
        self.evaluate_in_category(call, None, tracer)
    }

    /// [`Policy::evaluate`] for a tool of a known risk category.
    pub fn evaluate_in_category(
        &self,
        call: &Call<'_>,
        category: Option<&str>,
        tracer: &mut impl Tracer,
    ) -> Decision {
        let shadow_all = self.mode == PolicyMode::Shadow;
        let mut permit = Permit::default();
        if !self.would_list(call.tool) {
            if !shadow_all {
                return Decision::Hidden;
            }
            // Evaluation goes on: an ambiguous call is refused even in shadow mode.
            permit.shadow = Some(ShadowVerdict {
                decision: ShadowDecision::WouldHide,
                rule: None,
                message: None,
            });
        }
        let own = match self.tools.get(call.tool) {
            Some(rules) => rules.as_slice(),
            None => self
                .applied_category(call.tool, category)
                .and_then(|c| self.categories.get(c))
                .map(Vec::as_slice)
                .unwrap_or_default(),
        };
        let mut shadow_reservations = Vec::new();
        let mut approval: Option<(&Rule, &ApprovalSettings)> = None;
        for rule in own.iter().chain(self.wildcard.iter()) {
            let shadowed = shadow_all || rule.dry_run;
            let verdict = match judge(rule, call.arguments, call.caller) {
                Ok(v) => v,
                Err(message) => {
                    tracer.step(rule, "ambiguous", || message.clone());
                    return Decision::Ambiguous(message);
                }
            };
            // An `Unknown` condition counts as the restrictive outcome for every kind of
            // rule: it fails a `require`, and it matches a `deny` or `require_approval`.
            let deny = match &rule.effect {
                Effect::Require => verdict.first_not_true.is_some(),
                Effect::Deny => verdict.first_false.is_none(),
                Effect::Allow => false,
                Effect::RequireApproval(_) if shadowed => {
                    if verdict.first_false.is_none() {
                        let message = rule.message.clone();
                        note_shadow(
                            &mut permit.shadow,
                            ShadowDecision::WouldRequireApproval,
                            rule,
                            message,
                        );
                    }
                    false
                }
                Effect::RequireApproval(settings) => {
                    if verdict.first_false.is_none() && approval.is_none() {
                        approval = Some((rule, settings));
                    }
                    false
                }
            };
            if deny {
                let result = if shadowed { "would_deny" } else { "deny" };
                tracer.step(rule, result, || {
                    match (&rule.effect, verdict.first_not_true) {
                        (Effect::Require, Some((c, Truth::Unknown))) => {
                            format!(
                                "condition could not be evaluated (counts as failed): {}",
                                c.text
                            )
                        }
                        (Effect::Require, Some((c, _))) => format!("condition failed: {}", c.text),
                        _ if rule.conditions.is_empty() => "denies every call".to_string(),
                        _ if verdict.unknown => {
                            "every condition matched or could not be evaluated (counts as matched)"
                                .to_string()
                        }
                        _ => "every condition matched".to_string(),
                    }
                });
                if shadowed {
                    // A denying rule never reaches its limits, in the shadow world too.
                    let message = Some(rule_message(rule));
                    note_shadow(&mut permit.shadow, ShadowDecision::WouldDeny, rule, message);
                    continue;
                }
                return Decision::Deny(Denial {
                    rule: rule.name.clone(),
                    message: rule_message(rule),
                });
            }
            for limit in &rule.limits {
                match reservation(rule, limit, call) {
                    Ok(mut r) if shadowed => {
                        r.shadow = true;
                        r.key.insert_str(0, SHADOW_KEY_PREFIX);
                        shadow_reservations.push(r);
                    }
                    Ok(r) => permit.reservations.push(r),
                    Err(LimitProblem::Ambiguous(message)) => {
                        tracer.step(rule, "ambiguous", || message.clone());
                        return Decision::Ambiguous(message);
                    }
                    Err(LimitProblem::Refused(message)) if shadowed => {
                        tracer.step(rule, "would_deny", || message.clone());
                        note_shadow(
                            &mut permit.shadow,
                            ShadowDecision::WouldDeny,
                            rule,
                            Some(message),
                        );
                        break;
                    }
                    Err(LimitProblem::Refused(message)) => {
                        tracer.step(rule, "deny", || message.clone());
                        return Decision::Deny(Denial {
                            rule: rule.name.clone(),
                            message,
                        });
                    }
                }
            }
            let matched = verdict.first_false.is_none();
            let result = match step_result(rule, matched) {
                "approval_required" if shadowed => "would_require_approval",
                result => result,
            };
            tracer.step(rule, result, || describe_pass(rule, matched));
        }
        match approval {
            // A call held for a person is decided by the enforced rules alone: what it
            // reserves once approved must never include a limit that cannot refuse it.
            Some((rule, settings)) => Decision::ApprovalRequired(ApprovalRequest {
                rule: rule.name.clone(),
                message: rule.message.clone(),
                settings: settings.clone(),
                permit: Permit {
                    reservations: permit.reservations,
                    shadow: None,
                },
            }),
            None => {
                // In the shadow world a refused call counts nothing, as it would enforced.
                if permit.shadow.is_none() {
                    permit.reservations.extend(shadow_reservations);
                }
                Decision::Allow(permit)
            }
        }
    }
}

/// Records what a shadowed rule would do, keeping what the policy enforced would have
/// answered: the first refusal, which beats an earlier approval (as a deny beats an approval),
/// and a hidden tool above all.
fn note_shadow(
    verdict: &mut Option<ShadowVerdict>,
    decision: ShadowDecision,
    rule: &Rule,
    message: Option<String>,
) {
    let replace = match verdict.as_ref().map(|v| v.decision) {
        None => true,
        Some(ShadowDecision::WouldRequireApproval) => decision == ShadowDecision::WouldDeny,
        Some(_) => false,
    };
    if replace {
        *verdict = Some(ShadowVerdict {
            decision,
            rule: Some(rule.name.clone()),
            message,
        });
    }
}

fn step_result(rule: &Rule, all_matched: bool) -> &'static str {
    match rule.effect {
        Effect::RequireApproval(_) if all_matched => "approval_required",
        Effect::RequireApproval(_) => "skip",
        _ if !rule.limits.is_empty() => "reserve",
        _ => "pass",
    }
}

fn describe_pass(rule: &Rule, all_matched: bool) -> String {
    let mut detail = match (&rule.effect, all_matched) {
        (Effect::Allow, _) => "allows the call".to_string(),
        (Effect::Deny, _) => "conditions did not all match".to_string(),
        (Effect::RequireApproval(_), true) => "conditions matched: needs approval".to_string(),
        (Effect::RequireApproval(_), false) => {
            "conditions did not all match: no approval needed".to_string()
        }
        (Effect::Require, _) if rule.conditions.is_empty() => String::new(),
        (Effect::Require, _) => "every condition held".to_string(),
    };
    for limit in &rule.limits {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        let _ = write!(
            detail,
            "counter {} limited to {} per {}",
            limit.counter, limit.max, limit.window
        );
    }
    detail
}

fn rule_message(rule: &Rule) -> String {
    rule.message
        .clone()
        .unwrap_or_else(|| format!("Denied by rule {:?}.", rule.name))
}

/// How a rule's conditions came out for one call.
struct Verdict<'r> {
    /// The first condition that is not certainly true, and what it was.
    first_not_true: Option<(&'r Condition, Truth)>,
    /// The first condition that is certainly false.
    first_false: Option<&'r Condition>,
    /// Whether any condition could not be evaluated.
    unknown: bool,
}

/// Evaluates every condition of a rule (none is skipped, so an ambiguous member anywhere in
/// a rule the call reaches is always found).
fn judge<'r>(
    rule: &'r Rule,
    arguments: &Value,
    caller: Option<&Caller>,
) -> Result<Verdict<'r>, String> {
    let mut verdict = Verdict {
        first_not_true: None,
        first_false: None,
        unknown: false,
    };
    for condition in &rule.conditions {
        let truth = match &condition.path {
            ConditionPath::Argument(path) => match path.lookup(arguments) {
                Lookup::Found(value) => evaluate(&condition.operator, Some(value)),
                Lookup::Missing => evaluate(&condition.operator, None),
                Lookup::Ambiguous { member, path } => return Err(ambiguous_member(&member, &path)),
            },
            // The caller comes from the listener's token check, not from the client's
            // message: there is no second reader to disagree with.
            ConditionPath::Identity(path) => {
                evaluate(&condition.operator, path.value(caller).as_ref())
            }
        };
        if truth != Truth::True && verdict.first_not_true.is_none() {
            verdict.first_not_true = Some((condition, truth));
        }
        if truth == Truth::False && verdict.first_false.is_none() {
            verdict.first_false = Some(condition);
        }
        verdict.unknown |= truth == Truth::Unknown;
    }
    Ok(verdict)
}

fn ambiguous_member(member: &str, path: &str) -> String {
    format!(
        "argument member {member:?} differs from {path} only in case; a case-insensitive server would read it as {path}"
    )
}

/// Why a limit could not be turned into a reservation.
enum LimitProblem {
    /// The call is malformed (`-32600`).
    Ambiguous(String),
    /// The call is denied with this message.
    Refused(String),
}

/// The counter key and amount this call reserves under a limit.
fn reservation(rule: &Rule, limit: &Limit, call: &Call<'_>) -> Result<Reservation, LimitProblem> {
    let refused = |m: String| Err(LimitProblem::Refused(m));
    let amount = match &limit.increment {
        Increment::Fixed(a) => *a,
        Increment::FromArgument(path) => {
            let number = match path.lookup(call.arguments) {
                Lookup::Found(Value::Number(n)) => n,
                Lookup::Found(_) => {
                    return refused(format!("Argument {path} must be a number to be counted."))
                }
                Lookup::Missing => {
                    return refused(format!("Argument {path} is required to count this call."))
                }
                Lookup::Ambiguous { member, path } => {
                    return Err(LimitProblem::Ambiguous(ambiguous_member(&member, &path)))
                }
            };
            match Amount::from_json_number(number) {
                Ok(a) if a.is_negative() => {
                    return refused(format!("Argument {path} must not be negative."))
                }
                Ok(a) => a,
                Err(e) => return refused(format!("Argument {path} cannot be counted: {e}.")),
            }
        }
    };
    let key = match counter_key(limit, call) {
        Ok(key) => key,
        Err(KeyError::Ambiguous { member, path }) => {
            return Err(LimitProblem::Ambiguous(ambiguous_member(&member, &path)))
        }
    };
    Ok(Reservation {
        key,
        max: limit.max,
        amount,
        window: limit.window,
        rule: rule.name.clone(),
        message: rule_message(rule),
        shadow: false,
    })
}
