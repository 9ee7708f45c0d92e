//! What each operator means for a value found in the arguments — in three values.
//!
//! A condition is `True`, `False` or `Unknown`. It is `Unknown` when the gateway cannot be
//! sure how the server reads the value: a type the operator does not compare (`"5000"`
//! against `gt 1000`, `"true"` against `eq true`: pydantic's lax mode runs both as the
//! number and the boolean), or a number whose exact value and whose double reading (a
//! JavaScript server) fall on different sides of the comparison (`2^64 + 1` against
//! `in [2^64]`). Rules treat `Unknown` as the restrictive outcome (see `decide.rs`), so a
//! quoted or oversized number can never slip past a rule that a lenient server would apply.
//!
//! An absent argument and `null` are definite: they fail every operator except
//! `exists: false`.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::ir::Operator;
use crate::number::compare_both;

/// The outcome of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    /// The value cannot be compared as the operator needs, or readers would disagree.
    Unknown,
}

impl Truth {
    fn from_bool(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }

    /// Kleene "and": false wins, then unknown.
    fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
            _ => Truth::True,
        }
    }

    /// Kleene "or": true wins, then unknown.
    fn or(self, other: Truth) -> Truth {
        self.not().and(other.not()).not()
    }
}

/// Evaluates an operator against the resolved argument (`None` when the path is missing).
pub fn evaluate(operator: &Operator, actual: Option<&Value>) -> Truth {
    let Some(value) = actual else {
        return Truth::from_bool(matches!(operator, Operator::Exists(false)));
    };
    match operator {
        Operator::Exists(expected) => Truth::from_bool(value.is_null() != *expected),
        Operator::Lt(_)
        | Operator::Lte(_)
        | Operator::Gt(_)
        | Operator::Gte(_)
        | Operator::Regex(_)
        | Operator::Contains(_)
            if value.is_null() =>
        {
            Truth::False
        }
        Operator::Eq(expected) => equal(value, expected),
        Operator::Neq(expected) => equal(value, expected).not(),
        Operator::In(list) => any_equal(value, list),
        Operator::NotIn(list) => any_equal(value, list).not(),
        Operator::Lt(limit) => ordered(value, limit, |o| o == Ordering::Less),
        Operator::Lte(limit) => ordered(value, limit, |o| o != Ordering::Greater),
        Operator::Gt(limit) => ordered(value, limit, |o| o == Ordering::Greater),
        Operator::Gte(limit) => ordered(value, limit, |o| o != Ordering::Less),
        Operator::Regex(re) => match value {
            Value::String(s) => Truth::from_bool(re.is_match(s)),
            _ => Truth::Unknown,
        },
        Operator::Contains(needle) => match (value, needle) {
            (Value::String(haystack), Value::String(n)) => {
                Truth::from_bool(haystack.contains(n.as_str()))
            }
            (Value::Array(items), _) => any_equal_iter(needle, items.iter()),
            _ => Truth::Unknown,
        },
    }
}

fn any_equal(value: &Value, list: &[Value]) -> Truth {
    any_equal_iter(value, list.iter())
}

fn any_equal_iter<'a>(value: &Value, list: impl Iterator<Item = &'a Value>) -> Truth {
    list.fold(Truth::False, |acc, candidate| {
        acc.or(equal(value, candidate))
    })
}

/// Deep equality where numbers compare by value under both readings.
pub fn equal(a: &Value, b: &Value) -> Truth {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match compare_both(x, y) {
            Some(o) => Truth::from_bool(o == Ordering::Equal),
            None => Truth::Unknown,
        },
        (Value::String(x), Value::String(y)) => Truth::from_bool(x == y),
        (Value::Bool(x), Value::Bool(y)) => Truth::from_bool(x == y),
        (Value::Null, Value::Null) => Truth::True,
        (Value::Null, _) | (_, Value::Null) => Truth::False,
        (Value::Array(xs), Value::Array(ys)) => {
            if xs.len() != ys.len() {
                return Truth::False;
            }
            xs.iter()
                .zip(ys)
                .fold(Truth::True, |acc, (x, y)| acc.and(equal(x, y)))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            if xs.len() != ys.len() || xs.keys().any(|k| !ys.contains_key(k)) {
                return Truth::False;
            }
            xs.iter().fold(Truth::True, |acc, (k, x)| {
                acc.and(equal(x, &ys[k.as_str()]))
            })
        }
        // Different types: a coercing server may read one as the other.
        _ => Truth::Unknown,
    }
}

