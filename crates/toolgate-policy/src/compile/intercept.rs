//! Intercept's YAML rules (`tools.<name>.rules[]`), the rule forms printed on PolicyLayer's
//! public tool pages, and toolgate's extensions — one rule grammar, compiled to the IR.
//!
//! Desugaring happens here, once: `rate_limit: 5/hour` becomes a counter `_rate_hour` with
//! `max: 5`; a `state` block whose rule tests `state.<tool>.<counter> lte N` becomes a counter
//! with `max: N` (`lt N` gives the largest value below N). A state test that cannot become a
//! limit is an error, never silently ignored.

use super::conditions::{compile_conditions, CompiledCondition, StateCondition};
use super::limits::{
    build_limit, check_reachable, default_scope, read_limit_fields, read_window, Owner, ScopeChoice,
};
use super::reader::{child_path, index_path, Reader};
use super::spend::compile_spend_limit;
use crate::amount::Amount;
use crate::ir::{ApprovalMode, ApprovalSettings, Condition, Effect, Increment, Limit, Rule};
use crate::source::{Node, NodeKind};
use crate::window::Window;

pub(crate) const RULE_KEYS: &[&str] = &[
    "name",
    "action",
    "conditions",
    "on_deny",
    "reason",
    "message",
    "rate_limit",
    "state",
    "approval_timeout",
    "approval_mode",
    "dry_run",
    "spend_limit",
    "idempotency_window",
];
pub(crate) const STATE_KEYS: &[&str] = &[
    "counter",
    "window",
    "increment",
    "increment_from",
    "max",
    "scope",
    "mode",
];
pub(crate) const RATE_BLOCK_KEYS: &[&str] = &["max", "window", "scope", "mode"];
/// The keys of a `tools.<name>` entry.
pub(crate) const TOOL_ENTRY_KEYS: &[&str] = &["rules", "idempotency_window", "redact"];
pub const ACTIONS: &str = "evaluate, deny, allow, or require_approval";

/// Compiles `tools.<name>` (`{rules: [...]}`, or empty) into rules.
pub fn compile_tool(reader: &mut Reader, owner: Owner<'_>, node: &Node, path: &str) -> Vec<Rule> {
    if matches!(node.kind, NodeKind::Null) {
        return Vec::new();
    }
    let Some(entries) = reader.mapping(node, path, TOOL_ENTRY_KEYS) else {
        return Vec::new();
    };
    read_idempotency_window(reader, owner, node, path);
    read_redact(reader, owner, node, path);
    let Some((_, rules_node)) = entries.iter().find(|(k, _)| k.name == "rules") else {
        return Vec::new();
    };
    let rules_path = child_path(path, "rules");
    let Some(items) = reader.optional_sequence(rules_node, &rules_path) else {
        return Vec::new();
    };
    let mut rules = Vec::with_capacity(items.len());
    let mut counters: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rule_path = index_path(&rules_path, i);
        let Some(rule) = compile_rule(reader, owner, item, &rule_path, i) else {
            continue;
        };
        for limit in &rule.limits {
            // A dry-run limit counts in a shadow counter: it may share a name with an enforced one.
            let identity = format!("{:?}/{}/{}", limit.namespace, limit.counter, rule.dry_run);
            if let Some((_, first)) = counters.iter().find(|(c, _)| *c == identity) {
                reader.error_with_hint(
                    item.location,
                    &rule_path,
                    format!(
                        "duplicate state counter {:?} (also used by rules[{first}])",
                        limit.counter
                    ),
                    "give each rule its own counter name, or combine the two limits into one rule",
                );
            } else {
                counters.push((identity, i));
            }
        }
        rules.push(rule);
    }
    rules
}

/// What an Intercept `action:` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Evaluate,
    Deny,
    Allow,
    RequireApproval,
}

