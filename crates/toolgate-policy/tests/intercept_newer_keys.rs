//! Keys Intercept added after its first release: `spend_limit`, and the refusal of counters on
//! `require_approval` rules.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decide, errors, policy, summary};
use serde_json::json;
use toolgate_policy::{Amount, Decision};

fn spend(limit: &str) -> String {
    format!(
        "version: \"1\"\ntools:\n  create_refund:\n    rules:\n      - name: refund budget\n        spend_limit: {limit}\n"
    )
}

#[test]
fn spend_limit_sums_the_amount_argument_exactly() {
    let p = policy(&spend("\"$500/day\""));
    let rule = &p.tools["create_refund"][0];
    let limit = &rule.limits[0];
    assert_eq!(limit.counter, "_spend_day");
    assert_eq!(limit.max, Amount::parse("500").unwrap());
    assert_eq!(
        summary(&decide(&p, "create_refund", json!({"amount": 19.99}))),
        "allow [create_refund._spend_day ≤500 +19.99/day]"
    );
    assert_eq!(
        rule.message.as_deref(),
        Some("Spend limit of 500 per day reached.")
    );
    // The amount must be there, a number, and not negative.
    for bad in [json!({}), json!({"amount": "19.99"}), json!({"amount": -5})] {
        assert!(matches!(
            decide(&p, "create_refund", bad),
            Decision::Deny(_)
        ));
    }
}

#[test]
fn spend_limit_block_names_the_argument_scope_and_window() {
    let p = policy(&spend(
        "{max: 250.50, window: 7d, increment_from: args.total, scope: identity}",
    ));
    let limit = &p.tools["create_refund"][0].limits[0];
    assert_eq!(limit.counter, "_spend_7d");
    assert_eq!(limit.max, Amount::parse("250.5").unwrap());
    let arguments = json!({"total": 10});
    let call = toolgate_policy::Call {
        tool: "create_refund",
        arguments: &arguments,
        session: None,
        identity: Some("alice"),
        caller: None,
    };
    assert_eq!(
        summary(&p.decide(&call)),
        "allow [create_refund._spend_7d@identity:\"alice\" ≤250.5 +10/7d]"
    );
    assert_eq!(
        policy(&spend("\"€ 1_000 / 15m\"")).tools["create_refund"][0].limits[0].max,
        Amount::parse("1000").unwrap()
    );
}

#[test]
fn spend_limit_mistakes_are_reported_where_they_are() {
    let found = |limit: &str| -> Vec<String> {
        errors(&spend(limit))
            .iter()
            .map(|d| format!("{}:{} {}", d.location.line, d.location.column, d.message))
            .collect()
    };
    assert_eq!(
        found("\"$500\""),
        ["6:22 spend_limit must be \"AMOUNT/window\", got \"$500\""]
    );
    assert_eq!(
        found("\"$0/day\""),
        ["6:22 spend_limit amount must be a positive number, got \"$0/day\""]
    );
    assert_eq!(
        found("\"$5/fortnight\"")[0],
        "6:22 spend_limit window: \"fortnight\" is not a window: use minute, hour, day, or a duration such as 30s, 15m, 2h, 7d"
    );
    assert_eq!(
        found("{max: 5}"),
        ["6:22 a spend_limit block needs both `max` and `window`"]
    );
    let mixed = errors(
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        rate_limit: 5/hour\n        spend_limit: \"$5/day\"\n",
    );
    assert_eq!(
        mixed[0].message,
        "spend_limit cannot be combined with conditions, state or rate_limit"
    );
}

#[test]
fn require_approval_rules_cannot_keep_counters() {
    for (key, value) in [
        ("rate_limit", "5/hour"),
        ("spend_limit", "\"$5/day\""),
        ("state", "{counter: c, window: day, max: 3}"),
    ] {
        let e = errors(&format!(
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        action: require_approval\n        {key}: {value}\n"
        ));
        assert_eq!(e.len(), 1, "{key}: {e:?}");
        assert_eq!(
            (e[0].location.line, e[0].message.as_str()),
            (
                7,
                format!("{key} cannot be used with action \"require_approval\"").as_str()
            )
        );
    }
}

#[test]
fn idempotency_window_on_a_tool_a_rule_or_every_tool() {
    let p = policy(
        r#"
version: "1"
tools:
  create_issue:
    idempotency_window: 5m
    rules:
      - name: longer on the rule
        idempotency_window: 10m
        rate_limit: 5/hour
  "*":
    idempotency_window: 30s
    rules: []
"#,
    );
    assert_eq!(p.idempotency_window_ms("create_issue"), Some(600_000));
    assert_eq!(p.idempotency_window_ms("anything"), Some(30_000));
    assert_eq!(policy("version: \"1\"\n").idempotency_window_ms("t"), None);
    let found: Vec<String> = errors(
        "version: \"1\"\ntools:\n  t:\n    idempotency_window: 2d\ncategories:\n  Write:\n    idempotency_window: 1m\n",
    )
    .iter()
    .map(|d| format!("{}:{} {}", d.location.line, d.location.column, d.message))
    .collect();
    assert_eq!(
        found,
        [
            "4:25 idempotency_window is at most a day",
            "7:25 idempotency_window cannot be set by risk category",
        ]
    );
}
