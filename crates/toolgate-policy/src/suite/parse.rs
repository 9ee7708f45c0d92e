//! Reading a test file, with every problem reported at its line and column, as for policies.

use std::collections::{HashMap, HashSet};

use super::{Case, Outcome, Suite, MAX_REPEAT};
use crate::amount::Amount;
use crate::compile::reader::{child_path, index_path, Reader};
use crate::diagnostics::Diagnostic;
use crate::ir::CATEGORY_NAMES;
use crate::source::{parse_document, Node, NodeKind};

pub(crate) const SUITE_KEYS: &[&str] = &["policy", "description", "cases"];
pub(crate) const CASE_KEYS: &[&str] = &[
    "name", "tool", "args", "expect", "repeat", "rule", "identity", "session", "category",
    "counters",
];

/// Parses a test file (YAML or JSON). On failure, every problem found, in file order.
pub fn parse_suite(text: &str) -> Result<Suite, Vec<Diagnostic>> {
    let root = parse_document(text)?;
    let mut reader = Reader::default();
    let suite = read_suite(&mut reader, &root);
    let mut diagnostics = reader.diagnostics;
    match suite {
        Some(suite) if diagnostics.is_empty() => Ok(suite),
        _ => {
            diagnostics.sort_by_key(|d| d.location);
            Err(diagnostics)
        }
    }
}

fn read_suite(reader: &mut Reader, root: &Node) -> Option<Suite> {
    let entries = reader.mapping(root, "", SUITE_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    if let Some(node) = get("description") {
        reader.string(node, "description");
    }
    let policy = match get("policy") {
        Some(node) => reader.name(node, "policy").map(|p| (p, node.location)),
        None => {
            reader.error_with_hint(
                root.location,
                "",
                "missing `policy`",
                "add policy: <file>, the policy these cases test (relative to this file)",
            );
            None
        }
    };
    let cases = match get("cases") {
        Some(node) => read_cases(reader, node),
        None => {
            reader.error_with_hint(
                root.location,
                "",
                "missing `cases`",
                "add cases: a list of {name, tool, args, expect}",
            );
            Vec::new()
        }
    };
    let (policy, policy_location) = policy?;
    Some(Suite {
        policy,
        policy_location,
        cases,
    })
}

fn read_cases(reader: &mut Reader, node: &Node) -> Vec<Case> {
    let Some(items) = reader.sequence(node, "cases") else {
        return Vec::new();
    };
    if items.is_empty() {
        reader.error(
            node.location,
            "cases",
            "a test file needs at least one case",
        );
    }
    let mut names = HashSet::new();
    let mut cases = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = index_path("cases", i);
        let Some(case) = read_case(reader, item, &path) else {
            continue;
        };
        if !names.insert(case.name.clone()) {
            reader.error_with_hint(
                case.location,
                &child_path(&path, "name"),
                format!("another case is also named {:?}", case.name),
                "give every case its own name: reports and JUnit name cases by it",
            );
        }
        cases.push(case);
    }
    cases
}

