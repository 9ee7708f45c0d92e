//! Summaries of an audit directory, for `toolgate status`: which instances ran, how calls were
//! decided, which rules deny most, the latest denials and failed reloads.
//!
//! The log is read as a stream, one bounded line at a time, and no figure grows with the number
//! of lines: counts (per instance and per deny rule), the newest N of each list (a small heap),
//! and the call times inside the rate window only. A log of many rotated 64 MiB files therefore
//! costs time, not memory. Lines that are not audit lines — a line torn by a crash or read while
//! being written, another program's output in the same directory — are counted as skipped and
//! otherwise ignored, so a damaged log still summarises.
//!
//! Reading is not atomic against a running writer: a file rotated between listing the
//! directory and opening it may be missed. A status report is a snapshot, so that is accepted
//! rather than locked against.
//!
//! `summarizer.rs` turns lines into figures; `newest.rs` keeps the newest few of a list; this
//! file holds what a summary is and reads a directory of logs into one.

mod newest;
mod summarizer;
#[cfg(test)]
mod tests;

use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use summarizer::Summarizer;

const MINUTE_MS: u64 = 60_000;

/// What to summarise, and relative to when.
#[derive(Debug, Clone)]
pub struct SummaryOptions {
    /// Length of the call-rate window, in minutes (0 is taken as 1).
    pub window_minutes: u32,
    /// How many recent denials and failed reloads to list.
    pub recent: usize,
    /// How many deny rules to list, most frequent first.
    pub top_rules: usize,
    /// The end of the call-rate window, in ms since the epoch. `None` uses the newest
    /// timestamp in the log, so the figures describe the log rather than the reader's clock
    /// (and a test's expectations do not depend on when it runs).
    pub now_ms: Option<u64>,
}

impl Default for SummaryOptions {
    fn default() -> SummaryOptions {
        SummaryOptions {
            window_minutes: 60,
            recent: 10,
            top_rules: 10,
            now_ms: None,
        }
    }
}

/// Why an audit directory could not be summarised. A missing directory is not one of them: it
/// summarises as empty.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("cannot list the audit directory {}", dir.display())]
    ListDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the audit file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Everything `toolgate status` reports. Timestamps are in the log's own format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditSummary {
    /// `*.jsonl` files read.
    pub files: usize,
    /// Non-blank lines read, audit lines or not.
    pub lines: u64,
    /// Lines that were not audit lines (torn, foreign, too long) and were ignored.
    pub skipped_lines: u64,
    /// Audit lines of any event.
    pub events: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    /// Most recently seen first.
    pub instances: Vec<InstanceSummary>,
    /// Decision events: every `tools/call` that reached the gateway's decision step.
    pub calls: u64,
    pub decisions: DecisionCounts,
    /// `deny` decisions over calls (0 when there are none). Hidden tools, approvals and errors
    /// are not denials by a rule, so they are not in it.
    pub deny_rate: f64,
    /// Calls that fail-open let through while the counter store was unreachable.
    pub uncounted_calls: u64,
    /// `None` only when the log has no timestamp and no "now" was given.
    pub rate: Option<CallRate>,
    /// Most frequent first; ties by rule name.
    pub top_deny_rules: Vec<RuleCount>,
    /// The dry-run rules behind shadow decisions, most frequent first.
    pub top_shadow_rules: Vec<RuleCount>,
    /// Newest first, across all files and instances.
    pub recent_denials: Vec<Denial>,
    /// Newest first.
    pub failed_reloads: Vec<FailedReload>,
    pub failed_reloads_total: u64,
    /// Tool definitions that departed from their pins (`tool_changed`), newest first.
    pub tool_changes: Vec<ToolChange>,
    pub tool_changes_total: u64,
    /// Tools, instructions and prompts reported as looking poisoned.
    pub poisoned_total: u64,
    /// Servers behind a gateway config: their calls and their latest health.
    pub servers: Vec<ServerSummary>,
}

/// A server behind a gateway config, from its decision and `server_health` lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSummary {
    pub name: String,
    pub calls: u64,
    pub denied: u64,
    /// Whether its latest health line says it is up (`None`: no health line yet).
    pub up: Option<bool>,
    pub since: Option<String>,
    /// Why it went down, when it is down.
    pub reason: Option<String>,
}

/// A `tool_changed` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolChange {
    pub ts: String,
    pub instance: String,
    pub server: String,
    /// `None`: the server's instructions.
    pub tool: Option<String>,
    pub change: String,
    pub action: String,
}

/// One proxy process, as its lines tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSummary {
    pub instance: String,
    pub first_seen: String,
    pub last_seen: String,
    /// The kind of its newest line (`startup`, `decision`, `reload`, `shutdown`).
    pub last_event: String,
    /// True unless its newest line is a shutdown. A process killed without one still looks
    /// running: the log cannot tell a crash from a quiet process.
    pub running: bool,
    pub calls: u64,
    pub denied: u64,
    /// The newest policy revision it reported.
    pub policy: Option<String>,
}

/// Decision events by kind. Kinds this reader does not know (from a newer writer) are `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecisionCounts {
    pub allow: u64,
    pub deny: u64,
    pub hidden: u64,
    pub approval_required: u64,
    pub error: u64,
    /// Shadow decisions: calls forwarded that a dry-run rule (or a policy in shadow mode)
    /// would have refused, hidden or held for approval.
    pub would_deny: u64,
    pub would_hide: u64,
    pub would_require_approval: u64,
    /// Not forwarded: an identical call within its `idempotency_window` was.
    pub duplicate: u64,
    pub other: u64,
}

impl DecisionCounts {
    pub fn shadow(&self) -> u64 {
        self.would_deny + self.would_hide + self.would_require_approval
    }
}

/// Calls in the `minutes` up to and including `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRate {
    pub minutes: u32,
    /// Exclusive start of the window.
    pub from: String,
    /// Inclusive end of the window.
    pub to: String,
    pub calls: u64,
    /// `calls / minutes`.
    pub per_minute: f64,
    /// The busiest single minute of the window, counting back from `to`.
    pub peak_per_minute: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    pub rule: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub ts: String,
    pub instance: String,
    pub tool: String,
    pub rule: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedReload {
    pub ts: String,
    pub instance: String,
    /// The first validation error; the others are usually consequences of it.
    pub error: Option<String>,
    pub error_count: usize,
}

/// Reads every `*.jsonl` file directly in `dir` (all instances, live and rotated files) and
/// summarises them. A directory that does not exist summarises as empty.
pub fn summarize_dir(dir: &Path, options: SummaryOptions) -> Result<AuditSummary, SummaryError> {
    let mut summarizer = Summarizer::new(options);
    for_each_audit_file(dir, |reader| summarizer.read_from(reader))?;
    Ok(summarizer.finish())
}

/// Calls `read` with each audit file of `dir` (`*.jsonl`, every instance, live and rotated),
/// in name order: an instance's rotated files (`toolgate-X.<ms>.jsonl`, oldest stamp first)
/// come before its live file, so lines with equal timestamps keep the order they were written
/// in. A directory that does not exist has no files.
pub fn for_each_audit_file(
    dir: &Path,
    mut read: impl FnMut(BufReader<std::fs::File>) -> io::Result<()>,
) -> Result<(), SummaryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SummaryError::ListDir {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SummaryError::ListDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "jsonl") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    for path in paths {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            // Pruned by a running writer since the listing: nothing left to read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SummaryError::ReadFile { path, source }),
        };
        read(BufReader::new(file)).map_err(|source| SummaryError::ReadFile { path, source })?;
    }
    Ok(())
}
