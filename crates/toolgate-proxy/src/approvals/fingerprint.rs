//! What binds an approval to exactly one call, and the ids people type.
//!
//! The fingerprint covers who calls (identity), what (tool and canonical arguments: sorted
//! keys, one spelling per number, so `{"b":1.0,"a":2}` and `{"a":2,"b":1}` are the same call),
//! under which rule and which policy revision. Changing any of them — another argument, a
//! reloaded policy — makes a new request; the session is deliberately left out, so an
//! approval survives the client reconnecting.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::audit::canonical_json;

/// `sha256:<hex>` over the canonical JSON of the call's binding.
pub fn fingerprint(
    identity: Option<&str>,
    tool: &str,
    arguments: &Value,
    rule: &str,
    policy_revision: &str,
) -> String {
    let binding = json!({
        "identity": identity,
        "tool": tool,
        "arguments": arguments,
        "rule": rule,
        "policy": policy_revision,
    });
    let digest = Sha256::digest(canonical_json(&binding).as_bytes());
    let hex = hex::encode(digest);
    format!("sha256:{hex}")
}

/// A fresh request id: `apr_` and 24 random hex digits (96 bits).
pub fn new_approval_id() -> String {
    let random = crate::session::random_id();
    format!("apr_{}", &random[..24.min(random.len())])
}

/// Whether `text` looks like an id this module makes (checked before it reaches a store or a
/// log line).
pub fn is_approval_id(text: &str) -> bool {
    text.strip_prefix("apr_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_call_written_differently_has_one_fingerprint() {
        let a = fingerprint(
            Some("alice"),
            "refund",
            &json!({"amount": 500.0, "order": {"id": 7, "currency": "EUR"}}),
            "refunds need approval",
            "rev1",
        );
        let b = fingerprint(
            Some("alice"),
            "refund",
            &json!({"order": {"currency": "EUR", "id": 7}, "amount": 500}),
            "refunds need approval",
            "rev1",
        );
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
    }

    #[test]
    fn every_part_of_the_binding_counts() {
        let base = || {
            fingerprint(
                Some("alice"),
                "refund",
                &json!({"amount": 500}),
                "r",
                "rev1",
            )
        };
        let variants = [
            fingerprint(Some("bob"), "refund", &json!({"amount": 500}), "r", "rev1"),
            fingerprint(None, "refund", &json!({"amount": 500}), "r", "rev1"),
            fingerprint(
                Some("alice"),
                "charge",
                &json!({"amount": 500}),
                "r",
                "rev1",
            ),
            fingerprint(
                Some("alice"),
                "refund",
                &json!({"amount": 501}),
                "r",
                "rev1",
            ),
            fingerprint(
                Some("alice"),
                "refund",
                &json!({"amount": "500"}),
                "r",
                "rev1",
            ),
            fingerprint(
                Some("alice"),
                "refund",
                &json!({"amount": 500}),
                "r2",
                "rev1",
            ),
            fingerprint(
                Some("alice"),
                "refund",
                &json!({"amount": 500}),
                "r",
                "rev2",
            ),
        ];
        for v in variants {
            assert_ne!(v, base());
        }
    }

    #[test]
    fn ids_are_fresh_and_recognisable() {
        let (a, b) = (new_approval_id(), new_approval_id());
        assert_ne!(a, b);
        assert!(is_approval_id(&a), "{a}");
        assert_eq!(a.len(), 28);
        for bad in ["apr_", "apr_../x", "x_123", "apr_a b", ""] {
            assert!(!is_approval_id(bad), "{bad}");
        }
    }
}
