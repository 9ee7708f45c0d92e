//! The top-level `approvals` block (see [`crate::approvals`]): read before the tools, so
//! its defaults reach every `require_approval` rule through the [`Reader`].

use super::limits::read_window;
use super::reader::{child_path, index_path, Reader};
use crate::approvals::{ApprovalNotify, ApprovalsConfig, NotifyCommand, Webhook, WebhookUrl};
use crate::ir::{ApprovalMode, ApprovalSettings};
use crate::source::{Node, NodeKind};

pub(crate) const BLOCK_KEYS: &[&str] =
    &["default_timeout", "default_mode", "notify", "dedupe_window"];
pub(crate) const NOTIFY_KEYS: &[&str] = &["webhook", "command"];
pub(crate) const WEBHOOK_KEYS: &[&str] = &["url", "url_env", "secret_env"];
const ENV_HINT: &str = "name an environment variable, e.g. TOOLGATE_WEBHOOK_SECRET";

pub(super) fn compile_approvals(reader: &mut Reader, node: &Node) -> ApprovalsConfig {
    if matches!(node.kind, NodeKind::Null) {
        return ApprovalsConfig::default();
    }
    let Some(entries) = reader.mapping(node, "approvals", BLOCK_KEYS) else {
        return ApprovalsConfig::default();
    };
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let mut defaults = ApprovalSettings::default();
    if let Some(n) = get("default_timeout") {
        if let Some(w) = read_window(reader, n, "approvals.default_timeout") {
            defaults.timeout_ms = w.length_ms;
        }
    }
    if let Some(n) = get("default_mode") {
        let p = "approvals.default_mode";
        match reader.name(n, p).as_deref() {
            Some("retry") => defaults.mode = ApprovalMode::Retry,
            Some("hold") => defaults.mode = ApprovalMode::Hold,
            Some(other) => reader.error_with_hint(
                n.location,
                p,
                format!("unknown approval mode {other:?}"),
                "use retry (answer at once, the agent retries once approved) or hold (wait for the decision)",
            ),
            None => {}
        }
    }
    let notify = get("notify")
        .map(|n| compile_notify(reader, n))
        .unwrap_or_default();
    let dedupe_window_ms = get("dedupe_window")
        .and_then(|n| read_window(reader, n, "approvals.dedupe_window"))
        .map(|w| w.length_ms);
    ApprovalsConfig {
        defaults,
        notify,
        dedupe_window_ms,
    }
}

fn compile_notify(reader: &mut Reader, node: &Node) -> ApprovalNotify {
    let path = "approvals.notify";
    if matches!(node.kind, NodeKind::Null) {
        return ApprovalNotify::default();
    }
    let Some(entries) = reader.mapping(node, path, NOTIFY_KEYS) else {
        return ApprovalNotify::default();
    };
    let mut notify = ApprovalNotify::default();
    for (key, value) in entries {
        let p = child_path(path, &key.name);
        match key.name.as_str() {
            "webhook" => notify.webhook = compile_webhook(reader, value, &p),
            "command" => notify.command = compile_command(reader, value, &p),
            _ => {}
        }
    }
    notify
}

fn compile_webhook(reader: &mut Reader, node: &Node, path: &str) -> Option<Webhook> {
    let entries = reader.mapping(node, path, WEBHOOK_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let url = match (get("url"), get("url_env")) {
        (Some(_), Some(second)) => {
            reader.error_with_hint(
                second.location,
                &child_path(path, "url_env"),
                "both `url` and `url_env` name the webhook",
                "keep one of them",
            );
            None
        }
        (Some(n), None) => {
            let p = child_path(path, "url");
            match reader.name(n, &p) {
                Some(text) if is_http_url(&text) => Some(WebhookUrl::Literal(text)),
                Some(_) => {
                    reader.error_with_hint(
                        n.location,
                        &p,
                        "the webhook URL must start with http:// or https:// and name a host",
                        "e.g. https://hooks.example.com/toolgate",
                    );
                    None
                }
                None => None,
            }
        }
        (None, Some(n)) => {
            env_name(reader, n, &child_path(path, "url_env")).map(WebhookUrl::FromEnv)
        }
        (None, None) => {
            reader.error_with_hint(
                node.location,
                path,
                "missing `url`",
                "set url: https://…, or url_env: NAME when the URL itself is a secret",
            );
            None
        }
    };
    let secret_env = match get("secret_env") {
        Some(n) => env_name(reader, n, &child_path(path, "secret_env")),
        None => {
            reader.error_with_hint(
                node.location,
                path,
                "missing `secret_env`: webhook requests are always signed (HMAC-SHA256), or a receiver could not tell them from forged ones",
                ENV_HINT,
            );
            None
        }
    };
    Some(Webhook {
        url: url?,
        secret_env: secret_env?,
    })
}

fn compile_command(reader: &mut Reader, node: &Node, path: &str) -> Option<NotifyCommand> {
    match &node.kind {
        NodeKind::String(_) => reader.name(node, path).map(NotifyCommand::Shell),
        NodeKind::Sequence(items) if items.is_empty() => {
            reader.error(node.location, path, "the command must not be empty");
            None
        }
        NodeKind::Sequence(items) => {
            let mut argv = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                argv.push(reader.string(item, &index_path(path, i))?);
            }
            if argv[0].trim().is_empty() {
                reader.error(node.location, &index_path(path, 0), "must not be empty");
                return None;
            }
            Some(NotifyCommand::Argv(argv))
        }
        _ => {
            reader.error_with_hint(
                node.location,
                path,
                format!("expected a command, found {}", node.type_name()),
                "write a list (program and arguments, no shell) or one string (run with sh -c)",
            );
            None
        }
    }
}

