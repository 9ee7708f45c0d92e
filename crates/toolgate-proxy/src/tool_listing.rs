//! Listing a server's tools as an MCP client would, for `scan` and `classify`: start the
//! server, `initialize`, follow `tools/list` through every page, and stop it again.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::framing::{Frame, LineReader, DEFAULT_MAX_LINE_BYTES};

/// The protocol version toolgate asks for as a client.
pub const CLIENT_PROTOCOL_VERSION: &str = "2025-06-18";
/// More pages than any real server has: a cursor loop is a server bug, not a reason to hang.
const MAX_PAGES: usize = 1000;

/// What a server says about itself and its tools.
#[derive(Debug, Clone, Default)]
pub struct ListedTools {
    pub server_name: Option<String>,
    pub tools: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("cannot start the server: {0}")]
    Spawn(std::io::Error),
    #[error("the server closed its output before answering {0}")]
    Closed(&'static str),
    #[error("the server did not answer {0} within {1} s")]
    Timeout(&'static str, u64),
    #[error("the server answered {0} with an error: {1}")]
    Refused(&'static str, String),
    #[error("the server's answer to {0} is not what MCP specifies: {1}")]
    Malformed(&'static str, String),
    #[error("i/o error talking to the server: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `command`, lists its tools, and stops it.
pub async fn list_tools_stdio(
    command: &[OsString],
    timeout: Duration,
) -> Result<ListedTools, ListingError> {
    let (program, args) = command.split_first().ok_or_else(|| {
        ListingError::Spawn(std::io::Error::other("no server command given after --"))
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(ListingError::Spawn)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ListingError::Spawn(std::io::Error::other(
            "the server's stdio could not be captured",
        )));
    };
    let mut conversation = Conversation {
        stdin,
        reader: LineReader::new(BufReader::new(stdout), DEFAULT_MAX_LINE_BYTES),
        next_id: 1,
        timeout,
    };
    let listed = conversation.list_tools().await;
    stop(&mut child, conversation.stdin).await;
    listed
}

async fn stop(child: &mut Child, stdin: ChildStdin) {
    drop(stdin);
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

struct Conversation<R> {
    stdin: ChildStdin,
    reader: LineReader<R>,
    next_id: u64,
    timeout: Duration,
}

impl<R: tokio::io::AsyncBufRead + Unpin> Conversation<R> {
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
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
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
                return Ok(ListedTools { server_name, tools });
            }
        }
        Err(ListingError::Malformed(
            "tools/list",
            format!("more than {MAX_PAGES} pages"),
        ))
    }

    async fn send(&mut self, message: Value) -> Result<(), ListingError> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
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
            .await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.reader.next_frame())
                .await
                .map_err(|_| ListingError::Timeout(method, self.timeout.as_secs()))??;
            let line = match frame {
                Some(Frame::Line(line)) => line,
                Some(_) => continue,
                None => return Err(ListingError::Closed(method)),
            };
            // Servers that log on stdout: skip what is not JSON-RPC.
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if message.get("method").is_some() {
                self.answer_server_request(&message).await?;
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
    async fn answer_server_request(&mut self, message: &Value) -> Result<(), ListingError> {
        let Some(id) = message.get("id") else {
            return Ok(());
        };
        let reply = match message.get("method").and_then(Value::as_str) {
            Some("ping") => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            Some("roots/list") => json!({"jsonrpc": "2.0", "id": id, "result": {"roots": []}}),
            _ => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}})
            }
        };
        self.send(reply).await
    }
}
