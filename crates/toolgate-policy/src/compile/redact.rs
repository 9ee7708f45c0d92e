//! The top-level `redact` block (named redaction rules) and `redact: [names]` on tool entries.
//!
//! ```yaml
//! redact:
//!   secrets:
//!     detectors: [aws_access_key, private_key, github_token, slack_token, jwt, generic_api_key]
//!   internal_hosts:
//!     pattern: "\\b[a-z0-9-]+\\.corp\\.example\\.com\\b"
//!     replace: "[REDACTED:host]"
//!     on_match: block
//! tools:
//!   read_file: {redact: [secrets, internal_hosts]}
//!   "*": {redact: [secrets]}
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use super::conditions::compile_regex;
use super::reader::{child_path, index_path, Reader};
use crate::redact::{detector, OnMatch, Redaction, DETECTORS};
use crate::source::{Node, NodeKind};

pub(crate) const RULE_KEYS: &[&str] = &["detectors", "pattern", "replace", "on_match"];

/// Compiles the `redact` block: rule name → rule.
pub(super) fn compile_redactions(
    reader: &mut Reader,
    node: &Node,
) -> HashMap<String, Arc<Redaction>> {
    let mut rules = HashMap::new();
    for (key, value) in reader.open_mapping(node, "redact").unwrap_or_default() {
        let path = child_path("redact", &key.name);
        if let Some(rule) = compile_rule(reader, &key.name, value, &path) {
            rules.insert(key.name.clone(), Arc::new(rule));
        }
    }
    rules
}

fn compile_rule(reader: &mut Reader, name: &str, node: &Node, path: &str) -> Option<Redaction> {
    let entries = reader.mapping(node, path, RULE_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let mut matchers = Vec::new();
    if let Some(list) = get("detectors") {
        let list_path = child_path(path, "detectors");
        for (i, item) in reader
            .sequence(list, &list_path)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let item_path = index_path(&list_path, i);
            let Some(detector_name) = reader.name(item, &item_path) else {
                continue;
            };
            match detector(&detector_name) {
                Some(matcher) => matchers.push(matcher),
                None => reader.error_with_hint(
                    item.location,
                    &item_path,
                    format!("unknown detector {detector_name:?}"),
                    format!("use one of: {}", DETECTORS.join(", ")),
                ),
            }
        }
    }
    match (get("pattern"), get("replace")) {
        (Some(pattern), replace) => {
            let pattern_path = child_path(path, "pattern");
            let text = reader.name(pattern, &pattern_path)?;
            if let Some(regex) = compile_regex(reader, &text, pattern, &pattern_path) {
                let replace = match replace {
                    Some(n) => reader.string(n, &child_path(path, "replace"))?,
                    None => format!("[REDACTED:{name}]"),
                };
                matchers.push(crate::redact::Matcher {
                    label: name.to_string(),
                    regex,
                    replace,
                    group: 0,
                    accept: |_| true,
                });
            }
        }
        (None, Some(replace)) => reader.error(
            replace.location,
            &child_path(path, "replace"),
            "replace goes with a pattern; detectors replace with [REDACTED:<detector>]",
        ),
        (None, None) if get("detectors").is_none() => reader.error_with_hint(
            node.location,
            path,
            "a redaction rule needs detectors or a pattern",
            format!("e.g. detectors: [{}]", DETECTORS.join(", ")),
        ),
        (None, None) => {}
    }
    let on_match = match get("on_match") {
        None => OnMatch::Redact,
        Some(n) => match reader.name(n, &child_path(path, "on_match")).as_deref() {
            Some("redact") => OnMatch::Redact,
            Some("block") => OnMatch::Block,
            Some(other) => {
                reader.error_with_hint(
                    n.location,
                    &child_path(path, "on_match"),
                    format!("on_match must be redact or block, got {other:?}"),
                    "redact replaces each match; block withholds the whole result",
                );
                OnMatch::Redact
            }
            None => OnMatch::Redact,
        },
    };
    Some(Redaction {
        name: name.to_string(),
        matchers,
        on_match,
    })
}

/// `redact: [names]` on a tool entry (`"*"` for every tool), resolved against the block.
pub(super) fn read_tool_redactions(reader: &mut Reader, tool: &str, entry: &Node, path: &str) {
    let Some(list) = entry.get("redact") else {
        return;
    };
    let list_path = child_path(path, "redact");
    let Some(items) = reader.sequence(list, &list_path) else {
        return;
    };
    let mut resolved = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index_path(&list_path, i);
        let Some(name) = reader.name(item, &item_path) else {
            continue;
        };
        match reader.redactions.get(&name) {
            Some(rule) => resolved.push(Arc::clone(rule)),
            None => {
                let known: Vec<&str> = reader.redactions.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "define it in the top-level redact block".to_string()
                } else {
                    format!("rules defined under redact: {}", known.join(", "))
                };
                reader.error_with_hint(
                    item.location,
                    &item_path,
                    format!("no redaction rule named {name:?}"),
                    hint,
                );
            }
        }
    }
    if matches!(entry.kind, NodeKind::Mapping(_)) {
        reader.redact_tools.insert(tool.to_string(), resolved);
    }
}
