//! "Decide, then forward": whatever a client writes, nothing the policy forbids is forwarded
//! as a lenient server would read it (Go's case-folding decoder, pydantic's coercion,
//! JavaScript's doubles). Calls are generated with the spellings that have fooled gateways —
//! member names in other cases and Unicode foldings, duplicate members, quoted numbers and
//! booleans, numbers beyond what a double holds, escapes, odd ids — and every message that
//! reaches the server side is read back by `lenient_reader` and checked against the policy.
#![allow(clippy::unwrap_used)]

mod lenient_reader;

use std::sync::Arc;

use proptest::prelude::*;
use tokio::sync::mpsc;
use toolgate_proxy::audit::AuditSink;
use toolgate_proxy::{Gateway, GatewayOptions, Session};
use toolgate_state::{ManualClock, MemoryStore};

fn gateway() -> Arc<Gateway> {
    let clock = Arc::new(ManualClock::new(1_767_261_600_000));
    Gateway::new(
        toolgate_policy::compile(lenient_reader::POLICY).unwrap(),
        Arc::new(MemoryStore::new("fuzz", clock.clone())),
        clock,
        AuditSink::disabled("t".into()),
        None,
        GatewayOptions::default(),
    )
}

/// Feeds `lines` to a fresh session and returns everything that went to the server.
fn forwarded(
    runtime: &tokio::runtime::Runtime,
    gateway: &Arc<Gateway>,
    lines: &[String],
) -> Vec<String> {
    runtime.block_on(async {
        let (to_client, _client_rx) = mpsc::channel(1024);
        let (to_server, mut server_rx) = mpsc::channel(1024);
        let session = Arc::new(Session::new("s".into(), None, to_client, to_server));
        for line in lines {
            gateway.from_client(&session, line.clone()).await;
        }
        // Calls with counters are forwarded from a task of their own.
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let mut out = Vec::new();
        while let Ok(message) = server_rx.try_recv() {
            out.push(message.text);
        }
        out
    })
}

fn spelling(variants: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(variants).prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = String> {
    spelling(&[
        "5",
        "1000",
        "1001",
        "5000",
        "1000.5",
        "1e3",
        "1e4",
        "-1",
        "0.5",
        "null",
        "true",
        "false",
        "\"5000\"",
        "\"500\"",
        "\" 5000 \"",
        "\"1e4\"",
        "\"usd\"",
        "\"eur\"",
        "\"gbp\"",
        "\"\\u0075sd\"",
        "\"true\"",
        "\"1\"",
        "[5000]",
        "{}",
        "18446744073709551617",
        "1000.0000000000000001",
        "9007199254740993",
        "1E400",
    ])
}

fn argument_name() -> impl Strategy<Value = String> {
    spelling(&[
        "amount",
        "Amount",
        "AMOUNT",
        "amounT",
        "\\u0061mount",
        "currency",
        "Currency",
        "\\u0063urrency",
        "livemode",
        "LiveMode",
        "livemod\\u0065",
        "payment",
        "Payment",
        "other",
    ])
}

fn object(members: Vec<(String, String)>) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn arguments() -> impl Strategy<Value = String> {
    let member = (
        argument_name(),
        value(),
        prop::bool::weighted(0.2),
        argument_name(),
        value(),
    )
        .prop_map(|(name, value, nested, inner_name, inner_value)| {
            if nested {
                (
                    "payment".to_string(),
                    object(vec![(inner_name, inner_value)]),
                )
            } else {
                (name, value)
            }
        });
    prop::collection::vec(member, 0..5).prop_map(object)
}

fn call() -> impl Strategy<Value = String> {
    (
        spelling(&["1", "\"a\"", "1.0", "\"\\u0041\"", "9007199254740993", "-0"]),
        spelling(&["method", "method", "method", "Method"]),
        spelling(&["params", "params", "params", "Params", "param\\u017f"]),
        spelling(&["name", "name", "name", "Name", "NAME", "n\\u0061me"]),
        spelling(&[
            "pay",
            "pay",
            "delete_customer",
            "drop_table",
            "secret_tool",
            "p\\u0061y",
        ]),
        spelling(&[
            "arguments",
            "arguments",
            "Arguments",
            "argument\\u017f",
            "ARGUMENTS",
        ]),
        arguments(),
        prop::option::weighted(
            0.2,
            (
                spelling(&["arguments", "Arguments", "argument\\u017f"]),
                arguments(),
            ),
        ),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(id, method, params, name, tool, args_name, args, second, no_id)| {
                let mut members = vec![(name, format!("\"{tool}\"")), (args_name, args)];
                if let Some(second) = second {
                    members.push(second);
                }
                let id = if no_id {
                    String::new()
                } else {
                    format!("\"id\":{id},")
                };
                format!(
                    "{{\"jsonrpc\":\"2.0\",{id}\"{method}\":\"tools/call\",\"{params}\":{}}}",
                    object(members)
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn nothing_forbidden_is_forwarded(lines in prop::collection::vec(call(), 1..4)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let gateway = gateway();
        for message in forwarded(&runtime, &gateway, &lines) {
            prop_assert!(
                lenient_reader::violation(&message).is_none(),
                "forwarded {message}: {:?}\nfrom {lines:#?}",
                lenient_reader::violation(&message)
            );
        }
    }
}

/// The oracle itself is not vacuous: each of these is forbidden to a lenient reader.
#[test]
fn the_lenient_reader_sees_what_a_lenient_server_runs() {
    for forbidden in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","Arguments":{"amount":5000,"currency":"usd"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"amount":"5000","currency":"usd"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"amount":1,"Amount":5000,"currency":"usd"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"amount":1000.0000000000000001,"currency":"usd"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"amount":5,"currency":"gbp"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_customer","arguments":{"livemode":"true"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"drop_table"}}"#,
    ] {
        assert!(
            lenient_reader::violation(forbidden).is_some(),
            "{forbidden}"
        );
    }
    let allowed = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"amount":5,"currency":"usd"}}}"#;
    assert_eq!(lenient_reader::violation(allowed), None);
    // ... and the gateway forwards that one: the property is not vacuous either.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(
        forwarded(&runtime, &gateway(), &[allowed.to_string()]).len(),
        1
    );
}
