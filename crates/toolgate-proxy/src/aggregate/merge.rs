//! What the client sees of many servers as one: the merged `initialize` result and merged
//! listing pages.

use serde_json::{json, Map, Value};

/// The four listings merged across servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listing {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl Listing {
    pub fn of(method: &str) -> Option<Listing> {
        Some(match method {
            "tools/list" => Listing::Tools,
            "prompts/list" => Listing::Prompts,
            "resources/list" => Listing::Resources,
            "resources/templates/list" => Listing::Templates,
            _ => return None,
        })
    }

    pub fn method(self) -> &'static str {
        match self {
            Listing::Tools => "tools/list",
            Listing::Prompts => "prompts/list",
            Listing::Resources => "resources/list",
            Listing::Templates => "resources/templates/list",
        }
    }

    /// The result member that holds the items.
    pub fn items_key(self) -> &'static str {
        match self {
            Listing::Tools => "tools",
            Listing::Prompts => "prompts",
            Listing::Resources => "resources",
            Listing::Templates => "resourceTemplates",
        }
    }

    /// The capability a server must have for the listing to be asked of it.
    pub fn capability(self) -> &'static str {
        match self {
            Listing::Tools => "tools",
            Listing::Prompts => "prompts",
            Listing::Resources | Listing::Templates => "resources",
        }
    }

    /// The notification that tells the client the listing changed.
    pub fn changed_notification(self) -> &'static str {
        match self {
            Listing::Tools => "notifications/tools/list_changed",
            Listing::Prompts => "notifications/prompts/list_changed",
            Listing::Resources | Listing::Templates => "notifications/resources/list_changed",
        }
    }

    /// Tools and prompts are named; resources are addressed by URI, which is not renamed.
    fn renames(self) -> bool {
        matches!(self, Listing::Tools | Listing::Prompts)
    }
}

/// The longest tool name Claude's clients (and others) accept: `^[a-zA-Z0-9_-]{1,64}$`.
const CLIENT_NAME_LIMIT: usize = 64;

/// One server's page: its items (renamed into the aggregated view) and its next cursor.
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<String>,
}

/// Reads a server's listing result. Items without a string name (for tools and prompts)
/// are left out: they could not be called by any name.
pub fn page_of(listing: Listing, server: &str, mut result: Value) -> Page {
    let next = result
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_string);
    let items = match result.get_mut(listing.items_key()).map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let items = if listing.renames() {
        items
            .into_iter()
            .filter_map(|mut item| {
                let name = item.get("name")?.as_str()?;
                let renamed = toolgate_policy::gateway_config::aggregated_name(server, name);
                if renamed.len() > CLIENT_NAME_LIMIT {
                    tracing::warn!(
                        tool = %renamed,
                        "longer than the {CLIENT_NAME_LIMIT} characters many clients accept in a \
                         tool name; a shorter server name in the gateway config helps"
                    );
                }
                item["name"] = Value::String(renamed);
                Some(item)
            })
            .collect()
    } else {
        items
    };
    Page { items, next }
}

/// The `initialize` result the client gets: what the servers that answered can do,
/// together, their instructions labelled by server, and toolgate as the server.
pub fn initialize_result(requested: Option<&str>, answers: &[(String, Value)]) -> Value {
    let mut capabilities = Map::new();
    capabilities.insert("tools".into(), json!({"listChanged": true}));
    let has = |key: &str| {
        answers
            .iter()
            .any(|(_, r)| r.pointer(&format!("/capabilities/{key}")).is_some())
    };
    if has("prompts") {
        capabilities.insert("prompts".into(), json!({"listChanged": true}));
    }
    if has("resources") {
        let subscribe = answers.iter().any(|(_, r)| {
            r.pointer("/capabilities/resources/subscribe") == Some(&Value::Bool(true))
        });
        capabilities.insert(
            "resources".into(),
            json!({"listChanged": true, "subscribe": subscribe}),
        );
    }
    for key in ["logging", "completions"] {
        if has(key) {
            capabilities.insert(key.into(), json!({}));
        }
    }
    let versions: Vec<&str> = answers
        .iter()
        .filter_map(|(_, r)| r.get("protocolVersion")?.as_str())
        .collect();
    let version = match requested {
        Some(v) if versions.contains(&v) => v,
        _ => versions
            .first()
            .copied()
            .unwrap_or(crate::tool_listing::CLIENT_PROTOCOL_VERSION),
    };
    let instructions: Vec<String> = answers
        .iter()
        .filter_map(|(server, r)| {
            let text = r.get("instructions")?.as_str()?.trim();
            (!text.is_empty()).then(|| format!("[{server}] {text}"))
        })
        .collect();
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": "toolgate", "version": env!("CARGO_PKG_VERSION")},
    });
    if !instructions.is_empty() {
        result["instructions"] = Value::String(instructions.join("\n\n"));
    }
    result
}

