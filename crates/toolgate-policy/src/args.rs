//! Argument paths (`args.items.0.id`) and how they reach into a call's arguments.

use std::fmt;

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
    /// (`args.items.0.id`); anything else ends the walk with `None`.
    pub fn resolve<'a>(&self, arguments: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        let mut current = arguments;
        for segment in &self.segments {
            current = match current {
                serde_json::Value::Object(map) => map.get(segment)?,
                serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }
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
