//! The upstream server as a child process: its own process group, our environment, its
//! stderr shared with ours, and a shutdown that escalates (stdin closed → SIGTERM → SIGKILL).

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How to start a stdio server: the program and its arguments, environment added to ours, and
/// the directory to start it in.
#[derive(Debug, Clone, Default)]
pub struct ServerCommand {
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<std::path::PathBuf>,
}

impl ServerCommand {
    /// A command run with toolgate's own environment and directory.
    pub fn new(argv: Vec<OsString>) -> ServerCommand {
        ServerCommand {
            argv,
            ..ServerCommand::default()
        }
    }
}

/// Starts the server. Its own process group lets toolgate signal it and everything it
/// started (an `npx` wrapper and its node process) at once.
pub fn spawn(command: &ServerCommand) -> std::io::Result<Child> {
    let (program, args) = command.argv.split_first().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no server command given after --",
        )
    })?;
    let mut process = Command::new(program);
    if let Some(dir) = &command.cwd {
        process.current_dir(dir);
    }
    process
        .args(args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot start the server {:?}: {e}",
                    program.to_string_lossy()
                ),
            )
        })
}

/// Sends a signal to the child's whole process group.
pub fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id() {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }
}

/// Waits for the child to exit, escalating to SIGTERM and then SIGKILL after `grace` each.
pub async fn stop(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return status;
    }
    tracing::info!(
        "server still running {} ms after its input closed; sending SIGTERM",
        grace.as_millis()
    );
    signal_group(child, Signal::SIGTERM);
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return status;
    }
    tracing::warn!("server ignored SIGTERM; sending SIGKILL");
    signal_group(child, Signal::SIGKILL);
    child.wait().await
}

/// The exit code toolgate passes on: the child's own, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
