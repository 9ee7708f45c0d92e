//! `explain`: the decision's name, rule and message, the reservations with the counter values
//! assumed, a deny by the first limit that would overflow, and the trace of every rule.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{fixture, policy};
use serde_json::{json, Value};
use toolgate_policy::{Amount, Call, Explanation, Policy};

fn explain(
    policy: &Policy,
    tool: &str,
    arguments: Value,
    counters: &[(&str, &str)],
) -> Explanation {
    let counters: HashMap<String, Amount> = counters
        .iter()
        .map(|(k, v)| (k.to_string(), Amount::parse(v).unwrap()))
        .collect();
    policy.explain(
        &Call {
            tool,
            arguments: &arguments,
            session: Some("s1"),
            identity: Some("alice"),
            caller: None,
        },
        &counters,
    )
}

/// The trace as `rule: result (detail)` lines.
fn trace(e: &Explanation) -> Vec<String> {
    e.trace
        .iter()
        .map(|s| format!("{}: {} ({})", s.rule, s.result, s.detail))
        .collect()
}

#[test]
fn allow_lists_reservations_with_assumed_counters() {
    let p = policy(&fixture("github.yaml"));
    let e = explain(
        &p,
        "create_issue",
        json!({"title": "x"}),
        &[("create_issue._rate_hour", "3")],
    );
    assert_eq!(e.decision, "allow");
    assert_eq!((e.rule.as_deref(), e.message.as_deref()), (None, None));
    assert_eq!(
        e.reservations
            .iter()
            .map(|r| format!(
                "{} {}+{}≤{} per {}",
                r.key, r.current, r.amount, r.max, r.window
            ))
            .collect::<Vec<_>>(),
        [
            "create_issue._rate_hour 3+1≤5 per hour",
            "_global._rate_minute 0+1≤60 per minute",
        ]
    );
    assert_eq!(
        trace(&e),
        [
            "hourly issue limit: reserve (counter _rate_hour limited to 5 per hour)",
            "global rate limit: reserve (counter _rate_minute limited to 60 per minute)",
        ]
    );
}

#[test]
fn a_full_counter_denies_by_the_limits_rule() {
    let p = policy(&fixture("github.yaml"));
    let e = explain(
        &p,
        "create_issue",
        json!({}),
        &[("create_issue._rate_hour", "5")],
    );
    assert_eq!(e.decision, "deny");
    assert_eq!(e.rule.as_deref(), Some("hourly issue limit"));
    assert_eq!(
        e.message.as_deref(),
        Some("Hourly limit of 5 new issues reached")
    );
    assert_eq!(
        trace(&e).last().unwrap(),
        "hourly issue limit: deny (counter create_issue._rate_hour is 5; +1 would exceed 5)"
    );
    // The reservations are still listed, with the values that were assumed.
    assert_eq!(e.reservations[0].current, Amount::parse("5").unwrap());

    // The first reservation that does not fit decides, in rule order.
    let e = explain(
        &p,
        "create_issue",
        json!({}),
        &[
            ("create_issue._rate_hour", "5"),
            ("_global._rate_minute", "60"),
        ],
    );
    assert_eq!(e.rule.as_deref(), Some("hourly issue limit"));
    let e = explain(
        &p,
        "create_pull_request",
        json!({}),
        &[("_global._rate_minute", "60")],
    );
    assert_eq!(e.rule.as_deref(), Some("global rate limit"));
    assert_eq!(
        e.message.as_deref(),
        Some("Rate limit of 60 per minute reached. Try again later.")
    );
}

#[test]
fn spend_counters_compare_exact_decimals() {
    let p = policy(&fixture("payments.json"));
    let args = json!({"amount": 0.5, "currency": "usd"});
    let key = "create_refund.refund_total@identity:\"alice\"";
    // 1000 + 0.5 = 1000.5 fits exactly; 1000.000001 + 0.5 does not.
    let e = explain(&p, "create_refund", args.clone(), &[(key, "1000")]);
    assert_eq!(e.decision, "allow");
    let e = explain(&p, "create_refund", args, &[(key, "1000.000001")]);
    assert_eq!(e.decision, "deny");
    assert_eq!(
        trace(&e).last().unwrap(),
        "create_refund.limits[0]: deny (counter create_refund.refund_total@identity:\"alice\" is 1000.000001; +0.5 would exceed 1000.5)"
    );
}

#[test]
fn argument_denials_trace_the_failed_condition() {
    let p = policy(&fixture("github.yaml"));
    let e = explain(&p, "create_branch", json!({"branch": "main"}), &[]);
    assert_eq!(e.decision, "deny");
    assert_eq!(e.rule.as_deref(), Some("branch naming"));
    assert_eq!(
        e.message.as_deref(),
        Some("Branch names must look like feat/short-name")
    );
    assert_eq!(
        trace(&e),
        ["branch naming: deny (condition failed: args.branch regex \"^(feat|fix|chore)/[a-z0-9-]+$\")"]
    );
    assert!(e.reservations.is_empty());

    let e = explain(&p, "create_branch", json!({"branch": "feat/login"}), &[]);
    assert_eq!(
        trace(&e),
        [
            "branch naming: pass (every condition held)",
            "no pushes to main: pass (every condition held)",
            "global rate limit: reserve (counter _rate_minute limited to 60 per minute)",
        ]
    );

    let e = explain(&p, "delete_repository", json!({}), &[]);
    assert_eq!(trace(&e), ["block repo deletion: deny (denies every call)"]);
}

