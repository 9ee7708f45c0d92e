//! A JSON reader that refuses the inputs on which two parsers could disagree.
//!
//! A gateway that reads `{"amount": 1, "amount": 99999}` as 1 while the server reads 99999 has
//! no policy at all. So every object, at every depth, is checked for keys that are equal, or
//! equal ignoring case (Go's `encoding/json`, which many MCP servers use, matches struct fields
//! case-insensitively, so `Amount` would reach the same field as `amount`). Such input is
//! refused, never resolved by "first" or "last wins".

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("{0}")]
    Ambiguous(String),
}

/// Parses JSON into a `Value`, refusing duplicate and case-colliding keys anywhere.
pub fn parse_strict(text: &str) -> Result<Value, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .map_err(classify)?;
    deserializer.end().map_err(classify)?;
    Ok(value)
}

fn classify(e: serde_json::Error) -> StrictJsonError {
    let text = e.to_string();
    match text.strip_prefix(AMBIGUOUS_MARKER) {
        Some(rest) => {
            // serde_json appends " at line X column Y" to custom errors.
            let message = rest.rsplit_once(" at line ").map_or(rest, |(m, _)| m);
            StrictJsonError::Ambiguous(message.to_string())
        }
        None => StrictJsonError::Syntax(text),
    }
}

const AMBIGUOUS_MARKER: &str = "\u{1}ambiguous:";

/// True when two keys would reach the same field in a case-insensitive decoder.
pub fn keys_collide(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if let Some(existing) = map.keys().find(|k| keys_collide(k, &key)) {
                let message = if *existing == key {
                    format!("duplicate key {key:?}")
                } else {
                    format!("keys {existing:?} and {key:?} differ only in case")
                };
                return Err(de::Error::custom(format!("{AMBIGUOUS_MARKER}{message}")));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_ordinary_json() {
        let v = parse_strict(r#"{"a": [1, {"b": null}], "c": "x"}"#).unwrap();
        assert_eq!(v["a"][1]["b"], Value::Null);
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert_eq!(
            parse_strict(r#"{"a": {"x": 1, "x": 2}}"#),
            Err(StrictJsonError::Ambiguous("duplicate key \"x\"".into()))
        );
    }

    #[test]
    fn refuses_case_variants() {
        assert_eq!(
            parse_strict(r#"{"amount": 1, "Amount": 99999}"#),
            Err(StrictJsonError::Ambiguous(
                "keys \"amount\" and \"Amount\" differ only in case".into()
            ))
        );
    }

    #[test]
    fn escaped_keys_are_compared_after_unescaping() {
        assert!(matches!(
            parse_strict(r#"{"name": 1, "n\u0061me": 2}"#),
            Err(StrictJsonError::Ambiguous(_))
        ));
    }

    #[test]
    fn syntax_errors_and_trailing_data() {
        assert!(matches!(
            parse_strict("{bad"),
            Err(StrictJsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_strict("{} {}"),
            Err(StrictJsonError::Syntax(_))
        ));
    }
}
