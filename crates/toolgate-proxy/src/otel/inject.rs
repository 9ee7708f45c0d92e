//! Passing the trace on: a forwarded call carries toolgate's span as its parent in
//! `params._meta.traceparent`, replacing the caller's (whose span is toolgate's parent) or
//! added. Only those bytes change.
//!
//! The result reads strictly by construction, so it is not read strictly again (that second
//! read was half the cost of tracing a call): the request's own params read strictly (one of
//! each member: checked, from the reading the pipeline already made), and the splice either
//! replaces the value of `_meta`'s one `traceparent`, or adds `traceparent` to a `_meta` that
//! has none, or adds `_meta` to params that have none — and not when a member that folds to
//! the name set (`_Meta`, `TraceParent`) is there. No member is duplicated or folds together
//! with another, and no other byte moves. The tests read every result strictly.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use toolgate_policy::fold::same_member;

use crate::message::{replace_slice, ClientMessage, ClientRequest};

/// The params' `_meta`, if the member is there (`null` included).
#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, rename = "_meta", default, deserialize_with = "present")]
    meta: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default)]
    traceparent: Option<&'a RawValue>,
}

/// A member that is there, whatever its value (`Option`'s own reading takes `null` for
/// absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The request with `traceparent` as its `params._meta.traceparent`; none when its params
/// are not an object (or `_meta` is there and is not one), which are left as they are.
pub(crate) fn with_traceparent(
    request: &ClientRequest,
    traceparent: &str,
) -> Option<ClientRequest> {
    let text = request.text();
    let params = request.params()?;
    let Some(Ok(Value::Object(strict))) = request.strict_params() else {
        return None;
    };
    // A member that folds to a name the splice sets, without being it (`_Meta`,
    // `TraceParent`), would sit beside the one set, and the result would no longer read
    // strictly: such requests are left as they are.
    let folds_beside = |object: &Map<String, Value>, name: &str| {
        object.keys().any(|k| k != name && same_member(k, name))
    };
    if folds_beside(strict, "_meta") {
        return None;
    }
    if let Some(Value::Object(meta)) = strict.get("_meta") {
        if folds_beside(meta, "traceparent") {
            return None;
        }
    }
    let quoted = serde_json::to_string(traceparent).ok()?;
    let members: Params = serde_json::from_str(params).ok()?;
    let spliced = match members.meta {
        Some(meta) => {
            let meta_text = meta.get();
            if !meta_text.starts_with('{') {
                return None;
            }
            let fields: Meta = serde_json::from_str(meta_text).ok()?;
            match fields.traceparent {
                Some(old) => replace_slice(text, old.get(), &quoted)?,
                None => insert_first(text, meta_text, &format!("\"traceparent\":{quoted}"))?,
            }
        }
        None => {
            if !params.starts_with('{') {
                return None;
            }
            let member = format!("\"_meta\":{{\"traceparent\":{quoted}}}");
            insert_first(text, params, &member)?
        }
    };
    ClientMessage::read(spliced).ok()?.into_request().ok()
}

