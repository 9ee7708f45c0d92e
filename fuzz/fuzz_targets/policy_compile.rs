//! Fuzzes the policy loader: arbitrary bytes → UTF-8 → `compile`; every policy that compiles
//! then decides and explains a few fixed calls. Nothing here may panic, overflow the stack
//! or run away with memory, whatever the input.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use toolgate_policy::{Amount, Call};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = toolgate_policy::compile(text) else {
        return;
    };
    let arguments = [
        json!({}),
        json!({"amount": 250, "currency": "usd", "branch": "feat/x", "items": [{"id": 1}]}),
        json!({"amount": -1.5, "query": null, "reason": "a test", "merchant": {"id": [1, 2]}}),
        json!({"amount": "100", "a": {"b": {"c": true}}}),
    ];
    let tools = ["create_issue", "create_charge", "create_refund", "read_file", "*", ""];
    let counters = HashMap::from([(String::from("create_issue._rate_hour"), Amount::ONE)]);
    for tool in tools {
        for args in &arguments {
            let call = Call {
                tool,
                arguments: args,
                session: Some("s1"),
                identity: None,
            };
            let _ = policy.decide(&call);
            let _ = policy.explain(&call, &counters);
            let _ = policy.is_visible(tool);
        }
    }
});
