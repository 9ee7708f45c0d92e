//! `toolgate replay`: re-decide the calls an audit log recorded under another policy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use toolgate_policy::Window;
use toolgate_proxy::audit::{default_audit_dir, parse_rfc3339_ms};
use toolgate_proxy::framing::{BlockingLineReader, Frame};
use toolgate_state::{Clock, SystemClock};

use super::policy_file;
use super::run::expand_home;
use crate::audit_summary::for_each_audit_file;
use crate::cli::{OutputFormat, ReplayArgs};
use crate::replay::{Recorded, Replayed, Replayer, NOT_REPLAYED};

/// Longest audit line read; longer ones (huge recorded arguments) are skipped and counted.
const MAX_LINE_BYTES: usize = 8 << 20;

#[derive(Serialize)]
struct Report {
    audit_dir: String,
    policy: String,
    calls: usize,
    changed: usize,
    undetermined: usize,
    unchanged: usize,
    /// `old -> new` and how many calls made that change.
    changes: BTreeMap<String, usize>,
    /// Decision lines not replayed, by their decision (duplicates, errors, ambiguous calls).
    not_replayed: BTreeMap<String, usize>,
    skipped_lines: usize,
    changed_calls: Vec<Replayed>,
    undetermined_calls: Vec<Replayed>,
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let Some(policy) = policy_file::load_or_report(&args.config)? else {
        return Ok(ExitCode::from(2));
    };
    let dir = match &args.audit_dir {
        Some(dir) => dir.clone(),
        None => default_audit_dir(&expand_home(&args.state_dir)?),
    };
    let since_ms = match &args.since {
        None => 0,
        Some(text) => {
            let window =
                Window::parse(text).map_err(|e| anyhow::anyhow!("--since {text:?}: {e}"))?;
            SystemClock.now_ms().saturating_sub(window.length_ms)
        }
    };
    let (mut calls, skipped_lines) = read_calls(&dir, since_ms)
        .with_context(|| format!("cannot read the audit log in {}", dir.display()))?;
    // In time order; the sort is stable, so lines of one instance keep their order.
    calls.sort_by_key(|c| c.ms);

    let mut replayer = Replayer::new(&policy)?;
    let mut report = Report {
        audit_dir: dir.display().to_string(),
        policy: policy.revision.clone(),
        calls: 0,
        changed: 0,
        undetermined: 0,
        unchanged: 0,
        changes: BTreeMap::new(),
        not_replayed: BTreeMap::new(),
        skipped_lines,
        changed_calls: Vec::new(),
        undetermined_calls: Vec::new(),
    };
    for call in &calls {
        if NOT_REPLAYED.contains(&call.decision.as_str()) {
            *report
                .not_replayed
                .entry(call.decision.clone())
                .or_default() += 1;
            continue;
        }
        report.calls += 1;
        let replayed = replayer.replay(call);
        if replayed.undetermined.is_some() {
            report.undetermined += 1;
            report.undetermined_calls.push(replayed);
        } else if replayed.changed() {
            report.changed += 1;
            let change = format!(
                "{} -> {}",
                replayed.old,
                replayed.new.as_deref().unwrap_or("?")
            );
            *report.changes.entry(change).or_default() += 1;
            report.changed_calls.push(replayed);
        } else {
            report.unchanged += 1;
        }
    }
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{}", render_text(args, &report)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Every `decision` line at or after `since_ms`, and how many lines could not be read.
fn read_calls(dir: &std::path::Path, since_ms: u64) -> anyhow::Result<(Vec<Recorded>, usize)> {
    let mut calls = Vec::new();
    let mut skipped = 0;
    for_each_audit_file(dir, |file| {
        let mut lines = BlockingLineReader::new(file, MAX_LINE_BYTES);
        while let Some(frame) = lines.next_frame()? {
            let Frame::Line(line) = frame else {
                skipped += 1;
                continue;
            };
            if !line.contains("\"event\":\"decision\"") {
                continue;
            }
            match serde_json::from_str::<Recorded>(&line) {
                Ok(mut call) => match parse_rfc3339_ms(&call.ts) {
                    Some(ms) if ms >= since_ms => {
                        call.ms = ms;
                        calls.push(call);
                    }
                    Some(_) => {}
                    None => skipped += 1,
                },
                Err(_) => skipped += 1,
            }
        }
        Ok(())
    })?;
    Ok((calls, skipped))
}

fn render_text(args: &ReplayArgs, r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Replayed {} calls from {} under {} (revision {}).",
        r.calls,
        r.audit_dir,
        args.config.display(),
        r.policy
    );
    if r.calls == 0 {
        if args.since.is_some() {
            out.push_str("No calls were recorded in that time.\n");
        }
        return out;
    }
    let _ = write!(out, "  would change:  {}", r.changed);
    if !r.changes.is_empty() {
        let kinds: Vec<String> = r.changes.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = write!(out, "  ({})", kinds.join(", "));
    }
    let _ = writeln!(out, "\n  unchanged:     {}", r.unchanged);
    let _ = writeln!(out, "  undetermined:  {}", r.undetermined);
    if !r.not_replayed.is_empty() {
        let kinds: Vec<String> = r
            .not_replayed
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  not replayed:  {} (not the policy's decisions)",
            kinds.join(", ")
        );
    }
    if r.skipped_lines > 0 {
        let _ = writeln!(
            out,
            "  {} lines could not be read and were skipped",
            r.skipped_lines
        );
    }
    let list = |out: &mut String, title: &str, calls: &[Replayed], why: bool| {
        if calls.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{title} (oldest first):");
        for c in calls.iter().take(args.show) {
            let who = c.identity.as_deref().unwrap_or("-");
            let _ = write!(
                out,
                "  {}  {}  {who}  {}",
                c.ts,
                c.tool,
                with_rule(&c.old, &c.old_rule)
            );
            match (&c.new, c.undetermined) {
                (_, Some(reason)) if why => {
                    let _ = write!(out, " -> ?  ({reason})");
                }
                (Some(new), _) => {
                    let _ = write!(out, " -> {}", with_rule(new, &c.new_rule));
                }
                _ => {}
            }
            out.push('\n');
        }
        if calls.len() > args.show {
            let _ = writeln!(
                out,
                "  … and {} more (--show N, or --format json for all)",
                calls.len() - args.show
            );
        }
    };
    list(
        &mut out,
        "Calls whose decision would change",
        &r.changed_calls,
        false,
    );
    list(
        &mut out,
        "Calls that cannot be re-decided",
        &r.undetermined_calls,
        true,
    );
    if r.undetermined_calls.iter().any(|c| {
        c.undetermined
            .is_some_and(|u| u.contains("argument values"))
    }) {
        out.push_str("\nTo re-decide calls whose decision reads argument values, record them: `audit: {arguments: full}` (or `redacted`) in the policy in force.\n");
    }
    out
}

fn with_rule(decision: &str, rule: &Option<String>) -> String {
    match rule {
        Some(rule) => format!("{decision} (rule {rule:?})"),
        None => decision.to_string(),
    }
}
