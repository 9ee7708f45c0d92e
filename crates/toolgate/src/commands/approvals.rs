//! `toolgate approvals`: list, show, approve and deny approval requests in the state the
//! gateways share (the same `--state-dir` / `--state-dsn` / `--state-prefix`).
//!
//! Decisions are recorded in the audit log as the gateway records them (an `approval` line,
//! instance `cli`), appended in one write to `toolgate-cli.jsonl`. Text output is cleaned of
//! control characters: tool names and arguments come from agents, and must not drive the
//! terminal that shows them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};
use toolgate_policy::approvals::WebhookUrl;
use toolgate_policy::ir::Effect;
use toolgate_proxy::admin::{self, AdminOptions, AdminToken};
use toolgate_proxy::approvals::{
    self, audit_event, check_verdict, describe_state, is_approval_id, record_json, ApprovalOptions,
    Approvals, Transition,
};
use toolgate_proxy::audit::{format_rfc3339_ms, AuditEvent};
use toolgate_proxy::console::{Console, ConsoleData, Directory};
use toolgate_proxy::Gateway;
use toolgate_state::{
    ApprovalError, ApprovalRecord, Clock, Dsn, ListFilter, SharedApprovals, SystemClock, Verdict,
};

use super::run::expand_home;
use crate::cli::{ApprovalsAction, ApprovalsArgs, OutputFormat, RunArgs, StateArgs};

