//! `toolgate test`: run policy test files and report each failing call with the trace of its
//! decision.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use toolgate_policy::suite::{parse_suite, CallFailure, Suite};
use toolgate_policy::Policy;

use super::explain::render_text;
use super::junit;
use super::policy_file;
use crate::cli::TestArgs;

/// Exit status when a file could not be run (unreadable, not a valid test file or policy).
const EXIT_NOT_RUN: u8 = 2;

pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::with_capacity(args.files.len());
    for file in &args.files {
        reports.push(run_file(file, args.quiet));
    }
    let passed: usize = reports.iter().map(|r| r.cases.len() - failures(r)).sum();
    let failed: usize = reports.iter().map(failures).sum();
    let not_run = reports.iter().filter(|r| r.error.is_some()).count();
    let mut summary = format!("{passed} passed, {failed} failed");
    if not_run > 0 {
        let noun = if not_run == 1 { "file" } else { "files" };
        let _ = write!(summary, ", {not_run} {noun} could not be run");
    }
    println!("{summary}");
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::render(&reports))
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    Ok(if not_run > 0 {
        ExitCode::from(EXIT_NOT_RUN)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn failures(report: &junit::Suite) -> usize {
    report.cases.iter().filter(|c| c.failure.is_some()).count()
}

/// Runs one file, printing as it goes; the report is what JUnit gets.
fn run_file(file: &Path, quiet: bool) -> junit::Suite {
    let name = file.display().to_string();
    let (suite, policy) = match load(file) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprint!("{error}");
            return junit::Suite {
                name,
                cases: Vec::new(),
                error: Some(error),
            };
        }
    };
    let header = format!(
        "{name} (policy {}, revision {})",
        suite.policy, policy.revision
    );
    // Quiet runs name the file only once something in it fails.
    let mut header_printed = !quiet;
    if !quiet {
        println!("{header}");
    }
    let mut cases = Vec::with_capacity(suite.cases.len());
    for case in &suite.cases {
        let started = Instant::now();
        let result = case.run(&policy);
        let time = started.elapsed();
        let failure = result.failure.map(|f| {
            let details = describe_failure(&case.tool, &f);
            if !header_printed {
                println!("{header}");
                header_printed = true;
            }
            println!("  FAIL  {}", case.name);
            for line in details.lines() {
                if line.is_empty() {
                    println!();
                } else {
                    println!("        {line}");
                }
            }
            (summary_of(&f), details)
        });
        if failure.is_none() && !quiet {
            println!("  ok    {}", case.name);
        }
        cases.push(junit::Case {
            name: case.name.clone(),
            time,
            failure,
        });
    }
    junit::Suite {
        name,
        cases,
        error: None,
    }
}

/// The test file and its policy, or every problem with either, as text.
fn load(file: &Path) -> Result<(Suite, Policy), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read test file {}: {e}\n", file.display()))?;
    let suite = parse_suite(&text).map_err(|errors| policy_file::render_errors(file, &errors))?;
    let policy_path = file.parent().unwrap_or(Path::new("")).join(&suite.policy);
    let policy = match policy_file::load(&policy_path) {
        Ok(Ok(policy)) => policy,
        Ok(Err(errors)) => return Err(policy_file::render_errors(&policy_path, &errors)),
        Err(e) => {
            return Err(format!(
                "{}:{}:{}: policy: {e:#}\n",
                file.display(),
                suite.policy_location.line,
                suite.policy_location.column
            ))
        }
    };
    Ok((suite, policy))
}

fn summary_of(failure: &CallFailure) -> String {
    if failure.calls == 1 {
        failure.reason.clone()
    } else {
        format!(
            "call {} of {}: {}",
            failure.call, failure.calls, failure.reason
        )
    }
}

fn describe_failure(tool: &str, failure: &CallFailure) -> String {
    format!(
        "{}\n{}",
        summary_of(failure),
        render_text(tool, &failure.explanation)
    )
}
