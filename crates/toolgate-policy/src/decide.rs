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
use crate::counter_key::KeyError;
use crate::ir::{
    ApprovalSettings, Condition, DefaultAction, Effect, Increment, Limit, Policy, Rule,
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
    pub reservations: Vec<Reservation>,
}

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

    /// Whether any `categories` rules exist (the gateway then needs to know tool categories).
    pub fn has_category_rules(&self) -> bool {
        !self.categories.is_empty()
    }

    /// The category whose rules apply to `tool`, if any: only for tools the policy does not
    /// name, and only when that category has rules.
    pub fn applied_category<'a>(&self, tool: &str, category: Option<&'a str>) -> Option<&'a str> {
        category.filter(|c| !self.tools.contains_key(tool) && self.categories.contains_key(*c))
    }

    /// Whether a tool appears in `tools/list` for clients of this policy.
    pub fn is_visible(&self, tool: &str) -> bool {
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
        if !self.is_visible(call.tool) {
            return Decision::Hidden;
        }
        let own = match self.tools.get(call.tool) {
            Some(rules) => rules.as_slice(),
            None => self
                .applied_category(call.tool, category)
                .and_then(|c| self.categories.get(c))
                .map(Vec::as_slice)
                .unwrap_or_default(),
        };
        let mut permit = Permit::default();
        let mut approval: Option<(&Rule, &ApprovalSettings)> = None;
        for rule in own.iter().chain(self.wildcard.iter()) {
            let verdict = match judge(rule, call.arguments) {
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
                Effect::RequireApproval(settings) => {
                    if verdict.first_false.is_none() && approval.is_none() {
                        approval = Some((rule, settings));
                    }
                    false
                }
            };
            if deny {
                tracer.step(rule, "deny", || {
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
                return Decision::Deny(Denial {
                    rule: rule.name.clone(),
                    message: rule_message(rule),
                });
            }
            for limit in &rule.limits {
                match reservation(rule, limit, call) {
                    Ok(r) => permit.reservations.push(r),
                    Err(LimitProblem::Ambiguous(message)) => {
                        tracer.step(rule, "ambiguous", || message.clone());
                        return Decision::Ambiguous(message);
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
            tracer.step(rule, step_result(rule, matched), || {
                describe_pass(rule, matched)
            });
        }
        match approval {
            Some((rule, settings)) => Decision::ApprovalRequired(ApprovalRequest {
                rule: rule.name.clone(),
                message: rule.message.clone(),
                settings: settings.clone(),
                permit,
            }),
            None => Decision::Allow(permit),
        }
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
fn judge<'r>(rule: &'r Rule, arguments: &Value) -> Result<Verdict<'r>, String> {
    let mut verdict = Verdict {
        first_not_true: None,
        first_false: None,
        unknown: false,
    };
    for condition in &rule.conditions {
        let truth = match condition.path.lookup(arguments) {
            Lookup::Found(value) => evaluate(&condition.operator, Some(value)),
            Lookup::Missing => evaluate(&condition.operator, None),
            Lookup::Ambiguous { member, path } => return Err(ambiguous_member(&member, &path)),
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
    })
}