fn compile_rule(
    reader: &mut Reader,
    owner: Owner<'_>,
    node: &Node,
    path: &str,
    index: usize,
) -> Option<Rule> {
    let entries = reader.mapping(node, path, RULE_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let errors_before = reader.diagnostics.len();

    let name = match get("name") {
        Some(n) => reader
            .name(n, &child_path(path, "name"))
            .unwrap_or_default(),
        // Rules copied from PolicyLayer's pages have no name; give them a stable one.
        None => format!("{}#{}", owner_label(owner), index + 1),
    };

    let action = match get("action") {
        None => Action::Evaluate,
        Some(n) => match reader.name(n, &child_path(path, "action")).as_deref() {
            Some("evaluate") => Action::Evaluate,
            Some("deny") => Action::Deny,
            Some("allow") => Action::Allow,
            Some("require_approval") => Action::RequireApproval,
            Some(other) => {
                reader.error_with_hint(
                    n.location,
                    &child_path(path, "action"),
                    format!("action must be \"evaluate\", \"deny\", \"allow\" or \"require_approval\", got {other:?}"),
                    format!("use {ACTIONS}"),
                );
                return None;
            }
            None => return None,
        },
    };

    let message = read_message(reader, &get, path);
    let (arg_conditions, state_conditions) = match get("conditions") {
        Some(n) => split_conditions(compile_conditions(
            reader,
            n,
            &child_path(path, "conditions"),
        )),
        None => (Vec::new(), Vec::new()),
    };
    let has_conditions = get("conditions").is_some_and(|n| {
        !matches!(&n.kind, NodeKind::Sequence(v) if v.is_empty())
            && !matches!(n.kind, NodeKind::Null)
    });

    let mut limits: Vec<Limit> = Vec::new();
    let mut default_message: Option<String> = None;

    // A call waiting for a person is not forwarded, so it cannot be counted; Intercept
    // refuses the combination too. The limit belongs in a rule of its own.
    if action == Action::RequireApproval {
        for key in ["rate_limit", "state", "spend_limit"] {
            if let Some(n) = get(key) {
                reader.error_with_hint(
                    n.location,
                    &child_path(path, key),
                    format!("{key} cannot be used with action \"require_approval\""),
                    "put the limit in a rule of its own: it then counts the calls that are forwarded",
                );
            }
        }
    }

    if let Some(spend) = get("spend_limit") {
        let spend_path = child_path(path, "spend_limit");
        if has_conditions || get("state").is_some() || get("rate_limit").is_some() {
            reader.error_with_hint(
                spend.location,
                &spend_path,
                "spend_limit cannot be combined with conditions, state or rate_limit",
                "put each in a rule of its own",
            );
        } else if action == Action::Deny {
            reader.error(
                spend.location,
                &spend_path,
                "spend_limit cannot be used with action \"deny\"",
            );
        } else if action != Action::RequireApproval {
            if let Some(limit) = compile_spend_limit(reader, owner, spend, &spend_path) {
                default_message = Some(format!(
                    "Spend limit of {} per {} reached.",
                    limit.max,
                    limit.window.name()
                ));
                limits.push(limit);
            }
        }
    }

    if let Some(rate) = get("rate_limit") {
        let rate_path = child_path(path, "rate_limit");
        if has_conditions || get("state").is_some() {
            reader.error_with_hint(
                rate.location,
                &rate_path,
                "rate_limit cannot be combined with conditions or state",
                "put the conditions in a rule of their own, or write the limit as a state block with max",
            );
        } else if action == Action::Deny {
            reader.error(
                rate.location,
                &rate_path,
                "rate_limit cannot be used with action \"deny\"",
            );
        } else if action == Action::RequireApproval {
            // Reported above.
        } else if let Some(limit) = compile_rate_limit(reader, owner, rate, &rate_path) {
            default_message = Some(format!(
                "Rate limit of {} per {} reached. Try again later.",
                limit.max,
                limit.window.name()
            ));
            limits.push(limit);
        }
    }

    if let Some(state) = get("state") {
        let state_path = child_path(path, "state");
        if action == Action::Deny {
            reader.error(
                state.location,
                &state_path,
                "deny rules cannot keep a counter",
            );
        } else if action == Action::RequireApproval {
            // Reported above.
        } else if let Some(limit) =
            compile_state(reader, owner, state, &state_path, &state_conditions)
        {
            default_message = Some(format!(
                "Limit of {} per {} reached for counter {:?}.",
                limit.max,
                limit.window.name(),
                limit.counter
            ));
            limits.push(limit);
        }
    } else {
        for condition in &state_conditions {
            reader.error_with_hint(
                condition.location,
                &condition.path,
                format!(
                    "condition references state.{}.{} but no matching state block found",
                    condition.namespace, condition.counter
                ),
                format!(
                    "add `state: {{counter: {}, window: hour}}` to this rule, or use rate_limit",
                    condition.counter
                ),
            );
        }
    }

    let effect = match action {
        Action::Evaluate => {
            if !has_conditions
                && limits.is_empty()
                && get("rate_limit").is_none()
                && get("state").is_none()
                && get("spend_limit").is_none()
            {
                reader.error_with_hint(
                    node.location,
                    path,
                    "evaluate rules must have at least one condition",
                    "add conditions, a rate_limit or a state block; or use action: allow or deny",
                );
            }
            Effect::Require
        }
        Action::Deny => Effect::Deny,
        Action::Allow => {
            if has_conditions {
                reader.error_with_hint(
                    node.location,
                    path,
                    "allow rules take no conditions",
                    "use action: evaluate to require conditions, or action: deny with conditions to refuse matching calls",
                );
            }
            Effect::Allow
        }
        Action::RequireApproval => {
            Effect::RequireApproval(read_approval_settings(reader, &get, path))
        }
    };
    if action != Action::RequireApproval {
        for key in ["approval_timeout", "approval_mode"] {
            if let Some(n) = get(key) {
                reader.error(
                    n.location,
                    &child_path(path, key),
                    format!("{key} applies only to action: require_approval"),
                );
            }
        }
    }

    let dry_run = reader.dry_run(node, path);
    read_idempotency_window(reader, owner, node, path);
    if reader.diagnostics.len() > errors_before {
        return None;
    }
    Some(Rule {
        name,
        origin: path.to_string(),
        effect,
        conditions: arg_conditions,
        limits,
        message: message.or(default_message),
        dry_run,
    })
}

/// `idempotency_window: 5m` on a tool entry or a rule: the longest one written for a tool
/// applies to its calls.
fn read_idempotency_window(reader: &mut Reader, owner: Owner<'_>, node: &Node, path: &str) {
    let Some(window) = node.get("idempotency_window") else {
        return;
    };
    let Some(tool) = tool_of(reader, owner, window, "idempotency_window", path) else {
        return;
    };
    let path = child_path(path, "idempotency_window");
    let Some(ms) = super::limits::read_window(reader, window, &path).map(|w| w.length_ms) else {
        return;
    };
    if ms > MAX_IDEMPOTENCY_WINDOW_MS {
        reader.error_with_hint(
            window.location,
            &path,
            "idempotency_window is at most a day",
            "answers are kept in memory for the window: use 5m, 1h, up to 24h",
        );
        return;
    }
    let entry = reader.idempotency.entry(tool.to_string()).or_default();
    *entry = (*entry).max(ms);
}

/// `redact: [names]` on a tool entry: the rules its results go through.
fn read_redact(reader: &mut Reader, owner: Owner<'_>, node: &Node, path: &str) {
    let Some(list) = node.get("redact") else {
        return;
    };
    if let Some(tool) = tool_of(reader, owner, list, "redact", path) {
        super::redact::read_tool_redactions(reader, tool, node, path);
    }
}

/// The tool a per-tool setting (`key`, written at `node`) applies to: the tool, or `"*"` for
/// every tool. Settings kept per tool name cannot be set by risk category: that is an error.
fn tool_of<'o>(
    reader: &mut Reader,
    owner: Owner<'o>,
    node: &Node,
    key: &str,
    path: &str,
) -> Option<&'o str> {
    match owner {
        Owner::Tool(name) => Some(name),
        Owner::AllTools => Some("*"),
        Owner::Category(_) => {
            reader.error_with_hint(
                node.location,
                &child_path(path, key),
                format!("{key} cannot be set by risk category"),
                "set it on the tool, or under \"*\" for every tool",
            );
            None
        }
    }
}

