//! Every operator, through the whole pipeline (policy text → compile → decide): matches,
//! non-matches, missing arguments, type mismatches, and every argument path form.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decide, policy};
use serde_json::{json, Value};
use toolgate_policy::Decision;

/// Whether `arguments` pass one `evaluate` rule testing `path op value` (value as JSON).
fn holds_at(path: &str, op: &str, value: &str, arguments: Value) -> bool {
    let text = format!(
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        conditions:\n          - path: {path}\n            op: {op}\n            value: {value}\n"
    );
    match decide(&policy(&text), "t", arguments) {
        Decision::Allow(_) => true,
        Decision::Deny(d) => {
            assert_eq!(d.rule, "r");
            false
        }
        other => panic!("unexpected decision {other:?}"),
    }
}

/// `holds_at` on the argument `x`.
fn holds(op: &str, value: &str, x: Value) -> bool {
    holds_at("args.x", op, value, json!({ "x": x }))
}

/// `holds_at` when the call has no argument `x`.
fn holds_when_missing(op: &str, value: &str) -> bool {
    holds_at("args.x", op, value, json!({"y": 1}))
}

#[test]
fn eq_compares_typed_values_and_numbers_by_value() {
    assert!(holds("eq", "\"main\"", json!("main")));
    assert!(!holds("eq", "\"main\"", json!("Main")));
    assert!(holds("eq", "1", json!(1)));
    assert!(holds("eq", "1", json!(1.0)));
    assert!(holds("eq", "1.0", json!(1)));
    assert!(holds("eq", "0.5", json!(0.5)));
    assert!(holds("eq", "true", json!(true)));
    assert!(holds("eq", "null", Value::Null));
    assert!(holds("eq", "[1, \"a\"]", json!([1.0, "a"])));
    assert!(holds("eq", "{a: {b: 2}}", json!({"a": {"b": 2}})));
    assert!(!holds("eq", "{a: {b: 2}}", json!({"a": {"b": 2, "c": 3}})));
    assert!(!holds("eq", "[1, 2]", json!([2, 1])));
}

#[test]
fn eq_never_coerces_between_strings_and_numbers() {
    assert!(!holds("eq", "1", json!("1")));
    assert!(!holds("eq", "\"1\"", json!(1)));
    assert!(!holds("eq", "true", json!("true")));
    assert!(!holds("eq", "\"true\"", json!(true)));
    assert!(!holds("eq", "null", json!("null")));
}

/// A value of another type than the condition's cannot be evaluated (a coercing server may
/// read `"1"` as `1`), so a `require`-style rule fails whichever way the operator points.
#[test]
fn a_value_of_another_type_fails_require_rules_both_ways() {
    for (op, value, x) in [
        ("eq", "1", json!("1")),
        ("neq", "1", json!("1")),
        ("in", "[1, 2]", json!("1")),
        ("not_in", "[1, 2]", json!("1")),
        ("neq", "true", json!("false")),
        ("lte", "100", json!("5")),
        ("gte", "100", json!("500")),
    ] {
        assert!(!holds(op, value, x.clone()), "{op} {value} {x}");
    }
}

#[test]
fn neq_is_the_negation_of_eq_for_present_values() {
    assert!(holds("neq", "\"main\"", json!("dev")));
    assert!(!holds("neq", "\"main\"", json!("main")));
    assert!(!holds("neq", "5", json!(5.0)));
    // null is a value that equals only null.
    assert!(holds("neq", "\"x\"", Value::Null));
}

#[test]
fn in_and_not_in_test_membership_by_value() {
    assert!(holds("in", "[usd, eur]", json!("usd")));
    assert!(!holds("in", "[usd, eur]", json!("gbp")));
    assert!(holds("in", "[1, 2, 3]", json!(2.0)));
    assert!(!holds("in", "[1, 2, 3]", json!("2")));
    assert!(!holds("in", "[]", json!("usd")));
    assert!(holds("not_in", "[admin, root]", json!("alice")));
    assert!(!holds("not_in", "[admin, root]", json!("admin")));
    assert!(holds("not_in", "[]", json!("anything")));
}

#[test]
fn ordering_operators_compare_numbers_at_their_bounds() {
    assert!(holds("lt", "100", json!(99)));
    assert!(holds("lt", "100", json!(99.999)));
    assert!(!holds("lt", "100", json!(100)));
    assert!(!holds("lt", "100", json!(100.0)));
    assert!(holds("lte", "100", json!(100)));
    assert!(holds("lte", "100", json!(100.0)));
    assert!(!holds("lte", "100", json!(100.5)));
    assert!(holds("lte", "-1.5", json!(-2)));
    assert!(holds("gt", "0", json!(0.001)));
    assert!(!holds("gt", "0", json!(0)));
    assert!(!holds("gt", "0", json!(-0.0)));
    assert!(holds("gte", "0", json!(0)));
    assert!(holds("gte", "1", json!(u64::MAX)));
    assert!(holds("lt", "0", json!(i64::MIN)));
    assert!(holds("gte", "0.1", json!(0.1)));
}

