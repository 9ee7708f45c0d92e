//! Tool definitions that look poisoned (`toolgate_classify::poisoning`), at run time: every
//! `tools/list` page that passes through — and toolgate's own listings — is scanned. Under the
//! policy's `poisoning: {on_finding: warn}` (the default) a flagged tool is logged and audited
//! once per definition; under `hide` it is also removed from listings, and a call to it is
//! answered as a call to a tool the server does not have.
//!
//! The same goes for the server's other texts a model reads: its `initialize` instructions
//! (withheld from the client under `hide`) and its prompts (`prompts/list` descriptions and
//! argument descriptions; under `hide` a flagged prompt leaves the listing and `prompts/get`
//! answers it as unknown).
//!
//! The definitions are the server's, so what was learned outlives a policy reload; the
//! threshold and the action are the policy's and are read at each use.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use toolgate_classify::poisoning::{flagged, scan_text, Finding, Severity};
use toolgate_classify::ToolDef;
use toolgate_policy::{FindingSeverity, OnFinding, Policy};

use crate::audit::AuditEvent;
use crate::gateway::Gateway;
use crate::message::ClientRequest;

/// What the gateway has learned about the server's tool definitions.
#[derive(Default)]
pub(crate) struct PoisonedTools {
    /// Flagged tools (medium or high findings), by name, as last listed.
    flagged: HashMap<String, Vec<Finding>>,
    /// Flagged prompts, by name, as last listed.
    prompts: HashMap<String, Vec<Finding>>,
    /// Definitions already reported (tool and evidence), so each is audited once. Bounded: a
    /// server that lists ever new poisoned definitions gets them reported again rather than
    /// remembered without end.
    reported: HashSet<String>,
}

/// What the gateway does with a `prompts/get`.
pub(crate) enum PromptAsked {
    Forward,
    /// A prompt the policy hides, by name: answered as unknown.
    Hidden(String),
    /// Params the strict reader refuses (why): answered as an invalid request.
    Unreadable(String),
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

    /// Scans the server's `initialize` instructions; returns whether the policy withholds them.
    pub(crate) fn instructions_poisoned(
        &self,
        instructions: Option<&str>,
        policy: &Policy,
    ) -> bool {
        let Some(text) = instructions else {
            return false;
        };
        let findings = flagged_text(scan_text(text, "instructions"));
        if findings.is_empty() {
            return false;
        }
        let hidden = hides(&findings, policy);
        self.report_text("instructions".into(), &findings, hidden);
        hidden
    }

    /// Scans the prompts of one `prompts/list` result; returns the result to send instead when
    /// the policy hides some of them.
    pub(crate) fn scan_prompts_page(&self, result: &str, policy: &Policy) -> Option<Value> {
        let mut page: Value = serde_json::from_str(result).ok()?;
        let prompts = page.get_mut("prompts")?.as_array_mut()?;
        let mut hidden_any = false;
        prompts.retain(|prompt| {
            let Some(name) = prompt.get("name").and_then(Value::as_str) else {
                return true;
            };
            let findings = flagged_text(
                prompt_texts(prompt)
                    .iter()
                    .flat_map(|(place, text)| scan_text(text, place))
                    .collect(),
            );
            if findings.is_empty() {
                self.poisoned_tools.write().prompts.remove(name);
                return true;
            }
            let hidden = hides(&findings, policy);
            self.report_text(format!("prompt {name}"), &findings, hidden);
            let mut known = self.poisoned_tools.write();
            if known.prompts.len() < REPORTED_AT_MOST || known.prompts.contains_key(name) {
                known.prompts.insert(name.to_string(), findings);
            }
            hidden_any |= hidden;
            !hidden
        });
        hidden_any.then_some(page)
    }

    /// For a `prompts/get` under a policy that hides poisoned prompts: whether the request
    /// asks for a prompt the policy hides. Its params are read strictly, as a call's are: a
    /// `name` given twice, or twice in different case, is refused rather than forwarded,
    /// because a lenient server would read the one the gateway did not check.
    pub(crate) fn prompt_asked(&self, request: &mut ClientRequest) -> PromptAsked {
        let policy = self.policy.load();
        if policy.poisoning.on_finding != OnFinding::Hide
            || self.poisoned_tools.read().prompts.is_empty()
        {
            return PromptAsked::Forward;
        }
        let params = match request.take_strict_params() {
            Some(Ok(params)) => params,
            Some(Err(error)) => return PromptAsked::Unreadable(error.to_string()),
            None => return PromptAsked::Forward,
        };
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return PromptAsked::Forward;
        };
        let known = self.poisoned_tools.read();
        match known.prompts.get(name) {
            Some(findings) if hides(findings, &policy) => PromptAsked::Hidden(name.to_string()),
            _ => PromptAsked::Forward,
        }
    }

    /// Logs and audits a flagged text, once per text and evidence.
    fn report_text(&self, what: String, findings: &[Finding], hidden: bool) {
        let evidence: Vec<&str> = findings.iter().map(|f| f.evidence.as_str()).collect();
        let identity = format!("{what}\u{0}{}", evidence.join("\u{0}"));
        {
            let mut known = self.poisoned_tools.write();
            if known.reported.len() >= REPORTED_AT_MOST {
                known.reported.clear();
            }
            if !known.reported.insert(identity) {
                return;
            }
        }
        tracing::warn!(%what, findings = findings.len(), hidden, "the server's text looks poisoned (see docs/INTEGRITY.md)");
        self.audit.record(AuditEvent::PoisonedText {
            what,
            action: if hidden { "hide" } else { "warn" },
            findings: findings.to_vec(),
        });
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

/// The findings that flag a text (medium or high), as [`flagged`] does for a tool.
fn flagged_text(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| f.severity >= Severity::Medium)
        .collect()
}

/// Whether the policy hides what `findings` flag.
fn hides(findings: &[Finding], policy: &Policy) -> bool {
    policy.poisoning.on_finding == OnFinding::Hide
        && findings
            .iter()
            .any(|f| counts(f, policy.poisoning.severity))
}

/// The texts of a prompt a model reads: its title and description, and its arguments'.
fn prompt_texts(prompt: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["title", "description"] {
        if let Some(text) = prompt.get(key).and_then(Value::as_str) {
            out.push((key.to_string(), text.to_string()));
        }
    }
    for argument in prompt
        .get("arguments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = argument.get("name").and_then(Value::as_str).unwrap_or("?");
        for key in ["title", "description"] {
            if let Some(text) = argument.get(key).and_then(Value::as_str) {
                out.push((format!("argument {name}"), text.to_string()));
            }
        }
    }
    out
}
