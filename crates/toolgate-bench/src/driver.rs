//! The load driver: runs the process under test (the fixture, or toolgate in front of it) as a
//! child on piped stdio, performs the MCP handshake, and measures calls against it.
//!
//! Single-threaded on purpose: a call's latency is the time from writing its line to reading
//! its answer on the same thread, with no hand-off between threads in the measured path. With
//! K calls in flight the driver queues a new call for each answer and flushes only before it
//! would block on a read, so a burst of answers is refilled with one write. Writing from the
//! reading thread cannot deadlock here: throughput phases use small calls, so at most K small
//! lines are ever queued in either pipe, far below the pipe's capacity.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::workload::Workload;

/// A process to benchmark: what to run and where its stderr goes.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to the environment the bench itself runs in.
    pub env: Vec<(OsString, OsString)>,
    /// Kept in a file so a failure can quote the child's last words.
    pub stderr_path: PathBuf,
}

/// Calls completed by a throughput phase, and how long they took.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub calls: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// A running MCP session with the process under test.
pub struct Session {
    pid: u32,
    child: Arc<Mutex<Child>>,
    writer: Option<BufWriter<ChildStdin>>,
    reader: BufReader<ChildStdout>,
    line: Vec<u8>,
    request: Vec<u8>,
    next_id: u64,
    stderr_path: PathBuf,
    watchdog: Watchdog,
}

/// Protocol version the driver asks for; the fixture echoes whatever it is given.
const PROTOCOL_VERSION: &str = "2025-06-18";

