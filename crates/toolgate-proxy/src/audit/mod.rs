//! The audit log: one JSON line per decision and per lifecycle event, written by a thread of
//! its own so the call path never waits on a disk.
//!
//! Lines are written whole and flushed one by one (a crash loses at most the line being
//! written). Files rotate by size and old ones are pruned. Arguments are never written raw:
//! `args_hash` is an HMAC of the canonical arguments under a key kept beside the state, so
//! identical calls can be correlated without the log holding their content.

mod args_hash;
pub mod chain;
mod time;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

pub use args_hash::{canonical_json, ArgsHasher};
pub use time::{format_rfc3339_ms, parse_rfc3339_ms};
pub use writer::AuditConfig;

/// One counter touched by a call.
#[derive(Debug, Clone, Serialize)]
pub struct CounterRecord {
    pub key: String,
    pub amount: toolgate_policy::Amount,
    pub max: toolgate_policy::Amount,
    /// The counter's window (not in the line: the key and the policy revision name it).
    #[serde(skip)]
    pub window: toolgate_policy::Window,
}

/// A decision on a `tools/call` and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub tool: String,
    pub decision: AuditDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub policy: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<CounterRecord>,
    pub outcome: Outcome,
    /// True when the store was unreachable and fail-open let the call through uncounted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_counted: bool,
    pub latency_us: u64,
    /// The part of `latency_us` that was the gateway's: until the call was forwarded, or
    /// all of it when the gateway answered the call itself.
    pub gateway_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_hash: Option<String>,
    /// The approval request the call waited on or consumed (`apr_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Matches the `redact` rules found in the result, by `<rule>/<detector>` (never the
    /// values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redactions: Option<toolgate_policy::redact::RedactionCounts>,
    /// The `redact` rule (`on_match: block`) that withheld the result from the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld_by: Option<String>,
    /// The arguments, when the policy asks for them (`audit: {arguments: full}`), or their
    /// redacted view (`redacted`: keys, types, booleans and small numbers).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<AuditedArguments>,
}

/// The arguments of a call as its audit line holds them.
#[derive(Debug, Clone, Serialize)]
pub enum AuditedArguments {
    #[serde(rename = "arguments")]
    Full(serde_json::Value),
    #[serde(rename = "arguments_redacted")]
    Redacted(serde_json::Value),
}

/// What the gateway decided about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allow,
    /// Refused by a rule, a limit, or a person (an approval denied, withdrawn or expired).
    Deny,
    /// A hidden or unlisted tool, answered as unknown.
    Hidden,
    ApprovalRequired,
    /// A call that reads differently to different readers; never decided.
    Ambiguous,
    /// Refused before a decision could be carried out (a store unreachable, no id to forward
    /// under).
    Error,
    /// Forwarded, although a dry-run rule (or the policy in shadow mode) would have refused
    /// it, hidden the tool, or held it for approval.
    WouldDeny,
    WouldHide,
    WouldRequireApproval,
    /// Not forwarded: an identical call within its `idempotency_window` was, and this one got
    /// that call's answer.
    Duplicate,
}

impl From<toolgate_policy::ShadowDecision> for AuditDecision {
    fn from(decision: toolgate_policy::ShadowDecision) -> Self {
        use toolgate_policy::ShadowDecision;
        match decision {
            ShadowDecision::WouldDeny => AuditDecision::WouldDeny,
            ShadowDecision::WouldHide => AuditDecision::WouldHide,
            ShadowDecision::WouldRequireApproval => AuditDecision::WouldRequireApproval,
        }
    }
}

/// What became of a call upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server answered with a result.
    Result,
    /// The server answered with a result that says `isError: true`.
    ToolError,
    /// The server answered with a JSON-RPC error.
    Error,
    /// A server's own policy, behind a gateway config, refused the call: it did not run.
    RefusedDownstream,
    Timeout,
    Cancelled,
    UpstreamGone,
    NotForwarded,
}

impl Outcome {
    /// The name the audit line gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Result => "result",
            Outcome::ToolError => "tool_error",
            Outcome::Error => "error",
            Outcome::RefusedDownstream => "refused_downstream",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::UpstreamGone => "upstream_gone",
            Outcome::NotForwarded => "not_forwarded",
        }
    }
}