fn read_case(reader: &mut Reader, node: &Node, path: &str) -> Option<Case> {
    let entries = reader.mapping(node, path, CASE_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let errors_before = reader.diagnostics.len();
    let required = |reader: &mut Reader, key: &str, hint: &str| match get(key) {
        Some(n) => reader.name(n, &child_path(path, key)),
        None => {
            reader.error_with_hint(node.location, path, format!("missing `{key}`"), hint);
            None
        }
    };
    let name = required(
        reader,
        "name",
        "name the case: it is how failures are reported",
    );
    let tool = required(reader, "tool", "the tool the call is made to");
    let optional = |reader: &mut Reader, key: &str| {
        get(key).and_then(|n| reader.name(n, &child_path(path, key)))
    };
    let rule = optional(reader, "rule");
    let identity = optional(reader, "identity");
    let session = optional(reader, "session");
    let category = optional(reader, "category");
    if let (Some(c), Some(n)) = (&category, get("category")) {
        if !CATEGORY_NAMES.contains(&c.as_str()) {
            reader.error_with_hint(
                n.location,
                &child_path(path, "category"),
                format!("{c:?} is not a risk category"),
                format!("use one of: {}", CATEGORY_NAMES.join(", ")),
            );
        }
    }
    let arguments = match get("args") {
        None => serde_json::Value::Object(Default::default()),
        Some(n) if matches!(n.kind, NodeKind::Mapping(_)) => n.to_json(),
        Some(n) if matches!(n.kind, NodeKind::Null) => {
            serde_json::Value::Object(Default::default())
        }
        Some(n) => {
            reader.error(
                n.location,
                &child_path(path, "args"),
                format!(
                    "expected a mapping of the call's arguments, found {}",
                    n.type_name()
                ),
            );
            serde_json::Value::Null
        }
    };
    let counters = get("counters")
        .map(|n| read_counters(reader, n, &child_path(path, "counters")))
        .unwrap_or_default();
    let expect = read_expect(reader, node, get("expect"), get("repeat"), path);
    if let (Some(_), Some(expect), Some(n)) = (&rule, &expect, get("rule")) {
        if !expect.iter().any(|o| o.has_rule()) {
            reader.error_with_hint(
                n.location,
                &child_path(path, "rule"),
                "`rule` names the rule that denies or asks for approval, but this case expects neither",
                "remove `rule`, or expect deny, approval, would_deny or would_require_approval",
            );
        }
    }
    if reader.diagnostics.len() > errors_before {
        return None;
    }
    Some(Case {
        name: name?,
        location: node.location,
        tool: tool?,
        arguments,
        expect: expect?,
        rule,
        identity,
        session,
        category,
        counters,
    })
}

/// `expect` (one outcome, or one per call) and `repeat` (how many calls) as one list.
fn read_expect(
    reader: &mut Reader,
    case: &Node,
    expect: Option<&Node>,
    repeat: Option<&Node>,
    path: &str,
) -> Option<Vec<Outcome>> {
    let repeat_path = child_path(path, "repeat");
    let repeat = match repeat {
        None => None,
        Some(n) => {
            let text = reader.number_text(n, &repeat_path)?;
            match text.parse::<u64>() {
                Ok(r) if (1..=MAX_REPEAT).contains(&r) => Some((r, n)),
                _ => {
                    reader.error(
                        n.location,
                        &repeat_path,
                        format!("repeat must be a whole number from 1 to {MAX_REPEAT}, got {text}"),
                    );
                    return None;
                }
            }
        }
    };
    let expect_path = child_path(path, "expect");
    let Some(node) = expect else {
        reader.error_with_hint(
            case.location,
            path,
            "missing `expect`",
            format!("the decision the call must get: one of {}", Outcome::NAMES),
        );
        return None;
    };
    let outcome = |reader: &mut Reader, n: &Node, p: &str| {
        let text = reader.name(n, p)?;
        let parsed = Outcome::parse(&text);
        if parsed.is_none() {
            reader.error_with_hint(
                n.location,
                p,
                format!("{text:?} is not a decision"),
                format!("use one of: {}", Outcome::NAMES),
            );
        }
        parsed
    };
    match (&node.kind, repeat) {
        (NodeKind::Sequence(items), repeat) => {
            if items.is_empty() {
                reader.error(node.location, &expect_path, "expect lists no decision");
                return None;
            }
            let outcomes: Vec<Option<Outcome>> = items
                .iter()
                .enumerate()
                .map(|(i, n)| outcome(reader, n, &index_path(&expect_path, i)))
                .collect();
            if let Some((r, n)) = repeat {
                if r != items.len() as u64 {
                    reader.error_with_hint(
                        n.location,
                        &repeat_path,
                        format!("repeat is {r} but expect lists {} decisions", items.len()),
                        "list one decision per call, or give one decision for every call",
                    );
                    return None;
                }
            }
            outcomes.into_iter().collect()
        }
        (_, repeat) => {
            let one = outcome(reader, node, &expect_path)?;
            let times = repeat.map_or(1, |(r, _)| r as usize);
            Some(vec![one; times])
        }
    }
}

fn read_counters(reader: &mut Reader, node: &Node, path: &str) -> HashMap<String, Amount> {
    let mut counters = HashMap::new();
    for (key, value) in reader.open_mapping(node, path).unwrap_or_default() {
        let value_path = child_path(path, &key.name);
        let Some(text) = reader.number_text(value, &value_path) else {
            continue;
        };
        match Amount::parse(text) {
            Ok(amount) if !amount.is_negative() => {
                counters.insert(key.name.clone(), amount);
            }
            Ok(_) => reader.error(value.location, &value_path, "a counter is never negative"),
            Err(e) => reader.error(value.location, &value_path, format!("{text}: {e}")),
        }
    }
    counters
}
