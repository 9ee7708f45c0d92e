//! The classifier's inputs: one MCP tool definition ([`ToolDef`]) and what is
//! known about the server that offers it ([`Context`]).
//!
//! `ToolDef` is owned so that a parsed `tools/list` document can be kept and
//! re-classified without borrowing from the JSON text it came from.

use serde_json::{Map, Value};

use crate::error::ClassifyError;

/// One tool as advertised by an MCP server in `tools/list`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolDef {
    /// The tool's programmatic name, e.g. `delete_repository` or `fs.read_file`.
    pub name: String,
    /// Human-readable title, from `title` or else `annotations.title`.
    pub title: Option<String>,
    /// Free-text description written by the server author.
    pub description: Option<String>,
    /// The JSON Schema of the tool's arguments (`inputSchema`).
    pub input_schema: Option<Value>,
    /// MCP annotations such as `readOnlyHint`; treated as untrusted hints.
    pub annotations: Option<Value>,
}

impl ToolDef {
    /// A tool with only a name; add the rest with the `with_*` methods.
    pub fn new(name: impl Into<String>) -> Self {
        ToolDef {
            name: name.into(),
            ..ToolDef::default()
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the `inputSchema`.
    pub fn with_input_schema(mut self, schema: Value) -> Self {
        self.input_schema = Some(schema);
        self
    }

    /// Sets the annotations object.
    pub fn with_annotations(mut self, annotations: Value) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// Reads one tool object as found in a `tools/list` result.
    ///
    /// `name` is required and must be a non-empty string; `title` and
    /// `description` must be strings when present; `inputSchema` and
    /// `annotations` must be objects when present. Unknown fields are ignored.
    pub fn from_json(value: &Value) -> Result<ToolDef, ClassifyError> {
        Self::from_json_at(value, "tool")
    }

    /// Like [`ToolDef::from_json`], naming `location` in any error.
    pub(crate) fn from_json_at(value: &Value, location: &str) -> Result<ToolDef, ClassifyError> {
        let invalid = |problem: String| ClassifyError::InvalidTool {
            location: location.to_string(),
            problem,
        };
        let fields = value
            .as_object()
            .ok_or_else(|| invalid(format!("expected an object, found {}", json_kind(value))))?;

        let name = match fields.get("name") {
            None | Some(Value::Null) => return Err(invalid("missing \"name\"".to_string())),
            Some(Value::String(name)) if name.trim().is_empty() => {
                return Err(invalid("\"name\" is empty".to_string()))
            }
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "\"name\" must be a string, found {}",
                    json_kind(other)
                )))
            }
        };
        let annotations = optional_object(fields, "annotations").map_err(invalid)?;
        let title = match optional_string(fields, "title").map_err(invalid)? {
            Some(title) => Some(title),
            None => annotations
                .as_ref()
                .and_then(|annotations| annotations.get("title"))
                .and_then(Value::as_str)
                .map(str::to_string),
        };

        Ok(ToolDef {
            name,
            title,
            description: optional_string(fields, "description").map_err(invalid)?,
            input_schema: optional_object(fields, "inputSchema").map_err(invalid)?,
            annotations,
        })
    }
}

/// What is known about the server offering a tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The server's name, e.g. `github` or `stripe`; its words are stripped
    /// from tool names so `asana_get_task` reads as "get task".
    pub server_name: Option<String>,
    /// Names of the other tools on the same server.
    pub sibling_names: Vec<String>,
}

impl Context {
    /// A context with a server name and sibling tool names.
    pub fn new(server_name: Option<&str>, sibling_names: Vec<String>) -> Self {
        Context {
            server_name: server_name.map(str::to_string),
            sibling_names,
        }
    }
}

/// A short English name for a JSON value's type, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn optional_string(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!(
            "\"{key}\" must be a string, found {}",
            json_kind(other)
        )),
    }
}

fn optional_object(fields: &Map<String, Value>, key: &str) -> Result<Option<Value>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(object @ Value::Object(_)) => Ok(Some(object.clone())),
        Some(other) => Err(format!(
            "\"{key}\" must be an object, found {}",
            json_kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn reads_all_fields() {
        let tool = ToolDef::from_json(&json!({
            "name": "delete_file",
            "title": "Delete file",
            "description": "Deletes a file.",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
            "annotations": {"destructiveHint": true}
        }))
        .unwrap();
        assert_eq!(tool.name, "delete_file");
        assert_eq!(tool.title.as_deref(), Some("Delete file"));
        assert_eq!(tool.description.as_deref(), Some("Deletes a file."));
        assert!(tool.input_schema.is_some());
        assert!(tool.annotations.is_some());
    }

    #[test]
    fn title_falls_back_to_annotations_title() {
        let tool =
            ToolDef::from_json(&json!({"name": "x", "annotations": {"title": "Ex"}})).unwrap();
        assert_eq!(tool.title.as_deref(), Some("Ex"));
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (json!({"description": "no name"}), "tool: missing \"name\""),
            (
                json!({"name": 3}),
                "tool: \"name\" must be a string, found a number",
            ),
            (json!({"name": " "}), "tool: \"name\" is empty"),
            (json!("get_x"), "tool: expected an object, found a string"),
            (
                json!({"name": "x", "description": ["a"]}),
                "tool: \"description\" must be a string, found an array",
            ),
            (
                json!({"name": "x", "inputSchema": "{}"}),
                "tool: \"inputSchema\" must be an object, found a string",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ToolDef::from_json(&input).unwrap_err().to_string(),
                expected
            );
        }
    }
}
