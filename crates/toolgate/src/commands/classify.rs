//! `toolgate classify`: each tool's category, risk, confidence and evidence.

use std::process::ExitCode;
use std::time::Duration;

use toolgate_classify::{classify_all, render_json, render_table};

use super::tool_source::{self, ServerSpec};
use crate::cli::{ClassifyArgs, TableFormat};

pub fn run(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let set = match &args.tools_json {
        Some(path) => tool_source::from_file(path)?,
        None => tool_source::from_server(&ServerSpec {
            command: &args.command,
            upstream: args.upstream.as_deref(),
            headers: &args.headers,
            timeout: Duration::from_secs(args.timeout),
        })?,
    };
    let results = classify_all(&set.tools, set.server_name.as_deref());
    match args.format {
        TableFormat::Json => println!("{}", render_json(&set.tools, &results)),
        TableFormat::Table => print!("{}", render_table(&set.tools, &results)),
    }
    Ok(ExitCode::SUCCESS)
}
