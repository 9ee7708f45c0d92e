//! Redaction of what a server returns (`redact` rules; see `toolgate_policy::redact`): every
//! string of a `tools/call` or `resources/read` result — text content, embedded resource text,
//! `structuredContent`, resource contents — goes through the tool's rules before the client
//! sees it. Base64 payloads (`data`, `blob`: images, audio, binary resources) are not text and
//! are left alone.
//!
//! A result that nothing matches is relayed as the server sent it, byte for byte; one with
//! matches is rewritten; one that a `block` rule matches is withheld and replaced by an error
//! result naming the rule.

use serde_json::{json, Value};
use toolgate_policy::redact::{OnMatch, Redaction, RedactionCounts};
use toolgate_policy::Policy;

use crate::wire::DECISION_META_KEY;

/// Members whose strings are base64 payloads, not text.
const BINARY_MEMBERS: [&str; 2] = ["data", "blob"];

/// What the rules did to one result.
#[derive(Debug, PartialEq)]
pub enum Redacted {
    Unchanged,
    /// The rewritten result (the `result` member's JSON).
    Changed(Value),
    /// A `block` rule matched: the result must not reach the client.
    Blocked {
        rule: String,
    },
}

/// What redaction made of a server's answer.
pub struct RedactionOutcome {
    /// The result the client gets instead of the server's; `None`: the server's, as sent.
    pub replacement: Option<Value>,
    pub counts: RedactionCounts,
    pub withheld_by: Option<String>,
}

/// Runs the `redact` rules of `tool` (`"*"` for a `resources/read`) over a result. `None` when
/// the tool has no rules or the answer no result.
pub fn redact_answer(
    policy: &Policy,
    tool: &str,
    result: Option<&str>,
) -> Option<RedactionOutcome> {
    let rules = policy.redactions_for(tool);
    let result = result.filter(|_| !rules.is_empty())?;
    let mut counts = RedactionCounts::new();
    let (replacement, withheld_by) = match redact_result(result, &rules, &mut counts) {
        Redacted::Unchanged => (None, None),
        Redacted::Changed(value) => (Some(value), None),
        Redacted::Blocked { rule } => (Some(withheld(&rule, &policy.revision)), Some(rule)),
    };
    Some(RedactionOutcome {
        replacement,
        counts,
        withheld_by,
    })
}

/// The error result a client gets for a result a `block` rule withheld (complete, as
/// `wire::tool_error_result` marks its own).
fn withheld(rule: &str, revision: &str) -> Value {
    json!({
        "content": [{"type": "text", "text": format!(
            "[REDACTED] The server's result was withheld: it matched redaction rule {rule:?}. The tool did run."
        )}],
        "isError": true,
        "resultType": "complete",
        "_meta": {DECISION_META_KEY: {"decision": "withheld", "rule": rule, "policy": revision}},
    })
}

/// Runs `rules` over a result's JSON text, counting matches into `counts`.
pub fn redact_result(result: &str, rules: &[&Redaction], counts: &mut RedactionCounts) -> Redacted {
    let Ok(mut value) = serde_json::from_str::<Value>(result) else {
        // Not JSON we can read: nothing to rewrite in place; the caller withholds it.
        return Redacted::Blocked {
            rule: "unreadable result".to_string(),
        };
    };
    let before = counts.values().sum::<u64>();
    let mut walk = Walk {
        rules,
        counts,
        blocked: None,
        seen: Vec::new(),
    };
    walk.value(&mut value);
    let blocked = walk.blocked;
    if let Some(rule) = blocked {
        return Redacted::Blocked { rule };
    }
    if counts.values().sum::<u64>() == before {
        Redacted::Unchanged
    } else {
        Redacted::Changed(value)
    }
}

/// Strings this long are remembered, with what redaction made of them: servers often return
/// the same text twice (in `content`, and as `structuredContent`, as the specification
/// recommends), and the second copy then costs a comparison instead of a scan.
const REMEMBERED_LEN: usize = 1024;
/// Long strings remembered per result, at most: the repeat is of one text, and a result of
/// thousands of long strings must cost neither thousands of copies nor a comparison of each
/// with all before it (a few comparisons each, at memory speed, is cheaper than hashing).
const REMEMBERED_AT_MOST: usize = 8;

struct Walk<'r, 'c> {
    rules: &'r [&'r Redaction],
    counts: &'c mut RedactionCounts,
    blocked: Option<String>,
    /// Long strings seen: the original, what it became, and the counts it added.
    seen: Vec<(String, String, RedactionCounts)>,
}

