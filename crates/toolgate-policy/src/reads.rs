//! What deciding a call to a tool can read of its arguments: every path a condition tests, a
//! limit counts from, or a counter is partitioned by. `toolgate replay` uses it to tell a
//! recorded call whose decision does not depend on argument values (it can be re-decided from
//! the tool name alone) from one that does (undetermined without the values).

use crate::args::ArgPath;
use crate::ir::{Increment, Policy, Scope};

impl Policy {
    /// The argument paths a decision on `tool` may read, given the tool's risk category
    /// (`None`: not known). `None` when the rules themselves cannot be known: the policy has
    /// `categories` rules, the tool is not named, and its category is not known.
    pub fn argument_reads(&self, tool: &str, category: Option<&str>) -> Option<Vec<&ArgPath>> {
        let own = match self.tools.get(tool) {
            Some(rules) => rules.as_slice(),
            None if self.categories.is_empty() => &[],
            None => match category {
                Some(c) => self
                    .categories
                    .get(c)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                None => return None,
            },
        };
        let mut paths = Vec::new();
        for rule in own.iter().chain(&self.wildcard) {
            paths.extend(rule.conditions.iter().filter_map(|c| match &c.path {
                crate::ir::ConditionPath::Argument(path) => Some(path),
                crate::ir::ConditionPath::Identity(_) => None,
            }));
            for limit in &rule.limits {
                if let Increment::FromArgument(path) = &limit.increment {
                    paths.push(path);
                }
                if let Scope::Argument(path) = &limit.scope {
                    paths.push(path);
                }
            }
        }
        Some(paths)
    }
}
