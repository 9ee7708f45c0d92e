//! `toolgate -c gateway.yaml`: many servers behind one gateway, each with its own policy
//! (docs/GATEWAY.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use toolgate_policy::gateway_config::{
    read_gateway_config, PolicyRef, ServerConfig, ServerTransport, ToolNames,
};
use toolgate_policy::{Diagnostic, Policy};
use toolgate_proxy::aggregate::{AggregatorOptions, MemberSpec, Servers};
use toolgate_proxy::audit::AuditSink;
use toolgate_proxy::console::Directory;
use toolgate_proxy::http::{HttpUpstream, UpstreamProtocol, UpstreamTarget};
use toolgate_proxy::pinning::LockFile;
use toolgate_proxy::stdio::{ServerCommand, StdioOptions};
use toolgate_proxy::Gateway;
use toolgate_state::SystemClock;

use super::policy_file;
use super::run::{absolute, expand_home, gateway_options, open_audit, runtime, state_dsn};
use crate::cli::{RunArgs, TransportArg};

/// Whether the file at `path` is a gateway config (its top level has `servers`). A file
/// that cannot be read is not: the policy reader then says why, as it always has.
pub fn is_gateway_config(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| toolgate_policy::gateway_config::is_gateway_config(&text))
}

/// A gateway config with every policy it names read and compiled.
pub struct LoadedGateway {
    /// The gateway-wide policy and its file.
    pub policy: Option<(PathBuf, Policy)>,
    /// Each server's policy and its file (none: everything allowed).
    pub servers: Vec<(ServerConfig, Option<PathBuf>, Policy)>,
    /// `tool_names: bare_when_unique`.
    pub bare_when_unique: bool,
}

/// Reads the config and every policy it names; when anything is wrong, every problem (each
/// at its file, line and column), as text to show.
pub fn load(path: &Path) -> anyhow::Result<Result<LoadedGateway, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = match read_gateway_config(&text, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(errors) => return Ok(Err(policy_file::render_errors(path, &errors))),
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut missing = Vec::new();
    let mut report = String::new();
    let mut load = |reference: &PolicyRef| -> Option<(PathBuf, Policy)> {
        let file = base.join(&reference.path);
        match policy_file::load(&file) {
            Ok(Ok(policy)) => Some((file, policy)),
            Ok(Err(errors)) => {
                report.push_str(&policy_file::render_errors(&file, &errors));
                None
            }
            Err(e) => {
                missing.push(
                    Diagnostic::new(reference.location, &reference.config_path, format!("{e:#}"))
                        .with_hint("the path is relative to the gateway config's directory"),
                );
                None
            }
        }
    };
    let policy = config.policy.as_ref().map(&mut load);
    let mut servers = Vec::new();
    for server in &config.servers {
        let loaded = server.policy.as_ref().map(&mut load);
        match loaded {
            Some(Some((file, policy))) => servers.push((server.clone(), Some(file), policy)),
            Some(None) => {}
            None => {
                let policy = toolgate_policy::allow_all()
                    .map_err(|_| anyhow::anyhow!("the allow-all policy did not compile"))?;
                servers.push((server.clone(), None, policy));
            }
        }
    }
    if !missing.is_empty() {
        report.insert_str(0, &policy_file::render_errors(path, &missing));
    }
    if !report.is_empty() {
        return Ok(Err(report));
    }
    Ok(Ok(LoadedGateway {
        policy: policy.flatten(),
        servers,
        bare_when_unique: config.tool_names == ToolNames::BareWhenUnique,
    }))
}