/// Everything that goes into the log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    Decision(DecisionRecord),
    Startup {
        policy: String,
        version: &'static str,
    },
    Reload {
        ok: bool,
        policy: Option<String>,
        errors: Vec<String>,
    },
    Shutdown {
        reason: String,
    },
    /// The HTTP listener refused an OAuth access token, and why (never the token).
    TokenRefused {
        reason: String,
    },
    /// A server behind the gateway became ready, or went away (with why); the line's
    /// `server` names it.
    ServerHealth {
        up: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A tool whose definition looks poisoned, reported once per definition.
    PoisonedTool {
        tool: String,
        /// `warn`, or `hide` when the policy hides it.
        action: &'static str,
        findings: Vec<toolgate_classify::poisoning::Finding>,
    },
    /// A tool definition (or the server's instructions) that departs from its pin, reported
    /// once per definition (`docs/INTEGRITY.md`).
    ToolChanged {
        server: String,
        /// `None`: the server's `initialize` instructions.
        #[serde(skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        /// `changed`, `new` or `renamed`.
        change: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        renamed_from: Option<String>,
        /// What the policy does with it: `hide`, `deny` or `allow`.
        action: &'static str,
        /// SHA-256 of the pinned definition (none for a new tool).
        #[serde(skip_serializing_if = "Option::is_none")]
        pinned: Option<String>,
        /// SHA-256 of the definition listed now.
        #[serde(skip_serializing_if = "Option::is_none")]
        seen: Option<String>,
        /// One line per changed member (`crate::pinning::json_diff`).
        diff: Vec<String>,
    },
    /// A person made what a server lists now the pin (`toolgate pins approve`).
    PinApproved {
        server: String,
        /// `None`: the server's instructions.
        #[serde(skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        /// SHA-256 of the definition now pinned.
        pinned: String,
        by: String,
    },
    /// Pins forgotten (`toolgate pins reset`): the next listing is trusted on first use.
    PinsReset {
        /// `None`: every server's.
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        count: usize,
        by: String,
    },
    /// Text that looks poisoned outside a tool's definition — the server's instructions, a
    /// prompt — reported once per text.
    PoisonedText {
        /// `instructions`, or `prompt <name>`.
        what: String,
        /// `warn`, or `hide` when the policy hides it.
        action: &'static str,
        findings: Vec<toolgate_classify::poisoning::Finding>,
    },
    /// What `redact` rules found in a result that is not a call's (a `resources/read`).
    Redacted {
        session: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
        method: &'static str,
        redactions: toolgate_policy::redact::RedactionCounts,
        #[serde(skip_serializing_if = "Option::is_none")]
        withheld_by: Option<String>,
    },
    /// A transition of an approval request (see `docs/APPROVALS.md`).
    Approval(crate::approvals::ApprovalAudit),
    /// Audit events the gateway could not queue because the writer was behind (written as
    /// soon as it catches up, so no loss is silent).
    EventsDropped {
        count: u64,
    },
    /// A message the gateway dropped instead of relaying it.
    Dropped {
        session: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        what: DroppedMessage,
        reason: String,
    },
}

/// What kind of message toolgate dropped instead of relaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DroppedMessage {
    /// A `tools/call` notification: it cannot be answered, so it is never forwarded.
    CallWithoutId,
    /// The server answered a call after it had timed out or been cancelled.
    LateResult,
    /// The server answered under an id toolgate never sent, or a second time.
    UnknownAnswer,
}

/// Where audit events go. Cloning is cheap; dropping the last clone flushes and closes.
#[derive(Clone)]
pub struct AuditSink {
    instance: String,
    queue: Option<Arc<writer::Queue>>,
    /// Written as `server` on every line of this sink (a gateway fronting many servers).
    server: Option<Arc<str>>,
    /// Told of every event, whether or not a log is written.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Told of every event too, for the web console.
    console: Option<Arc<crate::console::ConsoleData>>,
}

impl AuditSink {
    /// A sink that drops everything (no `--audit-dir`).
    pub fn disabled(instance: String) -> AuditSink {
        AuditSink {
            instance,
            queue: None,
            server: None,
            metrics: None,
            console: None,
        }
    }

    /// Starts the writer thread for `config.dir`.
    pub fn open(instance: String, config: AuditConfig) -> std::io::Result<AuditSink> {
        let queue = writer::spawn(&instance, config)?;
        Ok(AuditSink {
            instance,
            queue: Some(Arc::new(queue)),
            server: None,
            metrics: None,
            console: None,
        })
    }

