//! Prometheus metrics (docs/OBSERVABILITY.md), named after the OpenTelemetry MCP semantic
//! conventions where they have a name: what every gateway of the process decided, how long
//! calls took, the servers' health and the policy's reloads.
//!
//! Metrics watch the same events the audit log records ([`crate::audit::AuditSink`] hands
//! each one to [`Metrics::observe`] whether or not a log is written), so the two never
//! disagree about what happened. Label values come only from the policy (rule names), the
//! gateway config (server names) and the servers' own listings (tool names): a tool nobody
//! listed is counted as `(unlisted)`, so a client calling made-up names cannot grow the
//! series without end, and no argument value is ever a label.

mod listener;

use std::collections::{HashMap, HashSet};

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::audit::{AuditDecision, AuditEvent, Outcome};

pub use listener::{spawn, Exposition};

/// Tool names remembered from listings, across servers; past this, new names are counted as
/// unlisted.
const MAX_LISTED_TOOLS: usize = 10_000;

/// The label value of a tool nobody listed.
const UNLISTED: &str = "(unlisted)";

/// Upper bounds of the call-duration buckets, in seconds: the conventions' buckets (10 ms to
/// 300 s) below which a gateway's own answers (a denial in microseconds) need finer ones.
const DURATION_BUCKETS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    mcp_method_name: &'static str,
    gen_ai_tool_name: String,
    error_type: &'static str,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    rule: String,
    tool: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type DurationFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

