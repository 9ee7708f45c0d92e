//! The scenarios and how one of them is run: what process to start (the fixture directly, or
//! toolgate with a generated policy in front of it), which phases to measure, and the
//! `/proc` readings around them.
//!
//! Every scenario talks to the same fixture binary with the same calls, so a proxied scenario
//! differs from its direct counterpart only by the proxy — that difference is the result.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::driver::{Launch, Session};
use crate::http::{free_port, HttpSession, Listener};
use crate::metrics::{Latency, Measurement};
use crate::otlp_sink::OtlpSink;
use crate::procfs;
use crate::workload::Workload;

/// Tools in the realistic policy of the main scenarios.
pub const MAIN_POLICY_TOOLS: usize = 50;

/// Where counters live when toolgate is in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    Sqlite,
    /// No `--state-dsn` and no audit flags: what the CLI picks by itself (SQLite in the state
    /// directory, the audit log on), the configuration people actually run.
    Default,
}

/// The process under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The client talks to the fixture itself: the baseline.
    Direct,
    /// The client talks to toolgate, which runs the fixture.
    Toolgate {
        store: Store,
        audit: bool,
        policy_tools: usize,
        /// Metrics and traces, off or on.
        observe: Observe,
    },
    /// Another MCP proxy (no policy), installed by `setup-peers.sh`.
    Peer(Peer),
    /// toolgate with a gateway config of `servers` fixtures, each under the main policy
    /// (memory store, no audit): `toolgate-stdio` plus what aggregation adds. Calls go to
    /// the middle server.
    Gateway { servers: usize },
}

/// What toolgate is told to report while it is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    Off,
    /// Prometheus metrics (`--metrics-listen`), counting every call.
    Metrics,
    /// Metrics, and a span per call exported over OTLP/HTTP to a local sink
    /// (`otlp_sink.rs`), which must receive some for the run to count.
    MetricsAndTraces,
    /// The admin listener (`--admin-listen`): metrics, and the web console's record of
    /// every call.
    Console,
}

/// The peer proxies `setup-peers.sh` installs under `crates/toolgate-bench/peers/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `mcp-proxy` from npm: an HTTP listener (`--server stream`) in front of a stdio server.
    Npm,
    /// `mcp-proxy` from PyPI: an HTTP listener, or a stdio → Streamable HTTP bridge.
    Pypi,
}

impl Peer {
    /// Where `setup-peers.sh` puts the peer's executable.
    pub fn program(self) -> PathBuf {
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
        match self {
            Peer::Npm => peers.join("node_modules/.bin/mcp-proxy"),
            Peer::Pypi => peers.join(".venv/bin/mcp-proxy"),
        }
    }
}

/// How the client reaches the process under test, or how that process reaches the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    /// Streamable HTTP on loopback.
    Http,
}

/// What a scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Startup, latency percentiles, throughput at 1/16/64 in flight, RSS, CPU.
    Full,
    /// Latency only (the argument-size sweep, where throughput would measure pipe bandwidth).
    Latency,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub target: Target,
    /// The direct scenario this one is compared with.
    pub baseline: Option<String>,
    /// Size of each call's string argument.
    pub payload_bytes: usize,
    pub measure: Measure,
    /// Main scenarios are repeated and interleaved; sweeps run once.
    pub sweep: bool,
    /// How the driver talks to the process under test.
    pub client: Transport,
    /// Which fixture is at the end: the stdio one (a child of the process under test) or the
    /// HTTP one (a separate process the proxy connects to with `--upstream URL`).
    pub upstream: Transport,
}

/// How much to measure; `--quick` and the full run differ only here.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Calls in the one-in-flight latency phase (before scaling down for large arguments).
    pub latency_calls: usize,
    /// Unmeasured calls first, so page faults and lazy initialisation are not in the numbers.
    pub warmup_calls: usize,
    /// Length of each throughput phase.
    pub phase: Duration,
    /// Rounds of the main scenarios; each metric reported is the median over rounds.
    pub rounds: usize,
    /// A child silent for this long is killed and the run fails.
    pub stall: Duration,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            latency_calls: 5_000,
            warmup_calls: 300,
            phase: Duration::from_secs(2),
            rounds: 3,
            stall: Duration::from_secs(30),
        }
    }

    pub fn quick() -> Plan {
        Plan {
            latency_calls: 1_000,
            warmup_calls: 100,
            phase: Duration::from_millis(500),
            rounds: 1,
            stall: Duration::from_secs(15),
        }
    }
}

