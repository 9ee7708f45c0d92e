//! `toolgate scan`: list a server's tools, classify them, write a starter policy that
//! validates.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use toolgate_classify::{classify_all, starter_policy_json, starter_policy_yaml};

use super::tool_source::{self, ServerSpec};
use crate::cli::{PolicyOutputFormat, ScanArgs};

pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.output {
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
    let results = classify_all(&set.tools, set.server_name.as_deref());
    let text = match args.format {
        PolicyOutputFormat::Yaml => {
            starter_policy_yaml(set.server_name.as_deref(), &set.tools, &results)
        }
        PolicyOutputFormat::Json => starter_policy_json(&set.tools, &results),
    };
    // What we write must load: check it before anyone relies on it.
    if let Err(errors) = toolgate_policy::compile(&text) {
        let first = errors
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_default();
        bail!("the generated policy does not validate ({first}); please report this with the server's tools/list");
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "Wrote a starter policy for {} tools to {}.",
                set.tools.len(),
                path.display()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
