//! From a located document to a [`Policy`]: format detection, the top-level keys every form
//! shares, and dispatch to the form's own rule compiler.

mod approvals;
mod conditions;
mod identities;
mod intercept;
mod limits;
mod oauth;
mod pinning;
mod policylayer;
pub(crate) mod reader;
mod redact;
mod schema;
mod spend;
pub(crate) mod upstream_auth;

use std::collections::{HashMap, HashSet};

use limits::Owner;
use reader::{child_path, index_path, Reader};

use crate::diagnostics::{Diagnostic, Location};
use crate::ir::{
    AuditArguments, DefaultAction, FindingSeverity, HiddenTools, OnFinding, PinningPolicy,
    PoisoningPolicy, Policy, PolicyFormat, PolicyMode, Rule,
};
use crate::source::{parse_document, Node, NodeKind};

pub use conditions::{OPERATORS, REGEX_MAX_LEN, REGEX_SIZE_LIMIT};
pub use schema::{json_schema, SchemaForm};

pub(crate) const INTERCEPT_KEYS: &[&str] = &[
    "version",
    "description",
    "default",
    "hide",
    "tools",
    "deny_prefix",
    "identities",
    "oauth",
    "upstream_auth",
    "approvals",
    "categories",
    "mode",
    "audit",
    "redact",
    "poisoning",
    "pinning",
];
pub(crate) const POLICYLAYER_KEYS: &[&str] = &[
    "version",
    "description",
    "default",
    "hide",
    "tools",
    "all_tools",
    "deny_prefix",
    "identities",
    "oauth",
    "upstream_auth",
    "approvals",
    "categories",
    "mode",
    "audit",
    "poisoning",
    "pinning",
];

/// Parses and compiles policy text. On failure, every problem found, in file order.
pub fn compile(text: &str) -> Result<Policy, Vec<Diagnostic>> {
    let root = parse_document(text)?;
    let format = detect_format(&root, text);
    let mut reader = Reader::default();
    let policy = compile_root(&mut reader, &root, format, String::new()).map(|mut policy| {
        policy.revision = revision_of(&policy);
        policy
    });
    let mut diagnostics = reader.diagnostics;
    if diagnostics.is_empty() {
        if let Some(policy) = policy {
            return Ok(policy);
        }
        diagnostics.push(Diagnostic::new(
            Location::start(),
            "",
            "the policy could not be compiled",
        ));
    }
    diagnostics.sort_by_key(|d| d.location);
    Err(diagnostics)
}

/// PolicyLayer's form is recognised by its own keys (`all_tools`, or `require`, `deny_if`,
/// `limits` under a tool); Intercept's by `rules`. A file with neither (only empty tool
/// entries) means the same in both; JSON text then reads as PolicyLayer's.
fn detect_format(root: &Node, text: &str) -> PolicyFormat {
    if root.get("all_tools").is_some() {
        return PolicyFormat::PolicyLayer;
    }
    if let Some(NodeKind::Mapping(tools)) = root.get("tools").map(|n| &n.kind) {
        for (_, tool) in tools {
            if let NodeKind::Mapping(entries) = &tool.kind {
                if entries.iter().any(|(k, _)| k.name == "rules") {
                    return PolicyFormat::Intercept;
                }
                if entries
                    .iter()
                    .any(|(k, _)| policylayer::tool_keys().contains(&k.name.as_str()))
                {
                    return PolicyFormat::PolicyLayer;
                }
            }
        }
    }
    if text.trim_start().starts_with('{') {
        PolicyFormat::PolicyLayer
    } else {
        PolicyFormat::Intercept
    }
}

