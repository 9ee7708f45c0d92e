//! The same policy written in each form decides every call the same way: Intercept YAML, the
//! same document as JSON text, PolicyLayer's JSON, and the rule forms of PolicyLayer's tool
//! pages.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;

use common::{fixture, policy};
use serde_json::{json, Value};
use toolgate_policy::{Amount, Call, Decision, Policy, PolicyFormat};

/// A decision without rule names (which each form spells its own way): the kind, the
/// agent's message and the exact reservations.
fn outcome(decision: &Decision) -> String {
    let mut out = String::new();
    let reservations = match decision {
        Decision::Allow(p) => {
            out.push_str("allow");
            &p.reservations
        }
        Decision::Deny(d) => return format!("deny: {}", d.message),
        Decision::Hidden => return "hidden".to_string(),
        Decision::Ambiguous(m) => return format!("ambiguous: {m}"),
        Decision::ApprovalRequired(a) => {
            let _ = write!(
                out,
                "approval ({:?}, {}ms, {:?})",
                a.settings.mode, a.settings.timeout_ms, a.message
            );
            &a.permit.reservations
        }
    };
    for r in reservations {
        let _ = write!(out, " [{} ≤{} +{}/{}]", r.key, r.max, r.amount, r.window);
    }
    out
}

struct TestCall {
    tool: &'static str,
    arguments: Value,
    session: Option<&'static str>,
    identity: Option<&'static str>,
}

fn call(tool: &'static str, arguments: Value) -> TestCall {
    TestCall {
        tool,
        arguments,
        session: Some("s1"),
        identity: Some("alice"),
    }
}

fn decide(policy: &Policy, c: &TestCall) -> Decision {
    policy.decide(&Call {
        tool: c.tool,
        arguments: &c.arguments,
        session: c.session,
        identity: c.identity,
        caller: None,
    })
}

/// The explained decision when the counters hold `counters`.
fn explained(policy: &Policy, c: &TestCall, counters: &HashMap<String, Amount>) -> String {
    let e = policy.explain(
        &Call {
            tool: c.tool,
            arguments: &c.arguments,
            session: c.session,
            identity: c.identity,
            caller: None,
        },
        counters,
    );
    format!("{} {:?}", e.decision, e.message)
}

/// Asserts that every policy decides every call exactly like the first one, and returns
/// the outcomes so the caller can pin them down too.
fn assert_same_outcomes(forms: &[(&str, &Policy)], calls: &[TestCall]) -> Vec<String> {
    let (first_name, first) = forms[0];
    let expected: Vec<String> = calls.iter().map(|c| outcome(&decide(first, c))).collect();
    for (name, policy) in &forms[1..] {
        for (c, want) in calls.iter().zip(&expected) {
            assert_eq!(
                &outcome(&decide(policy, c)),
                want,
                "{name} vs {first_name}: {} {}",
                c.tool,
                c.arguments
            );
        }
    }
    expected
}

/// The same document written as JSON text, through the loader's own tree.
fn as_json_text(yaml: &str) -> String {
    let tree = toolgate_policy::source::parse_document(yaml).unwrap();
    serde_json::to_string_pretty(&tree.to_json()).unwrap()
}

const REFUNDS_INTERCEPT: &str = r#"
version: "1"
default: deny
hide: [drop_table]
tools:
  create_refund:
    rules:
      - name: amount cap
        conditions:
          - {path: args.amount, op: lte, value: 500}
        on_deny: "Requirement not met: args.amount lte 500"
      - name: currencies
        conditions:
          - {path: args.currency, op: in, value: [usd, eur]}
        on_deny: 'Requirement not met: args.currency in ["usd","eur"]'
      - name: no test refunds
        action: deny
        conditions:
          - {path: args.reason, op: contains, value: test}
        on_deny: "Test refunds are not allowed"
      - name: daily refund total
        on_deny: "Daily refund total reached"
        state:
          counter: refund_total
          window: day
          max: 1000.5
          increment_from: args.amount
          scope: identity
  list_payments:
    rules: []
  "*":
    rules:
      - name: calls per minute
        on_deny: "Too many calls"
        state: {counter: calls, window: minute, max: 120, scope: identity}
"#;

