//! Conditions (`{path, op, value}`): argument tests, and the `state.…` tests that Intercept
//! writes to express a counter limit.

use regex::RegexBuilder;
use serde_json::Value;

use super::reader::{child_path, index_path, Reader};
use crate::amount::Amount;
use crate::args::ArgPath;
use crate::caller::IdentityPath;
use crate::diagnostics::Location;
use crate::ir::{Condition, ConditionPath, Operator};
use crate::source::{json_number, Node, NodeKind};

/// Largest compiled size of a user regex; keeps one pattern from eating memory or time.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest regex source accepted.
pub const REGEX_MAX_LEN: usize = 4096;

pub(crate) const CONDITION_KEYS: &[&str] = &["path", "op", "value"];
pub const OPERATORS: &[&str] = &[
    "eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "contains", "exists",
];

/// A condition on a counter: `state.<namespace>.<counter> <op> <value>`.
pub struct StateCondition {
    pub namespace: String,
    pub counter: String,
    pub op: String,
    pub value: Option<Amount>,
    pub location: Location,
    pub path: String,
}

pub enum CompiledCondition {
    Argument(Condition),
    State(StateCondition),
}

/// Compiles a list of conditions; problems are recorded in the reader.
pub fn compile_conditions(reader: &mut Reader, node: &Node, path: &str) -> Vec<CompiledCondition> {
    let Some(items) = reader.optional_sequence(node, path) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| compile_condition(reader, item, &index_path(path, i)))
        .collect()
}

