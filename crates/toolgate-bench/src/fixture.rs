//! The MCP server every scenario talks to: newline-delimited JSON-RPC on stdio that answers
//! `initialize`, `tools/list`, `tools/call` (echoing the arguments back) and `ping`.
//!
//! It must never be the bottleneck, or the benchmark would measure the fixture instead of the
//! proxy. So it is single-threaded std I/O on raw file descriptors (no line-buffered `Stdout`),
//! borrows everything it can out of the input line (`RawValue`, `Cow`), builds the `tools/list`
//! answer once, and flushes its one buffered writer only when no complete request is waiting —
//! one `write(2)` per burst under load, no added latency with one call in flight.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::AsFd;

use anyhow::Context;
use serde::Deserialize;
use serde_json::value::RawValue;

/// What the fixture serves.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// Number of `tool_<i>` tools (the `echo` tool is always there too).
    pub tools: usize,
    /// Corrupt the echo of this `tools/call` (1-based), so tests can prove the driver checks.
    pub corrupt_call: Option<u64>,
    /// Answer this percentage of `tools/call`s with a JSON-RPC error, spread evenly and
    /// deterministically (with 30: calls 4, 7, 10, 14, …; exactly ⌊n × 30 / 100⌋ of the
    /// first n), so tests can check that failed calls give their quota back.
    pub fail_percent: u8,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Serve on this process's stdin/stdout until stdin closes.
pub fn run(options: &FixtureOptions) -> anyhow::Result<()> {
    // Raw fds rather than `Stdin`/`Stdout`: stdout is line-buffered (a syscall per answer) and
    // `StdinLock` does not expose its buffer, which the flush decision below needs.
    let input = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut writer = BufWriter::with_capacity(1 << 16, output);
    let mut server = Server::new(options);
    let mut line = Vec::with_capacity(1 << 12);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        server.handle(trim_line(&line), &mut writer)?;
        // Flush only when the next read could block: a client waiting for this answer must get
        // it now, but a burst of queued requests is answered with one write.
        if !reader.buffer().contains(&b'\n') {
            writer
                .flush()
                .context("the client closed the fixture's stdout")?;
        }
    }
    writer.flush()?;
    Ok(())
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

struct Server {
    tools: usize,
    corrupt_call: Option<u64>,
    fail_percent: u64,
    calls: u64,
    /// The `result` of `tools/list`, serialized once: the list never changes.
    tools_list: Vec<u8>,
}

impl Server {
    fn new(options: &FixtureOptions) -> Self {
        Server {
            tools: options.tools,
            corrupt_call: options.corrupt_call,
            fail_percent: u64::from(options.fail_percent.min(100)),
            calls: 0,
            tools_list: tools_list_result(options.tools),
        }
    }

    fn handle(&mut self, line: &[u8], out: &mut impl Write) -> anyhow::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let message: Incoming<'_> = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(_) => return error(out, None, -32700, "Parse error"),
        };
        // Notifications (no id) and answers to server requests (no method) need no reply.
        let (Some(id), Some(method)) = (message.id, message.method) else {
            return Ok(());
        };
        match method.as_ref() {
            "initialize" => self.initialize(id, message.params, out),
            "tools/list" => {
                head(out, id)?;
                out.write_all(&self.tools_list)?;
                tail(out)
            }
            "tools/call" => self.call(id, message.params, out),
            "ping" => {
                head(out, id)?;
                out.write_all(b"{}")?;
                tail(out)
            }
            _ => error(out, Some(id), -32601, "Method not found"),
        }
    }

    fn initialize(
        &self,
        id: &RawValue,
        params: Option<&RawValue>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let requested = params
            .and_then(|p| serde_json::from_str::<InitializeParams<'_>>(p.get()).ok())
            .and_then(|p| p.protocol_version);
        // Echo the client's version: the fixture speaks whatever era the client does, which
        // keeps the benchmark independent of version negotiation.
        let version = requested.as_deref().unwrap_or("2025-06-18");
        head(out, id)?;
        out.write_all(b"{\"protocolVersion\":")?;
        serde_json::to_writer(&mut *out, version)?;
        out.write_all(
            b",\"capabilities\":{\"tools\":{}},\
              \"serverInfo\":{\"name\":\"toolgate-bench-fixture\",\"version\":\"0.1.0\"}}",
        )?;
        tail(out)
    }

    fn call(
        &mut self,
        id: &RawValue,
        params: Option<&RawValue>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let Some(params) =
            params.and_then(|p| serde_json::from_str::<CallParams<'_>>(p.get()).ok())
        else {
            return error(out, Some(id), -32602, "Invalid params");
        };
        if !self.has_tool(&params.name) {
            return error(
                out,
                Some(id),
                -32602,
                &format!("Unknown tool: {}", params.name),
            );
        }
        self.calls += 1;
        let failures = |n: u64| n * self.fail_percent / 100;
        if failures(self.calls) > failures(self.calls - 1) {
            return error(out, Some(id), -32603, "Fixture failure (deterministic)");
        }
        let arguments = params.arguments.map_or("{}", RawValue::get);
        head(out, id)?;
        out.write_all(b"{\"content\":[{\"type\":\"text\",\"text\":")?;
        if self.corrupt_call == Some(self.calls) {
            serde_json::to_writer(&mut *out, &format!("{arguments} (corrupted)"))?;
        } else {
            serde_json::to_writer(&mut *out, arguments)?;
        }
        out.write_all(b"}]}")?;
        tail(out)
    }

    fn has_tool(&self, name: &str) -> bool {
        if name == "echo" {
            return true;
        }
        name.strip_prefix("tool_")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < self.tools && name.len() == 5 + digits(n))
    }
}

