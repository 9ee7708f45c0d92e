#![allow(clippy::unwrap_used)]
use super::summarizer::MAX_LINE_BYTES;
use super::*;
use std::fmt::Write as _;
use toolgate_proxy::audit::format_rfc3339_ms;

/// `2026-01-01T10:MM:SS.000Z` in ms, to write and expect lines by minute and second.
fn at(minute: u64, second: u64) -> u64 {
    1_767_261_600_000 + minute * MINUTE_MS + second * 1000
}

fn decision(ms: u64, instance: &str, tool: &str, decision: &str, rule: Option<&str>) -> String {
    let mut line = format!(
        r#"{{"ts":"{}","instance":"{instance}","event":"decision","session":"s1","tool":"{tool}","decision":"{decision}""#,
        format_rfc3339_ms(ms)
    );
    if let Some(rule) = rule {
        let _ = write!(line, r#","rule":"{rule}","message":"{rule} says no""#);
    }
    let outcome = if decision == "allow" {
        "result"
    } else {
        "not_forwarded"
    };
    let _ = write!(
        line,
        r#","policy":"rev-1","outcome":"{outcome}","latency_us":42,"args_hash":"hmac-sha256:00"}}"#
    );
    line
}

fn event(ms: u64, instance: &str, rest: &str) -> String {
    format!(
        r#"{{"ts":"{}","instance":"{instance}",{rest}}}"#,
        format_rfc3339_ms(ms)
    )
}

fn write(dir: &Path, name: &str, lines: &[String], tail: &str) {
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(tail);
    std::fs::write(dir.join(name), text).unwrap();
}

/// Two instances; `a` rotated once and shut down, `b` still running with a torn last line,
/// a foreign line and a failed reload. Denials interleave in time across the files.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write(
        p,
        "toolgate-a.1767262000000.jsonl",
        &[
            event(
                at(0, 0),
                "a",
                r#""event":"startup","policy":"rev-1","version":"0.1.0""#,
            ),
            decision(at(0, 10), "a", "read_file", "allow", None),
            decision(at(1, 0), "a", "delete_repo", "deny", Some("no-deletes")),
            decision(at(2, 0), "a", "read_file", "allow", None),
        ],
        "",
    );
    write(
        p,
        "toolgate-a.jsonl",
        &[
            decision(at(5, 0), "a", "create_refund", "deny", Some("refund-cap")),
            decision(at(5, 30), "a", "secret_tool", "hidden", None),
            event(
                at(6, 0),
                "a",
                r#""event":"reload","ok":true,"policy":"rev-2","errors":[]"#,
            ),
            decision(at(7, 0), "a", "delete_repo", "deny", Some("no-deletes"))
                .replace("rev-1", "rev-2"),
            event(
                at(9, 0),
                "a",
                r#""event":"shutdown","reason":"stdin closed""#,
            ),
        ],
        "",
    );
    write(
        p,
        "toolgate-b.jsonl",
        &[
            event(
                at(3, 0),
                "b",
                r#""event":"startup","policy":"rev-1","version":"0.1.0""#,
            ),
            decision(at(3, 0), "b", "read_file", "allow", None),
            decision(at(4, 0), "b", "delete_repo", "deny", Some("no-deletes")),
            "not json at all".to_string(),
            event(
                at(6, 30),
                "b",
                r#""event":"reload","ok":false,"policy":null,"errors":["line 3: unknown key","line 9: bad"]"#,
            ),
            decision(at(8, 0), "b", "create_refund", "deny", Some("refund-cap")),
            decision(
                at(10, 0),
                "b",
                "approve",
                "approval_required",
                Some("human"),
            ),
            decision(at(10, 30), "b", "charge", "error", None),
            // Let through uncounted by fail-open.
            decision(at(11, 0), "b", "charge", "allow", None)
                .replace(r#""latency_us""#, r#""not_counted":true,"latency_us""#),
        ],
        r#"{"ts":"2026-01-01T10:12:00.000Z","instance":"b","event":"deci"#,
    );
    std::fs::write(p.join("notes.txt"), "not read: wrong extension\n").unwrap();
    dir
}

