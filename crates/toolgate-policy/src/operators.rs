//! What each operator means for a value found in the arguments.
//!
//! Comparisons are typed and exact: numbers compare as numbers (`1` equals `1.0`), strings
//! as strings, and there is no coercion between them — a string `"50000"` is not a number to
//! `lte`, so a numeric limit fails closed instead of being sidestepped by quoting.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::ir::Operator;

/// Evaluates an operator against the resolved argument (`None` when the path is missing).
/// A missing argument fails every operator except `exists`.
pub fn holds(operator: &Operator, actual: Option<&Value>) -> bool {
    let Some(value) = actual else {
        return matches!(operator, Operator::Exists(false));
    };
    match operator {
        // A null argument counts as absent.
        Operator::Exists(expected) => value.is_null() != *expected,
        Operator::Eq(expected) => values_equal(value, expected),
        Operator::Neq(expected) => !values_equal(value, expected),
        Operator::In(list) => list.iter().any(|v| values_equal(value, v)),
        Operator::NotIn(list) => !list.iter().any(|v| values_equal(value, v)),
        Operator::Lt(limit) => compare(value, limit) == Some(Ordering::Less),
        Operator::Lte(limit) => matches!(
            compare(value, limit),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Operator::Gt(limit) => compare(value, limit) == Some(Ordering::Greater),
        Operator::Gte(limit) => matches!(
            compare(value, limit),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Operator::Regex(re) => value.as_str().is_some_and(|s| re.is_match(s)),
        Operator::Contains(needle) => match value {
            Value::String(haystack) => needle.as_str().is_some_and(|n| haystack.contains(n)),
            Value::Array(items) => items.iter().any(|item| values_equal(item, needle)),
            _ => false,
        },
    }
}

/// Deep equality where numbers compare by value.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| values_equal(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| values_equal(x, y)))
        }
        _ => a == b,
    }
}

fn compare(actual: &Value, limit: &Number) -> Option<Ordering> {
    match actual {
        Value::Number(n) => compare_numbers(n, limit),
        _ => None,
    }
}

/// Orders two JSON numbers: exactly when both are integers, by `f64` otherwise.
pub fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn num(v: Value) -> Number {
        match v {
            Value::Number(n) => n,
            _ => panic!("not a number"),
        }
    }

    #[test]
    fn equality_is_typed_and_numeric() {
        assert!(holds(&Operator::Eq(json!(1)), Some(&json!(1.0))));
        assert!(!holds(&Operator::Eq(json!(1)), Some(&json!("1"))));
        assert!(holds(&Operator::Eq(json!("main")), Some(&json!("main"))));
        assert!(holds(&Operator::Neq(json!("main")), Some(&json!("dev"))));
        assert!(!holds(&Operator::Neq(json!("main")), None));
        assert!(holds(
            &Operator::Eq(json!({"a": [1]})),
            Some(&json!({"a": [1.0]}))
        ));
    }

    #[test]
    fn membership() {
        let list = vec![json!("usd"), json!("eur")];
        assert!(holds(&Operator::In(list.clone()), Some(&json!("usd"))));
        assert!(!holds(&Operator::In(list.clone()), Some(&json!("gbp"))));
        assert!(holds(&Operator::NotIn(list.clone()), Some(&json!("gbp"))));
        assert!(!holds(&Operator::NotIn(list), None));
    }

    #[test]
    fn ordering_needs_numbers() {
        let limit = num(json!(50000));
        assert!(holds(&Operator::Lte(limit.clone()), Some(&json!(50000))));
        assert!(!holds(&Operator::Lt(limit.clone()), Some(&json!(50000))));
        assert!(holds(&Operator::Lt(limit.clone()), Some(&json!(49999.5))));
        assert!(!holds(&Operator::Lte(limit.clone()), Some(&json!("100"))));
        assert!(holds(&Operator::Gt(limit.clone()), Some(&json!(u64::MAX))));
        assert!(holds(&Operator::Gte(limit.clone()), Some(&json!(50000.0))));
        assert!(!holds(&Operator::Gte(limit), None));
    }

    #[test]
    fn regex_contains_exists() {
        let re = regex::Regex::new("^feat/").unwrap();
        assert!(holds(&Operator::Regex(re.clone()), Some(&json!("feat/x"))));
        assert!(!holds(&Operator::Regex(re), Some(&json!(5))));
        assert!(holds(
            &Operator::Contains(json!("test")),
            Some(&json!("a test run"))
        ));
        assert!(holds(&Operator::Contains(json!(2)), Some(&json!([1, 2.0]))));
        assert!(!holds(
            &Operator::Contains(json!("x")),
            Some(&json!({"x": 1}))
        ));
        assert!(holds(&Operator::Exists(true), Some(&json!(0))));
        assert!(!holds(&Operator::Exists(true), Some(&Value::Null)));
        assert!(holds(&Operator::Exists(false), None));
    }
}
