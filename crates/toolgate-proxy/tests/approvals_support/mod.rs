//! A gateway with approvals over channel-backed sessions, a manual clock and in-memory (or
//! SQLite) stores, shared by the approval tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toolgate_proxy::message::{ToClient, ToServer};

use serde_json::Value;
use tokio::sync::mpsc;
use toolgate_policy::Window;
use toolgate_proxy::approvals::{ApprovalOptions, Approvals};
use toolgate_proxy::audit::{AuditConfig, AuditSink};
use toolgate_proxy::{FailMode, Gateway, GatewayOptions, Session};
use toolgate_state::{
    CounterStore, ManualClock, MemoryApprovals, MemoryStore, SharedApprovals, SqliteApprovals,
};

/// 2026-01-01T10:00:00Z.
pub const T0: u64 = 1_767_261_600_000;

pub const POLICY: &str = r#"
version: "1"
tools:
  write_file:
    rules:
      - name: writes need approval
        action: require_approval
        message: "Writes are checked by a person."
        approval_timeout: 10m
      - name: write limit
        rate_limit: 5/minute
  delete_file:
    rules:
      - name: no deleting the root
        action: deny
        conditions:
          - path: args.path
            op: eq
            value: "/"
      - name: deletes wait for a person
        action: require_approval
        approval_mode: hold
        approval_timeout: 1m
  read_file:
    rules: []
"#;

pub struct Gate {
    pub gateway: Arc<Gateway>,
    pub session: Arc<Session>,
    pub approvals: Arc<Approvals>,
    pub store: SharedApprovals,
    pub counters: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    pub client_rx: mpsc::Receiver<ToClient>,
    pub server_rx: mpsc::Receiver<ToServer>,
}

pub fn fast_options() -> ApprovalOptions {
    ApprovalOptions {
        poll_interval: Duration::from_millis(20),
        progress_interval: Duration::from_millis(100),
        sweep_interval: Duration::from_millis(50),
        webhook_backoff: Duration::from_millis(20),
        ..ApprovalOptions::default()
    }
}

pub struct Setup {
    pub policy: String,
    pub clock: Arc<ManualClock>,
    pub store: Option<SharedApprovals>,
    pub options: ApprovalOptions,
    pub audit: Option<AuditSink>,
    pub identity: Option<String>,
    pub session: String,
    pub fail_mode: FailMode,
    pub call_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            policy: POLICY.to_string(),
            clock: Arc::new(ManualClock::new(T0)),
            store: None,
            options: fast_options(),
            audit: None,
            identity: Some("alice".into()),
            session: "s1".into(),
            fail_mode: FailMode::Closed,
            call_timeout: GatewayOptions::default().call_timeout,
        }
    }
}

impl Setup {
    pub fn start(self) -> Gate {
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryApprovals::new(self.clock.clone())));
        let approvals = Approvals::with_clock(store.clone(), self.options, self.clock.clone());
        let counters = Arc::new(MemoryStore::new("test", self.clock.clone()));
        let gateway = Gateway::new(
            toolgate_policy::compile(&self.policy).unwrap(),
            counters.clone(),
            self.clock.clone(),
            self.audit
                .unwrap_or_else(|| AuditSink::disabled("t".into())),
            None,
            GatewayOptions {
                approvals: Some(approvals.clone()),
                fail_mode: self.fail_mode,
                call_timeout: self.call_timeout,
                ..GatewayOptions::default()
            },
        );
        let (to_client, client_rx) = mpsc::channel(256);
        let (to_server, server_rx) = mpsc::channel(256);
        let session = Arc::new(Session::new(
            self.session,
            self.identity,
            to_client,
            to_server,
        ));
        gateway.register(&session);
        Gate {
            gateway,
            session,
            approvals,
            store,
            counters,
            clock: self.clock,
            client_rx,
            server_rx,
        }
    }
}

pub fn gate() -> Gate {
    Setup::default().start()
}

pub fn sqlite_store(path: &Path, clock: Arc<ManualClock>) -> SharedApprovals {
    Arc::new(SqliteApprovals::open(path, "toolgate", clock).unwrap())
}

pub fn audit_sink(dir: &Path) -> AuditSink {
    AuditSink::open("test".into(), AuditConfig::new(dir.to_path_buf())).unwrap()
}

impl Gate {
    pub async fn client(&self, message: &str) {
        self.gateway
            .from_client(&self.session, message.to_string())
            .await;
    }

    pub async fn server(&self, message: &str) {
        self.gateway
            .from_server(&self.session, as_upstream_answer(&self.session, message))
            .await;
    }

    pub async fn next_to_server(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(3), self.server_rx.recv())
            .await
            .expect("nothing reached the server")
            .unwrap()
            .text
    }

    /// Whether `forwarded` (a message that reached the server) is the client's request
    /// `client_id`, sent under the id the gateway minted for it.
    pub fn carries(&self, forwarded: &str, client_id: u32) -> bool {
        let forwarded: Value = serde_json::from_str(forwarded).unwrap();
        self.session.upstream_id_of(&client_id.to_string()) == forwarded["id"].as_u64()
    }

    pub async fn next_to_client(&mut self) -> Value {
        let text = tokio::time::timeout(Duration::from_secs(3), self.client_rx.recv())
            .await
            .expect("nothing reached the client")
            .unwrap()
            .text;
        serde_json::from_str(&text).unwrap()
    }

    /// The next message to the client that is not a progress notification.
    pub async fn next_answer(&mut self) -> Value {
        loop {
            let message = self.next_to_client().await;
            if message["method"] != "notifications/progress" {
                return message;
            }
        }
    }

    pub async fn nothing_to_server_for(&mut self, wait: Duration) {
        if let Ok(Some(m)) = tokio::time::timeout(wait, self.server_rx.recv()).await {
            panic!("reached the server: {}", m.text);
        }
    }

    pub fn nothing_to_server(&mut self) {
        if let Ok(m) = self.server_rx.try_recv() {
            panic!("reached the server: {}", m.text);
        }
    }

    pub async fn write_count(&self) -> toolgate_policy::Amount {
        self.counters
            .current("write_file._rate_minute", Window::parse("minute").unwrap())
            .await
            .unwrap()
    }
}

/// A server answer as the test writes it (with the client's id) rewritten to the id the
/// gateway minted for that request upstream, as a real server would echo it.
fn as_upstream_answer(session: &Session, message: &str) -> String {
    let mut value: Value = serde_json::from_str(message).unwrap();
    let is_answer = value.get("result").is_some() || value.get("error").is_some();
    if let (true, Some(id)) = (is_answer, value.get("id").cloned()) {
        if let Some(upstream) = session.upstream_id_of(&id.to_string()) {
            value["id"] = upstream.into();
        }
    }
    value.to_string()
}

pub fn call(id: u32, tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    )
}

pub fn call_with_progress(id: u32, tool: &str, args: &str, token: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args},"_meta":{{"progressToken":"{token}"}}}}}}"#
    )
}

pub fn decision(reply: &Value) -> &Value {
    &reply["result"]["_meta"]["dev.toolgate/decision"]
}

/// The approval id an answer names.
pub fn approval_id(reply: &Value) -> String {
    decision(reply)["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no approval id in {reply}"))
        .to_string()
}

pub fn first_text(reply: &Value) -> String {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {reply}"))
        .to_string()
}

pub fn result_for(id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"done"}}]}}}}"#
    )
}

/// Reads every audit line written under `dir` so far, waiting until `until` holds.
pub async fn audit_lines(dir: &Path, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            lines.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
            );
        }
        if until(&lines) || std::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