pub fn run(args: RunArgs, config_path: PathBuf) -> anyhow::Result<ExitCode> {
    if !args.command.is_empty() || args.upstream.is_some() {
        anyhow::bail!(
            "{} is a gateway config, which names its servers itself: give no server command \
             and no --upstream",
            config_path.display()
        );
    }
    if args.transport == Some(TransportArg::Sse) {
        anyhow::bail!(
            "--transport sse is for an --upstream server; a gateway config's servers say \
             their own transport (`command` or `url`)"
        );
    }
    let loaded = match load(&config_path)? {
        Ok(loaded) => loaded,
        Err(report) => {
            eprint!("{report}");
            anyhow::bail!("the gateway config is not valid; nothing was started");
        }
    };
    let state_dir = expand_home(&args.state_dir)?;
    let dsn = state_dsn(&args, &state_dir);
    let config_path = absolute(&config_path)?;
    let config_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let code = runtime()?.block_on(async move {
        let clock = Arc::new(SystemClock);
        let approvals = super::approvals::open_for_gateway(&args, &dsn, &state_dir, clock.clone())?;
        let pins = toolgate_state::open_pins(&dsn, &args.state_prefix)
            .context("cannot open the pin store")?;
        let (audit, hasher) = open_audit(&args, &state_dir)?;
        // The gateway-wide policy decides (and audits) calls only when there is one: without
        // it every line would repeat the server's own.
        let front_path_at_start = loaded.policy.as_ref().map(|(path, _)| path.clone());
        let (front_policy, front_path, front_audit) = match loaded.policy {
            Some((path, policy)) => (policy, Some(path), audit.clone()),
            None => (
                toolgate_policy::allow_all()
                    .map_err(|_| anyhow::anyhow!("the allow-all policy did not compile"))?,
                None,
                AuditSink::disabled(audit.instance().to_string()),
            ),
        };
        let store = toolgate_state::open_store(&dsn, &args.state_prefix, clock.clone())
            .context("cannot open the counter store")?;
        let tracer = super::traces::start(audit.metrics())?;
        // The gateway-wide policy's calls are traced (as audited) only when there is one.
        let front_tracer = front_path.as_ref().and(tracer.clone());
        let options = gateway_options(
            &args,
            Arc::clone(&approvals),
            None,
            "gateway".into(),
            front_tracer,
        );
        let front = Gateway::new(
            front_policy,
            store,
            clock.clone(),
            front_audit,
            hasher.clone(),
            options,
        );
        if let Some(path) = &front_path {
            front.set_policy_file(absolute(path)?);
        }
        let factory = Arc::new(MemberFactory {
            dsn: dsn.clone(),
            state_prefix: args.state_prefix.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            hasher: hasher.clone(),
            config_dir: config_dir.clone(),
            watch: !args.no_watch,
            options: gateway_options(
                &args,
                Arc::clone(&approvals),
                Some(Arc::clone(&pins)),
                String::new(),
                tracer,
            ),
        });
        // What each server's gateway runs beside it (its policy watcher, its tasks), by name.
        let mut running = HashMap::new();
        let mut members = Vec::new();
        for (server, policy_path, policy) in loaded.servers {
            let (spec, resources) = factory.build(server, policy_path, policy)?;
            running.insert(spec.name.clone(), resources);
            members.push(spec);
        }
        let mut watches = Vec::new();
        // (The front's own sink counts nothing without a gateway-wide policy: the metrics
        // are those of the sink every server's shares.)
        let metrics = audit.metrics().cloned();
        let _metrics =
            super::metrics::serve(metrics.clone(), Some(Arc::clone(&approvals)), &args).await?;
        if let (Some(path), false) = (&front_path, args.no_watch) {
            let watch = toolgate_proxy::reload::watch(Arc::clone(&front), absolute(path)?)
                .context("cannot watch the gateway-wide policy file")?;
            watches.push(watch);
        }
        let stdio = StdioOptions {
            max_line_bytes: toolgate_proxy::framing::DEFAULT_MAX_LINE_BYTES,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            identity: args.identity.clone(),
            policy_path: front_path,
        };
        let served_http = args.transport == Some(TransportArg::Http);
        let front_audits = stdio.policy_path.is_some();
        let servers = Arc::new(Servers::new(
            members,
            AggregatorOptions {
                identity: None,
                shutdown_grace: stdio.shutdown_grace,
                max_line_bytes: stdio.max_line_bytes,
            },
            loaded.bare_when_unique,
        ));
        let directory = Directory::Many {
            front: Arc::clone(&front),
            servers: Arc::clone(&servers),
        };
        let _approvals = super::approvals::start_for_gateway(
            &front,
            &args,
            &state_dir,
            metrics.as_ref(),
            audit.console().cloned(),
            directory,
        )
        .await?;
        let _config_watch = if args.no_watch {
            None
        } else {
            let reload = ConfigReload {
                path: config_path.clone(),
                policy: front_path_at_start.clone(),
                servers: Arc::clone(&servers),
                factory: Arc::clone(&factory),
                running: Arc::new(tokio::sync::Mutex::new(running)),
                audit: audit.clone(),
            };
            Some(reload.watch()?)
        };
        let code = if served_http {
            let target = UpstreamTarget::Aggregate(Arc::clone(&servers));
            super::run_http::listen(front, target, &args, stdio.policy_path)
                .await
                .map_err(std::io::Error::other)
        } else {
            toolgate_proxy::aggregate::stdio::run(front, servers, stdio).await
        };
        // On the log itself: the gateway-wide policy's sink is off when there is none.
        let stopped = toolgate_proxy::audit::AuditEvent::Shutdown {
            reason: "gateway stopped".to_string(),
        };
        // The listener says so itself on the gateway-wide policy's log, when it has one.
        if !(served_http && front_audits) {
            audit.record_and_flush(stopped, Duration::from_secs(2));
        }
        drop(watches);
        code.map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// How to reach a server: its command (a relative `cwd` is taken from the config's
/// directory), or its URL with its headers.
pub(super) fn target_of(
    transport: &ServerTransport,
    config_dir: &Path,
) -> anyhow::Result<UpstreamTarget> {
    Ok(match transport {
        ServerTransport::Command { argv, env, cwd } => {
            UpstreamTarget::Command(Arc::new(ServerCommand {
                argv: argv.iter().map(Into::into).collect(),
                env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
                cwd: cwd.as_ref().map(|dir| config_dir.join(dir)),
            }))
        }
        ServerTransport::Url {
            url,
            headers,
            upstream_auth,
        } => {
            let mut target = HttpUpstream::new(url, UpstreamProtocol::Auto)?;
            for (name, value) in headers {
                target.add_header(&format!("{name}: {value}"))?;
            }
            target.token = super::run_http::upstream_token(upstream_auth.as_ref())?;
            UpstreamTarget::Http(Arc::new(target))
        }
    })
}

/// Builds a server's gateway (its policy, its counters under its own prefix, its audit
/// lines with `server`, its pins) and what runs beside it.
struct MemberFactory {
    dsn: String,
    state_prefix: String,
    clock: Arc<SystemClock>,
    audit: AuditSink,
    hasher: Option<toolgate_proxy::audit::ArgsHasher>,
    config_dir: PathBuf,
    watch: bool,
    /// The command line's settings, for every server's gateway (the name is each server's).
    options: toolgate_proxy::GatewayOptions,
}

/// What a server's gateway runs beside it; stopped when the server leaves the config.
struct MemberResources {
    _watch: Option<toolgate_proxy::reload::WatchHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for MemberResources {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl MemberFactory {
    fn build(
        &self,
        server: ServerConfig,
        policy_path: Option<PathBuf>,
        policy: Policy,
    ) -> anyhow::Result<(MemberSpec, MemberResources)> {
        // Each server's counters live under a prefix of their own: two servers' policies
        // may name the same counter.
        let prefix = format!("{}:{}", self.state_prefix, server.name);
        let store = toolgate_state::open_store(&self.dsn, &prefix, self.clock.clone())
            .context("cannot open the counter store")?;
        let lock = match &policy_path {
            Some(path) => LockFile::of_policy(&policy, path).map_err(anyhow::Error::msg)?,
            None => None,
        };
        let options = toolgate_proxy::GatewayOptions {
            server_name: server.name.clone(),
            ..self.options.clone()
        };
        let gateway = Gateway::new(
            policy,
            store,
            self.clock.clone(),
            self.audit.for_server(&server.name),
            self.hasher.clone(),
            options,
        );
        gateway.set_pin_lock(lock);
        if let Some(path) = &policy_path {
            gateway.set_policy_file(absolute(path)?);
        }
        let mut tasks: Vec<_> = gateway.spawn_pin_watcher().into_iter().collect();
        tasks.extend(toolgate_proxy::approvals::spawn_sweeper(&gateway));
        let watch = match (&policy_path, self.watch) {
            (Some(path), true) => Some(
                toolgate_proxy::reload::watch(Arc::clone(&gateway), absolute(path)?)
                    .context("cannot watch a server's policy file")?,
            ),
            _ => None,
        };
        let spec = MemberSpec {
            target: target_of(&server.transport, &self.config_dir)?,
            config: config_of(&server, policy_path.as_deref()),
            name: server.name,
            gateway,
            restart: server.restart,
        };
        Ok((
            spec,
            MemberResources {
                _watch: watch,
                tasks,
            },
        ))
    }
}

/// What decides whether a server changed across a config reload: how it is reached, its
/// restart policy and which policy file it has (edits to that file reload by themselves).
fn config_of(server: &ServerConfig, policy_path: Option<&Path>) -> String {
    format!(
        "{:?} {:?} {:?}",
        server.transport, server.restart, policy_path
    )
}

/// A change to the gateway config while it runs: servers added are started, removed ones
/// stopped, changed ones restarted; an invalid file keeps the running config, every error
/// logged. (Each policy file reloads on its own, as any policy does.)
struct ConfigReload {
    path: PathBuf,
    /// The gateway-wide policy file at start: changing which file it is needs a restart.
    policy: Option<PathBuf>,
    servers: Arc<Servers>,
    factory: Arc<MemberFactory>,
    running: Arc<tokio::sync::Mutex<HashMap<String, MemberResources>>>,
    audit: AuditSink,
}

impl ConfigReload {
    fn watch(self) -> anyhow::Result<toolgate_proxy::reload::WatchHandle> {
        let path = self.path.clone();
        let this = Arc::new(self);
        toolgate_proxy::reload::watch_file(
            path,
            || None,
            move || {
                let this = Arc::clone(&this);
                Box::pin(async move { this.reload().await })
            },
        )
        .context("cannot watch the gateway config")
    }

    async fn reload(&self) {
        // One at a time, from read to swap: an older read never wins.
        let mut running = self.running.lock().await;
        let loaded = match load(&self.path) {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(report)) => return self.failed(report.lines().map(str::to_string).collect()),
            Err(e) => return self.failed(vec![format!("{e:#}")]),
        };
        let policy = loaded.policy.as_ref().map(|(path, _)| path.clone());
        if policy != self.policy {
            return self.failed(vec![format!(
                "{}: `policy` names another file than at start; restart toolgate to change \
                 which file the gateway-wide policy is (edits to the file itself reload)",
                self.path.display()
            )]);
        }
        let current = self.servers.members(None);
        let mut specs = Vec::new();
        let mut built = HashMap::new();
        for (server, policy_path, policy) in loaded.servers {
            let config = config_of(&server, policy_path.as_deref());
            if let Some(same) = current
                .iter()
                .find(|m| m.name == server.name && m.config == config)
            {
                specs.push(same.clone());
                continue;
            }
            match self.factory.build(server, policy_path, policy) {
                Ok((spec, resources)) => {
                    built.insert(spec.name.clone(), resources);
                    specs.push(spec);
                }
                Err(e) => return self.failed(vec![format!("{e:#}")]),
            }
        }
        self.servers
            .set_bare_when_unique(loaded.bare_when_unique)
            .await;
        let (removed, added) = self.servers.replace(specs).await;
        for name in &removed {
            running.remove(name);
        }
        running.extend(built);
        if removed.is_empty() && added.is_empty() {
            return;
        }
        tracing::info!(?removed, ?added, "gateway config reloaded");
        self.audit
            .record(toolgate_proxy::audit::AuditEvent::Reload {
                ok: true,
                policy: None,
                errors: Vec::new(),
            });
    }

    fn failed(&self, errors: Vec<String>) {
        for error in &errors {
            tracing::error!("{error}");
        }
        tracing::error!("gateway config reload failed; keeping the running servers");
        self.audit
            .record(toolgate_proxy::audit::AuditEvent::Reload {
                ok: false,
                policy: None,
                errors,
            });
    }
}
