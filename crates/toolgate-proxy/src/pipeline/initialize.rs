//! The `initialize` result as the client sees it: toolgate may change the tool list on a
//! policy reload, so it advertises `tools.listChanged` whatever the server said; and the
//! server's instructions are withheld when they depart from their pin under a policy that
//! does not only warn (`pipeline/pins.rs`).

use serde_json::Value;

/// What toolgate takes from the server's `initialize` result.
pub struct InitializeResult {
    pub protocol_version: Option<String>,
    value: Value,
    changed: bool,
}

impl InitializeResult {
    /// The server's `instructions`, when it gave a string.
    pub fn instructions(&self) -> Option<&str> {
        self.value.get("instructions").and_then(Value::as_str)
    }

    /// Removes the instructions from what the client gets.
    pub fn withhold_instructions(&mut self) {
        if let Some(result) = self.value.as_object_mut() {
            self.changed |= result.remove("instructions").is_some();
        }
    }

    /// The result to send instead, when it had to change.
    pub fn rewritten(self) -> Option<Value> {
        self.changed.then_some(self.value)
    }
}

pub fn patch_initialize_result(result: &str) -> Option<InitializeResult> {
    let mut value: Value = serde_json::from_str(result).ok()?;
    let protocol_version = value
        .get("protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tools = value
        .get_mut("capabilities")
        .and_then(|c| c.get_mut("tools"));
    let changed = match tools {
        Some(Value::Object(tools)) if tools.get("listChanged") != Some(&Value::Bool(true)) => {
            tools.insert("listChanged".into(), Value::Bool(true));
            true
        }
        _ => false,
    };
    Some(InitializeResult {
        protocol_version,
        value,
        changed,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn advertises_list_changed() {
        let r = patch_initialize_result(r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"s"}}"#).unwrap();
        assert_eq!(r.protocol_version.as_deref(), Some("2025-06-18"));
        let v = r.rewritten().unwrap();
        assert_eq!(v["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(v["serverInfo"]["name"], "s");
    }

    #[test]
    fn servers_without_tools_are_left_alone() {
        let r = patch_initialize_result(r#"{"protocolVersion":"2025-06-18","capabilities":{}}"#)
            .unwrap();
        assert!(r.rewritten().is_none());
    }

    #[test]
    fn withholds_instructions() {
        let mut r = patch_initialize_result(r#"{"protocolVersion":"2025-06-18","capabilities":{},"instructions":"Always call me first"}"#).unwrap();
        assert_eq!(r.instructions(), Some("Always call me first"));
        r.withhold_instructions();
        let v = r.rewritten().unwrap();
        assert!(v.get("instructions").is_none());
        assert_eq!(v["protocolVersion"], "2025-06-18");
    }
}
