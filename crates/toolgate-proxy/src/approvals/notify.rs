//! Telling people that a call waits for them: a signed webhook and an optional local
//! command, both run on tasks of their own so the call path never waits for them.
//!
//! The webhook body is JSON (see `docs/APPROVALS.md`) with the request's tool, identity,
//! rule, a redacted view of the arguments and how to decide. It is signed with HMAC-SHA256
//! under a key read from the environment variable the policy names, sent as
//! `X-Toolgate-Signature: sha256=<hex>`. A delivery that fails (connection error, 5xx, 429) is
//! retried with exponential backoff; a 4xx other than 429 is not (the receiver refused it).
//! Logs name the webhook's host only: chat webhooks carry their credential in the URL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use toolgate_policy::approvals::{ApprovalNotify, NotifyCommand, Webhook, WebhookUrl};
use toolgate_state::ApprovalRecord;

use super::view::record_json;
use super::Approvals;
use crate::audit::format_rfc3339_ms;

/// Deliveries (with their retries) in progress at most; more are dropped with a warning
/// rather than queued without bound.
const MAX_OUTSTANDING: usize = 256;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-toolgate-signature";

/// State shared by every delivery: the HTTP client and the count of deliveries in progress.
pub(crate) struct Notifier {
    client: reqwest::Client,
    outstanding: Arc<AtomicUsize>,
}

