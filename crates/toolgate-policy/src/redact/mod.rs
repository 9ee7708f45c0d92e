//! Result redaction: named rules that find secrets (built-in detectors) or anything a pattern
//! describes in what a tool returns, and replace each match — or withhold the whole result —
//! before it reaches the client. Pure text work; the proxy walks a result's JSON and hands
//! each string here.

mod detectors;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use regex::{Captures, Regex};

pub use detectors::{detector, DETECTORS};

/// One `redact.<name>` rule.
#[derive(Debug, Clone)]
pub struct Redaction {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub on_match: OnMatch,
}

/// What a rule does with a result it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMatch {
    /// Replace each match and pass the result on.
    Redact,
    /// Withhold the whole result: the client gets an error result saying why.
    Block,
}

/// One pattern and what replaces it.
#[derive(Clone)]
pub struct Matcher {
    /// What counts are kept under: the detector's name, or the rule's for a pattern.
    pub label: String,
    pub regex: Arc<Regex>,
    pub replace: String,
    /// The capture group replaced (0: the whole match).
    pub group: usize,
    /// A check on what matched, for detectors a pattern alone would over-match.
    pub accept: fn(&str) -> bool,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("label", &self.label)
            .field("regex", &self.regex.as_str())
            .field("replace", &self.replace)
            .field("group", &self.group)
            .finish()
    }
}

/// Matches found, by `<rule>/<label>`: what the audit log records (never the values).
pub type RedactionCounts = BTreeMap<String, u64>;

impl Redaction {
    /// `text` with every match of this rule replaced, counting into `counts`.
    pub fn apply<'t>(&self, text: &'t str, counts: &mut RedactionCounts) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for matcher in &self.matchers {
            let mut found = 0u64;
            let replaced = matcher.regex.replace_all(&out, |caps: &Captures<'_>| {
                let whole = caps.get(0).map_or("", |m| m.as_str());
                match caps.get(matcher.group) {
                    Some(value) if (matcher.accept)(value.as_str()) => {
                        found += 1;
                        // Only the group is replaced: `api_key = [REDACTED:…]`.
                        let start = value.start() - caps.get(0).map_or(0, |m| m.start());
                        let end = start + value.len();
                        format!("{}{}{}", &whole[..start], matcher.replace, &whole[end..])
                    }
                    _ => whole.to_string(),
                }
            });
            if found > 0 {
                *counts
                    .entry(format!("{}/{}", self.name, matcher.label))
                    .or_default() += found;
                out = Cow::Owned(replaced.into_owned());
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secrets() -> Redaction {
        Redaction {
            name: "secrets".into(),
            matchers: DETECTORS.iter().map(|d| detector(d).unwrap()).collect(),
            on_match: OnMatch::Redact,
        }
    }

    fn redact(text: &str) -> (String, RedactionCounts) {
        let mut counts = RedactionCounts::new();
        let out = secrets().apply(text, &mut counts).into_owned();
        (out, counts)
    }

    #[test]
    fn real_key_formats_are_found() {
        let cases = [
            ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
            ("aws_access_key", "ASIAY34FZKBOKMUTVV7A"),
            ("github_token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
            ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"),
            ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
            ("slack_token", "xoxp-123456789012-123456789012-123456789012-0123456789abcdef0123456789abcdef"),
            ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
        ];
        for (label, secret) in cases {
            let (out, counts) = redact(&format!("before {secret} after"));
            assert_eq!(out, format!("before [REDACTED:{label}] after"), "{secret}");
            assert_eq!(
                counts.get(&format!("secrets/{label}")),
                Some(&1),
                "{secret}"
            );
        }
    }

    #[test]
    fn a_private_key_block_goes_whole_even_cut_short() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nBG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----";
        let (out, _) = redact(&format!("id_ed25519:\n{key}\ndone"));
        assert_eq!(out, "id_ed25519:\n[REDACTED:private_key]\ndone");
        let (out, _) = redact("-----BEGIN RSA PRIVATE KEY-----\nMIIEow");
        assert_eq!(out, "[REDACTED:private_key]");
        // A public key or a certificate is not a secret.
        let public = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----";
        assert_eq!(redact(public).0, public);
    }

    #[test]
    fn generic_keys_keep_their_name_and_lose_their_value() {
        let (out, counts) = redact("API_KEY=sk_9f8a7b6c5d4e3f2a1b0c9d8e\npassword: \"hunter2\"");
        assert_eq!(
            out,
            "API_KEY=[REDACTED:generic_api_key]\npassword: \"hunter2\""
        );
        assert_eq!(counts.get("secrets/generic_api_key"), Some(&1));
        let (out, _) = redact(r#"{"client_secret": "Zx8Qm2Lp9Rt4Wv6Yb1Nc3Kd5"}"#);
        assert_eq!(out, r#"{"client_secret": "[REDACTED:generic_api_key]"}"#);
    }

    #[test]
    fn look_alikes_are_left_alone() {
        for text in [
            "AKIA is a prefix AWS uses",
            "AKIAIOSFODNN7EXAMPL",    // one short
            "XAKIAIOSFODNN7EXAMPLE1", // inside a longer word
            "ghp_short",
            "the ghp_ prefix marks a classic token",
            "xoxo-hugs-and-kisses",
            "xoxb-",
            "eyJhbGciOiJIUzI1NiJ9 alone is a header",
            "token: abcdefghijklmnopqrstuvwxyz", // no digits: a word, not a key
            "password = 12345678901234567890",   // no letters
            "secret sauce recipe",
            "the access token expires in 3600 seconds",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        ] {
            let (out, counts) = redact(text);
            assert_eq!(out, text);
            assert!(counts.is_empty(), "{text}: {counts:?}");
        }
    }

    #[test]
    fn text_without_matches_is_not_copied() {
        let mut counts = RedactionCounts::new();
        assert!(matches!(
            secrets().apply("nothing here", &mut counts),
            Cow::Borrowed(_)
        ));
    }
}
