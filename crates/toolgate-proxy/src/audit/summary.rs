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

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::time::{format_rfc3339_ms, parse_rfc3339_ms};

/// Lines longer than this are not ours (an audit line is a few hundred bytes, a few KiB with
/// many counters); they are skipped without being held, so a file without newlines cannot
/// make the reader load it whole.
const MAX_LINE_BYTES: usize = 1 << 20;

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
    /// Newest first, across all files and instances.
    pub recent_denials: Vec<Denial>,
    /// Newest first.
    pub failed_reloads: Vec<FailedReload>,
    pub failed_reloads_total: u64,
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
    pub other: u64,
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
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(summarizer.finish()),
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
    // Name order puts an instance's rotated files (`toolgate-X.<ms>.jsonl`, oldest stamp
    // first) before its live file, so lines with equal timestamps keep the order they were
    // written in.
    paths.sort();
    for path in paths {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            // Pruned by a running writer since the listing: nothing left to read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SummaryError::ReadFile { path, source }),
        };
        summarizer
            .read_from(BufReader::new(file))
            .map_err(|source| SummaryError::ReadFile { path, source })?;
    }
    Ok(summarizer.finish())
}

/// Accumulates a summary from any number of log streams, in any order.
pub struct Summarizer {
    options: SummaryOptions,
    /// Order of reading, to break timestamp ties: later-read lines were written later.
    seq: u64,
    files: usize,
    lines: u64,
    skipped: u64,
    events: u64,
    first_ms: Option<u64>,
    last_ms: Option<u64>,
    instances: HashMap<String, InstanceState>,
    decisions: DecisionCounts,
    uncounted: u64,
    deny_rules: HashMap<String, u64>,
    /// Call times (ms → calls) that may still fall inside the rate window; older ones are
    /// dropped as the newest timestamp advances, so this holds one window's calls at most.
    call_times: BTreeMap<u64, u64>,
    recent_denials: Newest<Denial>,
    failed_reloads: Newest<FailedReload>,
    failed_reloads_total: u64,
}

/// Ordering key of a line: its timestamp, then its reading order.
type Key = (u64, u64);

struct InstanceState {
    first_ms: u64,
    last: Key,
    last_event: String,
    calls: u64,
    denied: u64,
    policy: Option<(Key, String)>,
}

/// The fields of an audit line this reader uses; anything else on the line is ignored, so
/// lines from a newer writer with more fields still count.
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    instance: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    tool: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    policy: Option<Cow<'a, str>>,
    #[serde(default)]
    not_counted: bool,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(borrow, default)]
    errors: Vec<Cow<'a, str>>,
}

impl Summarizer {
    pub fn new(options: SummaryOptions) -> Summarizer {
        Summarizer {
            recent_denials: Newest::new(options.recent),
            failed_reloads: Newest::new(options.recent),
            options,
            seq: 0,
            files: 0,
            lines: 0,
            skipped: 0,
            events: 0,
            first_ms: None,
            last_ms: None,
            instances: HashMap::new(),
            decisions: DecisionCounts::default(),
            uncounted: 0,
            deny_rules: HashMap::new(),
            call_times: BTreeMap::new(),
            failed_reloads_total: 0,
        }
    }

    /// Reads one log file's lines. A final line without a newline is read like any other and
    /// skipped only if it does not parse.
    pub fn read_from(&mut self, mut reader: impl BufRead) -> io::Result<()> {
        self.files += 1;
        let mut buf = Vec::new();
        while let Some(read) = read_bounded_line(&mut reader, &mut buf)? {
            if read == LineRead::Whole && buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.lines += 1;
            self.seq += 1;
            let accepted = read == LineRead::Whole && self.add_line(&buf);
            if !accepted {
                self.skipped += 1;
            }
        }
        Ok(())
    }

