//! The JSON Schema of policy files, for editors (completion, hover text, errors as you type).
//!
//! Built from the key lists the compiler checks mappings against — every mapping's
//! `properties` are exactly the keys the loader accepts there, and `additionalProperties:
//! false` wherever the loader reports unknown keys — so the schema and the loader cannot
//! disagree on which keys exist. What a schema cannot say (a regex that does not compile, a
//! limit no call fits, two rules sharing a counter) is left to `toolgate validate`.

use serde_json::{json, Map, Value};

use super::approvals::{BLOCK_KEYS, NOTIFY_KEYS, WEBHOOK_KEYS};
use super::conditions::{CONDITION_KEYS, OPERATORS};
use super::identities::IDENTITY_KEYS;
use super::intercept::{RATE_BLOCK_KEYS, RULE_KEYS, STATE_KEYS, TOOL_ENTRY_KEYS};
use super::oauth::{INTROSPECTION_KEYS, OAUTH_KEYS};
use super::pinning::PINNING_KEYS;
use super::policylayer::{APPROVAL_KEYS, DENY_IF_KEYS, LIMIT_KEYS, TOOL_KEYS};
use super::redact::RULE_KEYS as REDACT_RULE_KEYS;
use super::spend::SPEND_BLOCK_KEYS;
use super::upstream_auth::UPSTREAM_AUTH_KEYS;
use super::{AUDIT_KEYS, INTERCEPT_KEYS, POISONING_KEYS, POLICYLAYER_KEYS};
use crate::ir::CATEGORY_NAMES;
use crate::redact::DETECTORS;

/// Which file format a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaForm {
    Intercept,
    PolicyLayer,
    /// Either form: what an editor should use when it does not know.
    Any,
    /// A policy test file (`toolgate test`).
    Test,
}

/// The schema of `form`. `Err` names a key the loader accepts that the schema does not
/// describe (a bug: a test checks there is none).
pub fn json_schema(form: SchemaForm) -> Result<Value, String> {
    if form == SchemaForm::Test {
        return test_file_schema();
    }
    let defs = definitions()?;
    let root = match form {
        SchemaForm::Intercept => top_level(INTERCEPT_KEYS, "intercept_tool")?,
        SchemaForm::PolicyLayer => top_level(POLICYLAYER_KEYS, "policylayer_tool")?,
        SchemaForm::Test => unreachable!("answered above"),
        SchemaForm::Any => json!({
            "anyOf": [
                top_level(INTERCEPT_KEYS, "intercept_tool")?,
                top_level(POLICYLAYER_KEYS, "policylayer_tool")?,
            ]
        }),
    };
    let title = match form {
        SchemaForm::Intercept => "toolgate policy (Intercept YAML form)",
        SchemaForm::PolicyLayer => "toolgate policy (PolicyLayer JSON form)",
        SchemaForm::Any | SchemaForm::Test => "toolgate policy",
    };
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "description": "A toolgate policy: which MCP tool calls may go through. Reference: docs/POLICY.md.",
    });
    merge(&mut schema, root);
    schema["$defs"] = defs;
    Ok(schema)
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// A closed mapping whose properties are `keys`, each described by `describe`.
fn closed(
    context: &str,
    keys: &[&str],
    describe: impl Fn(&str) -> Option<Value>,
) -> Result<Value, String> {
    let mut properties = Map::new();
    for key in keys {
        let spec = describe(key).ok_or_else(|| format!("{context}.{key} has no schema"))?;
        properties.insert((*key).to_string(), spec);
    }
    Ok(json!({"type": "object", "additionalProperties": false, "properties": properties}))
}

