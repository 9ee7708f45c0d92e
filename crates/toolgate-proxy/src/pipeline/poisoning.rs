//! Tool definitions that look poisoned (`toolgate_classify::poisoning`), at run time: every
//! `tools/list` page that passes through — and toolgate's own listings — is scanned. Under the
//! policy's `poisoning: {on_finding: warn}` (the default) a flagged tool is logged and audited
//! once per definition; under `hide` it is also removed from listings, and a call to it is
//! answered as a call to a tool the server does not have.
//!
//! The definitions are the server's, so what was learned outlives a policy reload; the
//! threshold and the action are the policy's and are read at each use.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use toolgate_classify::poisoning::{flagged, Finding, Severity};
use toolgate_classify::ToolDef;
use toolgate_policy::{FindingSeverity, OnFinding, Policy};

use crate::audit::AuditEvent;
use crate::gateway::Gateway;

/// What the gateway has learned about the server's tool definitions.
#[derive(Default)]
pub(crate) struct PoisonedTools {
    /// Flagged tools (medium or high findings), by name, as last listed.
    flagged: HashMap<String, Vec<Finding>>,
    /// Definitions already reported (tool and evidence), so each is audited once. Bounded: a
    /// server that lists ever new poisoned definitions gets them reported again rather than
    /// remembered without end.
    reported: HashSet<String>,
}

/// Reported definitions remembered at most.
const REPORTED_AT_MOST: usize = 4096;

fn counts(finding: &Finding, threshold: FindingSeverity) -> bool {
    let least = match threshold {
        FindingSeverity::Medium => Severity::Medium,
        FindingSeverity::High => Severity::High,
    };
    finding.severity >= least
}

impl Gateway {
    /// Scans one `tools/list` page's definitions, and reports those newly flagged.
    pub(crate) fn scan_page_for_poisoning(&self, page: &Value, policy: &Policy) {
        let Some(tools) = page.get("tools").and_then(Value::as_array) else {
            return;
        };
        let mut report = Vec::new();
        {
            let mut known = self.poisoned_tools.write();
            for definition in tools.iter().filter_map(|t| ToolDef::from_json(t).ok()) {
                let findings = flagged(&definition);
                if findings.is_empty() {
                    known.flagged.remove(&definition.name);
                    continue;
                }
                let evidence: Vec<&str> = findings.iter().map(|f| f.evidence.as_str()).collect();
                let identity = format!("{}\u{0}{}", definition.name, evidence.join("\u{0}"));
                if known.reported.len() >= REPORTED_AT_MOST {
                    known.reported.clear();
                }
                if known.reported.insert(identity) {
                    report.push((definition.name.clone(), findings.clone()));
                }
                known.flagged.insert(definition.name, findings);
            }
        }
        for (tool, findings) in report {
            let hidden = policy.poisoning.on_finding == OnFinding::Hide
                && findings
                    .iter()
                    .any(|f| counts(f, policy.poisoning.severity));
            tracing::warn!(
                %tool,
                findings = findings.len(),
                hidden,
                "the server's definition of this tool looks poisoned (see docs/INTEGRITY.md)"
            );
            self.audit.record(AuditEvent::PoisonedTool {
                tool,
                action: if hidden { "hide" } else { "warn" },
                findings,
            });
        }
    }

    /// Whether the policy hides `tool` for its definition.
    pub(crate) fn hides_as_poisoned(&self, tool: &str, policy: &Policy) -> bool {
        policy.poisoning.on_finding == OnFinding::Hide
            && self
                .poisoned_tools
                .read()
                .flagged
                .get(tool)
                .is_some_and(|findings| {
                    findings
                        .iter()
                        .any(|f| counts(f, policy.poisoning.severity))
                })
    }
}