impl Session {
    /// Start the process and complete the MCP handshake. Returns the session and the time from
    /// spawn to the `initialize` answer (the startup cost a client sees). `stall` is how long
    /// the child may go without answering before it is killed and the run fails.
    pub fn start(
        launch: &Launch,
        workload: &Workload,
        stall: Duration,
    ) -> anyhow::Result<(Session, Duration)> {
        let stderr = File::create(&launch.stderr_path)
            .with_context(|| format!("cannot create {}", launch.stderr_path.display()))?;
        let spawned = Instant::now();
        let mut child = Command::new(&launch.program)
            .args(&launch.args)
            .envs(launch.env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", launch.program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the child's stdio was not piped");
        };
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        let mut session = Session {
            pid,
            watchdog: Watchdog::start(Arc::clone(&child), stall),
            child,
            writer: Some(BufWriter::with_capacity(1 << 16, stdin)),
            reader: BufReader::with_capacity(1 << 16, stdout),
            line: Vec::with_capacity(1 << 12),
            request: Vec::with_capacity(1 << 12),
            next_id: 0,
            stderr_path: launch.stderr_path.clone(),
        };
        let initialize = serde_json::json!({
            "jsonrpc": "2.0", "id": session.take_id(), "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "toolgate-bench", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        session.send_json(&initialize)?;
        let answer = session.read_json()?;
        let startup = spawned.elapsed();
        if answer["result"]["protocolVersion"] != PROTOCOL_VERSION {
            bail!("unexpected initialize answer: {answer}");
        }
        session.send_json(&serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/initialized",
        }))?;
        session.check_tools(workload)?;
        Ok((session, startup))
    }

    /// Process id of the direct child (toolgate itself when proxied, else the fixture).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Make sure every tool the workload calls is listed (through the proxy, that means the
    /// policy lets the client see it), so a misconfigured scenario fails before it measures.
    fn check_tools(&mut self, workload: &Workload) -> anyhow::Result<()> {
        let id = self.take_id();
        self.send_json(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))?;
        let answer = self.read_json()?;
        let listed: HashSet<&str> = answer["result"]["tools"]
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
        Ok(())
    }

    /// `calls` calls one at a time; returns each call's round-trip time.
    pub fn latency(&mut self, calls: usize, workload: &Workload) -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let id = self.take_id();
            self.request.clear();
            workload.write_request(id, &mut self.request);
            // Building the request is the client's cost, not the proxy's: start the clock after.
            let start = Instant::now();
            let writer = self.writer.as_mut().context("the session is closed")?;
            writer.write_all(&self.request)?;
            writer.flush()?;
            let elapsed = loop {
                self.read_line()?;
                let elapsed = start.elapsed();
                match workload.verify(&self.line)? {
                    Some(got) if got == id => break elapsed,
                    Some(got) => bail!("answer to call {got} arrived while waiting for {id}"),
                    None => continue,
                }
            };
            samples.push(elapsed);
        }
        Ok(samples)
    }

    /// Keep `in_flight` calls outstanding for `duration`, then wait for the stragglers.
    pub fn throughput(
        &mut self,
        in_flight: usize,
        duration: Duration,
        workload: &Workload,
    ) -> anyhow::Result<Throughput> {
        let mut pending = HashSet::with_capacity(in_flight);
        let start = Instant::now();
        let deadline = start + duration;
        for _ in 0..in_flight.max(1) {
            let id = self.queue_call(workload)?;
            pending.insert(id);
        }
        self.writer()?.flush()?;
        let mut calls = 0u64;
        while !pending.is_empty() {
            self.read_line()?;
            let Some(id) = workload.verify(&self.line)? else {
                continue;
            };
            if !pending.remove(&id) {
                bail!("an answer to call {id}, which is not outstanding (duplicate or unknown)");
            }
            calls += 1;
            if Instant::now() < deadline {
                let id = self.queue_call(workload)?;
                pending.insert(id);
            }
            // Flush only when the next read would block: answers already buffered are
            // refilled together, as a real client pipelining calls would.
            if !self.reader.buffer().contains(&b'\n') {
                self.writer()?.flush()?;
            }
        }
        Ok(Throughput {
            calls,
            elapsed: start.elapsed(),
        })
    }

    /// Close the child's stdin (how a stdio MCP client ends a session) and wait for it to exit.
    pub fn close(&mut self) -> anyhow::Result<()> {
        drop(self.writer.take());
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let exited = self.lock_child()?.try_wait()?;
            if exited.is_some() {
                return Ok(());
            }
            if Instant::now() >= give_up {
                self.lock_child()?.kill()?;
                bail!("the process did not exit within 10 s of its stdin closing");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn queue_call(&mut self, workload: &Workload) -> anyhow::Result<u64> {
        let id = self.take_id();
        self.request.clear();
        workload.write_request(id, &mut self.request);
        let writer = self.writer.as_mut().context("the session is closed")?;
        writer.write_all(&self.request)?;
        Ok(id)
    }

    fn writer(&mut self) -> anyhow::Result<&mut BufWriter<ChildStdin>> {
        self.writer.as_mut().context("the session is closed")
    }

    fn send_json(&mut self, message: &serde_json::Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        let writer = self.writer()?;
        writer.write_all(&line)?;
        writer.flush()?;
        Ok(())
    }

    /// The next answer (skipping notifications), parsed; for the handshake only.
    fn read_json(&mut self) -> anyhow::Result<serde_json::Value> {
        loop {
            self.read_line()?;
            let value: serde_json::Value = serde_json::from_slice(&self.line)
                .context("the server sent a line that is not JSON")?;
            if value.get("method").is_none() {
                return Ok(value);
            }
        }
    }

    /// Read the next non-empty line into `self.line`, failing with the child's stderr if the
    /// child has gone.
    fn read_line(&mut self) -> anyhow::Result<()> {
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line)?;
            if n == 0 {
                let why = if self.watchdog.fired() {
                    "was killed after answering nothing for too long"
                } else {
                    "closed its stdout"
                };
                bail!(
                    "the process under test {why}; its stderr ends with:\n{}",
                    stderr_tail(&self.stderr_path)
                );
            }
            self.watchdog.progress();
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            if !self.line.is_empty() {
                return Ok(());
            }
        }
    }

    fn lock_child(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Child>> {
        self.child
            .lock()
            .map_err(|_| anyhow::anyhow!("the child handle was poisoned"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.watchdog.stop();
        // A session dropped on an error path must not leave its process running.
        if let Ok(mut child) = self.child.lock() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The last couple of KiB of a stderr file, for error messages.
fn stderr_tail(path: &std::path::Path) -> String {
    const TAIL: u64 = 2048;
    let Ok(mut file) = File::open(path) else {
        return "(no stderr)".to_owned();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    if text.trim().is_empty() {
        "(nothing)".to_owned()
    } else {
        text
    }
}

/// Kills the child when it stops answering, so a hung proxy fails the run instead of hanging
/// it (the driver's reads block and have no timeout of their own).
struct Watchdog {
    progress: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn start(child: Arc<Mutex<Child>>, stall: Duration) -> Watchdog {
        let progress = Arc::new(AtomicU64::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let thread = {
            let (progress, stopped, fired) = (
                Arc::clone(&progress),
                Arc::clone(&stopped),
                Arc::clone(&fired),
            );
            std::thread::spawn(move || {
                let mut seen = progress.load(Ordering::Relaxed);
                let mut since = Instant::now();
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    let now = progress.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        since = Instant::now();
                    } else if since.elapsed() > stall {
                        fired.store(true, Ordering::Relaxed);
                        if let Ok(mut child) = child.lock() {
                            let _ = child.kill();
                        }
                        return;
                    }
                }
            })
        };
        Watchdog {
            progress,
            stopped,
            fired,
            thread: Some(thread),
        }
    }

    fn progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::Relaxed)
    }

    fn stop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
