//! `toolgate pins`: the tool definition pins the gateways share (`docs/INTEGRITY.md`) — list
//! them, show how a tool's listed definition departs from its pin, approve it, forget pins —
//! and `pins check`, which compares a live server with a committed lock file for CI.
//!
//! Definitions come from servers, which may be hostile: everything printed passes through
//! [`clean`] or JSON escaping, so a description cannot drive the terminal.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use toolgate_proxy::audit::{format_rfc3339_ms, AuditEvent};
use toolgate_proxy::pinning::json_diff::differences;
use toolgate_proxy::pinning::{compare, instructions_entry, seen_tool, Drift, DriftKind, LockFile};
use toolgate_state::pins::{tool_key, tool_of_key, INSTRUCTIONS_KEY};
use toolgate_state::{Clock, Dsn, PinEntry, PinRecord, SharedPins, SystemClock};

use super::approvals::{audit_dir_of, clean, decided_by, record_cli_audit, state_of};
use super::tool_source::{self, ServerSpec};
use crate::cli::{OutputFormat, PinsAction, PinsArgs, PinsCheckArgs};

/// How the server's instructions are named where a tool would be: `SERVER/(instructions)`.
const INSTRUCTIONS_NAME: &str = "(instructions)";

pub fn run(args: &PinsArgs) -> anyhow::Result<ExitCode> {
    if let PinsAction::Check(check) = &args.action {
        return run_check(check, args.format);
    }
    let (state_dir, dsn) = state_of(&args.state)?;
    if matches!(Dsn::parse(&dsn), Ok(Dsn::Memory)) {
        bail!(
            "with this --state-dsn, pins live inside the gateway process and end with it; \
             use the gateway's --state-dir or an sqlite:/redis:// --state-dsn to share them"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let cli = Cli {
            store: toolgate_state::open_pins(&dsn, &args.state.state_prefix)
                .context("cannot open the pin store")?,
            format: args.format,
            audit: audit_dir_of(&args.state, &state_dir),
        };
        match &args.action {
            PinsAction::List { server } => cli.list(server.as_deref()).await,
            PinsAction::Diff { target } => cli.diff(target).await,
            PinsAction::Approve {
                target: Some(target),
                ..
            } => cli.approve_one(target).await,
            PinsAction::Approve { server, .. } => cli.approve_all(server.as_deref()).await,
            PinsAction::Reset { server, .. } => cli.reset(server.as_deref()).await,
            PinsAction::Check(_) => unreachable!("handled above"),
        }
    })
}

struct Cli {
    store: SharedPins,
    format: OutputFormat,
    audit: Option<PathBuf>,
}

/// `SERVER/TOOL` → (server, store key).
fn parse_target(target: &str) -> anyhow::Result<(String, String)> {
    let Some((server, tool)) = target
        .split_once('/')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
    else {
        bail!(
            "{:?} is not SERVER/TOOL (`toolgate pins list` shows both; the server's instructions \
             are SERVER/{INSTRUCTIONS_NAME})",
            clean(target)
        );
    };
    let key = if tool == INSTRUCTIONS_NAME {
        INSTRUCTIONS_KEY.to_string()
    } else {
        tool_key(tool)
    };
    Ok((server.to_string(), key))
}

/// The name a key is shown under.
fn shown_name(key: &str) -> &str {
    tool_of_key(key).unwrap_or(INSTRUCTIONS_NAME)
}

fn state_of_record(r: &PinRecord) -> &'static str {
    match (&r.pinned, &r.pending) {
        (Some(_), None) => "pinned",
        (Some(_), Some(_)) => "changed",
        (None, _) => "new",
    }
}

fn entry_json(e: &PinEntry, with_definition: bool) -> Value {
    let mut v = json!({"sha256": e.digest, "seen": format_rfc3339_ms(e.seen_ms)});
    if with_definition {
        v["definition"] = serde_json::from_str(&e.definition).unwrap_or(Value::Null);
    }
    v
}

