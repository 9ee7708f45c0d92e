//! Listing a server's tools as an MCP client would, for `scan` and `classify`: connect
//! (start a stdio server, or open a Streamable HTTP / legacy SSE session), `initialize`,
//! follow `tools/list` through every page, and disconnect.
//!
//! The conversation runs over the same upstream links the proxy uses, behind a gateway
//! whose policy allows everything, so every transport detail — SSE responses, session ids,
//! protocol-version headers, `--header` values, legacy fallback — is the proxy's own code.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use toolgate_state::{MemoryStore, SystemClock};

use crate::audit::AuditSink;
use crate::gateway::{Gateway, GatewayOptions};
use crate::http::upstream::{LinkSpec, UpstreamLink};
use crate::http::UpstreamTarget;
use crate::session::{Session, SessionChannels};

/// The protocol version toolgate asks for as a client.
pub const CLIENT_PROTOCOL_VERSION: &str = "2025-06-18";
/// More pages than any real server has: a cursor loop is a server bug, not a reason to hang.
const MAX_PAGES: usize = 1000;

/// What a server says about itself and its tools.
#[derive(Debug, Clone, Default)]
pub struct ListedTools {
    pub server_name: Option<String>,
    /// The `instructions` of the server's `initialize` result.
    pub instructions: Option<String>,
    pub tools: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("cannot connect to the server: {0}")]
    Connect(String),
    #[error("the connection closed before the server answered {0}")]
    Closed(&'static str),
    #[error("the server did not answer {0} within {1} s")]
    Timeout(&'static str, u64),
    #[error("the server answered {0} with an error: {1}")]
    Refused(&'static str, String),
    #[error("the server's answer to {0} is not what MCP specifies: {1}")]
    Malformed(&'static str, String),
}

/// Connects to `target`, lists its tools, and disconnects.
pub async fn list_tools(
    target: UpstreamTarget,
    timeout: Duration,
) -> Result<ListedTools, ListingError> {
    let policy = toolgate_policy::allow_all().map_err(|_| {
        ListingError::Connect("internal pass-through policy did not compile".into())
    })?;
    let clock = Arc::new(SystemClock);
    let store = Arc::new(MemoryStore::new("listing", clock.clone()));
    let gateway = Gateway::new(
        policy,
        store,
        clock,
        AuditSink::disabled("listing".into()),
        None,
        GatewayOptions::default(),
    );
    let SessionChannels {
        session,
        to_client: from_server,
        to_server: server_rx,
    } = Session::open(None);
    let spec = LinkSpec {
        target,
        http: None,
        shutdown_grace: Duration::from_secs(2),
        max_line_bytes: crate::framing::DEFAULT_MAX_LINE_BYTES,
        child_permit: None,
        sessionless: None,
        end_on_session_loss: true,
        aggregator: None,
    };
    let link = UpstreamLink::start(spec, Arc::clone(&gateway), Arc::clone(&session), server_rx)
        .map_err(|e| ListingError::Connect(e.to_string()))?;
    let mut conversation = Conversation {
        gateway,
        session,
        from_server,
        next_id: 1,
        timeout,
    };
    let listed = conversation.list_tools().await;
    link.close(Duration::from_secs(5)).await;
    listed
}

struct Conversation {
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    from_server: mpsc::Receiver<crate::message::ToClient>,
    next_id: u64,
    timeout: Duration,
}

impl Conversation {
    async fn list_tools(&mut self) -> Result<ListedTools, ListingError> {
        let init = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": CLIENT_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "toolgate", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        let server_name = init
            .pointer("/serverInfo/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let instructions = init
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request("tools/list", params).await?;
            let Some(items) = page.get("tools").and_then(Value::as_array) else {
                return Err(ListingError::Malformed(
                    "tools/list",
                    "the result has no \"tools\" list".into(),
                ));
            };
            tools.extend(items.iter().cloned());
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            if cursor.is_none() {
                return Ok(ListedTools {
                    server_name,
                    instructions,
                    tools,
                });
            }
        }
        Err(ListingError::Malformed(
            "tools/list",
            format!("more than {MAX_PAGES} pages"),
        ))
    }

    async fn send(&self, message: Value) {
        self.gateway
            .from_client(&self.session, message.to_string())
            .await;
    }

    /// Sends a request and waits for its answer, answering what the server asks meanwhile.
    async fn request(
        &mut self,
        method: &'static str,
        params: Value,
    ) -> Result<Value, ListingError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let received = tokio::time::timeout_at(deadline, self.from_server.recv())
                .await
                .map_err(|_| ListingError::Timeout(method, self.timeout.as_secs()))?
                .ok_or(ListingError::Closed(method))?;
            // This is the client's side of the conversation: it reads what it receives.
            let Ok(message) = serde_json::from_str::<Value>(&received.text) else {
                continue;
            };
            if message.get("method").is_some() {
                self.answer_server_request(&message).await;
                continue;
            }
            if message.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = message.get("error") {
                let text = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                return Err(ListingError::Refused(method, text.to_string()));
            }
            return message.get("result").cloned().ok_or_else(|| {
                ListingError::Malformed(method, "a response without a result".into())
            });
        }
    }

    /// A listing client offers no capabilities: pings are answered, roots are empty, and
    /// anything else is politely refused.
    async fn answer_server_request(&self, message: &Value) {
        let Some(id) = message.get("id") else { return };
        let reply = match message.get("method").and_then(Value::as_str) {
            Some("ping") => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            Some("roots/list") => json!({"jsonrpc": "2.0", "id": id, "result": {"roots": []}}),
            _ => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}})
            }
        };
        self.send(reply).await;
    }
}