/// The gateway's side: the approval store (the same backend as the counters) and the
/// options notifications need to suggest `toolgate approvals` commands that reach it.
pub(super) fn open_for_gateway(
    args: &RunArgs,
    dsn: &str,
    state_dir: &Path,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Approvals>> {
    let store = toolgate_state::open_approvals(dsn, &args.state_prefix, clock.clone())
        .context("cannot open the approval store")?;
    let mut cli_args = Vec::new();
    match (&args.state_dsn, Dsn::parse(dsn)) {
        // Only file paths are repeated: another kind of DSN can hold a password.
        (Some(_), Ok(Dsn::Sqlite(path))) => cli_args.extend([
            "--state-dsn".to_string(),
            format!("sqlite:{}", path.display()),
        ]),
        (None, _) if args.state_dir != DEFAULT_STATE_DIR => {
            cli_args.extend(["--state-dir".to_string(), state_dir.display().to_string()])
        }
        _ => {}
    }
    if args.state_prefix != DEFAULT_PREFIX {
        cli_args.extend(["--state-prefix".to_string(), args.state_prefix.clone()]);
    }
    let options = ApprovalOptions {
        cli_args,
        max_pending_per_identity: args.max_pending_approvals.max(1),
        ..ApprovalOptions::default()
    };
    Ok(Approvals::with_clock(store, options, clock))
}

/// Starts what runs beside the gateway: the expiry sweeper, and the admin API (with the web
/// console, when the audit sink feeds one) when `--admin-listen` asks for it. The handles
/// live as long as the returned value.
pub(super) async fn start_for_gateway(
    gateway: &Arc<Gateway>,
    args: &RunArgs,
    state_dir: &Path,
    metrics: Option<&Arc<toolgate_proxy::metrics::Metrics>>,
    console: Option<Arc<ConsoleData>>,
    directory: Directory,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks: Vec<tokio::task::JoinHandle<()>> =
        approvals::spawn_sweeper(gateway).into_iter().collect();
    warn_about_setup(gateway, args);
    let Some(listen) = &args.admin_listen else {
        return Ok(tasks);
    };
    let bind = admin::parse_listen(listen).map_err(|e| anyhow::anyhow!("--admin-listen {e}"))?;
    let token = match (&args.admin_token_file, std::env::var(ADMIN_TOKEN_VAR)) {
        (Some(file), _) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the admin token file {}", file.display()))?
            .trim()
            .to_string(),
        (None, Ok(token)) if !token.trim().is_empty() => token.trim().to_string(),
        (None, _) => {
            let file = state_dir.join("admin.token");
            let token = admin::load_or_create_token(&file).with_context(|| {
                format!(
                    "cannot read or create the admin token file {}",
                    file.display()
                )
            })?;
            eprintln!(
                "toolgate: admin API token in {} (send it as Authorization: Bearer …)",
                file.display()
            );
            token
        }
    };
    let token = AdminToken::new(&token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let console = console.map(|data| Arc::new(Console::new(data, directory)));
    let options = AdminOptions {
        metrics: metrics.cloned(),
        console,
        ..AdminOptions::new(bind, token)
    };
    let (addr, task) = admin::spawn(Arc::clone(gateway), options)
        .await
        .context("cannot start the admin API")?;
    eprintln!("toolgate: admin API on http://{addr}/v1/approvals");
    eprintln!("toolgate: web console on http://{addr}/ (sign in with the admin token)");
    tasks.push(task);
    Ok(tasks)
}

/// Start-up warnings for approval setups that cannot work as written. Only variable names are
/// logged, never their values.
fn warn_about_setup(gateway: &Gateway, args: &RunArgs) {
    let policy = gateway.policy();
    let asks = policy
        .tools
        .values()
        .flatten()
        .chain(policy.wildcard.iter())
        .any(|r| matches!(r.effect, Effect::RequireApproval(_)));
    if !asks {
        return;
    }
    let in_process = args
        .state_dsn
        .as_deref()
        .is_some_and(|d| !matches!(Dsn::parse(d), Ok(Dsn::Sqlite(_))));
    if in_process && args.admin_listen.is_none() {
        tracing::warn!(
            "the policy asks for approvals, but with this --state-dsn only this process's admin \
             API can decide them, and --admin-listen is not set: every request will expire"
        );
    }
    if let Some(webhook) = &policy.approvals.notify.webhook {
        let mut names = vec![webhook.secret_env.as_str()];
        if let WebhookUrl::FromEnv(name) = &webhook.url {
            names.push(name);
        }
        for name in names {
            if std::env::var_os(name).is_none_or(|v| v.is_empty()) {
                tracing::warn!(variable = %name, "the approval webhook's variable is not set; no notification will be sent");
            }
        }
    }
}

const DEFAULT_STATE_DIR: &str = "~/.toolgate";
const DEFAULT_PREFIX: &str = "toolgate";
/// Where the admin token can come from when no file is named.
const ADMIN_TOKEN_VAR: &str = "TOOLGATE_ADMIN_TOKEN";

/// The audit instance of decisions made from the command line.
const AUDIT_INSTANCE: &str = "cli";

pub fn run(args: &ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let (state_dir, dsn) = state_of(&args.state)?;
    match Dsn::parse(&dsn) {
        // SQLite and Redis keep records every gateway shares.
        Ok(Dsn::Sqlite(_) | Dsn::Redis(_)) | Err(_) => {}
        // Memory keeps approval requests inside the gateway process.
        Ok(_) => anyhow::bail!(
            "with this --state-dsn, approval requests live inside the gateway process; decide \
             them through that gateway's admin API (--admin-listen)"
        ),
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = toolgate_state::open_approvals(&dsn, &args.state.state_prefix, clock.clone())
            .context("cannot open the approval store")?;
        let cli = Cli {
            store,
            format: args.format,
            audit: audit_dir_of(&args.state, &state_dir),
            clock,
        };
        match &args.action {
            ApprovalsAction::List { all, limit } => cli.list(*all, *limit).await,
            ApprovalsAction::Show { id } => cli.show(id).await,
            ApprovalsAction::Approve { id, note } => {
                let verdict = Verdict::Approve { note: note.clone() };
                cli.decide(id, verdict).await
            }
            ApprovalsAction::Deny { id, reason } => {
                let verdict = Verdict::Deny {
                    reason: reason.clone(),
                };
                cli.decide(id, verdict).await
            }
        }
    })
}

struct Cli {
    store: SharedApprovals,
    format: OutputFormat,
    audit: Option<PathBuf>,
    clock: Arc<dyn Clock>,
}

impl Cli {
    async fn list(&self, all: bool, limit: usize) -> anyhow::Result<ExitCode> {
        let records = self
            .store
            .list(ListFilter {
                all,
                limit: limit.max(1),
            })
            .await
            .context("cannot list approval requests")?;
        match self.format {
            OutputFormat::Json => {
                let items: Vec<Value> = records.iter().map(|r| record_json(r, false)).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "approvals": items }))?
                );
            }
            OutputFormat::Text => print!("{}", render_list(&records, all)),
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn show(&self, id: &str) -> anyhow::Result<ExitCode> {
        let Some(record) = self.find(id).await? else {
            return Ok(not_found(id));
        };
        match self.format {
            OutputFormat::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&record_json(&record, true))?
                )
            }
            OutputFormat::Text => print!("{}", render_record(&record)),
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn decide(&self, id: &str, verdict: Verdict) -> anyhow::Result<ExitCode> {
        if let Err(why) = check_verdict(&verdict) {
            anyhow::bail!("{why}");
        }
        if !is_approval_id(id) {
            return Ok(not_found(id));
        }
        let record = match self.store.decide(id, &verdict, &decided_by()).await {
            Ok(r) => r,
            Err(ApprovalError::NotFound(_)) => return Ok(not_found(id)),
            Err(ApprovalError::Conflict { state, .. }) => {
                eprintln!(
                    "toolgate: approval request {id} is {state}; it can no longer be decided"
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(e).context("cannot record the decision"),
        };
        let transition = Transition::of_verdict(&verdict);
        self.record_audit(transition, &record);
        match self.format {
            OutputFormat::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&record_json(&record, false))?
                )
            }
            OutputFormat::Text => {
                let who = record
                    .identity
                    .as_deref()
                    .map(|i| format!(" by {}", clean(i)))
                    .unwrap_or_default();
                match transition {
                    Transition::Approved => println!(
                        "Approved {}: the next identical call of {}{who} goes through, once, until {}.",
                        record.id,
                        clean(&record.tool),
                        format_rfc3339_ms(record.expires_ms)
                    ),
                    _ => println!(
                        "Denied {}: identical calls of {}{who} are refused with your reason until {}.",
                        record.id,
                        clean(&record.tool),
                        format_rfc3339_ms(record.expires_ms)
                    ),
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn find(&self, id: &str) -> anyhow::Result<Option<ApprovalRecord>> {
        if !is_approval_id(id) {
            return Ok(None);
        }
        self.store
            .get(id)
            .await
            .context("cannot read the approval request")
    }

    /// Appends the transition to the audit log. A failure is reported but does not undo the
    /// decision, which is already in the store.
    fn record_audit(&self, transition: Transition, record: &ApprovalRecord) {
        let event = audit_event(transition, record);
        record_cli_audit(self.audit.as_deref(), self.clock.now_ms(), &event);
    }
}

/// The state directory and the store DSN the state arguments name.
pub(super) fn state_of(args: &StateArgs) -> anyhow::Result<(PathBuf, String)> {
    let state_dir = expand_home(&args.state_dir)?;
    let dsn = args
        .state_dsn
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", state_dir.join("state.db").display()));
    Ok((state_dir, dsn))
}

/// Where a command records what it changed (none with --no-audit).
pub(super) fn audit_dir_of(args: &StateArgs, state_dir: &Path) -> Option<PathBuf> {
    (!args.no_audit).then(|| {
        args.audit_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("audit"))
    })
}

/// Appends one audit line (`instance: cli`); a failure is reported, and does not undo the
/// change, which is already in the store.
pub(super) fn record_cli_audit(dir: Option<&Path>, now_ms: u64, event: &AuditEvent) {
    let Some(dir) = dir else { return };
    if let Err(e) = toolgate_proxy::audit::chain::append_one(dir, AUDIT_INSTANCE, now_ms, event) {
        eprintln!(
            "toolgate: warning: the change was made, but not recorded in the audit log in {}: {e}",
            dir.display()
        );
    }
}

/// Who decided: `cli:<login name>`.
pub(super) fn decided_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let user: String = user
        .chars()
        .filter(|c| c.is_alphanumeric() || "._-@".contains(*c))
        .take(64)
        .collect();
    if user.is_empty() {
        "cli".to_string()
    } else {
        format!("cli:{user}")
    }
}

