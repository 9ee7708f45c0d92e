//! The policies `scan` writes are valid toolgate policies that mean what their comments say.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use toolgate_classify::{
    classify_all, parse_tools_document, starter_policy_json, starter_policy_yaml,
};
use toolgate_policy::{Call, Decision};

const TOOLS: &str = r#"{"tools": [
  {"name": "list_files", "description": "List files in a directory", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
  {"name": "write_file", "description": "Write a file\nwith two lines: # not a comment", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}},
  {"name": "run_command", "description": "Run a shell command", "inputSchema": {"type": "object", "properties": {"command": {"type": "string"}}}},
  {"name": "delete_repository", "description": "Delete a repository permanently"},
  {"name": "create_refund", "description": "Refund a charge", "inputSchema": {"type": "object", "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}}}},
  {"name": "weird: name #1", "description": ""}
]}"#;

fn decide(policy: &toolgate_policy::Policy, tool: &str) -> Decision {
    let args = json!({});
    policy.decide(&Call {
        tool,
        arguments: &args,
        session: Some("s"),
        identity: None,
        caller: None,
    })
}

#[test]
fn yaml_starter_policy_validates_and_applies_the_recommendations() {
    let tools = parse_tools_document(TOOLS).unwrap();
    let results = classify_all(&tools, Some("demo"));
    let text = starter_policy_yaml(Some("demo"), &tools, &results);
    let policy = toolgate_policy::compile(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert!(
        matches!(decide(&policy, "list_files"), Decision::Allow(p) if p.reservations.is_empty())
    );
    match decide(&policy, "write_file") {
        Decision::Allow(p) => assert_eq!(p.reservations[0].max.to_string(), "30"),
        other => panic!("{other:?}"),
    }
    match decide(&policy, "run_command") {
        Decision::Allow(p) => assert_eq!(p.reservations[0].max.to_string(), "10"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decide(&policy, "delete_repository"),
        Decision::ApprovalRequired(_)
    ));
    assert!(matches!(
        decide(&policy, "create_refund"),
        Decision::ApprovalRequired(_)
    ));
    assert!(policy.tools.contains_key("weird: name #1"));
    assert!(
        text.contains("#   parameters: amount (integer), currency (string)"),
        "{text}"
    );
    assert!(text.contains(
        "#   state: {counter: spend, window: day, increment_from: args.amount, max: 500}"
    ));
    // Newlines in descriptions never escape the comment.
    assert!(
        text.contains("# write_file: Write a file with two lines: # not a comment"),
        "{text}"
    );
}

#[test]
fn json_starter_policy_is_policylayer_form_and_validates() {
    let tools = parse_tools_document(TOOLS).unwrap();
    let results = classify_all(&tools, None);
    let text = starter_policy_json(&tools, &results);
    let policy = toolgate_policy::compile(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(policy.format, toolgate_policy::PolicyFormat::PolicyLayer);
    assert!(matches!(
        decide(&policy, "delete_repository"),
        Decision::ApprovalRequired(_)
    ));
    match decide(&policy, "write_file") {
        Decision::Allow(p) => assert_eq!(p.reservations[0].max.to_string(), "30"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_server_still_gives_a_valid_policy() {
    let text = starter_policy_yaml(None, &[], &[]);
    toolgate_policy::compile(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
}
