//! How the short forms become explicit limits in the IR: `rate_limit` strings and blocks,
//! `lte`/`lt` conditions on a rule's own counter, explicit `max`, scopes and namespaces, and
//! exact decimal increments taken from arguments.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decide, decide_as, denial, policy, reservations};
use serde_json::json;
use toolgate_policy::ir::{Increment, Limit, Scope, GLOBAL_NAMESPACE};
use toolgate_policy::{Amount, Decision, Policy, Window, WindowMode};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

/// The only limit of the only rule of `tool` (`"*"` for the wildcard rules).
fn only_limit(policy: &Policy, tool: &str) -> Limit {
    let rules = if tool == "*" {
        &policy.wildcard
    } else {
        &policy.tools[tool]
    };
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].limits.len(), 1);
    rules[0].limits[0].clone()
}

fn one_rule(tool: &str, rule: &str) -> Policy {
    let indented: String = rule.lines().map(|l| format!("      {l}\n")).collect();
    policy(&format!(
        "version: \"1\"\ntools:\n  \"{tool}\":\n    rules:\n{indented}"
    ))
}

#[test]
fn rate_limit_string_becomes_a_rate_counter_with_max() {
    let p = one_rule("create_issue", "- name: hourly\n  rate_limit: 5/hour");
    assert_eq!(
        only_limit(&p, "create_issue"),
        Limit {
            counter: "_rate_hour".into(),
            namespace: Some("create_issue".into()),
            scope: Scope::Shared,
            window: Window::fixed(HOUR),
            max: amount("5"),
            increment: Increment::Fixed(Amount::ONE),
        }
    );
    let rule = &p.tools["create_issue"][0];
    assert_eq!(
        rule.message.as_deref(),
        Some("Rate limit of 5 per hour reached. Try again later.")
    );
    assert!(rule.conditions.is_empty());
    let r = &reservations(&decide(&p, "create_issue", json!({})))[0];
    assert_eq!(r.key, "create_issue._rate_hour");
    assert_eq!((r.max, r.amount), (amount("5"), Amount::ONE));
    assert_eq!(r.rule, "hourly");
    assert_eq!(
        r.message,
        "Rate limit of 5 per hour reached. Try again later."
    );
}

#[test]
fn rate_limit_windows_name_their_counters() {
    for (written, counter, length) in [
        ("60/minute", "_rate_minute", MINUTE),
        ("100/day", "_rate_day", DAY),
        ("10/15m", "_rate_15m", 15 * MINUTE),
        ("3/30s", "_rate_30s", 30_000),
        ("2/2h", "_rate_2h", 2 * HOUR),
        ("9/7d", "_rate_7d", 7 * DAY),
        // A duration equal to a named window is that window.
        ("10/60m", "_rate_hour", HOUR),
        (" 4 / hour ", "_rate_hour", HOUR),
    ] {
        let p = one_rule("t", &format!("- name: r\n  rate_limit: \"{written}\""));
        let limit = only_limit(&p, "t");
        assert_eq!(limit.counter, counter, "{written}");
        assert_eq!(limit.window.length_ms, length, "{written}");
        assert_eq!(limit.window.mode, WindowMode::Fixed, "{written}");
    }
}

#[test]
fn on_deny_replaces_the_generated_rate_limit_message() {
    let p = one_rule(
        "t",
        "- name: r\n  rate_limit: 5/hour\n  on_deny: \"Five an hour\"",
    );
    assert_eq!(p.tools["t"][0].message.as_deref(), Some("Five an hour"));
}

#[test]
fn wildcard_rate_limits_count_in_the_global_namespace() {
    let p = one_rule("*", "- name: global\n  rate_limit: 60/minute");
    let limit = only_limit(&p, "*");
    assert_eq!(limit.namespace.as_deref(), Some(GLOBAL_NAMESPACE));
    assert_eq!(limit.scope, Scope::Shared);
    let r = &reservations(&decide(&p, "any_tool", json!({})))[0];
    assert_eq!(r.key, "_global._rate_minute");
}