fn compile_root(
    reader: &mut Reader,
    root: &Node,
    format: PolicyFormat,
    revision: String,
) -> Option<Policy> {
    let keys = match format {
        PolicyFormat::Intercept => INTERCEPT_KEYS,
        PolicyFormat::PolicyLayer => POLICYLAYER_KEYS,
    };
    let entries = reader.mapping(root, "", keys)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };

    match get("version") {
        Some(node) => {
            let version = match &node.kind {
                NodeKind::String(s) | NodeKind::Number(s) => Some(s.as_str()),
                _ => None,
            };
            if version != Some("1") {
                reader.error_with_hint(
                    node.location,
                    "version",
                    format!("version must be \"1\", got {}", node.kind),
                    "set version: \"1\"",
                );
            }
        }
        None => reader.error_with_hint(
            root.location,
            "",
            "missing `version`",
            "add version: \"1\" at the top",
        ),
    }

    let description = get("description").and_then(|n| reader.string(n, "description"));
    let mode = match get("mode") {
        None => PolicyMode::Enforce,
        Some(node) => match reader.name(node, "mode").as_deref() {
            Some("enforce") => PolicyMode::Enforce,
            Some("shadow") => PolicyMode::Shadow,
            Some(other) => {
                reader.error_with_hint(
                    node.location,
                    "mode",
                    format!("mode must be \"enforce\" or \"shadow\", got {other:?}"),
                    "shadow forwards every call and audits what the policy would have done",
                );
                PolicyMode::Enforce
            }
            None => PolicyMode::Enforce,
        },
    };
    let deny_prefix = get("deny_prefix").and_then(|n| reader.string(n, "deny_prefix"));
    let default = match get("default") {
        None => DefaultAction::Allow,
        Some(node) => match reader.name(node, "default").as_deref() {
            Some("allow") => DefaultAction::Allow,
            Some("deny") => DefaultAction::Deny,
            Some(other) => {
                reader.error_with_hint(
                    node.location,
                    "default",
                    format!("default must be \"allow\" or \"deny\", got {other:?}"),
                    "deny lets through only the tools listed under tools; allow lets through everything not denied",
                );
                DefaultAction::Allow
            }
            None => DefaultAction::Allow,
        },
    };
    let audit_arguments = get("audit")
        .map(|n| compile_audit(reader, n))
        .unwrap_or_default();
    let poisoning = get("poisoning")
        .map(|n| compile_poisoning(reader, n))
        .unwrap_or_default();
    let pinning = get("pinning")
        .map(|n| pinning::compile_pinning(reader, n))
        .unwrap_or_default();
    let hidden = get("hide")
        .map(|n| compile_hide(reader, n))
        .unwrap_or_default();
    let identities = get("identities")
        .map(|n| identities::compile_identities(reader, n))
        .unwrap_or_default();
    let oauth = get("oauth").and_then(|n| oauth::compile_oauth(reader, n));
    let upstream_auth = get("upstream_auth")
        .and_then(|n| upstream_auth::compile_upstream_auth(reader, n, "upstream_auth"));
    // Before the tools: the block's defaults apply to every `require_approval` rule.
    let approvals = get("approvals")
        .map(|n| approvals::compile_approvals(reader, n))
        .unwrap_or_default();
    reader.approval_defaults = approvals.defaults.clone();
    // Before the tools too: their `redact` lists name these rules.
    if let Some(node) = get("redact") {
        reader.redactions = redact::compile_redactions(reader, node);
    }

    let mut tools: HashMap<String, Vec<Rule>> = HashMap::new();
    let mut wildcard: Vec<Rule> = Vec::new();
    if let Some(tools_node) = get("tools") {
        if !matches!(tools_node.kind, NodeKind::Null) {
            for (key, node) in reader.open_mapping(tools_node, "tools").unwrap_or_default() {
                let path = child_path("tools", &key.name);
                if key.name.is_empty() {
                    reader.error(key.location, &path, "tool name must not be empty");
                    continue;
                }
                let owner = if key.name == "*" {
                    Owner::AllTools
                } else {
                    Owner::Tool(&key.name)
                };
                let rules = match format {
                    PolicyFormat::Intercept => intercept::compile_tool(reader, owner, node, &path),
                    PolicyFormat::PolicyLayer => policylayer::compile_tool(
                        reader,
                        owner,
                        node,
                        &path,
                        policylayer::tool_keys(),
                    ),
                };
                if key.name == "*" {
                    wildcard.extend(rules);
                } else {
                    tools.insert(key.name.clone(), rules);
                }
            }
        }
    }
    let categories = get("categories")
        .map(|n| compile_categories(reader, n, format))
        .unwrap_or_default();
    if let Some(all) = get("all_tools") {
        wildcard.extend(policylayer::compile_tool(
            reader,
            Owner::AllTools,
            all,
            "all_tools",
            &["limits"],
        ));
    }

    Some(Policy {
        revision,
        format,
        description,
        mode,
        default,
        deny_prefix,
        hidden,
        tools,
        wildcard,
        categories,
        identities,
        oauth,
        upstream_auth,
        approvals,
        idempotency_windows: std::mem::take(&mut reader.idempotency),
        audit_arguments,
        redactions: std::mem::take(&mut reader.redact_tools),
        poisoning,
        pinning,
    })
}

/// `categories: {Destructive: {rules: [...]}}` (or PolicyLayer's entry form): rules for the
/// tools of a risk category that the policy does not name.
fn compile_categories(
    reader: &mut Reader,
    node: &Node,
    format: PolicyFormat,
) -> HashMap<String, Vec<Rule>> {
    let mut categories = HashMap::new();
    for (key, entry) in reader.open_mapping(node, "categories").unwrap_or_default() {
        let path = child_path("categories", &key.name);
        if !crate::ir::CATEGORY_NAMES.contains(&key.name.as_str()) {
            reader.error_with_hint(
                key.location,
                &path,
                format!("unknown category {:?}", key.name),
                format!("use one of: {}", crate::ir::CATEGORY_NAMES.join(", ")),
            );
            continue;
        }
        let owner = Owner::Category(&key.name);
        let rules = match format {
            PolicyFormat::Intercept => intercept::compile_tool(reader, owner, entry, &path),
            PolicyFormat::PolicyLayer => {
                policylayer::compile_tool(reader, owner, entry, &path, policylayer::tool_keys())
            }
        };
        categories.insert(key.name.clone(), rules);
    }
    categories
}

pub(crate) const AUDIT_KEYS: &[&str] = &["arguments"];
pub(crate) const POISONING_KEYS: &[&str] = &["on_finding", "severity"];

