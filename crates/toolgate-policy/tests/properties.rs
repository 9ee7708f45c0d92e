//! Properties over generated inputs: deciding and explaining never panic whatever the
//! arguments, compiling never panics whatever the text (random, or a valid policy with bytes
//! inserted and deleted), and counter keys tell scope values apart exactly when their values
//! differ.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{fixture, policy};
use proptest::prelude::*;
use serde_json::{Number, Value};
use toolgate_policy::counter_key::counter_key;
use toolgate_policy::operators::values_equal;
use toolgate_policy::{Amount, Call, Decision, Policy};

/// Every operator, argument paths of every shape, spend and argument-scoped counters.
const EVERY_OPERATOR: &str = r#"
version: "1"
tools:
  t:
    rules:
      - name: eq
        action: deny
        conditions: [{path: args.a, op: eq, value: {x: [1, "y"]}}]
      - name: neq
        action: require_approval
        conditions: [{path: args.b.c, op: neq, value: "z"}]
      - name: in
        action: deny
        conditions: [{path: args.items.0.id, op: in, value: [1, "1", null, true]}]
      - name: not_in
        action: deny
        conditions: [{path: args.c, op: not_in, value: [usd, eur, 3]}]
      - name: lt
        action: deny
        conditions: [{path: args.n, op: lt, value: -1.5}]
      - name: lte
        action: deny
        conditions: [{path: args.n, op: lte, value: -100}]
      - name: gt
        action: deny
        conditions: [{path: args.n, op: gt, value: 18446744073709551615}]
      - name: gte
        action: deny
        conditions: [{path: args.items.1, op: gte, value: 0.000001}]
      - name: regex
        action: deny
        conditions: [{path: args.s, op: regex, value: "^(a|b)+\\d{2,}$"}]
      - name: contains
        action: deny
        conditions: [{path: args.list, op: contains, value: 2}]
      - name: contains text
        action: deny
        conditions: [{path: args.s, op: contains, value: "zz"}]
      - name: exists
        action: deny
        conditions: [{path: args.gone, op: exists, value: true}]
      - name: spend
        state: {counter: spend, window: day, max: 1000.5, increment_from: args.amount, scope: args.a}
      - name: calls
        rate_limit: {max: 3, window: 60}
  "*":
    rules:
      - name: per identity
        state: {counter: calls, window: 15m, max: 100, scope: identity, mode: sliding}
"#;

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (-2000i32..2000).prop_map(|n| Value::from(f64::from(n) / 4.0)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["usd", "eur", "z", "ab12", "zz", "1", ""]).prop_map(Value::from),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "a", "b", "c", "n", "s", "x", "items", "id", "list", "amount", "gone", "0", "1",
        ])
        .prop_map(String::from),
        "\\PC{0,6}",
    ]
}

/// Nested JSON of every type, biased towards the names the policy reads.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn call<'a>(tool: &'a str, arguments: &'a Value, session: Option<&'a str>) -> Call<'a> {
    Call {
        tool,
        arguments,
        session,
        identity: session,
        caller: None,
    }
}

/// Decide and explain agree: the same denial, or explain denies only by a reservation's rule
/// because an assumed counter is full.
fn check_consistent(p: &Policy, c: &Call<'_>, counters: &HashMap<String, Amount>) {
    let decision = p.decide(c);
    let explanation = p.explain(c, counters);
    match &decision {
        Decision::Hidden => assert_eq!(explanation.decision, "hidden"),
        Decision::Ambiguous(_) => assert_eq!(explanation.decision, "ambiguous"),
        Decision::Deny(d) => {
            assert_eq!(explanation.decision, "deny");
            assert_eq!(explanation.rule.as_deref(), Some(d.rule.as_str()));
        }
        Decision::Allow(permit)
        | Decision::ApprovalRequired(toolgate_policy::ApprovalRequest { permit, .. }) => {
            if explanation.decision == "deny" {
                let rule = explanation.rule.unwrap();
                assert!(permit.reservations.iter().any(|r| r.rule == rule));
            } else {
                assert_eq!(explanation.reservations.len(), permit.reservations.len());
            }
        }
    }
}

