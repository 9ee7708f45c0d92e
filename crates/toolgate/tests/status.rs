//! `toolgate status` run as a process over a handwritten audit directory: two instances, one
//! with a rotated file, a torn last line and a foreign line.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

const A: &str = "100-aaaaaa";
const B: &str = "200-bbbbbb";

/// `2026-03-01T<hh:mm>:00.000Z`, the day every fixture line is on.
fn ts(hh_mm: &str) -> String {
    format!("2026-03-01T{hh_mm}:00.000Z")
}

fn event(hh_mm: &str, instance: &str, mut fields: Value) -> String {
    fields["ts"] = json!(ts(hh_mm));
    fields["instance"] = json!(instance);
    fields.to_string()
}

/// A decision line; `rule` makes it a denial by that rule.
fn call(hh_mm: &str, instance: &str, tool: &str, rule: Option<&str>) -> String {
    let mut fields = json!({
        "event": "decision",
        "session": "s1",
        "tool": tool,
        "decision": "allow",
        "policy": "rev-1",
        "outcome": "result",
        "latency_us": 120,
        "args_hash": "hmac-sha256:00",
    });
    if let Some(rule) = rule {
        fields["decision"] = json!("deny");
        fields["outcome"] = json!("not_forwarded");
        fields["rule"] = json!(rule);
        fields["message"] = json!(format!("{rule} refused it"));
    }
    event(hh_mm, instance, fields)
}

fn startup() -> Value {
    json!({"event": "startup", "policy": "rev-1", "version": "0.1.0"})
}

fn write_fixture(dir: &Path) {
    let a_rotated = [
        event("09:00", A, startup()),
        call("09:01", A, "read_file", None),
        call("09:10", A, "drop_table", Some("no-ddl")),
    ];
    let a_live = [
        call("09:30", A, "read_file", None),
        call("09:40", A, "refund", Some("refund-cap")),
        event(
            "09:45",
            A,
            json!({"event": "shutdown", "reason": "stdin closed"}),
        ),
    ];
    let b_live = [
        event("09:20", B, startup()),
        call("09:25", B, "drop_table", Some("no-ddl")),
        "a line some other program wrote".to_string(),
        event(
            "09:35",
            B,
            json!({"event": "reload", "ok": false, "policy": null,
                   "errors": ["policy.yaml:4:3: unknown key `tols`"]}),
        ),
        call("09:50", B, "read_file", None),
        call("09:52", B, "read_file", None),
        call("09:55", B, "drop_table", Some("no-ddl")),
    ];
    let file = |name: &str, lines: &[String], tail: &str| {
        std::fs::write(dir.join(name), format!("{}\n{tail}", lines.join("\n"))).unwrap();
    };
    file("toolgate-100-aaaaaa.1772356000000.jsonl", &a_rotated, "");
    file("toolgate-100-aaaaaa.jsonl", &a_live, "");
    // Torn: the writer's process died in the middle of this line.
    file(
        "toolgate-200-bbbbbb.jsonl",
        &b_live,
        r#"{"ts":"2026-03-01T09:59:00.000Z","instance":"200-bbb"#,
    );
}

fn status(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("status")
        .args(args)
        .env_remove("TOOLGATE_STATE_DIR")
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn json_report_has_exact_figures() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let audit_dir = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = status(&[
        "--audit-dir",
        audit_dir,
        "--format",
        "json",
        "--since",
        "30",
        "--recent",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();

    assert_eq!(report["audit_dir"], audit_dir);
    assert_eq!(report["files"], 3);
    assert_eq!(report["lines"], 14);
    assert_eq!(report["skipped_lines"], 2);
    assert_eq!(report["events"], 12);
    assert_eq!(report["first_ts"], "2026-03-01T09:00:00.000Z");
    assert_eq!(report["last_ts"], "2026-03-01T09:55:00.000Z");
    assert_eq!(report["calls"], 8);
    assert_eq!(
        report["decisions"],
        json!({"allow": 4, "deny": 4, "hidden": 0, "approval_required": 0, "error": 0, "would_deny": 0, "would_hide": 0, "would_require_approval": 0, "duplicate": 0, "other": 0})
    );
    assert_eq!(report["deny_rate"], 0.5);
    assert_eq!(report["uncounted_calls"], 0);

    let instances: Vec<(&str, bool, u64, u64)> = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instance"].as_str().unwrap(),
                i["running"].as_bool().unwrap(),
                i["calls"].as_u64().unwrap(),
                i["denied"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        instances,
        [("200-bbbbbb", true, 4, 2), ("100-aaaaaa", false, 4, 2)]
    );
    assert_eq!(
        report["instances"][1]["first_seen"],
        "2026-03-01T09:00:00.000Z"
    );
    assert_eq!(
        report["instances"][1]["last_seen"],
        "2026-03-01T09:45:00.000Z"
    );
    assert_eq!(report["instances"][1]["last_event"], "shutdown");

    // (09:25, 09:55]: 09:30, 09:40, 09:50, 09:52, 09:55, no two in one minute.
    assert_eq!(
        report["rate"],
        json!({
            "minutes": 30,
            "from": "2026-03-01T09:25:00.000Z",
            "to": "2026-03-01T09:55:00.000Z",
            "calls": 5,
            "per_minute": 5.0 / 30.0,
            "peak_per_minute": 1,
        })
    );

    assert_eq!(
        report["top_deny_rules"],
        json!([{"rule": "no-ddl", "count": 3}, {"rule": "refund-cap", "count": 1}])
    );
    // Newest three, interleaved across both instances' files.
    assert_eq!(
        report["recent_denials"],
        json!([
            {"ts": "2026-03-01T09:55:00.000Z", "instance": "200-bbbbbb", "tool": "drop_table",
             "rule": "no-ddl", "message": "no-ddl refused it"},
            {"ts": "2026-03-01T09:40:00.000Z", "instance": "100-aaaaaa", "tool": "refund",
             "rule": "refund-cap", "message": "refund-cap refused it"},
            {"ts": "2026-03-01T09:25:00.000Z", "instance": "200-bbbbbb", "tool": "drop_table",
             "rule": "no-ddl", "message": "no-ddl refused it"},
        ])
    );
    assert_eq!(report["failed_reloads_total"], 1);
    assert_eq!(
        report["failed_reloads"],
        json!([{"ts": "2026-03-01T09:35:00.000Z", "instance": "200-bbbbbb",
                "error": "policy.yaml:4:3: unknown key `tols`", "error_count": 1}])
    );
}

#[test]
fn text_report_is_aligned() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let (code, stdout, stderr) = status(&["--audit-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "  INSTANCE    STATE    FIRST SEEN                LAST SEEN                 CALLS  DENIED  POLICY\n  \
               200-bbbbbb  running  2026-03-01T09:20:00.000Z  2026-03-01T09:55:00.000Z      4       2  rev-1\n  \
               100-aaaaaa  stopped  2026-03-01T09:00:00.000Z  2026-03-01T09:45:00.000Z      4       2  rev-1\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("  deny               4  50.0% of calls\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  COUNT  RULE\n      3  no-ddl\n      1  refund-cap\n"),
        "{stdout}"
    );
}

#[test]
fn state_dir_without_audit_data_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = status(&["--state-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let looked = dir.path().join("audit");
    assert_eq!(
        stdout,
        format!("No audit data yet in {}.\n", looked.display())
    );

    let (code, stdout, _) = status(&[
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["audit_dir"], looked.to_str().unwrap());
    assert_eq!(
        (report["files"].as_u64(), report["calls"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(report["rate"], Value::Null);
}