#[test]
fn a_page_rate_limit_block_counts_per_session_with_the_window_in_seconds() {
    let p = one_rule("read_file", "- rate_limit:\n    max: 10\n    window: 60");
    let limit = only_limit(&p, "read_file");
    assert_eq!(limit.counter, "_rate_minute");
    assert_eq!(limit.namespace.as_deref(), Some("read_file"));
    assert_eq!(limit.scope, Scope::Session);
    assert_eq!(limit.window, Window::fixed(MINUTE));
    assert_eq!(limit.max, amount("10"));
    assert_eq!(p.tools["read_file"][0].name, "read_file#1");
    let r = &reservations(&decide_as(&p, "read_file", json!({}), Some("s-1"), None))[0];
    assert_eq!(r.key, "read_file._rate_minute@session:\"s-1\"");
    // Without a session the partition is null, never a name a client could also send.
    let r = &reservations(&decide(&p, "read_file", json!({})))[0];
    assert_eq!(r.key, "read_file._rate_minute@session:null");
}

#[test]
fn a_rate_limit_block_takes_a_scope_a_named_window_and_a_mode() {
    let p = one_rule(
        "t",
        "- rate_limit: {max: 3, window: 15m, scope: tool, mode: sliding}",
    );
    let limit = only_limit(&p, "t");
    assert_eq!(limit.counter, "_rate_15m");
    assert_eq!(limit.scope, Scope::Shared);
    assert_eq!(limit.namespace.as_deref(), Some("t"));
    assert_eq!(limit.window.mode, WindowMode::Sliding);

    let p = one_rule("t", "- rate_limit: {max: 3, window: 3600, scope: global}");
    let limit = only_limit(&p, "t");
    assert_eq!(limit.counter, "_rate_hour");
    assert_eq!(limit.namespace.as_deref(), Some(GLOBAL_NAMESPACE));
    assert_eq!(limit.scope, Scope::Shared);
}

#[test]
fn lte_on_the_rules_own_counter_is_the_max() {
    let p = one_rule(
        "create_refund",
        r#"- name: daily refunds
  conditions:
    - {path: state.create_refund.daily_count, op: lte, value: 10}
  state: {counter: daily_count, window: day}"#,
    );
    let limit = only_limit(&p, "create_refund");
    assert_eq!(limit.counter, "daily_count");
    assert_eq!(limit.max, amount("10"));
    assert_eq!(limit.window, Window::fixed(DAY));
    assert_eq!(limit.increment, Increment::Fixed(Amount::ONE));
    // The counter condition became the limit; no argument condition is left behind.
    assert!(p.tools["create_refund"][0].conditions.is_empty());
    assert_eq!(
        p.tools["create_refund"][0].message.as_deref(),
        Some("Limit of 10 per day reached for counter \"daily_count\".")
    );
}

#[test]
fn lt_on_an_integer_counter_is_one_below() {
    let p = one_rule(
        "t",
        r#"- name: r
  conditions:
    - {path: state.t.calls, op: lt, value: 10}
  state: {counter: calls, window: hour, increment: 2}"#,
    );
    assert_eq!(only_limit(&p, "t").max, amount("9"));
}

#[test]
fn lt_on_a_spend_counter_is_the_smallest_step_below() {
    let p = one_rule(
        "create_charge",
        r#"- name: daily spend cap
  conditions:
    - path: state.create_charge.daily_spend
      op: lt
      value: 1000000
  state:
    counter: daily_spend
    window: day
    increment_from: args.amount"#,
    );
    let limit = only_limit(&p, "create_charge");
    assert_eq!(limit.max, amount("999999.999999"));
    assert_eq!(
        limit.increment,
        Increment::FromArgument(toolgate_policy::args::ArgPath::parse("args.amount").unwrap())
    );
    // A decimal bound or a decimal step: one micro-unit below.
    let p = one_rule(
        "t",
        "- conditions: [{path: state.t.c, op: lt, value: 10.5}]\n  state: {counter: c, window: day}",
    );
    assert_eq!(only_limit(&p, "t").max, amount("10.499999"));
    let p = one_rule(
        "t",
        "- conditions: [{path: state.t.c, op: lt, value: 10}]\n  state: {counter: c, window: day, increment: 0.5}",
    );
    assert_eq!(only_limit(&p, "t").max, amount("9.999999"));
}

