//! Every message toolgate itself writes to a client: denials, and the JSON-RPC errors for
//! what it refuses or cannot deliver. One place, so codes and texts stay consistent.

use serde_json::value::RawValue;
use serde_json::{json, Value};

/// JSON-RPC error codes toolgate answers with. The standard ones keep their meaning;
/// toolgate's own sit outside the reserved `-32768..-32000` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The line is not JSON.
    Parse = -32700,
    /// JSON, but not an acceptable message (ambiguous, malformed, a batch where none is allowed).
    InvalidRequest = -32600,
    /// A method no server behind the gateway serves.
    MethodNotFound = -32601,
    /// Unknown tool — also the answer for hidden tools, so they cannot be probed.
    InvalidParams = -32602,
    /// A call needed the counter store and it was unreachable (fail-closed).
    StateUnavailable = -31001,
    /// The server did not answer within the call timeout.
    UpstreamTimeout = -31002,
    /// The server went away with the call in flight.
    UpstreamGone = -31003,
    /// An HTTP upstream answered a request with an HTTP error, or could not be reached.
    UpstreamHttp = -31004,
}

/// The default prefix of a denial's text.
pub const DEFAULT_DENY_PREFIX: &str = "[POLICY DENIED]";

/// `_meta` key under which toolgate describes its decision.
pub const DECISION_META_KEY: &str = "dev.toolgate/decision";

/// A JSON-RPC error response. `id` is `None` when the request's id could not be read.
pub fn error_response(id: Option<&RawValue>, code: ErrorCode, message: &str) -> String {
    // The id is echoed as the client wrote it (it is valid JSON, read by the envelope).
    let id = id.map_or("null", RawValue::get);
    let error = json!({"code": code as i32, "message": message});
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{error}}}")
}

/// The answer to a call for a hidden (or, under `default: deny`, unlisted) tool: exactly what a
/// server says for a tool it does not have.
pub fn unknown_tool(id: &RawValue, tool: &str) -> String {
    error_response(
        Some(id),
        ErrorCode::InvalidParams,
        &unknown_tool_message(tool),
    )
}

/// The words of [`unknown_tool`].
pub fn unknown_tool_message(tool: &str) -> String {
    format!("Unknown tool: {tool}")
}

/// What the decision meta of a denial carries.
pub struct DenialMeta<'a> {
    pub decision: &'a str,
    pub rule: &'a str,
    pub policy_revision: &'a str,
    pub retry_after_ms: Option<u64>,
    pub extra: Option<Value>,
}

/// A denied call's answer: a normal tool result with `isError`, whose first text block tells
/// the model what happened (clients show the model that block and drop JSON-RPC error data).
pub fn denial_result(id: &RawValue, prefix: &str, message: &str, meta: &DenialMeta<'_>) -> String {
    let text = format!(
        "{prefix} {} (rule \"{}\"). The tool was not called.",
        message.trim_end(),
        meta.rule
    );
    let mut decision = json!({
        "decision": meta.decision,
        "rule": meta.rule,
        "policy": meta.policy_revision,
    });
    if let Some(ms) = meta.retry_after_ms {
        decision["retry_after_ms"] = json!(ms);
    }
    if let Some(Value::Object(extra)) = &meta.extra {
        for (k, v) in extra {
            decision[k] = v.clone();
        }
    }
    tool_error_result(id, &text, decision)
}

/// A tool result with `isError` and one text block, with toolgate's decision in `_meta`.
/// It is marked complete (`resultType`), as the 2026-07-28 era requires of every result;
/// clients of earlier versions ignore a member they do not know.
pub fn tool_error_result(id: &RawValue, text: &str, decision: Value) -> String {
    let result = json!({
        "content": [{"type": "text", "text": text}],
        "isError": true,
        "resultType": "complete",
        "_meta": {DECISION_META_KEY: decision},
    });
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{result}}}",
        id.get()
    )
}

/// `notifications/tools/list_changed`, sent when a reload changes what the client may see.
pub fn tools_list_changed() -> String {
    r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#.to_string()
}

/// `notifications/cancelled` for a call toolgate gave up on.
pub fn cancelled(upstream_id: u64, reason: &str) -> String {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": upstream_id, "reason": reason}})
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn denial_is_a_tool_result_with_the_rule() {
        let id: &RawValue = serde_json::from_str("42").unwrap();
        let meta = DenialMeta {
            decision: "deny",
            rule: "no writes",
            policy_revision: "abc",
            retry_after_ms: Some(1500),
            extra: None,
        };
        let text = denial_result(id, DEFAULT_DENY_PREFIX, "Writing is off.", &meta);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(
            v["result"]["content"][0]["text"],
            "[POLICY DENIED] Writing is off. (rule \"no writes\"). The tool was not called."
        );
        assert_eq!(
            v["result"]["_meta"][DECISION_META_KEY]["retry_after_ms"],
            1500
        );
        assert_eq!(v["result"]["_meta"][DECISION_META_KEY]["policy"], "abc");
    }

    #[test]
    fn hidden_tools_look_unknown() {
        let id: &RawValue = serde_json::from_str("\"x\"").unwrap();
        let v: Value = serde_json::from_str(&unknown_tool(id, "delete_repo")).unwrap();
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "Unknown tool: delete_repo");
        assert_eq!(v["id"], "x");
    }
}
