//! What changes between two policies, in terms of what they do rather than how they are
//! written: tools that become hidden, visible or refused outright; limits raised, lowered or
//! changed in window; rules added, removed or changed; and the top-level settings. A
//! reformatted or re-commented file, or one moved between the YAML and JSON forms with the
//! same meaning, has no differences.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::amount::Amount;
use crate::ir::{Effect, Limit, Policy, Rule};

/// Every difference between two policies, each list in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyDiff {
    /// Top-level settings that changed (`default`, `mode`, `deny_prefix`, approvals, pinning).
    pub settings: Vec<SettingChange>,
    /// Named tools the new policy hides (from `tools/list`, and calls answered as unknown).
    pub newly_hidden: Vec<String>,
    /// Named tools the new policy lists that the old one hid.
    pub newly_visible: Vec<String>,
    /// Tools every call of which the new policy refuses (an unconditional deny), and tools
    /// it stops refusing.
    pub newly_denied: Vec<String>,
    pub no_longer_denied: Vec<String>,
    /// Limits whose maximum or window changed, and limits that appear or disappear.
    pub limits: Vec<LimitChange>,
    /// Rules added, removed or changed, by the tool (or `"*"`, or `categories.<C>`) they
    /// belong to.
    pub rules: Vec<RuleChange>,
    pub identities_added: Vec<String>,
    pub identities_removed: Vec<String>,
}

