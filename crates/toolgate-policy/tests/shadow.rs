//! Shadow mode and dry-run rules: what the policy would do is decided and reported, but the
//! call goes through; shadow limits count in counters of their own.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{decide, errors, policy};
use serde_json::json;
use toolgate_policy::suite::{parse_suite, CaseResult};
use toolgate_policy::{Call, Decision, Permit, ShadowDecision};

fn allowed(decision: Decision) -> Permit {
    match decision {
        Decision::Allow(permit) => permit,
        other => panic!("expected the call to go through, got {other:?}"),
    }
}

fn would(permit: &Permit) -> Option<(ShadowDecision, Option<&str>)> {
    permit
        .shadow
        .as_ref()
        .map(|s| (s.decision, s.rule.as_deref()))
}

const STRICT: &str = r#"
version: "1"
mode: shadow
default: deny
hide: [drop_db]
tools:
  delete_repo:
    rules:
      - name: no deletes
        action: deny
  create_refund:
    rules:
      - name: big refunds need a person
        action: require_approval
        conditions:
          - path: args.amount
            op: gt
            value: 100
      - name: refunds per hour
        rate_limit: 2/hour
"#;

#[test]
fn shadow_mode_lets_every_call_through_and_says_what_it_would_have_done() {
    let p = policy(STRICT);
    let deny = allowed(decide(&p, "delete_repo", json!({})));
    assert_eq!(
        would(&deny),
        Some((ShadowDecision::WouldDeny, Some("no deletes")))
    );

    // Hidden and unlisted tools are listed and callable, and would have been hidden.
    assert!(p.is_visible("drop_db") && p.is_visible("unlisted"));
    for tool in ["drop_db", "unlisted"] {
        let hidden = allowed(decide(&p, tool, json!({})));
        assert_eq!(would(&hidden), Some((ShadowDecision::WouldHide, None)));
    }

    // An approval is not asked for; a call the policy would have held counts nothing.
    let held = allowed(decide(&p, "create_refund", json!({"amount": 500})));
    assert_eq!(
        would(&held),
        Some((
            ShadowDecision::WouldRequireApproval,
            Some("big refunds need a person")
        ))
    );
    assert!(held.reservations.is_empty());

    // A call the policy would allow reserves shadow counters only.
    let ok = allowed(decide(&p, "create_refund", json!({"amount": 5})));
    assert_eq!(would(&ok), None);
    assert_eq!(ok.reservations.len(), 1);
    assert!(ok.reservations[0].shadow);
    assert_eq!(ok.reservations[0].key, "shadow:create_refund._rate_hour");
    assert_eq!(ok.enforced().count(), 0);
}

#[test]
fn a_call_readable_two_ways_is_refused_even_in_shadow_mode() {
    let p = policy(
        "version: \"1\"\nmode: shadow\ntools:\n  pay:\n    rules:\n      - name: cap\n        conditions:\n          - {path: args.amount, op: lte, value: 5}\n",
    );
    assert!(matches!(
        decide(&p, "pay", json!({"AMOUNT": 500})),
        Decision::Ambiguous(_)
    ));
}

const MIXED: &str = r#"
version: "1"
tools:
  create_issue:
    rules:
      - name: enforced hourly limit
        rate_limit: 10/hour
      - name: proposed title check
        dry_run: true
        conditions:
          - path: args.title
            op: regex
            value: "^[A-Z]"
      - name: proposed daily limit
        dry_run: true
        rate_limit: 3/day
      - name: proposed approval
        dry_run: true
        action: require_approval
        conditions:
          - path: args.urgent
            op: eq
            value: true
      - name: enforced ban
        action: deny
        conditions:
          - path: args.title
            op: eq
            value: spam
"#;

