//! Writes a starter policy from classified tools: the policy `toolgate scan` saves.
//!
//! Tools are grouped by category, each with its description and parameters as comments, and
//! given the category's recommended rule ([`recommended_rule`]). The YAML form is Intercept's
//! (readable, commented); the JSON form is PolicyLayer's. Tool names are always written as
//! JSON strings, which YAML reads verbatim, so no name can break the file.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::category::Category;
use crate::classify::Classification;
use crate::poisoning::{flagged, Finding};
use crate::rule::{recommended_rule, RecommendedRule};
use crate::tool::ToolDef;

/// Longest description kept in a comment.
const DESCRIPTION_CHARS: usize = 160;

/// The Intercept-form YAML starter policy.
pub fn starter_policy_yaml(
    server: Option<&str>,
    tools: &[ToolDef],
    results: &[Classification],
) -> String {
    let server_label = server.unwrap_or("this MCP server");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Starter policy for {}, written by `toolgate scan`.",
        one_line(server_label, 80)
    );
    out.push_str(
        "# Each tool was classified by what it does; review the rules before relying on them.\n",
    );
    out.push_str(
        "# Reference: docs/POLICY.md. Check edits with `toolgate validate -c <this file>`.\n",
    );
    out.push_str("version: \"1\"\n");
    let _ = writeln!(
        out,
        "description: {}",
        json_string(&format!("Starter policy for {server_label}"))
    );
    out.push_str("default: allow\n");
    // Tools whose definitions look poisoned are hidden until someone has read them.
    let flagged: Vec<(&ToolDef, Vec<Finding>)> = tools
        .iter()
        .map(|tool| (tool, flagged(tool)))
        .filter(|(_, findings)| !findings.is_empty())
        .collect();
    if !flagged.is_empty() {
        out.push_str(
            "# Hidden: these definitions look poisoned (docs/INTEGRITY.md). Read them, and\n",
        );
        out.push_str(
            "# remove a tool from this list only if what it asks of the model is harmless.\n",
        );
        out.push_str("hide:\n");
        for (tool, findings) in &flagged {
            for f in findings {
                let _ = writeln!(
                    out,
                    "  # {}: {:?} in {}: {}",
                    one_line(&crate::poisoning::visible(&tool.name), 60),
                    f.kind,
                    f.place,
                    one_line(&f.evidence, 80)
                );
            }
            let _ = writeln!(out, "  - {}", json_string(&tool.name));
        }
    }
    out.push_str("tools:\n");
    for category in Category::ALL {
        let members: Vec<(&ToolDef, &Classification)> = tools
            .iter()
            .zip(results)
            .filter(|(_, c)| c.category == category)
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  # ── {category} ({} risk): {} ──",
            category.risk(),
            describe_rule(recommended_rule(category))
        );
        for (tool, classification) in members {
            write_tool(&mut out, tool, classification);
        }
    }
    out.push_str("  # A limit across every tool, if you want one:\n");
    out.push_str("  # \"*\":\n");
    out.push_str("  #   rules:\n");
    out.push_str("  #     - name: global rate limit\n");
    out.push_str("  #       rate_limit: 60/minute\n");
    if tools.is_empty() {
        // `tools:` with only comments under it reads as null, which is valid, but say why.
        out.push_str("  # The server listed no tools.\n");
    }
    out
}

