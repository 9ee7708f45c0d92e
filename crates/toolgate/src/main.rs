//! The `toolgate` command: argument parsing and wiring only. Everything it runs lives in the
//! library crates.

mod audit_summary;
mod cli;
mod commands;
mod logging;
mod replay;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("toolgate: {error:#}");
            ExitCode::from(2)
        }
    }
}
