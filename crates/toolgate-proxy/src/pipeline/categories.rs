//! Risk categories of the server's tools, for policies with `categories` rules.
//!
//! Categories are learned from every `tools/list` result that passes through. A call to a
//! tool toolgate has not seen listed yet (a client that calls without listing first) makes
//! toolgate list the tools itself: its own requests go to the server with ids it mints (the
//! client can neither see nor answer them) and their answers never reach the client.
//!
//! Learning is single-flight — one listing at a time for the whole gateway, and none again
//! within [`RELIST_AFTER`] of the last — so a client calling unknown tools in a loop cannot
//! make the gateway list the server's tools once per call. And it fails closed: a tool whose
//! category cannot be learned (the server does not list it, or the listing fails) is decided
//! by the rules of the most restrictive category the policy names.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use toolgate_classify::{classify_all, ToolDef};

use crate::gateway::Gateway;
use crate::message::{Method, ToServer};
use crate::session::Session;

/// How long toolgate waits for the server to answer its own `tools/list`.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pages toolgate follows on its own; a cursor loop is not followed forever.
const MAX_PAGES: usize = 100;

/// A finished listing is not repeated within this time.
const RELIST_AFTER: Duration = Duration::from_secs(5);

/// Categories from most to least restrictive, for tools whose category cannot be learned.
const MOST_RESTRICTIVE_FIRST: [&str; 6] = [
    "Destructive",
    "Financial",
    "Execute",
    "Write",
    "Other",
    "Read",
];

/// The category a tool of unknown category is decided as: the most restrictive one the
/// policy has rules for.
pub(crate) fn fail_closed_category(policy: &toolgate_policy::Policy) -> Option<&'static str> {
    MOST_RESTRICTIVE_FIRST
        .into_iter()
        .find(|c| policy.categories.contains_key(*c))
}

impl Gateway {
    /// The category classified for `tool`, once it has been listed.
    pub(crate) fn category_of(&self, tool: &str) -> Option<&'static str> {
        self.tool_categories.read().get(tool).copied()
    }

    /// Learns what one `tools/list` page says about the server's tools: their categories
    /// (for `categories` rules, and as the record of which tools were listed), whether
    /// their definitions look poisoned, and whether they depart from their pins.
    pub(crate) async fn learn_from_page(&self, page: &Value, policy: &toolgate_policy::Policy) {
        self.learn_categories_from_page(page);
        self.scan_page_for_poisoning(page, policy);
        self.check_pins(page, policy).await;
    }

    /// Classifies the tools of one `tools/list` page and remembers their categories.
    pub(crate) fn learn_categories_from_page(&self, page: &Value) {
        let Some(tools) = page.get("tools").and_then(Value::as_array) else {
            return;
        };
        let definitions: Vec<ToolDef> = tools
            .iter()
            .filter_map(|t| ToolDef::from_json(t).ok())
            .collect();
        let results = classify_all(&definitions, None);
        self.audit.tools_listed(&definitions, &results);
        let mut known = self.tool_categories.write();
        for (tool, classification) in definitions.iter().zip(results) {
            known.insert(tool.name.clone(), classification.category.as_str());
        }
    }

    /// Makes sure the gateway has tried to learn `tool`'s category: lists the server's tools
    /// unless another call is already doing so (then waits for it) or a listing just ended.
    pub(crate) async fn learn_category_of(&self, session: &Session, tool: &str) {
        let mut last_listing = self.category_listing.lock().await;
        if self.category_of(tool).is_some()
            || last_listing.is_some_and(|at| at.elapsed() < RELIST_AFTER)
        {
            return;
        }
        self.learn_tool_categories(session).await;
        *last_listing = Some(Instant::now());
    }

    /// Lists the server's tools on toolgate's own account and classifies them.
    async fn learn_tool_categories(&self, session: &Session) {
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let Some(result) = self
                .internal_request(session, "tools/list", cursor.take())
                .await
            else {
                tracing::warn!(session = %session.id, "could not list the server's tools to classify them");
                return;
            };
            let Ok(page) = serde_json::from_str::<Value>(&result) else {
                return;
            };
            self.learn_from_page(&page, &self.policy.load_full()).await;
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
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
        let params = match cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let (tx, rx) = oneshot::channel();
        let id = session.state.lock().upstream_ids.mint_internal(tx);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let request = ToServer::request(request.to_string(), id, Method::of(method));
        if !session.send_to_server(request).await {
            session.state.lock().upstream_ids.end_internal(id);
            return None;
        }
        let answer = tokio::time::timeout(LIST_TIMEOUT, rx).await;
        session.state.lock().upstream_ids.end_internal(id);
        answer.ok()?.ok()?.result().map(str::to_string)
    }
}
