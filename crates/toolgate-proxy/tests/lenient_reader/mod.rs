//! How lenient servers read a `tools/call`, for the "decide, then forward" property: what the
//! gateway forwards must not be a forbidden call to *any* of these readers.
//!
//! - Member names are matched as Go's `encoding/json` matches them: ignoring case with
//!   Unicode folding, and for a field given twice, the last member wins.
//! - Values are coerced as pydantic's lax mode coerces them: numeric strings are numbers,
//!   `"true"`/`"1"`/`1` are true; numbers are read exactly and as doubles (JavaScript).
//!
//! Shared by the property test (`decide_then_forward.rs`) and the fuzz target of the same
//! name (`fuzz/fuzz_targets/decide_then_forward.rs`, which includes this file by path).

#![allow(dead_code)]

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toolgate_policy::number::Exact;

/// A JSON value with every object member kept, in order, duplicates included.
#[derive(Debug, Clone)]
pub enum Lenient {
    Null,
    Bool(bool),
    /// A number's text, as written.
    Number(String),
    String(String),
    Array(Vec<Lenient>),
    Object(Vec<(String, Lenient)>),
}

const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lenient, D::Error> {
        deserializer.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Lenient, E> {
        Ok(Lenient::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Lenient, E> {
        Ok(Lenient::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Lenient, E> {
        Ok(Lenient::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Lenient, E> {
        Ok(Lenient::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Lenient, E> {
        Ok(Lenient::Number(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Lenient, E> {
        Ok(Lenient::String(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Lenient::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.is_empty() && key == NUMBER_TOKEN {
                let text: String = map.next_value()?;
                return Ok(Lenient::Number(text));
            }
            members.push((key, map.next_value()?));
        }
        Ok(Lenient::Object(members))
    }
}

/// Parses like serde_json, keeping duplicates (`None` when it is not JSON).
pub fn read(text: &str) -> Option<Lenient> {
    serde_json::from_str(text).ok()
}

fn fold(name: &str) -> String {
    caseless::default_case_fold_str(name)
}

impl Lenient {
    /// The member a case-insensitive decoder fills field `field` from: the last one whose
    /// name folds to the field's.
    pub fn member(&self, field: &str) -> Option<&Lenient> {
        let Lenient::Object(members) = self else {
            return None;
        };
        let want = fold(field);
        members
            .iter()
            .rev()
            .find(|(k, _)| fold(k) == want)
            .map(|(_, v)| v)
    }

    /// Whether a reader that coerces numeric strings (pydantic's lax mode) and reads numbers
    /// exactly (Python, Go) or as doubles (JavaScript) may see a number above `limit`.
    pub fn may_exceed(&self, limit: &str) -> bool {
        let text = match self {
            Lenient::Number(t) => t.as_str(),
            Lenient::String(s) => s.trim(),
            Lenient::Bool(_) => return false,
            _ => return false,
        };
        let as_double = text
            .parse::<f64>()
            .is_ok_and(|f| f.is_nan() || f > limit.parse::<f64>().unwrap_or(f64::MAX));
        let exactly = match (Exact::parse(text), Exact::parse(limit)) {
            (Some(value), Some(limit)) => value > limit,
            _ => false,
        };
        as_double || exactly
    }

    /// True when a lax reader would read the value as the boolean `true`.
    pub fn as_truthy(&self) -> bool {
        match self {
            Lenient::Bool(b) => *b,
            Lenient::Number(t) => t.parse::<f64>().is_ok_and(|f| f == 1.0),
            Lenient::String(s) => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on" | "t" | "y"
            ),
            _ => false,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Lenient::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The policy the property runs against; [`violation`] is its meaning to a lenient reader.
pub const POLICY: &str = r#"
version: "1"
tools:
  pay:
    rules:
      - name: large payments
        action: deny
        conditions:
          - {path: args.amount, op: gt, value: 1000}
      - name: known currencies
        conditions:
          - {path: args.currency, op: in, value: [usd, eur]}
      - name: nested payments
        action: deny
        conditions:
          - {path: args.payment.amount, op: gt, value: 1000}
  delete_customer:
    rules:
      - name: test customers only
        action: deny
        conditions:
          - {path: args.livemode, op: eq, value: true}
  drop_table:
    rules:
      - name: never
        action: deny
hide: [secret_tool]
"#;

/// Why a forwarded message is a call the policy forbids, as a lenient server reads it.
pub fn violation(forwarded: &str) -> Option<String> {
    let message = read(forwarded)?;
    let method = message.member("method").and_then(Lenient::as_str)?;
    if method != "tools/call" {
        return None;
    }
    let params = message.member("params")?;
    let tool = params.member("name").and_then(Lenient::as_str)?;
    let arguments = params.member("arguments");
    let arg = |name: &str| arguments.and_then(|a| a.member(name));
    match tool {
        "pay" => {
            if arg("amount").is_some_and(|a| a.may_exceed("1000")) {
                return Some(format!("pay with amount {:?}", arg("amount")));
            }
            let nested = arg("payment").and_then(|p| p.member("amount"));
            if nested.is_some_and(|a| a.may_exceed("1000")) {
                return Some(format!("pay with payment.amount {nested:?}"));
            }
            match arg("currency").and_then(Lenient::as_str) {
                Some("usd" | "eur") => None,
                other => Some(format!("pay in currency {other:?}")),
            }
        }
        "delete_customer" if arg("livemode").is_some_and(Lenient::as_truthy) => {
            Some("delete_customer in live mode".to_string())
        }
        "drop_table" | "secret_tool" => Some(format!("{tool} reached the server")),
        _ => None,
    }
}
