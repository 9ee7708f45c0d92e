//! `toolgate validate`, `explain` and `diff` as a user runs them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn toolgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().to_string()
}

const GOOD: &str = r#"version: "1"
tools:
  create_issue:
    rules:
      - name: hourly issues
        rate_limit: 5/hour
  create_refund:
    rules:
      - name: refund cap
        conditions:
          - path: args.amount
            op: lte
            value: 10000
        on_deny: "Refunds over $100.00 need a person"
"#;

const BAD: &str = r#"version: "2"
tools:
  create_issue:
    rules:
      - name: typo
        rate_limit: 5/fortnight
        on_denny: "x"
"#;

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "good.yaml", GOOD);
    let out = toolgate(&["validate", "-c", &path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Policy file is valid.\n"
    );
}

/// A valid policy whose limits would not bind the way they read on the chosen transport.
const SCOPES: &str = r#"version: "1"
tools:
  read_file:
    rules:
      - rate_limit: {max: 10, window: 60}
  "*":
    rules:
      - name: per caller
        state: {counter: calls, window: hour, max: 100, scope: identity}
"#;

#[test]
fn validate_warns_where_a_scope_cannot_bind_on_the_transport() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "scopes.yaml", SCOPES);
    let out = toolgate(&["validate", "-c", &path, "--transport", "http"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Policy file is valid.\n"), "{text}");
    assert!(
        text.contains("tools.read_file.rules[0]: counter \"_rate_minute\"")
            && text.contains("2026-07-28 requests carry no session"),
        "{text}"
    );
    assert!(text.contains("the policy has no `identities`"), "{text}");
    let json = toolgate(&[
        "validate",
        "-c",
        &path,
        "--transport",
        "http",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["warnings"].as_array().unwrap().len(), 2);
    // Over stdio, sessions bind; the identity is the flag's.
    let stdio = toolgate(&["validate", "-c", &path]);
    let text = String::from_utf8_lossy(&stdio.stdout);
    assert!(
        !text.contains("no session") && text.contains("--identity flag"),
        "{text}"
    );
    // A policy without such limits gets no warning at all.
    let good = write(dir.path(), "good.yaml", GOOD);
    let out = toolgate(&["validate", "-c", &good, "--transport", "http"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Policy file is valid.\n"
    );
}

#[test]
fn validate_reports_every_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", BAD);
    let out = toolgate(&["validate", "-c", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{path}:1:10: version: version must be \"1\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{path}:6:21: tools.create_issue.rules[0].rate_limit: rate_limit window"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{path}:7:9: tools.create_issue.rules[0].on_denny: unknown key \"on_denny\""
        )),
        "{text}"
    );
    assert!(text.contains("did you mean `on_deny`?"), "{text}");
    assert!(text.ends_with(&format!("3 errors in {path}\n")), "{text}");

    let out = toolgate(&["validate", "-c", &path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"].as_array().unwrap().len(), 3);
    assert_eq!(report["errors"][0]["line"], 1);
    assert_eq!(report["errors"][0]["column"], 10);
    assert_eq!(report["errors"][0]["path"], "version");
}

#[test]
fn validate_names_a_missing_file() {
    let out = toolgate(&["validate", "-c", "no-such-policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read policy file no-such-policy.yaml"));
}

#[test]
fn explain_shows_the_decision_and_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "good.yaml", GOOD);
    let out = toolgate(&[
        "explain",
        "-c",
        &path,
        "--tool",
        "create_refund",
        "--args",
        r#"{"amount": 50000}"#,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["decision"], "deny");
    assert_eq!(e["rule"], "refund cap");
    assert_eq!(e["message"], "Refunds over $100.00 need a person");
    assert_eq!(e["trace"][0]["result"], "deny");

    let out = toolgate(&[
        "explain",
        "-c",
        &path,
        "--tool",
        "create_issue",
        "--counter",
        "create_issue._rate_hour=5",
        "--format",
        "json",
    ]);
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["decision"], "deny");
    assert_eq!(e["rule"], "hourly issues");
    assert_eq!(e["reservations"][0]["key"], "create_issue._rate_hour");
    assert_eq!(e["reservations"][0]["max"], 5);
    assert_eq!(e["reservations"][0]["current"], 5);

    let out = toolgate(&[
        "explain",
        "-c",
        &path,
        "--tool",
        "create_issue",
        "--counter",
        "create_issue._rate_hour=4",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("decision: allow\n"), "{text}");
    assert!(
        text.contains("create_issue._rate_hour  4 + 1 (max 5 per hour)"),
        "{text}"
    );
}

#[test]
fn explain_refuses_bad_arguments_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "good.yaml", GOOD);
    let out = toolgate(&["explain", "-c", &path, "--tool", "x", "--args", "[1]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--args must be a JSON object"));
    let out = toolgate(&[
        "explain",
        "-c",
        &path,
        "--tool",
        "x",
        "--counter",
        "nonsense",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be KEY=VALUE"));
}

#[test]
fn the_proxy_refuses_to_start_on_an_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", BAD);
    let out = toolgate(&[
        "-c",
        &path,
        "--state-dsn",
        "memory:",
        "--no-audit",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"on_denny\""), "{err}");
    assert!(
        err.contains("the policy file is not valid; nothing was started"),
        "{err}"
    );
}

#[test]
fn the_proxy_exits_with_the_servers_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "good.yaml", GOOD);
    let run = |script: &str| {
        toolgate(&[
            "-c",
            &path,
            "--state-dsn",
            "memory:",
            "--no-audit",
            "--no-watch",
            "--",
            "sh",
            "-c",
            script,
        ])
        .status
        .code()
    };
    assert_eq!(run("exit 3"), Some(3));
    assert_eq!(run("kill -9 $$"), Some(128 + 9));
}

#[test]
fn diff_reports_what_changes_and_exits_by_whether_anything_does() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(
        dir.path(),
        "old.yaml",
        "version: \"1\"\ntools:\n  create_issue:\n    rules:\n      - name: hourly\n        rate_limit: 5/hour\n",
    );
    let same = write(
        dir.path(),
        "same.json",
        r#"{"version": "1", "tools": {"create_issue": {"rules": [{"name": "hourly", "rate_limit": "5/hour"}]}}}"#,
    );
    let new = write(
        dir.path(),
        "new.yaml",
        "version: \"1\"\ndefault: deny\ntools:\n  create_issue:\n    rules:\n      - name: hourly\n        rate_limit: 2/hour\n",
    );
    let bad = write(dir.path(), "bad.yaml", "version: \"1\"\ndefualt: deny\n");

    let done = toolgate(&["diff", &old, &same]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(text(&done.stdout).contains("The policies mean the same"));

    let done = toolgate(&["diff", &old, &new]);
    assert_eq!(done.status.code(), Some(1));
    let out = text(&done.stdout);
    assert!(
        out.contains("default: allow -> deny (tools the policy does not list are now hidden)"),
        "{out}"
    );
    assert!(
        out.contains("create_issue._rate_hour (rule \"hourly\") lowered: 5 per hour (shared) -> 2 per hour (shared)"),
        "{out}"
    );

    let done = toolgate(&["diff", &old, &new, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(report["limits"][0]["change"], "lowered");
    assert_eq!(report["limits"][0]["new"]["max"], 2);

    let done = toolgate(&["diff", &old, &bad]);
    assert_eq!(done.status.code(), Some(2));
    assert!(text(&done.stderr).contains("bad.yaml:2:1: defualt: unknown key"));
}
