//! Policy test files: parsing with located errors, and running cases as the gateway decides.
#![allow(clippy::unwrap_used)]

mod common;

use common::policy;
use toolgate_policy::suite::{parse_suite, CaseResult, Outcome, Suite};
use toolgate_policy::Policy;

const POLICY: &str = r#"
version: "1"
hide: [drop_db]
tools:
  create_refund:
    rules:
      - name: refund cap
        conditions:
          - path: args.amount
            op: lte
            value: 100000
        on_deny: too large
      - name: large refund approval
        action: require_approval
        conditions:
          - path: args.amount
            op: gt
            value: 50000
      - name: daily refund budget
        state:
          counter: spend
          window: day
          increment_from: args.amount
        conditions:
          - path: state.create_refund.spend
            op: lte
            value: 100000
  create_issue:
    rules:
      - name: hourly issue limit
        rate_limit: {max: 3, window: 1h, scope: identity}
categories:
  Destructive:
    rules:
      - name: destructive calls need a person
        action: require_approval
"#;

fn suite(text: &str) -> Suite {
    parse_suite(text).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn run(policy: &Policy, text: &str) -> Vec<CaseResult> {
    suite(text).cases.iter().map(|c| c.run(policy)).collect()
}

fn failure_reason(result: &CaseResult) -> String {
    let f = result.failure.as_ref().expect("the case should fail");
    format!("call {} of {}: {}", f.call, f.calls, f.reason)
}

#[test]
fn a_rate_limit_sequence_allows_then_denies_and_counts_per_identity() {
    let p = policy(POLICY);
    let results = run(
        &p,
        r#"
policy: p.yaml
cases:
  - name: fourth issue refused
    tool: create_issue
    identity: alice
    repeat: 4
    expect: [allow, allow, allow, deny]
    rule: hourly issue limit
  - name: every case starts from zero
    tool: create_issue
    identity: alice
    repeat: 3
    expect: allow
  - name: another identity has a counter of its own
    tool: create_issue
    identity: bob
    counters: {"create_issue._rate_hour@identity:\"alice\"": 3}
    expect: allow
  - name: that counter is the one a starting value names
    tool: create_issue
    identity: alice
    counters: {"create_issue._rate_hour@identity:\"alice\"": 3}
    expect: deny
"#,
    );
    assert!(results.iter().all(CaseResult::passed), "{results:#?}");
}

#[test]
fn a_failing_call_is_reported_with_its_place_in_the_sequence_and_its_trace() {
    let p = policy(POLICY);
    let results = run(
        &p,
        r#"
policy: p.yaml
cases:
  - name: limit is off by one
    tool: create_issue
    repeat: 4
    expect: [allow, allow, deny, deny]
"#,
    );
    assert_eq!(
        failure_reason(&results[0]),
        "call 3 of 4: expected deny, got allow"
    );
    let failure = results[0].failure.as_ref().unwrap();
    assert_eq!(failure.expected, Outcome::Deny);
    assert_eq!(failure.got, Outcome::Allow);
    assert_eq!(failure.explanation.reservations[0].current.to_string(), "2");
    assert!(!failure.explanation.trace.is_empty());
}

#[test]
fn spend_accumulates_the_argument_and_starting_counters_count() {
    let p = policy(POLICY);
    let results = run(
        &p,
        r#"
policy: p.yaml
cases:
  - name: the budget runs out
    tool: create_refund
    args: {amount: 40000}
    repeat: 3
    expect: [allow, allow, deny]
    rule: daily refund budget
  - name: a counter can start part-used
    tool: create_refund
    args: {amount: 40000}
    counters: {create_refund.spend: 70000}
    expect: deny
"#,
    );
    assert!(results.iter().all(CaseResult::passed), "{results:#?}");
}

#[test]
fn a_call_held_for_approval_reserves_nothing_and_rules_are_checked() {
    let p = policy(POLICY);
    let results = run(
        &p,
        r#"
policy: p.yaml
cases:
  - name: big refunds wait
    tool: create_refund
    args: {amount: 60000}
    repeat: 2
    expect: approval
    rule: large refund approval
  - name: the wrong rule is named
    tool: create_refund
    args: {amount: 500000}
    expect: deny
    rule: daily refund budget
"#,
    );
    // A refund waiting for approval is not forwarded, so it adds nothing to the daily
    // budget: had the first counted, the second (120,000) would not fit.
    assert!(results[0].passed(), "{:#?}", results[0]);
    assert_eq!(
        failure_reason(&results[1]),
        "call 1 of 1: expected rule \"daily refund budget\" to decide, but \"refund cap\" did"
    );
}

#[test]
fn hidden_category_and_malformed_outcomes() {
    let p = policy(POLICY);
    let results = run(
        &p,
        r#"
policy: p.yaml
cases:
  - name: hidden tools are unknown
    tool: drop_db
    expect: hidden
  - name: a destructive tool the policy does not name
    tool: purge_cache
    category: Destructive
    expect: approval
  - name: without its category it is allowed
    tool: purge_cache
    expect: allow
  - name: members a lenient server reads as one are refused
    tool: create_refund
    args: {amount: 5, AMOUNT: 5000000}
    expect: malformed
  - name: nested too
    tool: create_issue
    args: {meta: [{tag: a, "TAG": b}]}
    expect: malformed
"#,
    );
    assert!(results.iter().all(CaseResult::passed), "{results:#?}");
}

#[test]
fn problems_are_reported_with_line_and_column() {
    let errors = parse_suite(
        "policy: p.yaml\ncases:\n  - name: a\n    tool: t\n    expect: alow\n    repat: 2\n  - name: b\n    tool: t\n    expect: [allow, deny]\n    repeat: 3\n  - name: a\n    tool: t\n    expect: allow\n",
    )
    .unwrap_err();
    let found: Vec<String> = errors
        .iter()
        .map(|d| {
            format!(
                "{}:{} {}: {}",
                d.location.line, d.location.column, d.path, d.message
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "5:13 cases[0].expect: \"alow\" is not a decision",
            "6:5 cases[0].repat: unknown key \"repat\"",
            "10:13 cases[1].repeat: repeat is 3 but expect lists 2 decisions",
        ]
    );
    let errors = parse_suite("cases: []\n").unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        ["missing `policy`", "a test file needs at least one case"]
    );
    let errors = parse_suite(
        "policy: p.yaml\ncases:\n  - {name: a, tool: t, expect: allow}\n  - {name: a, tool: u, expect: deny}\n",
    )
    .unwrap_err();
    assert_eq!(errors[0].message, "another case is also named \"a\"");
    let errors = parse_suite(
        "policy: p.yaml\ncases:\n  - {name: a, tool: t, expect: allow, rule: r}\n  - {name: b, tool: t, expect: allow, repeat: 0}\n  - {name: c, tool: t, expect: allow, counters: {k: -1}}\n",
    )
    .unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`rule` names the rule that denies or asks for approval, but this case expects neither",
            "repeat must be a whole number from 1 to 100000, got 0",
            "a counter is never negative",
        ]
    );
}