#[test]
fn wildcard_state_conditions_read_the_global_namespace() {
    let p = one_rule(
        "*",
        r#"- name: global
  conditions:
    - {path: state._global.calls_per_minute, op: lte, value: 60}
  state: {counter: calls_per_minute, window: minute}"#,
    );
    let limit = only_limit(&p, "*");
    assert_eq!(limit.namespace.as_deref(), Some(GLOBAL_NAMESPACE));
    assert_eq!(limit.max, amount("60"));
    assert_eq!(
        reservations(&decide(&p, "x", json!({})))[0].key,
        "_global.calls_per_minute"
    );
}

#[test]
fn a_tool_rule_with_global_scope_may_name_the_global_namespace() {
    let p = one_rule(
        "t",
        r#"- conditions: [{path: state._global.shared, op: lte, value: 7}]
  state: {counter: shared, window: hour, scope: global}"#,
    );
    let limit = only_limit(&p, "t");
    assert_eq!(limit.namespace.as_deref(), Some(GLOBAL_NAMESPACE));
    assert_eq!(limit.max, amount("7"));
    assert_eq!(
        reservations(&decide(&p, "t", json!({})))[0].key,
        "_global.shared"
    );
}

#[test]
fn an_explicit_max_needs_no_condition() {
    let p = one_rule(
        "t",
        "- name: r\n  state: {counter: c, window: 30s, max: 2.5, increment: 0.25}",
    );
    let limit = only_limit(&p, "t");
    assert_eq!(limit.max, amount("2.5"));
    assert_eq!(limit.increment, Increment::Fixed(amount("0.25")));
    assert_eq!(limit.window, Window::fixed(30_000));
}

#[test]
fn state_scopes_partition_the_counter_key() {
    let cases = [
        ("session", "t.c@session:\"s1\""),
        ("identity", "t.c@identity:\"alice\""),
        ("grant", "t.c@identity:\"alice\""),
        ("tool", "t.c"),
        ("global", "_global.c"),
        ("args.repo", "t.c@args.repo=\"toolgate\""),
        ("args.owner.id", "t.c@args.owner.id=42"),
    ];
    for (scope, key) in cases {
        let p = one_rule(
            "t",
            &format!("- state: {{counter: c, window: hour, max: 5, scope: {scope}}}"),
        );
        let args = json!({"repo": "toolgate", "owner": {"id": 42.0}});
        let r = &reservations(&decide_as(&p, "t", args, Some("s1"), Some("alice")))[0];
        assert_eq!(r.key, key, "scope {scope}");
    }
}

#[test]
fn a_missing_scope_argument_gets_its_own_null_partition() {
    let p = one_rule(
        "t",
        "- state: {counter: c, window: hour, max: 5, scope: args.repo}",
    );
    assert_eq!(
        reservations(&decide(&p, "t", json!({})))[0].key,
        "t.c@args.repo=null"
    );
}

