//! `toolgate validate`: every problem in a policy file, or `Policy file is valid.`

use std::process::ExitCode;

use serde_json::json;

use super::policy_file;
use super::scope_warnings::scope_warnings;
use crate::cli::{OutputFormat, ValidateArgs};

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let result = policy_file::load(&args.config)?;
    let errors = result.as_ref().err().cloned().unwrap_or_default();
    let warnings = match &result {
        Ok(policy) => scope_warnings(policy, args.transport),
        Err(_) => Vec::new(),
    };
    match args.format {
        OutputFormat::Json => {
            let report =
                json!({"valid": errors.is_empty(), "errors": errors, "warnings": warnings});
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text if errors.is_empty() => {
            println!("Policy file is valid.");
            let file = args.config.display();
            for warning in &warnings {
                println!("{file}: warning: {warning}");
            }
        }
        OutputFormat::Text => print!("{}", policy_file::render_errors(&args.config, &errors)),
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