fn top_level(keys: &[&str], tool: &str) -> Result<Value, String> {
    let tool_ref = json!({"$ref": format!("#/$defs/{tool}")});
    let mut schema = closed("policy", keys, |key| {
        Some(match key {
            "version" => described(json!({"enum": ["1", 1]}), "The policy language version: \"1\"."),
            "description" => described(json!({"type": "string"}), "Free text about the policy."),
            "default" => described(
                json!({"enum": ["allow", "deny"]}),
                "What happens to tools not listed under tools: allow (the default) lets them through; deny hides them.",
            ),
            "hide" => described(
                json!({"type": ["array", "null"], "items": {"type": "string", "minLength": 1}, "uniqueItems": true}),
                "Tools removed from tools/list and answered as unknown; \"*\" hides every tool.",
            ),
            "tools" => described(
                json!({"type": ["object", "null"], "additionalProperties": tool_ref.clone()}),
                "Tool name → that tool's rules; \"*\" holds rules for every tool.",
            ),
            "all_tools" => described(
                json!({"$ref": "#/$defs/policylayer_tool"}),
                "Limits for every tool (the same as a \"*\" entry under tools).",
            ),
            "deny_prefix" => described(
                json!({"type": "string"}),
                "Replaces [POLICY DENIED] at the start of denial messages, e.g. \"[INTERCEPT POLICY DENIED]\".",
            ),
            "identities" => json!({"$ref": "#/$defs/identities"}),
            "oauth" => json!({"$ref": "#/$defs/oauth"}),
            "upstream_auth" => json!({"$ref": "#/$defs/upstream_auth"}),
            "approvals" => json!({"$ref": "#/$defs/approvals"}),
            "categories" => described(
                json!({
                    "type": "object",
                    "propertyNames": {"enum": CATEGORY_NAMES},
                    "additionalProperties": tool_ref.clone(),
                }),
                "Rules for tools the policy does not name, by the risk category toolgate's classifier gives them.",
            ),
            "mode" => described(
                json!({"enum": ["enforce", "shadow"]}),
                "shadow: every rule is a dry run — calls are forwarded and what the policy would have done is audited.",
            ),
            "audit" => json!({"$ref": "#/$defs/audit"}),
            "redact" => json!({"$ref": "#/$defs/redact"}),
            "poisoning" => json!({"$ref": "#/$defs/poisoning"}),
            "pinning" => json!({"$ref": "#/$defs/pinning"}),
            _ => return None,
        })
    })?;
    schema["required"] = json!(["version"]);
    Ok(schema)
}

fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

