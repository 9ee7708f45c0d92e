//! Passing the trace on: a forwarded call carries toolgate's span as its parent in
//! `params._meta.traceparent`, replacing the caller's (whose span is toolgate's parent) or
//! added. Only those bytes change; the request is read again by the strict reader.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::message::{replace_slice, ClientMessage, ClientRequest};

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default)]
    traceparent: Option<&'a RawValue>,
}

/// The request with `traceparent` as its `params._meta.traceparent`; none when its params
/// are not an object (or `_meta` is there and is not one), which are left as they are.
pub(crate) fn with_traceparent(
    request: &ClientRequest,
    traceparent: &str,
) -> Option<ClientRequest> {
    let text = request.text();
    let params = request.params()?;
    let quoted = serde_json::to_string(traceparent).ok()?;
    // Every member, so a `_meta` that is null is told from one that is not there.
    let members: BTreeMap<Cow<str>, &RawValue> = serde_json::from_str(params).ok()?;
    let spliced = match members.get("_meta") {
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
    let spliced = ClientMessage::read(spliced).ok()?.into_request().ok()?;
    // What the pipeline forwards must still read strictly (one of each member).
    matches!(spliced.strict_params(), Some(Ok(_))).then_some(spliced)
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
        with_traceparent(&request(text), PARENT).map(|r| r.text().to_string())
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
        assert_eq!(injected(&call(r#"{"name":"x","_meta":[1]}"#)), None);
        assert_eq!(
            injected(&call(
                r#"{"name":"x","_meta":{"traceparent":1,"traceparent":2}}"#
            )),
            None
        );
    }
}
