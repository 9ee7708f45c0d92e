//! The Streamable HTTP side of the driver: starts a process that listens on loopback (toolgate's
//! listener, or the HTTP fixture), reads the URL it prints on stderr, and speaks MCP to it with
//! plain POSTs — `initialize` first, then `Mcp-Session-Id` on every request. K calls in flight
//! means K concurrent POSTs, each on its own keep-alive connection.
//!
//! The client runs on one thread (a current-thread runtime), like the stdio driver, so the
//! driver never takes more than one core from the process under test.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};

use crate::driver::{Launch, Throughput};
use crate::workload::Workload;

const PROTOCOL_VERSION: &str = "2025-06-18";

/// A child process that listens on loopback; killed when dropped.
pub struct Listener {
    child: Child,
    pub url: String,
    pub spawned: Instant,
}

impl Listener {
    /// Start `launch` and wait (up to `stall`) for a `listening on http://…` line on its stderr.
    pub fn start(launch: &Launch, stall: Duration) -> anyhow::Result<Listener> {
        let stderr = File::create(&launch.stderr_path)
            .with_context(|| format!("cannot create {}", launch.stderr_path.display()))?;
        let spawned = Instant::now();
        let child = Command::new(&launch.program)
            .args(&launch.args)
            .envs(launch.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", launch.program.display()))?;
        let mut listener = Listener {
            child,
            url: String::new(),
            spawned,
        };
        loop {
            let text = std::fs::read_to_string(&launch.stderr_path).unwrap_or_default();
            if let Some(at) = text.find("listening on http://") {
                let rest = &text[at + "listening on ".len()..];
                listener.url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                return Ok(listener);
            }
            if let Some(status) = listener.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening; its stderr:\n{text}",
                    launch.program.display()
                );
            }
            if spawned.elapsed() > stall {
                bail!(
                    "{} printed no URL within {stall:?}; its stderr:\n{text}",
                    launch.program.display()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Start `launch`, which listens at `url` (a peer that prints no parsable URL), and wait
    /// (up to `stall`) until its port accepts connections.
    pub fn start_at(
        launch: &Launch,
        url: String,
        port: u16,
        stall: Duration,
    ) -> anyhow::Result<Listener> {
        let stderr = File::create(&launch.stderr_path)
            .with_context(|| format!("cannot create {}", launch.stderr_path.display()))?;
        let spawned = Instant::now();
        let child = Command::new(&launch.program)
            .args(&launch.args)
            .envs(launch.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", launch.program.display()))?;
        let mut listener = Listener {
            child,
            url,
            spawned,
        };
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = listener.child.try_wait()? {
                let text = std::fs::read_to_string(&launch.stderr_path).unwrap_or_default();
                bail!(
                    "{} exited ({status}) before listening; its stderr:\n{text}",
                    launch.program.display()
                );
            }
            if spawned.elapsed() > stall {
                bail!(
                    "{} did not listen on port {port} within {stall:?}",
                    launch.program.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(listener)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A loopback port that was free a moment ago, for servers that cannot report the one they got.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MCP session over Streamable HTTP.
pub struct HttpSession {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    next_id: Arc<AtomicU64>,
}

impl HttpSession {
    /// Open a session at `url` (initialize, the session id, initialized) and check that every
    /// tool the workload calls is listed.
    pub fn connect(url: &str, workload: &Workload, stall: Duration) -> anyhow::Result<HttpSession> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(stall)
            .no_proxy()
            .pool_max_idle_per_host(1024)
            .build()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let mut session = HttpSession {
            runtime,
            client,
            url: url.to_owned(),
            headers,
            next_id: Arc::new(AtomicU64::new(0)),
        };
        let initialize = serde_json::json!({
            "jsonrpc": "2.0", "id": session.take_id(), "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "toolgate-bench", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let (answer, session_id) = session.request_json(&initialize)?;
        if answer["result"]["protocolVersion"] != PROTOCOL_VERSION {
            bail!("unexpected initialize answer: {answer}");
        }
        if let Some(id) = session_id {
            session.headers.insert("mcp-session-id", id);
        }
        session.headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static(PROTOCOL_VERSION),
        );
        let body = serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/initialized",
        }))?;
        let status = session.runtime.block_on(async {
            let response = session
                .client
                .post(&session.url)
                .headers(session.headers.clone())
                .body(body)
                .send()
                .await?;
            anyhow::Ok(response.status())
        })?;
        if !status.is_success() {
            bail!("notifications/initialized was answered with {status}");
        }
        let list =
            serde_json::json!({"jsonrpc": "2.0", "id": session.take_id(), "method": "tools/list"});
        let (answer, _) = session.request_json(&list)?;
        let listed: std::collections::HashSet<&str> = answer["result"]["tools"]
            .as_array()
            .with_context(|| format!("tools/list did not answer with tools: {answer}"))?
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        if let Some(missing) = (0..workload.tools())
            .map(|i| workload.tool_name(i))
            .find(|name| !listed.contains(name.as_str()))
        {
            bail!("tools/list does not include {missing}, which the benchmark calls");
        }
        Ok(session)
    }

    fn take_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// POST one request and return its answer (and the session id header, if any).
    fn request_json(
        &self,
        message: &serde_json::Value,
    ) -> anyhow::Result<(serde_json::Value, Option<HeaderValue>)> {
        let body = serde_json::to_vec(message)?;
        self.runtime.block_on(async {
            let response = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let session_id = response.headers().get("mcp-session-id").cloned();
            let sse = is_sse(response.headers());
            let bytes = response.bytes().await?;
            if !status.is_success() {
                bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
            }
            for message in messages(sse, &bytes) {
                let value: serde_json::Value = serde_json::from_slice(&message)
                    .context("the server sent a body that is not JSON")?;
                if value.get("method").is_none() {
                    return Ok((value, session_id));
                }
            }
            bail!(
                "no answer in the response: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }

    /// `calls` calls one at a time; returns each call's round-trip time.
    pub fn latency(&mut self, calls: usize, workload: &Workload) -> anyhow::Result<Vec<Duration>> {
        let call = Call {
            client: self.client.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            workload: Arc::new(workload.clone()),
        };
        let next_id = Arc::clone(&self.next_id);
        self.runtime.block_on(async move {
            let mut samples = Vec::with_capacity(calls);
            let mut body = Vec::with_capacity(256);
            for _ in 0..calls {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                body.clear();
                call.workload.write_request(id, &mut body);
                let start = Instant::now();
                let bytes = call.send(body.clone()).await?;
                let elapsed = start.elapsed();
                call.verify(id, &bytes)?;
                samples.push(elapsed);
            }
            Ok(samples)
        })
    }

    /// Keep `in_flight` POSTs outstanding for `duration`, then wait for the stragglers.
    pub fn throughput(
        &mut self,
        in_flight: usize,
        duration: Duration,
        workload: &Workload,
    ) -> anyhow::Result<Throughput> {
        let call = Arc::new(Call {
            client: self.client.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            workload: Arc::new(workload.clone()),
        });
        let next_id = Arc::clone(&self.next_id);
        self.runtime.block_on(async move {
            let start = Instant::now();
            let deadline = start + duration;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..in_flight.max(1) {
                let call = Arc::clone(&call);
                let next_id = Arc::clone(&next_id);
                tasks.spawn(async move {
                    let mut done = 0u64;
                    let mut body = Vec::with_capacity(256);
                    while Instant::now() < deadline {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        body.clear();
                        call.workload.write_request(id, &mut body);
                        let bytes = call.send(body.clone()).await?;
                        call.verify(id, &bytes)?;
                        done += 1;
                    }
                    anyhow::Ok(done)
                });
            }
            let mut calls = 0;
            while let Some(joined) = tasks.join_next().await {
                calls += joined.context("a client task panicked")??;
            }
            Ok(Throughput {
                calls,
                elapsed: start.elapsed(),
            })
        })
    }

    /// End the session (DELETE); the listener process itself is stopped by its owner.
    pub fn close(&mut self) {
        let _ = self.runtime.block_on(async {
            self.client
                .delete(&self.url)
                .headers(self.headers.clone())
                .send()
                .await
        });
    }
}

struct Call {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    workload: Arc<Workload>,
}

impl Call {
    async fn send(&self, mut body: Vec<u8>) -> anyhow::Result<(bool, Bytes)> {
        while body.last() == Some(&b'\n') {
            body.pop();
        }
        let response = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let sse = is_sse(response.headers());
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok((sse, bytes))
    }

    fn verify(&self, id: u64, answer: &(bool, Bytes)) -> anyhow::Result<()> {
        let (sse, bytes) = answer;
        for message in messages(*sse, bytes) {
            match self.workload.verify(&message)? {
                Some(got) if got == id => return Ok(()),
                Some(got) => bail!("answer to call {got} arrived on the POST of call {id}"),
                None => continue,
            }
        }
        bail!("no answer to call {id} in its response")
    }
}

fn is_sse(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The JSON-RPC messages of a response body: the body itself for JSON, each event's data for SSE.
fn messages(sse: bool, body: &[u8]) -> Vec<Vec<u8>> {
    if !sse {
        return vec![body.to_vec()];
    }
    let mut out = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !data.is_empty() {
                out.push(std::mem::take(&mut data));
            }
        } else if let Some(rest) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    if !data.is_empty() {
        out.push(data);
    }
    out
}

/// The crypto provider reqwest needs when the workspace's build turned its TLS on.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sse_bodies_are_split_into_messages() {
        let body = b": keep-alive\n\nevent: message\ndata: {\"a\":1}\n\ndata: {\"b\":2}\n\n";
        assert_eq!(
            messages(true, body),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(messages(false, b"{}"), vec![b"{}".to_vec()]);
    }
}