fn not_found(id: &str) -> ExitCode {
    eprintln!(
        "toolgate: no approval request {} in this state (check --state-dir / --state-dsn / --state-prefix)",
        clean(id)
    );
    ExitCode::FAILURE
}

fn render_list(records: &[ApprovalRecord], all: bool) -> String {
    let mut out = String::new();
    if records.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            if all {
                "No approval requests."
            } else {
                "No approval requests are waiting."
            }
        );
        return out;
    }
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.state.as_str().to_string(),
                clean(&r.tool),
                clean(r.identity.as_deref().unwrap_or("-")),
                format_rfc3339_ms(r.expires_ms),
                clean(&r.rule),
            ]
        })
        .collect();
    let header = ["ID", "STATE", "TOOL", "IDENTITY", "EXPIRES", "RULE"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header.map(String::from)).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn render_record(r: &ApprovalRecord) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key:<11} {}", clean(value));
    };
    line("id", &r.id);
    line("state", &describe_state(r));
    line("tool", &r.tool);
    line("identity", r.identity.as_deref().unwrap_or("-"));
    line("rule", &r.rule);
    if let Some(m) = &r.message {
        line("message", m);
    }
    line("policy", &r.policy);
    line("created", &format_rfc3339_ms(r.created_ms));
    line("expires", &format_rfc3339_ms(r.expires_ms));
    if let (Some(at), Some(by)) = (r.decided_ms, &r.decided_by) {
        line("decided", &format!("{} by {by}", format_rfc3339_ms(at)));
    }
    if let Some(note) = &r.note {
        line("note", note);
    }
    if let Some(at) = r.consumed_ms {
        line("used", &format_rfc3339_ms(at));
    }
    let arguments: Value = serde_json::from_str(&r.arguments).unwrap_or(Value::Null);
    // JSON escapes control characters, so the arguments are printed as they are.
    let pretty = serde_json::to_string_pretty(&arguments).unwrap_or_default();
    let _ = writeln!(out, "arguments:");
    for l in pretty.lines() {
        let _ = writeln!(out, "  {l}");
    }
    out
}

/// Replaces control characters, so text from agents cannot drive the terminal.
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
