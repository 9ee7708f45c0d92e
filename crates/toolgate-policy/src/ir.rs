//! The compiled policy: what every policy form turns into, and all that `decide` reads.
//!
//! Everything here can only hold valid values — an explicit `max` on every limit, compiled
//! regexes, typed operator values — so evaluation never meets a malformed rule. The types are
//! plain data; evaluation lives in `decide`.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde::Serialize;

use crate::amount::Amount;
use crate::args::ArgPath;
use crate::window::Window;

/// Which policy language a file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFormat {
    /// Intercept's YAML (`tools.<name>.rules[]`), including the rule forms of PolicyLayer's
    /// public tool pages and toolgate's extensions.
    Intercept,
    /// PolicyLayer's hosted-gateway JSON (`require`, `deny_if`, `limits`, `all_tools`).
    PolicyLayer,
}

/// What happens to a tool the policy does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    Allow,
    Deny,
}

/// Whether a policy's decisions are carried out, or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Decisions are carried out (the default).
    #[default]
    Enforce,
    /// Every rule is a dry run: calls are forwarded, and what the policy would have done is
    /// audited (`would_deny`, `would_hide`, `would_require_approval`).
    Shadow,
}

/// What the audit log records of a call's arguments (`audit: {arguments: …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditArguments {
    /// A keyed hash only: identical calls can be correlated, their content not read.
    #[default]
    Hash,
    /// Top-level keys with each value's type, keeping booleans and small numbers (what an
    /// approval request shows).
    Redacted,
    /// The arguments as the call carried them: everything, secrets included.
    Full,
}

/// What the gateway does with a tool whose definition looks poisoned (`poisoning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoisoningPolicy {
    pub on_finding: OnFinding,
    /// The least severity that counts.
    pub severity: FindingSeverity,
}

impl Default for PoisoningPolicy {
    fn default() -> Self {
        PoisoningPolicy {
            on_finding: OnFinding::Warn,
            severity: FindingSeverity::Medium,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFinding {
    /// Log and audit the tool once; it stays usable.
    Warn,
    /// Remove it from `tools/list` and answer calls to it as to an unknown tool.
    Hide,
}

/// What the gateway does when a server's tool definitions differ from their pins
/// (`pinning`, docs/INTEGRITY.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PinningPolicy {
    pub on_change: OnPinChange,
    pub on_new_tool: OnNewTool,
    /// `lock`: pins come from this file (as written, relative to the policy file) instead of
    /// being trusted on first use.
    pub lock: Option<String>,
}

impl PinningPolicy {
    /// Whether drift from a pin can keep a tool from a client (hide or refuse it).
    pub fn can_withhold(&self) -> bool {
        self.on_change != OnPinChange::Warn || self.on_new_tool == OnNewTool::Hide
    }
}

/// What happens to a pinned tool whose definition changed (or to changed instructions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnPinChange {
    /// Remove it from `tools/list`; calls are answered as to an unknown tool.
    Hide,
    /// Keep it listed; refuse calls, saying its definition changed since it was approved.
    Deny,
    /// Allow it, and audit the change (the default).
    #[default]
    Warn,
}

/// What happens to a tool first seen after the server's first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnNewTool {
    /// Pin it as seen (the default).
    #[default]
    Allow,
    /// Keep it hidden until it is approved.
    Hide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    Medium,
    High,
}