/// `text` with `member` made the first member of `object` (a slice of `text` that starts
/// with `{`).
fn insert_first(text: &str, object: &str, member: &str) -> Option<String> {
    let empty = object[1..].trim_start().starts_with('}');
    let open = &object[..1];
    let new = if empty {
        format!("{{{member}")
    } else {
        format!("{{{member},")
    };
    replace_slice(text, open, &new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn request(text: &str) -> ClientRequest {
        ClientMessage::read(text.to_string())
            .expect("reads")
            .into_request()
            .expect("request")
    }

    fn injected(text: &str) -> Option<String> {
        let injected = with_traceparent(&request(text), PARENT)?;
        // What is forwarded reads strictly, one of each member.
        assert!(
            matches!(injected.strict_params(), Some(Ok(_))),
            "{}",
            injected.text()
        );
        Some(injected.text().to_string())
    }

    #[test]
    fn replaces_adds_or_leaves_alone() {
        let call = |params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
        };
        assert_eq!(
            injected(&call(
                r#"{"name":"x","_meta":{"traceparent":"00-aa","progressToken":1}}"#
            )),
            Some(call(&format!(
                r#"{{"name":"x","_meta":{{"traceparent":"{PARENT}","progressToken":1}}}}"#
            )))
        );
        assert_eq!(
            injected(&call(r#"{"name":"x","_meta":{"progressToken":1}}"#)),
            Some(call(&format!(
                r#"{{"name":"x","_meta":{{"traceparent":"{PARENT}","progressToken":1}}}}"#
            )))
        );
        assert_eq!(
            injected(&call(r#"{"name":"x","_meta":{ }}"#)),
            Some(call(&format!(
                r#"{{"name":"x","_meta":{{"traceparent":"{PARENT}" }}}}"#
            )))
        );
        assert_eq!(
            injected(&call(r#"{"name":"x","arguments":{"a":1}}"#)),
            Some(call(&format!(
                r#"{{"_meta":{{"traceparent":"{PARENT}"}},"name":"x","arguments":{{"a":1}}}}"#
            )))
        );
        assert_eq!(injected(&call(r#"{"name":"x","_meta":null}"#)), None);
        // Inserting beside a member that folds to the same name would fold together.
        assert_eq!(injected(&call(r#"{"name":"x","_Meta":{"a":1}}"#)), None);
        assert_eq!(
            injected(&call(r#"{"name":"x","_meta":{"TraceParent":"00-aa"}}"#)),
            None
        );
        assert_eq!(injected(&call(r#"{"name":"x","_meta":[1]}"#)), None);
        assert_eq!(
            injected(&call(
                r#"{"name":"x","_meta":{"traceparent":1,"traceparent":2}}"#
            )),
            None
        );
    }
}

/// Properties of both request rewrites (this one, and the client names' `inbound`): whatever
/// the params look like, the rewritten request reads strictly and differs from the original
/// in the one member it sets, and nowhere else.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::aggregate::ClientNames;

    /// A JSON value as text with arbitrary whitespace around its tokens.
    fn gap(gaps: &[u8], at: &mut usize) -> String {
        *at += 1;
        let width = gaps.get(*at % gaps.len().max(1)).copied().unwrap_or(0) % 3;
        " ".repeat(usize::from(width))
    }

    fn spaced(value: &Value, gaps: &[u8], at: &mut usize) -> String {
        match value {
            Value::Object(map) => {
                let mut members = Vec::new();
                for (k, v) in map {
                    let key = serde_json::to_string(k).expect("a key");
                    let (before, after) = (gap(gaps, at), gap(gaps, at));
                    let value = spaced(v, gaps, at);
                    members.push(format!("{before}{key}{after}:{value}{}", gap(gaps, at)));
                }
                format!("{{{}{}}}", members.join(","), gap(gaps, at))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(|v| spaced(v, gaps, at)).collect();
                format!("[{}]", items.join(","))
            }
            other => other.to_string(),
        }
    }

    fn params() -> impl Strategy<Value = Value> {
        let name = prop_oneof![
            "[a-z_é\"\\\\]{0,8}".prop_map(Value::String),
            Just(Value::from(7)),
        ];
        let meta = prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!([1]))),
            Just(Some(json!({}))),
            Just(Some(json!({"progressToken": 3}))),
            "[0-9a-f-]{0,12}".prop_map(|t| Some(json!({"traceparent": t, "x": {"y": [1, 2]}}))),
            Just(Some(json!({"traceparent": 5}))),
            Just(Some(json!({"TraceParent": "00-aa"}))),
        ];
        let arguments = prop_oneof![
            Just(None),
            Just(Some(json!({}))),
            Just(Some(json!({"n": 1.5, "s": "é\n", "name": "inner"}))),
        ];
        let shapes = (any::<bool>(), any::<bool>());
        (name, meta, arguments, shapes).prop_map(
            |(name, meta, arguments, (name_last, meta_key_folded))| {
                let mut map = Map::new();
                if !name_last {
                    map.insert("name".into(), name.clone());
                }
                if let Some(meta) = meta {
                    let key = if meta_key_folded { "_Meta" } else { "_meta" };
                    map.insert(key.into(), meta);
                }
                if let Some(arguments) = arguments {
                    map.insert("arguments".into(), arguments);
                }
                if name_last {
                    map.insert("name".into(), name);
                }
                Value::Object(map)
            },
        )
    }

    fn request_with(params: &Value, gaps: &[u8]) -> ClientRequest {
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}}"#,
            spaced(params, gaps, &mut 0)
        );
        ClientMessage::read(text)
            .expect("reads")
            .into_request()
            .expect("a request")
    }

    fn params_of(request: &ClientRequest) -> Value {
        match request.strict_params() {
            Some(Ok(params)) => params.clone(),
            other => panic!("the rewritten request must read strictly: {other:?}"),
        }
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    proptest! {
        #[test]
        fn the_traceparent_is_the_only_change(params in params(), gaps in proptest::collection::vec(any::<u8>(), 1..16)) {
            let request = request_with(&params, &gaps);
            let meta = params.get("_meta");
            match with_traceparent(&request, PARENT) {
                Some(out) => {
                    let mut expected = params.clone();
                    let meta = expected
                        .as_object_mut()
                        .expect("an object")
                        .entry("_meta")
                        .or_insert_with(|| json!({}));
                    meta["traceparent"] = Value::String(PARENT.into());
                    prop_assert_eq!(params_of(&out), expected);
                }
                None => {
                    // Left alone only when `_meta` is not an object, or a member folds to a
                    // name the splice would set.
                    let folds = params.get("_Meta").is_some()
                        || meta.is_some_and(|m| m.get("TraceParent").is_some());
                    prop_assert!(meta.is_some_and(|m| !m.is_object()) || folds);
                }
            }
        }

        #[test]
        fn a_renamed_call_differs_only_in_its_name(params in params(), gaps in proptest::collection::vec(any::<u8>(), 1..16)) {
            let request = request_with(&params, &gaps);
            let original = request.text().to_string();
            let out = ClientNames::one_server("files").inbound(request);
            match params.get("name").and_then(Value::as_str) {
                Some(name) => {
                    let mut expected = params.clone();
                    expected["name"] = Value::String(format!("files__{name}"));
                    prop_assert_eq!(params_of(&out), expected);
                }
                None => prop_assert_eq!(out.text(), original),
            }
        }
    }
}