fn env_name(reader: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let name = reader.name(node, path)?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        reader.error_with_hint(
            node.location,
            path,
            "not an environment variable name (letters, digits and _; secrets themselves never go in a policy)",
            ENV_HINT,
        );
        return None;
    }
    Some(name)
}

fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let Some(rest) = rest else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    !authority.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::approvals::{NotifyCommand, WebhookUrl};
    use crate::ir::{ApprovalMode, Effect};

    const TOOLS: &str = "tools:\n  refund:\n    rules:\n      - action: require_approval\n      - name: own\n        action: require_approval\n        approval_timeout: 2m\n        approval_mode: retry\n";

    #[test]
    fn defaults_reach_rules_that_set_nothing() {
        let text = format!(
            "version: \"1\"\napprovals:\n  default_timeout: 5m\n  default_mode: hold\n  notify:\n    webhook: {{url: \"http://127.0.0.1:9/hook\", secret_env: HOOK_KEY}}\n    command: [\"notify-send\", \"toolgate\"]\n{TOOLS}"
        );
        let policy = crate::compile(&text).unwrap();
        let rules = &policy.tools["refund"];
        let Effect::RequireApproval(first) = &rules[0].effect else {
            panic!("not an approval rule")
        };
        assert_eq!(
            (first.timeout_ms, first.mode),
            (300_000, ApprovalMode::Hold)
        );
        let Effect::RequireApproval(own) = &rules[1].effect else {
            panic!("not an approval rule")
        };
        assert_eq!((own.timeout_ms, own.mode), (120_000, ApprovalMode::Retry));
        let webhook = policy.approvals.notify.webhook.unwrap();
        assert_eq!(
            webhook.url,
            WebhookUrl::Literal("http://127.0.0.1:9/hook".into())
        );
        assert_eq!(webhook.secret_env, "HOOK_KEY");
        assert_eq!(
            policy.approvals.notify.command,
            Some(NotifyCommand::Argv(vec![
                "notify-send".into(),
                "toolgate".into()
            ]))
        );
    }

    #[test]
    fn the_json_form_takes_the_block_too() {
        let text = r#"{"version": "1", "approvals": {"default_mode": "hold", "notify": {"command": "true"}},
            "tools": {"refund": {"require_approval": [{"message": "a person decides"}]}}}"#;
        let policy = crate::compile(text).unwrap();
        let Effect::RequireApproval(s) = &policy.tools["refund"][0].effect else {
            panic!("not an approval rule")
        };
        assert_eq!(s.mode, ApprovalMode::Hold);
        assert_eq!(s.timeout_ms, 30 * 60 * 1000);
        assert_eq!(
            policy.approvals.notify.command,
            Some(NotifyCommand::Shell("true".into()))
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "version: \"1\"\napprovals:\n  default_mode: later\n  default_timeout: soon\n  notify:\n    webhook: {url: \"ftp://x\"}\n    command: []\n    email: x\n";
        let errors = crate::compile(text).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(errors.len(), 6, "{messages:#?}");
        assert!(messages.iter().any(|m| m.contains("approval mode")));
        assert!(messages.iter().any(|m| m.contains("http://")));
        assert!(messages.iter().any(|m| m.contains("secret_env")));
        assert!(messages.iter().any(|m| m.contains("unknown key")));
        let secret_in_file = "version: \"1\"\napprovals:\n  notify:\n    webhook: {url_env: HOOK_URL, secret_env: \"s3cr3t value\"}\n";
        let errors = crate::compile(secret_in_file).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("environment variable"));
    }
}