/// A compiled, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A short hash of the source text; names the policy in denials and the audit log.
    pub revision: String,
    pub format: PolicyFormat,
    pub description: Option<String>,
    /// `mode: shadow` (or `--shadow`): nothing is refused, everything is recorded.
    pub mode: PolicyMode,
    pub default: DefaultAction,
    /// Replaces the `[POLICY DENIED]` prefix of denial messages when set.
    pub deny_prefix: Option<String>,
    pub hidden: HiddenTools,
    /// Rules of each listed tool, in file order.
    pub tools: HashMap<String, Vec<Rule>>,
    /// Rules of the `"*"` entry (PolicyLayer's `all_tools`), applied after a tool's own.
    pub wildcard: Vec<Rule>,
    /// Rules by risk category (`categories.<Category>`), used as the own rules of a tool the
    /// policy does not name, once the gateway knows the tool's category.
    pub categories: HashMap<String, Vec<Rule>>,
    /// Bearer-token identities for HTTP listeners (`identities`); empty when not configured.
    pub identities: crate::identities::Identities,
    /// The HTTP listener as an OAuth 2.1 resource server (`oauth`); none when not configured.
    pub oauth: Option<OAuthSettings>,
    /// The token toolgate sends to an `--upstream` server (`upstream_auth`).
    pub upstream_auth: Option<UpstreamAuth>,
    /// The `approvals` block: defaults (already applied to the rules) and notifications.
    pub approvals: crate::approvals::ApprovalsConfig,
    /// `idempotency_window` in milliseconds, by tool (`"*"`: every tool).
    pub idempotency_windows: HashMap<String, u64>,
    /// `audit: {arguments: hash | redacted | full}`.
    pub audit_arguments: AuditArguments,
    /// The `redact` rules each tool's results go through, by tool (`"*"`: every tool).
    pub redactions: HashMap<String, Vec<std::sync::Arc<crate::redact::Redaction>>>,
    /// `poisoning: {on_finding, severity}` (default: warn at medium).
    pub poisoning: PoisoningPolicy,
    /// `pinning: {on_change, on_new_tool, lock}` (default: warn, allow, trust on first use).
    pub pinning: PinningPolicy,
}

/// The tools removed from `tools/list` and refused as unknown.
#[derive(Debug, Clone, Default)]
pub struct HiddenTools {
    pub all: bool,
    pub names: HashSet<String>,
}

impl HiddenTools {
    pub fn contains(&self, tool: &str) -> bool {
        self.all || self.names.contains(tool)
    }
}

/// One rule: an effect guarded by conditions, and the counters it limits.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Where the rule was written, e.g. `tools.create_issue.rules[1]`.
    pub origin: String,
    pub effect: Effect,
    pub conditions: Vec<Condition>,
    pub limits: Vec<Limit>,
    /// The message the agent receives when this rule denies the call.
    pub message: Option<String>,
    /// `dry_run: true`: what the rule would do is recorded, never done; its limits count in
    /// shadow counters of their own.
    pub dry_run: bool,
}

/// What a rule does with its conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Every condition must hold, else the call is denied (Intercept `evaluate`,
    /// PolicyLayer `require`). A rule that only limits counters has no conditions.
    Require,
    /// The call is denied when every condition holds; with no conditions, always
    /// (Intercept `deny`, PolicyLayer `deny_if`).
    Deny,
    /// Lists the tool and lets the call through this rule (`action: allow`).
    Allow,
    /// The call needs a person's approval when every condition holds (or always,
    /// with no conditions). A matching `Deny` rule still wins.
    RequireApproval(ApprovalSettings),
}

/// How an approval is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalSettings {
    /// How long a request stays pending before it expires, in milliseconds.
    pub timeout_ms: u64,
    pub mode: ApprovalMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Answer at once and let the agent retry the identical call once approved.
    Retry,
    /// Hold the call open until a person decides or the timeout passes.
    Hold,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            timeout_ms: 30 * 60 * 1000,
            mode: ApprovalMode::Retry,
        }
    }
}

/// What a condition reads: the call's arguments, or the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConditionPath {
    Argument(ArgPath),
    Identity(crate::caller::IdentityPath),
}

impl std::fmt::Display for ConditionPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConditionPath::Argument(path) => path.fmt(f),
            ConditionPath::Identity(path) => path.fmt(f),
        }
    }
}

