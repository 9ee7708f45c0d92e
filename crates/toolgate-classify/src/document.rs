//! Reading a whole list of tools from the JSON shapes people actually have
//! on disk: a `tools/list` result, a captured JSON-RPC response, or a bare
//! array. Errors name the JSON path of the offending tool.

use serde_json::Value;

use crate::error::ClassifyError;
use crate::tool::{json_kind, ToolDef};

/// Parses a tools document.
///
/// Accepted shapes:
/// - `{"tools": [...]}` — the result of `tools/list`;
/// - `{"result": {"tools": [...]}}` — a whole JSON-RPC response;
/// - `[...]` — a plain array of tool objects.
///
/// ```
/// let tools = toolgate_classify::parse_tools_document(
///     r#"{"tools": [{"name": "get_weather", "description": "Get the forecast"}]}"#,
/// )?;
/// assert_eq!(tools[0].name, "get_weather");
/// # Ok::<(), toolgate_classify::ClassifyError>(())
/// ```
pub fn parse_tools_document(json: &str) -> Result<Vec<ToolDef>, ClassifyError> {
    let document: Value = serde_json::from_str(json)
        .map_err(|error| ClassifyError::InvalidJson(error.to_string()))?;
    let (tools, path) = locate_tool_array(&document)?;
    tools
        .iter()
        .enumerate()
        .map(|(index, tool)| ToolDef::from_json_at(tool, &format!("{path}[{index}]")))
        .collect()
}

/// Finds the array of tools and the JSON path used to name its elements.
fn locate_tool_array(document: &Value) -> Result<(&Vec<Value>, &'static str), ClassifyError> {
    match document {
        Value::Array(tools) => Ok((tools, "tools")),
        Value::Object(fields) => {
            if let Some(tools) = fields.get("tools") {
                return expect_array(tools, "tools").map(|tools| (tools, "tools"));
            }
            if let Some(result) = fields.get("result") {
                let tools = result
                    .get("tools")
                    .ok_or_else(|| ClassifyError::InvalidTool {
                        location: "result".to_string(),
                        problem: "missing \"tools\"".to_string(),
                    })?;
                return expect_array(tools, "result.tools").map(|tools| (tools, "result.tools"));
            }
            if let Some(error) = fields.get("error") {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_string);
                return Err(ClassifyError::RpcError(message));
            }
            Err(ClassifyError::NotAToolsDocument {
                found: "an object without \"tools\" or \"result\"".to_string(),
            })
        }
        other => Err(ClassifyError::NotAToolsDocument {
            found: json_kind(other).to_string(),
        }),
    }
}

fn expect_array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, ClassifyError> {
    value.as_array().ok_or_else(|| ClassifyError::InvalidTool {
        location: path.to_string(),
        problem: format!("expected an array of tools, found {}", json_kind(value)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn accepts_the_three_shapes() {
        let tool = r#"{"name": "get_x"}"#;
        for document in [
            format!(r#"{{"tools": [{tool}]}}"#),
            format!(r#"{{"jsonrpc": "2.0", "id": 1, "result": {{"tools": [{tool}]}}}}"#),
            format!("[{tool}]"),
        ] {
            let tools = parse_tools_document(&document).unwrap();
            assert_eq!(tools.len(), 1);
            assert_eq!(tools[0].name, "get_x");
        }
    }

    #[test]
    fn errors_point_at_the_offending_tool() {
        let document =
            r#"{"tools": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"title": "d"}]}"#;
        assert_eq!(
            parse_tools_document(document).unwrap_err().to_string(),
            "tools[3]: missing \"name\""
        );
        let response = r#"{"result": {"tools": [{"name": 7}]}}"#;
        assert_eq!(
            parse_tools_document(response).unwrap_err().to_string(),
            "result.tools[0]: \"name\" must be a string, found a number"
        );
    }

    #[test]
    fn explains_wrong_shapes() {
        let cases = [
            ("{", "not valid JSON"),
            ("42", "found a number"),
            (r#"{"foo": 1}"#, "an object without \"tools\""),
            (
                r#"{"tools": {}}"#,
                "tools: expected an array of tools, found an object",
            ),
            (r#"{"result": {}}"#, "result: missing \"tools\""),
            (
                r#"{"error": {"code": -32601, "message": "Method not found"}}"#,
                "Method not found",
            ),
        ];
        for (document, expected) in cases {
            let message = parse_tools_document(document).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
}
