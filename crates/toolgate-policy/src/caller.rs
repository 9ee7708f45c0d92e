//! Who is calling, as a policy's conditions see it: `identity.name`, `identity.scopes` and
//! `identity.claims.<claim>` (docs/POLICY.md, "Conditions on the caller").
//!
//! The caller comes from the listener: a static identity has a name only; an OAuth access
//! token adds its scopes and its claims. A call without an identity (stdio, or a listener
//! without identities) has no caller, and every `identity.…` path is missing.

use std::fmt;

use serde_json::Value;

/// The caller of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caller {
    pub name: String,
    pub scopes: Vec<String>,
    /// The access token's claims (an object; empty for a static identity).
    pub claims: serde_json::Map<String, Value>,
}

/// A condition path into the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityPath {
    /// `identity.name`: a string.
    Name,
    /// `identity.scopes`: a list of strings (test it with `contains`).
    Scopes,
    /// `identity.claims.<claim>[.<member>…]`: a claim's value, or a member within it.
    Claim(Vec<String>),
}

impl IdentityPath {
    /// Reads `identity.…`; `None` when the text is not an identity path at all, `Err` when it
    /// starts like one but names nothing.
    pub fn parse(text: &str) -> Option<Result<IdentityPath, String>> {
        let rest = text.strip_prefix("identity.")?;
        Some(match rest {
            "name" => Ok(IdentityPath::Name),
            "scopes" => Ok(IdentityPath::Scopes),
            _ => match rest.strip_prefix("claims.") {
                Some(claim) => {
                    let segments: Vec<String> = claim.split('.').map(str::to_string).collect();
                    if segments.iter().any(String::is_empty) {
                        Err(format!("path {text:?} has an empty segment"))
                    } else {
                        Ok(IdentityPath::Claim(segments))
                    }
                }
                None => Err(format!(
                    "unknown identity path {text:?}: use identity.name, identity.scopes or identity.claims.<claim>"
                )),
            },
        })
    }

    /// The value at this path for `caller`; none when there is no caller or no such claim.
    pub fn value(&self, caller: Option<&Caller>) -> Option<Value> {
        let caller = caller?;
        match self {
            IdentityPath::Name => Some(Value::String(caller.name.clone())),
            IdentityPath::Scopes => Some(Value::Array(
                caller.scopes.iter().cloned().map(Value::String).collect(),
            )),
            IdentityPath::Claim(segments) => {
                let (first, rest) = segments.split_first()?;
                let mut current = caller.claims.get(first)?;
                for segment in rest {
                    current = match current {
                        Value::Object(map) => map.get(segment)?,
                        Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(current.clone())
            }
        }
    }
}

impl fmt::Display for IdentityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityPath::Name => write!(f, "identity.name"),
            IdentityPath::Scopes => write!(f, "identity.scopes"),
            IdentityPath::Claim(segments) => write!(f, "identity.claims.{}", segments.join(".")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_the_caller_and_nothing_without_one() {
        let caller = Caller {
            name: "alice".into(),
            scopes: vec!["tools:call".into(), "payments:write".into()],
            claims: json!({"org": {"id": "acme"}, "groups": ["a", "b"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let path = |text: &str| {
            IdentityPath::parse(text)
                .expect("an identity path")
                .expect("valid")
        };
        assert_eq!(
            path("identity.name").value(Some(&caller)),
            Some(json!("alice"))
        );
        assert_eq!(
            path("identity.scopes").value(Some(&caller)),
            Some(json!(["tools:call", "payments:write"]))
        );
        assert_eq!(
            path("identity.claims.org.id").value(Some(&caller)),
            Some(json!("acme"))
        );
        assert_eq!(
            path("identity.claims.groups.1").value(Some(&caller)),
            Some(json!("b"))
        );
        assert_eq!(path("identity.claims.missing").value(Some(&caller)), None);
        assert_eq!(path("identity.name").value(None), None);
        assert!(IdentityPath::parse("args.x").is_none());
        assert!(IdentityPath::parse("identity.email")
            .expect("identity")
            .is_err());
        assert!(IdentityPath::parse("identity.claims..x")
            .expect("identity")
            .is_err());
        assert_eq!(
            path("identity.claims.org.id").to_string(),
            "identity.claims.org.id"
        );
    }

    #[test]
    fn rules_decide_on_the_callers_scopes_and_claims() {
        let policy = crate::compile(
            "version: '1'\ntools:\n  refund:\n    rules:\n      - name: payments only\n        action: evaluate\n        conditions:\n          - {path: identity.scopes, op: contains, value: 'payments:write'}\n          - {path: identity.claims.org, op: eq, value: acme}\n",
        )
        .expect("compiles");
        let decide = |caller: Option<&Caller>| {
            let arguments = json!({});
            let call = crate::Call {
                tool: "refund",
                arguments: &arguments,
                session: None,
                identity: caller.map(|c| c.name.as_str()),
                caller,
            };
            matches!(policy.decide(&call), crate::Decision::Allow(_))
        };
        let mut payer = Caller {
            name: "svc".into(),
            scopes: vec!["payments:write".into()],
            claims: json!({"org": "acme"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(decide(Some(&payer)));
        payer.scopes = vec!["tools:call".into()];
        assert!(!decide(Some(&payer)));
        assert!(!decide(None));
    }
}
