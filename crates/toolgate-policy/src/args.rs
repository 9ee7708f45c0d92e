//! Argument paths (`args.items.0.id`) and how they reach into a call's arguments.

use std::fmt;

use crate::fold::same_member;

/// A parsed `args.…` path: the segments after `args.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArgPath {
    segments: Vec<String>,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgPathError {
    #[error("path must start with \"args.\", got {0:?}")]
    NotArgs(String),
    #[error("path {0:?} has an empty segment")]
    EmptySegment(String),
}

impl ArgPath {
    pub fn parse(text: &str) -> Result<ArgPath, ArgPathError> {
        let rest = text
            .strip_prefix("args.")
            .ok_or_else(|| ArgPathError::NotArgs(text.to_string()))?;
        let segments: Vec<String> = rest.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(ArgPathError::EmptySegment(text.to_string()));
        }
        Ok(ArgPath { segments })
    }

    /// Walks the arguments. Objects are entered by key and arrays by index
    /// (`args.items.0.id`); anything else ends the walk as [`Lookup::Missing`].
    ///
    /// At every object on the way, a member that a case-insensitive decoder would take for
    /// the segment but that is not byte-equal to it (`Amount`, or `amount` spelt with a
    /// Kelvin sign for `k`) makes the lookup [`Lookup::Ambiguous`]: the gateway would read
    /// one value and a Go server another. The caller's reader guarantees that no two members
    /// of one object fold together, so the check is only needed when the exact member is
    /// absent.
    pub fn lookup<'a>(&self, arguments: &'a serde_json::Value) -> Lookup<'a> {
        let mut current = arguments;
        for segment in &self.segments {
            current = match current {
                serde_json::Value::Object(map) => match map.get(segment) {
                    Some(value) => value,
                    None => {
                        return match map.keys().find(|k| same_member(k, segment)) {
                            Some(member) => Lookup::Ambiguous {
                                member: member.clone(),
                                path: self.to_string(),
                            },
                            None => Lookup::Missing,
                        }
                    }
                },
                serde_json::Value::Array(items) => {
                    match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                        Some(value) => value,
                        None => return Lookup::Missing,
                    }
                }
                _ => return Lookup::Missing,
            };
        }
        Lookup::Found(current)
    }

    /// The value at this path, when it is unambiguously there.
    pub fn resolve<'a>(&self, arguments: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        match self.lookup(arguments) {
            Lookup::Found(value) => Some(value),
            _ => None,
        }
    }
}

/// What an argument path finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    Found(&'a serde_json::Value),
    Missing,
    /// A member differs from the path's segment only by case folding.
    Ambiguous {
        member: String,
        path: String,
    },
}

impl fmt::Display for ArgPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "args.{}", self.segments.join("."))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_objects_and_arrays() {
        let args = json!({"a": {"b": {"c": 7}}, "items": [{"id": "x"}, {"id": "y"}]});
        assert_eq!(
            ArgPath::parse("args.a.b.c").unwrap().resolve(&args),
            Some(&json!(7))
        );
        assert_eq!(
            ArgPath::parse("args.items.1.id").unwrap().resolve(&args),
            Some(&json!("y"))
        );
        assert_eq!(
            ArgPath::parse("args.items.2.id").unwrap().resolve(&args),
            None
        );
        assert_eq!(ArgPath::parse("args.items.x").unwrap().resolve(&args), None);
        assert_eq!(ArgPath::parse("args.a.b.c.d").unwrap().resolve(&args), None);
    }

    #[test]
    fn members_that_fold_to_the_segment_are_ambiguous() {
        let path = ArgPath::parse("args.payment.amount").unwrap();
        for args in [
            json!({"payment": {"Amount": 5000}}),
            json!({"Payment": {"amount": 5000}}),
            json!({"payment": {"AMOUNT": 5000}}),
        ] {
            assert!(
                matches!(path.lookup(&args), Lookup::Ambiguous { .. }),
                "{args}"
            );
        }
        let kind = ArgPath::parse("args.kind").unwrap();
        assert!(matches!(
            kind.lookup(&json!({"\u{212a}ind": "x"})),
            Lookup::Ambiguous { .. }
        ));
        let status = ArgPath::parse("args.status").unwrap();
        assert!(matches!(
            status.lookup(&json!({"\u{17f}tatus": "x"})),
            Lookup::Ambiguous { .. }
        ));
        assert_eq!(status.lookup(&json!({"state": 1})), Lookup::Missing);
        assert_eq!(
            status.lookup(&json!({"status": 1})),
            Lookup::Found(&json!(1))
        );
    }

    #[test]
    fn refuses_malformed_paths() {
        assert!(matches!(
            ArgPath::parse("amount"),
            Err(ArgPathError::NotArgs(_))
        ));
        assert!(matches!(
            ArgPath::parse("args."),
            Err(ArgPathError::EmptySegment(_))
        ));
        assert!(matches!(
            ArgPath::parse("args.a..b"),
            Err(ArgPathError::EmptySegment(_))
        ));
    }
}