/// Compiles one condition written at `path`; problems are recorded in the reader.
pub fn compile_condition(
    reader: &mut Reader,
    node: &Node,
    path: &str,
) -> Option<CompiledCondition> {
    let entries = reader.mapping(node, path, CONDITION_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let (Some(path_node), Some(op_node)) = (get("path"), get("op")) else {
        for required in ["path", "op"] {
            if get(required).is_none() {
                reader.error_with_hint(
                    node.location,
                    path,
                    format!("condition is missing `{required}`"),
                    "a condition is written {path: args.<name>, op: <operator>, value: <value>}",
                );
            }
        }
        return None;
    };
    let path_text = reader.name(path_node, &child_path(path, "path"))?;
    let op = reader.name(op_node, &child_path(path, "op"))?;
    let value_path = child_path(path, "value");
    if !OPERATORS.contains(&op.as_str()) {
        reader.error_with_hint(
            op_node.location,
            &child_path(path, "op"),
            format!("unknown operator {op:?}"),
            format!("use one of: {}", OPERATORS.join(", ")),
        );
        return None;
    }
    let Some(value_node) = get("value") else {
        reader.error_with_hint(
            node.location,
            path,
            format!("operator {op:?} needs a `value`"),
            "exists takes true or false; in and not_in take a list; lt, lte, gt, gte take a number",
        );
        return None;
    };

    if let Some(rest) = path_text.strip_prefix("state.") {
        let mut parts = rest.splitn(2, '.');
        let (Some(namespace), Some(counter)) = (parts.next(), parts.next()) else {
            reader.error_with_hint(
                path_node.location,
                &child_path(path, "path"),
                format!("state path {path_text:?} must be state.<tool or _global>.<counter>"),
                "for example state.create_issue.hourly_count",
            );
            return None;
        };
        let value = match reader.number_text(value_node, &value_path) {
            Some(text) => match Amount::parse(text) {
                Ok(a) => Some(a),
                Err(e) => {
                    reader.error(value_node.location, &value_path, e.to_string());
                    None
                }
            },
            None => None,
        };
        return Some(CompiledCondition::State(StateCondition {
            namespace: namespace.to_string(),
            counter: counter.to_string(),
            op,
            value,
            location: op_node.location,
            path: path.to_string(),
        }));
    }

    if let Some(identity) = IdentityPath::parse(&path_text) {
        let identity = match identity {
            Ok(p) => p,
            Err(e) => {
                reader.error_with_hint(
                    path_node.location,
                    &child_path(path, "path"),
                    e,
                    "identity.scopes with op contains tests a scope of the caller's token",
                );
                return None;
            }
        };
        let operator = compile_operator(reader, &op, value_node, &value_path)?;
        let text = format!("{path_text} {op} {}", value_node.to_json());
        return Some(CompiledCondition::Argument(Condition {
            path: ConditionPath::Identity(identity),
            operator,
            text,
        }));
    }
    let arg_path = match ArgPath::parse(&path_text) {
        Ok(p) => p,
        Err(e) => {
            reader.error_with_hint(
                path_node.location,
                &child_path(path, "path"),
                e.to_string(),
                "argument paths look like args.amount or args.items.0.id; the caller's like identity.scopes; counters like state.<tool>.<counter>",
            );
            return None;
        }
    };
    let operator = compile_operator(reader, &op, value_node, &value_path)?;
    let text = format!("{path_text} {op} {}", value_node.to_json());
    Some(CompiledCondition::Argument(Condition {
        path: ConditionPath::Argument(arg_path),
        operator,
        text,
    }))
}

/// The first number in a value that JSON cannot hold; converted, it would silently become a
/// string and compare as one.
fn unrepresentable_number(node: &Node) -> Option<&Node> {
    match &node.kind {
        NodeKind::Number(text) if json_number(text).is_none() => Some(node),
        NodeKind::Sequence(items) => items.iter().find_map(unrepresentable_number),
        NodeKind::Mapping(entries) => entries.iter().find_map(|(_, v)| unrepresentable_number(v)),
        _ => None,
    }
}

fn compile_operator(reader: &mut Reader, op: &str, node: &Node, path: &str) -> Option<Operator> {
    if let Some(bad) = unrepresentable_number(node) {
        reader.error(
            bad.location,
            path,
            format!("number {} is out of range", bad.kind),
        );
        return None;
    }
    let value = node.to_json();
    let number = |reader: &mut Reader| match &value {
        Value::Number(n) => Some(n.clone()),
        _ => {
            reader.error(
                node.location,
                path,
                format!(
                    "operator {op:?} needs a number, found {} ({})",
                    node.type_name(),
                    node.kind
                ),
            );
            None
        }
    };
    let list = |reader: &mut Reader| match &value {
        Value::Array(items) => Some(items.clone()),
        _ => {
            reader.error_with_hint(
                node.location,
                path,
                format!("operator {op:?} needs a list, found {}", node.type_name()),
                "write the values as a list, e.g. [\"usd\", \"eur\"]",
            );
            None
        }
    };
    Some(match op {
        "eq" => Operator::Eq(value),
        "neq" => Operator::Neq(value),
        "contains" => {
            if matches!(value, Value::Array(_) | Value::Object(_) | Value::Null) {
                reader.error(
                    node.location,
                    path,
                    "operator \"contains\" needs a string (substring) or a single value (list element)",
                );
                return None;
            }
            Operator::Contains(value)
        }
        "in" => Operator::In(list(reader)?),
        "not_in" => Operator::NotIn(list(reader)?),
        "lt" => Operator::Lt(number(reader)?),
        "lte" => Operator::Lte(number(reader)?),
        "gt" => Operator::Gt(number(reader)?),
        "gte" => Operator::Gte(number(reader)?),
        "exists" => match value {
            Value::Bool(b) => Operator::Exists(b),
            _ => {
                reader.error(
                    node.location,
                    path,
                    "operator \"exists\" needs true or false",
                );
                return None;
            }
        },
        "regex" => {
            let Value::String(pattern) = &value else {
                reader.error(
                    node.location,
                    path,
                    "operator \"regex\" needs a string pattern",
                );
                return None;
            };
            Operator::Regex(compile_regex(reader, pattern, node, path)?)
        }
        _ => return None,
    })
}

/// Compiles a policy's regex (a `regex` condition, a `redact` pattern) with the limits every
/// user pattern gets, once per distinct pattern: a pattern used by a thousand rules is
/// compiled, and held in memory, once.
pub(super) fn compile_regex(
    reader: &mut Reader,
    pattern: &str,
    node: &Node,
    path: &str,
) -> Option<std::sync::Arc<regex::Regex>> {
    if pattern.len() > REGEX_MAX_LEN {
        reader.error(
            node.location,
            path,
            format!(
                "regex is {} bytes long, more than the {REGEX_MAX_LEN} allowed",
                pattern.len()
            ),
        );
        return None;
    }
    if let Some(re) = reader.regexes.get(pattern) {
        return Some(std::sync::Arc::clone(re));
    }
    match RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(re) => {
            let re = std::sync::Arc::new(re);
            reader
                .regexes
                .insert(pattern.to_string(), std::sync::Arc::clone(&re));
            Some(re)
        }
        Err(regex::Error::CompiledTooBig(limit)) => {
            reader.error_with_hint(
                node.location,
                path,
                format!("regex compiles to more than the {limit} byte limit"),
                "simplify the pattern: large counted repetitions like a{1000} grow quickly",
            );
            None
        }
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or_default().trim().to_string();
            reader.error_with_hint(
                node.location,
                path,
                format!("invalid regex {pattern:?}: {last}"),
                "toolgate uses Rust regex syntax (RE2-like: no backreferences or look-around)",
            );
            None
        }
    }
}