#[test]
fn long_partitions_are_keyed_by_their_hash_and_numbers_by_their_double() {
    let p = one_rule(
        "t",
        "- state: {counter: c, window: hour, max: 5, scope: args.repo}",
    );
    let long = "x".repeat(10_000);
    let key = &reservations(&decide(&p, "t", json!({ "repo": long })))[0].key;
    assert!(
        key.starts_with("t.c@args.repo=sha256:") && key.len() < 100,
        "{key}"
    );
    let other = &reservations(&decide(&p, "t", json!({ "repo": format!("{long}y") })))[0].key;
    assert_ne!(key, other);
    // 2^60 + 1 is 2^60 to a double reader: one account to such a server, so one counter.
    let key_of = |text: &str| {
        let args: serde_json::Value = serde_json::from_str(text).unwrap();
        reservations(&decide(&p, "t", args))[0].key.clone()
    };
    assert_eq!(
        key_of(r#"{"repo": 1152921504606846977}"#),
        key_of(r#"{"repo": 1152921504606846976}"#)
    );
    assert_eq!(
        key_of(r#"{"repo": 0.10000000000000001}"#),
        "t.c@args.repo=0.1"
    );
}

#[test]
fn folded_argument_members_make_the_call_ambiguous() {
    let p = one_rule(
        "t",
        "- state: {counter: c, window: hour, max: 5, scope: args.repo, increment_from: args.n}",
    );
    for args in [json!({"Repo": "a", "n": 1}), json!({"repo": "a", "N": 1})] {
        assert!(
            matches!(decide(&p, "t", args.clone()), Decision::Ambiguous(_)),
            "{args}"
        );
    }
}

#[test]
fn wildcard_tool_scoped_counters_count_each_called_tool_apart() {
    let p = one_rule(
        "*",
        "- state: {counter: calls, window: minute, max: 30, scope: tool}",
    );
    assert_eq!(only_limit(&p, "*").namespace, None);
    assert_eq!(
        reservations(&decide(&p, "read", json!({})))[0].key,
        "read.calls"
    );
    assert_eq!(
        reservations(&decide(&p, "write", json!({})))[0].key,
        "write.calls"
    );
}

fn spend_policy() -> Policy {
    one_rule(
        "create_charge",
        r#"- name: daily spend
  on_deny: "Daily spend reached"
  state:
    counter: spend
    window: day
    max: 100.50
    increment_from: args.amount"#,
    )
}

#[test]
fn increment_from_reads_decimal_amounts_exactly() {
    let p = spend_policy();
    for (written, micros) in [
        ("19.99", 19_990_000),
        ("0.1", 100_000),
        ("0.000001", 1),
        ("7", 7_000_000),
        ("0", 0),
        ("1e2", 100_000_000),
        ("100.50", 100_500_000),
    ] {
        let args: serde_json::Value =
            serde_json::from_str(&format!("{{\"amount\": {written}}}")).unwrap();
        let r = &reservations(&decide(&p, "create_charge", args))[0];
        assert_eq!(r.amount, Amount::from_micros(micros), "amount {written}");
        assert_eq!(r.max, Amount::from_micros(100_500_000));
        assert_eq!(r.key, "create_charge.spend");
    }
}

#[test]
fn increment_from_denies_calls_it_cannot_count() {
    let p = spend_policy();
    let cases = [
        (
            json!({"amount": -5}),
            "Argument args.amount must not be negative.",
        ),
        (
            json!({"amount": -0.01}),
            "Argument args.amount must not be negative.",
        ),
        (
            json!({}),
            "Argument args.amount is required to count this call.",
        ),
        (
            json!({"amount": null}),
            "Argument args.amount must be a number to be counted.",
        ),
        (
            json!({"amount": "100"}),
            "Argument args.amount must be a number to be counted.",
        ),
        (
            json!({"amount": [1]}),
            "Argument args.amount must be a number to be counted.",
        ),
        (
            json!({"amount": 0.0000001}),
            "Argument args.amount cannot be counted: 1e-7 has more than 6 decimal places.",
        ),
        (
            json!({"amount": 1e300}),
            "Argument args.amount cannot be counted: 1e+300 is too large.",
        ),
        (
            json!({"amount": u64::MAX}),
            "Argument args.amount cannot be counted: 18446744073709551615 is too large.",
        ),
    ];
    for (args, message) in cases {
        assert_eq!(
            denial(&decide(&p, "create_charge", args.clone())),
            ("daily spend".to_string(), message.to_string()),
            "arguments {args}"
        );
    }
}

#[test]
fn generated_rule_names_follow_the_tool_and_position() {
    let p = policy(
        r#"
version: "1"
tools:
  t:
    rules:
      - name: first
        action: allow
      - action: deny
        reason: "second has no name"
  "*":
    rules:
      - rate_limit: 5/minute
"#,
    );
    assert_eq!(p.tools["t"][1].name, "t#2");
    assert_eq!(p.tools["t"][1].origin, "tools.t.rules[1]");
    assert_eq!(p.wildcard[0].name, "*#1");
    assert_eq!(
        denial(&decide(&p, "t", json!({}))),
        ("t#2".to_string(), "second has no name".to_string())
    );
}