    /// Takes one line into the figures; false when it is not an audit line.
    fn add_line(&mut self, bytes: &[u8]) -> bool {
        let Ok(line) = serde_json::from_slice::<RawLine<'_>>(bytes) else {
            return false;
        };
        let Some(ms) = parse_rfc3339_ms(&line.ts) else {
            return false;
        };
        let key = (ms, self.seq);
        match &*line.event {
            "decision" => {
                let (Some(tool), Some(decision)) = (&line.tool, &line.decision) else {
                    return false;
                };
                let denied = decision == "deny";
                match &**decision {
                    "allow" => self.decisions.allow += 1,
                    "deny" => self.decisions.deny += 1,
                    "hidden" => self.decisions.hidden += 1,
                    "approval_required" => self.decisions.approval_required += 1,
                    "error" => self.decisions.error += 1,
                    _ => self.decisions.other += 1,
                }
                if line.not_counted {
                    self.uncounted += 1;
                }
                self.add_call_time(ms);
                if denied {
                    if let Some(rule) = &line.rule {
                        *self.deny_rules.entry(rule.to_string()).or_default() += 1;
                    }
                    self.recent_denials.offer(key, || Denial {
                        ts: format_rfc3339_ms(ms),
                        instance: line.instance.to_string(),
                        tool: tool.to_string(),
                        rule: line.rule.as_deref().map(str::to_string),
                        message: line.message.as_deref().map(str::to_string),
                    });
                }
                let state = self.instance(&line.instance, key);
                state.calls += 1;
                state.denied += u64::from(denied);
            }
            "reload" => {
                let Some(ok) = line.ok else { return false };
                if !ok {
                    self.failed_reloads_total += 1;
                    self.failed_reloads.offer(key, || FailedReload {
                        ts: format_rfc3339_ms(ms),
                        instance: line.instance.to_string(),
                        error: line.errors.first().map(|e| e.to_string()),
                        error_count: line.errors.len(),
                    });
                }
            }
            // Startup, shutdown, and events of a newer writer: they only date the instance.
            _ => {}
        }
        // Only lines that name the policy in force move the instance's revision: a failed
        // reload leaves the old one running and carries none.
        let revision = match &*line.event {
            "decision" | "startup" => line.policy.as_deref(),
            "reload" if line.ok == Some(true) => line.policy.as_deref(),
            _ => None,
        }
        .map(str::to_string);
        let state = self.instance(&line.instance, key);
        if key >= state.last {
            state.last = key;
            state.last_event = line.event.to_string();
        }
        if let Some(revision) = revision {
            if state.policy.as_ref().is_none_or(|(k, _)| key >= *k) {
                state.policy = Some((key, revision));
            }
        }
        self.events += 1;
        self.first_ms = Some(self.first_ms.map_or(ms, |f| f.min(ms)));
        self.last_ms = Some(self.last_ms.map_or(ms, |l| l.max(ms)));
        self.prune_call_times();
        true
    }

    fn instance(&mut self, name: &str, key: Key) -> &mut InstanceState {
        let state = self
            .instances
            .entry(name.to_string())
            .or_insert_with(|| InstanceState {
                first_ms: key.0,
                last: key,
                last_event: String::new(),
                calls: 0,
                denied: 0,
                policy: None,
            });
        state.first_ms = state.first_ms.min(key.0);
        state
    }

    fn add_call_time(&mut self, ms: u64) {
        let after_start = self
            .window_end()
            .is_none_or(|end| ms > end.saturating_sub(self.window_ms()));
        let before_now = self.options.now_ms.is_none_or(|now| ms <= now);
        if after_start && before_now {
            *self.call_times.entry(ms).or_default() += 1;
        }
    }

    /// Drops call times that can no longer be inside the window: its end only moves later.
    fn prune_call_times(&mut self) {
        let Some(end) = self.window_end() else { return };
        let start = end.saturating_sub(self.window_ms());
        while let Some(oldest) = self.call_times.first_entry() {
            if *oldest.key() > start {
                break;
            }
            oldest.remove();
        }
    }

    fn window_end(&self) -> Option<u64> {
        self.options.now_ms.or(self.last_ms)
    }

    fn window_minutes(&self) -> u32 {
        self.options.window_minutes.max(1)
    }

    fn window_ms(&self) -> u64 {
        u64::from(self.window_minutes()) * MINUTE_MS
    }

    pub fn finish(self) -> AuditSummary {
        let rate = self.window_end().map(|end| {
            let minutes = self.window_minutes();
            let start = end.saturating_sub(self.window_ms());
            let mut per_minute: HashMap<u64, u64> = HashMap::new();
            let mut calls = 0;
            // The window is (start, end]; a call after an injected "now" is not in it.
            for (&ms, &n) in self.call_times.range(start + 1..=end) {
                calls += n;
                *per_minute.entry((end - ms) / MINUTE_MS).or_default() += n;
            }
            CallRate {
                minutes,
                from: format_rfc3339_ms(start),
                to: format_rfc3339_ms(end),
                calls,
                per_minute: calls as f64 / f64::from(minutes),
                peak_per_minute: per_minute.values().copied().max().unwrap_or(0),
            }
        });

        let mut top_deny_rules: Vec<RuleCount> = self
            .deny_rules
            .into_iter()
            .map(|(rule, count)| RuleCount { rule, count })
            .collect();
        top_deny_rules.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
        top_deny_rules.truncate(self.options.top_rules);

        let mut instances: Vec<(Key, InstanceSummary)> = self
            .instances
            .into_iter()
            .map(|(instance, s)| {
                let summary = InstanceSummary {
                    first_seen: format_rfc3339_ms(s.first_ms),
                    last_seen: format_rfc3339_ms(s.last.0),
                    running: s.last_event != "shutdown",
                    last_event: s.last_event,
                    calls: s.calls,
                    denied: s.denied,
                    policy: s.policy.map(|(_, p)| p),
                    instance,
                };
                (s.last, summary)
            })
            .collect();
        instances.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.instance.cmp(&y.instance)));

        let calls = self.decisions.allow
            + self.decisions.deny
            + self.decisions.hidden
            + self.decisions.approval_required
            + self.decisions.error
            + self.decisions.other;
        AuditSummary {
            files: self.files,
            lines: self.lines,
            skipped_lines: self.skipped,
            events: self.events,
            first_ts: self.first_ms.map(format_rfc3339_ms),
            last_ts: self.last_ms.map(format_rfc3339_ms),
            instances: instances.into_iter().map(|(_, s)| s).collect(),
            calls,
            deny_rate: if calls == 0 {
                0.0
            } else {
                self.decisions.deny as f64 / calls as f64
            },
            decisions: self.decisions,
            uncounted_calls: self.uncounted,
            rate,
            top_deny_rules,
            recent_denials: self.recent_denials.newest_first(),
            failed_reloads: self.failed_reloads.newest_first(),
            failed_reloads_total: self.failed_reloads_total,
        }
    }
}