fn definitions() -> Result<Value, String> {
    let window = json!({"$ref": "#/$defs/window"});
    let amount = json!({"$ref": "#/$defs/amount"});
    let conditions = json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/condition"}});
    let scope = described(
        json!({"type": "string"}),
        "What the counter is partitioned by: global, tool, session, identity (or grant), or args.<path>.",
    );
    let mode = described(
        json!({"enum": ["fixed", "sliding"]}),
        "fixed windows reset on the boundary (UTC); sliding windows count the last window's length.",
    );
    let increment_from = described(
        json!({"type": "string", "pattern": "^args\\."}),
        "The numeric argument the counter adds on each call, e.g. args.amount.",
    );
    let approval_timeout = described(
        window.clone(),
        "How long an approval request stays pending, e.g. 15m.",
    );
    let approval_mode = described(
        json!({"enum": ["retry", "hold"]}),
        "retry answers at once and the agent retries once approved; hold keeps the call open until a person decides.",
    );
    let idempotency_window = described(
        window.clone(),
        "An identical call within this window gets the first one's answer instead of running again.",
    );
    let dry_run = described(
        json!({"type": "boolean"}),
        "true: what the rule would do is audited (would_deny, …), never done.",
    );
    let message = json!({"type": "string"});

    let mut defs = Map::new();
    defs.insert(
        "window".into(),
        described(
            json!({"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer", "minimum": 1}]}),
            "minute, hour, day, a duration (30s, 15m, 2h, 7d), or a number of seconds.",
        ),
    );
    defs.insert(
        "amount".into(),
        described(
            json!({"type": "number"}),
            "An exact decimal (up to six places).",
        ),
    );
    defs.insert(
        "condition".into(),
        closed("condition", CONDITION_KEYS, |key| {
            Some(match key {
                "path" => described(
                    json!({"type": "string", "pattern": "^(args|state)\\."}),
                    "What is tested: args.<name>[.<name>…], or state.<tool>.<counter> for a limit.",
                ),
                "op" => described(json!({"enum": OPERATORS}), "The comparison."),
                "value" => described(
                    json!({}),
                    "What the operator compares with (not for exists: true/false).",
                ),
                _ => return None,
            })
        })
        .map(|mut c| {
            c["required"] = json!(["path", "op"]);
            c
        })?,
    );
    defs.insert(
        "intercept_tool".into(),
        closed("tools.<name>", TOOL_ENTRY_KEYS, |key| {
            Some(match key {
                "rules" => described(
                    json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}}),
                    "The tool's rules, in the order they are evaluated.",
                ),
                "idempotency_window" => idempotency_window.clone(),
                "redact" => described(
                    json!({"type": "array", "items": {"type": "string"}}),
                    "The redact rules (top-level redact block) this tool's results go through.",
                ),
                _ => return None,
            })
        })
        .map(nullable)?,
    );
    defs.insert(
        "rule".into(),
        closed("rule", RULE_KEYS, |key| {
            Some(match key {
                "name" => described(json!({"type": "string", "minLength": 1}), "Names the rule in denials, traces and the audit log."),
                "action" => described(
                    json!({"enum": ["evaluate", "deny", "allow", "require_approval"]}),
                    "evaluate (default): every condition must hold; deny: refuse (when the conditions hold); allow; require_approval.",
                ),
                "conditions" => described(conditions.clone(), "Tests on the call's arguments; all must hold."),
                "on_deny" | "reason" | "message" => described(message.clone(), "What the agent is told when this rule refuses the call."),
                "rate_limit" => json!({"$ref": "#/$defs/rate_limit"}),
                "state" => json!({"$ref": "#/$defs/state"}),
                "spend_limit" => json!({"$ref": "#/$defs/spend_limit"}),
                "approval_timeout" => approval_timeout.clone(),
                "approval_mode" => approval_mode.clone(),
                "dry_run" => dry_run.clone(),
                "idempotency_window" => idempotency_window.clone(),
                _ => return None,
            })
        })?,
    );
    defs.insert(
        "rate_limit".into(),
        described(
            json!({"anyOf": [
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*/"},
                closed("rate_limit", RATE_BLOCK_KEYS, |key| Some(match key {
                    "max" => described(json!({"type": "integer", "minimum": 1}), "Calls allowed per window."),
                    "window" => window.clone(),
                    "scope" => scope.clone(),
                    "mode" => mode.clone(),
                    _ => return None,
                }))?,
            ]}),
            "N/window (5/hour, 60/minute, 10/15m), or {max, window, scope, mode}.",
        ),
    );
    defs.insert(
        "spend_limit".into(),
        described(
            json!({"anyOf": [
                {"type": "string", "pattern": "/"},
                closed("spend_limit", SPEND_BLOCK_KEYS, |key| Some(match key {
                    "max" => amount.clone(),
                    "window" => window.clone(),
                    "increment_from" => increment_from.clone(),
                    "scope" => scope.clone(),
                    "mode" => mode.clone(),
                    _ => return None,
                }))?,
            ]}),
            "A limit on the sum of an amount argument: \"$500/day\", or {max, window, increment_from, scope, mode}.",
        ),
    );
    let limit_fields = |context: &str, keys: &[&str]| {
        closed(context, keys, |key| {
            Some(match key {
                "counter" => described(
                    json!({"type": "string", "minLength": 1}),
                    "The counter's name.",
                ),
                "window" => window.clone(),
                "max" => described(amount.clone(), "The largest value the counter may reach."),
                "increment" => described(amount.clone(), "What each call adds (default 1)."),
                "increment_from" => increment_from.clone(),
                "scope" => scope.clone(),
                "mode" => mode.clone(),
                "on_deny" => message.clone(),
                "dry_run" => dry_run.clone(),
                _ => return None,
            })
        })
    };
    defs.insert(
        "state".into(),
        described(
            limit_fields("state", STATE_KEYS)?,
            "A counter and its limit.",
        ),
    );
    defs.insert(
        "policylayer_tool".into(),
        closed("tools.<name>", TOOL_KEYS, |key| {
            Some(match key {
                "require" => described(
                    json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/condition"}}),
                    "Conditions every call must meet.",
                ),
                "deny_if" => described(
                    json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/deny_if"}}),
                    "Calls refused when every condition of an entry holds.",
                ),
                "require_approval" => described(
                    json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/approval_entry"}}),
                    "Calls that need a person's approval.",
                ),
                "limits" => described(
                    json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/limit"}}),
                    "Counters and their limits.",
                ),
                _ => return None,
            })
        })
        .map(nullable)?,
    );
    defs.insert(
        "deny_if".into(),
        closed("deny_if", DENY_IF_KEYS, |key| {
            Some(match key {
                "conditions" => conditions.clone(),
                "on_deny" => message.clone(),
                "dry_run" => dry_run.clone(),
                _ => return None,
            })
        })?,
    );
    defs.insert(
        "approval_entry".into(),
        closed("require_approval", APPROVAL_KEYS, |key| {
            Some(match key {
                "conditions" => conditions.clone(),
                "message" => message.clone(),
                "approval_timeout" => approval_timeout.clone(),
                "approval_mode" => approval_mode.clone(),
                "dry_run" => dry_run.clone(),
                _ => return None,
            })
        })?,
    );
    defs.insert("limit".into(), limit_fields("limits[]", LIMIT_KEYS)?);
    let hash = json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"});
    let hashes =
        json!({"anyOf": [hash.clone(), {"type": "array", "items": hash.clone(), "minItems": 1}]});
    defs.insert(
        "identities".into(),
        described(
            json!({
                "type": ["object", "null"],
                "additionalProperties": {"anyOf": [
                    hashes.clone(),
                    closed("identities.<name>", IDENTITY_KEYS, |key| (key == "token_sha256").then(|| hashes.clone()))?,
                ]},
            }),
            "Identity name → the SHA-256 of its bearer token(s), for HTTP listeners. Never tokens.",
        ),
    );
    let scopes =
        json!({"type": "array", "items": {"type": "string", "pattern": "^[!#-\\[\\]-~]+$"}});
    let url = json!({"type": "string", "pattern": "^https?://"});
    let introspection = closed("oauth.introspection", INTROSPECTION_KEYS, |_| {
        Some(json!({"type": "string", "minLength": 1}))
    })?;
    let mut oauth = closed("oauth", OAUTH_KEYS, |key| {
        Some(match key {
            "issuer" => described(url.clone(), "The authorization server's issuer URL (https; http only to 127.0.0.1 or localhost)."),
            "resource" => described(url.clone(), "This gateway's canonical URL: tokens must name it in `aud`."),
            "scopes_supported" | "required_scopes" => scopes.clone(),
            "identity_claim" => described(json!({"type": "string", "minLength": 1}), "The claim that names the caller (default sub)."),
            "introspection" => described(introspection.clone(), "Environment variables with the client credentials for RFC 7662 introspection of opaque tokens."),
            "leeway_seconds" => json!({"type": "integer", "minimum": 0, "maximum": 300}),
            _ => return None,
        })
    })?;
    oauth["required"] = json!(["issuer", "resource"]);
    let mut upstream_auth = closed("upstream_auth", UPSTREAM_AUTH_KEYS, |key| {
        Some(match key {
            "token_url" | "resource" => url.clone(),
            "client_id_env" | "client_secret_env" => json!({"type": "string", "minLength": 1}),
            "scopes" => json!({"type": "array", "items": {"type": "string"}}),
            _ => return None,
        })
    })?;
    upstream_auth["required"] = json!(["token_url", "client_id_env", "client_secret_env"]);
    defs.insert(
        "upstream_auth".into(),
        described(
            upstream_auth,
            "An OAuth client-credentials token toolgate fetches (and refreshes) for the --upstream server; the client's own token never goes upstream.",
        ),
    );
    defs.insert(
        "oauth".into(),
        described(
            oauth,
            "The HTTP listener as an OAuth 2.1 resource server: it accepts the issuer's access tokens for `resource` (docs/AUTH.md).",
        ),
    );
    defs.insert(
        "approvals".into(),
        described(
            closed("approvals", BLOCK_KEYS, |key| {
                Some(match key {
                    "default_timeout" => approval_timeout.clone(),
                    "default_mode" => approval_mode.clone(),
                    "notify" => json!({"$ref": "#/$defs/notify"}),
                    "dedupe_window" => described(
                        window.clone(),
                        "An identical call joins a pending request only while it is younger than this; after it, a new request supersedes it.",
                    ),
                    _ => return None,
                })
            })
            .map(nullable)?,
            "Defaults for require_approval rules, and who is told about new requests.",
        ),
    );
    let env_name = json!({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"});
    defs.insert(
        "notify".into(),
        closed("approvals.notify", NOTIFY_KEYS, |key| {
            Some(match key {
                "webhook" => closed("approvals.notify.webhook", WEBHOOK_KEYS, |key| {
                    Some(match key {
                        "url" => described(json!({"type": "string", "pattern": "^https?://"}), "Where requests are POSTed."),
                        "url_env" => described(env_name.clone(), "The variable holding the URL, when the URL is a secret."),
                        "secret_env" => described(env_name.clone(), "The variable holding the HMAC-SHA256 signing key."),
                        _ => return None,
                    })
                })
                .ok()?,
                "command" => described(
                    json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}),
                    "A local command run for each new request, with its JSON on stdin.",
                ),
                _ => return None,
            })
        })
        .map(nullable)?,
    );
    defs.insert(
        "poisoning".into(),
        described(
            closed("poisoning", POISONING_KEYS, |key| {
                Some(match key {
                    "on_finding" => described(
                        json!({"enum": ["warn", "hide"]}),
                        "warn (default): log and audit the tool; hide: remove it from tools/list and answer calls as unknown.",
                    ),
                    "severity" => described(
                        json!({"enum": ["medium", "high"]}),
                        "The least severity of finding that counts (default medium).",
                    ),
                    _ => return None,
                })
            })?,
            "What the gateway does with tools whose definitions look poisoned (docs/INTEGRITY.md).",
        ),
    );
    defs.insert(
        "pinning".into(),
        described(
            closed("pinning", PINNING_KEYS, |key| {
                Some(match key {
                    "on_change" => described(
                        json!({"enum": ["hide", "deny", "warn"]}),
                        "A pinned tool whose definition changed: hide it from tools/list, deny its calls, or warn (default: allow and audit).",
                    ),
                    "on_new_tool" => described(
                        json!({"enum": ["allow", "hide"]}),
                        "A tool first seen after the server's first listing: allow (default, pinned as seen) or hide until approved.",
                    ),
                    "lock" => described(
                        json!({"type": "string", "minLength": 1}),
                        "Pins from this lock file (relative to the policy file, written by toolgate scan --lock) instead of trust on first use.",
                    ),
                    _ => return None,
                })
            })?,
            "Tool definition pins: what the gateway does when a server changes what a tool name means (docs/INTEGRITY.md).",
        ),
    );
    defs.insert(
        "redact".into(),
        described(
            json!({
                "type": "object",
                "additionalProperties": closed("redact.<name>", REDACT_RULE_KEYS, |key| {
                    Some(match key {
                        "detectors" => described(
                            json!({"type": "array", "items": {"enum": DETECTORS}}),
                            "Built-in secret detectors; each match becomes [REDACTED:<detector>].",
                        ),
                        "pattern" => described(json!({"type": "string"}), "A regex (Rust syntax) whose matches are replaced."),
                        "replace" => described(json!({"type": "string"}), "What replaces a pattern's match (default [REDACTED:<rule>])."),
                        "on_match" => described(
                            json!({"enum": ["redact", "block"]}),
                            "redact replaces each match; block withholds the whole result.",
                        ),
                        _ => return None,
                    })
                })?,
            }),
            "Named rules that remove secrets and other text from tool results before the client sees them.",
        ),
    );
    defs.insert(
        "audit".into(),
        described(
            closed("audit", AUDIT_KEYS, |key| {
                (key == "arguments").then(|| {
                    described(
                        json!({"enum": ["hash", "redacted", "full"]}),
                        "What audit lines record of arguments: a keyed hash (default), a redacted view, or everything.",
                    )
                })
            })?,
            "What the audit log records.",
        ),
    );
    Ok(Value::Object(defs))
}

