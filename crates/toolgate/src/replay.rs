//! Re-deciding the calls an audit log recorded under another policy: which decisions would
//! change, and which cannot be known from what the log holds.
//!
//! Calls are replayed in time order against a counter store of their own (in memory, its clock
//! set to each call's time), so rate and spend limits count as they would have: a call that
//! goes through under the new policy counts, and is given back when the server answered it
//! with a JSON-RPC error (or, never forwarded before, counts as if it ran).
//!
//! Nothing is guessed. A decision that reads argument values is re-decided only when the log
//! holds them (`audit: {arguments: full}`, or `redacted` for the values that view keeps);
//! otherwise the call is *undetermined*. So is a call to a tool whose rules come from its risk
//! category (the log does not record categories), and a call that needs a counter an
//! undetermined call before it may have moved.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use toolgate_policy::args::Lookup;
use toolgate_policy::{Call, Decision, Permit, Policy, ShadowDecision};
use toolgate_state::{CounterStore, ManualClock, MemoryStore, ReserveItem, ReserveOutcome};

/// One `decision` line of the audit log, as replay reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Recorded {
    pub ts: String,
    #[serde(skip)]
    pub ms: u64,
    #[serde(default)]
    pub session: String,
    pub identity: Option<String>,
    pub tool: String,
    pub decision: String,
    pub rule: Option<String>,
    #[serde(default)]
    pub outcome: String,
    pub approval: Option<String>,
    pub arguments: Option<Value>,
    pub arguments_redacted: Option<Value>,
}

/// How one recorded call fares under the new policy.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub ts: String,
    pub tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub old: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_rule: Option<String>,
    /// The new decision; `None` when it cannot be known.
    pub new: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_rule: Option<String>,
    /// Why the new decision cannot be known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undetermined: Option<&'static str>,
}

impl Replayed {
    pub fn changed(&self) -> bool {
        self.new.as_ref().is_some_and(|new| *new != self.old)
    }
}

/// Decisions that are not the policy's to re-take: a duplicate was never decided, an error
/// and an ambiguous call were refused before or after the policy.
pub const NOT_REPLAYED: [&str; 3] = ["duplicate", "error", "ambiguous"];

const NEEDS_VALUES: &str = "the decision reads argument values the log does not hold";
const NEEDS_CATEGORY: &str =
    "the tool's rules come from its risk category, which the log does not record";
const NEEDS_COUNTERS: &str =
    "a counter it needs may have been moved by an undetermined call before it";

pub struct Replayer<'p> {
    policy: &'p Policy,
    clock: Arc<ManualClock>,
    store: MemoryStore,
    runtime: tokio::runtime::Runtime,
    /// Counters (`<namespace>.<counter>`, any partition) an undetermined call may have moved.
    uncertain: HashSet<String>,
    /// Tools every counter of which an undetermined call may have moved.
    uncertain_tools: HashSet<String>,
}