/// The newest `cap` items offered, by key: a min-heap whose root is the first to go.
struct Newest<T> {
    cap: usize,
    heap: BinaryHeap<Reverse<Keyed<T>>>,
}

/// Orders by key alone, so the items need no order of their own.
struct Keyed<T> {
    key: Key,
    item: T,
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl<T> Newest<T> {
    fn new(cap: usize) -> Newest<T> {
        Newest {
            cap,
            heap: BinaryHeap::new(),
        }
    }

    /// Keeps the item if it is among the newest; builds it only then, so the strings of the
    /// many lines that fall out are never copied.
    fn offer(&mut self, key: Key, make: impl FnOnce() -> T) {
        if self.cap == 0 {
            return;
        }
        if self.heap.len() == self.cap {
            match self.heap.peek() {
                Some(Reverse(oldest)) if oldest.key < key => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Reverse(Keyed { key, item: make() }));
    }

    fn newest_first(self) -> Vec<T> {
        // Ascending order of `Reverse` is newest first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(k)| k.item)
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    Whole,
    /// Longer than `MAX_LINE_BYTES`; its bytes were discarded.
    TooLong,
}

/// Reads the next line into `buf`, without its newline, holding at most `MAX_LINE_BYTES` of
/// it. `None` at the end of the input.
fn read_bounded_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<LineRead>> {
    buf.clear();
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Whole
            }));
        }
        read_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = newline.map_or(available.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Whole
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fmt::Write as _;

    /// `2026-01-01T10:MM:SS.000Z` in ms, to write and expect lines by minute and second.
    fn at(minute: u64, second: u64) -> u64 {
        1_767_261_600_000 + minute * MINUTE_MS + second * 1000
    }

    fn decision(ms: u64, instance: &str, tool: &str, decision: &str, rule: Option<&str>) -> String {
        let mut line = format!(
            r#"{{"ts":"{}","instance":"{instance}","event":"decision","session":"s1","tool":"{tool}","decision":"{decision}""#,
            format_rfc3339_ms(ms)
        );
        if let Some(rule) = rule {
            let _ = write!(line, r#","rule":"{rule}","message":"{rule} says no""#);
        }
        let outcome = if decision == "allow" {
            "result"
        } else {
            "not_forwarded"
        };
        let _ = write!(
            line,
            r#","policy":"rev-1","outcome":"{outcome}","latency_us":42,"args_hash":"hmac-sha256:00"}}"#
        );
        line
    }

    fn event(ms: u64, instance: &str, rest: &str) -> String {
        format!(
            r#"{{"ts":"{}","instance":"{instance}",{rest}}}"#,
            format_rfc3339_ms(ms)
        )
    }

    fn write(dir: &Path, name: &str, lines: &[String], tail: &str) {
        let mut text = lines.join("\n");
        text.push('\n');
        text.push_str(tail);
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// Two instances; `a` rotated once and shut down, `b` still running with a torn last line,
    /// a foreign line and a failed reload. Denials interleave in time across the files.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(
            p,
            "toolgate-a.1767262000000.jsonl",
            &[
                event(
                    at(0, 0),
                    "a",
                    r#""event":"startup","policy":"rev-1","version":"0.1.0""#,
                ),
                decision(at(0, 10), "a", "read_file", "allow", None),
                decision(at(1, 0), "a", "delete_repo", "deny", Some("no-deletes")),
                decision(at(2, 0), "a", "read_file", "allow", None),
            ],
            "",
        );
        write(
            p,
            "toolgate-a.jsonl",
            &[
                decision(at(5, 0), "a", "create_refund", "deny", Some("refund-cap")),
                decision(at(5, 30), "a", "secret_tool", "hidden", None),
                event(
                    at(6, 0),
                    "a",
                    r#""event":"reload","ok":true,"policy":"rev-2","errors":[]"#,
                ),
                decision(at(7, 0), "a", "delete_repo", "deny", Some("no-deletes"))
                    .replace("rev-1", "rev-2"),
                event(
                    at(9, 0),
                    "a",
                    r#""event":"shutdown","reason":"stdin closed""#,
                ),
            ],
            "",
        );
        write(
            p,
            "toolgate-b.jsonl",
            &[
                event(
                    at(3, 0),
                    "b",
                    r#""event":"startup","policy":"rev-1","version":"0.1.0""#,
                ),
                decision(at(3, 0), "b", "read_file", "allow", None),
                decision(at(4, 0), "b", "delete_repo", "deny", Some("no-deletes")),
                "not json at all".to_string(),
                event(
                    at(6, 30),
                    "b",
                    r#""event":"reload","ok":false,"policy":null,"errors":["line 3: unknown key","line 9: bad"]"#,
                ),
                decision(at(8, 0), "b", "create_refund", "deny", Some("refund-cap")),
                decision(
                    at(10, 0),
                    "b",
                    "approve",
                    "approval_required",
                    Some("human"),
                ),
                decision(at(10, 30), "b", "charge", "error", None),
                // Let through uncounted by fail-open.
                decision(at(11, 0), "b", "charge", "allow", None)
                    .replace(r#""latency_us""#, r#""not_counted":true,"latency_us""#),
            ],
            r#"{"ts":"2026-01-01T10:12:00.000Z","instance":"b","event":"deci"#,
        );
        std::fs::write(p.join("notes.txt"), "not read: wrong extension\n").unwrap();
        dir
    }

    #[test]
    fn summarises_instances_decisions_and_skipped_lines() {
        let dir = fixture();
        let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
        assert_eq!(s.files, 3);
        assert_eq!(s.lines, 19);
        // The foreign line and the torn last line.
        assert_eq!(s.skipped_lines, 2);
        assert_eq!(s.events, 17);
        assert_eq!(s.first_ts.as_deref(), Some("2026-01-01T10:00:00.000Z"));
        assert_eq!(s.last_ts.as_deref(), Some("2026-01-01T10:11:00.000Z"));
        assert_eq!(s.calls, 12);
        assert_eq!(
            s.decisions,
            DecisionCounts {
                allow: 4,
                deny: 5,
                hidden: 1,
                approval_required: 1,
                error: 1,
                other: 0,
            }
        );
        assert_eq!(s.deny_rate, 5.0 / 12.0);
        assert_eq!(s.uncounted_calls, 1);

        assert_eq!(
            s.instances,
            vec![
                InstanceSummary {
                    instance: "b".into(),
                    first_seen: "2026-01-01T10:03:00.000Z".into(),
                    last_seen: "2026-01-01T10:11:00.000Z".into(),
                    last_event: "decision".into(),
                    running: true,
                    calls: 6,
                    denied: 2,
                    policy: Some("rev-1".into()),
                },
                InstanceSummary {
                    instance: "a".into(),
                    first_seen: "2026-01-01T10:00:00.000Z".into(),
                    last_seen: "2026-01-01T10:09:00.000Z".into(),
                    last_event: "shutdown".into(),
                    running: false,
                    calls: 6,
                    denied: 3,
                    policy: Some("rev-2".into()),
                },
            ]
        );
    }

    #[test]
    fn ranks_deny_rules_and_orders_denials_across_files_by_time() {
        let dir = fixture();
        let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
        assert_eq!(
            s.top_deny_rules,
            vec![
                RuleCount {
                    rule: "no-deletes".into(),
                    count: 3
                },
                RuleCount {
                    rule: "refund-cap".into(),
                    count: 2
                },
            ]
        );
        let order: Vec<(&str, &str, &str)> = s
            .recent_denials
            .iter()
            .map(|d| (d.ts.as_str(), d.instance.as_str(), d.tool.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("2026-01-01T10:08:00.000Z", "b", "create_refund"),
                ("2026-01-01T10:07:00.000Z", "a", "delete_repo"),
                ("2026-01-01T10:05:00.000Z", "a", "create_refund"),
                ("2026-01-01T10:04:00.000Z", "b", "delete_repo"),
                ("2026-01-01T10:01:00.000Z", "a", "delete_repo"),
            ]
        );
        assert_eq!(s.recent_denials[0].rule.as_deref(), Some("refund-cap"));
        assert_eq!(
            s.recent_denials[0].message.as_deref(),
            Some("refund-cap says no")
        );

        let limited = summarize_dir(
            dir.path(),
            SummaryOptions {
                recent: 2,
                top_rules: 1,
                ..SummaryOptions::default()
            },
        )
        .unwrap();
        let ts: Vec<&str> = limited
            .recent_denials
            .iter()
            .map(|d| d.ts.as_str())
            .collect();
        assert_eq!(ts, ["2026-01-01T10:08:00.000Z", "2026-01-01T10:07:00.000Z"]);
        assert_eq!(limited.top_deny_rules.len(), 1);
        assert_eq!(limited.top_deny_rules[0].rule, "no-deletes");
    }

    #[test]
    fn reports_failed_reloads_with_their_first_error() {
        let s = summarize_dir(fixture().path(), SummaryOptions::default()).unwrap();
        assert_eq!(s.failed_reloads_total, 1);
        assert_eq!(
            s.failed_reloads,
            vec![FailedReload {
                ts: "2026-01-01T10:06:30.000Z".into(),
                instance: "b".into(),
                error: Some("line 3: unknown key".into()),
                error_count: 2,
            }]
        );
    }

    #[test]
    fn rate_counts_the_window_ending_at_the_newest_line_or_at_now() {
        let dir = fixture();
        // Newest line 10:11:00; five minutes back is (10:06:00, 10:11:00]: 10:07, 10:08,
        // 10:10, 10:10:30 and 10:11. Minutes count back from 10:11, so 10:10:30 shares the
        // last minute with 10:11 and 10:10:00 starts the one before: the busiest holds two.
        let s = summarize_dir(
            dir.path(),
            SummaryOptions {
                window_minutes: 5,
                ..SummaryOptions::default()
            },
        )
        .unwrap();
        let rate = s.rate.unwrap();
        assert_eq!(rate.from, "2026-01-01T10:06:00.000Z");
        assert_eq!(rate.to, "2026-01-01T10:11:00.000Z");
        assert_eq!(rate.calls, 5);
        assert_eq!(rate.per_minute, 1.0);
        assert_eq!(rate.peak_per_minute, 2);

        // An injected now before the end of the log: later calls are outside the window.
        let s = summarize_dir(
            dir.path(),
            SummaryOptions {
                window_minutes: 2,
                now_ms: Some(at(5, 30)),
                ..SummaryOptions::default()
            },
        )
        .unwrap();
        let rate = s.rate.unwrap();
        // (10:03:30, 10:05:30]: 10:04, 10:05:00 and 10:05:30, the last two in one minute.
        assert_eq!(rate.calls, 3);
        assert_eq!(rate.per_minute, 1.5);
        assert_eq!(rate.peak_per_minute, 2);

        // The default hour covers the whole log.
        let s = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
        assert_eq!(s.rate.unwrap().calls, 12);
    }

    #[test]
    fn missing_or_empty_directory_is_an_empty_summary() {
        let dir = tempfile::tempdir().unwrap();
        let empty = summarize_dir(dir.path(), SummaryOptions::default()).unwrap();
        assert_eq!(empty.files, 0);
        assert_eq!(empty.events, 0);
        assert_eq!(empty.rate, None);
        assert_eq!(empty.deny_rate, 0.0);
        let missing =
            summarize_dir(&dir.path().join("nowhere"), SummaryOptions::default()).unwrap();
        assert_eq!(missing, empty);
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit");
        std::fs::write(&file, "").unwrap();
        let error = summarize_dir(&file, SummaryOptions::default()).unwrap_err();
        assert!(
            matches!(&error, SummaryError::ListDir { dir, .. } if *dir == file),
            "{error:?}"
        );
    }

    #[test]
    fn overlong_lines_are_skipped_without_being_held() {
        let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(decision(at(0, 0), "a", "t", "allow", None).as_bytes());
        text.extend_from_slice(b"\n\n");
        text.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES * 2));
        // A small buffer, so each line arrives in many pieces.
        let reader = BufReader::with_capacity(4096, text.as_slice());
        let mut summarizer = Summarizer::new(SummaryOptions::default());
        summarizer.read_from(reader).unwrap();
        let s = summarizer.finish();
        assert_eq!((s.lines, s.skipped_lines, s.calls), (3, 2, 1));
    }

    #[test]
    fn bounded_reader_splits_lines_across_buffer_refills() {
        let text = b"ab\ncdefgh\n\nij";
        let mut reader = BufReader::with_capacity(3, &text[..]);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(read) = read_bounded_line(&mut reader, &mut buf).unwrap() {
            assert_eq!(read, LineRead::Whole);
            lines.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(lines, ["ab", "cdefgh", "", "ij"]);
    }

    #[test]
    fn unknown_kinds_and_incomplete_lines() {
        let lines = [
            // A decision kind from a newer writer: a call, of kind `other`.
            decision(at(0, 0), "a", "t", "escalate", None),
            // A decision line missing its tool is not an audit line.
            event(at(0, 1), "a", r#""event":"decision","decision":"allow""#),
            // A reload without `ok` is not either.
            event(at(0, 2), "a", r#""event":"reload","errors":[]"#),
            // An event from a newer writer only dates the instance.
            event(at(0, 3), "a", r#""event":"drain","extra":{"n":[1,2]}"#),
            // A timestamp the writer never makes.
            r#"{"ts":"yesterday","instance":"a","event":"startup"}"#.to_string(),
        ];
        let mut summarizer = Summarizer::new(SummaryOptions::default());
        summarizer.read_from(lines.join("\n").as_bytes()).unwrap();
        let s = summarizer.finish();
        assert_eq!((s.calls, s.decisions.other), (1, 1));
        assert_eq!((s.events, s.skipped_lines), (2, 3));
        assert_eq!(s.instances[0].last_event, "drain");
        assert!(s.instances[0].running);
    }
}