/// Applies byte edits to a valid policy: `(position, edit)` where an edit inserts a byte,
/// deletes a few, or duplicates a slice.
fn mutate(text: &str, edits: &[(prop::sample::Index, u8, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (at, kind, byte) in edits {
        let i = at.index(bytes.len() + 1);
        match kind % 3 {
            0 => bytes.insert(i, *byte),
            1 => {
                let end = (i + usize::from(byte % 8) + 1).min(bytes.len());
                bytes.drain(i.min(end)..end);
            }
            _ => {
                let end = (i + usize::from(*byte)).min(bytes.len());
                let slice = bytes[i.min(end)..end].to_vec();
                bytes.splice(i..i, slice);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const FIXTURES: [&str; 4] = ["github.yaml", "stripe.yaml", "pages.yaml", "payments.json"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decide_and_explain_never_panic_on_any_arguments(
        arguments in json_value(),
        tool in prop::sample::select(vec!["t", "other", ""]),
        session in prop::option::of("\\PC{0,8}"),
        counter in prop::option::of((-5i64..5_000_000_000, prop::bool::ANY)),
    ) {
        let p = policy(EVERY_OPERATOR);
        let c = call(tool, &arguments, session.as_deref());
        // Assume a value for whichever counter the call would move first.
        let mut counters = HashMap::new();
        if let (Some((micros, _)), Decision::Allow(permit)) = (counter, p.decide(&c)) {
            if let Some(r) = permit.reservations.first() {
                counters.insert(r.key.clone(), Amount::from_micros(micros));
            }
        }
        check_consistent(&p, &c, &counters);
        // The same arguments wrapped one level down only reach the paths that expect it.
        let wrapped = serde_json::json!({"a": arguments, "items": [arguments], "amount": arguments});
        check_consistent(&p, &call(tool, &wrapped, None), &HashMap::new());
    }

    #[test]
    fn compile_never_panics_on_random_text(text in "\\PC{0,300}") {
        let _ = toolgate_policy::compile(&text);
    }

    #[test]
    fn compile_never_panics_on_yaml_like_text(
        text in "[a-z_:\\-\\[\\]{}\"',.*&!|>#?%@`~ \n\t0-9]{0,400}",
    ) {
        let _ = toolgate_policy::compile(&text);
    }

    #[test]
    fn compile_never_panics_on_mutated_policies(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let text = mutate(&fixture(FIXTURES[which]), &edits);
        if let Ok(p) = toolgate_policy::compile(&text) {
            let args = serde_json::json!({"amount": 1, "currency": "usd", "query": "q"});
            for tool in ["create_issue", "create_charge", "create_refund", "search", "x"] {
                check_consistent(&p, &call(tool, &args, Some("s")), &HashMap::new());
            }
        }
    }

    #[test]
    fn session_and_identity_keys_never_collide(
        a in prop::option::of("\\PC{0,10}"),
        b in prop::option::of(prop_oneof!["\\PC{0,10}", Just("null".to_string()), Just("default".to_string())]),
    ) {
        let p = policy(
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - state: {counter: c, window: hour, max: 5, scope: session}\n      - state: {counter: d, window: hour, max: 5, scope: identity}\n",
        );
        let args = Value::Null;
        for limit in [&p.tools["t"][0].limits[0], &p.tools["t"][1].limits[0]] {
            let key_a = counter_key(limit, &call("t", &args, a.as_deref()));
            let key_b = counter_key(limit, &call("t", &args, b.as_deref()));
            prop_assert_eq!(key_a == key_b, a == b, "{:?} vs {:?}", key_a, key_b);
        }
    }

    #[test]
    fn argument_keys_differ_exactly_when_values_differ(
        a in json_value_without_precision_loss(),
        b in json_value_without_precision_loss(),
    ) {
        let p = policy(
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - state: {counter: c, window: hour, max: 5, scope: args.repo}\n",
        );
        let limit = &p.tools["t"][0].limits[0];
        let args_a = serde_json::json!({"repo": a});
        let args_b = serde_json::json!({"repo": b});
        // A number a double reader would merge with its neighbours cannot partition a
        // counter at all; every other value gets a key of its own.
        let (Ok(key_a), Ok(key_b)) = (
            counter_key(limit, &call("t", &args_a, None)),
            counter_key(limit, &call("t", &args_b, None)),
        ) else {
            return Ok(());
        };
        prop_assert_eq!(key_a == key_b, values_equal(&a, &b), "{} vs {}", key_a, key_b);
    }
}

/// JSON whose numbers compare exactly both as integers and as floats, so that "equal by
/// value" has one meaning (`eq` compares a float with a huge integer through `f64`).
fn json_value_without_precision_loss() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(Value::from),
        (-1000i32..1000).prop_map(|n| Value::from(f64::from(n) / 2.0)),
        prop::sample::select(vec!["a", "b", "\"", "null", "1", "@", "=", ".", ""])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
                    inner
                ),
                0..4
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}