/// The `server/discover` result a sessionless client gets: what the servers that answered
/// theirs can do, together (as `initialize_result` merges it), and the versions every one
/// of them supports, in the first one's order.
pub fn discover_result(answers: &[(String, Value)]) -> Value {
    let merged = initialize_result(None, answers);
    let versions_of = |r: &Value| -> Vec<String> {
        let listed = r.get("supportedVersions").and_then(Value::as_array);
        let strings = listed.into_iter().flatten().filter_map(Value::as_str);
        strings.map(str::to_string).collect()
    };
    let mut versions = answers
        .first()
        .map(|(_, r)| versions_of(r))
        .unwrap_or_default();
    for (_, answer) in answers.iter().skip(1) {
        let theirs = versions_of(answer);
        versions.retain(|v| theirs.contains(v));
    }
    let mut result = json!({
        "supportedVersions": versions,
        "capabilities": merged["capabilities"],
    });
    if let Some(instructions) = merged.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_rename_tools_and_keep_uris() {
        let page = page_of(
            Listing::Tools,
            "files",
            json!({"tools": [{"name": "read"}, {"title": "nameless"}], "nextCursor": "2"}),
        );
        assert_eq!(page.items, vec![json!({"name": "files__read"})]);
        assert_eq!(page.next.as_deref(), Some("2"));
        let page = page_of(
            Listing::Resources,
            "files",
            json!({"resources": [{"uri": "file:///a", "name": "a"}]}),
        );
        assert_eq!(page.items[0]["name"], "a");
        assert!(page.next.is_none());
    }

    #[test]
    fn initialize_merges_what_servers_can_do() {
        let answers = vec![
            (
                "a".to_string(),
                json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                       "instructions": "Use a."}),
            ),
            (
                "b".to_string(),
                json!({"protocolVersion": "2025-03-26",
                       "capabilities": {"prompts": {}, "resources": {"subscribe": true}, "logging": {}}}),
            ),
        ];
        let merged = initialize_result(Some("2025-03-26"), &answers);
        assert_eq!(merged["protocolVersion"], "2025-03-26");
        assert_eq!(merged["capabilities"]["resources"]["subscribe"], true);
        assert!(merged["capabilities"].get("logging").is_some());
        assert!(merged["capabilities"].get("completions").is_none());
        assert_eq!(merged["instructions"], "[a] Use a.");
        assert_eq!(
            initialize_result(Some("1999-01-01"), &answers)["protocolVersion"],
            "2025-06-18"
        );
    }

    #[test]
    fn discover_keeps_the_versions_every_server_supports() {
        let answers = vec![
            (
                "a".to_string(),
                json!({"supportedVersions": ["2026-07-28", "2027-01-01"],
                       "capabilities": {"tools": {}}, "instructions": "Use a."}),
            ),
            (
                "b".to_string(),
                json!({"supportedVersions": ["2027-01-01", "2026-07-28"],
                       "capabilities": {"prompts": {}}}),
            ),
        ];
        let merged = discover_result(&answers);
        assert_eq!(
            merged["supportedVersions"],
            json!(["2026-07-28", "2027-01-01"])
        );
        assert!(merged["capabilities"].get("prompts").is_some());
        assert_eq!(merged["instructions"], "[a] Use a.");
        let (one, _) = answers.split_at(1);
        let without_b = [
            one[0].clone(),
            (
                "c".to_string(),
                json!({"supportedVersions": ["2027-01-01"]}),
            ),
        ];
        assert_eq!(
            discover_result(&without_b)["supportedVersions"],
            json!(["2027-01-01"])
        );
        assert!(merged.get("protocolVersion").is_none());
    }
}
