//! `Mcp-Param-*` headers of the 2026-07-28 era (SEP-2243). A tool's input schema may mark an
//! argument with `x-mcp-header: <token>`; a client then mirrors that argument into an
//! `Mcp-Param-<token>` header, so intermediaries can route on it without reading the body.
//!
//! toolgate learns the annotations from the `tools/list` answers it relays and refuses a call
//! whose headers disagree with its arguments (`-32020`), for the same reason as a mismatched
//! `Mcp-Method` or `Mcp-Name`: a router that reads headers must never see a different call
//! from the one the server runs. A call to a tool toolgate has not listed yet is not checked
//! (there is nothing to check it against).
//!
//! Upstream, toolgate writes these headers itself from the arguments, like `Mcp-Method` and
//! `Mcp-Name`. Only for a tool it has not listed does it pass the client's own `Mcp-Param-*`
//! headers on, unchanged: they are the only ones the upstream can check against its schema.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use parking_lot::Mutex;
use serde_json::Value;

use crate::http::upstream::{decode_header_value, encode_header_value};

/// The schema keyword that names an argument's header.
const ANNOTATION: &str = "x-mcp-header";
/// Tools remembered at most (a server listing more is not checked beyond them).
const MAX_TOOLS: usize = 10_000;
/// How deep nested `properties` are followed.
const MAX_DEPTH: usize = 32;

/// One annotated argument: where it sits in `arguments`, its header token, its JSON type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParamHeader {
    path: Vec<String>,
    token: String,
    kind: String,
}

/// The annotated arguments of every tool seen in a `tools/list` answer.
#[derive(Default)]
pub(crate) struct ToolHeaders {
    by_tool: Mutex<HashMap<String, Arc<[ParamHeader]>>>,
}

impl ToolHeaders {
    /// Records the annotations of each tool in a `tools/list` answer (a JSON-RPC response).
    pub fn learn(&self, answer: &str) {
        let Ok(value) = serde_json::from_str::<Value>(answer) else {
            return;
        };
        let Some(tools) = value
            .get("result")
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let mut by_tool = self.by_tool.lock();
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            match tool.get("inputSchema").and_then(annotations) {
                Some(found) if !found.is_empty() => {
                    if by_tool.len() < MAX_TOOLS || by_tool.contains_key(name) {
                        by_tool.insert(name.to_string(), found.into());
                    }
                }
                // No annotations, or invalid ones (which conforming clients do not mirror).
                _ => {
                    by_tool.remove(name);
                }
            }
        }
    }

    /// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments; the reason when
    /// they disagree.
    pub fn check(
        &self,
        headers: &HeaderMap,
        tool: &str,
        arguments: Option<&Value>,
    ) -> Result<(), String> {
        let Some(params) = self.by_tool.lock().get(tool).cloned() else {
            return Ok(());
        };
        params
            .iter()
            .try_for_each(|p| check_one(headers, p, arguments))
    }
}

/// The `Mcp-Param-*` headers to send upstream with a `tools/call`: derived from its
/// arguments when toolgate knows the tool's annotations, else the client's own.
pub(crate) fn upstream_params(
    tools: &ToolHeaders,
    headers: &HeaderMap,
    tool: &str,
    arguments: Option<&Value>,
) -> Vec<(String, String)> {
    let known = tools.by_tool.lock().get(tool).cloned();
    match known {
        Some(params) => params
            .iter()
            .filter_map(|p| {
                let value = value_at(arguments, &p.path).filter(|v| !v.is_null())?;
                let rendered = render(value)?;
                Some((
                    format!("Mcp-Param-{}", p.token),
                    encode_header_value(&rendered),
                ))
            })
            .collect(),
        None => headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("mcp-param-"))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect(),
    }
}