/// Answers are held in memory for the window.
const MAX_IDEMPOTENCY_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

fn owner_label(owner: Owner<'_>) -> String {
    match owner {
        Owner::Tool(name) => name.to_string(),
        Owner::AllTools => "*".to_string(),
        Owner::Category(name) => name.to_string(),
    }
}

fn split_conditions(all: Vec<CompiledCondition>) -> (Vec<Condition>, Vec<StateCondition>) {
    let mut args = Vec::new();
    let mut state = Vec::new();
    for c in all {
        match c {
            CompiledCondition::Argument(a) => args.push(a),
            CompiledCondition::State(s) => state.push(s),
        }
    }
    (args, state)
}

/// `on_deny`, `reason` (PolicyLayer's pages) and `message` all name the agent's message.
fn read_message<'n>(
    reader: &mut Reader,
    get: &dyn Fn(&str) -> Option<&'n Node>,
    path: &str,
) -> Option<String> {
    let written: Vec<(&str, &Node)> = ["on_deny", "reason", "message"]
        .into_iter()
        .filter_map(|k| get(k).map(|n| (k, n)))
        .collect();
    if written.len() > 1 {
        reader.error_with_hint(
            written[1].1.location,
            &child_path(path, written[1].0),
            format!(
                "both `{}` and `{}` set the rule's message",
                written[0].0, written[1].0
            ),
            "keep one of them",
        );
        return None;
    }
    let (key, node) = written.first()?;
    reader.string(node, &child_path(path, key))
}

