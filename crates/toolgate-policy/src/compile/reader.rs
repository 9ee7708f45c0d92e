//! Typed reads from the located tree that record a diagnostic instead of failing.
//!
//! Every compiler step asks the [`Reader`] for "a string at this node", "a mapping with
//! these keys", and gets `None` back when the node is wrong — with the problem recorded, so
//! compilation carries on and the user sees every error in one run.

use crate::diagnostics::{Diagnostic, Location};
use crate::source::{Key, Node, NodeKind};

#[derive(Default)]
pub struct Reader {
    pub diagnostics: Vec<Diagnostic>,
    /// What `require_approval` rules get when they set no timeout or mode: the top-level
    /// `approvals` block's defaults, read before the tools.
    pub approval_defaults: crate::ir::ApprovalSettings,
    /// Regexes compiled so far, by pattern: a pattern used by a thousand rules is compiled,
    /// and held in memory, once.
    pub regexes: std::collections::HashMap<String, std::sync::Arc<regex::Regex>>,
    /// `idempotency_window`s read so far, in milliseconds, by tool (`"*"` for every tool).
    pub idempotency: std::collections::HashMap<String, u64>,
    /// The top-level `redact` rules, read before the tools that name them.
    pub redactions: std::collections::HashMap<String, std::sync::Arc<crate::redact::Redaction>>,
    /// The rules each tool's `redact` names, by tool (`"*"` for every tool).
    pub redact_tools:
        std::collections::HashMap<String, Vec<std::sync::Arc<crate::redact::Redaction>>>,
}

/// Appends a key to a policy path, quoting keys that are not plain identifiers.
pub fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (true, false) => format!("[{key:?}]"),
        (false, true) => format!("{path}.{key}"),
        (false, false) => format!("{path}[{key:?}]"),
    }
}

pub fn index_path(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

impl Reader {
    pub fn error(&mut self, location: Location, path: &str, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::new(location, path, message));
    }

    pub fn error_with_hint(
        &mut self,
        location: Location,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::new(location, path, message).with_hint(hint));
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            node.location,
            path,
            format!(
                "expected {expected}, found {} ({})",
                node.type_name(),
                node.kind
            ),
        );
    }

    /// A mapping whose keys must all be in `allowed`; unknown keys are reported with the
    /// closest known one as a suggestion.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'n [(Key, Node)]> {
        let NodeKind::Mapping(entries) = &node.kind else {
            self.wrong_type(node, path, "a mapping");
            return None;
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let hint = match closest(&key.name, allowed) {
                    Some(known) => format!(
                        "did you mean `{known}`? Known keys here: {}",
                        allowed.join(", ")
                    ),
                    None => format!("known keys here: {}", allowed.join(", ")),
                };
                self.error_with_hint(
                    key.location,
                    &child_path(path, &key.name),
                    format!("unknown key {:?}", key.name),
                    hint,
                );
            }
        }
        Some(entries)
    }

    /// A mapping with any keys (tool names).
    pub fn open_mapping<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(Key, Node)]> {
        match &node.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => {
                self.wrong_type(node, path, "a mapping");
                None
            }
        }
    }

    pub fn sequence<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Sequence(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "a list");
                None
            }
        }
    }

    /// A list that may also be written as `null` (an empty YAML value) meaning empty.
    pub fn optional_sequence<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Null => Some(&[]),
            _ => self.sequence(node, path),
        }
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::String(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub fn name(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            self.error(node.location, path, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.kind {
            NodeKind::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(node, path, "true or false");
                None
            }
        }
    }

    /// A rule's `dry_run: true|false` (absent: false).
    pub fn dry_run(&mut self, rule: &Node, path: &str) -> bool {
        rule.get("dry_run")
            .and_then(|n| self.boolean(n, &child_path(path, "dry_run")))
            .unwrap_or(false)
    }

    /// The source text of a number.
    pub fn number_text<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        match &node.kind {
            NodeKind::Number(text) => Some(text),
            _ => {
                self.wrong_type(node, path, "a number");
                None
            }
        }
    }
}

/// The known key nearest to a misspelt one, if it is close enough to be a likely typo.
fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_only() {
        assert_eq!(closest("on_denny", &["on_deny", "name"]), Some("on_deny"));
        assert_eq!(closest("zzz", &["on_deny", "name"]), None);
    }

    #[test]
    fn quotes_odd_keys_in_paths() {
        assert_eq!(child_path("tools", "create_issue"), "tools.create_issue");
        assert_eq!(child_path("tools", "*"), "tools[\"*\"]");
        assert_eq!(child_path("tools", "fs.read"), "tools[\"fs.read\"]");
    }
}