/// Deep equality that is certain (used where two values must be the same, e.g. tests).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    equal(a, b) == Truth::True
}

fn ordered(actual: &Value, limit: &Number, accept: impl Fn(Ordering) -> bool) -> Truth {
    match actual {
        Value::Number(n) => match compare_both(n, limit) {
            Some(o) => Truth::from_bool(accept(o)),
            None => Truth::Unknown,
        },
        _ => Truth::Unknown,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// Whether the condition certainly holds.
    fn holds(operator: &Operator, actual: Option<&Value>) -> bool {
        evaluate(operator, actual) == Truth::True
    }

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
        let re = std::sync::Arc::new(regex::Regex::new("^feat/").unwrap());
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

    #[test]
    fn values_a_lenient_server_coerces_are_unknown() {
        let gt = Operator::Gt(num(json!(1000)));
        assert_eq!(evaluate(&gt, Some(&json!("5000"))), Truth::Unknown);
        assert_eq!(evaluate(&gt, Some(&json!([5000]))), Truth::Unknown);
        assert_eq!(evaluate(&gt, Some(&json!(5000))), Truth::True);
        assert_eq!(evaluate(&gt, Some(&json!(5))), Truth::False);
        let live = Operator::Eq(json!(true));
        assert_eq!(evaluate(&live, Some(&json!("true"))), Truth::Unknown);
        assert_eq!(evaluate(&live, Some(&json!(1))), Truth::Unknown);
        assert_eq!(
            evaluate(&Operator::Neq(json!(true)), Some(&json!("true"))),
            Truth::Unknown
        );
        let list = Operator::In(vec![json!("usd"), json!("eur")]);
        assert_eq!(evaluate(&list, Some(&json!(5))), Truth::Unknown);
        assert_eq!(
            evaluate(
                &Operator::Regex(std::sync::Arc::new(regex::Regex::new("x").unwrap())),
                Some(&json!(5))
            ),
            Truth::Unknown
        );
        // Absent and null are definite.
        assert_eq!(evaluate(&gt, None), Truth::False);
        assert_eq!(evaluate(&gt, Some(&Value::Null)), Truth::False);
        assert_eq!(
            evaluate(&Operator::Neq(json!("x")), Some(&Value::Null)),
            Truth::True
        );
        assert_eq!(
            evaluate(&Operator::Exists(false), Some(&Value::Null)),
            Truth::True
        );
    }

    #[test]
    fn numbers_compare_exactly_and_as_doubles() {
        let big: Value = serde_json::from_str("18446744073709551617").unwrap();
        let limit: Value = serde_json::from_str("18446744073709551616").unwrap();
        // Exactly different, equal as doubles: readers disagree.
        assert_eq!(
            evaluate(&Operator::In(vec![limit.clone()]), Some(&big)),
            Truth::Unknown
        );
        assert_eq!(
            evaluate(&Operator::Gt(num(limit.clone())), Some(&big)),
            Truth::Unknown
        );
        let beyond: Value = serde_json::from_str("18446744073709600000").unwrap();
        assert_eq!(
            evaluate(&Operator::Gt(num(limit)), Some(&beyond)),
            Truth::True
        );
        let tiny: Value = serde_json::from_str("0.1000000000000000001").unwrap();
        assert_eq!(
            evaluate(&Operator::Lte(num(json!(0.1))), Some(&tiny)),
            Truth::Unknown
        );
        assert_eq!(
            evaluate(&Operator::Eq(json!(1)), Some(&json!(1.0))),
            Truth::True
        );
    }

    #[test]
    fn kleene_combinations() {
        use Truth::*;
        assert_eq!(Unknown.and(False), False);
        assert_eq!(Unknown.and(True), Unknown);
        assert_eq!(Unknown.or(True), True);
        assert_eq!(Unknown.or(False), Unknown);
        // `in` with one certain match is certain, whatever the other members are.
        let list = Operator::In(vec![json!(5), json!("x")]);
        assert_eq!(evaluate(&list, Some(&json!(5))), True);
    }
}
