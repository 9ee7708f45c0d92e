//! PolicyLayer's JSON form: how it is recognised, what each entry becomes, how its rules are
//! named, and the order they run in whatever order the keys were written.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decide, decide_as, denial, fixture, policy, reservations, summary};
use serde_json::json;
use toolgate_policy::ir::{ApprovalMode, Effect, Scope};
use toolgate_policy::{Decision, DefaultAction, PolicyFormat, WindowMode};

#[test]
fn the_form_is_recognised_from_content() {
    let cases = [
        (
            "{\"version\": \"1\", \"all_tools\": {\"limits\": []}}",
            PolicyFormat::PolicyLayer,
        ),
        (
            "{\"version\": \"1\", \"tools\": {\"t\": {\"require\": []}}}",
            PolicyFormat::PolicyLayer,
        ),
        (
            "{\"version\": \"1\", \"tools\": {\"t\": {\"rules\": []}}}",
            PolicyFormat::Intercept,
        ),
        // YAML text in PolicyLayer's shape is still PolicyLayer's form.
        (
            "version: \"1\"\ntools:\n  t:\n    deny_if: []\n",
            PolicyFormat::PolicyLayer,
        ),
        // Nothing but empty tools: JSON text reads as PolicyLayer's, YAML as Intercept's.
        (
            "{\"version\": \"1\", \"tools\": {\"t\": {}}}",
            PolicyFormat::PolicyLayer,
        ),
        ("version: \"1\"\ntools:\n  t: {}\n", PolicyFormat::Intercept),
    ];
    for (text, format) in cases {
        assert_eq!(policy(text).format, format, "{text}");
    }
}

#[test]
fn top_level_fields_mean_what_they_mean_in_intercept() {
    let p = policy(&fixture("payments.json"));
    assert_eq!(p.default, DefaultAction::Deny);
    assert_eq!(
        p.description.as_deref(),
        Some("PolicyLayer hosted-gateway policy for a payments server")
    );
    assert!(p.hidden.contains("delete_account"));
    assert_eq!(decide(&p, "delete_account", json!({})), Decision::Hidden);
    assert_eq!(decide(&p, "unlisted", json!({})), Decision::Hidden);
    let p = policy("{\"version\": \"1\", \"deny_prefix\": \"[GATEWAY]\", \"tools\": {}}");
    assert_eq!(p.deny_prefix.as_deref(), Some("[GATEWAY]"));
}

#[test]
fn each_entry_is_a_rule_named_after_where_it_was_written() {
    let p = policy(&fixture("payments.json"));
    let names: Vec<(&str, &str)> = p.tools["create_refund"]
        .iter()
        .map(|r| (r.name.as_str(), r.origin.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("create_refund.require[0]", "tools.create_refund.require[0]"),
            ("create_refund.require[1]", "tools.create_refund.require[1]"),
            ("create_refund.deny_if[0]", "tools.create_refund.deny_if[0]"),
            ("create_refund.limits[0]", "tools.create_refund.limits[0]"),
        ]
    );
    assert_eq!(p.wildcard[0].name, "all_tools.limits[0]");
    assert_eq!(p.wildcard[0].origin, "all_tools.limits[0]");
}

#[test]
fn require_entries_deny_with_the_condition_that_failed() {
    let p = policy(&fixture("payments.json"));
    assert_eq!(
        denial(&decide(
            &p,
            "create_refund",
            json!({"amount": 501, "currency": "usd"})
        )),
        (
            "create_refund.require[0]".to_string(),
            "Requirement not met: args.amount lte 500".to_string()
        )
    );
    assert_eq!(
        denial(&decide(
            &p,
            "create_refund",
            json!({"amount": 5, "currency": "jpy"})
        )),
        (
            "create_refund.require[1]".to_string(),
            "Requirement not met: args.currency in [\"usd\",\"eur\"]".to_string()
        )
    );
}

#[test]
fn deny_if_entries_deny_when_all_conditions_match() {
    let p = policy(&fixture("payments.json"));
    assert_eq!(
        denial(&decide(
            &p,
            "create_refund",
            json!({"amount": 5, "currency": "usd", "reason": "just a test"})
        )),
        (
            "create_refund.deny_if[0]".to_string(),
            "Test refunds are not allowed".to_string()
        )
    );
    // Without conditions a deny_if entry refuses every call; without on_deny the message
    // names the entry.
    let p = policy("{\"version\": \"1\", \"tools\": {\"t\": {\"deny_if\": [{}]}}}");
    assert_eq!(
        denial(&decide(&p, "t", json!({}))),
        (
            "t.deny_if[0]".to_string(),
            "Denied by rule \"t.deny_if[0]\".".to_string()
        )
    );
}

