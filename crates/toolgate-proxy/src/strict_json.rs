//! A JSON reader that refuses the inputs on which two parsers could disagree.
//!
//! A gateway that reads `{"amount": 1, "amount": 99999}` as 1 while the server reads 99999 has
//! no policy at all. So every object, at every depth, is checked for members that are equal,
//! or equal under Unicode case folding (Go's `encoding/json`, which many MCP servers use,
//! matches struct fields case-insensitively with folding, so `Amount` and `amounſ`-style
//! spellings reach the same field as `amount`). Such input is refused, never resolved by
//! "first" or "last wins".
//!
//! The checks are linear: each object keeps one hash set of folded member names. A message
//! may hold at most [`MAX_MEMBERS_PER_OBJECT`] members in one object and [`MAX_NODES`] values
//! in all, so no message can make the gateway do unbounded work before it is refused.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use toolgate_policy::fold::{fold, same_member};

/// Members an object may have before its names are checked through a hash set.
const SMALL_OBJECT: usize = 16;

/// Members one object may have.
pub const MAX_MEMBERS_PER_OBJECT: usize = 10_000;
/// Values (objects, arrays, members, leaves) one message may hold.
pub const MAX_NODES: usize = 500_000;

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
    let budget = Cell::new(MAX_NODES);
    let value = StrictValue { budget: &budget }
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

fn ambiguous<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format!("{AMBIGUOUS_MARKER}{message}"))
}

/// The member name serde_json (built with `arbitrary_precision`) uses to hand a number's
/// exact text to a visitor as a one-member map.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

#[derive(Clone, Copy)]
struct StrictValue<'b> {
    budget: &'b Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.budget.get().checked_sub(1) {
            Some(left) => self.budget.set(left),
            None => {
                return Err(ambiguous(format_args!(
                    "the message holds more than {MAX_NODES} values"
                )))
            }
        }
        deserializer.deserialize_any(StrictVisitor {
            budget: self.budget,
        })
    }
}

struct StrictVisitor<'b> {
    budget: &'b Cell<usize>,
}

impl<'de> Visitor<'de> for StrictVisitor<'_> {
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
        let mut items = Vec::new();
        let seed = StrictValue {
            budget: self.budget,
        };
        while let Some(item) = seq.next_element_seed(seed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        // Small objects (almost all) compare each new name with the few before it, without
        // allocating; from SMALL_OBJECT members on, folded names go into a hash set, so the
        // check stays linear however many members an object has.
        let mut folded: Option<HashSet<String>> = None;
        let seed = StrictValue {
            budget: self.budget,
        };
        while let Some(key) = access.next_key::<String>()? {
            if map.is_empty() && key == NUMBER_TOKEN {
                return access.next_value_seed(ExactNumber).map(Value::Number);
            }
            if map.len() >= MAX_MEMBERS_PER_OBJECT {
                return Err(ambiguous(format_args!(
                    "an object has more than {MAX_MEMBERS_PER_OBJECT} members"
                )));
            }
            if map.len() == SMALL_OBJECT {
                folded = Some(map.keys().map(|k| fold(k).into_owned()).collect());
            }
            let collides = match &mut folded {
                Some(set) => !set.insert(fold(&key).into_owned()),
                None => map.keys().any(|k| same_member(k, &key)),
            };
            if collides {
                let message = match map.keys().find(|k| same_member(k, &key)) {
                    Some(existing) if *existing != key => {
                        format!("keys {existing:?} and {key:?} differ only in case")
                    }
                    _ => format!("duplicate key {key:?}"),
                };
                return Err(ambiguous(message));
            }
            let value = access.next_value_seed(seed)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// The value of serde_json's number map: the number's text, handed over as an owned
/// `String`. A client can also *write* an object whose one member has that name; serde_json
/// hands such a member's value over as a borrowed or unescaped `str`, never as a `String`,
/// and that object is refused (toolgate must not read as a number what a server reads as an
/// object).
struct ExactNumber;

impl<'de> DeserializeSeed<'de> for ExactNumber {
    type Value = Number;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Number, D::Error> {
        deserializer.deserialize_any(ExactNumberVisitor)
    }
}

struct ExactNumberVisitor;

impl<'de> Visitor<'de> for ExactNumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Number, E> {
        v.parse::<Number>()
            .map_err(|e| E::custom(format!("invalid number: {e}")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Number, E> {
        Err(reserved_member())
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &str) -> Result<Number, E> {
        Err(reserved_member())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Number, A::Error> {
        Err(reserved_member())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Number, A::Error> {
        Err(reserved_member())
    }
}

fn reserved_member<E: de::Error>() -> E {
    ambiguous(format_args!("member name {NUMBER_TOKEN:?} is reserved"))
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
    fn refuses_members_that_fold_together() {
        for text in [
            r#"{"arguments": 1, "argument\u017f": 2}"#,
            r#"{"kind": 1, "\u212aind": 2}"#,
            r#"{"a": {"strasse": 1, "STRASSE": 2}}"#,
        ] {
            assert!(
                matches!(parse_strict(text), Err(StrictJsonError::Ambiguous(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let v = parse_strict(r#"{"a": 18446744073709551617, "b": 0.1000000000000000001}"#).unwrap();
        assert_eq!(v["a"].to_string(), "18446744073709551617");
        assert_eq!(v["b"].to_string(), "0.1000000000000000001");
    }

    #[test]
    fn an_object_named_like_serde_jsons_number_map_is_refused() {
        for text in [
            r#"{"a": {"$serde_json::private::Number": "5"}}"#,
            r#"{"a": {"$serde_json::private::Number": "5\u0030"}}"#,
            r#"{"$serde_json::private::Number": {}}"#,
        ] {
            assert!(
                matches!(parse_strict(text), Err(StrictJsonError::Ambiguous(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn many_members_are_checked_in_linear_time_and_capped() {
        let members: Vec<String> = (0..MAX_MEMBERS_PER_OBJECT)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect();
        let text = format!("{{{}}}", members.join(","));
        assert!(parse_strict(&text).is_ok());
        let text = format!("{{{},\"one_more\":1}}", members.join(","));
        assert!(matches!(
            parse_strict(&text),
            Err(StrictJsonError::Ambiguous(m)) if m.contains("members")
        ));
        let many = format!("[{}]", vec!["0"; MAX_NODES].join(","));
        assert!(matches!(
            parse_strict(&many),
            Err(StrictJsonError::Ambiguous(m)) if m.contains("values")
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