impl<'p> Replayer<'p> {
    pub fn new(policy: &'p Policy) -> anyhow::Result<Replayer<'p>> {
        let clock = Arc::new(ManualClock::new(0));
        Ok(Replayer {
            policy,
            store: MemoryStore::new("replay", clock.clone()),
            clock,
            runtime: tokio::runtime::Builder::new_current_thread().build()?,
            uncertain: HashSet::new(),
            uncertain_tools: HashSet::new(),
        })
    }

    /// Re-decides one call; calls must come in time order.
    pub fn replay(&mut self, call: &Recorded) -> Replayed {
        self.clock.set(call.ms);
        let mut replayed = Replayed {
            ts: call.ts.clone(),
            tool: call.tool.clone(),
            identity: call.identity.clone(),
            old: call.decision.clone(),
            old_rule: call.rule.clone(),
            new: None,
            new_rule: None,
            undetermined: None,
        };
        let arguments = match self.arguments_for(call) {
            Ok(arguments) => arguments,
            Err(why) => {
                self.mark_uncertain(&call.tool);
                replayed.undetermined = Some(why);
                return replayed;
            }
        };
        let decision = self.policy.decide(&Call {
            tool: &call.tool,
            arguments: &arguments,
            session: Some(&call.session),
            identity: call.identity.as_deref(),
            caller: None,
        });
        let (new, rule) = match decision {
            Decision::Allow(permit) => {
                if permit
                    .reservations
                    .iter()
                    .any(|r| self.is_uncertain(&r.key))
                {
                    self.mark_uncertain(&call.tool);
                    replayed.undetermined = Some(NEEDS_COUNTERS);
                    return replayed;
                }
                self.count(call, permit)
            }
            Decision::Deny(d) => ("deny".to_string(), Some(d.rule)),
            Decision::Hidden => ("hidden".to_string(), None),
            Decision::Ambiguous(_) => ("ambiguous".to_string(), None),
            // The person who approved it before would be asked again: the same outcome.
            Decision::ApprovalRequired(_)
                if call.approval.is_some() && call.decision == "allow" =>
            {
                ("allow".to_string(), None)
            }
            Decision::ApprovalRequired(a) => ("approval_required".to_string(), Some(a.rule)),
        };
        replayed.new = Some(new);
        replayed.new_rule = rule;
        replayed
    }

    /// The arguments to decide with, or why there are none good enough.
    fn arguments_for(&self, call: &Recorded) -> Result<Value, &'static str> {
        let reads = self
            .policy
            .argument_reads(&call.tool, None)
            .ok_or(NEEDS_CATEGORY)?;
        if let Some(full) = &call.arguments {
            return Ok(full.clone());
        }
        let empty = || Value::Object(Default::default());
        if reads.is_empty() {
            return Ok(call.arguments_redacted.clone().unwrap_or_else(empty));
        }
        let Some(redacted) = &call.arguments_redacted else {
            return Err(NEEDS_VALUES);
        };
        // The redacted view keeps booleans and small numbers; any string in it is a type name
        // standing for a value it does not show.
        for path in reads {
            match path.lookup(redacted) {
                Lookup::Found(Value::Bool(_) | Value::Number(_) | Value::Null)
                | Lookup::Missing => {}
                _ => return Err(NEEDS_VALUES),
            }
        }
        Ok(redacted.clone())
    }

    /// Reserves an allowed call's counters as the gateway would, and settles them as the
    /// recorded call was settled.
    fn count(&mut self, call: &Recorded, permit: Permit) -> (String, Option<String>) {
        let mut verdict = permit
            .shadow
            .as_ref()
            .map(|s| (s.decision.as_str().to_string(), s.rule.clone()));
        let mut items: Vec<&toolgate_policy::Reservation> = permit.reservations.iter().collect();
        while !items.is_empty() {
            let reserve: Vec<ReserveItem> = items.iter().copied().map(ReserveItem::from).collect();
            match self.runtime.block_on(self.store.reserve(&reserve)) {
                Ok(ReserveOutcome::Reserved(ticket)) => {
                    // A JSON-RPC error answer gives the quota back, in replay as at the gateway.
                    if call.outcome == "error" {
                        let _ = self.runtime.block_on(self.store.rollback(&ticket));
                    }
                    break;
                }
                Ok(ReserveOutcome::Exceeded { index, .. }) => {
                    let limit = items[index];
                    if !limit.shadow {
                        return ("deny".to_string(), Some(limit.rule.clone()));
                    }
                    // A dry-run limit: would_deny, and the enforced counters alone count.
                    verdict.get_or_insert((
                        ShadowDecision::WouldDeny.as_str().to_string(),
                        Some(limit.rule.clone()),
                    ));
                    items.retain(|r| !r.shadow);
                }
                Err(_) => break,
            }
        }
        verdict.unwrap_or_else(|| ("allow".to_string(), None))
    }