#[test]
fn summarises_instances_decisions_and_skipped_lines() {
    let dir = fixture();
    let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
    assert_eq!(s.files, 3);
    assert_eq!(s.lines, 19);
    // The foreign line and the torn last line.
    assert_eq!(s.skipped_lines, 2);
    assert_eq!(s.events, 17);
    assert_eq!(s.first_ts.as_deref(), Some("2026-01-01T10:00:00.000Z"));
    assert_eq!(s.last_ts.as_deref(), Some("2026-01-01T10:11:00.000Z"));
    assert_eq!(s.calls, 12);
    assert_eq!(
        s.decisions,
        DecisionCounts {
            allow: 4,
            deny: 5,
            hidden: 1,
            approval_required: 1,
            error: 1,
            would_deny: 0,
            would_hide: 0,
            would_require_approval: 0,
            duplicate: 0,
            other: 0,
        }
    );
    assert_eq!(s.deny_rate, 5.0 / 12.0);
    assert_eq!(s.uncounted_calls, 1);

    assert_eq!(
        s.instances,
        vec![
            InstanceSummary {
                instance: "b".into(),
                first_seen: "2026-01-01T10:03:00.000Z".into(),
                last_seen: "2026-01-01T10:11:00.000Z".into(),
                last_event: "decision".into(),
                running: true,
                calls: 6,
                denied: 2,
                policy: Some("rev-1".into()),
            },
            InstanceSummary {
                instance: "a".into(),
                first_seen: "2026-01-01T10:00:00.000Z".into(),
                last_seen: "2026-01-01T10:09:00.000Z".into(),
                last_event: "shutdown".into(),
                running: false,
                calls: 6,
                denied: 3,
                policy: Some("rev-2".into()),
            },
        ]
    );
}

#[test]
fn ranks_deny_rules_and_orders_denials_across_files_by_time() {
    let dir = fixture();
    let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
    assert_eq!(
        s.top_deny_rules,
        vec![
            RuleCount {
                rule: "no-deletes".into(),
                count: 3
            },
            RuleCount {
                rule: "refund-cap".into(),
                count: 2
            },
        ]
    );
    let order: Vec<(&str, &str, &str)> = s
        .recent_denials
        .iter()
        .map(|d| (d.ts.as_str(), d.instance.as_str(), d.tool.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("2026-01-01T10:08:00.000Z", "b", "create_refund"),
            ("2026-01-01T10:07:00.000Z", "a", "delete_repo"),
            ("2026-01-01T10:05:00.000Z", "a", "create_refund"),
            ("2026-01-01T10:04:00.000Z", "b", "delete_repo"),
            ("2026-01-01T10:01:00.000Z", "a", "delete_repo"),
        ]
    );
    assert_eq!(s.recent_denials[0].rule.as_deref(), Some("refund-cap"));
    assert_eq!(
        s.recent_denials[0].message.as_deref(),
        Some("refund-cap says no")
    );

    let limited = summarize_dir(
        dir.path(),
        SummaryOptions {
            recent: 2,
            top_rules: 1,
            ..SummaryOptions::default()
        },
    )
    .unwrap();
    let ts: Vec<&str> = limited
        .recent_denials
        .iter()
        .map(|d| d.ts.as_str())
        .collect();
    assert_eq!(ts, ["2026-01-01T10:08:00.000Z", "2026-01-01T10:07:00.000Z"]);
    assert_eq!(limited.top_deny_rules.len(), 1);
    assert_eq!(limited.top_deny_rules[0].rule, "no-deletes");
}

#[test]
fn reports_failed_reloads_with_their_first_error() {
    let s = summarize_dir(fixture().path(), SummaryOptions::default()).unwrap();
    assert_eq!(s.failed_reloads_total, 1);
    assert_eq!(
        s.failed_reloads,
        vec![FailedReload {
            ts: "2026-01-01T10:06:30.000Z".into(),
            instance: "b".into(),
            error: Some("line 3: unknown key".into()),
            error_count: 2,
        }]
    );
}

#[test]
fn rate_counts_the_window_ending_at_the_newest_line_or_at_now() {
    let dir = fixture();
    // Newest line 10:11:00; five minutes back is (10:06:00, 10:11:00]: 10:07, 10:08,
    // 10:10, 10:10:30 and 10:11. Minutes count back from 10:11, so 10:10:30 shares the
    // last minute with 10:11 and 10:10:00 starts the one before: the busiest holds two.
    let s = summarize_dir(
        dir.path(),
        SummaryOptions {
            window_minutes: 5,
            ..SummaryOptions::default()
        },
    )
    .unwrap();
    let rate = s.rate.unwrap();
    assert_eq!(rate.from, "2026-01-01T10:06:00.000Z");
    assert_eq!(rate.to, "2026-01-01T10:11:00.000Z");
    assert_eq!(rate.calls, 5);
    assert_eq!(rate.per_minute, 1.0);
    assert_eq!(rate.peak_per_minute, 2);

    // An injected now before the end of the log: later calls are outside the window.
    let s = summarize_dir(
        dir.path(),
        SummaryOptions {
            window_minutes: 2,
            now_ms: Some(at(5, 30)),
            ..SummaryOptions::default()
        },
    )
    .unwrap();
    let rate = s.rate.unwrap();
    // (10:03:30, 10:05:30]: 10:04, 10:05:00 and 10:05:30, the last two in one minute.
    assert_eq!(rate.calls, 3);
    assert_eq!(rate.per_minute, 1.5);
    assert_eq!(rate.peak_per_minute, 2);

    // The default hour covers the whole log.
    let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
    assert_eq!(s.rate.unwrap().calls, 12);
}

