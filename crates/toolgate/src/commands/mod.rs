//! One module per subcommand; each returns the process exit code.

mod approvals;
mod audit;
mod classify;
mod diff;
mod explain;
mod init;
mod junit;
mod metrics;
mod pins;
mod policy_file;
mod replay;
mod run;
mod run_gateway;
mod run_http;
mod scan;
mod schema;
mod scope_warnings;
mod starter_tests;
mod status;
mod test;
mod tool_source;
mod traces;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Validate(args)) => validate::run(&args),
        Some(Command::Explain(args)) => explain::run(&args),
        Some(Command::Test(args)) => test::run(&args),
        Some(Command::Diff(args)) => diff::run(&args),
        Some(Command::Replay(args)) => replay::run(&args),
        Some(Command::Schema(args)) => schema::run(&args),
        Some(Command::Run(args)) => run::run(*args),
        Some(Command::Status(args)) => status::run(&args),
        Some(Command::Classify(args)) => classify::run(&args),
        Some(Command::Scan(args)) => scan::run(&args),
        Some(Command::Init(args)) => init::run(&args),
        Some(Command::Approvals(args)) => approvals::run(&args),
        Some(Command::Pins(args)) => pins::run(&args),
        Some(Command::Audit(args)) => audit::run(&args),
        None => run::run(cli.run),
    }
}
