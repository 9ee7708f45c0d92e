//! The identity of a counter: `<namespace>.<counter>` plus the scope's partition, e.g.
//! `create_issue._rate_hour`, `_global.calls@identity:"alice"`, `deploy.runs@args.env="prod"`.
//!
//! Keys must be injective: two different partitions must never share a counter (one
//! session spending another's budget), and one partition must never get two counters (a
//! caller multiplying its budget by rewriting a value). So partition values are written as
//! canonical JSON — strings quoted and escaped, an absent session or identity as `null`
//! (never a name a caller could also send), numbers by value (`1`, `1.0` and `1e0` are one
//! counter, as they are one value to `eq`), object keys sorted — and counter names cannot
//! contain `.` or `@` (the compiler refuses them), so no name can imitate a separator.

use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::decide::Call;
use crate::ir::{Limit, Scope};

/// The key of the counter `limit` moves for `call`.
pub fn counter_key(limit: &Limit, call: &Call<'_>) -> String {
    let namespace = limit.namespace.as_deref().unwrap_or(call.tool);
    let mut key = String::with_capacity(namespace.len() + limit.counter.len() + 24);
    key.push_str(namespace);
    key.push('.');
    key.push_str(&limit.counter);
    match &limit.scope {
        Scope::Shared => {}
        Scope::Session => {
            key.push_str("@session:");
            write_optional_string(&mut key, call.session);
        }
        Scope::Identity => {
            key.push_str("@identity:");
            write_optional_string(&mut key, call.identity);
        }
        Scope::Argument(path) => {
            let _ = write!(key, "@{path}=");
            match path.resolve(call.arguments) {
                Some(value) => write_canonical(&mut key, value),
                None => key.push_str("null"),
            }
        }
    }
    key
}

fn write_optional_string(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => write_string(out, s),
        None => out.push_str("null"),
    }
}

fn write_string(out: &mut String, s: &str) {
    // Serializing a string to a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Writes `value` as canonical JSON: numbers by value, object keys sorted, no spaces.
pub fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted explicitly: with serde_json's `preserve_order` feature enabled anywhere
            // in the build, maps keep the sender's order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_canonical(out, v);
            }
            out.push('}');
        }
    }
}

const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// Integers as integers, whichever way they were written (`5`, `5.0`, `5e0`, `-0.0` is `0`);
/// other floats in their shortest round-trip form, which is unique per value.
fn write_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    match n.as_f64() {
        // Below 2^64 every integral f64 is an integer some JSON integer could also spell.
        Some(f) if f.fract() == 0.0 && f.abs() < TWO_POW_64 => {
            let _ = write!(out, "{}", f as i128);
        }
        _ => {
            let _ = write!(out, "{n}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canonical(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        let mut out = String::new();
        write_canonical(&mut out, &value);
        out
    }

    #[test]
    fn numbers_are_written_by_value() {
        assert_eq!(canonical("1"), "1");
        assert_eq!(canonical("1.0"), "1");
        assert_eq!(canonical("1e0"), "1");
        assert_eq!(canonical("-0.0"), "0");
        assert_eq!(canonical("1.5"), "1.5");
        assert_eq!(canonical("1.50"), "1.5");
        assert_eq!(canonical("18446744073709551615"), "18446744073709551615");
        assert_eq!(canonical("1e300"), "1e+300");
        assert_eq!(canonical("1e19"), canonical("10000000000000000000"));
    }

    #[test]
    fn objects_are_sorted_and_strings_escaped() {
        assert_eq!(
            canonical(r#"{"b": [1.0, "x\""], "a": null}"#),
            r#"{"a":null,"b":[1,"x\""]}"#
        );
    }
}