/// A test on one argument.
#[derive(Debug, Clone)]
pub struct Condition {
    pub path: ConditionPath,
    pub operator: Operator,
    /// The condition as written, e.g. `args.amount lte 50000`, for traces.
    pub text: String,
}

/// The eleven operators, each with its value already checked and converted.
#[derive(Debug, Clone)]
pub enum Operator {
    Eq(serde_json::Value),
    Neq(serde_json::Value),
    In(Vec<serde_json::Value>),
    NotIn(Vec<serde_json::Value>),
    Lt(serde_json::Number),
    Lte(serde_json::Number),
    Gt(serde_json::Number),
    Gte(serde_json::Number),
    /// Shared, not cloned: a cloned `Regex` gets a cache pool of its own (about 1.5 KB, and
    /// a search cache once used), so a pattern used by a thousand rules cost that a thousand
    /// times.
    Regex(std::sync::Arc<Regex>),
    Contains(serde_json::Value),
    Exists(bool),
}

impl Operator {
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Eq(_) => "eq",
            Operator::Neq(_) => "neq",
            Operator::In(_) => "in",
            Operator::NotIn(_) => "not_in",
            Operator::Lt(_) => "lt",
            Operator::Lte(_) => "lte",
            Operator::Gt(_) => "gt",
            Operator::Gte(_) => "gte",
            Operator::Regex(_) => "regex",
            Operator::Contains(_) => "contains",
            Operator::Exists(_) => "exists",
        }
    }
}

/// A counter a call must fit under.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub counter: String,
    /// `_global` for counters shared by every tool, else the tool the rule belongs to;
    /// `None` for tool-scoped counters of `"*"` rules, which count per called tool.
    pub namespace: Option<String>,
    pub scope: Scope,
    pub window: Window,
    /// The largest value the counter may reach, after this call's increment.
    pub max: Amount,
    pub increment: Increment,
}

/// What a counter is partitioned by, besides its namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// One counter for everyone.
    Shared,
    /// One counter per client session.
    Session,
    /// One counter per identity (PolicyLayer's `scope: grant`).
    Identity,
    /// One counter per value of an argument.
    Argument(ArgPath),
}

/// How much a call adds to a counter.
#[derive(Debug, Clone, PartialEq)]
pub enum Increment {
    Fixed(Amount),
    /// The value of a numeric argument (spend); a missing, non-numeric or negative value
    /// denies the call.
    FromArgument(ArgPath),
}

/// The namespace used for counters shared by all tools.
pub const GLOBAL_NAMESPACE: &str = "_global";

/// The risk categories `categories:` may name (as `toolgate-classify` assigns them).
pub const CATEGORY_NAMES: [&str; 6] = [
    "Read",
    "Write",
    "Execute",
    "Destructive",
    "Financial",
    "Other",
];

/// `oauth`: how the HTTP listener accepts access tokens from an authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The authorization server's issuer URL (tokens' `iss`).
    pub issuer: String,
    /// This gateway's canonical URL: tokens must name it in `aud`.
    pub resource: String,
    pub scopes_supported: Vec<String>,
    /// Scopes every request's token must carry.
    pub required_scopes: Vec<String>,
    /// The claim that names the caller (limits, approvals, audit).
    pub identity_claim: String,
    /// For opaque tokens: RFC 7662 introspection with these credentials.
    pub introspection: Option<OAuthIntrospection>,
    /// How far `exp` and `nbf` may be off this machine's clock.
    pub leeway_seconds: u64,
}

/// The environment variables holding the client credentials toolgate introspects with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthIntrospection {
    pub client_id_env: String,
    pub client_secret_env: String,
}

/// `upstream_auth`: an OAuth client-credentials token toolgate fetches and sends upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAuth {
    pub token_url: String,
    pub client_id_env: String,
    pub client_secret_env: String,
    pub scopes: Vec<String>,
    /// The RFC 8707 resource indicator to ask the token for.
    pub resource: Option<String>,
}
