//! Drives real `toolgate` processes over stdio, each in front of the bench crate's fixture
//! MCP server (`toolgate-bench fixture-stdio`), the way an MCP client would: initialize,
//! then bursts of concurrent `tools/call`s, every answer classified.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any one answer may take before the test calls the call hung.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The fixture server: built with the workspace's binaries, next to `toolgate`.
pub fn fixture_binary() -> PathBuf {
    let toolgate = PathBuf::from(env!("CARGO_BIN_EXE_toolgate"));
    let fixture =
        toolgate.with_file_name(format!("toolgate-bench{}", std::env::consts::EXE_SUFFIX));
    assert!(
        fixture.exists(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins; \
         scripts/test.sh does)",
        fixture.display()
    );
    fixture
}

/// How toolgate answered one `tools/call`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Forwarded, and the tool answered.
    Success,
    /// Refused by policy: the denial text.
    Denied(String),
    /// Forwarded, and the server answered with a JSON-RPC error.
    Failed(i64),
    /// Refused because the counter store was unreachable (fail-closed): the message.
    StateUnavailable(String),
}

pub struct Gateway {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
    pub stderr: PathBuf,
}

impl Gateway {
    /// Starts `toolgate <args> -- toolgate-bench fixture-stdio <fixture_args>` and
    /// initializes a session. stderr goes to `<dir>/<name>.stderr`.
    pub fn start(dir: &Path, name: &str, args: &[String], fixture_args: &[&str]) -> Gateway {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(args)
            .arg("--")
            .arg(fixture_binary())
            .arg("fixture-stdio")
            .args(fixture_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut gateway = Gateway {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 1,
            stderr,
        };
        gateway.send(&[json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "toolgate-fleet-test", "version": "1"},
            },
        })]);
        let answer = gateway.receive();
        assert!(answer.get("result").is_some(), "initialize: {answer}");
        gateway.send(&[json!({"jsonrpc": "2.0", "method": "notifications/initialized"})]);
        gateway
    }

    fn send(&mut self, messages: &[Value]) {
        let mut text = String::new();
        for message in messages {
            text.push_str(&message.to_string());
            text.push('\n');
        }
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn receive(&mut self) -> Value {
        match self.lines.recv_timeout(ANSWER_WITHIN) {
            Ok(line) => serde_json::from_str(&line).unwrap(),
            Err(e) => panic!(
                "no answer within {ANSWER_WITHIN:?} ({e}); toolgate's stderr:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            ),
        }
    }

    /// Sends `n` calls of `tool` at once (one write) and returns their outcomes.
    pub fn call_many(&mut self, tool: &str, n: usize) -> Vec<Outcome> {
        let first = self.next_id;
        self.next_id += n as u64;
        let calls: Vec<Value> = (first..first + n as u64)
            .map(|id| {
                json!({
                    "jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": tool, "arguments": {"n": id}},
                })
            })
            .collect();
        self.send(&calls);
        let mut outcomes = Vec::with_capacity(n);
        while outcomes.len() < n {
            let answer = self.receive();
            let id = answer["id"].as_u64().unwrap();
            assert!((first..first + n as u64).contains(&id), "{answer}");
            outcomes.push(classify(&answer));
        }
        outcomes
    }

    pub fn call(&mut self, tool: &str) -> Outcome {
        self.call_many(tool, 1).remove(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Closes stdin and waits for toolgate to exit.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("toolgate did not exit after its client went away");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn classify(answer: &Value) -> Outcome {
    if let Some(error) = answer.get("error") {
        let code = error["code"].as_i64().unwrap();
        if code == -31001 {
            return Outcome::StateUnavailable(error["message"].as_str().unwrap().to_string());
        }
        return Outcome::Failed(code);
    }
    let result = &answer["result"];
    if result["isError"] == json!(true) {
        return Outcome::Denied(result["content"][0]["text"].as_str().unwrap().to_string());
    }
    assert!(result["content"][0]["text"].is_string(), "{answer}");
    Outcome::Success
}

/// Counts of each kind of outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub success: usize,
    pub denied: usize,
    pub failed: usize,
    pub unavailable: usize,
}

impl Tally {
    pub fn of(outcomes: &[Outcome]) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Success => tally.success += 1,
                Outcome::Denied(_) => tally.denied += 1,
                Outcome::Failed(_) => tally.failed += 1,
                Outcome::StateUnavailable(_) => tally.unavailable += 1,
            }
        }
        tally
    }

    pub fn forwarded(&self) -> usize {
        self.success + self.failed
    }

    pub fn add(&mut self, other: Tally) {
        self.success += other.success;
        self.denied += other.denied;
        self.failed += other.failed;
        self.unavailable += other.unavailable;
    }
}

/// Waits, if needed, so that the next `margin` does not cross a boundary of UTC-aligned
/// windows of `length` (the fleet tests use a day window and must stay inside one).
pub fn stay_inside_one_window(length: Duration, margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let length_ms = length.as_millis();
    let left = length_ms - now.as_millis() % length_ms;
    if left < margin.as_millis() {
        std::thread::sleep(Duration::from_millis(left as u64 + 50));
    }
}
