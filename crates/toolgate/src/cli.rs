//! Command-line arguments. The root command runs the proxy, as Intercept's does, so an MCP
//! client config written for one works for the other.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "toolgate",
    version,
    about = "A policy gateway for MCP: decides every tools/call before it reaches the server.",
    long_about = "A policy gateway for the Model Context Protocol.\n\n\
        toolgate sits between an MCP client and an MCP server and decides every tools/call from a \
        policy file: allow, deny, rate-limit and budget, check arguments, hide tools. Denied calls \
        never reach the server; every decision is audited.\n\n\
        Run a server behind it (this is what an MCP client's config points at):\n  \
        toolgate -c policy.yaml -- npx -y @modelcontextprotocol/server-everything\n\n\
        Check a policy, and see how it decides a call:\n  \
        toolgate validate -c policy.yaml\n  \
        toolgate explain -c policy.yaml --tool create_refund --args '{\"amount\": 500}'",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the same as giving its flags without a subcommand).
    Run(RunArgs),
    /// Check a policy file and report every problem with its line and column.
    Validate(ValidateArgs),
    /// Show how the policy decides one call, rule by rule, without side effects.
    Explain(ExplainArgs),
    /// Summarise the audit log: instances, decisions, deny rate, top deny rules, recent
    /// denials and failed reloads, across every instance and rotated file.
    Status(StatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailModeArg {
    /// Refuse calls that need a counter while the store is unreachable.
    Closed,
    /// Let such calls through uncounted (recorded in the audit log).
    Open,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Policy file (YAML or JSON; Intercept and PolicyLayer forms). Reloaded when it changes.
    #[arg(short = 'c', long = "config", value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,

    /// Directory for state and audit files.
    #[arg(
        long,
        value_name = "DIR",
        env = "TOOLGATE_STATE_DIR",
        default_value = "~/.toolgate"
    )]
    pub state_dir: String,

    /// Counter store: sqlite:PATH (default: sqlite:<state-dir>/state.db) or memory:.
    #[arg(long, value_name = "DSN", env = "TOOLGATE_STATE_DSN")]
    pub state_dsn: Option<String>,

    /// Prefix for every counter key, to share one store between separate deployments.
    #[arg(long, value_name = "PREFIX", default_value = "toolgate")]
    pub state_prefix: String,

    /// What to do when a call needs a counter and the store cannot be reached.
    #[arg(long, value_enum, default_value = "closed")]
    pub state_fail_mode: FailModeArg,

    /// Log level or filter (error, warn, info, debug, trace). Logs go to stderr.
    #[arg(
        long,
        value_name = "LEVEL",
        env = "TOOLGATE_LOG",
        default_value = "info"
    )]
    pub log_level: String,

    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Directory for the audit log (default: <state-dir>/audit).
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,

    /// Do not write an audit log.
    #[arg(long, conflicts_with = "audit_dir")]
    pub no_audit: bool,

    /// The identity this client acts as (for scope: identity counters and the audit log).
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,

    /// Text that starts every denial message (default "[POLICY DENIED]").
    #[arg(long, value_name = "TEXT")]
    pub deny_prefix: Option<String>,

    /// Seconds a forwarded call may take before its quota is returned and the client told.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub call_timeout: u64,

    /// Seconds to wait at each step of stopping the server (stdin closed, SIGTERM, SIGKILL).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub shutdown_grace: u64,

    /// Do not reload the policy when its file changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,

    /// The MCP server to run, after `--`: command and arguments.
    #[arg(last = true, value_name = "SERVER_COMMAND", required = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Policy file to check.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,

    /// Tool name of the call.
    #[arg(long, value_name = "NAME")]
    pub tool: String,

    /// The call's arguments as a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,

    /// Identity making the call (for scope: identity counters).
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,

    /// Session making the call (for scope: session counters).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,

    /// Assume a counter holds a value, e.g. create_issue._rate_hour=5. Repeatable.
    #[arg(long = "counter", value_name = "KEY=VALUE")]
    pub counters: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Audit directory to read (default: <state-dir>/audit).
    // Not a clap conflict with --state-dir: that also comes from TOOLGATE_STATE_DIR, and an
    // exported variable must not make an explicit --audit-dir an error.
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,

    /// State directory whose audit log to read (ignored with --audit-dir).
    #[arg(
        long,
        value_name = "DIR",
        env = "TOOLGATE_STATE_DIR",
        default_value = "~/.toolgate"
    )]
    pub state_dir: String,

    /// Count calls per minute over this many minutes, up to the newest line in the log.
    #[arg(
        long,
        value_name = "MINUTES",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub since: u32,

    /// How many recent denials and failed reloads to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub recent: usize,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}
