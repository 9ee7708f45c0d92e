//! `toolgate scan`: list a server's tools, classify them, write a starter policy that
//! validates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use toolgate_classify::{classify_all, starter_policy_json, starter_policy_yaml};

use toolgate_proxy::pinning::{server_name, LockFile};

use super::starter_tests::starter_tests;
use super::tool_source::{self, ServerSpec};
use crate::cli::{PolicyOutputFormat, ScanArgs};

pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let tests_path = args
        .output
        .as_deref()
        .filter(|_| !args.no_tests)
        .map(test_file_for);
    for path in args.output.iter().chain(&tests_path).chain(&args.lock) {
        if path.exists() && !args.force {
            bail!(
                "{} already exists; pass --force to replace it",
                path.display()
            );
        }
    }
    let set = tool_source::from_server(&ServerSpec {
        command: &args.command,
        upstream: args.upstream.as_deref(),
        headers: &args.headers,
        timeout: Duration::from_secs(args.timeout),
    })?;
    if let (Some(lock_path), Some(listing)) = (&args.lock, &set.listing) {
        let server = server_name::given_or_derived(
            args.server_name.as_deref(),
            args.upstream.as_deref(),
            &args.command,
        );
        let lock = LockFile::of_listing(&server, &listing.tools, listing.instructions.as_deref());
        std::fs::write(lock_path, lock.to_text())
            .with_context(|| format!("cannot write {}", lock_path.display()))?;
        eprintln!(
            "Pinned {} tools of {server} in {} (use it with `pinning: {{lock: …}}` in the \
             policy, and check a server against it with `toolgate pins check --lock`).",
            lock.tools.len(),
            lock_path.display()
        );
        if args.output.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let results = classify_all(&set.tools, set.server_name.as_deref());
    let text = match args.format {
        PolicyOutputFormat::Yaml => {
            starter_policy_yaml(set.server_name.as_deref(), &set.tools, &results)
        }
        PolicyOutputFormat::Json => starter_policy_json(&set.tools, &results),
    };
    // What we write must load: check it before anyone relies on it.
    let policy = match toolgate_policy::compile(&text) {
        Ok(policy) => policy,
        Err(errors) => {
            let first = errors
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default();
            bail!("the generated policy does not validate ({first}); please report this with the server's tools/list");
        }
    };
    let tests = match (&args.output, &tests_path) {
        (Some(policy_path), Some(_)) => {
            let policy_name = policy_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tests = starter_tests(&policy_name, &policy, &set.tools, &results);
            check_tests_pass(&tests, &policy)?;
            Some(tests)
        }
        _ => None,
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "Wrote a starter policy for {} tools to {}.",
                set.tools.len(),
                path.display()
            );
            if let (Some(tests), Some(tests_path)) = (tests, &tests_path) {
                std::fs::write(tests_path, tests)
                    .with_context(|| format!("cannot write {}", tests_path.display()))?;
                eprintln!(
                    "Wrote its tests to {} (run them with `toolgate test {}`).",
                    tests_path.display(),
                    tests_path.display()
                );
            }
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `policy.yaml` → `policy.test.yaml`, beside it.
fn test_file_for(policy: &Path) -> PathBuf {
    let stem = policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy".into());
    policy.with_file_name(format!("{stem}.test.yaml"))
}

/// The starter tests must load and pass against the starter policy they were written for.
fn check_tests_pass(text: &str, policy: &toolgate_policy::Policy) -> anyhow::Result<()> {
    let suite = match toolgate_policy::suite::parse_suite(text) {
        Ok(suite) => suite,
        Err(errors) => {
            let first = errors
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default();
            bail!("the generated tests do not load ({first}); please report this with the server's tools/list");
        }
    };
    if let Some(failed) = suite
        .cases
        .iter()
        .map(|c| c.run(policy))
        .find(|r| !r.passed())
    {
        bail!(
            "the generated test {:?} fails against the generated policy; please report this with the server's tools/list",
            failed.name
        );
    }
    Ok(())
}
