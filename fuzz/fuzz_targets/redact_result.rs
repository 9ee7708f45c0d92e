//! Result redaction on arbitrary results: never a panic, and nothing a rule finds survives —
//! a redacted result, redacted again, is unchanged (no secret left, no replacement that itself
//! matches). The input is a JSON result when it parses as one, else a text block holding it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use toolgate_policy::Policy;
use toolgate_proxy::pipeline::redact_result::redact_answer;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        toolgate_policy::compile(
            r#"
version: "1"
redact:
  secrets:
    detectors: [aws_access_key, private_key, github_token, slack_token, jwt, generic_api_key]
  hosts:
    pattern: "\\b[a-z0-9-]+\\.corp\\.example\\.com\\b"
tools:
  t: {redact: [secrets, hosts]}
"#,
        )
        .expect("the fuzz policy compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        text.to_string()
    } else {
        serde_json::json!({"content": [{"type": "text", "text": text}]}).to_string()
    };
    let Some(first) = redact_answer(policy(), "t", Some(&result)) else {
        return;
    };
    if let Some(redacted) = first.replacement {
        let again =
            redact_answer(policy(), "t", Some(&redacted.to_string())).expect("the tool has rules");
        assert!(
            again.counts.is_empty(),
            "something survived redaction: {:?} in {redacted}",
            again.counts
        );
    }
});