#[test]
fn ordering_operators_fail_on_anything_but_a_number() {
    for op in ["lt", "lte", "gt", "gte"] {
        // A quoted number is a string: a numeric limit is not sidestepped by quoting.
        assert!(!holds(op, "100", json!("50")), "{op} on \"50\"");
        assert!(!holds(op, "100", json!("150")), "{op} on \"150\"");
        assert!(!holds(op, "100", json!(true)), "{op} on true");
        assert!(!holds(op, "100", Value::Null), "{op} on null");
        assert!(!holds(op, "100", json!([50])), "{op} on a list");
        assert!(!holds(op, "100", json!({"v": 50})), "{op} on an object");
    }
}

#[test]
fn regex_matches_strings_only_and_is_unanchored_unless_written_so() {
    assert!(holds("regex", "\"^feat/\"", json!("feat/login")));
    assert!(!holds("regex", "\"^feat/\"", json!("fix/feat/login")));
    assert!(holds("regex", "\"prod\"", json!("eu-prod-1")));
    assert!(!holds("regex", "\"^[a-z]+$\"", json!("abc1")));
    assert!(holds("regex", "\"^\\\\d{3}$\"", json!("123")));
    assert!(holds("regex", "\"^é+$\"", json!("éé")));
    assert!(!holds("regex", "\"1\"", json!(1)));
    assert!(!holds("regex", "\".*\"", Value::Null));
    assert!(!holds("regex", "\".*\"", json!(["a"])));
}

#[test]
fn contains_is_substring_for_strings_and_element_for_lists() {
    assert!(holds("contains", "test", json!("a test run")));
    assert!(!holds("contains", "test", json!("a TEST run")));
    assert!(holds("contains", "admin", json!(["user", "admin"])));
    assert!(!holds("contains", "adm", json!(["user", "admin"])));
    assert!(holds("contains", "2", json!([1, 2.0, 3])));
    assert!(!holds("contains", "2", json!(["2"])));
    assert!(!holds("contains", "2", json!("123")));
    assert!(!holds("contains", "x", json!({"x": 1})));
    assert!(!holds("contains", "x", json!(5)));
}

#[test]
fn exists_treats_null_as_absent() {
    assert!(holds("exists", "true", json!(0)));
    assert!(holds("exists", "true", json!("")));
    assert!(holds("exists", "true", json!(false)));
    assert!(!holds("exists", "true", Value::Null));
    assert!(holds("exists", "false", Value::Null));
    assert!(!holds("exists", "false", json!([])));
    assert!(holds_when_missing("exists", "false"));
    assert!(!holds_when_missing("exists", "true"));
}

#[test]
fn a_missing_argument_fails_every_operator_but_exists_false() {
    let cases = [
        ("eq", "1"),
        ("neq", "1"),
        ("in", "[1]"),
        ("not_in", "[1]"),
        ("lt", "1"),
        ("lte", "1"),
        ("gt", "1"),
        ("gte", "1"),
        ("regex", "\".*\""),
        ("contains", "a"),
        ("exists", "true"),
    ];
    for (op, value) in cases {
        assert!(!holds_when_missing(op, value), "{op} on a missing argument");
    }
    assert!(holds_when_missing("exists", "false"));
}

#[test]
fn calls_without_arguments_have_every_argument_missing() {
    assert!(!holds_at("args.x", "neq", "1", Value::Null));
    assert!(!holds_at("args.x", "not_in", "[1]", Value::Null));
    assert!(holds_at("args.x", "exists", "false", Value::Null));
    // Arguments that are not an object have no named members either.
    assert!(!holds_at("args.x", "neq", "1", json!([1, 2])));
    assert!(!holds_at("args.x", "neq", "1", json!("x")));
}

#[test]
fn nested_object_paths_walk_each_level() {
    let args = json!({"a": {"b": {"c": 7}}, "flat": 1});
    assert!(holds_at("args.a.b.c", "eq", "7", args.clone()));
    assert!(holds_at("args.a.b", "eq", "{c: 7}", args.clone()));
    assert!(!holds_at("args.a.b.d", "exists", "true", args.clone()));
    assert!(!holds_at("args.a.b.c.d", "exists", "true", args.clone()));
    assert!(!holds_at("args.flat.x", "exists", "true", args.clone()));
    assert!(holds_at("args.a.x.y", "exists", "false", args));
}

#[test]
fn array_index_paths_reach_list_elements() {
    let args = json!({"items": [{"id": "first"}, {"id": "second", "tags": ["x", "y"]}]});
    assert!(holds_at("args.items.0.id", "eq", "first", args.clone()));
    assert!(holds_at("args.items.1.id", "eq", "second", args.clone()));
    assert!(holds_at("args.items.1.tags.1", "eq", "y", args.clone()));
    assert!(holds_at("args.items.1.tags", "contains", "x", args.clone()));
    assert!(!holds_at("args.items.2.id", "exists", "true", args.clone()));
    assert!(!holds_at(
        "args.items.first.id",
        "exists",
        "true",
        args.clone()
    ));
    assert!(!holds_at("args.items.-1.id", "exists", "true", args));
}

#[test]
fn digit_segments_are_keys_in_objects() {
    let args = json!({"by_year": {"2024": {"total": 3}}});
    assert!(holds_at("args.by_year.2024.total", "eq", "3", args));
}
