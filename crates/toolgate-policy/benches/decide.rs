//! Decision and compile time for generated policies of 50 and 1,000 tools, each with three
//! rules: a regex condition, a numeric condition and a rate limit, plus one `"*"` rate limit.
//! A decision should take well under a microsecond and not grow with the number of tools.
//! Also: the canonical text of the same arguments (counter partitions, argument hashes).
//!
//! Run: `cargo bench -p toolgate-policy --bench decide`

use std::fmt::Write as _;

use divan::{black_box, Bencher};
use serde_json::{json, Value};
use toolgate_policy::{Call, Decision, Policy};

fn main() {
    divan::main();
}

const SIZES: [usize; 2] = [50, 1000];

fn tool_name(i: usize) -> String {
    format!("tool_{i:04}")
}

/// A policy of `tools` tools shaped like a real one, as YAML text.
fn policy_text(tools: usize) -> String {
    let mut text = String::from("version: \"1\"\ndescription: generated for benchmarks\ntools:\n");
    for i in 0..tools {
        let _ = write!(
            text,
            r#"  {name}:
    rules:
      - name: branch format
        conditions:
          - {{path: args.branch, op: regex, value: "^(feat|fix|chore)/[a-z0-9-]+$"}}
      - name: amount cap
        conditions:
          - {{path: args.amount, op: lte, value: 500}}
        on_deny: "Amounts over 500 are not allowed"
      - name: hourly
        rate_limit: 100/hour
"#,
            name = tool_name(i)
        );
    }
    text.push_str("  \"*\":\n    rules:\n      - name: global\n        rate_limit: 600/minute\n");
    text
}

fn compiled(tools: usize) -> Policy {
    toolgate_policy::compile(&policy_text(tools)).expect("the generated policy compiles")
}

fn arguments() -> Value {
    json!({"branch": "feat/login-page", "amount": 120, "title": "Add login page"})
}

fn bench_decision(bencher: Bencher, tools: usize, tool: &str) {
    let policy = compiled(tools);
    let arguments = arguments();
    let call = Call {
        tool,
        arguments: &arguments,
        session: Some("session-1"),
        identity: Some("alice"),
        caller: None,
    };
    assert!(matches!(policy.decide(&call), Decision::Allow(_)));
    bencher.bench_local(|| policy.decide(black_box(&call)));
}

/// A call to the first tool written in the file.
#[divan::bench(args = SIZES)]
fn decide_first_tool(bencher: Bencher, tools: usize) {
    bench_decision(bencher, tools, &tool_name(0));
}

/// A call to the tool in the middle of the file.
#[divan::bench(args = SIZES)]
fn decide_middle_tool(bencher: Bencher, tools: usize) {
    bench_decision(bencher, tools, &tool_name(tools / 2));
}

/// A call to a tool the policy does not list: only the `"*"` rule applies.
#[divan::bench(args = SIZES)]
fn decide_wildcard_only_tool(bencher: Bencher, tools: usize) {
    bench_decision(bencher, tools, "unlisted_tool");
}

/// Parsing, validating and compiling the 1,000-tool policy (355 KB of YAML).
#[divan::bench(sample_count = 20)]
fn compile_1000_tools(bencher: Bencher) {
    let text = policy_text(1000);
    bencher.bench_local(|| toolgate_policy::compile(black_box(&text)).is_ok());
}

/// The canonical text of a call's arguments: what the audit log hashes and approvals
/// fingerprint, on every call with the audit log on.
#[divan::bench]
fn canonical_arguments(bencher: Bencher) {
    let arguments = arguments();
    bencher.bench_local(|| toolgate_policy::canonical::canonical_json(black_box(&arguments)));
}
