//! `explain`: the decision for a call given assumed counter values, with the trace of every
//! rule that was looked at. No side effects: counters are read from the caller's map.

use std::collections::HashMap;

use serde::Serialize;

use crate::amount::Amount;
use crate::decide::{Call, Decision, ShadowDecision, ShadowVerdict, TraceStep};
use crate::ir::Policy;
use crate::window::Window;

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `allow`, `deny`, `hidden` or `approval_required`.
    pub decision: &'static str,
    pub rule: Option<String>,
    pub message: Option<String>,
    /// The risk category whose rules applied (a tool the policy does not name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub reservations: Vec<ExplainedReservation>,
    pub trace: Vec<TraceStep>,
    /// What a dry-run rule (or the policy in shadow mode) would have done to a call the
    /// decision lets through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedReservation {
    pub key: String,
    pub max: Amount,
    pub amount: Amount,
    pub window: Window,
    /// The counter's value assumed for this explanation (0 unless given).
    pub current: Amount,
    /// A dry-run limit's shadow counter.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

impl Policy {
    /// Explains the decision for `call` when the counters hold `counters` (by key; absent
    /// keys are 0).
    pub fn explain(&self, call: &Call<'_>, counters: &HashMap<String, Amount>) -> Explanation {
        self.explain_in_category(call, None, counters)
    }

    /// [`Policy::explain`] for a tool of a known risk category.
    pub fn explain_in_category(
        &self,
        call: &Call<'_>,
        category: Option<&str>,
        counters: &HashMap<String, Amount>,
    ) -> Explanation {
        let applied_category = self
            .applied_category(call.tool, category)
            .map(str::to_string);
        let mut trace: Vec<TraceStep> = Vec::new();
        let decision = self.evaluate_in_category(call, category, &mut trace);
        let permit = match &decision {
            Decision::Allow(p) => Some(p),
            Decision::ApprovalRequired(a) => Some(&a.permit),
            Decision::Deny(_) | Decision::Hidden | Decision::Ambiguous(_) => None,
        };
        let reservations: Vec<ExplainedReservation> = permit
            .map(|p| {
                p.reservations
                    .iter()
                    .map(|r| ExplainedReservation {
                        key: r.key.clone(),
                        max: r.max,
                        amount: r.amount,
                        window: r.window,
                        current: counters.get(&r.key).copied().unwrap_or_default(),
                        shadow: r.shadow,
                    })
                    .collect()
            })
            .unwrap_or_default();

        // The first reservation that does not fit denies the call, as the store would; a
        // shadow one only makes it `would_deny`.
        let mut shadow = permit.and_then(|p| p.shadow.clone());
        if let Some(permit) = permit {
            let (enforced, dry_run): (Vec<_>, Vec<_>) = permit
                .reservations
                .iter()
                .zip(&reservations)
                .partition(|(r, _)| !r.shadow);
            for (r, explained) in enforced.into_iter().chain(dry_run) {
                if explained.current.saturating_add(r.amount) <= r.max {
                    continue;
                }
                let detail = format!(
                    "counter {} is {}; +{} would exceed {}",
                    r.key, explained.current, r.amount, r.max
                );
                if r.shadow {
                    trace.push(TraceStep {
                        rule: r.rule.clone(),
                        result: "would_deny",
                        detail,
                    });
                    shadow = Some(ShadowVerdict {
                        decision: ShadowDecision::WouldDeny,
                        rule: Some(r.rule.clone()),
                        message: Some(r.message.clone()),
                    });
                    break;
                }
                trace.push(TraceStep {
                    rule: r.rule.clone(),
                    result: "deny",
                    detail,
                });
                return Explanation {
                    category: applied_category,
                    decision: "deny",
                    rule: Some(r.rule.clone()),
                    message: Some(r.message.clone()),
                    reservations,
                    trace,
                    shadow: None,
                };
            }
        }

        let (name, rule, message) = match decision {
            Decision::Allow(_) => ("allow", None, None),
            Decision::Deny(d) => ("deny", Some(d.rule), Some(d.message)),
            Decision::Hidden => ("hidden", None, Some(format!("Unknown tool: {}", call.tool))),
            Decision::Ambiguous(m) => ("ambiguous", None, Some(m)),
            Decision::ApprovalRequired(a) => ("approval_required", Some(a.rule), a.message),
        };
        Explanation {
            category: applied_category,
            decision: name,
            rule,
            message,
            reservations,
            trace,
            shadow,
        }
    }
}
