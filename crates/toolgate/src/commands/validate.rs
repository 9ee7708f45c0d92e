//! `toolgate validate`: every problem in a policy file (and in the pin lock file it names),
//! or `Policy file is valid.`

use std::process::ExitCode;

use serde_json::json;
use toolgate_proxy::pinning::LockFile;

use super::policy_file;
use super::scope_warnings::scope_warnings;
use crate::cli::{OutputFormat, ValidateArgs};

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    if super::run_gateway::is_gateway_config(&args.config) {
        return validate_gateway_config(args);
    }
    let result = policy_file::load(&args.config)?;
    let errors = result.as_ref().err().cloned().unwrap_or_default();
    let warnings = match &result {
        Ok(policy) => scope_warnings(policy, args.transport),
        Err(_) => Vec::new(),
    };
    // The lock file the policy names must load as the gateway would load it.
    let lock_error = result
        .as_ref()
        .ok()
        .and_then(|policy| LockFile::of_policy(policy, &args.config).err());
    let valid = errors.is_empty() && lock_error.is_none();
    match args.format {
        OutputFormat::Json => {
            let report = json!({
                "valid": valid,
                "errors": errors,
                "lock_error": lock_error,
                "warnings": warnings,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text if !errors.is_empty() => {
            print!("{}", policy_file::render_errors(&args.config, &errors))
        }
        OutputFormat::Text if lock_error.is_some() => {
            let file = args.config.display();
            println!("{file}: pinning.lock: {}", lock_error.unwrap_or_default());
        }
        OutputFormat::Text => {
            println!("Policy file is valid.");
            let file = args.config.display();
            for warning in &warnings {
                println!("{file}: warning: {warning}");
            }
        }
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A gateway config: the config itself and every policy it names.
fn validate_gateway_config(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::run_gateway::load(&args.config)?;
    match (&loaded, args.format) {
        (Ok(gateway), OutputFormat::Json) => {
            let servers: Vec<&str> = gateway
                .servers
                .iter()
                .map(|(s, _, _)| s.name.as_str())
                .collect();
            let report = json!({"valid": true, "kind": "gateway", "servers": servers});
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        (Err(errors), OutputFormat::Json) => {
            let errors: Vec<&str> = errors.lines().collect();
            let report = json!({"valid": false, "kind": "gateway", "errors": errors});
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        (Ok(gateway), OutputFormat::Text) => {
            println!(
                "Gateway config is valid: {} servers ({}).",
                gateway.servers.len(),
                gateway
                    .servers
                    .iter()
                    .map(|(s, _, _)| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        (Err(errors), OutputFormat::Text) => print!("{errors}"),
    }
    Ok(if loaded.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