fn write_tool(out: &mut String, tool: &ToolDef, classification: &Classification) {
    if let Some(description) = tool.description.as_deref().filter(|d| !d.trim().is_empty()) {
        let _ = writeln!(
            out,
            "  # {}: {}",
            one_line(&tool.name, 80),
            one_line(description, DESCRIPTION_CHARS)
        );
    }
    let parameters = parameter_summary(tool);
    if !parameters.is_empty() {
        let _ = writeln!(out, "  #   parameters: {parameters}");
    }
    if let Some(evidence) = classification.evidence.first() {
        let _ = writeln!(
            out,
            "  #   why {}: {}",
            classification.category,
            one_line(evidence, 120)
        );
    }
    let _ = writeln!(out, "  {}:", json_string(&tool.name));
    out.push_str("    rules:\n");
    match recommended_rule(classification.category) {
        RecommendedRule::Allow => {
            out.push_str("      - name: reads are allowed\n        action: allow\n");
        }
        RecommendedRule::RateLimit { max_calls, per } => {
            let _ = writeln!(
                out,
                "      - name: {} rate limit\n        rate_limit: {max_calls}/{}",
                classification.category.as_str().to_lowercase(),
                per.as_str()
            );
        }
        RecommendedRule::RequireApproval { spend_cap } => {
            let _ = writeln!(
                out,
                "      - name: {} calls need approval\n        action: require_approval\n        on_deny: {}",
                classification.category.as_str().to_lowercase(),
                json_string(&format!("{} needs a person's approval", tool.name))
            );
            if let Some(cap) = spend_cap {
                let has_argument = parameter_names(tool).iter().any(|p| p == cap.argument);
                let note = if has_argument {
                    ""
                } else {
                    " (adjust the argument name to this tool's)"
                };
                let _ = writeln!(
                    out,
                    "      # Example: cap the total {} per {}{note}:",
                    cap.argument,
                    cap.per.as_str()
                );
                out.push_str("      # - name: daily spend cap\n");
                let _ = writeln!(
                    out,
                    "      #   state: {{counter: spend, window: {}, increment_from: args.{}, max: {}}}",
                    cap.per.as_str(),
                    cap.argument,
                    cap.max_total
                );
            }
        }
    }
}

/// The PolicyLayer-form JSON starter policy.
pub fn starter_policy_json(tools: &[ToolDef], results: &[Classification]) -> String {
    let mut entries = Map::new();
    for (tool, classification) in tools.iter().zip(results) {
        let entry = match recommended_rule(classification.category) {
            RecommendedRule::Allow => json!({}),
            RecommendedRule::RateLimit { max_calls, per } => json!({
                "limits": [{"counter": "calls", "window": per.as_str(), "max": max_calls}]
            }),
            RecommendedRule::RequireApproval { .. } => json!({
                "require_approval": [{"message": format!("{} needs a person's approval", tool.name)}]
            }),
        };
        entries.insert(tool.name.clone(), entry);
    }
    let policy = json!({"version": "1", "default": "allow", "tools": Value::Object(entries)});
    serde_json::to_string_pretty(&policy).unwrap_or_default() + "\n"
}

fn describe_rule(rule: RecommendedRule) -> String {
    match rule {
        RecommendedRule::Allow => "allowed".into(),
        RecommendedRule::RateLimit { max_calls, per } => {
            format!("{max_calls} calls per {}", per.as_str())
        }
        RecommendedRule::RequireApproval { .. } => "each call needs a person's approval".into(),
    }
}

fn parameter_names(tool: &ToolDef) -> Vec<String> {
    tool.input_schema
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// `path (string, required), recursive (boolean)`.
fn parameter_summary(tool: &ToolDef) -> String {
    let Some(schema) = &tool.input_schema else {
        return String::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return String::new();
    };
    let parts: Vec<String> = properties
        .iter()
        .map(|(name, spec)| {
            let kind = spec.get("type").and_then(Value::as_str).unwrap_or("any");
            let flag = if required.contains(&name.as_str()) {
                ", required"
            } else {
                ""
            };
            format!("{} ({kind}{flag})", one_line(name, 40))
        })
        .collect();
    one_line(&parts.join(", "), 200)
}

/// Text safe inside a YAML comment: one line, bounded, no control characters.
fn one_line(text: &str, max_chars: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if cleaned.chars().count() <= max_chars {
        return cleaned;
    }
    let cut: String = cleaned.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{cut}…")
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}