/// The programs scenarios run.
#[derive(Debug, Clone)]
pub struct Programs {
    /// This binary, which serves the fixture as a hidden subcommand.
    pub fixture: PathBuf,
    /// toolgate; `None` when only direct scenarios were asked for.
    pub toolgate: Option<PathBuf>,
    /// Test hook: make the fixture corrupt its answer to this call.
    pub fixture_corrupt_call: Option<u64>,
}

/// Every scenario, main ones first; sweeps only when `sweeps` is set.
pub fn catalogue(sweeps: bool) -> Vec<Scenario> {
    let toolgate = |store, audit, policy_tools| Target::Toolgate {
        store,
        audit,
        policy_tools,
        observe: Observe::Off,
    };
    let main = |name: &str, target, baseline: Option<&str>| Scenario {
        name: name.to_owned(),
        target,
        baseline: baseline.map(str::to_owned),
        payload_bytes: 16,
        measure: Measure::Full,
        sweep: false,
        client: Transport::Stdio,
        upstream: Transport::Stdio,
    };
    let over = |client, upstream, scenario: Scenario| Scenario {
        client,
        upstream,
        ..scenario
    };
    let mut all = vec![
        main("direct-stdio", Target::Direct, None),
        main(
            "toolgate-stdio",
            toolgate(Store::Memory, false, MAIN_POLICY_TOOLS),
            Some("direct-stdio"),
        ),
        main(
            "toolgate-stdio-metrics",
            Target::Toolgate {
                store: Store::Memory,
                audit: false,
                policy_tools: MAIN_POLICY_TOOLS,
                observe: Observe::Metrics,
            },
            Some("direct-stdio"),
        ),
        main(
            "toolgate-stdio-observed",
            Target::Toolgate {
                store: Store::Memory,
                audit: false,
                policy_tools: MAIN_POLICY_TOOLS,
                observe: Observe::MetricsAndTraces,
            },
            Some("direct-stdio"),
        ),
        main(
            "toolgate-stdio-console",
            Target::Toolgate {
                store: Store::Memory,
                audit: false,
                policy_tools: MAIN_POLICY_TOOLS,
                observe: Observe::Console,
            },
            Some("direct-stdio"),
        ),
        main(
            "toolgate-stdio-sqlite",
            toolgate(Store::Sqlite, false, MAIN_POLICY_TOOLS),
            Some("direct-stdio"),
        ),
        main(
            "toolgate-stdio-audit",
            toolgate(Store::Memory, true, MAIN_POLICY_TOOLS),
            Some("direct-stdio"),
        ),
        main(
            "toolgate-stdio-default",
            toolgate(Store::Default, true, MAIN_POLICY_TOOLS),
            Some("direct-stdio"),
        ),
        main(
            "toolgate-gateway3-stdio",
            Target::Gateway { servers: 3 },
            Some("direct-stdio"),
        ),
        over(
            Transport::Http,
            Transport::Http,
            main("direct-http", Target::Direct, None),
        ),
        over(
            Transport::Http,
            Transport::Stdio,
            main(
                "toolgate-http",
                toolgate(Store::Memory, false, MAIN_POLICY_TOOLS),
                Some("direct-http"),
            ),
        ),
        over(
            Transport::Http,
            Transport::Stdio,
            main(
                "toolgate-gateway3-http",
                Target::Gateway { servers: 3 },
                Some("direct-http"),
            ),
        ),
        over(
            Transport::Http,
            Transport::Http,
            main(
                "toolgate-http-upstream",
                toolgate(Store::Memory, false, MAIN_POLICY_TOOLS),
                Some("direct-http"),
            ),
        ),
        over(
            Transport::Stdio,
            Transport::Http,
            main(
                "toolgate-bridge",
                toolgate(Store::Memory, false, MAIN_POLICY_TOOLS),
                Some("direct-http"),
            ),
        ),
        over(
            Transport::Http,
            Transport::Stdio,
            main(
                "mcp-proxy-npm-http",
                Target::Peer(Peer::Npm),
                Some("direct-http"),
            ),
        ),
        over(
            Transport::Http,
            Transport::Stdio,
            main(
                "mcp-proxy-py-http",
                Target::Peer(Peer::Pypi),
                Some("direct-http"),
            ),
        ),
        over(
            Transport::Stdio,
            Transport::Http,
            main(
                "mcp-proxy-py-bridge",
                Target::Peer(Peer::Pypi),
                Some("direct-http"),
            ),
        ),
    ];
    if !sweeps {
        return all;
    }
    for tools in [10, 100, 1_000] {
        all.push(Scenario {
            name: format!("toolgate-stdio-policy-{tools}"),
            target: toolgate(Store::Memory, false, tools),
            baseline: Some("direct-stdio".to_owned()),
            payload_bytes: 16,
            measure: Measure::Full,
            sweep: true,
            client: Transport::Stdio,
            upstream: Transport::Stdio,
        });
    }
    for (label, bytes) in [("1KB", 1 << 10), ("100KB", 100 << 10), ("1MB", 1 << 20)] {
        let direct = format!("direct-stdio-args-{label}");
        all.push(Scenario {
            name: direct.clone(),
            target: Target::Direct,
            baseline: None,
            payload_bytes: bytes,
            measure: Measure::Latency,
            sweep: true,
            client: Transport::Stdio,
            upstream: Transport::Stdio,
        });
        all.push(Scenario {
            name: format!("toolgate-stdio-args-{label}"),
            target: toolgate(Store::Memory, false, MAIN_POLICY_TOOLS),
            baseline: Some(direct),
            payload_bytes: bytes,
            measure: Measure::Latency,
            sweep: true,
            client: Transport::Stdio,
            upstream: Transport::Stdio,
        });
    }
    all
}

