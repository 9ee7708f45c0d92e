//! `diff`: what changes between two policies, by meaning.
#![allow(clippy::unwrap_used)]

mod common;

use common::policy;
use toolgate_policy::diff::diff;

const OLD: &str = r#"
version: "1"
hide: [drop_db]
tools:
  create_issue:
    rules:
      - name: hourly issues
        rate_limit: 5/hour
      - name: titles
        conditions:
          - {path: args.title, op: regex, value: "^[A-Z]"}
  delete_repo:
    rules:
      - name: careful
        conditions:
          - {path: args.confirm, op: eq, value: true}
  refund:
    rules:
      - name: budget
        state: {counter: spend, window: day, increment_from: args.amount, max: 1000}
"#;

#[test]
fn the_same_meaning_in_another_form_has_no_differences() {
    let json = r#"{"version": "1", "tools": {"echo": {"limits": [{"counter": "calls", "window": "hour", "max": 5}]}}}"#;
    let yaml = "version: \"1\"\ntools:\n  echo:\n    limits:\n      - {counter: calls, window: hour, max: 5}\n";
    assert!(diff(&policy(json), &policy(yaml)).is_empty());
    let commented = format!(
        "# a comment\n{}",
        OLD.replace("      - name: titles", "\n      - name: titles")
    );
    assert!(diff(&policy(OLD), &policy(&commented)).is_empty());
}

#[test]
fn reports_visibility_refusals_limits_and_rules() {
    let new = OLD
        .replace("hide: [drop_db]", "hide: [list_secrets]")
        .replace("rate_limit: 5/hour", "rate_limit: 10/hour")
        .replace("max: 1000", "max: 500")
        .replace(
            "      - name: careful\n        conditions:\n          - {path: args.confirm, op: eq, value: true}",
            "      - name: never\n        action: deny",
        );
    let d = diff(&policy(OLD), &policy(&new));
    assert_eq!(d.newly_hidden, ["list_secrets"]);
    assert_eq!(d.newly_visible, ["drop_db"]);
    assert_eq!(d.newly_denied, ["delete_repo"]);
    let limits: Vec<(String, &str, String)> = d
        .limits
        .iter()
        .map(|l| {
            (
                format!("{}.{}", l.owner, l.counter),
                l.change,
                l.new.as_ref().unwrap().max.to_string(),
            )
        })
        .collect();
    assert_eq!(
        limits,
        [
            (
                "create_issue._rate_hour".to_string(),
                "raised",
                "10".to_string()
            ),
            ("refund.spend".to_string(), "lowered", "500".to_string()),
        ]
    );
    let rules: Vec<(String, String, &str)> = d
        .rules
        .iter()
        .map(|r| (r.owner.clone(), r.rule.clone(), r.change))
        .collect();
    assert!(rules.contains(&("delete_repo".into(), "careful".into(), "removed")));
    assert!(rules.contains(&("delete_repo".into(), "never".into(), "added")));
    assert!(rules.contains(&("create_issue".into(), "hourly issues".into(), "changed")));
}

#[test]
fn settings_order_and_dry_runs() {
    let reordered = OLD.replace(
        "      - name: hourly issues\n        rate_limit: 5/hour\n      - name: titles\n        conditions:\n          - {path: args.title, op: regex, value: \"^[A-Z]\"}",
        "      - name: titles\n        conditions:\n          - {path: args.title, op: regex, value: \"^[A-Z]\"}\n      - name: hourly issues\n        rate_limit: 5/hour",
    );
    assert_ne!(reordered, OLD);
    let d = diff(&policy(OLD), &policy(&reordered));
    assert!(
        d.rules.iter().all(|r| r.what == ["position"]),
        "{:?}",
        d.rules
    );

    let shadow = format!("mode: shadow\ndefault: deny\n{}", OLD.trim_start());
    let d = diff(&policy(OLD), &policy(&shadow));
    let settings: Vec<(&str, &str, &str)> = d
        .settings
        .iter()
        .map(|s| (s.setting, s.old.as_str(), s.new.as_str()))
        .collect();
    assert_eq!(
        settings,
        [("default", "allow", "deny"), ("mode", "enforce", "shadow")]
    );

    let dry = OLD.replace(
        "        rate_limit: 5/hour",
        "        rate_limit: 5/hour\n        dry_run: true",
    );
    let d = diff(&policy(OLD), &policy(&dry));
    let changes: Vec<&str> = d.limits.iter().map(|l| l.change).collect();
    assert_eq!(
        changes,
        ["removed", "added"],
        "an enforced limit became a dry run"
    );
    assert_eq!(d.rules[0].what, ["dry_run"]);
}