fn test_file_schema() -> Result<Value, String> {
    use crate::suite::parse::{CASE_KEYS, SUITE_KEYS};
    use crate::suite::{Outcome, MAX_REPEAT};
    let outcomes: Vec<&str> = Outcome::NAMES.split(", ").collect();
    let outcome = json!({"enum": outcomes});
    let case = closed("cases[]", CASE_KEYS, |key| {
        Some(match key {
            "name" => described(json!({"type": "string", "minLength": 1}), "Unique in the file; reports name cases by it."),
            "tool" => described(json!({"type": "string", "minLength": 1}), "The tool called."),
            "args" => described(json!({"type": ["object", "null"]}), "The call's arguments (default {})."),
            "expect" => described(
                json!({"anyOf": [outcome.clone(), {"type": "array", "items": outcome.clone(), "minItems": 1}]}),
                "The decision the call must get, or one per call of the sequence.",
            ),
            "repeat" => described(
                json!({"type": "integer", "minimum": 1, "maximum": MAX_REPEAT}),
                "How many times the call is made; counters carry over.",
            ),
            "rule" => described(json!({"type": "string"}), "The rule that must decide each call expected to be refused or held."),
            "identity" => described(json!({"type": "string"}), "Who calls, for scope: identity counters."),
            "session" => described(json!({"type": "string"}), "The session, for scope: session counters."),
            "category" => described(json!({"enum": CATEGORY_NAMES}), "The tool's risk category, for categories rules."),
            "counters" => described(
                json!({"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}),
                "Counter values before the first call, by the keys toolgate explain prints.",
            ),
            _ => return None,
        })
    })
    .map(|mut c| {
        c["required"] = json!(["name", "tool", "expect"]);
        c
    })?;
    let mut schema = closed("test file", SUITE_KEYS, |key| {
        Some(match key {
            "policy" => described(
                json!({"type": "string", "minLength": 1}),
                "The policy under test, relative to this file.",
            ),
            "description" => json!({"type": "string"}),
            "cases" => described(
                json!({"type": "array", "items": case.clone(), "minItems": 1}),
                "The calls and their expected decisions.",
            ),
            _ => return None,
        })
    })?;
    schema["required"] = json!(["policy", "cases"]);
    let mut out = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "toolgate policy test file",
        "description": "Calls with the decision each must get, run by `toolgate test`. Reference: docs/TESTING-POLICIES.md.",
    });
    merge(&mut out, schema);
    Ok(out)
}

/// A mapping that may also be written empty (`tool:` with nothing after it).
fn nullable(mut schema: Value) -> Value {
    schema["type"] = json!(["object", "null"]);
    schema
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every key the loader accepts anywhere has a schema (and so a description or a type).
    #[test]
    fn every_form_describes_every_key_the_loader_accepts() {
        for form in [
            SchemaForm::Intercept,
            SchemaForm::PolicyLayer,
            SchemaForm::Any,
            SchemaForm::Test,
        ] {
            if let Err(missing) = json_schema(form) {
                panic!("{form:?}: {missing}");
            }
        }
    }

    #[test]
    fn a_key_without_a_schema_is_reported_not_dropped() {
        let error = closed("rule", &["name", "brand_new"], |key| {
            (key == "name").then(|| json!({"type": "string"}))
        })
        .unwrap_err();
        assert_eq!(error, "rule.brand_new has no schema");
    }
}
