//! `toolgate validate`: every problem in a policy file, or `Policy file is valid.`

use std::process::ExitCode;

use serde_json::json;

use super::policy_file;
use crate::cli::{OutputFormat, ValidateArgs};

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let result = policy_file::load(&args.config)?;
    let errors = result.as_ref().err().cloned().unwrap_or_default();
    match args.format {
        OutputFormat::Json => {
            let report = json!({"valid": errors.is_empty(), "errors": errors});
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text if errors.is_empty() => println!("Policy file is valid."),
        OutputFormat::Text => print!("{}", policy_file::render_errors(&args.config, &errors)),
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