fn check_one(
    headers: &HeaderMap,
    p: &ParamHeader,
    arguments: Option<&Value>,
) -> Result<(), String> {
    let header = format!("Mcp-Param-{}", p.token);
    let lower = header.to_ascii_lowercase();
    let mut values = headers.get_all(lower.as_str()).iter();
    let raw = values.next();
    if values.next().is_some() {
        return Err(format!("{header} header appears more than once"));
    }
    let raw = match raw.map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.trim()),
        Some(Err(_)) => return Err(format!("{header} header is not readable text")),
    };
    let argument = p.path.join(".");
    let value = value_at(arguments, &p.path).filter(|v| !v.is_null());
    let Some(value) = value else {
        return match raw {
            Some(_) => Err(format!(
                "{header} header is present but the argument {argument:?} is absent"
            )),
            None => Ok(()),
        };
    };
    let Some(rendered) = render(value) else {
        // Not a scalar: a conforming client sends no header for it.
        return match raw {
            Some(_) => Err(format!(
                "{header} header does not match the argument {argument:?}"
            )),
            None => Ok(()),
        };
    };
    let Some(raw) = raw else {
        return Err(format!(
            "{header} header is missing but the argument {argument:?} is present"
        ));
    };
    let Some(decoded) = decode_header_value(raw) else {
        return Err(format!("{header} header has a malformed base64 value"));
    };
    if matches(&p.kind, value, &rendered, &decoded) {
        Ok(())
    } else {
        Err(format!(
            "{header} header does not match the argument {argument:?}"
        ))
    }
}

fn value_at<'a>(arguments: Option<&'a Value>, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(arguments?, |node, key| node.as_object()?.get(key))
}

/// An argument as a client writes it into a header: `None` for what has no header form.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Header and argument agree: the same text, or for an integer argument the same number
/// (`42` and `42.0`).
fn matches(kind: &str, value: &Value, rendered: &str, decoded: &str) -> bool {
    if decoded == rendered {
        return true;
    }
    if kind != "integer" {
        return false;
    }
    let Some(wanted) = integral(value) else {
        return false;
    };
    // A canonical decimal (`-?[0-9]+(.[0-9]+)?`) whose fraction is all zeros.
    let (whole, fraction) = match decoded.split_once('.') {
        Some((_, "")) => return false,
        Some(parts) => parts,
        None => (decoded, ""),
    };
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b == b'0');
    canonical && whole.parse::<i128>().ok() == Some(wanted)
}

fn integral(value: &Value) -> Option<i128> {
    let n = value.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    let f = n.as_f64()?;
    // Only whole numbers well inside the exactly representable range compare numerically.
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i128)
}

/// The annotated arguments of an input schema, reached through `properties` only; `None` when
/// an annotation is invalid (not a header token, on a type other than string, integer or
/// boolean, or a token used twice), since conforming clients then do not use the tool's
/// headers at all.
fn annotations(schema: &Value) -> Option<Vec<ParamHeader>> {
    let mut found = Vec::new();
    walk(schema, &mut Vec::new(), &mut found, 0)?;
    let mut seen = std::collections::HashSet::new();
    for p in &found {
        if !seen.insert(p.token.to_ascii_lowercase()) {
            return None;
        }
    }
    Some(found)
}

fn walk(
    schema: &Value,
    path: &mut Vec<String>,
    found: &mut Vec<ParamHeader>,
    depth: usize,
) -> Option<()> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Some(());
    };
    if depth >= MAX_DEPTH {
        return Some(());
    }
    for (name, property) in properties {
        path.push(name.clone());
        if let Some(token) = property.get(ANNOTATION) {
            let token = token.as_str().filter(|t| is_token(t))?;
            let kind = property
                .get("type")
                .and_then(Value::as_str)
                .filter(|k| matches!(*k, "string" | "integer" | "boolean"))?;
            found.push(ParamHeader {
                path: path.clone(),
                token: token.to_string(),
                kind: kind.to_string(),
            });
        }
        walk(property, path, found, depth + 1)?;
        path.pop();
    }
    Some(())
}