#[test]
fn limits_take_counter_window_max_scope_increment_and_mode() {
    let p = policy(&fixture("payments.json"));
    let limit = &p.tools["create_refund"][3].limits[0];
    assert_eq!(limit.counter, "refund_total");
    assert_eq!(limit.scope, Scope::Identity);
    assert_eq!(limit.max.to_string(), "1000.5");
    let capture = &p.tools["capture_payment"];
    let limit = &capture[1].limits[0];
    assert_eq!(limit.window.length_ms, 15 * 60_000);
    assert_eq!(limit.window.mode, WindowMode::Sliding);
    assert_eq!(
        limit.scope,
        Scope::Argument(toolgate_policy::args::ArgPath::parse("args.merchant").unwrap())
    );

    let r = reservations(&decide_as(
        &p,
        "create_refund",
        json!({"amount": 12.5, "currency": "eur"}),
        None,
        Some("grant-7"),
    ));
    assert_eq!(
        r.iter()
            .map(|r| format!("{} {} {} {}", r.key, r.amount, r.max, r.message))
            .collect::<Vec<_>>(),
        [
            "create_refund.refund_total@identity:\"grant-7\" 12.5 1000.5 Limit of 1000.5 per day reached for counter \"refund_total\".",
            "_global.calls@identity:\"grant-7\" 1 120 Limit of 120 per minute reached for counter \"calls\".",
        ]
    );
}

#[test]
fn all_tools_limits_count_every_listed_tool() {
    let p = policy(&fixture("payments.json"));
    assert_eq!(
        summary(&decide_as(
            &p,
            "list_payments",
            json!({}),
            None,
            Some("alice")
        )),
        "allow [_global.calls@identity:\"alice\" ≤120 +1/minute]"
    );
    // A "*" entry under tools is the same as all_tools, with the full set of keys.
    let p = policy(
        r#"{"version": "1", "tools": {"*": {"deny_if": [{"conditions": [{"path": "args.env", "op": "eq", "value": "prod"}]}]}}}"#,
    );
    assert_eq!(
        denial(&decide(&p, "anything", json!({"env": "prod"}))).0,
        "all_tools.deny_if[0]"
    );
}

#[test]
fn require_approval_entries_ask_with_their_settings() {
    let p = policy(&fixture("payments.json"));
    let rule = &p.tools["capture_payment"][0];
    match &rule.effect {
        Effect::RequireApproval(settings) => {
            assert_eq!(settings.mode, ApprovalMode::Retry);
            assert_eq!(settings.timeout_ms, 30 * 60_000);
        }
        other => panic!("expected an approval rule, got {other:?}"),
    }
    assert_eq!(
        summary(&decide_as(
            &p,
            "capture_payment",
            json!({"amount": 1000, "merchant": "m-1"}),
            None,
            Some("alice")
        )),
        "approval \"capture_payment.require_approval[0]\" (Retry, 1800000ms) [capture_payment.captures@args.merchant=\"m-1\" ≤5 +1/15m (sliding), _global.calls@identity:\"alice\" ≤120 +1/minute]"
    );
    assert_eq!(
        summary(&decide_as(
            &p,
            "capture_payment",
            json!({"amount": 999, "merchant": "m-1"}),
            None,
            Some("alice")
        )),
        "allow [capture_payment.captures@args.merchant=\"m-1\" ≤5 +1/15m (sliding), _global.calls@identity:\"alice\" ≤120 +1/minute]"
    );
    let p = policy(
        r#"{"version": "1", "tools": {"t": {"require_approval": [{"message": "ask", "approval_timeout": "2m", "approval_mode": "hold"}]}}}"#,
    );
    assert_eq!(
        summary(&decide(&p, "t", json!({}))),
        "approval \"t.require_approval[0]\" (Hold, 120000ms) []"
    );
}

#[test]
fn key_order_in_a_tool_does_not_change_decisions() {
    // Limits written first still count only after every argument check has passed.
    let limits_first = policy(
        r#"{"version": "1", "tools": {"t": {
            "limits": [{"counter": "spend", "window": "day", "max": 100, "increment_from": "args.amount"}],
            "deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 50}], "on_deny": "too much"}],
            "require": [{"path": "args.amount", "op": "exists", "value": true}]
        }}}"#,
    );
    let names: Vec<&str> = limits_first.tools["t"]
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["t.require[0]", "t.deny_if[0]", "t.limits[0]"]);
    assert_eq!(
        denial(&decide(&limits_first, "t", json!({}))),
        (
            "t.require[0]".to_string(),
            "Requirement not met: args.amount exists true".to_string()
        )
    );
    assert_eq!(
        denial(&decide(&limits_first, "t", json!({"amount": 60}))).1,
        "too much"
    );
}
