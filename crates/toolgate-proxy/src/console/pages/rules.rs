//! Which rules of a policy apply to a tool, described for people.

use toolgate_policy::ir::{Effect, Limit, Rule, Scope};
use toolgate_policy::Policy;

use crate::console::html::esc;

/// The rules a call to `tool` goes through, in the order they are checked: the tool's own
/// (or, for a tool the policy does not name, its category's), then the `"*"` rules.
pub fn rules_for<'a>(policy: &'a Policy, tool: &str, category: Option<&str>) -> Vec<&'a Rule> {
    let own = match policy.tools.get(tool) {
        Some(rules) => rules.as_slice(),
        None => category
            .and_then(|c| policy.categories.get(c))
            .map(Vec::as_slice)
            .unwrap_or_default(),
    };
    own.iter().chain(policy.wildcard.iter()).collect()
}

/// What happens to a call of `tool` that no rule refuses, in words.
pub fn standing(policy: &Policy, tool: &str) -> &'static str {
    if policy.hidden.contains(tool) {
        "hidden by the policy"
    } else if policy.tools.contains_key(tool) {
        "named by the policy"
    } else if matches!(policy.default, toolgate_policy::ir::DefaultAction::Deny) {
        "not named: refused by default"
    } else {
        "not named: allowed by default"
    }
}

pub fn effect_name(effect: &Effect) -> &'static str {
    match effect {
        Effect::Require => "require",
        Effect::Deny => "deny",
        Effect::Allow => "allow",
        Effect::RequireApproval(_) => "approval",
    }
}

/// One limit as `max 10 per hour, per identity`.
pub fn describe_limit(limit: &Limit) -> String {
    let scope = match &limit.scope {
        Scope::Shared => String::new(),
        Scope::Session => ", per session".into(),
        Scope::Identity => ", per identity".into(),
        Scope::Argument(path) => format!(", per {path}"),
    };
    format!(
        "{} ≤ {} per {}{scope}",
        limit.counter, limit.max, limit.window
    )
}

/// A table of rules (escaped).
pub fn rules_table(rules: &[&Rule]) -> String {
    if rules.is_empty() {
        return "<p class=\"muted\">No rule applies.</p>".into();
    }
    let mut rows = String::new();
    for rule in rules {
        let limits: Vec<String> = rule.limits.iter().map(describe_limit).collect();
        let dry = if rule.dry_run { " (dry run)" } else { "" };
        rows.push_str(&format!(
            "<tr><td>{}</td><td><span class=\"tag {effect}\">{effect}</span>{dry}</td>\
             <td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&rule.name),
            rule.conditions.len(),
            esc(&limits.join("; ")),
            esc(&rule.origin),
            effect = effect_name(&rule.effect),
        ));
    }
    format!(
        "<table><thead><tr><th>Rule</th><th>Effect</th><th>Conditions</th><th>Limits</th>\
         <th>Where</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}
