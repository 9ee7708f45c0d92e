//! PolicyLayer's JSON policy: `tools.<name>.require`, `deny_if`, `limits`, and
//! `all_tools.limits`. Each requirement, deny entry and limit becomes one IR rule, named after
//! where it was written (`create_refund.require[0]`), so a denial says exactly which one failed.
//! A tool's rules run in a fixed order — `require`, `deny_if`, `require_approval`, `limits` —
//! since the order of keys in a JSON object carries no meaning.

use super::conditions::{compile_condition, compile_conditions, CompiledCondition};
use super::intercept::read_approval_settings;
use super::limits::{build_limit, check_reachable, default_scope, read_limit_fields, Owner};
use super::reader::{child_path, index_path, Reader};
use crate::ir::{Condition, Effect, Rule};
use crate::source::{Node, NodeKind};

/// Also the order in which a tool's entries become rules (see `compile_tool`).
pub(crate) const TOOL_KEYS: &[&str] = &["require", "deny_if", "require_approval", "limits"];
pub(crate) const DENY_IF_KEYS: &[&str] = &["conditions", "on_deny", "dry_run"];
pub(crate) const APPROVAL_KEYS: &[&str] = &[
    "conditions",
    "message",
    "approval_timeout",
    "approval_mode",
    "dry_run",
];
pub(crate) const LIMIT_KEYS: &[&str] = &[
    "counter",
    "window",
    "max",
    "scope",
    "increment",
    "increment_from",
    "mode",
    "on_deny",
    "dry_run",
];

/// Compiles `tools.<name>` (or `all_tools`) of a PolicyLayer policy.
pub fn compile_tool(
    reader: &mut Reader,
    owner: Owner<'_>,
    node: &Node,
    path: &str,
    keys: &[&str],
) -> Vec<Rule> {
    if matches!(node.kind, NodeKind::Null) {
        return Vec::new();
    }
    let Some(entries) = reader.mapping(node, path, keys) else {
        return Vec::new();
    };
    let label = match owner {
        Owner::Tool(name) => name.to_string(),
        Owner::AllTools => "all_tools".to_string(),
        Owner::Category(name) => name.to_string(),
    };
    let mut rules = Vec::new();
    let mut counters: Vec<String> = Vec::new();
    // JSON objects are unordered, so the rules follow one fixed order whatever order the keys
    // were written in: requirements, deny entries, approvals, then limits (argument checks
    // before counters, as everywhere).
    for (key, value) in keys
        .iter()
        .filter_map(|k| entries.iter().find(|(key, _)| key.name == *k))
    {
        let key_path = child_path(path, &key.name);
        let Some(items) = reader.optional_sequence(value, &key_path) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let item_path = index_path(&key_path, i);
            let name = format!("{label}.{}[{i}]", key.name);
            let rule = match key.name.as_str() {
                "require" => compile_requirement(reader, item, &item_path, name),
                "deny_if" => compile_deny_if(reader, item, &item_path, name),
                "require_approval" => compile_approval(reader, item, &item_path, name),
                "limits" => compile_limit(reader, owner, item, &item_path, name),
                _ => None,
            };
            let Some(mut rule) = rule else {
                continue;
            };
            // `require` entries are conditions themselves, with no room for the key.
            if key.name != "require" {
                rule.dry_run = reader.dry_run(item, &item_path);
            }
            for limit in &rule.limits {
                // A dry-run limit counts in a shadow counter: it may share a name with an enforced one.
                let identity = format!("{:?}/{}/{}", limit.namespace, limit.counter, rule.dry_run);
                if counters.contains(&identity) {
                    reader.error_with_hint(
                        item.location,
                        &item_path,
                        format!("duplicate counter {:?}", limit.counter),
                        "give each limit its own counter name",
                    );
                }
                counters.push(identity);
            }
            rules.push(rule);
        }
    }
    rules
}

pub fn tool_keys() -> &'static [&'static str] {
    TOOL_KEYS
}