#[test]
fn missing_or_empty_directory_is_an_empty_summary() {
    let dir = tempfile::tempdir().unwrap();
    let empty = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
    assert_eq!(empty.files, 0);
    assert_eq!(empty.events, 0);
    assert_eq!(empty.rate, None);
    assert_eq!(empty.deny_rate, 0.0);
    let missing = summarize_dir(&dir.path().join("nowhere"), SummaryOptions::default()).unwrap();
    assert_eq!(missing, empty);
}

#[test]
fn a_file_in_place_of_the_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit");
    std::fs::write(&file, "").unwrap();
    let error = summarize_dir(&file, SummaryOptions::default()).unwrap_err();
    assert!(
        matches!(&error, SummaryError::ListDir { dir, .. } if *dir == file),
        "{error:?}"
    );
}

#[test]
fn overlong_lines_are_skipped_without_being_held() {
    let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
    text.push(b'\n');
    text.extend_from_slice(decision(at(0, 0), "a", "t", "allow", None).as_bytes());
    text.extend_from_slice(b"\n\n");
    text.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES * 2));
    // A small buffer, so each line arrives in many pieces.
    let reader = BufReader::with_capacity(4096, text.as_slice());
    let mut summarizer = Summarizer::new(SummaryOptions::default());
    summarizer.read_from(reader).unwrap();
    let s = summarizer.finish();
    assert_eq!((s.lines, s.skipped_lines, s.calls), (3, 2, 1));
}

#[test]
fn unknown_kinds_and_incomplete_lines() {
    let lines = [
        // A decision kind from a newer writer: a call, of kind `other`.
        decision(at(0, 0), "a", "t", "escalate", None),
        // A decision line missing its tool is not an audit line.
        event(at(0, 1), "a", r#""event":"decision","decision":"allow""#),
        // A reload without `ok` is not either.
        event(at(0, 2), "a", r#""event":"reload","errors":[]"#),
        // An event from a newer writer only dates the instance.
        event(at(0, 3), "a", r#""event":"drain","extra":{"n":[1,2]}"#),
        // A timestamp the writer never makes.
        r#"{"ts":"yesterday","instance":"a","event":"startup"}"#.to_string(),
    ];
    let mut summarizer = Summarizer::new(SummaryOptions::default());
    summarizer.read_from(lines.join("\n").as_bytes()).unwrap();
    let s = summarizer.finish();
    assert_eq!((s.calls, s.decisions.other), (1, 1));
    assert_eq!((s.events, s.skipped_lines), (2, 3));
    assert_eq!(s.instances[0].last_event, "drain");
    assert!(s.instances[0].running);
}

#[test]
fn shadow_decisions_are_counted_apart_and_name_their_rules() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "toolgate-a.jsonl",
        &[
            decision(
                at(0, 1),
                "a",
                "delete_repo",
                "would_deny",
                Some("no deletes"),
            ),
            decision(
                at(0, 2),
                "a",
                "delete_repo",
                "would_deny",
                Some("no deletes"),
            ),
            decision(at(0, 3), "a", "drop_db", "would_hide", None),
            decision(
                at(0, 4),
                "a",
                "refund",
                "would_require_approval",
                Some("big refunds"),
            ),
            decision(at(0, 5), "a", "read_file", "allow", None),
        ],
        "",
    );
    let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
    assert_eq!(s.calls, 5);
    assert_eq!(
        (
            s.decisions.would_deny,
            s.decisions.would_hide,
            s.decisions.would_require_approval
        ),
        (2, 1, 1)
    );
    assert_eq!((s.decisions.deny, s.deny_rate), (0, 0.0));
    assert!(s.top_deny_rules.is_empty() && s.recent_denials.is_empty());
    let shadow: Vec<(&str, u64)> = s
        .top_shadow_rules
        .iter()
        .map(|r| (r.rule.as_str(), r.count))
        .collect();
    assert_eq!(shadow, [("no deletes", 2), ("big refunds", 1)]);
}

#[test]
fn tool_changes_and_poisoned_definitions_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        event(
            at(0, 1),
            "a",
            r#""event":"tool_changed","server":"files","tool":"add","change":"changed","action":"hide","diff":[]"#,
        ),
        event(
            at(0, 2),
            "a",
            r#""event":"tool_changed","server":"files","change":"changed","action":"allow","diff":[]"#,
        ),
        event(
            at(0, 3),
            "a",
            r#""event":"poisoned_tool","tool":"add","action":"warn","findings":[]"#,
        ),
        event(
            at(0, 4),
            "a",
            r#""event":"poisoned_text","what":"instructions","action":"warn","findings":[]"#,
        ),
    ];
    write(dir.path(), "toolgate-a.jsonl", &lines, "");
    let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
    assert_eq!((s.tool_changes_total, s.poisoned_total), (2, 2));
    assert_eq!(
        s.tool_changes[0].tool, None,
        "newest first: the instructions"
    );
    assert_eq!(s.tool_changes[1].tool.as_deref(), Some("add"));
    assert_eq!(s.tool_changes[1].action, "hide");
}
