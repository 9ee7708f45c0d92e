//! Canonical JSON: one text per value, for everything that must recognise "the same
//! arguments" — counter keys, the audit log's argument hashes, approval fingerprints.
//!
//! Object members are sorted by name, there is no whitespace, strings are escaped the one
//! way serde_json escapes them, and numbers are written in one spelling per value (`5`, `5.0`
//! and `5e0` are `5`). *Which* value depends on the reader the text stands for:
//!
//! - [`Numbers::Exact`] — the value as written (`2^64 + 1` stays `18446744073709551617`; see
//!   [`crate::number::Exact`]). For approval fingerprints and argument hashes: an approval of
//!   `9000000000000000` must not cover a call a Python or Go server runs with
//!   `9000000000000001`.
//! - [`Numbers::AsDoubles`] — the value a double reader (JavaScript) sees, the coarsest any
//!   reader uses. For counter partitions: `2^60` and `2^60 + 1` are one account to such a
//!   server, so they must be one counter, or a caller could multiply a budget by respelling a
//!   number. Values an exact reader tells apart may then share a counter, which can only
//!   count more, never less.

use std::fmt::Write;

use serde_json::Value;

use crate::number::{as_double, Exact};

/// How numbers are read (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    Exact,
    AsDoubles,
}

/// The canonical text of `value`, numbers exact.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value, Numbers::Exact);
    out
}

/// Appends the canonical text of `value` to `out`.
pub fn write_canonical(out: &mut String, value: &Value, numbers: Numbers) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = crate::number::as_plain_integer(n) {
                // Both readings agree on it, and this is its one spelling. Writing to a
                // `String` cannot fail.
                let _ = write!(out, "{i}");
                return;
            }
            let exact = match numbers {
                Numbers::Exact => Exact::from_number(n),
                // The shortest text that reads back as the same double names the double.
                Numbers::AsDoubles => Exact::parse(&format!("{:e}", as_double(n))),
            };
            match exact {
                Some(exact) => out.push_str(&exact.canonical()),
                // Not a finite number (beyond a double's range): its text names it.
                None => out.push_str(n.as_str()),
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item, numbers);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted explicitly: with serde_json's `preserve_order` feature enabled anywhere
            // in the build, maps keep the sender's order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_canonical(out, v, numbers);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub fn write_string(out: &mut String, s: &str) {
    // serde_json escapes only `"`, `\` and control characters; most names and values have
    // none, and are copied as they are, without a string of their own.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // Serializing a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canonical(text: &str) -> String {
        canonical_json(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn numbers_are_written_by_exact_value() {
        assert_eq!(canonical("1"), "1");
        assert_eq!(canonical("1.0"), "1");
        assert_eq!(canonical("1e0"), "1");
        assert_eq!(canonical("-0.0"), "0");
        assert_eq!(canonical("1.50"), "1.5");
        assert_eq!(canonical("18446744073709551615"), "18446744073709551615");
        assert_eq!(canonical("1e300"), "1e300");
        assert_eq!(canonical("1e19"), canonical("10000000000000000000"));
        // Beyond 2^53 a double reader merges these; an exact reader does not, so neither
        // does the canonical text (an approval for one is not an approval for the other).
        assert_ne!(canonical("9007199254740993"), canonical("9007199254740992"));
        assert_ne!(
            canonical("9000000000000001.0"),
            canonical("9000000000000000")
        );
        assert_eq!(canonical("9000000000000001.0"), "9000000000000001");
    }

    #[test]
    fn counter_partitions_read_numbers_as_doubles() {
        let as_doubles = |text: &str| {
            let mut out = String::new();
            write_canonical(
                &mut out,
                &serde_json::from_str(text).unwrap(),
                Numbers::AsDoubles,
            );
            out
        };
        assert_eq!(
            as_doubles("1152921504606846977"),
            as_doubles("1152921504606846976")
        );
        assert_eq!(as_doubles("0.10000000000000001"), as_doubles("0.1"));
        assert_eq!(as_doubles("0.1"), "0.1");
        assert_eq!(as_doubles("5.0"), "5");
        assert_eq!(as_doubles("[1e2, {\"a\": 7}]"), "[100,{\"a\":7}]");
        assert_ne!(as_doubles("1"), as_doubles("2"));
    }

    #[test]
    fn objects_are_sorted_and_strings_escaped() {
        assert_eq!(
            canonical(r#"{"b": [1.0, "x\""], "a": null}"#),
            r#"{"a":null,"b":[1,"x\""]}"#
        );
        assert_eq!(canonical(r#""\u0061""#), r#""a""#);
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut every_byte_char: String = (0u8..=0x7f).map(char::from).collect();
        every_byte_char.push_str("\u{80}\u{2028}\u{2029}\u{fffd}é😀");
        for s in [
            "",
            "plain",
            "with space/and slash",
            "quote\"",
            "back\\slash",
            "line\nbreak",
            "\u{7f}del",
            "\u{0}nul",
            every_byte_char.as_str(),
        ] {
            let mut out = String::from("x");
            write_string(&mut out, s);
            assert_eq!(
                out,
                format!("x{}", serde_json::to_string(s).unwrap()),
                "{s:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in "\\PC*|[\\x00-\\x7f]*") {
            let mut out = String::new();
            write_string(&mut out, &s);
            proptest::prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }
    }
}
