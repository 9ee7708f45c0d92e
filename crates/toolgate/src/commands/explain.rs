//! `toolgate explain`: the decision for one call, with the trace of rules that produced it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{bail, Context};
use toolgate_policy::{Amount, Call, Explanation};

use super::policy_file;
use crate::cli::{ExplainArgs, OutputFormat};

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    if super::run_gateway::is_gateway_config(&args.config) {
        return explain_in_gateway(args);
    }
    if args.server.is_some() {
        bail!(
            "--server applies to a gateway config; {} is a policy",
            args.config.display()
        );
    }
    let Some(policy) = policy_file::load_or_report(&args.config)? else {
        return Ok(ExitCode::from(1));
    };
    let explanation = explain(&policy, &args.tool, args)?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
        OutputFormat::Text => print!("{}", render_text(&args.tool, &explanation)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A call through a gateway config: what the gateway-wide policy decides (with the name the
/// client uses), then what the server's own policy decides (with the server's name). The
/// call must pass both.
fn explain_in_gateway(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let gateway = match super::run_gateway::load(&args.config)? {
        Ok(gateway) => gateway,
        Err(report) => {
            eprint!("{report}");
            return Ok(ExitCode::from(1));
        }
    };
    use toolgate_policy::gateway_config::{aggregated_name, split_aggregated_name};
    let (server, tool) = match &args.server {
        Some(server) => (server.as_str(), args.tool.as_str()),
        None => split_aggregated_name(&args.tool).with_context(|| {
            format!(
                "--tool {:?} names no server: give `<server>__<tool>`, or --server",
                args.tool
            )
        })?,
    };
    let Some((_, _, server_policy)) = gateway.servers.iter().find(|(s, _, _)| s.name == server)
    else {
        let names: Vec<&str> = gateway
            .servers
            .iter()
            .map(|(s, _, _)| s.name.as_str())
            .collect();
        bail!(
            "no server {server:?} in {}; it has: {}",
            args.config.display(),
            names.join(", ")
        );
    };
    let aggregated = aggregated_name(server, tool);
    let front = match &gateway.policy {
        Some((_, policy)) => Some(explain(policy, &aggregated, args)?),
        None => None,
    };
    let own = explain(server_policy, tool, args)?;
    match args.format {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "gateway": front.as_ref().map(|e| serde_json::json!({"tool": aggregated, "explanation": e})),
                "server": {"name": server, "tool": tool, "explanation": own},
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            if let Some(front) = &front {
                println!("gateway-wide policy, as {aggregated}:");
                print!("{}", indent(&render_text(&aggregated, front)));
                println!();
            }
            println!("server {server}'s policy, as {tool}:");
            print!("{}", indent(&render_text(tool, &own)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| match l {
            "" => "\n".to_string(),
            l => format!("  {l}\n"),
        })
        .collect()
}

/// One policy's explanation of the call `args` describe, under the name `tool`.
fn explain(
    policy: &toolgate_policy::Policy,
    tool: &str,
    args: &ExplainArgs,
) -> anyhow::Result<Explanation> {
    let arguments: serde_json::Value = serde_json::from_str(&args.args)
        .with_context(|| format!("--args is not valid JSON: {}", args.args))?;
    if !arguments.is_object() {
        bail!("--args must be a JSON object, such as '{{\"amount\": 500}}'");
    }
    let counters = parse_counters(&args.counters)?;
    if let Some(category) = &args.category {
        let known = toolgate_policy::ir::CATEGORY_NAMES;
        if !known.contains(&category.as_str()) {
            bail!(
                "--category {category:?} is not a category; use one of: {}",
                known.join(", ")
            );
        }
    }
    let caller = caller_of(args)?;
    let call = Call {
        tool,
        arguments: &arguments,
        session: args.session.as_deref(),
        identity: args.identity.as_deref(),
        caller: caller.as_ref(),
    };
    Ok(policy.explain_in_category(&call, args.category.as_deref(), &counters))
}

/// The caller `--identity`, `--scopes` and `--claim` describe.
fn caller_of(args: &ExplainArgs) -> anyhow::Result<Option<toolgate_policy::Caller>> {
    let Some(name) = &args.identity else {
        return Ok(None);
    };
    let scopes = args
        .scopes
        .as_deref()
        .unwrap_or_default()
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut claims = serde_json::Map::new();
    for pair in &args.claims {
        let Some((claim, value)) = pair.split_once('=') else {
            bail!("--claim {pair:?} must be CLAIM=VALUE, e.g. org=acme");
        };
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        claims.insert(claim.to_string(), value);
    }
    Ok(Some(toolgate_policy::Caller {
        name: name.clone(),
        scopes,
        claims,
    }))
}

fn parse_counters(pairs: &[String]) -> anyhow::Result<HashMap<String, Amount>> {
    let mut counters = HashMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.rsplit_once('=') else {
            bail!("--counter {pair:?} must be KEY=VALUE, e.g. create_issue._rate_hour=5");
        };
        let amount = Amount::parse(value.trim())
            .with_context(|| format!("--counter {pair:?}: {value:?} is not a number"))?;
        counters.insert(key.trim().to_string(), amount);
    }
    Ok(counters)
}

/// The decision, the rules looked at, and the counters it would reserve, as text.
pub fn render_text(tool: &str, e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "decision: {}", e.decision);
    if let Some(rule) = &e.rule {
        let _ = writeln!(out, "rule:     {rule}");
    }
    if let Some(category) = &e.category {
        let _ = writeln!(
            out,
            "category: {category} (its rules apply: the policy does not name this tool)"
        );
    }
    if let Some(message) = &e.message {
        let _ = writeln!(out, "message:  {message}");
    }
    if let Some(shadow) = &e.shadow {
        let _ = write!(out, "shadow:   {}", shadow.decision.as_str());
        if let Some(rule) = &shadow.rule {
            let _ = write!(out, " by rule {rule:?}");
        }
        let _ = writeln!(out, " (dry run: the call goes through; this is audited)");
    }
    if !e.trace.is_empty() {
        let _ = writeln!(out, "\nrules evaluated for {tool}:");
        for step in &e.trace {
            let _ = writeln!(
                out,
                "  {:<18} {:<28} {}",
                step.result, step.rule, step.detail
            );
        }
    }
    if !e.reservations.is_empty() {
        let _ = writeln!(out, "\ncounters this call would reserve:");
        for r in &e.reservations {
            let _ = writeln!(
                out,
                "  {}  {} + {} (max {} per {}){}",
                r.key,
                r.current,
                r.amount,
                r.max,
                r.window,
                if r.shadow { " (dry run)" } else { "" }
            );
        }
    }
    out
}
