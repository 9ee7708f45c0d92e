//! `toolgate diff OLD NEW`: what changes between two policies, by meaning.

use std::fmt::Write as _;
use std::process::ExitCode;

use toolgate_policy::diff::{diff, LimitChange, PolicyDiff};
use toolgate_policy::Policy;

use super::policy_file;
use crate::cli::{DiffArgs, OutputFormat};

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let old = policy_file::load_or_report(&args.old)?;
    let new = policy_file::load_or_report(&args.new)?;
    let (Some(old), Some(new)) = (old, new) else {
        return Ok(ExitCode::from(2));
    };
    let changes = diff(&old, &new);
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&changes)?),
        OutputFormat::Text => print!("{}", render_text(args, &old, &new, &changes)),
    }
    Ok(if changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn render_text(args: &DiffArgs, old: &Policy, new: &Policy, d: &PolicyDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (revision {}) -> {} (revision {})",
        args.old.display(),
        old.revision,
        args.new.display(),
        new.revision
    );
    if d.is_empty() {
        out.push_str("The policies mean the same: no decision differs.\n");
        return out;
    }
    for s in &d.settings {
        let _ = write!(out, "{}: {} -> {}", s.setting, s.old, s.new);
        match (s.setting, s.new.as_str()) {
            ("default", "deny") => out.push_str(" (tools the policy does not list are now hidden)"),
            ("default", "allow") => {
                out.push_str(" (tools the policy does not list are now allowed)")
            }
            ("mode", "shadow") => {
                out.push_str(" (nothing is refused any more: decisions are only audited)")
            }
            ("mode", "enforce") => out.push_str(" (decisions are carried out again)"),
            _ => {}
        }
        out.push('\n');
    }
    let list = |out: &mut String, title: &str, names: &[String]| {
        if !names.is_empty() {
            let _ = writeln!(out, "{title}: {}", names.join(", "));
        }
    };
    list(&mut out, "tools now hidden", &d.newly_hidden);
    list(&mut out, "tools now visible", &d.newly_visible);
    list(&mut out, "tools now refused on every call", &d.newly_denied);
    list(
        &mut out,
        "tools no longer refused on every call",
        &d.no_longer_denied,
    );
    if !d.limits.is_empty() {
        out.push_str("limits:\n");
        for l in &d.limits {
            let _ = writeln!(out, "  {}", describe_limit(l));
        }
    }
    if !d.rules.is_empty() {
        out.push_str("rules:\n");
        for r in &d.rules {
            let _ = write!(out, "  {:<8} {} / {:?}", r.change, r.owner, r.rule);
            if !r.what.is_empty() {
                let _ = write!(out, " ({})", r.what.join(", "));
            }
            out.push('\n');
        }
    }
    list(&mut out, "identities added", &d.identities_added);
    list(&mut out, "identities removed", &d.identities_removed);
    out
}

fn describe_limit(l: &LimitChange) -> String {
    let show = |s: &toolgate_policy::diff::LimitSummary| {
        let dry = if s.dry_run { ", dry run" } else { "" };
        format!("{} per {} ({}{dry})", s.max, s.window, s.scope)
    };
    let what = match (&l.old, &l.new) {
        (Some(a), Some(b)) => format!("{}: {} -> {}", l.change, show(a), show(b)),
        (None, Some(b)) => format!("added: {}", show(b)),
        (Some(a), None) => format!("removed: {}", show(a)),
        (None, None) => l.change.to_string(),
    };
    format!("{}.{} (rule {:?}) {what}", l.owner, l.counter, l.rule)
}