    /// The same sink, counting every event in `metrics` too.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> AuditSink {
        self.metrics = Some(metrics);
        self
    }

    /// The same sink, telling the web console of every event too.
    pub fn with_console(mut self, console: Arc<crate::console::ConsoleData>) -> AuditSink {
        self.console = Some(console);
        self
    }

    /// What the web console knows, when it is on.
    pub fn console(&self) -> Option<&Arc<crate::console::ConsoleData>> {
        self.console.as_ref()
    }

    /// The server this sink's lines are about (behind a gateway config).
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The metrics every event is counted in, when they are on.
    pub fn metrics(&self) -> Option<&Arc<crate::metrics::Metrics>> {
        self.metrics.as_ref()
    }

    /// Tells the metrics which tools a listing named (their calls are counted by name), and
    /// the console what they are.
    pub(crate) fn tools_listed(
        &self,
        definitions: &[toolgate_classify::ToolDef],
        results: &[toolgate_classify::Classification],
    ) {
        if let Some(metrics) = &self.metrics {
            let names = definitions.iter().map(|d| d.name.as_str());
            metrics.tools_listed(self.server.as_deref(), names);
        }
        if let Some(console) = &self.console {
            let server = self.server.as_deref().unwrap_or_default();
            console.catalogue.listed(server, definitions, results);
        }
    }

    /// The same log, with every line saying which server it is about.
    pub fn for_server(&self, server: &str) -> AuditSink {
        AuditSink {
            server: Some(Arc::from(server)),
            ..self.clone()
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues an event, stamped now. Never blocks the caller, and costs it no serialization:
    /// the writer thread turns events into lines. When the writer is far behind (by count or
    /// by bytes), the event is dropped, counted, and the count written as an
    /// `events_dropped` line as soon as the writer catches up, rather than stalling tool calls.
    pub fn record(&self, event: AuditEvent) {
        self.enqueue(event, None);
    }

    /// Queues an event and waits, at most `limit`, until its line is written: for the last
    /// line before the process exits, which the writer thread would otherwise not outlive.
    pub fn record_and_flush(&self, event: AuditEvent, limit: std::time::Duration) {
        let (written, done) = std::sync::mpsc::sync_channel(1);
        if self.enqueue(event, Some(written)) {
            let _ = done.recv_timeout(limit);
        }
    }

    /// Queues an event; false when it was dropped (or there is no log).
    fn enqueue(&self, event: AuditEvent, written: Option<std::sync::mpsc::SyncSender<()>>) -> bool {
        if let Some(metrics) = &self.metrics {
            metrics.observe(&event, self.server.as_deref());
        }
        if self.console.is_none() && self.queue.is_none() {
            return false;
        }
        // One clock read for the console and the line alike.
        let ts_ms = now_ms();
        if let Some(console) = &self.console {
            console.feed.observe(&event, self.server.as_deref(), ts_ms);
        }
        let Some(queue) = &self.queue else {
            return false;
        };
        let size = event.estimated_len();
        let queued = writer::Queued {
            ts_ms,
            event,
            server: self.server.clone(),
            written,
            size,
        };
        // A send fails only when the writer thread is gone: that loss is counted too.
        let full = queue.bytes.fetch_add(size, Ordering::Relaxed) + size > writer::MAX_QUEUED_BYTES
            || queue.sender.send(queued).is_err();
        if full {
            queue.bytes.fetch_sub(size, Ordering::Relaxed);
            if queue.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "audit writer is behind; audit events are being dropped and counted"
                );
            }
        }
        !full
    }
}

/// About how many bytes a value takes as JSON: its strings, and a few for everything else.
fn json_len(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(json_len).sum::<usize>() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + json_len(v))
                .sum::<usize>()
                + 2
        }
        _ => 24,
    }
}

fn counts_len(counts: &toolgate_policy::redact::RedactionCounts) -> usize {
    counts.keys().map(|k| k.len() + 24).sum()
}

impl AuditEvent {
    /// Whether the event has a `server` member of its own.
    fn names_server(&self) -> bool {
        matches!(
            self,
            AuditEvent::ToolChanged { .. }
                | AuditEvent::PinApproved { .. }
                | AuditEvent::PinsReset { .. }
        )
    }

