//! The order in which a decision is reached: hidden tools, then `default: deny`, then the
//! tool's own rules in file order, then the `"*"` rules; the first rule that denies decides,
//! a matching deny beats an approval, and argument checks come before counters.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{decide, denial, policy, reservations, summary};
use serde_json::json;
use toolgate_policy::{Amount, Call, Decision};

#[test]
fn a_hidden_tool_is_hidden_even_when_listed_with_rules() {
    let p = policy(
        r#"
version: "1"
hide: [delete_repo]
tools:
  delete_repo:
    rules:
      - name: block
        action: deny
        on_deny: "never"
"#,
    );
    assert_eq!(decide(&p, "delete_repo", json!({})), Decision::Hidden);
    assert!(!p.is_visible("delete_repo"));
    assert!(p.is_visible("other"));
    assert_eq!(summary(&decide(&p, "other", json!({}))), "allow []");
}

#[test]
fn hide_star_hides_every_tool() {
    let p = policy("version: \"1\"\nhide: [\"*\"]\ntools:\n  listed:\n    rules: []\n");
    assert_eq!(decide(&p, "listed", json!({})), Decision::Hidden);
    assert_eq!(decide(&p, "anything", json!({})), Decision::Hidden);
    assert!(!p.is_visible("listed"));
}

#[test]
fn hidden_comes_before_default_deny_and_both_answer_hidden() {
    let p = policy(
        r#"
version: "1"
default: deny
hide: [secret]
tools:
  secret:
    rules: []
  open:
    rules: []
"#,
    );
    assert_eq!(decide(&p, "secret", json!({})), Decision::Hidden);
    assert_eq!(decide(&p, "unlisted", json!({})), Decision::Hidden);
    assert_eq!(summary(&decide(&p, "open", json!({}))), "allow []");
    assert!(!p.is_visible("unlisted"));
    assert!(p.is_visible("open"));
}

#[test]
fn wildcard_rules_never_rescue_unlisted_tools_under_default_deny() {
    let p = policy(
        r#"
version: "1"
default: deny
tools:
  listed:
    rules: []
  "*":
    rules:
      - name: everyone may
        action: allow
      - name: global rate
        rate_limit: 60/minute
"#,
    );
    assert_eq!(decide(&p, "unlisted", json!({})), Decision::Hidden);
    // Listed tools still get the wildcard rules.
    assert_eq!(
        summary(&decide(&p, "listed", json!({}))),
        "allow [_global._rate_minute ≤60 +1/minute]"
    );
}

#[test]
fn under_default_allow_unlisted_tools_get_only_the_wildcard_rules() {
    let p = policy(
        r#"
version: "1"
tools:
  listed:
    rules:
      - name: listed only
        action: deny
  "*":
    rules:
      - name: no prod
        action: deny
        conditions:
          - {path: args.env, op: eq, value: prod}
"#,
    );
    assert_eq!(summary(&decide(&p, "unlisted", json!({}))), "allow []");
    assert_eq!(
        denial(&decide(&p, "unlisted", json!({"env": "prod"}))).0,
        "no prod"
    );
}

#[test]
fn tool_rules_run_before_wildcard_rules() {
    let p = policy(
        r#"
version: "1"
tools:
  "*":
    rules:
      - name: wildcard amount
        conditions:
          - {path: args.amount, op: lte, value: 100}
  pay:
    rules:
      - name: tool amount
        conditions:
          - {path: args.amount, op: lte, value: 10}
"#,
    );
    // Both rules fail: the tool's own rule decides, although "*" is written first.
    assert_eq!(
        denial(&decide(&p, "pay", json!({"amount": 500}))).0,
        "tool amount"
    );
    // The tool's rule passes, the wildcard rule still applies.
    assert_eq!(
        summary(&decide(&p, "pay", json!({"amount": 5}))),
        "allow []"
    );
    assert_eq!(
        denial(&decide(&p, "other", json!({"amount": 500}))).0,
        "wildcard amount"
    );
}