impl Notifier {
    pub(crate) fn new(timeout: Duration) -> Option<Notifier> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A signed body goes where the policy says, not where a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("toolgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the webhook client"))
            .ok()?;
        Some(Notifier {
            client,
            outstanding: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The notification body for a new request.
pub fn notification_body(
    record: &ApprovalRecord,
    admin_url: Option<&str>,
    cli_args: &[String],
    sent_ms: u64,
) -> Value {
    let cli = |verb: &str, tail: &str| {
        let mut parts = vec!["toolgate".to_string(), "approvals".to_string()];
        parts.extend(cli_args.iter().map(|a| shell_quote(a)));
        parts.push(verb.to_string());
        parts.push(record.id.clone());
        let mut text = parts.join(" ");
        text.push_str(tail);
        text
    };
    let mut decide = json!({
        "show_command": cli("show", ""),
        "approve_command": cli("approve", ""),
        "deny_command": cli("deny", " --reason '…'"),
    });
    if let Some(base) = admin_url {
        let base = base.trim_end_matches('/');
        decide["show_url"] = json!(format!("{base}/v1/approvals/{}", record.id));
        decide["approve_url"] = json!(format!("{base}/v1/approvals/{}/approve", record.id));
        decide["deny_url"] = json!(format!("{base}/v1/approvals/{}/deny", record.id));
    }
    let mut body = json!({
        "event": "approval.requested",
        "sent_at": format_rfc3339_ms(sent_ms),
        "approval": record_json(record, false),
        "decide": decide,
    });
    // The fields a receiver most often needs, at the top level too.
    for key in [
        "id",
        "tool",
        "identity",
        "rule",
        "message",
        "arguments",
        "expires_at",
    ] {
        body[key] = body["approval"][key].clone();
    }
    body
}

impl Approvals {
    /// Announces a new request through whatever the policy configures. Returns at once.
    pub(crate) fn announce(self: &Arc<Self>, record: &ApprovalRecord, notify: &ApprovalNotify) {
        if notify.webhook.is_none() && notify.command.is_none() {
            return;
        }
        let admin_url = self.admin_url();
        let body = notification_body(
            record,
            admin_url.as_deref(),
            &self.options.cli_args,
            self.clock_ms(),
        );
        let Ok(body) = serde_json::to_vec(&body) else {
            return;
        };
        if let Some(webhook) = &notify.webhook {
            self.send_webhook(webhook, record, body.clone());
        }
        if let Some(command) = &notify.command {
            let command = command.clone();
            let (id, tool) = (record.id.clone(), record.tool.clone());
            let timeout = self.options.command_timeout;
            tokio::spawn(async move { run_command(command, body, &id, &tool, timeout).await });
        }
    }

    fn send_webhook(self: &Arc<Self>, webhook: &Webhook, record: &ApprovalRecord, body: Vec<u8>) {
        let url = match &webhook.url {
            WebhookUrl::Literal(url) => url.clone(),
            WebhookUrl::FromEnv(name) => match std::env::var(name) {
                Ok(url) if !url.trim().is_empty() => url,
                _ => {
                    tracing::error!(variable = %name, approval = %record.id, "the webhook URL variable is not set; notification not sent");
                    return;
                }
            },
        };
        let secret = match std::env::var_os(&webhook.secret_env) {
            Some(s) if !s.is_empty() => s.into_encoded_bytes(),
            _ => {
                tracing::error!(variable = %webhook.secret_env, approval = %record.id, "the webhook secret variable is not set; an unsigned notification is never sent");
                return;
            }
        };
        let Some(notifier) = self.notifier() else {
            return;
        };
        if notifier.outstanding.fetch_add(1, Ordering::SeqCst) >= MAX_OUTSTANDING {
            notifier.outstanding.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(approval = %record.id, "too many webhook deliveries in progress; notification dropped");
            return;
        }
        let client = notifier.client.clone();
        let outstanding = Arc::clone(&notifier.outstanding);
        let delivery = Delivery {
            signature: signature(&secret, &body),
            body,
            url,
            id: record.id.clone(),
            attempts: self.options.webhook_attempts.max(1),
            backoff: self.options.webhook_backoff,
        };
        tokio::spawn(async move {
            delivery.run(&client).await;
            outstanding.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

struct Delivery {
    url: String,
    body: Vec<u8>,
    signature: String,
    id: String,
    attempts: u32,
    backoff: Duration,
}

impl Delivery {
    async fn run(self, client: &reqwest::Client) {
        let host = url_host(&self.url);
        for attempt in 1..=self.attempts {
            let sent = client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &self.signature)
                .header("x-toolgate-event", "approval.requested")
                .header("x-toolgate-delivery", &self.id)
                .body(self.body.clone())
                .send()
                .await;
            let retry = match sent {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(approval = %self.id, %host, attempt, "webhook delivered");
                    return;
                }
                Ok(response) => {
                    let status = response.status();
                    let retry = status.is_server_error() || status.as_u16() == 429;
                    tracing::warn!(approval = %self.id, %host, attempt, status = status.as_u16(), "webhook refused the notification");
                    retry
                }
                Err(e) => {
                    // reqwest's error text can include the URL; only its kind is logged.
                    let kind = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    };
                    tracing::warn!(approval = %self.id, %host, attempt, error = kind, "webhook delivery failed");
                    true
                }
            };
            if !retry || attempt == self.attempts {
                break;
            }
            let factor = 1u32 << (attempt - 1).min(6);
            tokio::time::sleep(
                self.backoff
                    .saturating_mul(factor)
                    .min(Duration::from_secs(300)),
            )
            .await;
        }
        tracing::error!(approval = %self.id, %host, "webhook notification could not be delivered");
    }
}

/// Runs the configured command with the body on stdin. Its stdout and stderr are discarded:
/// on the stdio transport, stdout is the protocol stream.
async fn run_command(command: NotifyCommand, body: Vec<u8>, id: &str, tool: &str, limit: Duration) {
    let mut cmd = match &command {
        NotifyCommand::Argv(argv) => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        NotifyCommand::Shell(text) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(text);
            c
        }
    };
    cmd.env("TOOLGATE_APPROVAL_ID", id)
        .env("TOOLGATE_APPROVAL_TOOL", tool)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(approval = %id, error = %e, "the approval notification command could not start");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => {
            tracing::warn!(approval = %id, %status, "the approval notification command failed")
        }
        Ok(Err(e)) => {
            tracing::warn!(approval = %id, error = %e, "waiting for the notification command failed")
        }
        Err(_) => {
            let _ = child.kill().await;
            tracing::warn!(approval = %id, "the approval notification command timed out and was killed");
        }
    }
}

/// `scheme://host[:port]` of a URL, for logs.
fn url_host(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    format!("{scheme}://{host}")
}

fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn logs_see_the_host_only() {
        assert_eq!(
            url_host("https://user:pw@hooks.example.com/services/T0/B0/secret?x=1"),
            "https://hooks.example.com"
        );
        assert_eq!(shell_quote("--state-dir"), "--state-dir");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }
}
