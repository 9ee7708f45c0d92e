//! What result redaction costs on a 100 KB tool result (server-filesystem's shape: the text in
//! `content` and again in `structuredContent`), with the six built-in detectors and one
//! pattern: a clean result (the common case, relayed unchanged), and one with a secret in
//! every kilobyte (every string rewritten). Beside them, the same result with no rules, which
//! is what a call pays when its tool has none.
//!
//! Run: `cargo bench -p toolgate-proxy --bench redact`

use divan::{black_box, Bencher};
use toolgate_policy::Policy;
use toolgate_proxy::pipeline::redact_result::redact_answer;

fn main() {
    divan::main();
}

const POLICY: &str = r#"
version: "1"
redact:
  secrets:
    detectors: [aws_access_key, private_key, github_token, slack_token, jwt, generic_api_key]
  hosts:
    pattern: "\\b[a-z0-9-]+\\.corp\\.example\\.com\\b"
tools:
  read_text_file: {redact: [secrets, hosts]}
"#;

/// About `kib` KiB of log-like text; with `secrets`, an AWS key id in every KiB.
fn text(kib: usize, secrets: bool) -> String {
    let line =
        "2026-12-04T10:00:00Z INFO request served path=/api/v1/items status=200 bytes=1532\n";
    let mut out = String::new();
    while out.len() < kib * 1024 {
        for _ in 0..12 {
            out.push_str(line);
        }
        if secrets {
            out.push_str("aws_access_key_id AKIAIOSFODNN7EXAMPLE\n");
        }
    }
    out
}

fn result(body: &str) -> String {
    let text = serde_json::Value::String(body.to_string());
    format!(
        r#"{{"content":[{{"type":"text","text":{text}}}],"structuredContent":{{"content":{text}}}}}"#
    )
}

fn policy() -> Policy {
    toolgate_policy::compile(POLICY).expect("the bench policy compiles")
}

#[divan::bench(args = [false, true])]
fn result_of_100_kib(bencher: Bencher, with_secrets: bool) {
    let policy = policy();
    // Half the size in each of the two places the server puts the text: 100 KiB in all.
    let result = result(&text(50, with_secrets));
    bencher
        .counter(divan::counter::BytesCount::new(result.len()))
        .bench(|| {
            black_box(redact_answer(
                &policy,
                "read_text_file",
                Some(black_box(&result)),
            ))
        });
}

/// The same 100 KiB as one text block (no structuredContent copy to reuse).
#[divan::bench]
fn result_of_100_kib_in_one_block(bencher: Bencher) {
    let policy = policy();
    let text = serde_json::Value::String(text(100, false));
    let result = format!(r#"{{"content":[{{"type":"text","text":{text}}}]}}"#);
    bencher.bench(|| {
        black_box(redact_answer(
            &policy,
            "read_text_file",
            Some(black_box(&result)),
        ))
    });
}

#[divan::bench]
fn result_of_100_kib_without_rules(bencher: Bencher) {
    let policy = policy();
    let result = result(&text(50, false));
    bencher.bench(|| {
        black_box(redact_answer(
            &policy,
            "other_tool",
            Some(black_box(&result)),
        ))
    });
}
