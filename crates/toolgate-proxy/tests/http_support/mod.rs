//! Shared by the HTTP transport tests: a listener on 127.0.0.1 in front of the stdio fixture
//! server, and a small Streamable HTTP client that reads JSON and SSE answers.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};
use toolgate_proxy::audit::AuditSink;
use toolgate_proxy::http::sse::EventParser;
use toolgate_proxy::http::{HttpServer, ListenerOptions, ServerHandle, UpstreamTarget};
use toolgate_proxy::{Gateway, GatewayOptions};
use toolgate_state::{MemoryStore, SystemClock};

pub fn fixture_server() -> Vec<std::ffi::OsString> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stdio_server.py");
    vec!["python3".into(), "-u".into(), script.into()]
}

pub fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub struct Listener {
    pub base: String,
    pub handle: ServerHandle,
    pub gateway: Arc<Gateway>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Listener {
    pub async fn start(policy: &str, options: ListenerOptions) -> Listener {
        Self::start_with(
            policy,
            options,
            UpstreamTarget::Command(Arc::new(toolgate_proxy::stdio::ServerCommand::new(
                fixture_server(),
            ))),
        )
        .await
    }

    pub async fn start_with(
        policy: &str,
        options: ListenerOptions,
        target: UpstreamTarget,
    ) -> Listener {
        let clock = Arc::new(SystemClock);
        let store = Arc::new(MemoryStore::new("test", clock.clone()));
        let policy = toolgate_policy::compile(policy).unwrap();
        let gateway = Gateway::new(
            policy,
            store,
            clock,
            AuditSink::disabled("t".into()),
            None,
            GatewayOptions::default(),
        );
        let server = HttpServer::bind(Arc::clone(&gateway), target, options, None)
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let handle = server.handle();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Listener {
            base,
            handle,
            gateway,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

/// What a POST came back with.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// JSON body, or the messages of an SSE body in order.
    pub messages: Vec<Value>,
    pub sse: bool,
}

impl Answer {
    pub fn response(&self) -> &Value {
        self.messages
            .iter()
            .rev()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC response in {self:?}"))
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    pub headers: HeaderMap,
    next_id: u64,
}

impl Client {
    pub fn new(url: &str) -> Client {
        toolgate_proxy::tls::install_crypto_provider();
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            url: url.to_string(),
            session: None,
            headers: HeaderMap::new(),
            next_id: 0,
        }
    }

    /// Another client on the same session, numbering its requests from `first_id` so ids
    /// in flight never collide.
    pub fn fork(&self, first_id: u64) -> Client {
        Client {
            http: self.http.clone(),
            url: self.url.clone(),
            session: self.session.clone(),
            headers: self.headers.clone(),
            next_id: first_id,
        }
    }

    pub fn with_token(mut self, token: &str) -> Client {
        self.header("authorization", &format!("Bearer {token}"));
        self
    }

    pub fn header(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    pub async fn post_raw(&self, body: String, extra: &[(&str, &str)]) -> Answer {
        let mut request = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = &self.session {
            request = request.header("mcp-session-id", s);
        }
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        read_answer(response).await
    }

    pub async fn send(&mut self, method: &str, params: Value) -> Answer {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.post_raw(body.to_string(), &[]).await
    }

    pub async fn notify(&self, method: &str) -> Answer {
        let body = json!({"jsonrpc": "2.0", "method": method});
        self.post_raw(body.to_string(), &[]).await
    }

    /// initialize + notifications/initialized; keeps the session id.
    pub async fn initialize(&mut self) -> Answer {
        let answer = self
            .send(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "toolgate-http-test", "version": "0"}}),
            )
            .await;
        if answer.status == StatusCode::OK {
            self.session = answer
                .headers
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            assert!(self.session.is_some(), "no session id: {answer:?}");
            let ack = self.notify("notifications/initialized").await;
            assert_eq!(ack.status, StatusCode::ACCEPTED);
        }
        answer
    }

    pub async fn call(&mut self, tool: &str, arguments: Value) -> Answer {
        self.send("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
    }

    pub async fn delete(&self) -> StatusCode {
        let mut request = self.http.delete(&self.url).headers(self.headers.clone());
        if let Some(s) = &self.session {
            request = request.header("mcp-session-id", s);
        }
        request.send().await.unwrap().status()
    }
}

pub async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = response.bytes().await.unwrap();
    let messages = if sse {
        let mut parser = EventParser::new(1 << 24);
        parser
            .feed(&body)
            .into_iter()
            .filter(|e| e.event == "message")
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    } else if body.is_empty() {
        Vec::new()
    } else {
        vec![serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()))]
    };
    Answer {
        status,
        headers,
        messages,
        sse,
    }
}

/// The first text block of a tools/call result.
pub fn text_of(answer: &Answer) -> String {
    let response = answer.response();
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {response}"))
        .to_string()
}

pub fn is_denial(answer: &Answer) -> bool {
    let r = answer.response();
    r["result"]["isError"] == json!(true)
        && r["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[POLICY DENIED]"))
}

pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}