/// The process's metrics, shared by every gateway in it.
pub struct Metrics {
    registry: Registry,
    durations: DurationFamily,
    decisions: Family<DecisionLabels, Counter>,
    upstream_up: Family<ServerLabels, Gauge>,
    reloads: Family<ResultLabels, Counter>,
    approvals_pending: Gauge,
    spans_dropped: Counter,
    /// The tools some listing named, by server.
    listed: RwLock<HashMap<String, HashSet<String>>>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let durations = DurationFamily::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "mcp_server_operation_duration",
            "Duration of the MCP requests toolgate answered, from the client's request to its answer",
            Unit::Seconds,
            durations.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "toolgate_decisions",
            "tools/call decisions, by decision, the rule that made it, tool and server",
            decisions.clone(),
        );
        let upstream_up = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "toolgate_upstream_up",
            "Whether a server of the gateway config is up (1) or down (0)",
            upstream_up.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "toolgate_policy_reloads",
            "Policy and gateway config reloads, by result",
            reloads.clone(),
        );
        let approvals_pending = Gauge::default();
        registry.register(
            "toolgate_approvals_pending",
            "Approval requests waiting for a person",
            approvals_pending.clone(),
        );
        let spans_dropped = Counter::default();
        registry.register(
            "toolgate_spans_dropped",
            "Trace spans not exported: the queue was full or the collector refused their batch",
            spans_dropped.clone(),
        );
        registry.register(
            "toolgate_build",
            "The toolgate build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            durations,
            decisions,
            upstream_up,
            reloads,
            approvals_pending,
            spans_dropped,
            listed: RwLock::new(HashMap::new()),
        }
    }

    /// Remembers tools a listing named, so calls to them are counted under their names.
    pub fn tools_listed<'a>(&self, server: Option<&str>, tools: impl IntoIterator<Item = &'a str>) {
        let server = server.unwrap_or_default();
        let mut listed = self.listed.write();
        let mut total: usize = listed.values().map(HashSet::len).sum();
        for tool in tools {
            if listed.get(server).is_some_and(|known| known.contains(tool)) {
                continue;
            }
            if total >= MAX_LISTED_TOOLS {
                return;
            }
            listed
                .entry(server.to_string())
                .or_default()
                .insert(tool.to_string());
            total += 1;
        }
    }

    fn tool_label(&self, server: &str, tool: &str) -> String {
        let listed = self.listed.read();
        let known = listed.get(server).is_some_and(|known| known.contains(tool));
        if known { tool } else { UNLISTED }.to_string()
    }

    /// Counts what an audit event says happened (`server`: the server the gateway serves,
    /// behind a gateway config).
    pub fn observe(&self, event: &AuditEvent, server: Option<&str>) {
        let server_label = server.unwrap_or_default();
        match event {
            AuditEvent::Decision(record) => {
                let tool = self.tool_label(server_label, &record.tool);
                self.decisions
                    .get_or_create(&DecisionLabels {
                        decision: decision_label(record.decision),
                        rule: record.rule.clone().unwrap_or_default(),
                        tool: tool.clone(),
                        server: server_label.to_string(),
                    })
                    .inc();
                self.durations
                    .get_or_create(&OperationLabels {
                        mcp_method_name: "tools/call",
                        gen_ai_tool_name: tool,
                        error_type: error_type(record.decision, record.outcome),
                        server: server_label.to_string(),
                    })
                    .observe(record.latency_us as f64 / 1_000_000.0);
            }
            AuditEvent::ServerHealth { up, .. } => {
                let labels = ServerLabels {
                    server: server_label.to_string(),
                };
                self.upstream_up.get_or_create(&labels).set(i64::from(*up));
            }
            AuditEvent::Reload { ok, .. } => {
                let result = if *ok { "ok" } else { "failed" };
                self.reloads.get_or_create(&ResultLabels { result }).inc();
            }
            _ => {}
        }
    }

    /// Counts trace spans that were not exported.
    pub fn spans_dropped(&self, spans: u64) {
        self.spans_dropped.inc_by(spans);
    }

    /// The metrics in the text exposition format, with the approvals waiting now.
    pub fn render(&self, approvals_pending: Option<usize>) -> String {
        if let Some(pending) = approvals_pending {
            self.approvals_pending
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // (Writing to a String cannot fail.)
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

pub(crate) fn decision_label(decision: AuditDecision) -> &'static str {
    match decision {
        AuditDecision::Allow => "allow",
        AuditDecision::Deny => "deny",
        AuditDecision::Hidden => "hidden",
        AuditDecision::ApprovalRequired => "approval_required",
        AuditDecision::Ambiguous => "ambiguous",
        AuditDecision::Error => "error",
        AuditDecision::WouldDeny => "would_deny",
        AuditDecision::WouldHide => "would_hide",
        AuditDecision::WouldRequireApproval => "would_require_approval",
        AuditDecision::Duplicate => "duplicate",
    }
}

/// The conventions' `error.type` of a call: empty when it succeeded.
pub(crate) fn error_type(decision: AuditDecision, outcome: Outcome) -> &'static str {
    match decision {
        AuditDecision::Deny => return "denied",
        AuditDecision::Hidden => return "unknown_tool",
        AuditDecision::Ambiguous => return "invalid_request",
        AuditDecision::Error => return "gateway_error",
        _ => {}
    }
    match outcome {
        Outcome::Result => "",
        Outcome::ToolError => "tool_error",
        Outcome::Error => "jsonrpc_error",
        Outcome::RefusedDownstream => "denied",
        Outcome::Timeout => "timeout",
        Outcome::Cancelled => "cancelled",
        Outcome::UpstreamGone => "upstream_gone",
        Outcome::NotForwarded => "not_forwarded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::DecisionRecord;

    fn decision(tool: &str, decision: AuditDecision, rule: Option<&str>) -> AuditEvent {
        AuditEvent::Decision(DecisionRecord {
            session: "s".into(),
            identity: Some("alice".into()),
            tool: tool.into(),
            decision,
            rule: rule.map(str::to_string),
            message: None,
            policy: "p".into(),
            counters: Vec::new(),
            outcome: Outcome::Result,
            not_counted: false,
            latency_us: 1_500,
            gateway_us: 1_500,
            args_hash: None,
            approval: None,
            redactions: None,
            withheld_by: None,
            arguments: None,
        })
    }

    #[test]
    fn listed_tools_are_labels_and_others_are_counted_together() {
        let metrics = Metrics::new();
        metrics.tools_listed(Some("files"), ["read", "write"]);
        metrics.observe(&decision("read", AuditDecision::Allow, None), Some("files"));
        metrics.observe(
            &decision("write", AuditDecision::Deny, Some("ro")),
            Some("files"),
        );
        for i in 0..50 {
            let made_up = format!("made_up_{i}");
            metrics.observe(
                &decision(&made_up, AuditDecision::Hidden, None),
                Some("files"),
            );
        }
        // The same name at another server was not listed there.
        metrics.observe(
            &decision("read", AuditDecision::Allow, None),
            Some("memory"),
        );
        let text = metrics.render(Some(2));
        assert!(
            text.contains(
                r#"toolgate_decisions_total{decision="allow",rule="",tool="read",server="files"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"toolgate_decisions_total{decision="deny",rule="ro",tool="write",server="files"} 1"#), "{text}");
        assert!(text.contains(r#"toolgate_decisions_total{decision="hidden",rule="",tool="(unlisted)",server="files"} 50"#), "{text}");
        assert!(
            text.contains(r#"tool="(unlisted)",server="memory"} 1"#),
            "{text}"
        );
        assert!(!text.contains("made_up"), "{text}");
        assert!(
            !text.contains("alice"),
            "identities are never labels: {text}"
        );
        assert!(text.contains("toolgate_approvals_pending 2"), "{text}");
        assert!(text.contains(r#"mcp_server_operation_duration_seconds_bucket{le="0.0025",mcp_method_name="tools/call",gen_ai_tool_name="read",error_type="",server="files"} 1"#), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn the_listed_names_are_bounded() {
        let metrics = Metrics::new();
        let names: Vec<String> = (0..MAX_LISTED_TOOLS + 10)
            .map(|i| format!("t{i}"))
            .collect();
        metrics.tools_listed(None, names.iter().map(String::as_str));
        let listed: usize = metrics.listed.read().values().map(HashSet::len).sum();
        assert_eq!(listed, MAX_LISTED_TOOLS);
    }
}