/// `poisoning: {on_finding: hide | warn, severity: medium | high}`.
fn compile_poisoning(reader: &mut Reader, node: &Node) -> PoisoningPolicy {
    let mut out = PoisoningPolicy::default();
    let Some(entries) = reader.mapping(node, "poisoning", POISONING_KEYS) else {
        return out;
    };
    for (key, value) in entries {
        let path = child_path("poisoning", &key.name);
        let text = reader.name(value, &path);
        match (key.name.as_str(), text.as_deref()) {
            ("on_finding", Some("warn")) => out.on_finding = OnFinding::Warn,
            ("on_finding", Some("hide")) => out.on_finding = OnFinding::Hide,
            ("severity", Some("medium")) => out.severity = FindingSeverity::Medium,
            ("severity", Some("high")) => out.severity = FindingSeverity::High,
            (name @ ("on_finding" | "severity"), Some(other)) => {
                let allowed = if name == "on_finding" {
                    "warn or hide"
                } else {
                    "medium or high"
                };
                reader.error(
                    value.location,
                    &path,
                    format!("{name} must be {allowed}, got {other:?}"),
                );
            }
            // Unknown keys were reported by `mapping`.
            _ => {}
        }
    }
    out
}

/// `audit: {arguments: hash | redacted | full}`.
fn compile_audit(reader: &mut Reader, node: &Node) -> AuditArguments {
    let Some(entries) = reader.mapping(node, "audit", AUDIT_KEYS) else {
        return AuditArguments::Hash;
    };
    let Some((_, value)) = entries.iter().find(|(k, _)| k.name == "arguments") else {
        return AuditArguments::Hash;
    };
    match reader.name(value, "audit.arguments").as_deref() {
        Some("hash") => AuditArguments::Hash,
        Some("redacted") => AuditArguments::Redacted,
        Some("full") => AuditArguments::Full,
        Some(other) => {
            reader.error_with_hint(
                value.location,
                "audit.arguments",
                format!("audit.arguments must be hash, redacted or full, got {other:?}"),
                "hash (the default) keeps a keyed hash only; full writes every argument, secrets included",
            );
            AuditArguments::Hash
        }
        None => AuditArguments::Hash,
    }
}

fn compile_hide(reader: &mut Reader, node: &Node) -> HiddenTools {
    let mut hidden = HiddenTools::default();
    let Some(items) = reader.optional_sequence(node, "hide") else {
        return hidden;
    };
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = index_path("hide", i);
        let NodeKind::String(name) = &item.kind else {
            reader.error(
                item.location,
                &path,
                format!("expected a tool name, found {}", item.type_name()),
            );
            continue;
        };
        if name.trim().is_empty() {
            reader.error_with_hint(
                item.location,
                &path,
                "entry must not be empty",
                "remove the empty entry or write a tool name",
            );
            continue;
        }
        if !seen.insert(name) {
            reader.error(item.location, &path, format!("duplicate entry {name:?}"));
            continue;
        }
        if name == "*" {
            hidden.all = true;
        } else {
            hidden.names.insert(name.clone());
        }
    }
    hidden
}

/// The policy's revision: SHA-256 over the compiled policy (the first 64 bits, as hex).
///
/// It is taken from what the policy *means*, not from its text, so a comment, a blank line
/// or a reformatting leaves it unchanged — and pending approvals, which are bound to the
/// revision, survive such edits — while any change to a rule, a limit or an identity makes a
/// new one. Maps are fed in sorted order so the value is stable across runs.
fn revision_of(policy: &Policy) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut feed = |part: String| {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    };
    feed(format!(
        "{:?}|{:?}|{:?}|{}",
        policy.format, policy.default, policy.deny_prefix, policy.hidden.all
    ));
    if policy.mode == PolicyMode::Shadow {
        feed("mode shadow".to_string());
    }
    let mut hidden: Vec<&String> = policy.hidden.names.iter().collect();
    hidden.sort();
    feed(format!("{hidden:?}"));
    for (label, map) in [("tool", &policy.tools), ("category", &policy.categories)] {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (name, rules) in entries {
            feed(format!("{label} {name:?} {rules:?}"));
        }
    }
    feed(format!("{:?}", policy.wildcard));
    feed(format!("{:?}", policy.identities));
    feed(format!("{:?}", policy.approvals));
    if !policy.redactions.is_empty() {
        let mut tools: Vec<_> = policy.redactions.iter().collect();
        tools.sort_by(|a, b| a.0.cmp(b.0));
        feed(format!("redact {tools:?}"));
    }
    if policy.poisoning != PoisoningPolicy::default() {
        feed(format!("poisoning {:?}", policy.poisoning));
    }
    if policy.pinning != PinningPolicy::default() {
        feed(format!("pinning {:?}", policy.pinning));
    }
    if policy.audit_arguments != AuditArguments::Hash {
        feed(format!("audit {:?}", policy.audit_arguments));
    }
    if !policy.idempotency_windows.is_empty() {
        let mut windows: Vec<_> = policy.idempotency_windows.iter().collect();
        windows.sort();
        feed(format!("idempotency {windows:?}"));
    }
    hex::encode(&hasher.finalize()[..8])
}
