//! Reviewed decisions for the fixture policies under `tests/fixtures/`: each table is the
//! compiled policy's answer to a set of calls, one line per call (see `common::summary`).
//! A change to the compiler or to `decide` that moves any answer shows up here as a diff.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decide_as, fixture, policy, summary};
use serde_json::{json, Value};

/// `(tool, arguments, expected summary)`; every call comes from session `s1`, identity `alice`.
type Table = [(&'static str, Value, &'static str)];

fn check(name: &str, table: &Table) {
    let p = policy(&fixture(name));
    let mut mismatches = Vec::new();
    for (tool, args, expected) in table {
        let actual = summary(&decide_as(
            &p,
            tool,
            args.clone(),
            Some("s1"),
            Some("alice"),
        ));
        if actual != *expected {
            mismatches.push(format!(
                "{tool} {args}\n    expected: {expected}\n    actual:   {actual}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{name}:\n{}", mismatches.join("\n"));
}

#[test]
fn github() {
    check(
        "github.yaml",
        &[
            (
                "create_issue",
                json!({"title": "bug"}),
                "allow [create_issue._rate_hour ≤5 +1/hour, _global._rate_minute ≤60 +1/minute]",
            ),
            (
                "create_pull_request",
                json!({}),
                "allow [create_pull_request._rate_hour ≤3 +1/hour, _global._rate_minute ≤60 +1/minute]",
            ),
            (
                "create_branch",
                json!({"branch": "feat/login-page"}),
                "allow [_global._rate_minute ≤60 +1/minute]",
            ),
            (
                "create_branch",
                json!({"branch": "main"}),
                "deny \"branch naming\": Branch names must look like feat/short-name",
            ),
            (
                "create_branch",
                json!({"branch": "Feat/Login"}),
                "deny \"branch naming\": Branch names must look like feat/short-name",
            ),
            (
                "create_branch",
                json!({}),
                "deny \"branch naming\": Branch names must look like feat/short-name",
            ),
            (
                "delete_repository",
                json!({"repo": "x"}),
                "deny \"block repo deletion\": Repository deletion is not permitted via AI agents",
            ),
            ("transfer_repository", json!({}), "hidden"),
            ("list_webhooks", json!({}), "hidden"),
            (
                "search_code",
                json!({"q": "fn main"}),
                "allow [_global._rate_minute ≤60 +1/minute]",
            ),
        ],
    );
}

#[test]
fn stripe() {
    check(
        "stripe.yaml",
        &[
            (
                "create_charge",
                json!({"amount": 4999, "currency": "usd"}),
                "allow [create_charge.daily_spend ≤999999.999999 +4999/day, _global.calls_per_minute ≤60 +1/minute]",
            ),
            (
                "create_charge",
                json!({"amount": 49.99, "currency": "eur"}),
                "allow [create_charge.daily_spend ≤999999.999999 +49.99/day, _global.calls_per_minute ≤60 +1/minute]",
            ),
            (
                "create_charge",
                json!({"amount": 50001, "currency": "usd"}),
                "deny \"max single charge\": Single charge cannot exceed $500.00",
            ),
            (
                "create_charge",
                json!({"amount": "100", "currency": "usd"}),
                "deny \"max single charge\": Single charge cannot exceed $500.00",
            ),
            (
                "create_charge",
                json!({"amount": -100, "currency": "usd"}),
                "deny \"daily spend cap\": Argument args.amount must not be negative.",
            ),
            (
                "create_charge",
                json!({"amount": 100, "currency": "gbp"}),
                "deny \"allowed currencies\": Only USD and EUR charges are permitted",
            ),
            (
                "create_refund",
                json!({"amount": 10001}),
                "approval \"large refunds need a person\" (Hold, 900000ms) [create_refund.daily_count ≤10 +1/day, _global.calls_per_minute ≤60 +1/minute]",
            ),
            (
                "create_refund",
                json!({"amount": 10000}),
                "allow [create_refund.daily_count ≤10 +1/day, _global.calls_per_minute ≤60 +1/minute]",
            ),
            (
                "delete_customer",
                json!({"livemode": true}),
                "deny \"test customers only\": Only test-mode customers may be deleted",
            ),
            (
                "delete_customer",
                json!({"livemode": false}),
                "allow [_global.calls_per_minute ≤60 +1/minute]",
            ),
            (
                "delete_customer",
                // pydantic's lax mode runs "true" as true: the condition cannot be
                // evaluated, which counts as matched for a deny rule.
                json!({"livemode": "true"}),
                "deny \"test customers only\": Only test-mode customers may be deleted",
            ),
            (
                "list_customers",
                json!({}),
                "allow [_global.calls_per_minute ≤60 +1/minute]",
            ),
        ],
    );
}

#[test]
fn pages() {
    check(
        "pages.yaml",
        &[
            ("session_end", json!({}), "allow []"),
            (
                "read_file",
                json!({"path": "README.md"}),
                "allow [read_file._rate_minute@session:\"s1\" ≤10 +1/minute]",
            ),
            (
                "write_file",
                json!({"path": "x"}),
                "deny \"write_file#1\": Writing files is not allowed in this workspace",
            ),
            (
                "search",
                json!({"query": "rust"}),
                "allow [search._rate_hour@identity:\"alice\" ≤100 +1/hour]",
            ),
            (
                "search",
                json!({"query": null}),
                "deny \"search#1\": Denied by rule \"search#1\".",
            ),
            ("delete_file", json!({}), "hidden"),
        ],
    );
}

#[test]
fn payments() {
    check(
        "payments.json",
        &[
            (
                "create_refund",
                json!({"amount": 500, "currency": "usd"}),
                "allow [create_refund.refund_total@identity:\"alice\" ≤1000.5 +500/day, _global.calls@identity:\"alice\" ≤120 +1/minute]",
            ),
            (
                "create_refund",
                json!({"amount": 500.01, "currency": "usd"}),
                "deny \"create_refund.require[0]\": Requirement not met: args.amount lte 500",
            ),
            (
                "create_refund",
                json!({"amount": 5, "currency": "usd", "reason": "load test"}),
                "deny \"create_refund.deny_if[0]\": Test refunds are not allowed",
            ),
            (
                "capture_payment",
                json!({"amount": 1000, "merchant": "m-1"}),
                "approval \"capture_payment.require_approval[0]\" (Retry, 1800000ms) [capture_payment.captures@args.merchant=\"m-1\" ≤5 +1/15m (sliding), _global.calls@identity:\"alice\" ≤120 +1/minute]",
            ),
            (
                "capture_payment",
                json!({"amount": 10, "merchant": 7.0}),
                "allow [capture_payment.captures@args.merchant=7 ≤5 +1/15m (sliding), _global.calls@identity:\"alice\" ≤120 +1/minute]",
            ),
            (
                "list_payments",
                json!({}),
                "allow [_global.calls@identity:\"alice\" ≤120 +1/minute]",
            ),
            ("delete_account", json!({}), "hidden"),
            ("unlisted", json!({}), "hidden"),
        ],
    );
}