const REFUNDS_POLICYLAYER: &str = r#"{
  "version": "1",
  "default": "deny",
  "hide": ["drop_table"],
  "all_tools": {
    "limits": [
      {"counter": "calls", "window": "minute", "max": 120, "scope": "grant", "on_deny": "Too many calls"}
    ]
  },
  "tools": {
    "create_refund": {
      "require": [
        {"path": "args.amount", "op": "lte", "value": 500},
        {"path": "args.currency", "op": "in", "value": ["usd", "eur"]}
      ],
      "deny_if": [
        {"conditions": [{"path": "args.reason", "op": "contains", "value": "test"}],
         "on_deny": "Test refunds are not allowed"}
      ],
      "limits": [
        {"counter": "refund_total", "window": "day", "max": 1000.5, "increment_from": "args.amount",
         "scope": "grant", "on_deny": "Daily refund total reached"}
      ]
    },
    "list_payments": {}
  }
}"#;

fn refund_calls() -> Vec<TestCall> {
    vec![
        call("create_refund", json!({"amount": 100, "currency": "usd"})),
        call("create_refund", json!({"amount": 19.99, "currency": "eur"})),
        call("create_refund", json!({"amount": 600, "currency": "usd"})),
        call("create_refund", json!({"amount": "100", "currency": "usd"})),
        call("create_refund", json!({"currency": "usd"})),
        call("create_refund", json!({"amount": 5, "currency": "gbp"})),
        call(
            "create_refund",
            json!({"amount": 5, "currency": "usd", "reason": "a test"}),
        ),
        call("create_refund", json!({"amount": -5, "currency": "usd"})),
        TestCall {
            identity: None,
            ..call("create_refund", json!({"amount": 1, "currency": "usd"}))
        },
        call("list_payments", json!({})),
        call("drop_table", json!({})),
        call("unlisted", json!({})),
    ]
}

#[test]
fn intercept_yaml_json_text_and_policylayer_json_decide_alike() {
    let yaml = policy(REFUNDS_INTERCEPT);
    let json_text = policy(&as_json_text(REFUNDS_INTERCEPT));
    let policylayer = policy(REFUNDS_POLICYLAYER);
    assert_eq!(yaml.format, PolicyFormat::Intercept);
    assert_eq!(json_text.format, PolicyFormat::Intercept);
    assert_eq!(policylayer.format, PolicyFormat::PolicyLayer);

    let outcomes = assert_same_outcomes(
        &[
            ("intercept yaml", &yaml),
            ("intercept as json", &json_text),
            ("policylayer", &policylayer),
        ],
        &refund_calls(),
    );
    let calls = "[_global.calls@identity:\"alice\" ≤120 +1/minute]";
    assert_eq!(
        outcomes,
        [
            format!("allow [create_refund.refund_total@identity:\"alice\" ≤1000.5 +100/day] {calls}"),
            format!("allow [create_refund.refund_total@identity:\"alice\" ≤1000.5 +19.99/day] {calls}"),
            "deny: Requirement not met: args.amount lte 500".to_string(),
            "deny: Requirement not met: args.amount lte 500".to_string(),
            "deny: Requirement not met: args.amount lte 500".to_string(),
            "deny: Requirement not met: args.currency in [\"usd\",\"eur\"]".to_string(),
            "deny: Test refunds are not allowed".to_string(),
            "deny: Argument args.amount must not be negative.".to_string(),
            "allow [create_refund.refund_total@identity:null ≤1000.5 +1/day] [_global.calls@identity:null ≤120 +1/minute]".to_string(),
            format!("allow {calls}"),
            "hidden".to_string(),
            "hidden".to_string(),
        ]
    );
}

#[test]
fn full_counters_deny_alike_in_every_form() {
    let forms = [
        policy(REFUNDS_INTERCEPT),
        policy(&as_json_text(REFUNDS_INTERCEPT)),
        policy(REFUNDS_POLICYLAYER),
    ];
    let refund = call("create_refund", json!({"amount": 5, "currency": "usd"}));
    let cases = [
        (
            "create_refund.refund_total@identity:\"alice\"",
            "1000",
            "deny Some(\"Daily refund total reached\")",
        ),
        (
            "create_refund.refund_total@identity:\"alice\"",
            "995.5",
            "allow None",
        ),
        (
            "_global.calls@identity:\"alice\"",
            "120",
            "deny Some(\"Too many calls\")",
        ),
        ("_global.calls@identity:\"bob\"", "120", "allow None"),
    ];
    for (key, value, expected) in cases {
        let counters = HashMap::from([(key.to_string(), Amount::parse(value).unwrap())]);
        for p in &forms {
            assert_eq!(
                explained(p, &refund, &counters),
                expected,
                "{key}={value} ({:?})",
                p.format
            );
        }
    }
}