impl PolicyDiff {
    pub fn is_empty(&self) -> bool {
        *self == PolicyDiff::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingChange {
    pub setting: &'static str,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitChange {
    pub owner: String,
    pub counter: String,
    pub rule: String,
    /// `raised`, `lowered`, `window_changed`, `added` or `removed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<LimitSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<LimitSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitSummary {
    pub max: Amount,
    pub window: String,
    pub scope: String,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleChange {
    pub owner: String,
    pub rule: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// For a changed rule: what about it changed (`effect`, `conditions`, `limits`,
    /// `message`, `dry_run`, `position`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<&'static str>,
}

/// Compares `old` with `new`.
pub fn diff(old: &Policy, new: &Policy) -> PolicyDiff {
    let mut out = PolicyDiff::default();
    settings(old, new, &mut out.settings);

    let tools: BTreeSet<&str> = names(old).chain(names(new)).collect();
    for tool in &tools {
        match (old.is_visible(tool), new.is_visible(tool)) {
            (true, false) => out.newly_hidden.push(tool.to_string()),
            (false, true) => out.newly_visible.push(tool.to_string()),
            _ => {}
        }
        match (always_denied(old, tool), always_denied(new, tool)) {
            (false, true) => out.newly_denied.push(tool.to_string()),
            (true, false) => out.no_longer_denied.push(tool.to_string()),
            _ => {}
        }
    }

    let (old_owners, new_owners) = (owners(old), owners(new));
    let labels: BTreeSet<&String> = old_owners.keys().chain(new_owners.keys()).collect();
    for label in labels {
        let empty = Vec::new();
        let old_rules = old_owners.get(label).copied().unwrap_or(&empty);
        let new_rules = new_owners.get(label).copied().unwrap_or(&empty);
        compare_rules(label, old_rules, new_rules, &mut out.rules);
        compare_limits(label, old_rules, new_rules, &mut out.limits);
    }

    let old_ids: BTreeSet<&str> = old.identities.names().into_iter().collect();
    let new_ids: BTreeSet<&str> = new.identities.names().into_iter().collect();
    out.identities_added = new_ids
        .difference(&old_ids)
        .map(|s| s.to_string())
        .collect();
    out.identities_removed = old_ids
        .difference(&new_ids)
        .map(|s| s.to_string())
        .collect();
    out
}

fn settings(old: &Policy, new: &Policy, out: &mut Vec<SettingChange>) {
    let mut compare = |setting: &'static str, a: String, b: String| {
        if a != b {
            out.push(SettingChange {
                setting,
                old: a,
                new: b,
            });
        }
    };
    let lower = |text: String| text.to_lowercase();
    compare(
        "default",
        lower(format!("{:?}", old.default)),
        lower(format!("{:?}", new.default)),
    );
    compare(
        "mode",
        lower(format!("{:?}", old.mode)),
        lower(format!("{:?}", new.mode)),
    );
    let prefix = |p: &Option<String>| p.clone().unwrap_or_else(|| "(default)".into());
    compare(
        "deny_prefix",
        prefix(&old.deny_prefix),
        prefix(&new.deny_prefix),
    );
    compare(
        "hide_all",
        old.hidden.all.to_string(),
        new.hidden.all.to_string(),
    );
    let approvals = |p: &Policy| {
        let d = &p.approvals.defaults;
        format!("timeout {} ms, mode {:?}", d.timeout_ms, d.mode).to_lowercase()
    };
    compare("approvals.defaults", approvals(old), approvals(new));
    compare(
        "approvals.notify",
        format!("{:?}", old.approvals.notify),
        format!("{:?}", new.approvals.notify),
    );
    let windows = |p: &Policy| {
        let sorted: BTreeMap<&String, &u64> = p.idempotency_windows.iter().collect();
        format!("{sorted:?}")
    };
    compare("idempotency_window", windows(old), windows(new));
    compare(
        "poisoning",
        lower(format!("{:?}", old.poisoning)),
        lower(format!("{:?}", new.poisoning)),
    );
    let pinning = |p: &Policy| {
        let pins = &p.pinning;
        let lock = pins.lock.as_deref().unwrap_or("(trust on first use)");
        format!(
            "on_change {:?}, on_new_tool {:?}, lock {lock}",
            pins.on_change, pins.on_new_tool
        )
        .to_lowercase()
    };
    compare("pinning", pinning(old), pinning(new));
}

/// Tool names a policy mentions (listed, hidden).
fn names(policy: &Policy) -> impl Iterator<Item = &str> {
    policy
        .tools
        .keys()
        .chain(policy.hidden.names.iter())
        .map(String::as_str)
}

/// Whether every call to a visible tool is refused: an enforced deny rule without conditions
/// among its own rules or the `"*"` rules.
fn always_denied(policy: &Policy, tool: &str) -> bool {
    if !policy.is_visible(tool) || policy.mode == crate::ir::PolicyMode::Shadow {
        return false;
    }
    let own = policy
        .tools
        .get(tool)
        .map(Vec::as_slice)
        .unwrap_or_default();
    own.iter()
        .chain(&policy.wildcard)
        .any(|r| r.effect == Effect::Deny && r.conditions.is_empty() && !r.dry_run)
}

/// Rules by who owns them: a tool, `"*"`, or `categories.<C>`.
fn owners(policy: &Policy) -> BTreeMap<String, &Vec<Rule>> {
    let mut owners = BTreeMap::new();
    for (tool, rules) in &policy.tools {
        owners.insert(tool.clone(), rules);
    }
    owners.insert("\"*\"".to_string(), &policy.wildcard);
    for (category, rules) in &policy.categories {
        owners.insert(format!("categories.{category}"), rules);
    }
    owners
}

fn compare_rules(owner: &str, old: &[Rule], new: &[Rule], out: &mut Vec<RuleChange>) {
    let change = |rule: &str, change, what| RuleChange {
        owner: owner.to_string(),
        rule: rule.to_string(),
        change,
        what,
    };
    // Order decides which rule refuses first: a rule whose place among the rules both
    // policies have is another has moved.
    let kept = |rules: &[Rule], other: &[Rule]| -> Vec<String> {
        rules
            .iter()
            .filter(|r| other.iter().any(|o| o.name == r.name))
            .map(|r| r.name.clone())
            .collect()
    };
    let (old_order, new_order) = (kept(old, new), kept(new, old));
    for rule in old {
        let Some(now) = new.iter().find(|r| r.name == rule.name) else {
            out.push(change(&rule.name, "removed", Vec::new()));
            continue;
        };
        let mut what = rule_differences(rule, now);
        let place = |order: &[String]| order.iter().position(|n| *n == rule.name);
        if place(&old_order) != place(&new_order) {
            what.push("position");
        }
        if !what.is_empty() {
            out.push(change(&rule.name, "changed", what));
        }
    }
    for rule in new {
        if !old.iter().any(|r| r.name == rule.name) {
            out.push(change(&rule.name, "added", Vec::new()));
        }
    }
}

fn rule_differences(old: &Rule, new: &Rule) -> Vec<&'static str> {
    let mut what = Vec::new();
    if format!("{:?}", old.effect) != format!("{:?}", new.effect) {
        what.push("effect");
    }
    let texts = |r: &Rule| -> Vec<String> { r.conditions.iter().map(|c| c.text.clone()).collect() };
    if texts(old) != texts(new) {
        what.push("conditions");
    }
    if old.limits != new.limits {
        what.push("limits");
    }
    if old.message != new.message {
        what.push("message");
    }
    if old.dry_run != new.dry_run {
        what.push("dry_run");
    }
    what
}

/// Limits are matched by counter and scope: the same counter under a new maximum is a raised
/// or lowered limit, not a removed and an added one.
fn compare_limits(owner: &str, old: &[Rule], new: &[Rule], out: &mut Vec<LimitChange>) {
    let limits = |rules: &[Rule]| -> Vec<(String, LimitSummary, String)> {
        rules
            .iter()
            .flat_map(|r| {
                r.limits.iter().map(move |l| {
                    (
                        identity(l, r.dry_run),
                        summary(l, r.dry_run),
                        r.name.clone(),
                    )
                })
            })
            .collect()
    };
    let (old, new) = (limits(old), limits(new));
    for (id, before, rule) in &old {
        let counter = id.split('|').next().unwrap_or_default().to_string();
        let entry = |change, old: Option<&LimitSummary>, new: Option<&LimitSummary>, rule: &str| {
            LimitChange {
                owner: owner.to_string(),
                counter: counter.clone(),
                rule: rule.to_string(),
                change,
                old: old.cloned(),
                new: new.cloned(),
            }
        };
        match new.iter().find(|(other, _, _)| other == id) {
            None => out.push(entry("removed", Some(before), None, rule)),
            Some((_, after, new_rule)) => {
                let change = if after.window != before.window {
                    Some("window_changed")
                } else if after.max > before.max {
                    Some("raised")
                } else if after.max < before.max {
                    Some("lowered")
                } else {
                    None
                };
                if let Some(change) = change {
                    out.push(entry(change, Some(before), Some(after), new_rule));
                }
            }
        }
    }
    for (id, after, rule) in &new {
        if !old.iter().any(|(other, _, _)| other == id) {
            out.push(LimitChange {
                owner: owner.to_string(),
                counter: id.split('|').next().unwrap_or_default().to_string(),
                rule: rule.clone(),
                change: "added",
                old: None,
                new: Some(after.clone()),
            });
        }
    }
}

fn identity(limit: &Limit, dry_run: bool) -> String {
    format!("{}|{:?}|{dry_run}", limit.counter, limit.scope)
}

fn summary(limit: &Limit, dry_run: bool) -> LimitSummary {
    LimitSummary {
        max: limit.max,
        window: limit.window.to_string(),
        scope: scope_name(&limit.scope),
        dry_run,
    }
}

fn scope_name(scope: &crate::ir::Scope) -> String {
    use crate::ir::Scope;
    match scope {
        Scope::Shared => "shared".into(),
        Scope::Session => "session".into(),
        Scope::Identity => "identity".into(),
        Scope::Argument(path) => format!("{path}"),
    }
}