/// Decimal digits of `n`, so `tool_007` is not taken for `tool_7`.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn tools_list_result(tools: usize) -> Vec<u8> {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
    });
    let mut list: Vec<serde_json::Value> = (0..tools)
        .map(|i| {
            serde_json::json!({
                "name": format!("tool_{i}"),
                "description": format!("Fixture tool {i}: echoes its arguments"),
                "inputSchema": schema,
            })
        })
        .collect();
    list.push(serde_json::json!({
        "name": "echo",
        "description": "Echoes its arguments",
        "inputSchema": schema,
    }));
    serde_json::json!({ "tools": list })
        .to_string()
        .into_bytes()
}

fn head(out: &mut impl Write, id: &RawValue) -> anyhow::Result<()> {
    out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
    out.write_all(id.get().as_bytes())?;
    out.write_all(b",\"result\":")?;
    Ok(())
}

fn tail(out: &mut impl Write) -> anyhow::Result<()> {
    out.write_all(b"}\n")?;
    Ok(())
}

fn error(
    out: &mut impl Write,
    id: Option<&RawValue>,
    code: i64,
    message: &str,
) -> anyhow::Result<()> {
    out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
    out.write_all(id.map_or("null", RawValue::get).as_bytes())?;
    write!(out, ",\"error\":{{\"code\":{code},\"message\":")?;
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"}}\n")?;
    Ok(())
}

/// Serve the fixture as a minimal Streamable HTTP server on `127.0.0.1:port` (0 picks a free
/// port): `POST /mcp` answers each request with `application/json`, mints an
/// `Mcp-Session-Id` with the `initialize` answer, and takes notifications with `202`. The URL
/// is printed on stderr (`fixture-http: listening on http://127.0.0.1:N/mcp`).
pub fn run_http(options: &FixtureOptions, port: u16) -> anyhow::Result<()> {
    use axum::body::Bytes;
    use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    struct Shared {
        server: Mutex<Server>,
        sessions: AtomicU64,
    }
    let shared = Arc::new(Shared {
        server: Mutex::new(Server::new(options)),
        sessions: AtomicU64::new(0),
    });
    let handler = move |_headers: HeaderMap, body: Bytes| {
        let shared = Arc::clone(&shared);
        async move {
            let mut out = Vec::with_capacity(256);
            let handled = match shared.server.lock() {
                Ok(mut server) => server.handle(trim_line(&body), &mut out),
                Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            };
            if handled.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            if out.is_empty() {
                return StatusCode::ACCEPTED.into_response();
            }
            let is_initialize = memchr_initialize(&body);
            let mut response = Response::new(axum::body::Body::from(out));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if is_initialize {
                let n = shared.sessions.fetch_add(1, Ordering::Relaxed);
                if let Ok(id) =
                    HeaderValue::from_str(&format!("fixture-{}-{n}", std::process::id()))
                {
                    response.headers_mut().insert("mcp-session-id", id);
                }
            }
            response
        }
    };
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(handler).delete(|| async { StatusCode::OK }),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        eprintln!("fixture-http: listening on http://{addr}/mcp");
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// Whether a request body is an `initialize` call (the fixture's bodies are single messages).
fn memchr_initialize(body: &[u8]) -> bool {
    body.windows(br#""initialize""#.len())
        .any(|w| w == br#""initialize""#)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(server: &mut Server, line: &str) -> serde_json::Value {
        let mut out = Vec::new();
        server.handle(line.as_bytes(), &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn server(tools: usize, corrupt_call: Option<u64>) -> Server {
        Server::new(&FixtureOptions {
            tools,
            corrupt_call,
            fail_percent: 0,
        })
    }

    #[test]
    fn fails_an_exact_share_of_calls() {
        let mut s = Server::new(&FixtureOptions {
            tools: 1,
            corrupt_call: None,
            fail_percent: 30,
        });
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
        let failed: Vec<usize> = (1..=100)
            .filter(|_| answer(&mut s, call).get("error").is_some())
            .collect();
        assert_eq!(failed.len(), 30);
        assert_eq!(&failed[..3], &[4, 7, 10]);
    }

    #[test]
    fn echoes_arguments_as_text() {
        let mut s = server(3, None);
        let v = answer(
            &mut s,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"tool_2","arguments":{"n":1,"s":"a\"b"}}}"#,
        );
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["content"][0]["text"], r#"{"n":1,"s":"a\"b"}"#);
    }

    #[test]
    fn lists_tools_and_echo() {
        let mut s = server(2, None);
        let v = answer(
            &mut s,
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/list"}"#,
        );
        let names: Vec<&str> = v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["tool_0", "tool_1", "echo"]);
        assert_eq!(v["id"], "x");
    }

    #[test]
    fn initialize_echoes_protocol_version() {
        let mut s = server(1, None);
        let v = answer(
            &mut s,
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}"#,
        );
        assert_eq!(v["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(v["result"]["capabilities"]["tools"], serde_json::json!({}));
    }

    #[test]
    fn unknown_tools_are_rejected() {
        let mut s = server(10, None);
        for name in ["tool_10", "tool_01", "tool_", "nope"] {
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#
            );
            let v = answer(&mut s, &line);
            assert_eq!(v["error"]["code"], -32602, "{name}");
        }
    }

    #[test]
    fn notifications_get_no_answer() {
        let mut s = server(1, None);
        let mut out = Vec::new();
        s.handle(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn corrupts_only_the_chosen_call() {
        let mut s = server(1, Some(2));
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
        assert_eq!(answer(&mut s, call)["result"]["content"][0]["text"], "{}");
        assert_ne!(answer(&mut s, call)["result"]["content"][0]["text"], "{}");
        assert_eq!(answer(&mut s, call)["result"]["content"][0]["text"], "{}");
    }
}