    /// The counters a call to `tool` can move become uncertain.
    fn mark_uncertain(&mut self, tool: &str) {
        let own = self
            .policy
            .tools
            .get(tool)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for rule in own.iter().chain(&self.policy.wildcard) {
            for limit in &rule.limits {
                let namespace = limit.namespace.as_deref().unwrap_or(tool);
                self.uncertain
                    .insert(format!("{namespace}.{}", limit.counter));
            }
        }
        // Category rules count per called tool; not knowing which applied, every counter of
        // this tool is uncertain.
        if !self.policy.tools.contains_key(tool) && !self.policy.categories.is_empty() {
            self.uncertain_tools.insert(tool.to_string());
        }
    }

    fn is_uncertain(&self, key: &str) -> bool {
        let key = key
            .strip_prefix(toolgate_policy::decide::SHADOW_KEY_PREFIX)
            .unwrap_or(key);
        // `<namespace>.<counter>`, then `@<partition>` when scoped. (Tool names may hold
        // dots and `@`, so the key is matched against what is known, never split.)
        let counter_is = |counter: &str| {
            key.strip_prefix(counter)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
        };
        self.uncertain.iter().any(|c| counter_is(c))
            || self.uncertain_tools.iter().any(|tool| {
                key.strip_prefix(tool.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = r#"
version: "1"
tools:
  refund:
    rules:
      - name: cap
        conditions:
          - {path: args.amount, op: lte, value: 100}
  tag:
    rules:
      - name: named tags
        conditions:
          - {path: args.name, op: regex, value: "^[a-z]+$"}
  ping:
    rules:
      - name: two a minute
        rate_limit: 2/minute
"#;

    fn call(ms: u64, tool: &str, redacted: Option<Value>) -> Recorded {
        Recorded {
            ts: ms.to_string(),
            ms,
            session: "s".into(),
            identity: None,
            tool: tool.into(),
            decision: "allow".into(),
            rule: None,
            outcome: "result".into(),
            approval: None,
            arguments: None,
            arguments_redacted: redacted,
        }
    }

    #[test]
    fn a_redacted_view_decides_what_it_keeps_and_no_more() {
        let policy = toolgate_policy::compile(POLICY).unwrap();
        let mut replayer = Replayer::new(&policy).unwrap();
        // Small numbers are kept: decided.
        let over = replayer.replay(&call(0, "refund", Some(json!({"amount": 500}))));
        assert_eq!(
            (over.new.as_deref(), over.new_rule.as_deref()),
            (Some("deny"), Some("cap"))
        );
        // A string stands for a value the view does not show: undetermined.
        let tag = replayer.replay(&call(0, "tag", Some(json!({"name": "string"}))));
        assert_eq!(tag.undetermined, Some(NEEDS_VALUES));
        // No arguments recorded at all.
        assert_eq!(
            replayer.replay(&call(0, "refund", None)).undetermined,
            Some(NEEDS_VALUES)
        );
    }

    #[test]
    fn counters_follow_the_recorded_clock_and_settlement() {
        let policy = toolgate_policy::compile(POLICY).unwrap();
        let mut replayer = Replayer::new(&policy).unwrap();
        let minute = 60_000 * 29_000_000;
        let mut errored = call(minute, "ping", None);
        errored.outcome = "error".into();
        // A JSON-RPC error gives its count back.
        assert_eq!(replayer.replay(&errored).new.as_deref(), Some("allow"));
        let decided: Vec<String> = (1..=3)
            .map(|i| {
                replayer
                    .replay(&call(minute + i, "ping", None))
                    .new
                    .unwrap()
            })
            .collect();
        assert_eq!(decided, ["allow", "allow", "deny"]);
        // The next minute is a new window.
        assert_eq!(
            replayer
                .replay(&call(minute + 60_000, "ping", None))
                .new
                .as_deref(),
            Some("allow")
        );
    }
}