pub(super) fn read_approval_settings<'n>(
    reader: &mut Reader,
    get: &dyn Fn(&str) -> Option<&'n Node>,
    path: &str,
) -> ApprovalSettings {
    let mut settings: ApprovalSettings = reader.approval_defaults.clone();
    if let Some(n) = get("approval_timeout") {
        if let Some(w) = read_window(reader, n, &child_path(path, "approval_timeout")) {
            settings.timeout_ms = w.length_ms;
        }
    }
    if let Some(n) = get("approval_mode") {
        let p = child_path(path, "approval_mode");
        match reader.name(n, &p).as_deref() {
            Some("retry") => settings.mode = ApprovalMode::Retry,
            Some("hold") => settings.mode = ApprovalMode::Hold,
            Some(other) => reader.error_with_hint(
                n.location,
                &p,
                format!("unknown approval_mode {other:?}"),
                "use retry (answer at once, the agent retries once approved) or hold (wait for the decision)",
            ),
            None => {}
        }
    }
    settings
}

/// `rate_limit: "N/window"` (Intercept) or `rate_limit: {max, window}` (PolicyLayer's pages,
/// window in seconds, counted per session unless a scope says otherwise).
fn compile_rate_limit(
    reader: &mut Reader,
    owner: Owner<'_>,
    node: &Node,
    path: &str,
) -> Option<Limit> {
    match &node.kind {
        NodeKind::String(text) => {
            let Some((count, window_text)) = text.split_once('/') else {
                reader.error_with_hint(
                    node.location,
                    path,
                    format!("rate_limit must be in the format \"N/window\", got {text:?}"),
                    "for example 5/hour, 60/minute, 100/day or 10/15m",
                );
                return None;
            };
            let max = match count.trim().parse::<u32>() {
                Ok(n) if n > 0 => Amount::from_units(i64::from(n))?,
                _ => {
                    reader.error(
                        node.location,
                        path,
                        format!("rate_limit count must be a positive integer, got {count:?}"),
                    );
                    return None;
                }
            };
            let window = match Window::parse(window_text.trim()) {
                Ok(w) => w,
                Err(e) => {
                    reader.error(node.location, path, format!("rate_limit window: {e}"));
                    return None;
                }
            };
            let counter = format!("_rate_{}", window.name());
            Some(build_limit(
                owner,
                counter,
                default_scope(owner),
                window,
                max,
                Increment::Fixed(Amount::ONE),
            ))
        }
        NodeKind::Mapping(_) => {
            let entries = reader.mapping(node, path, RATE_BLOCK_KEYS)?;
            let get = |k: &str| {
                entries
                    .iter()
                    .find(|(key, _)| key.name == k)
                    .map(|(_, v)| v)
            };
            let (Some(_), Some(_)) = (get("max"), get("window")) else {
                reader.error_with_hint(
                    node.location,
                    path,
                    "a rate_limit block needs both `max` and `window`",
                    "for example {max: 10, window: 60} allows 10 calls per 60 seconds",
                );
                return None;
            };
            // The pages say these limits are "tracked per agent session".
            let fields = read_limit_fields(reader, ScopeChoice::Session, get, path);
            let (max, window, scope) = (fields.max?, fields.window?, fields.scope?);
            let counter = format!("_rate_{}", window.name());
            let limit = build_limit(
                owner,
                counter,
                scope,
                window,
                max,
                Increment::Fixed(Amount::ONE),
            );
            check_reachable(reader, node, path, &limit).then_some(limit)
        }
        _ => {
            reader.error_with_hint(
                node.location,
                path,
                format!("expected a rate limit, found {}", node.type_name()),
                "write \"5/hour\", or {max: 10, window: 60}",
            );
            None
        }
    }
}

