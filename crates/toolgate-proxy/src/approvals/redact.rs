//! The view of a call's arguments that leaves the machine (webhooks, the SSE stream): enough
//! for a person to recognise the call, not its content.
//!
//! Top-level keys are kept; each value is replaced by its JSON type name (`"string"`,
//! `"number"`, `"object"`, `"array"`, `"null"`), except booleans and numbers whose absolute
//! value is below one million, which are kept as they are — flags and amounts are what a
//! person decides on ("refund 500?"), while long numbers are often account or card numbers.
//! Every string in the view is therefore a type name, never a value.

use serde_json::{Map, Value};

/// Numbers at or above this magnitude are shown as `"number"`.
pub const SMALL_NUMBER_LIMIT: f64 = 1_000_000.0;

/// Top-level keys shown at most; the rest are counted under `"…"`.
pub const MAX_KEYS: usize = 64;

pub fn redact_arguments(arguments: &Value) -> Value {
    let Value::Object(map) = arguments else {
        return Value::String(type_name(arguments).to_string());
    };
    let mut view = Map::new();
    for (key, value) in map.iter().take(MAX_KEYS) {
        view.insert(key.clone(), redact_value(value));
    }
    if map.len() > MAX_KEYS {
        view.insert(
            "…".to_string(),
            Value::String(format!("{} more keys", map.len() - MAX_KEYS)),
        );
    }
    Value::Object(view)
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::Bool(_) => value.clone(),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() < SMALL_NUMBER_LIMIT) => {
            value.clone()
        }
        other => Value::String(type_name(other).to_string()),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_keys_flags_and_small_numbers_only() {
        let view = redact_arguments(&json!({
            "path": "~/.ssh/id_rsa",
            "amount": 499.5,
            "card": 4111111111111111u64,
            "force": true,
            "tags": ["a"],
            "meta": {"x": 1},
            "none": null,
            "negative": -20
        }));
        assert_eq!(
            view,
            json!({
                "path": "string",
                "amount": 499.5,
                "card": "number",
                "force": true,
                "tags": "array",
                "meta": "object",
                "none": "null",
                "negative": -20
            })
        );
        assert_eq!(redact_arguments(&json!("secret")), json!("string"));
    }

    #[test]
    fn caps_the_number_of_keys() {
        let many: Map<String, Value> = (0..100).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let view = redact_arguments(&Value::Object(many));
        let map = view.as_object().unwrap_or_else(|| unreachable!());
        assert_eq!(map.len(), MAX_KEYS + 1);
        assert_eq!(map["…"], json!("36 more keys"));
    }
}
