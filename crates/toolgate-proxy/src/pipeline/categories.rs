//! Risk categories of the server's tools, for policies with `categories` rules.
//!
//! Categories are learned from every `tools/list` result that passes through. A call to a
//! tool toolgate has not seen listed yet (a client that calls without listing first) makes
//! toolgate list the tools itself: its own requests go to the server with ids of its own and
//! their answers never reach the client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use toolgate_classify::{classify_all, ToolDef};

use crate::envelope::id_key;
use crate::gateway::Gateway;
use crate::session::Session;

/// How long toolgate waits for the server to answer its own `tools/list`.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pages toolgate follows on its own; a cursor loop is not followed forever.
const MAX_PAGES: usize = 100;

static NEXT_INTERNAL_ID: AtomicU64 = AtomicU64::new(1);

impl Gateway {
    /// The category classified for `tool`, once it has been listed.
    pub(crate) fn category_of(&self, tool: &str) -> Option<&'static str> {
        self.tool_categories.read().get(tool).copied()
    }

    /// Classifies the tools of one `tools/list` page and remembers their categories.
    pub(crate) fn learn_categories_from_page(&self, result: &str) {
        let Ok(page) = serde_json::from_str::<Value>(result) else {
            return;
        };
        let Some(tools) = page.get("tools").and_then(Value::as_array) else {
            return;
        };
        let definitions: Vec<ToolDef> = tools
            .iter()
            .filter_map(|t| ToolDef::from_json(t).ok())
            .collect();
        let results = classify_all(&definitions, None);
        let mut known = self.tool_categories.write();
        for (tool, classification) in definitions.iter().zip(results) {
            known.insert(tool.name.clone(), classification.category.as_str());
        }
    }

    /// Lists the server's tools on toolgate's own account and classifies them.
    pub(crate) async fn learn_tool_categories(&self, session: &Session) {
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let Some(result) = self
                .internal_request(session, "tools/list", cursor.take())
                .await
            else {
                tracing::warn!(session = %session.id, "could not list the server's tools to classify them");
                return;
            };
            self.learn_categories_from_page(&result);
            cursor = serde_json::from_str::<Value>(&result).ok().and_then(|v| {
                v.get("nextCursor")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            if cursor.is_none() {
                return;
            }
        }
    }

    /// Sends a request of toolgate's own and returns its `result` text.
    async fn internal_request(
        &self,
        session: &Session,
        method: &str,
        cursor: Option<String>,
    ) -> Option<String> {
        let id = format!(
            "toolgate-{}",
            NEXT_INTERNAL_ID.fetch_add(1, Ordering::Relaxed)
        );
        let params = match cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (tx, rx) = oneshot::channel();
        let raw = serde_json::value::to_raw_value(&id).ok()?;
        let key = id_key(&raw);
        session
            .state
            .lock()
            .internal_requests
            .insert(key.clone(), tx);
        if !session.send_to_server(request.to_string()).await {
            session.state.lock().internal_requests.remove(&key);
            return None;
        }
        let answer = tokio::time::timeout(LIST_TIMEOUT, rx).await;
        session.state.lock().internal_requests.remove(&key);
        let text = answer.ok()?.ok()?;
        let message: Value = serde_json::from_str(&text).ok()?;
        message.get("result").map(Value::to_string)
    }
}
