//! One module per subcommand; each returns the process exit code.

mod explain;
mod policy_file;
mod run;
mod status;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Validate(args)) => validate::run(&args),
        Some(Command::Explain(args)) => explain::run(&args),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Status(args)) => status::run(&args),
        None => run::run(cli.run),
    }
}