impl Walk<'_, '_> {
    fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => self.text(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    if BINARY_MEMBERS.contains(&key.as_str()) && item.is_string() {
                        continue;
                    }
                    self.value(item);
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, text: &mut String) {
        let long = text.len() >= REMEMBERED_LEN;
        let repeat = long.then(|| self.seen.iter().find(|(before, ..)| before == text));
        if let Some((_, after, found)) = repeat.flatten() {
            for (label, n) in found {
                *self.counts.entry(label.clone()).or_default() += n;
            }
            *text = after.clone();
            return;
        }
        let original = (long && self.seen.len() < REMEMBERED_AT_MOST).then(|| text.clone());
        let mut found = RedactionCounts::new();
        for rule in self.rules {
            let before = found.values().sum::<u64>();
            if let std::borrow::Cow::Owned(new) = rule.apply(text, &mut found) {
                *text = new;
            }
            if rule.on_match == OnMatch::Block
                && self.blocked.is_none()
                && found.values().sum::<u64>() > before
            {
                self.blocked = Some(rule.name.clone());
            }
        }
        for (label, n) in &found {
            *self.counts.entry(label.clone()).or_default() += n;
        }
        if let Some(original) = original {
            self.seen.push((original, text.clone(), found));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> toolgate_policy::Policy {
        toolgate_policy::compile(
            r#"
version: "1"
redact:
  secrets:
    detectors: [aws_access_key, github_token, private_key]
  hosts:
    pattern: "\\b[a-z0-9-]+\\.corp\\.example\\.com\\b"
    replace: "[host]"
  keys_block:
    detectors: [private_key]
    on_match: block
tools:
  read_file: {redact: [secrets, hosts]}
  read_key: {redact: [keys_block]}
"#,
        )
        .unwrap()
    }

    #[test]
    fn every_text_is_redacted_and_binary_payloads_are_not() {
        let p = policy();
        let rules = p.redactions_for("read_file");
        let result = r#"{"content":[{"type":"text","text":"key AKIAIOSFODNN7EXAMPLE on db.corp.example.com"},{"type":"image","data":"AKIAIOSFODNN7EXAMPLE","mimeType":"image/png"},{"type":"resource","resource":{"uri":"file:///a","text":"ghp_16C7e42F292c6912E7710c838347Ae178B4a"}}],"structuredContent":{"nested":["AKIAIOSFODNN7EXAMPLE"]}}"#;
        let mut counts = RedactionCounts::new();
        let Redacted::Changed(value) = redact_result(result, &rules, &mut counts) else {
            panic!("expected a rewrite");
        };
        assert_eq!(
            value["content"][0]["text"],
            "key [REDACTED:aws_access_key] on [host]"
        );
        assert_eq!(value["content"][1]["data"], "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            value["content"][2]["resource"]["text"],
            "[REDACTED:github_token]"
        );
        assert_eq!(
            value["structuredContent"]["nested"][0],
            "[REDACTED:aws_access_key]"
        );
        let counted: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            counted,
            [
                ("hosts/hosts", 1),
                ("secrets/aws_access_key", 2),
                ("secrets/github_token", 1)
            ]
        );
    }

    #[test]
    fn clean_results_are_unchanged_and_block_rules_withhold() {
        let p = policy();
        let mut counts = RedactionCounts::new();
        let clean = r#"{"content":[{"type":"text","text":"hello"}]}"#;
        assert_eq!(
            redact_result(clean, &p.redactions_for("read_file"), &mut counts),
            Redacted::Unchanged
        );
        assert!(p.redactions_for("other").is_empty());
        let key = r#"{"content":[{"type":"text","text":"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"}]}"#;
        assert_eq!(
            redact_result(key, &p.redactions_for("read_key"), &mut counts),
            Redacted::Blocked {
                rule: "keys_block".into()
            }
        );
    }

    #[test]
    fn many_long_strings_are_each_redacted_and_few_are_remembered() {
        let p = policy();
        let rules = p.redactions_for("read_file");
        // Long texts that differ only at the end: each must be scanned on its own.
        let texts: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    "{}AKIAIOSFODNN7EXAMPL{}",
                    "x ".repeat(1024),
                    (b'A' + i % 26) as char
                )
            })
            .collect();
        let mut items: Vec<Value> = texts
            .iter()
            .map(|t| json!({"type": "text", "text": t}))
            .collect();
        items.push(json!({"type": "text", "text": texts[0]}));
        let result = json!({"content": items}).to_string();
        let mut counts = RedactionCounts::new();
        let Redacted::Changed(value) = redact_result(&result, &rules, &mut counts) else {
            panic!("expected a rewrite");
        };
        let content = value["content"].as_array().unwrap();
        assert!(content.iter().all(|c| c["text"]
            .as_str()
            .unwrap()
            .ends_with("[REDACTED:aws_access_key]")));
        assert_eq!(counts["secrets/aws_access_key"], 41);
    }
}
