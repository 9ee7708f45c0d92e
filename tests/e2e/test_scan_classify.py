"""End-to-end tests of risk classification: `classify` and `scan` against real servers, and
`categories` rules enforced on a real server's tools that the policy never names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from http_harness import everything_http
from toolgate_harness import (
    MCP_PACKAGES,
    Gateway,
    everything_command,
    filesystem_command,
    first_text,
    is_denial,
    node_bin,
    require_node_modules,
)

pytestmark = pytest.mark.gateway

MEMORY_JS = MCP_PACKAGES / "server-memory" / "dist" / "index.js"


def memory_command(tmp_path: Path) -> list[str]:
    """server-memory (knowledge graph) with its file in the test's directory."""
    require_node_modules()
    return [node_bin(), str(MEMORY_JS)]


def memory_env(gateway: Gateway) -> dict[str, str]:
    return dict(gateway.env(), MEMORY_FILE_PATH=str(gateway.dir / "memory.jsonl"))


def classify_json(gateway: Gateway, *args: str) -> list[dict]:
    done = gateway.run_cli("classify", "--format", "json", *args, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_classify_a_stdio_server(gateway: Gateway) -> None:
    rows = classify_json(gateway, "--", *filesystem_command(gateway.dir))
    by_name = {r["name"]: r for r in rows}
    assert by_name["read_text_file"]["category"] == "Read"
    assert by_name["read_text_file"]["risk"] == "Low"
    assert by_name["write_file"]["category"] == "Write"
    assert by_name["write_file"]["risk"] == "Medium"
    assert all(r["evidence"] for r in rows), "every decision names its evidence"


def test_classify_over_http_matches_stdio(gateway: Gateway) -> None:
    over_stdio = classify_json(gateway, "--", *everything_command())
    with everything_http(gateway, "streamableHttp") as url:
        over_http = classify_json(gateway, "--upstream", url)
    # The server offers (almost) the same tools either way; each gets the same verdict.
    stdio_verdicts = {r["name"]: r["category"] for r in over_stdio}
    shared = [r for r in over_http if r["name"] in stdio_verdicts]
    assert len(shared) >= 10
    assert all(stdio_verdicts[r["name"]] == r["category"] for r in shared)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_scan_writes_a_policy_that_validates_and_loads(gateway: Gateway, fmt: str) -> None:
    out = gateway.dir / f"scanned.{fmt}"
    done = gateway.run_cli("scan", "-o", str(out), "--format", fmt, "--", *filesystem_command(gateway.dir), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Wrote a starter policy for" in done.stderr
    valid = gateway.run_cli("validate", "-c", str(out))
    assert valid.returncode == 0, valid.stdout
    if fmt == "yaml":
        text = out.read_text()
        assert "# ── Read (Low risk): allowed ──" in text
        assert "rate_limit: 30/minute" in text
    # Refuses to overwrite without --force.
    again = gateway.run_cli("scan", "-o", str(out), "--", *filesystem_command(gateway.dir), timeout=60)
    assert again.returncode != 0 and "--force" in again.stderr


@pytest.mark.anyio
async def test_scanned_policy_runs_in_the_proxy(gateway: Gateway) -> None:
    out = gateway.dir / "everything.yaml"
    done = gateway.run_cli("scan", "-o", str(out), "--", *everything_command(), timeout=60)
    assert done.returncode == 0, done.stderr
    async with gateway.session(policy=out) as connected:
        tools = (await connected.session.list_tools()).tools
        assert {"echo", "get-sum"} <= {t.name for t in tools}
        result = await connected.session.call_tool("get-sum", {"a": 2, "b": 3})
        assert not result.is_error and "5" in first_text(result)


def test_scan_over_http(gateway: Gateway) -> None:
    out = gateway.dir / "http.yaml"
    with everything_http(gateway, "streamableHttp") as url:
        done = gateway.run_cli("scan", "-o", str(out), "--upstream", url, timeout=60)
    assert done.returncode == 0, done.stderr
    assert gateway.run_cli("validate", "-c", str(out)).returncode == 0


CATEGORY_POLICY = """\
version: "1"
default: allow
tools:
  read_graph:
    rules: []
categories:
  Destructive:
    rules:
      - name: no destructive calls
        action: deny
        on_deny: "Destructive tools are switched off"
"""


@pytest.mark.anyio
@pytest.mark.parametrize("list_first", [True, False])
async def test_category_rules_deny_a_destructive_tool_the_policy_never_names(gateway: Gateway, list_first: bool) -> None:
    gateway.write_policy(CATEGORY_POLICY)
    argv_server = memory_command(gateway.dir)
    async with gateway.session(argv_server, env=memory_env(gateway)) as connected:
        session = connected.session
        if list_first:
            names = {t.name for t in (await session.list_tools()).tools}
            assert "delete_entities" in names, "category rules deny, they do not hide"
        created = await session.call_tool("create_entities", {"entities": [{"name": "a", "entityType": "t", "observations": []}]})
        assert not created.is_error, first_text(created)
        denied = await session.call_tool("delete_entities", {"entityNames": ["a"]})
        assert is_denial(denied)
        assert "Destructive tools are switched off" in first_text(denied)
        assert "no destructive calls" in first_text(denied)
        graph = await session.call_tool("read_graph", {})
        assert '"a"' in first_text(graph), "the entity must still exist: the server never saw the delete"


POISONED_SERVER = [sys.executable, str(Path(__file__).parent / "servers" / "poisoned_server.py")]


@pytest.mark.anyio
async def test_a_poisoned_definition_is_reported_and_hidden_by_the_starter_policy(gateway: Gateway) -> None:
    rows = classify_json(gateway, "--", *POISONED_SERVER)
    by_name = {r["name"]: r for r in rows}
    kinds = {f["kind"] for f in by_name["add"]["findings"]}
    assert {"hidden_instruction", "credential_reference"} <= kinds
    assert by_name["read_note"]["findings"] == []

    out = gateway.dir / "poisoned.yaml"
    done = gateway.run_cli("scan", "-o", str(out), "--", *POISONED_SERVER, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'hide:\n' in out.read_text() and '  - "add"' in out.read_text()
    tests = gateway.run_cli("test", str(gateway.dir / "poisoned.test.yaml"))
    assert tests.returncode == 0, tests.stdout
    async with gateway.session(POISONED_SERVER, policy=out) as connected:
        names = {t.name for t in (await connected.session.list_tools()).tools}
        assert names == {"read_note"}


@pytest.mark.anyio
@pytest.mark.parametrize("action", ["hide", "warn"])
async def test_poisoned_definitions_at_run_time(gateway: Gateway, action: str) -> None:
    policy = gateway.write_policy(f'version: "1"\npoisoning:\n  on_finding: {action}\n')
    async with gateway.session(POISONED_SERVER, policy=policy) as connected:
        session = connected.session
        if action == "hide":
            # A call before any listing: toolgate lists the tools itself first, and refuses it.
            with pytest.raises(Exception, match="Unknown tool: add"):
                await session.call_tool("add", {"a": 1, "b": 2})
        names = {t.name for t in (await session.list_tools()).tools}
        assert names == ({"read_note"} if action == "hide" else {"read_note", "add"})
        if action == "warn":
            result = await session.call_tool("add", {"a": 1, "b": 2})
            assert not result.is_error
        # The server's other texts a model reads: its instructions and its prompts.
        assert (connected.init.instructions is None) == (action == "hide")
        prompts = {p.name for p in (await session.list_prompts()).prompts}
        assert prompts == ({"greet"} if action == "hide" else {"greet", "summarize"})
        if action == "hide":
            with pytest.raises(Exception, match="Unknown prompt: summarize"):
                await session.get_prompt("summarize", {"text": "x"})
        else:
            assert (await session.get_prompt("summarize", {"text": "x"})).messages
        assert (await session.get_prompt("greet", {"name": "Ada"})).messages
    texts = [e for e in gateway.audit_events() if e.get("event") == "poisoned_text"]
    assert sorted(e["what"] for e in texts) == ["instructions", "prompt summarize"]
    assert all(e["action"] == action for e in texts)
    events = gateway.wait_for_audit(lambda e: e.get("event") == "poisoned_tool")
    reports = [e for e in events if e.get("event") == "poisoned_tool"]
    assert len(reports) == 1, "reported once per definition, however often it is listed"
    assert reports[0]["tool"] == "add" and reports[0]["action"] == action
    assert {f["kind"] for f in reports[0]["findings"]} >= {"hidden_instruction", "credential_reference"}