fn argument_conditions(reader: &mut Reader, node: &Node, path: &str) -> Option<Vec<Condition>> {
    let before = reader.diagnostics.len();
    let out: Vec<Condition> = compile_conditions(reader, node, path)
        .into_iter()
        .filter_map(|c| argument_only(reader, c))
        .collect();
    (reader.diagnostics.len() == before).then_some(out)
}

/// The condition if it tests an argument; counters are limited with `limits` in this form.
fn argument_only(reader: &mut Reader, condition: CompiledCondition) -> Option<Condition> {
    match condition {
        CompiledCondition::Argument(a) => Some(a),
        CompiledCondition::State(s) => {
            reader.error_with_hint(
                s.location,
                &s.path,
                "PolicyLayer policies limit counters with `limits`, not state conditions",
                "write {counter, window, max} under limits",
            );
            None
        }
    }
}

/// A `require` entry is one condition that must hold.
fn compile_requirement(reader: &mut Reader, node: &Node, path: &str, name: String) -> Option<Rule> {
    let condition = compile_condition(reader, node, path)?;
    let condition = argument_only(reader, condition)?;
    let message = Some(format!("Requirement not met: {}", condition.text));
    Some(Rule {
        name,
        origin: path.to_string(),
        effect: Effect::Require,
        conditions: vec![condition],
        limits: Vec::new(),
        message,
        dry_run: false,
    })
}

fn compile_deny_if(reader: &mut Reader, node: &Node, path: &str, name: String) -> Option<Rule> {
    let entries = reader.mapping(node, path, DENY_IF_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let conditions = match get("conditions") {
        Some(n) => argument_conditions(reader, n, &child_path(path, "conditions"))?,
        None => Vec::new(),
    };
    let message = match get("on_deny") {
        Some(n) => Some(reader.string(n, &child_path(path, "on_deny"))?),
        None => None,
    };
    Some(Rule {
        name,
        origin: path.to_string(),
        effect: Effect::Deny,
        conditions,
        limits: Vec::new(),
        message,
        dry_run: false,
    })
}

fn compile_approval(reader: &mut Reader, node: &Node, path: &str, name: String) -> Option<Rule> {
    let entries = reader.mapping(node, path, APPROVAL_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let before = reader.diagnostics.len();
    let conditions = match get("conditions") {
        Some(n) => {
            argument_conditions(reader, n, &child_path(path, "conditions")).unwrap_or_default()
        }
        None => Vec::new(),
    };
    let message = get("message").and_then(|n| reader.string(n, &child_path(path, "message")));
    let settings = read_approval_settings(reader, &get, path);
    (reader.diagnostics.len() == before).then(|| Rule {
        name,
        origin: path.to_string(),
        effect: Effect::RequireApproval(settings),
        conditions,
        limits: Vec::new(),
        message,
        dry_run: false,
    })
}

fn compile_limit(
    reader: &mut Reader,
    owner: Owner<'_>,
    node: &Node,
    path: &str,
    name: String,
) -> Option<Rule> {
    let entries = reader.mapping(node, path, LIMIT_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let mut missing = false;
    for required in ["counter", "window", "max"] {
        if get(required).is_none() {
            reader.error_with_hint(
                node.location,
                path,
                format!("limit is missing `{required}`"),
                "a limit is written {counter: calls, window: hour, max: 100}",
            );
            missing = true;
        }
    }
    if missing {
        return None;
    }
    let fields = read_limit_fields(reader, default_scope(owner), get, path);
    let message = get("on_deny").and_then(|n| reader.string(n, &child_path(path, "on_deny")));
    let (counter, window, max, scope, increment) = (
        fields.counter?,
        fields.window?,
        fields.max?,
        fields.scope?,
        fields.increment?,
    );
    let limit = build_limit(owner, counter, scope, window, max, increment);
    if !check_reachable(reader, node, path, &limit) {
        return None;
    }
    let message = message.or_else(|| {
        Some(format!(
            "Limit of {} per {} reached for counter {:?}.",
            limit.max,
            limit.window.name(),
            limit.counter
        ))
    });
    Some(Rule {
        name,
        origin: path.to_string(),
        effect: Effect::Require,
        conditions: Vec::new(),
        limits: vec![limit],
        message,
        dry_run: false,
    })
}