#[test]
fn every_fixture_decides_the_same_as_json_text() {
    let calls = [
        "create_issue",
        "create_branch",
        "delete_repository",
        "transfer_repository",
        "create_charge",
        "create_refund",
        "delete_customer",
        "read_file",
        "write_file",
        "session_end",
        "search",
        "capture_payment",
        "list_payments",
        "delete_account",
        "unlisted",
    ];
    let arguments = [
        json!({}),
        json!({"amount": 250, "currency": "usd", "branch": "feat/x", "query": "q", "merchant": "m1"}),
        json!({"amount": 75000, "currency": "gbp", "branch": "main", "livemode": true, "reason": "test"}),
        json!({"amount": 1000.5, "currency": "eur", "query": null}),
    ];
    for name in ["github.yaml", "stripe.yaml", "pages.yaml", "payments.json"] {
        let text = fixture(name);
        let original = policy(&text);
        let converted = policy(&as_json_text(&text));
        assert_eq!(original.format, converted.format, "{name}");
        for tool in calls {
            for args in &arguments {
                let c = TestCall {
                    tool,
                    arguments: args.clone(),
                    session: Some("s1"),
                    identity: Some("alice"),
                };
                // Rule names and messages included: the document is the same.
                assert_eq!(
                    decide(&original, &c),
                    decide(&converted, &c),
                    "{name}: {tool} {args}"
                );
            }
        }
    }
}

#[test]
fn page_forms_mean_what_the_explicit_forms_say() {
    let page = policy(
        r#"
version: "1"
tools:
  read_file:
    rules:
      - rate_limit: {max: 10, window: 60}
  write_file:
    rules:
      - action: deny
        reason: "No writes"
  session_end:
    rules:
      - action: allow
  create_issue:
    rules:
      - rate_limit: {max: 5, window: 3600, scope: tool}
"#,
    );
    let intercept = policy(
        r#"
version: "1"
tools:
  read_file:
    rules:
      - name: reads
        state: {counter: _rate_minute, window: minute, max: 10, scope: session}
  write_file:
    rules:
      - name: no writes
        action: deny
        on_deny: "No writes"
  session_end:
    rules: []
  create_issue:
    rules:
      - name: hourly
        conditions:
          - {path: state.create_issue._rate_hour, op: lt, value: 6}
        state: {counter: _rate_hour, window: hour}
"#,
    );
    let shorthand = policy(
        r#"
version: "1"
tools:
  read_file:
    rules:
      - name: reads
        rate_limit: {max: 10, window: minute}
  write_file:
    rules:
      - name: no writes
        action: deny
        message: "No writes"
  create_issue:
    rules:
      - name: hourly
        rate_limit: 5/hour
"#,
    );
    let policylayer = policy(
        r#"{
  "version": "1",
  "tools": {
    "read_file": {"limits": [{"counter": "_rate_minute", "window": 60, "max": 10, "scope": "session"}]},
    "write_file": {"deny_if": [{"on_deny": "No writes"}]},
    "session_end": {},
    "create_issue": {"limits": [{"counter": "_rate_hour", "window": "1h", "max": 5}]}
  }
}"#,
    );
    let calls = [
        call("read_file", json!({"path": "/etc/hosts"})),
        TestCall {
            session: None,
            ..call("read_file", json!({}))
        },
        call("write_file", json!({"path": "x"})),
        call("session_end", json!({})),
        call("create_issue", json!({"title": "t"})),
    ];
    let outcomes = assert_same_outcomes(
        &[
            ("page", &page),
            ("intercept", &intercept),
            ("shorthand", &shorthand),
            ("policylayer", &policylayer),
        ],
        &calls,
    );
    assert_eq!(
        outcomes,
        [
            "allow [read_file._rate_minute@session:\"s1\" ≤10 +1/minute]",
            "allow [read_file._rate_minute@session:null ≤10 +1/minute]",
            "deny: No writes",
            "allow",
            "allow [create_issue._rate_hour ≤5 +1/hour]",
        ]
    );
}
