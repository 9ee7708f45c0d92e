//! The built-in secret detectors `redact` rules name. Each is one regex (linear time, as every
//! regex here) and, where a pattern alone matches too much, a check on what it found.

use std::sync::Arc;

use regex::Regex;

use super::Matcher;

/// The detectors, by the names policies use.
pub const DETECTORS: [&str; 6] = [
    "aws_access_key",
    "private_key",
    "github_token",
    "slack_token",
    "jwt",
    "generic_api_key",
];

/// The matcher for a built-in detector; `None` for a name that is not one.
pub fn detector(name: &str) -> Option<Matcher> {
    let (pattern, group, accept): (&str, usize, fn(&str) -> bool) = match name {
        // Long-term (AKIA) and temporary (ASIA) access key ids, and the rarer kinds.
        "aws_access_key" => (r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", 0, any),
        // PEM private keys of every kind, to their END line (or the end of the text, for one
        // cut short).
        "private_key" => (
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)",
            0,
            any,
        ),
        // Classic tokens (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained ones.
        "github_token" => (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
            0,
            any,
        ),
        // Bot, user, app-level, refresh and config tokens.
        "slack_token" => (r"\bxox[abprse]-[0-9]+(?:-[0-9A-Za-z]+)+\b", 0, any),
        // Header and payload are base64url JSON objects (`eyJ` is `{"`), then a signature.
        "jwt" => (
            r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}",
            0,
            any,
        ),
        // `api_key = "…"`, `"client_secret": "…"`, `token: …`: only the value is replaced, and
        // only a value that looks generated (letters and digits, 16 or more characters).
        "generic_api_key" => (
            // ASCII-only matching (`-u`): the names are ASCII, and Unicode word boundaries and
            // case folding would keep the engine from its fast literal search (10× slower).
            r#"(?i-u)\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|private[_-]?token|secret|token|password|passwd)\b["']?\s*[:=]\s*["']?([A-Za-z0-9_\-+/.=]{16,512})"#,
            1,
            looks_generated,
        ),
        _ => return None,
    };
    let regex = Regex::new(pattern).ok()?;
    Some(Matcher {
        label: name.to_string(),
        regex: Arc::new(regex),
        replace: format!("[REDACTED:{name}]"),
        group,
        accept,
    })
}

fn any(_: &str) -> bool {
    true
}

/// Letters and digits both, as keys have and words and numbers do not.
fn looks_generated(value: &str) -> bool {
    value.bytes().any(|b| b.is_ascii_digit()) && value.bytes().any(|b| b.is_ascii_alphabetic())
}
