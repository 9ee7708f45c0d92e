//! The top-level `approvals` block: defaults for `require_approval` rules, and who is told
//! when a call starts waiting for a person.
//!
//! ```yaml
//! approvals:
//!   default_timeout: 15m          # rules without approval_timeout (built-in default: 30m)
//!   default_mode: hold            # rules without approval_mode (built-in default: retry)
//!   notify:
//!     webhook:
//!       url: https://hooks.example.com/toolgate     # or url_env: NAME (the URL is a secret)
//!       secret_env: TOOLGATE_WEBHOOK_SECRET         # HMAC-SHA256 key, read from the environment
//!     command: ["notify-send", "toolgate"]          # or one string, run with `sh -c`
//! ```
//!
//! Only names of environment variables appear here, never their values: the crate is pure,
//! and a policy file is read by people and copied around. The gateway reads the variables
//! when it sends a notification.

use crate::ir::ApprovalSettings;

/// The compiled `approvals` block; the default value is what an absent block means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// Settings of `require_approval` rules that do not set their own (already applied to
    /// every rule at compile time; kept for display).
    pub defaults: ApprovalSettings,
    pub notify: ApprovalNotify,
    /// `dedupe_window`: an identical call joins a pending request only while the request is
    /// younger than this; after it, the request is withdrawn as superseded and a new one is
    /// made (and announced again). `None`: joined for as long as it is pending.
    pub dedupe_window_ms: Option<u64>,
}

/// Where new approval requests are announced. Both may be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalNotify {
    pub webhook: Option<Webhook>,
    pub command: Option<NotifyCommand>,
}

/// An HTTP endpoint that receives a signed JSON description of each new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: WebhookUrl,
    /// The environment variable holding the HMAC-SHA256 key.
    pub secret_env: String,
}

/// The webhook's address, or the environment variable that holds it (chat webhooks carry
/// their credential in the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookUrl {
    Literal(String),
    FromEnv(String),
}

/// A local command run for each new request, with the request's JSON on its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyCommand {
    /// Program and arguments, run without a shell.
    Argv(Vec<String>),
    /// One string, run with `sh -c`.
    Shell(String),
}
