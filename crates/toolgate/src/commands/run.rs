//! The proxy: wire the policy, counter store, audit log and stdio transport together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use toolgate_proxy::audit::{ArgsHasher, AuditConfig, AuditSink};
use toolgate_proxy::console::Directory;
use toolgate_proxy::pinning::{server_name, LockFile};
use toolgate_proxy::stdio::StdioOptions;
use toolgate_proxy::{FailMode, Gateway, GatewayOptions};
use toolgate_state::SystemClock;

use super::policy_file;
use crate::cli::{FailModeArg, RunArgs, TransportArg};
use crate::logging;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    logging::init(&args.log_level, args.log_format)?;
    let Some(config) = args.config.clone() else {
        anyhow::bail!("a policy file is required: toolgate -c policy.yaml -- <server command>");
    };
    if super::run_gateway::is_gateway_config(&config) {
        return super::run_gateway::run(args, config);
    }
    if args.command.is_empty() && args.upstream.is_none() {
        anyhow::bail!(
            "no server to run: give its command after `--` (toolgate -c policy.yaml -- <server \
             command>), an --upstream URL, or a gateway config with `servers`"
        );
    }
    let Some(policy) = policy_file::load_or_report(&config)? else {
        anyhow::bail!("the policy file is not valid; nothing was started");
    };
    let state_dir = expand_home(&args.state_dir)?;
    let dsn = state_dsn(&args, &state_dir);
    let runtime = runtime()?;
    let code = runtime.block_on(async move {
        let clock = Arc::new(SystemClock);
        let store = toolgate_state::open_store(&dsn, &args.state_prefix, clock.clone())
            .context("cannot open the counter store")?;
        let approvals = super::approvals::open_for_gateway(&args, &dsn, &state_dir, clock.clone())?;
        let pins = toolgate_state::open_pins(&dsn, &args.state_prefix)
            .context("cannot open the pin store")?;
        let lock = LockFile::of_policy(&policy, &config).map_err(anyhow::Error::msg)?;
        let (audit, hasher) = open_audit(&args, &state_dir)?;
        let server_name = server_name::given_or_derived(
            args.server_name.as_deref(),
            args.upstream.as_deref(),
            &args.command,
        );
        let tracer = super::traces::start(audit.metrics())?;
        let options = gateway_options(&args, approvals, Some(pins), server_name, tracer);
        let gateway = Gateway::new(policy, store, clock, audit, hasher, options);
        gateway.set_pin_lock(lock);
        gateway.set_policy_file(absolute(&config)?);
        let _pin_watcher = gateway.spawn_pin_watcher();
        let metrics = gateway.audit().metrics().cloned();
        let directory = Directory::One(Arc::clone(&gateway));
        let _approvals = super::approvals::start_for_gateway(
            &gateway,
            &args,
            &state_dir,
            metrics.as_ref(),
            gateway.audit().console().cloned(),
            directory,
        )
        .await?;
        let _metrics = super::metrics::serve(metrics, gateway.approvals().cloned(), &args).await?;
        let _watch = if args.no_watch {
            None
        } else {
            Some(
                toolgate_proxy::reload::watch(Arc::clone(&gateway), absolute(&config)?)
                    .context("cannot watch the policy file")?,
            )
        };
        if args.transport == Some(TransportArg::Http) || args.upstream.is_some() {
            return super::run_http::run(gateway, &args, config.clone()).await;
        }
        let stdio = StdioOptions {
            max_line_bytes: toolgate_proxy::framing::DEFAULT_MAX_LINE_BYTES,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            identity: args.identity.clone(),
            policy_path: Some(config.clone()),
        };
        toolgate_proxy::stdio::run(gateway, &args.command, stdio)
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The counter store's DSN: `--state-dsn`, or a SQLite file in the state directory.
pub(super) fn state_dsn(args: &RunArgs, state_dir: &Path) -> String {
    args.state_dsn
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", state_dir.join("state.db").display()))
}

/// One worker per CPU (Tokio's default; `TOKIO_WORKER_THREADS` overrides it). Over stdio the
/// runtime only runs what waits (a store, an approval, timers): messages are moved by the
/// reader threads.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The audit log (unless `--no-audit`) and the key its argument hashes are made with.
pub(super) fn open_audit(
    args: &RunArgs,
    state_dir: &Path,
) -> anyhow::Result<(AuditSink, Option<ArgsHasher>)> {
    let instance = format!(
        "{}-{}",
        std::process::id(),
        &toolgate_proxy::session::random_id()[..6]
    );
    // Metrics and the web console learn from what the audit sink is told, so they ride on
    // it (on only when served: the console with the admin listener).
    let with_observers = |mut sink: AuditSink| {
        if args.metrics_listen.is_some() || args.admin_listen.is_some() {
            sink = sink.with_metrics(Arc::new(toolgate_proxy::metrics::Metrics::new()));
        }
        if args.admin_listen.is_some() {
            sink = sink.with_console(Arc::new(toolgate_proxy::console::ConsoleData::default()));
        }
        sink
    };
    if args.no_audit {
        return Ok((with_observers(AuditSink::disabled(instance)), None));
    }
    let dir = args
        .audit_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("audit"));
    let sink = AuditSink::open(instance, AuditConfig::new(dir.clone()))
        .with_context(|| format!("cannot open the audit directory {}", dir.display()))?;
    let hasher = ArgsHasher::load_or_create(&state_dir.join("audit.key"))
        .context("cannot load the audit hashing key")?;
    Ok((with_observers(sink), Some(hasher)))
}

/// What the command line sets for a gateway.
pub(super) fn gateway_options(
    args: &RunArgs,
    approvals: Arc<toolgate_proxy::approvals::Approvals>,
    pins: Option<toolgate_state::SharedPins>,
    server_name: String,
    tracer: Option<Arc<toolgate_proxy::otel::Tracer>>,
) -> GatewayOptions {
    GatewayOptions {
        tracer,
        deny_prefix: args.deny_prefix.clone(),
        fail_mode: match args.state_fail_mode {
            FailModeArg::Closed => FailMode::Closed,
            FailModeArg::Open => FailMode::Open,
        },
        call_timeout: Duration::from_secs(args.call_timeout.max(1)),
        cancel_grace: Duration::from_secs(args.cancel_grace),
        approvals: Some(approvals),
        shadow: args.shadow,
        server_name,
        pins,
        ..GatewayOptions::default()
    }
}

pub(crate) fn expand_home(path: &str) -> anyhow::Result<PathBuf> {
    match path.strip_prefix("~") {
        Some(rest) => {
            let home = std::env::var_os("HOME").context("HOME is not set; pass --state-dir")?;
            Ok(PathBuf::from(home).join(rest.trim_start_matches('/')))
        }
        None => Ok(PathBuf::from(path)),
    }
}

pub(super) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(path))
}