    /// About how many bytes the event's line takes: what the writer's queue is bounded by.
    fn estimated_len(&self) -> usize {
        const FIXED: usize = 160;
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        FIXED
            + match self {
                AuditEvent::Decision(d) => {
                    d.session.len()
                        + text(&d.identity)
                        + d.tool.len()
                        + text(&d.rule)
                        + text(&d.message)
                        + d.policy.len()
                        + text(&d.args_hash)
                        + text(&d.approval)
                        + d.counters.iter().map(|c| c.key.len() + 64).sum::<usize>()
                        + d.arguments.as_ref().map_or(0, |a| match a {
                            AuditedArguments::Full(v) | AuditedArguments::Redacted(v) => {
                                json_len(v)
                            }
                        })
                        + d.redactions.as_ref().map_or(0, counts_len)
                        + text(&d.withheld_by)
                }
                AuditEvent::Redacted {
                    session,
                    identity,
                    redactions,
                    withheld_by,
                    ..
                } => session.len() + text(identity) + counts_len(redactions) + text(withheld_by),
                AuditEvent::Reload { errors, .. } => errors.iter().map(String::len).sum(),
                AuditEvent::TokenRefused { reason } => reason.len(),
                AuditEvent::Shutdown { reason } => reason.len(),
                AuditEvent::Dropped {
                    session,
                    identity,
                    tool,
                    reason,
                    ..
                } => session.len() + text(identity) + text(tool) + reason.len(),
                AuditEvent::Approval(a) => {
                    a.tool.len()
                        + a.rule.len()
                        + text(&a.note)
                        + text(&a.reason)
                        + text(&a.identity)
                        + text(&a.session)
                        + 128
                }
                AuditEvent::PoisonedTool {
                    tool: what,
                    findings,
                    ..
                }
                | AuditEvent::PoisonedText { what, findings, .. } => {
                    what.len()
                        + findings
                            .iter()
                            .map(|f| f.evidence.len() + f.place.len() + 64)
                            .sum::<usize>()
                }
                AuditEvent::ToolChanged {
                    server,
                    tool,
                    renamed_from,
                    diff,
                    ..
                } => {
                    server.len()
                        + text(tool)
                        + text(renamed_from)
                        + diff.iter().map(String::len).sum::<usize>()
                        + 160
                }
                AuditEvent::PinApproved {
                    server, tool, by, ..
                } => server.len() + text(tool) + by.len() + 64,
                AuditEvent::PinsReset { server, by, .. } => text(server) + by.len(),
                AuditEvent::ServerHealth { reason, .. } => text(reason),
                AuditEvent::Startup { .. } | AuditEvent::EventsDropped { .. } => 0,
            }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The default audit directory beside the state.
pub fn default_audit_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("audit")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outcome_names_are_those_of_the_line() {
        use Outcome::*;
        let all = [
            Result,
            ToolError,
            Error,
            RefusedDownstream,
            Timeout,
            Cancelled,
            UpstreamGone,
            NotForwarded,
        ];
        for outcome in all {
            let serialized = serde_json::to_value(outcome).unwrap();
            assert_eq!(serialized.as_str(), Some(outcome.as_str()));
        }
    }

    #[test]
    fn the_queue_is_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let sink = AuditSink::open("q".into(), AuditConfig::new(dir.path().to_path_buf())).unwrap();
        let queue = sink.queue.clone().unwrap();
        // Pretend the writer is far behind: the next event does not fit and is dropped.
        queue
            .bytes
            .fetch_add(writer::MAX_QUEUED_BYTES, Ordering::Relaxed);
        sink.record(AuditEvent::Shutdown {
            reason: "x".repeat(1024),
        });
        assert_eq!(
            queue.bytes.load(Ordering::Relaxed),
            writer::MAX_QUEUED_BYTES
        );
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 1);
        queue
            .bytes
            .fetch_sub(writer::MAX_QUEUED_BYTES, Ordering::Relaxed);
        sink.record(AuditEvent::Shutdown {
            reason: "fits".into(),
        });
        drop(queue);
        drop(sink);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let text = std::fs::read_to_string(dir.path().join("toolgate-q.jsonl")).unwrap();
            if text.contains("fits") || std::time::Instant::now() > deadline {
                assert!(text.contains("fits") && !text.contains("xxxx"), "{text}");
                // The loss is in the log, before the next line that could be written.
                let dropped = text.find(r#""event":"events_dropped","count":1"#);
                assert!(
                    dropped.is_some_and(|at| at < text.find("fits").unwrap_or(0)),
                    "{text}"
                );
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
