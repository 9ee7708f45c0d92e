//! `toolgate status`: a summary of the audit log, as aligned text or as JSON.
//!
//! The figures come from `toolgate_proxy::audit::summary`; this module only finds the
//! directory and lays the summary out. Everything printed from the log is cleaned of control
//! characters first: tool names and messages come from clients and policies, and a log must not
//! be able to drive the terminal that reads it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::audit_summary::{summarize_dir, AuditSummary, SummaryOptions};
use anyhow::Context;
use serde::Serialize;
use toolgate_proxy::audit::default_audit_dir;

use super::run::expand_home;
use crate::cli::{OutputFormat, StatusArgs};

/// Messages longer than this are cut in the text tables (JSON has them whole).
const MESSAGE_CHARS: usize = 72;

#[derive(Serialize)]
struct Report<'a> {
    audit_dir: String,
    #[serde(flatten)]
    summary: &'a AuditSummary,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.audit_dir {
        Some(dir) => dir.clone(),
        None => default_audit_dir(&expand_home(&args.state_dir)?),
    };
    let options = SummaryOptions {
        window_minutes: args.since,
        recent: args.recent,
        ..SummaryOptions::default()
    };
    let summary = summarize_dir(&dir, options)
        .with_context(|| format!("cannot summarise the audit log in {}", dir.display()))?;
    match args.format {
        OutputFormat::Json => {
            let report = Report {
                audit_dir: dir.display().to_string(),
                summary: &summary,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => print!("{}", render_text(&dir, &summary)),
    }
    Ok(ExitCode::SUCCESS)
}

fn render_text(dir: &Path, s: &AuditSummary) -> String {
    let mut out = String::new();
    if s.events == 0 {
        // Not an error: a proxy that has not run yet, or runs with --no-audit, leaves nothing.
        let _ = writeln!(out, "No audit data yet in {}.", dir.display());
        if s.skipped_lines > 0 {
            let _ = writeln!(
                out,
                "({} of {} lines in {} files were not audit lines.)",
                s.skipped_lines, s.lines, s.files
            );
        }
        return out;
    }

    let _ = writeln!(out, "Audit log in {}", dir.display());
    let _ = write!(
        out,
        "  {} {}, {} {}",
        s.files,
        plural(s.files as u64, "file", "files"),
        s.lines,
        plural(s.lines, "line", "lines")
    );
    if s.skipped_lines > 0 {
        let _ = write!(out, " ({} skipped: not audit lines)", s.skipped_lines);
    }
    if let (Some(first), Some(last)) = (&s.first_ts, &s.last_ts) {
        let _ = write!(out, ", {first} to {last}");
    }
    out.push('\n');

    let _ = writeln!(out, "\nInstances");
    let mut rows = vec![row([
        "INSTANCE",
        "STATE",
        "FIRST SEEN",
        "LAST SEEN",
        "CALLS",
        "DENIED",
        "POLICY",
    ])];
    for i in &s.instances {
        rows.push(vec![
            clean(&i.instance),
            if i.running { "running" } else { "stopped" }.to_string(),
            i.first_seen.clone(),
            i.last_seen.clone(),
            i.calls.to_string(),
            i.denied.to_string(),
            i.policy.as_deref().map_or_else(|| "-".to_string(), clean),
        ]);
    }
    table(
        &mut out,
        &rows,
        &[false, false, false, false, true, true, false],
    );

    if !s.servers.is_empty() {
        let _ = writeln!(out, "\nServers (behind a gateway config)");
        let mut rows = vec![row(["SERVER", "STATE", "SINCE", "CALLS", "DENIED", "WHY"])];
        for server in &s.servers {
            let state = match server.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "-",
            };
            rows.push(vec![
                clean(&server.name),
                state.to_string(),
                server.since.clone().unwrap_or_else(|| "-".into()),
                server.calls.to_string(),
                server.denied.to_string(),
                server
                    .reason
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |r| truncate(&clean(r), 80)),
            ]);
        }
        table(&mut out, &rows, &[false, false, false, true, true, false]);
    }

    let _ = writeln!(out, "\nCalls");
    let d = &s.decisions;
    let mut rows = vec![
        vec!["total".into(), s.calls.to_string(), String::new()],
        vec!["allow".into(), d.allow.to_string(), String::new()],
        vec![
            "deny".into(),
            d.deny.to_string(),
            format!("{:.1}% of calls", s.deny_rate * 100.0),
        ],
        vec!["hidden".into(), d.hidden.to_string(), String::new()],
        vec![
            "approval_required".into(),
            d.approval_required.to_string(),
            String::new(),
        ],
        vec!["error".into(), d.error.to_string(), String::new()],
    ];
    if d.duplicate > 0 {
        rows.push(vec![
            "duplicate".into(),
            d.duplicate.to_string(),
            "answered with an identical call's answer (idempotency_window)".into(),
        ]);
    }
    // Shadow decisions apart: these calls were forwarded.
    for (name, count) in [
        ("would_deny", d.would_deny),
        ("would_hide", d.would_hide),
        ("would_require_approval", d.would_require_approval),
    ] {
        if d.shadow() > 0 {
            rows.push(vec![
                name.into(),
                count.to_string(),
                "shadow: forwarded; a dry-run rule would have stopped it".into(),
            ]);
        }
    }
    if d.other > 0 {
        rows.push(vec![
            "other".into(),
            d.other.to_string(),
            "decision kinds this version does not know".into(),
        ]);
    }
    rows.push(vec![
        "uncounted".into(),
        s.uncounted_calls.to_string(),
        "let through by fail-open while the counter store was unreachable".into(),
    ]);
    table(&mut out, &rows, &[false, true, false]);

    if let Some(rate) = &s.rate {
        let _ = writeln!(
            out,
            "\nLast {} min of the log (to {}): {} {}, {:.2} per minute, busiest minute {}",
            rate.minutes,
            rate.to,
            rate.calls,
            plural(rate.calls, "call", "calls"),
            rate.per_minute,
            rate.peak_per_minute
        );
    }

    let _ = writeln!(out, "\nTop deny rules");
    if s.top_deny_rules.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut rows = vec![row(["COUNT", "RULE"])];
        for r in &s.top_deny_rules {
            rows.push(vec![r.count.to_string(), clean(&r.rule)]);
        }
        table(&mut out, &rows, &[true, false]);
    }

    if !s.top_shadow_rules.is_empty() {
        let _ = writeln!(
            out,
            "\nTop dry-run rules (shadow decisions; the calls were forwarded)"
        );
        let mut rows = vec![row(["COUNT", "RULE"])];
        for r in &s.top_shadow_rules {
            rows.push(vec![r.count.to_string(), clean(&r.rule)]);
        }
        table(&mut out, &rows, &[true, false]);
    }

    let _ = writeln!(out, "\nRecent denials (newest first)");
    if s.recent_denials.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut rows = vec![row(["TIME", "INSTANCE", "TOOL", "RULE", "MESSAGE"])];
        for d in &s.recent_denials {
            rows.push(vec![
                d.ts.clone(),
                clean(&d.instance),
                clean(&d.tool),
                d.rule.as_deref().map_or_else(|| "-".to_string(), clean),
                d.message
                    .as_deref()
                    .map_or_else(String::new, |m| truncate(&clean(m), MESSAGE_CHARS)),
            ]);
        }
        table(&mut out, &rows, &[false; 5]);
    }

    let _ = writeln!(
        out,
        "\nFailed reloads ({} in all{})",
        s.failed_reloads_total,
        if s.failed_reloads.is_empty() {
            ""
        } else {
            "; newest first"
        }
    );
    if s.failed_reloads.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut rows = vec![row(["TIME", "INSTANCE", "FIRST ERROR"])];
        for r in &s.failed_reloads {
            let mut error = r.error.as_deref().map_or_else(String::new, clean);
            if r.error_count > 1 {
                let _ = write!(error, " (+{} more)", r.error_count - 1);
            }
            rows.push(vec![r.ts.clone(), clean(&r.instance), error]);
        }
        table(&mut out, &rows, &[false; 3]);
    }

    let _ = writeln!(
        out,
        "\nTool definitions changed since pinned ({} in all{}); {} looked poisoned",
        s.tool_changes_total,
        if s.tool_changes.is_empty() {
            ""
        } else {
            "; newest first"
        },
        s.poisoned_total
    );
    if s.tool_changes.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut rows = vec![row(["TIME", "SERVER", "TOOL", "CHANGE", "ACTION"])];
        for c in &s.tool_changes {
            rows.push(vec![
                c.ts.clone(),
                clean(&c.server),
                c.tool
                    .as_deref()
                    .map_or_else(|| "(instructions)".to_string(), clean),
                clean(&c.change),
                clean(&c.action),
            ]);
        }
        table(&mut out, &rows, &[false; 5]);
    }
    out
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Writes rows as columns two spaces apart, indented by two; `right[i]` right-aligns column i
/// (numbers). The last column is not padded, so lines carry no trailing blanks.
fn table(out: &mut String, rows: &[Vec<String>], right: &[bool]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for cells in rows {
        let mut line = String::from(" ");
        for (c, cell) in cells.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            line.push(' ');
            if right.get(c).copied().unwrap_or(false) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < cells.len() {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.push(' ');
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Control characters (newlines, escape sequences) and bidirectional overrides shown escaped
/// rather than obeyed.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn control_characters_are_escaped_not_printed() {
        assert_eq!(clean("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
        assert_eq!(clean("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(clean("plain – ok"), "plain – ok");
    }

    #[test]
    fn tables_align_and_carry_no_trailing_blanks() {
        let mut out = String::new();
        table(
            &mut out,
            &[
                row(["COUNT", "RULE"]),
                row(["3", "no-deletes"]),
                row(["12", "x"]),
            ],
            &[true, false],
        );
        assert_eq!(out, "  COUNT  RULE\n      3  no-deletes\n     12  x\n");
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
    }
}
