//! `toolgate-bench`: what toolgate costs an MCP session over stdio.
//!
//! It runs the same verified calls against a fixture MCP server directly and through toolgate
//! (with a realistic generated policy), and prints latency percentiles, throughput at 1/16/64
//! calls in flight, the proxy's peak memory and CPU per call, and each proxied scenario's
//! difference from its direct counterpart. The fixture is this same binary (a hidden
//! subcommand), so the benchmark needs nothing but itself and the toolgate binary.

mod driver;
mod fixture;
mod http;
mod metrics;
mod otlp_sink;
mod procfs;
mod report;
mod scenarios;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::metrics::Measurement;
use crate::report::Row;
use crate::scenarios::{Plan, Programs, Scenario, Target};

#[derive(Debug, Parser)]
#[command(
    name = "toolgate-bench",
    version,
    about = "Measure what toolgate adds to an MCP session over stdio: latency, throughput, \
             memory and CPU, against the same fixture server called directly.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// A short run (main scenarios, one round, no sweeps) that finishes within a minute.
    #[arg(long)]
    quick: bool,

    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The toolgate binary (default: `toolgate` next to this binary).
    #[arg(long, value_name = "PATH")]
    toolgate: Option<PathBuf>,

    /// Run only this scenario (repeatable). Sweep scenarios can be named even with --quick.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,

    /// Calls in the one-in-flight latency phase.
    #[arg(long, value_name = "N")]
    calls: Option<usize>,

    /// Length of each throughput phase, in milliseconds.
    #[arg(long, value_name = "MS")]
    phase_ms: Option<u64>,

    /// Rounds of the main scenarios (interleaved; medians are reported).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,

    /// Test hook: the fixture corrupts its answer to this tools/call (1-based).
    #[arg(long, value_name = "N", hide = true)]
    fixture_corrupt_call: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the fixture MCP server on stdio (what the scenarios run).
    #[command(hide = true)]
    FixtureStdio {
        /// Number of `tool_<i>` tools, besides `echo`.
        #[arg(long, default_value_t = scenarios::MAIN_POLICY_TOOLS)]
        tools: usize,
        /// Corrupt the echo of this tools/call (1-based), to test that answers are checked.
        #[arg(long, value_name = "N")]
        corrupt_call: Option<u64>,
        /// Answer this share of tools/calls (evenly spread, deterministic) with a JSON-RPC
        /// error, to test that failed calls give their quota back.
        #[arg(long, value_name = "PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        fail_percent: u8,
    },
    /// Serve the fixture MCP server over Streamable HTTP on 127.0.0.1 (JSON answers).
    #[command(hide = true)]
    FixtureHttp {
        /// Listening port; 0 picks a free one (the URL is printed on stderr).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Number of `tool_<i>` tools, besides `echo`.
        #[arg(long, default_value_t = scenarios::MAIN_POLICY_TOOLS)]
        tools: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::FixtureStdio {
            tools,
            corrupt_call,
            fail_percent,
        }) => fixture::run(&fixture::FixtureOptions {
            tools,
            corrupt_call,
            fail_percent,
        }),
        Some(Command::FixtureHttp { port, tools }) => fixture::run_http(
            &fixture::FixtureOptions {
                tools,
                corrupt_call: None,
                fail_percent: 0,
            },
            port,
        ),
        None => bench(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("toolgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cli: &Cli) -> anyhow::Result<()> {
    let mut plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(calls) = cli.calls {
        plan.latency_calls = calls.max(1);
        plan.warmup_calls = plan.warmup_calls.min(calls);
    }
    if let Some(ms) = cli.phase_ms {
        plan.phase = Duration::from_millis(ms);
    }
    if let Some(rounds) = cli.rounds {
        plan.rounds = rounds.max(1);
    }
    let mut selected = select(&cli.scenarios, !cli.quick)?;
    // Peers are optional: a peer that is not installed is skipped with a note, never a failure.
    selected.retain(|s| match s.target {
        Target::Peer(peer) if !peer.program().is_file() => {
            eprintln!(
                "toolgate-bench: skipping {} ({} is not installed; run \
                 crates/toolgate-bench/setup-peers.sh)",
                s.name,
                peer.program().display()
            );
            false
        }
        _ => true,
    });
    let needs_toolgate = selected
        .iter()
        .any(|s| matches!(s.target, Target::Toolgate { .. } | Target::Gateway { .. }));
    let fixture = std::env::current_exe().context("cannot find this binary's path")?;
    let programs = Programs {
        toolgate: if needs_toolgate {
            Some(toolgate_path(cli.toolgate.as_ref(), &fixture)?)
        } else {
            None
        },
        fixture,
        fixture_corrupt_call: cli.fixture_corrupt_call,
    };

    let (main, sweeps): (Vec<&Scenario>, Vec<&Scenario>) = selected.iter().partition(|s| !s.sweep);
    let mut rounds: Vec<Vec<Measurement>> = vec![Vec::new(); selected.len()];
    // Rounds interleave the main scenarios, so a noisy minute on a shared machine spreads over
    // all of them instead of landing on one.
    for round in 1..=plan.rounds {
        for scenario in &main {
            let m = run(
                scenario,
                &plan,
                &programs,
                &format!("{round}/{}", plan.rounds),
            )?;
            rounds[index_of(&selected, scenario)].push(m);
        }
    }
    for scenario in &sweeps {
        let m = run(scenario, &plan, &programs, "sweep")?;
        rounds[index_of(&selected, scenario)].push(m);
    }

    let rows: Vec<Row> = selected
        .iter()
        .zip(&rounds)
        .map(|(s, ms)| Row {
            name: s.name.clone(),
            baseline: s.baseline.clone(),
            rounds: ms.len(),
            m: Measurement::median_of(ms),
        })
        .collect();
    println!("{}", report::markdown(&rows));
    let targets = report::targets_check(&rows);
    if !targets.is_empty() {
        println!("Targets (stdio):\n{targets}");
    }
    let http_targets = report::http_targets_check(&rows);
    if !http_targets.is_empty() {
        println!("Targets (HTTP listener):\n{http_targets}");
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, report::json(&rows)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn run(
    scenario: &Scenario,
    plan: &Plan,
    programs: &Programs,
    label: &str,
) -> anyhow::Result<Measurement> {
    let m = scenarios::run_once(scenario, plan, programs)
        .with_context(|| format!("scenario {} failed", scenario.name))?;
    let at_64 = m
        .calls_per_sec_64
        .map_or(String::new(), |c| format!("  @64 {c:>8.0}/s"));
    eprintln!(
        "[{label}] {:<28} p50 {:>8.1} µs  p99 {:>8.1} µs{at_64}  ({} calls verified)",
        scenario.name,
        m.p50_us.unwrap_or(f64::NAN),
        m.p99_us.unwrap_or(f64::NAN),
        m.calls_verified,
    );
    Ok(m)
}

fn index_of(selected: &[Scenario], scenario: &Scenario) -> usize {
    selected
        .iter()
        .position(|s| s.name == scenario.name)
        .unwrap_or_default()
}

/// The scenarios to run: those named, else the catalogue (with sweeps in a full run). A
/// named scenario's baseline is pulled in too, so its comparison column is never empty.
fn select(names: &[String], sweeps: bool) -> anyhow::Result<Vec<Scenario>> {
    if names.is_empty() {
        return Ok(scenarios::catalogue(sweeps));
    }
    let all = scenarios::catalogue(true);
    for name in names {
        if !all.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            bail!("unknown scenario {name}; known: {}", known.join(", "));
        }
    }
    let wanted = |s: &Scenario| {
        names.contains(&s.name)
            || all
                .iter()
                .any(|x| names.contains(&x.name) && x.baseline.as_ref() == Some(&s.name))
    };
    Ok(all.iter().filter(|s| wanted(s)).cloned().collect())
}

fn toolgate_path(given: Option<&PathBuf>, this_exe: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => this_exe
            .parent()
            .context("this binary has no parent directory")?
            .join("toolgate"),
    };
    if !path.is_file() {
        bail!(
            "the toolgate binary was not found at {}; build it with \
             `cargo build --release -p toolgate` or pass --toolgate PATH",
            path.display()
        );
    }
    Ok(path)
}
