//! The test file `scan` writes next to a starter policy: one case per tool, saying what the
//! classification recommends for it. The cases pass against the starter policy as written;
//! once someone edits the policy, they fail where it departs from the recommendation, which
//! is the review the file exists to prompt.

use std::fmt::Write as _;

use toolgate_classify::{recommended_rule, Classification, RecommendedRule, ToolDef};
use toolgate_policy::{Call, Policy};

/// The test file's text. `policy_file` is the policy's path relative to the test file.
pub fn starter_tests(
    policy_file: &str,
    policy: &Policy,
    tools: &[ToolDef],
    results: &[Classification],
) -> String {
    let mut out = String::new();
    out.push_str("# Starter tests for the starter policy, written by `toolgate scan`.\n");
    out.push_str("# Each case says what the tool's risk category recommends; edit them as you\n");
    out.push_str("# edit the policy. Run with `toolgate test <this file>`.\n");
    let _ = writeln!(out, "policy: {}", quoted(policy_file));
    out.push_str("cases:\n");
    for (tool, classification) in tools.iter().zip(results) {
        write_case(&mut out, policy, tool, classification);
    }
    out
}

fn write_case(out: &mut String, policy: &Policy, tool: &ToolDef, classification: &Classification) {
    let name = &tool.name;
    let category = classification.category;
    if !toolgate_classify::poisoning::flagged(tool).is_empty() {
        let _ = writeln!(
            out,
            "  - name: {}",
            quoted(&format!(
                "{name} is hidden until its definition is reviewed"
            ))
        );
        let _ = writeln!(out, "    tool: {}\n    expect: hidden", quoted(name));
        return;
    }
    match recommended_rule(category) {
        RecommendedRule::Allow => {
            let _ = writeln!(
                out,
                "  - name: {}",
                quoted(&format!("{name} is allowed ({category})"))
            );
            let _ = writeln!(out, "    tool: {}\n    expect: allow", quoted(name));
        }
        RecommendedRule::RequireApproval { .. } => {
            let _ = writeln!(
                out,
                "  - name: {}",
                quoted(&format!(
                    "{name} waits for a person's approval ({category})"
                ))
            );
            let _ = writeln!(out, "    tool: {}\n    expect: approval", quoted(name));
        }
        RecommendedRule::RateLimit { max_calls, per } => {
            let _ = writeln!(
                out,
                "  - name: {}",
                quoted(&format!(
                    "{name}: call {} in a {} is refused ({category})",
                    max_calls + 1,
                    per.as_str()
                ))
            );
            let _ = writeln!(out, "    tool: {}", quoted(name));
            // Start the counter one short of the limit rather than making every call.
            let keys = reserved_keys(policy, name);
            if !keys.is_empty() {
                out.push_str("    counters:\n");
                for key in keys {
                    let _ = writeln!(out, "      {}: {}", quoted(&key), max_calls - 1);
                }
                out.push_str("    expect: [allow, deny]\n");
            } else {
                let _ = writeln!(out, "    repeat: {}", max_calls + 1);
                let _ = writeln!(
                    out,
                    "    expect: [{}deny]",
                    "allow, ".repeat(max_calls as usize)
                );
            }
        }
    }
}

/// The counters a call with no arguments reserves under `policy`.
fn reserved_keys(policy: &Policy, tool: &str) -> Vec<String> {
    let arguments = serde_json::Value::Object(Default::default());
    let call = Call {
        tool,
        arguments: &arguments,
        session: None,
        identity: None,
        caller: None,
    };
    match policy.decide(&call) {
        toolgate_policy::Decision::Allow(permit) => {
            permit.reservations.into_iter().map(|r| r.key).collect()
        }
        _ => Vec::new(),
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}