fn record_json(r: &PinRecord, with_definitions: bool) -> Value {
    json!({
        "server": r.server,
        "tool": tool_of_key(&r.key),
        "state": state_of_record(r),
        "pinned": r.pinned.as_ref().map(|e| entry_json(e, with_definitions)),
        "pending": r.pending.as_ref().map(|e| entry_json(e, with_definitions)),
    })
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

impl Cli {
    async fn list(&self, server: Option<&str>) -> anyhow::Result<ExitCode> {
        let records = self.store.list(server).await?;
        if self.format == OutputFormat::Json {
            let all: Vec<Value> = records.iter().map(|r| record_json(r, false)).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(ExitCode::SUCCESS);
        }
        if records.is_empty() {
            println!("No pins yet: a gateway pins a server's tools when it first lists them.");
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = format!(
            "{:<20} {:<32} {:<8} {:<12} {}\n",
            "SERVER", "TOOL", "STATE", "PIN", "SINCE"
        );
        let mut waiting = 0;
        for r in &records {
            let pin = r.pinned.as_ref().map_or("-", |e| short(&e.digest));
            let since = r
                .pending
                .as_ref()
                .or(r.pinned.as_ref())
                .map_or(String::new(), |e| format_rfc3339_ms(e.seen_ms));
            waiting += usize::from(r.pending.is_some());
            let _ = writeln!(
                out,
                "{:<20} {:<32} {:<8} {:<12} {since}",
                clean(&r.server),
                clean(shown_name(&r.key)),
                state_of_record(r),
                pin
            );
        }
        let _ = write!(
            out,
            "\n{} pins, {waiting} waiting for approval",
            records.len()
        );
        if waiting > 0 {
            out.push_str(" (toolgate pins diff SERVER/TOOL; toolgate pins approve SERVER/TOOL)");
        }
        println!("{out}");
        Ok(ExitCode::SUCCESS)
    }

    async fn find(&self, server: &str, key: &str) -> anyhow::Result<Option<PinRecord>> {
        Ok(self
            .store
            .list(Some(server))
            .await?
            .into_iter()
            .find(|r| r.key == key))
    }

    async fn diff(&self, target: &str) -> anyhow::Result<ExitCode> {
        let (server, key) = parse_target(target)?;
        let Some(record) = self.find(&server, &key).await? else {
            eprintln!(
                "toolgate: no pin for {} (see `toolgate pins list`)",
                clean(target)
            );
            return Ok(ExitCode::FAILURE);
        };
        let diff = match &record.pending {
            Some(pending) => differences(
                record
                    .pinned
                    .as_ref()
                    .map_or("{}", |e| e.definition.as_str()),
                &pending.definition,
            ),
            None => Vec::new(),
        };
        if self.format == OutputFormat::Json {
            let mut v = record_json(&record, true);
            v["diff"] = json!(diff);
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        let name = format!("{}/{}", clean(&server), clean(shown_name(&key)));
        match (&record.pinned, &record.pending) {
            (Some(pin), None) => println!(
                "{name} is listed as pinned (sha256 {}).",
                short(&pin.digest)
            ),
            (pinned, Some(pending)) => {
                let from = pinned
                    .as_ref()
                    .map_or("nothing (a new tool)".to_string(), |p| {
                        format!("sha256 {}", short(&p.digest))
                    });
                println!(
                    "{name}: listed since {} as sha256 {}, pinned as {from}\n",
                    format_rfc3339_ms(pending.seen_ms),
                    short(&pending.digest)
                );
                for line in &diff {
                    println!("  {line}");
                }
                println!("\nApprove it with: toolgate pins approve {name}");
            }
            (None, None) => println!("{name} has no pin."),
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn approve_one(&self, target: &str) -> anyhow::Result<ExitCode> {
        let (server, key) = parse_target(target)?;
        match self.store.approve(&server, &key).await? {
            Some(record) => {
                self.approved(&record);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!(
                    "toolgate: nothing waits for approval for {} (see `toolgate pins list`)",
                    clean(target)
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }

    async fn approve_all(&self, server: Option<&str>) -> anyhow::Result<ExitCode> {
        let waiting: Vec<PinRecord> = self
            .store
            .list(server)
            .await?
            .into_iter()
            .filter(|r| r.pending.is_some())
            .collect();
        let mut approved = 0;
        for r in waiting {
            if let Some(record) = self.store.approve(&r.server, &r.key).await? {
                self.approved(&record);
                approved += 1;
            }
        }
        if approved == 0 {
            println!("Nothing waits for approval.");
        }
        Ok(ExitCode::SUCCESS)
    }

    fn approved(&self, record: &PinRecord) {
        let digest = record
            .pinned
            .as_ref()
            .map_or(String::new(), |e| e.digest.clone());
        println!(
            "approved {}/{} (sha256 {})",
            clean(&record.server),
            clean(shown_name(&record.key)),
            short(&digest)
        );
        let event = AuditEvent::PinApproved {
            server: record.server.clone(),
            tool: tool_of_key(&record.key).map(str::to_string),
            pinned: digest,
            by: decided_by(),
        };
        record_cli_audit(self.audit.as_deref(), SystemClock.now_ms(), &event);
    }

    async fn reset(&self, server: Option<&str>) -> anyhow::Result<ExitCode> {
        let count = self.store.reset(server).await?;
        println!("Forgot {count} pins; the next listing is trusted on first use.");
        let event = AuditEvent::PinsReset {
            server: server.map(str::to_string),
            count,
            by: decided_by(),
        };
        record_cli_audit(self.audit.as_deref(), SystemClock.now_ms(), &event);
        Ok(ExitCode::SUCCESS)
    }
}

/// `pins check`: list the server's tools and compare them with the lock file. Exit 0 when
/// they match, 1 on any drift, 2 when the lock file or the server cannot be read.
fn run_check(args: &PinsCheckArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let lock = match LockFile::read(&args.lock) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("toolgate: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let listed = match tool_source::listing(&ServerSpec {
        command: &args.command,
        upstream: args.upstream.as_deref(),
        headers: &args.headers,
        timeout: Duration::from_secs(args.timeout),
    }) {
        Ok(listed) => listed,
        Err(error) => {
            eprintln!("toolgate: {error:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let seen: Vec<_> = listed
        .tools
        .iter()
        .filter_map(|t| seen_tool(t, 0))
        .collect();
    let mut drift = compare(&lock.tools, &seen, true);
    if let Some(pinned) = &lock.instructions {
        let now = instructions_entry(listed.instructions.as_deref(), 0);
        if now.digest != pinned.digest {
            drift.push(Drift {
                tool: INSTRUCTIONS_NAME.to_string(),
                kind: DriftKind::Changed,
                pinned: Some(pinned.clone()),
                seen: Some(now),
            });
        }
    }
    let lock_name = args.lock.display().to_string();
    if format == OutputFormat::Json {
        let items: Vec<Value> = drift
            .iter()
            .map(|d| {
                json!({
                    "tool": d.tool,
                    "change": d.kind.as_str(),
                    "renamed_from": match &d.kind { DriftKind::Renamed { from } => Some(from), _ => None },
                    "diff": d.diff(),
                })
            })
            .collect();
        let report =
            json!({"lock": lock_name, "server": lock.server, "tools": seen.len(), "drift": items});
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if drift.is_empty() {
        println!("{} tools match {lock_name}.", seen.len());
    } else {
        let mut out = String::new();
        for d in &drift {
            let from = match &d.kind {
                DriftKind::Renamed { from } => format!(" (from {})", clean(from)),
                _ => String::new(),
            };
            let _ = writeln!(out, "{} {}{from}", d.kind.as_str(), clean(&d.tool));
            if !matches!(d.kind, DriftKind::Removed | DriftKind::New) {
                for line in d.diff() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        let _ = write!(
            out,
            "\n{} of the server's definitions drift from {lock_name}; if the change is \
             intended, regenerate it with `toolgate scan --lock {lock_name} -- SERVER`.",
            drift.len()
        );
        println!("{out}");
    }
    Ok(if drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