#[test]
fn the_first_failing_rule_decides_in_file_order() {
    let p = policy(
        r#"
version: "1"
tools:
  charge:
    rules:
      - name: currency
        conditions:
          - {path: args.currency, op: in, value: [usd]}
        on_deny: "USD only"
      - name: amount
        conditions:
          - {path: args.amount, op: lte, value: 100}
        on_deny: "Too much"
"#,
    );
    let both_bad = json!({"currency": "gbp", "amount": 500});
    assert_eq!(
        denial(&decide(&p, "charge", both_bad)),
        ("currency".to_string(), "USD only".to_string())
    );
    let amount_bad = json!({"currency": "usd", "amount": 500});
    assert_eq!(
        denial(&decide(&p, "charge", amount_bad)),
        ("amount".to_string(), "Too much".to_string())
    );
}

#[test]
fn within_a_rule_every_condition_must_hold() {
    let p = policy(
        r#"
version: "1"
tools:
  charge:
    rules:
      - name: safe charge
        conditions:
          - {path: args.amount, op: lte, value: 100}
          - {path: args.currency, op: eq, value: usd}
"#,
    );
    assert!(matches!(
        decide(&p, "charge", json!({"amount": 1, "currency": "usd"})),
        Decision::Allow(_)
    ));
    assert!(matches!(
        decide(&p, "charge", json!({"amount": 1, "currency": "eur"})),
        Decision::Deny(_)
    ));
}

#[test]
fn a_deny_rule_with_conditions_denies_only_when_all_match() {
    let p = policy(
        r#"
version: "1"
tools:
  deploy:
    rules:
      - name: no friday prod
        action: deny
        conditions:
          - {path: args.env, op: eq, value: prod}
          - {path: args.day, op: eq, value: friday}
"#,
    );
    assert!(matches!(
        decide(&p, "deploy", json!({"env": "prod", "day": "monday"})),
        Decision::Allow(_)
    ));
    assert_eq!(
        denial(&decide(
            &p,
            "deploy",
            json!({"env": "prod", "day": "friday"})
        )),
        (
            "no friday prod".to_string(),
            "Denied by rule \"no friday prod\".".to_string()
        )
    );
}

#[test]
fn an_allow_rule_does_not_stop_later_rules() {
    let p = policy(
        r#"
version: "1"
tools:
  t:
    rules:
      - action: allow
      - name: no
        action: deny
"#,
    );
    assert_eq!(denial(&decide(&p, "t", json!({}))).0, "no");
}

#[test]
fn deny_beats_require_approval_even_when_the_approval_rule_comes_first() {
    let p = policy(
        r#"
version: "1"
tools:
  refund:
    rules:
      - name: approve large
        action: require_approval
        conditions:
          - {path: args.amount, op: gt, value: 100}
      - name: never huge
        action: deny
        conditions:
          - {path: args.amount, op: gt, value: 10000}
        on_deny: "Refunds over 10000 are never allowed"
      - name: reason needed
        conditions:
          - {path: args.reason, op: exists, value: true}
"#,
    );
    assert_eq!(
        denial(&decide(
            &p,
            "refund",
            json!({"amount": 20000, "reason": "x"})
        )),
        (
            "never huge".to_string(),
            "Refunds over 10000 are never allowed".to_string()
        )
    );
    // A failing requirement after the approval rule also wins.
    assert_eq!(
        denial(&decide(&p, "refund", json!({"amount": 500}))).0,
        "reason needed"
    );
    assert_eq!(
        summary(&decide(&p, "refund", json!({"amount": 500, "reason": "x"}))),
        "approval \"approve large\" (Retry, 1800000ms) []"
    );
}

