//! `toolgate audit verify`: walk the audit log's hash chains (`toolgate_proxy::audit::chain`).

use std::process::ExitCode;

use serde_json::json;
use toolgate_proxy::audit::chain::verify_dir;

use super::run::expand_home;
use crate::cli::{AuditAction, AuditArgs, OutputFormat};

pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditAction::Verify {
        audit_dir,
        state_dir,
        format,
    } = &args.action;
    let dir = match audit_dir {
        Some(dir) => dir.clone(),
        None => expand_home(state_dir)?.join("audit"),
    };
    let outcome = match verify_dir(&dir) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!(
                "toolgate: cannot read the audit log in {}: {e}",
                dir.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    match (&outcome, format) {
        (Ok(v), OutputFormat::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": true, "lines": v.lines, "files": v.files, "instances": v.instances,
                "starts_after_pruning": v.starts_after_pruning,
            }))?
        ),
        (Err(b), OutputFormat::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": false, "file": b.file, "line": b.line, "why": b.why,
            }))?
        ),
        (Ok(v), OutputFormat::Text) => {
            println!(
                "Verified {} lines in {} files of {} instances in {}.",
                v.lines,
                v.files,
                v.instances,
                dir.display()
            );
            for instance in &v.starts_after_pruning {
                println!(
                    "  instance {instance}: the chain starts after files that are gone (pruned by \
                     rotation, or removed)"
                );
            }
        }
        (Err(b), OutputFormat::Text) => {
            println!("{}:{}: {}", b.file.display(), b.line, b.why);
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
