//! Filtering a `tools/list` result: hidden and default-denied tools leave every page, and
//! everything else in the result — `nextCursor`, `_meta`, fields toolgate does not know —
//! stays as the server wrote it.

use serde_json::Value;
use toolgate_policy::Policy;

/// What filtering found: the names the server listed on this page, and the result to send
/// (`None` when nothing was removed, so the original bytes can be forwarded).
pub struct FilteredPage {
    pub listed: Vec<String>,
    pub rewritten: Option<Value>,
}

/// Filters one page of a `tools/list` result (read once by the caller, which may also have
/// classified its tools).
pub fn filter_tools_page(value: Value, policy: &Policy) -> Option<FilteredPage> {
    filter_tools_page_hiding(value, policy, |_| false)
}

/// [`filter_tools_page`], also hiding the tools `also_hidden` names (poisoned definitions).
pub fn filter_tools_page_hiding(
    mut value: Value,
    policy: &Policy,
    also_hidden: impl Fn(&str) -> bool,
) -> Option<FilteredPage> {
    let tools = value.get_mut("tools")?.as_array_mut()?;
    let listed: Vec<String> = tools
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let before = tools.len();
    // A tool entry without a string name cannot be matched to policy: it is dropped rather
    // than shown unchecked.
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| policy.is_visible(name) && !also_hidden(name))
    });
    let rewritten = (tools.len() != before).then_some(value);
    Some(FilteredPage { listed, rewritten })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn removes_hidden_keeps_the_rest() {
        let policy = toolgate_policy::compile("version: '1'\nhide: [b]\ntools: {}\n").unwrap();
        let page = r#"{"tools":[{"name":"a","x-extra":1},{"name":"b"},{"title":"no name"}],"nextCursor":"c2","_meta":{"k":1},"future":true}"#;
        let filtered = filter_tools_page(serde_json::from_str(page).unwrap(), &policy).unwrap();
        assert_eq!(filtered.listed, vec!["a", "b"]);
        let v = filtered.rewritten.unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["tools"][0]["x-extra"], 1);
        assert_eq!(v["nextCursor"], "c2");
        assert_eq!(v["_meta"]["k"], 1);
        assert_eq!(v["future"], true);
    }

    #[test]
    fn untouched_pages_are_not_rewritten() {
        let policy = toolgate_policy::compile("version: '1'\ntools: {}\n").unwrap();
        let page = serde_json::from_str(r#"{"tools":[{"name":"a"}]}"#).unwrap();
        let filtered = filter_tools_page(page, &policy).unwrap();
        assert!(filtered.rewritten.is_none());
    }

    #[test]
    fn default_deny_hides_unlisted() {
        let policy =
            toolgate_policy::compile("version: '1'\ndefault: deny\ntools:\n  a:\n    rules: []\n")
                .unwrap();
        let page = serde_json::from_str(r#"{"tools":[{"name":"a"},{"name":"b"}]}"#).unwrap();
        let filtered = filter_tools_page(page, &policy).unwrap();
        assert_eq!(
            filtered.rewritten.unwrap()["tools"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
