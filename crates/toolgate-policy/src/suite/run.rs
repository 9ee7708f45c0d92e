//! Running a case: each call decided as the gateway would, counters carried from one call to
//! the next.

use std::collections::HashSet;

use serde_json::Value;

use super::{Case, Outcome};
use crate::decide::{Call, ShadowDecision};
use crate::explain::Explanation;
use crate::fold::fold;
use crate::ir::Policy;

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// The first call that did not get what the case expects; `None` when the case passed.
    pub failure: Option<CallFailure>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// A call whose decision was not the expected one.
#[derive(Debug, Clone)]
pub struct CallFailure {
    /// Which call of the sequence, from 1, and how many the case makes.
    pub call: usize,
    pub calls: usize,
    pub expected: Outcome,
    pub got: Outcome,
    /// What was wrong, in one sentence.
    pub reason: String,
    /// The decision with its trace, as `explain` shows it.
    pub explanation: Explanation,
}

impl Case {
    /// Makes the case's calls in order, stopping at the first whose decision differs.
    pub fn run(&self, policy: &Policy) -> CaseResult {
        let mut counters = self.counters.clone();
        let call = Call {
            tool: &self.tool,
            arguments: &self.arguments,
            session: self.session.as_deref(),
            identity: self.identity.as_deref(),
            caller: None,
        };
        let refused = colliding_members(&self.arguments);
        for (index, &expected) in self.expect.iter().enumerate() {
            let explanation = match &refused {
                Some(message) => malformed(message),
                None => policy.explain_in_category(&call, self.category.as_deref(), &counters),
            };
            let got = outcome_of(&explanation);
            let reason = if got != expected {
                Some(format!("expected {expected}, got {got}"))
            } else {
                self.rule
                    .as_ref()
                    .filter(|_| expected.has_rule())
                    .filter(|want| deciding_rule(&explanation) != Some(*want))
                    .map(|want| match deciding_rule(&explanation) {
                        Some(rule) => format!("expected rule {want:?} to decide, but {rule:?} did"),
                        None => format!("expected rule {want:?} to decide, but no rule did"),
                    })
            };
            if let Some(reason) = reason {
                return CaseResult {
                    name: self.name.clone(),
                    failure: Some(CallFailure {
                        call: index + 1,
                        calls: self.expect.len(),
                        expected,
                        got,
                        reason,
                        explanation,
                    }),
                };
            }
            if got.is_forwarded() {
                // The call is forwarded: the store keeps what it reserved (the shadow
                // counters only when the shadow world lets the call through as well).
                let shadow_counts = explanation.shadow.is_none();
                for r in explanation
                    .reservations
                    .iter()
                    .filter(|r| !r.shadow || shadow_counts)
                {
                    let counter = counters.entry(r.key.clone()).or_default();
                    *counter = counter.saturating_add(r.amount);
                }
            }
        }
        CaseResult {
            name: self.name.clone(),
            failure: None,
        }
    }
}

fn outcome_of(explanation: &Explanation) -> Outcome {
    match explanation.decision {
        "allow" => match explanation.shadow.as_ref().map(|s| s.decision) {
            None => Outcome::Allow,
            Some(ShadowDecision::WouldDeny) => Outcome::WouldDeny,
            Some(ShadowDecision::WouldHide) => Outcome::WouldHide,
            Some(ShadowDecision::WouldRequireApproval) => Outcome::WouldRequireApproval,
        },
        "hidden" => Outcome::Hidden,
        "approval_required" => Outcome::Approval,
        "ambiguous" => Outcome::Malformed,
        // "deny", and anything a later kind of decision may be called: not let through.
        _ => Outcome::Deny,
    }
}

/// The gateway refuses, before any policy sees it, a message with two members that a
/// case-insensitive decoder would take for one; a case with such arguments gets that answer.
fn colliding_members(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => {
            let mut seen = HashSet::with_capacity(map.len());
            for key in map.keys() {
                if !seen.insert(fold(key)) {
                    return Some(format!(
                        "argument member {key:?} differs from another only in case; the gateway refuses the call as malformed"
                    ));
                }
            }
            map.values().find_map(colliding_members)
        }
        Value::Array(items) => items.iter().find_map(colliding_members),
        _ => None,
    }
}

fn malformed(message: &str) -> Explanation {
    Explanation {
        decision: "ambiguous",
        rule: None,
        message: Some(message.to_string()),
        category: None,
        reservations: Vec::new(),
        trace: Vec::new(),
        shadow: None,
    }
}

/// The rule that decided, or for a call let through in shadow, the rule that would have.
fn deciding_rule(explanation: &Explanation) -> Option<&String> {
    match &explanation.shadow {
        Some(shadow) if explanation.decision == "allow" => shadow.rule.as_ref(),
        _ => explanation.rule.as_ref(),
    }
}