#[test]
fn approval_rules_whose_conditions_do_not_match_are_skipped() {
    let p = policy(
        r#"
version: "1"
tools:
  refund:
    rules:
      - name: approve large
        action: require_approval
        conditions:
          - {path: args.amount, op: gt, value: 100}
      - name: approve foreign
        action: require_approval
        conditions:
          - {path: args.currency, op: neq, value: usd}
        message: "Foreign currency refunds need approval"
"#,
    );
    assert_eq!(
        summary(&decide(
            &p,
            "refund",
            json!({"amount": 5, "currency": "usd"})
        )),
        "allow []"
    );
    match decide(&p, "refund", json!({"amount": 5, "currency": "eur"})) {
        Decision::ApprovalRequired(a) => {
            assert_eq!(a.rule, "approve foreign");
            assert_eq!(
                a.message.as_deref(),
                Some("Foreign currency refunds need approval")
            );
        }
        other => panic!("expected approval, got {other:?}"),
    }
    // When several match, the first one written asks.
    match decide(&p, "refund", json!({"amount": 500, "currency": "eur"})) {
        Decision::ApprovalRequired(a) => {
            assert_eq!(a.rule, "approve large");
            assert_eq!(a.message, None);
        }
        other => panic!("expected approval, got {other:?}"),
    }
}

#[test]
fn an_approval_rule_without_conditions_always_asks_and_keeps_the_permit() {
    let p = policy(
        r#"
version: "1"
tools:
  send_email:
    rules:
      - name: a person reads every email
        action: require_approval
        approval_timeout: 2h
        approval_mode: hold
  "*":
    rules:
      - rate_limit: 100/day
"#,
    );
    assert_eq!(
        summary(&decide(&p, "send_email", json!({}))),
        "approval \"a person reads every email\" (Hold, 7200000ms) [_global._rate_day ≤100 +1/day]"
    );
}

#[test]
fn argument_checks_come_before_counters() {
    let p = policy(
        r#"
version: "1"
tools:
  create_issue:
    rules:
      - name: hourly
        rate_limit: 1/hour
      - name: needs a title
        conditions:
          - {path: args.title, op: exists, value: true}
"#,
    );
    // The argument rule denies although the counter rule is written first, and no counter
    // is reserved for a call that breaks an argument rule.
    let no_title = json!({});
    assert_eq!(
        denial(&decide(&p, "create_issue", no_title.clone())).0,
        "needs a title"
    );
    // Even with the counter exhausted, explain names the argument rule.
    let counters = HashMap::from([("create_issue._rate_hour".to_string(), Amount::ONE)]);
    let explanation = p.explain(
        &Call {
            tool: "create_issue",
            arguments: &no_title,
            session: None,
            identity: None,
            caller: None,
        },
        &counters,
    );
    assert_eq!(explanation.decision, "deny");
    assert_eq!(explanation.rule.as_deref(), Some("needs a title"));
    assert!(explanation.reservations.is_empty());
}

#[test]
fn reservations_follow_rule_order_tool_rules_first() {
    let p = policy(
        r#"
version: "1"
tools:
  "*":
    rules:
      - name: global
        rate_limit: 60/minute
  create_issue:
    rules:
      - name: daily
        rate_limit: 20/day
      - name: hourly
        rate_limit: 5/hour
"#,
    );
    let keys: Vec<String> = reservations(&decide(&p, "create_issue", json!({})))
        .into_iter()
        .map(|r| format!("{} ({})", r.key, r.rule))
        .collect();
    assert_eq!(
        keys,
        [
            "create_issue._rate_day (daily)",
            "create_issue._rate_hour (hourly)",
            "_global._rate_minute (global)"
        ]
    );
}

#[test]
fn a_rule_that_cannot_count_denies_before_later_rules_run() {
    let p = policy(
        r#"
version: "1"
tools:
  charge:
    rules:
      - name: spend
        state:
          counter: spend
          window: day
          max: 1000
          increment_from: args.amount
      - name: never
        action: deny
"#,
    );
    assert_eq!(
        denial(&decide(&p, "charge", json!({}))),
        (
            "spend".to_string(),
            "Argument args.amount is required to count this call.".to_string()
        )
    );
}