fn compile_state(
    reader: &mut Reader,
    owner: Owner<'_>,
    node: &Node,
    path: &str,
    conditions: &[StateCondition],
) -> Option<Limit> {
    let entries = reader.mapping(node, path, STATE_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    if get("counter").is_none() {
        reader.error(node.location, path, "state block is missing `counter`");
    }
    if get("window").is_none() {
        reader.error_with_hint(
            node.location,
            path,
            "state block is missing `window`",
            "use minute, hour, day, or a duration such as 15m",
        );
    }
    let fields = read_limit_fields(reader, default_scope(owner), get, path);
    let explicit_max = get("max").map(|_| fields.max);
    let (counter, window, increment, scope) = (
        fields.counter?,
        fields.window?,
        fields.increment?,
        fields.scope?,
    );

    // Intercept expresses the limit as a condition on the rule's own counter.
    let integral = matches!(increment, Increment::Fixed(a) if a.is_integer());
    let mut derived: Option<Amount> = None;
    for condition in conditions {
        let own = condition.counter == counter
            && (condition.namespace == owner.state_namespace()
                || (scope == ScopeChoice::Global
                    && condition.namespace == crate::ir::GLOBAL_NAMESPACE));
        if !own {
            reader.error_with_hint(
                condition.location,
                &condition.path,
                format!(
                    "condition reads state.{}.{} but this rule's counter is state.{}.{}",
                    condition.namespace,
                    condition.counter,
                    owner.state_namespace(),
                    counter
                ),
                "a rule can only limit its own counter; move the condition to the rule whose state block defines it",
            );
            continue;
        }
        let Some(value) = condition.value else {
            continue;
        };
        let max = match condition.op.as_str() {
            "lte" => value,
            // The largest value strictly below the bound: one unit for whole counts,
            // the smallest amount step for spend.
            "lt" if integral && value.is_integer() => value.checked_sub(Amount::ONE)?,
            "lt" => value.checked_sub(Amount::EPSILON)?,
            other => {
                reader.error_with_hint(
                    condition.location,
                    &condition.path,
                    format!("a counter condition with op {other:?} cannot be turned into a limit"),
                    "use lte or lt (the counter must stay at or below a maximum), or write `max:` in the state block",
                );
                continue;
            }
        };
        if max <= Amount::ZERO {
            reader.error(
                condition.location,
                &condition.path,
                "this limit would deny every call: the maximum must be above zero",
            );
            continue;
        }
        if derived.replace(max).is_some() {
            reader.error(
                condition.location,
                &condition.path,
                format!("counter {counter:?} has more than one limit condition"),
            );
        }
    }
    let max = match (explicit_max, derived) {
        (Some(Some(_)), Some(_)) => {
            reader.error(
                node.location,
                path,
                format!("counter {counter:?} has both `max` and a limit condition; keep one"),
            );
            return None;
        }
        (Some(explicit), None) => explicit?,
        (None, Some(derived)) => derived,
        (Some(None), Some(_)) => return None,
        (None, None) => {
            reader.error_with_hint(
                node.location,
                path,
                format!("counter {counter:?} has no limit"),
                format!(
                    "add `max: N` to the state block, or a condition {{path: state.{}.{counter}, op: lte, value: N}}",
                    owner.state_namespace()
                ),
            );
            return None;
        }
    };
    let limit = build_limit(owner, counter, scope, window, max, increment);
    check_reachable(reader, node, path, &limit).then_some(limit)
}