/// Run `scenario` once, in a fresh temporary directory (fresh counters, fresh audit log).
pub fn run_once(
    scenario: &Scenario,
    plan: &Plan,
    programs: &Programs,
) -> anyhow::Result<Measurement> {
    let dir = tempfile::Builder::new()
        .prefix("toolgate-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    // The HTTP fixture, when a proxy connects to it, runs beside the process under test.
    let upstream = match (&scenario.target, scenario.upstream) {
        (Target::Toolgate { policy_tools, .. }, Transport::Http) => Some(Listener::start(
            &fixture_http(
                programs,
                *policy_tools,
                dir.path().join("upstream-stderr.log"),
            ),
            plan.stall,
        )?),
        (Target::Peer(_), Transport::Http) => Some(Listener::start(
            &fixture_http(
                programs,
                MAIN_POLICY_TOOLS,
                dir.path().join("upstream-stderr.log"),
            ),
            plan.stall,
        )?),
        _ => None,
    };
    let upstream_url = upstream.as_ref().map(|u| u.url.as_str());
    let sink = match scenario.target {
        Target::Toolgate {
            observe: Observe::MetricsAndTraces,
            ..
        } => Some(OtlpSink::start()?),
        _ => None,
    };
    let (mut launch, tools) = launch(scenario, programs, dir.path(), upstream_url)?;
    if let Some(sink) = &sink {
        let endpoint = (
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            sink.url.clone().into(),
        );
        launch.env.push(endpoint);
    }
    let launch = peer_launch(scenario, launch, upstream_url);
    let workload = match scenario.target {
        Target::Gateway { servers } => {
            Workload::new(tools, scenario.payload_bytes).with_prefix(&format!("s{}__", servers / 2))
        }
        _ => Workload::new(tools, scenario.payload_bytes),
    };
    let peer_port = match (&scenario.target, scenario.client) {
        (Target::Peer(_), Transport::Http) => Some(free_port()?),
        _ => None,
    };
    let (mut session, startup) = match peer_port {
        Some(port) => AnySession::start_peer(&launch, port, &workload, plan.stall)?,
        None => AnySession::start(scenario.client, &launch, &workload, plan.stall)?,
    };
    let pid = session.pid();

    // Fewer calls when each one carries a large argument, so a sweep point takes seconds.
    let scaled = plan.latency_calls as f64 * f64::from(16 << 10) / scenario.payload_bytes as f64;
    let latency_calls = (scaled as usize).clamp(100.min(plan.latency_calls), plan.latency_calls);
    let warmup_calls = plan.warmup_calls.min(latency_calls / 5).max(10);
    session.latency(warmup_calls, &workload)?;

    let cpu_before = procfs::cpu_ticks(pid)?;
    let mut samples = session.latency(latency_calls, &workload)?;
    let mut calls = samples.len() as u64;
    let latency = Latency::from_samples(&mut samples).context("no latency samples")?;
    let mut m = Measurement {
        p50_us: Some(latency.p50_us),
        p90_us: Some(latency.p90_us),
        p99_us: Some(latency.p99_us),
        startup_ms: Some(startup.as_secs_f64() * 1e3),
        ..Measurement::default()
    };
    if scenario.measure == Measure::Full {
        for (in_flight, slot) in [
            (1, &mut m.calls_per_sec_1),
            (16, &mut m.calls_per_sec_16),
            (64, &mut m.calls_per_sec_64),
        ] {
            let t = session.throughput(in_flight, plan.phase, &workload)?;
            calls += t.calls;
            *slot = Some(t.calls_per_sec());
        }
    }
    let cpu_ticks = procfs::cpu_ticks(pid)?.saturating_sub(cpu_before);
    // The high-water mark must be read while the process is still alive.
    m.rss_kb = Some(procfs::peak_rss_kb(pid)? as f64);
    m.cpu_us_per_call =
        Some(cpu_ticks as f64 * 1e6 / procfs::clock_ticks_per_sec() as f64 / calls as f64);
    m.calls_verified = calls + warmup_calls as u64;
    session.close()?;
    if let Some(sink) = &sink {
        // Spans are sent at least once a second; a run with none exported measured nothing.
        let (requests, bytes) = sink.received();
        if requests == 0 {
            bail!("toolgate exported no trace spans to the sink during the run");
        }
        eprintln!("    (traces: {requests} OTLP exports, {bytes} bytes)");
    }
    Ok(m)
}

/// What to start for `scenario`, and how many tools its calls go round.
fn launch(
    scenario: &Scenario,
    programs: &Programs,
    dir: &Path,
    upstream_url: Option<&str>,
) -> anyhow::Result<(Launch, usize)> {
    let fixture_args = |tools: usize| {
        let mut args: Vec<OsString> = vec![
            programs.fixture.clone().into(),
            "fixture-stdio".into(),
            "--tools".into(),
            tools.to_string().into(),
        ];
        if let Some(call) = programs.fixture_corrupt_call {
            args.extend(["--corrupt-call".into(), call.to_string().into()]);
        }
        args
    };
    let stderr_path = dir.join("stderr.log");
    match scenario.target {
        Target::Direct if scenario.client == Transport::Http => Ok((
            fixture_http(programs, MAIN_POLICY_TOOLS, stderr_path),
            MAIN_POLICY_TOOLS,
        )),
        Target::Direct | Target::Peer(_) => {
            let mut args = fixture_args(MAIN_POLICY_TOOLS);
            let program = PathBuf::from(args.remove(0));
            Ok((
                Launch {
                    env: Vec::new(),
                    program,
                    args,
                    stderr_path,
                },
                MAIN_POLICY_TOOLS,
            ))
        }
        Target::Gateway { servers } => {
            let toolgate = programs
                .toolgate
                .clone()
                .context("this scenario needs the toolgate binary")?;
            std::fs::write(dir.join("policy.yaml"), policy_yaml(MAIN_POLICY_TOOLS))
                .context("cannot write the policy")?;
            let mut config = String::from("version: \"1\"\nservers:\n");
            for server in 0..servers {
                let command: Vec<String> = fixture_args(MAIN_POLICY_TOOLS)
                    .iter()
                    .map(|a| serde_json::to_string(&a.to_string_lossy()).unwrap_or_default())
                    .collect();
                config.push_str(&format!(
                    "  s{server}:\n    command: [{}]\n    policy: policy.yaml\n",
                    command.join(", ")
                ));
            }
            let config_path = dir.join("gateway.yaml");
            std::fs::write(&config_path, config).context("cannot write the gateway config")?;
            let mut args: Vec<OsString> = vec![
                "-c".into(),
                config_path.into(),
                "--state-dir".into(),
                dir.join("state").into(),
                "--state-dsn".into(),
                "memory:".into(),
                "--log-level".into(),
                "warn".into(),
                "--no-audit".into(),
            ];
            if scenario.client == Transport::Http {
                args.extend(["--transport", "http", "--port", "0"].map(OsString::from));
            }
            Ok((
                Launch {
                    env: Vec::new(),
                    program: toolgate,
                    args,
                    stderr_path,
                },
                MAIN_POLICY_TOOLS,
            ))
        }
        Target::Toolgate {
            store,
            audit,
            policy_tools,
            observe,
        } => {
            let toolgate = programs
                .toolgate
                .clone()
                .context("this scenario needs the toolgate binary")?;
            let policy = dir.join("policy.yaml");
            std::fs::write(&policy, policy_yaml(policy_tools))
                .with_context(|| format!("cannot write {}", policy.display()))?;
            // A fresh state directory for every run; the default configuration gets nothing
            // else. It is not the policy's directory (the default, `~/.toolgate`, is not
            // either): the policy watcher would be told of every write to the counters.
            let state = dir.join("state");
            let mut args: Vec<OsString> = vec![
                "-c".into(),
                policy.into(),
                "--state-dir".into(),
                state.clone().into(),
            ];
            let dsn = match store {
                Store::Memory => Some(OsString::from("memory:")),
                Store::Sqlite => {
                    std::fs::create_dir_all(&state)
                        .with_context(|| format!("cannot create {}", state.display()))?;
                    Some(format!("sqlite:{}", state.join("state.db").display()).into())
                }
                Store::Default => None,
            };
            if let Some(dsn) = dsn {
                args.extend(["--state-dsn".into(), dsn]);
                // Info logging is per session, not per call, but keep stderr quiet anyway.
                args.extend(["--log-level".into(), "warn".into()]);
                if audit {
                    args.extend(["--audit-dir".into(), dir.join("audit").into()]);
                } else {
                    args.push("--no-audit".into());
                }
            }
            match observe {
                Observe::Off => {}
                Observe::Metrics | Observe::MetricsAndTraces => {
                    args.extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
                }
                Observe::Console => {
                    let token = dir.join("admin.token");
                    std::fs::write(&token, "bench-admin-token-0123456789abcdef")
                        .with_context(|| format!("cannot write {}", token.display()))?;
                    args.extend([
                        "--admin-listen".into(),
                        "127.0.0.1:0".into(),
                        "--admin-token-file".into(),
                        token.into(),
                    ]);
                }
            }
            if scenario.client == Transport::Http {
                args.extend([
                    "--transport".into(),
                    "http".into(),
                    "--port".into(),
                    "0".into(),
                ]);
            }
            match upstream_url {
                Some(url) => args.extend(["--upstream".into(), url.into()]),
                None => {
                    args.push("--".into());
                    args.extend(fixture_args(policy_tools));
                }
            }
            Ok((
                Launch {
                    env: Vec::new(),
                    program: toolgate,
                    args,
                    stderr_path,
                },
                policy_tools,
            ))
        }
    }
}

/// The command line of a peer scenario (its port, for a listener, is added at start).
fn peer_launch(scenario: &Scenario, launch: Launch, upstream_url: Option<&str>) -> Launch {
    let Target::Peer(peer) = scenario.target else {
        return launch;
    };
    let mut args: Vec<OsString> = Vec::new();
    match (peer, upstream_url) {
        (Peer::Pypi, Some(url)) => {
            args.extend(["--transport".into(), "streamablehttp".into(), url.into()]);
        }
        (Peer::Npm, _) => {
            args.extend(["--server".into(), "stream".into(), "--".into()]);
            args.push(launch.program.clone().into());
            args.extend(launch.args.iter().cloned());
        }
        (Peer::Pypi, None) => {
            args.push("--".into());
            args.push(launch.program.clone().into());
            args.extend(launch.args.iter().cloned());
        }
    }
    Launch {
        env: Vec::new(),
        program: peer.program(),
        args,
        stderr_path: launch.stderr_path,
    }
}

/// The HTTP fixture on a free loopback port.
fn fixture_http(programs: &Programs, tools: usize, stderr_path: PathBuf) -> Launch {
    Launch {
        env: Vec::new(),
        program: programs.fixture.clone(),
        args: vec![
            "fixture-http".into(),
            "--port".into(),
            "0".into(),
            "--tools".into(),
            tools.to_string().into(),
        ],
        stderr_path,
    }
}

/// A session over either transport; an HTTP one owns the listener process it talks to.
enum AnySession {
    Stdio(Session),
    Http(Listener, HttpSession),
}

impl AnySession {
    fn start(
        client: Transport,
        launch: &Launch,
        workload: &Workload,
        stall: Duration,
    ) -> anyhow::Result<(AnySession, Duration)> {
        match client {
            Transport::Stdio => {
                let (session, startup) = Session::start(launch, workload, stall)?;
                Ok((AnySession::Stdio(session), startup))
            }
            Transport::Http => {
                let listener = Listener::start(launch, stall)?;
                let session = HttpSession::connect(&listener.url, workload, stall)?;
                let startup = listener.spawned.elapsed();
                Ok((AnySession::Http(listener, session), startup))
            }
        }
    }

    /// A peer listener on `port` (its `/mcp` endpoint).
    fn start_peer(
        launch: &Launch,
        port: u16,
        workload: &Workload,
        stall: Duration,
    ) -> anyhow::Result<(AnySession, Duration)> {
        let mut args = vec![
            "--port".into(),
            port.to_string().into(),
            "--host".into(),
            "127.0.0.1".into(),
        ];
        args.extend(launch.args.iter().cloned());
        let launch = Launch {
            args,
            ..launch.clone()
        };
        let url = format!("http://127.0.0.1:{port}/mcp");
        let listener = Listener::start_at(&launch, url, port, stall)?;
        let session = HttpSession::connect(&listener.url, workload, stall)?;
        let startup = listener.spawned.elapsed();
        Ok((AnySession::Http(listener, session), startup))
    }

    fn pid(&self) -> u32 {
        match self {
            AnySession::Stdio(s) => s.pid(),
            AnySession::Http(listener, _) => listener.pid(),
        }
    }

    fn latency(&mut self, calls: usize, workload: &Workload) -> anyhow::Result<Vec<Duration>> {
        match self {
            AnySession::Stdio(s) => s.latency(calls, workload),
            AnySession::Http(_, s) => s.latency(calls, workload),
        }
    }

    fn throughput(
        &mut self,
        in_flight: usize,
        duration: Duration,
        workload: &Workload,
    ) -> anyhow::Result<crate::driver::Throughput> {
        match self {
            AnySession::Stdio(s) => s.throughput(in_flight, duration, workload),
            AnySession::Http(_, s) => s.throughput(in_flight, duration, workload),
        }
    }

    fn close(&mut self) -> anyhow::Result<()> {
        match self {
            AnySession::Stdio(s) => s.close(),
            // The listener is stopped when dropped; HTTP servers do not exit on their own.
            AnySession::Http(_, s) => {
                s.close();
                Ok(())
            }
        }
    }
}

/// A realistic Intercept policy over `tools` tools: each has argument conditions (a numeric
/// bound and a regex) and a rate limit high enough never to deny, so every call is evaluated in
/// full and reserves and settles a counter. `default: deny` hides the fixture's other tools.
pub fn policy_yaml(tools: usize) -> String {
    let mut yaml = format!(
        "version: \"1\"\n\
         description: \"toolgate-bench: {tools} tools with argument conditions and rate limits\"\n\
         default: \"deny\"\n\
         tools:\n"
    );
    for i in 0..tools {
        yaml.push_str(&format!(
            "  tool_{i}:\n    \
               rules:\n      \
                 - name: \"tool_{i} arguments\"\n        \
                   conditions:\n          \
                     - path: \"args.n\"\n            \
                       op: \"lte\"\n            \
                       value: 1000000\n          \
                     - path: \"args.s\"\n            \
                       op: \"regex\"\n            \
                       value: \"^[a-z0-9 ]*$\"\n        \
                   on_deny: \"tool_{i} takes n <= 1000000 and a lowercase s\"\n      \
                 - name: \"tool_{i} rate\"\n        \
                   rate_limit: 100000000/minute\n"
        ));
    }
    yaml
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_baselines_exist() {
        let all = catalogue(true);
        let names: std::collections::HashSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for s in &all {
            if let Some(b) = &s.baseline {
                let base = all.iter().find(|x| &x.name == b).unwrap();
                assert_eq!(base.target, Target::Direct, "{}", s.name);
                assert_eq!(base.payload_bytes, s.payload_bytes, "{}", s.name);
            }
        }
        assert_eq!(catalogue(false).len(), 17);
    }

    #[test]
    fn policy_has_one_entry_per_tool() {
        let yaml = policy_yaml(3);
        assert!(yaml.contains("  tool_2:\n"));
        assert!(!yaml.contains("tool_3"));
        assert_eq!(yaml.matches("rate_limit: 100000000/minute").count(), 3);
    }
}