#[test]
fn deny_rules_with_conditions_trace_whether_they_matched() {
    let p = policy(&fixture("stripe.yaml"));
    let e = explain(&p, "delete_customer", json!({"livemode": true}), &[]);
    assert_eq!(e.decision, "deny");
    assert_eq!(
        trace(&e),
        ["test customers only: deny (every condition matched)"]
    );
    let e = explain(&p, "delete_customer", json!({"livemode": false}), &[]);
    assert_eq!(e.decision, "allow");
    assert_eq!(
        trace(&e)[0],
        "test customers only: pass (conditions did not all match)"
    );
}

#[test]
fn approvals_are_named_and_traced() {
    let p = policy(&fixture("stripe.yaml"));
    let e = explain(&p, "create_refund", json!({"amount": 20000}), &[]);
    assert_eq!(e.decision, "approval_required");
    assert_eq!(e.rule.as_deref(), Some("large refunds need a person"));
    assert_eq!(
        e.message.as_deref(),
        Some("Refunds over $100.00 need approval")
    );
    assert_eq!(
        trace(&e),
        [
            "large refunds need a person: approval_required (conditions matched: needs approval)",
            "daily refund count: reserve (counter daily_count limited to 10 per day)",
            "global rate limit: reserve (counter calls_per_minute limited to 60 per minute)",
        ]
    );
    let e = explain(&p, "create_refund", json!({"amount": 50}), &[]);
    assert_eq!(e.decision, "allow");
    assert_eq!(
        trace(&e)[0],
        "large refunds need a person: skip (conditions did not all match: no approval needed)"
    );
    // A full counter still denies a call that would need approval.
    let e = explain(
        &p,
        "create_refund",
        json!({"amount": 20000}),
        &[("create_refund.daily_count", "10")],
    );
    assert_eq!(e.decision, "deny");
    assert_eq!(e.rule.as_deref(), Some("daily refund count"));
}

#[test]
fn hidden_tools_are_explained_as_unknown() {
    let p = policy(&fixture("github.yaml"));
    let e = explain(&p, "transfer_repository", json!({}), &[]);
    assert_eq!(e.decision, "hidden");
    assert_eq!(e.rule, None);
    assert_eq!(
        e.message.as_deref(),
        Some("Unknown tool: transfer_repository")
    );
    assert!(e.trace.is_empty());
    assert!(e.reservations.is_empty());
}

#[test]
fn explanations_serialize_to_json_with_exact_amounts() {
    let p = policy(&fixture("payments.json"));
    let e = explain(
        &p,
        "create_refund",
        json!({"amount": 19.99, "currency": "usd"}),
        &[("create_refund.refund_total@identity:\"alice\"", "10")],
    );
    let value = serde_json::to_value(&e).unwrap();
    assert_eq!(
        value,
        json!({
            "decision": "allow",
            "rule": null,
            "message": null,
            "reservations": [
                {
                    "key": "create_refund.refund_total@identity:\"alice\"",
                    "max": "1000.5",
                    "amount": "19.99",
                    "window": "day",
                    "current": 10
                },
                {
                    "key": "_global.calls@identity:\"alice\"",
                    "max": 120,
                    "amount": 1,
                    "window": "minute",
                    "current": 0
                }
            ],
            "trace": [
                {"rule": "create_refund.require[0]", "result": "pass", "detail": "every condition held"},
                {"rule": "create_refund.require[1]", "result": "pass", "detail": "every condition held"},
                {"rule": "create_refund.deny_if[0]", "result": "pass", "detail": "conditions did not all match"},
                {"rule": "create_refund.limits[0]", "result": "reserve", "detail": "counter refund_total limited to 1000.5 per day"},
                {"rule": "all_tools.limits[0]", "result": "reserve", "detail": "counter calls limited to 120 per minute"}
            ]
        })
    );
}

#[test]
fn explain_agrees_with_decide_when_counters_are_empty() {
    let p = policy(&fixture("stripe.yaml"));
    let cases = [
        (
            "create_charge",
            json!({"amount": 100, "currency": "usd"}),
            "allow",
        ),
        (
            "create_charge",
            json!({"amount": 100, "currency": "gbp"}),
            "deny",
        ),
        (
            "create_refund",
            json!({"amount": 20000}),
            "approval_required",
        ),
        ("anything", json!({}), "allow"),
    ];
    for (tool, args, expected) in cases {
        let decided = p.decide(&Call {
            tool,
            arguments: &args,
            session: Some("s1"),
            identity: Some("alice"),
            caller: None,
        });
        let e = explain(&p, tool, args.clone(), &[]);
        assert_eq!(e.decision, expected, "{tool} {args}");
        let kind = match decided {
            toolgate_policy::Decision::Allow(_) => "allow",
            toolgate_policy::Decision::Deny(_) => "deny",
            toolgate_policy::Decision::Hidden => "hidden",
            toolgate_policy::Decision::ApprovalRequired(_) => "approval_required",
            toolgate_policy::Decision::Ambiguous(_) => "ambiguous",
        };
        assert_eq!(kind, expected, "{tool} {args}");
    }
}