#[test]
fn dry_run_rules_beside_enforced_ones() {
    let p = policy(MIXED);
    // The enforced rules still refuse.
    assert!(matches!(
        decide(&p, "create_issue", json!({"title": "spam"})),
        Decision::Deny(d) if d.rule == "enforced ban"
    ));
    // A dry-run refusal lets the call through with its enforced counter, without the shadow
    // one (a refused call counts nothing in the shadow world either).
    let lower = allowed(decide(&p, "create_issue", json!({"title": "lower case"})));
    assert_eq!(
        would(&lower),
        Some((ShadowDecision::WouldDeny, Some("proposed title check")))
    );
    let keys: Vec<&str> = lower.reservations.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["create_issue._rate_hour"]);
    // A passing call counts in both, the enforced counter first.
    let fine = allowed(decide(&p, "create_issue", json!({"title": "Fine"})));
    assert_eq!(would(&fine), None);
    let keys: Vec<&str> = fine.reservations.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["create_issue._rate_hour", "shadow:create_issue._rate_day"]
    );
    // A later dry-run refusal beats an earlier dry-run approval.
    let both = allowed(decide(
        &p,
        "create_issue",
        json!({"title": "x", "urgent": true}),
    ));
    assert_eq!(would(&both).unwrap().0, ShadowDecision::WouldDeny);
    let urgent = allowed(decide(
        &p,
        "create_issue",
        json!({"title": "X", "urgent": true}),
    ));
    assert_eq!(
        would(&urgent).unwrap().0,
        ShadowDecision::WouldRequireApproval
    );
}

#[test]
fn a_full_shadow_counter_makes_the_call_would_deny_in_explain() {
    let p = policy(MIXED);
    let arguments = json!({"title": "Fine"});
    let call = Call {
        tool: "create_issue",
        arguments: &arguments,
        session: None,
        identity: None,
        caller: None,
    };
    let counters = HashMap::from([(
        "shadow:create_issue._rate_day".to_string(),
        toolgate_policy::Amount::parse("3").unwrap(),
    )]);
    let e = p.explain(&call, &counters);
    assert_eq!(e.decision, "allow");
    let shadow = e.shadow.unwrap();
    assert_eq!(shadow.decision, ShadowDecision::WouldDeny);
    assert_eq!(shadow.rule.as_deref(), Some("proposed daily limit"));
    assert_eq!(e.trace.last().unwrap().result, "would_deny");
}

#[test]
fn test_files_expect_shadow_outcomes() {
    let p = policy(MIXED);
    let suite = parse_suite(
        r#"
policy: p.yaml
cases:
  - name: the fourth issue of the day would be refused
    tool: create_issue
    args: {title: Fine}
    repeat: 5
    expect: [allow, allow, allow, would_deny, would_deny]
    rule: proposed daily limit
  - name: lower-case titles would be refused
    tool: create_issue
    args: {title: lower}
    expect: would_deny
    rule: proposed title check
  - name: urgent ones would wait
    tool: create_issue
    args: {title: Urgent, urgent: true}
    expect: would_require_approval
"#,
    )
    .unwrap();
    let results: Vec<CaseResult> = suite.cases.iter().map(|c| c.run(&p)).collect();
    assert!(results.iter().all(CaseResult::passed), "{results:#?}");
}

#[test]
fn mode_and_dry_run_are_validated() {
    let found: Vec<String> = errors(
        "version: \"1\"\nmode: audit\ntools:\n  t:\n    rules:\n      - name: r\n        action: deny\n        dry_run: \"yes\"\n",
    )
    .iter()
    .map(|d| format!("{}:{} {}", d.location.line, d.location.column, d.message))
    .collect();
    assert_eq!(
        found,
        [
            "2:7 mode must be \"enforce\" or \"shadow\", got \"audit\"",
            "8:18 expected true or false, found a string (\"yes\")",
        ]
    );
    // PolicyLayer entries take `dry_run` too.
    let p = policy(
        r#"{"version": "1", "tools": {"pay": {"deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 5}], "dry_run": true}]}}}"#,
    );
    let permit = allowed(decide(&p, "pay", json!({"amount": 50})));
    assert_eq!(would(&permit).unwrap().0, ShadowDecision::WouldDeny);
    // Shadow mode is part of what the policy means.
    assert_ne!(
        policy("version: \"1\"\nmode: shadow\n").revision,
        policy("version: \"1\"\n").revision
    );
    assert_eq!(
        policy("version: \"1\"\nmode: enforce\n").revision,
        policy("version: \"1\"\n").revision
    );
}
