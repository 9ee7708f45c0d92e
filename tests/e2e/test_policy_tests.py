"""End-to-end tests of `toolgate test`: the committed example tests pass, a scanned server's
starter tests pass against its starter policy and fail once the policy departs from them, and
every report (text, exit status, JUnit XML read by a JUnit parser) says what happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from junitparser import Failure, JUnitXml

from toolgate_harness import MCP_PACKAGES, REPO_ROOT, Gateway, filesystem_command, node_bin

pytestmark = pytest.mark.gateway

POLICY = """\
version: "1"
tools:
  create_issue:
    rules:
      - name: hourly issue limit
        rate_limit: 3/hour
  delete_repo:
    rules:
      - name: no deletes
        action: deny
"""

PASSING = """\
policy: policy.yaml
cases:
  - name: the fourth issue in an hour is refused
    tool: create_issue
    repeat: 4
    expect: [allow, allow, allow, deny]
    rule: hourly issue limit
  - name: deletes are refused
    tool: delete_repo
    expect: deny
"""

FAILING = """\
policy: policy.yaml
cases:
  - name: deletes are refused
    tool: delete_repo
    expect: deny
  - name: a limit someone believes is 4
    tool: create_issue
    repeat: 5
    expect: [allow, allow, allow, allow, deny]
  - name: the wrong rule
    tool: delete_repo
    expect: deny
    rule: hourly issue limit
"""

INVALID = """\
policy: policy.yaml
cases:
  - name: typo
    tool: create_issue
    expect: alow
"""


def junit(path: Path) -> list[tuple[str, str, str | None]]:
    """(suite, case, failure message) for every case the report holds."""
    xml = JUnitXml.fromfile(str(path))
    found = []
    for suite in xml:
        for case in suite:
            failures = [r.message for r in case.result if isinstance(r, Failure)]
            found.append((suite.name, case.name, failures[0] if failures else None))
    return found


def write_fixtures(gateway: Gateway) -> None:
    for name, text in [
        ("policy.yaml", POLICY),
        ("passing.test.yaml", PASSING),
        ("failing.test.yaml", FAILING),
        ("invalid.test.yaml", INVALID),
    ]:
        (gateway.dir / name).write_text(text)


def test_the_example_policy_tests_pass(gateway: Gateway) -> None:
    examples = sorted((REPO_ROOT / "examples").rglob("*.test.yaml"))
    library = {p.stem.removesuffix(".test") for p in examples if p.parent.name == "policies"}
    assert library >= {"github", "filesystem", "slack", "postgres", "stripe", "shell", "memory", "playwright"}
    done = gateway.run_cli("test", *map(str, examples))
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("policy", "server"),
    [("filesystem", "filesystem"), ("memory", "memory")],
)
def test_library_policies_list_exactly_the_servers_tools(gateway: Gateway, policy: str, server: str) -> None:
    """A library policy names every tool its server offers, and nothing else."""
    command = filesystem_command(gateway.dir) if server == "filesystem" else [node_bin(), str(MCP_PACKAGES / "server-memory" / "dist" / "index.js")]
    done = gateway.run_cli("classify", "--format", "json", "--", *command, timeout=60)
    assert done.returncode == 0, done.stderr
    offered = {row["name"] for row in json.loads(done.stdout)}
    listed = set(yaml.safe_load((REPO_ROOT / "examples" / "policies" / f"{policy}.yaml").read_text())["tools"]) - {"*"}
    assert listed == offered


def test_passing_failing_and_invalid_files_give_their_exit_status_and_junit(gateway: Gateway) -> None:
    write_fixtures(gateway)
    report = gateway.dir / "report.xml"

    done = gateway.run_cli("test", "passing.test.yaml", "--junit", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "2 passed, 0 failed"
    assert [f for _, _, f in junit(report)] == [None, None]

    done = gateway.run_cli("test", "passing.test.yaml", "failing.test.yaml", "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert out.splitlines()[-1] == "3 passed, 2 failed"
    # The failing call, where it is in the sequence, and the decision's trace.
    assert "  FAIL  a limit someone believes is 4\n        call 4 of 5: expected allow, got deny\n" in out
    assert "counter create_issue._rate_hour is 3; +1 would exceed 3" in out
    assert 'expected rule "hourly issue limit" to decide, but "no deletes" did' in out
    cases = junit(report)
    assert cases == [
        ("passing.test.yaml", "the fourth issue in an hour is refused", None),
        ("passing.test.yaml", "deletes are refused", None),
        ("failing.test.yaml", "deletes are refused", None),
        ("failing.test.yaml", "a limit someone believes is 4", "call 4 of 5: expected allow, got deny"),
        ("failing.test.yaml", "the wrong rule", 'expected rule "hourly issue limit" to decide, but "no deletes" did'),
    ]

    # A file that cannot run is reported with its line and column, and exits 2 (not 1), even
    # beside a failing one; JUnit records it as an error of its suite.
    done = gateway.run_cli("test", "failing.test.yaml", "invalid.test.yaml", "--junit", str(report))
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'invalid.test.yaml:5:13: cases[0].expect: "alow" is not a decision' in done.stderr
    assert done.stdout.splitlines()[-1] == "1 passed, 2 failed, 1 file could not be run"
    xml = JUnitXml.fromfile(str(report))
    suites = {s.name: s for s in xml}
    assert suites["invalid.test.yaml"].errors == 1
    # junitparser reads the suite's counts; the suite-level <error> element itself it leaves
    # to the XML underneath.
    error = suites["invalid.test.yaml"]._elem.find("error")
    assert error is not None and '"alow" is not a decision' in error.get("message")


def test_scan_writes_starter_tests_that_pass_until_the_policy_departs_from_them(gateway: Gateway) -> None:
    policy = gateway.dir / "fs.yaml"
    done = gateway.run_cli("scan", "-o", str(policy), "--", *filesystem_command(gateway.dir), timeout=60)
    assert done.returncode == 0, done.stderr
    tests = gateway.dir / "fs.test.yaml"
    assert f"Wrote its tests to {tests}" in done.stderr
    report = gateway.dir / "report.xml"

    done = gateway.run_cli("test", str(tests), "--junit", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    cases = junit(report)
    assert len(cases) >= 10 and all(f is None for _, _, f in cases)
    names = [c for _, c, _ in cases]
    assert "read_text_file is allowed (Read)" in names
    assert "write_file: call 31 in a minute is refused (Write)" in names

    # Someone raises the write limit: every Write tool's case now fails at its second call.
    text = policy.read_text()
    assert "rate_limit: 30/minute" in text
    policy.write_text(text.replace("rate_limit: 30/minute", "rate_limit: 40/minute"))
    done = gateway.run_cli("test", str(tests), "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    failed = {c: f for _, c, f in junit(report) if f is not None}
    assert failed["write_file: call 31 in a minute is refused (Write)"] == "call 2 of 2: expected deny, got allow"
    assert all(name.endswith("(Write)") for name in failed)

    # Scanning again refuses to overwrite the test file as well as the policy.
    policy.unlink()
    again = gateway.run_cli("scan", "-o", str(policy), "--", *filesystem_command(gateway.dir), timeout=60)
    assert again.returncode != 0 and "fs.test.yaml already exists" in again.stderr