/// An RFC 9110 token: the characters an HTTP field name may have.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn listed(schema: Value) -> ToolHeaders {
        let headers = ToolHeaders::default();
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "t", "inputSchema": schema},
        ]}});
        headers.learn(&answer.to_string());
        headers
    }

    fn region_tool() -> ToolHeaders {
        listed(json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}}},
        }}))
    }

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn matching_headers_pass_and_missing_or_different_ones_do_not() {
        let tools = region_tool();
        let args = json!({"region": "eu-west", "count": 3, "opts": {"dry": true}});
        let all = with(&[
            ("mcp-param-region", "eu-west"),
            ("Mcp-Param-Count", "3.0"),
            ("mcp-param-dry", "true"),
        ]);
        assert!(tools.check(&all, "t", Some(&args)).is_ok());
        let missing = with(&[("mcp-param-count", "3"), ("mcp-param-dry", "true")]);
        assert!(tools
            .check(&missing, "t", Some(&args))
            .unwrap_err()
            .contains("missing"));
        let other = with(&[
            ("mcp-param-region", "us-east"),
            ("mcp-param-count", "3"),
            ("mcp-param-dry", "true"),
        ]);
        assert!(tools.check(&other, "t", Some(&args)).is_err());
        let twice = with(&[
            ("mcp-param-region", "eu-west"),
            ("mcp-param-region", "eu-west"),
            ("mcp-param-count", "3"),
            ("mcp-param-dry", "true"),
        ]);
        assert!(tools.check(&twice, "t", Some(&args)).is_err());
    }

    #[test]
    fn base64_values_are_decoded_and_malformed_ones_refused() {
        let tools = region_tool();
        let args = json!({"region": "Hello"});
        let good = with(&[("mcp-param-region", "=?base64?SGVsbG8=?=")]);
        assert!(tools.check(&good, "t", Some(&args)).is_ok());
        for bad in ["=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?="] {
            let h = with(&[("mcp-param-region", bad)]);
            assert!(tools.check(&h, "t", Some(&args)).is_err(), "{bad}");
        }
        // Without the whole sentinel the value is literal text.
        let literal = json!({"region": "=?base64?SGVsbG8="});
        let h = with(&[("mcp-param-region", "=?base64?SGVsbG8=")]);
        assert!(tools.check(&h, "t", Some(&literal)).is_ok());
    }

    #[test]
    fn a_header_without_its_argument_is_refused() {
        let tools = region_tool();
        let h = with(&[("mcp-param-region", "eu")]);
        assert!(tools.check(&h, "t", Some(&json!({}))).is_err());
        assert!(tools
            .check(&HeaderMap::new(), "t", Some(&json!({})))
            .is_ok());
    }

    #[test]
    fn upstream_headers_are_derived_from_the_arguments() {
        let tools = region_tool();
        let args = json!({"region": "Zürich", "count": 3, "opts": {"dry": false}});
        let client = with(&[("mcp-param-region", "somewhere else")]);
        let mut derived = upstream_params(&tools, &client, "t", Some(&args));
        derived.sort();
        assert_eq!(
            derived,
            vec![
                ("Mcp-Param-Count".to_string(), "3".to_string()),
                ("Mcp-Param-Dry".to_string(), "false".to_string()),
                (
                    "Mcp-Param-Region".to_string(),
                    "=?base64?WsO8cmljaA==?=".to_string()
                ),
            ]
        );
        // A tool toolgate has not listed: the client's own headers go on.
        let passed = upstream_params(&tools, &client, "other", Some(&args));
        assert_eq!(
            passed,
            vec![("mcp-param-region".to_string(), "somewhere else".to_string())]
        );
    }

    #[test]
    fn unknown_tools_and_invalid_annotations_are_not_checked() {
        let tools = region_tool();
        let h = with(&[("mcp-param-region", "x")]);
        assert!(tools.check(&h, "other", Some(&json!({}))).is_ok());
        let invalid = listed(json!({"type": "object", "properties": {
            "a": {"type": "number", "x-mcp-header": "A"},
        }}));
        assert!(invalid.check(&h, "t", Some(&json!({}))).is_ok());
        let duplicate = listed(json!({"type": "object", "properties": {
            "a": {"type": "string", "x-mcp-header": "Same"},
            "b": {"type": "string", "x-mcp-header": "same"},
        }}));
        assert!(duplicate
            .check(&HeaderMap::new(), "t", Some(&json!({"a": "1"})))
            .is_ok());
    }
}
