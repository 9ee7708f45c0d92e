"""Prometheus metrics (docs/OBSERVABILITY.md): calls through a real server, then a scrape of
`--metrics-listen` (and of the admin listener's `/metrics`) read with the Python
`prometheus_client` OpenMetrics parser."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from toolgate_harness import E2E_DIR, Gateway, everything_command, first_text, is_denial, mcp_session, toolgate_bin

PAGING_SERVER_PY = E2E_DIR / "servers" / "paging_server.py"
ADMIN_TOKEN = "m" * 40

POLICY = """version: "1"
tools:
  echo:
    rules:
      - name: no shouting
        action: deny
        conditions:
          - {path: args.message, op: eq, value: "NO"}
"""


def url_in(log: Path, pattern: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found.group(1)
        assert time.monotonic() < deadline, f"no {pattern!r} in {log}:\n{log.read_text()}"
        time.sleep(0.05)


def fetch(url: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample of every family, by sample name (`…_total`, `…_bucket`, …)."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(found: dict[str, list[Any]], name: str, **labels: str) -> float:
    matching = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(matching)


@pytest.mark.anyio
async def test_a_scrape_counts_every_decision_and_times_every_call(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    token_file = gateway.dir / "admin.token"
    token_file.write_text(ADMIN_TOKEN)
    extra = ["--metrics-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    argv = gateway.argv(everything_command(), extra=extra)
    log = gateway.new_log("toolgate-metrics")
    async with mcp_session(argv, stderr_path=log, env=gateway.env()) as c:
        metrics_url = url_in(log, r"metrics on (http://127\.0\.0\.1:\d+/metrics)")
        admin_base = url_in(log, r"admin API on (http://127\.0\.0\.1:\d+)/v1/approvals")
        await c.session.list_tools()
        for i in range(5):
            result = await c.session.call_tool("echo", {"message": f"hi {i}"})
            assert first_text(result) == f"Echo: hi {i}"
        for _ in range(3):
            assert is_denial(await c.session.call_tool("echo", {"message": "NO"}))
        # Made-up names are counted, but never become labels of their own.
        for i in range(4):
            assert (await c.session.call_tool(f"made_up_{i}", {})).is_error

        # A reload is counted by its result.
        gateway.write_policy(POLICY.replace('value: "NO"', 'value: "NEVER"'))
        deadline = time.monotonic() + 10
        while value(samples(fetch(metrics_url)[2]), "toolgate_policy_reloads_total", result="ok") < 1:
            assert time.monotonic() < deadline, "the reload was never counted"
            time.sleep(0.1)

        status, content_type, text = fetch(metrics_url)
        assert status == 200 and content_type.startswith("application/openmetrics-text"), (status, content_type)
        found = samples(text)
        assert value(found, "toolgate_decisions_total", decision="allow", tool="echo") == 5
        assert value(found, "toolgate_decisions_total", decision="deny", tool="echo", rule="no shouting") == 3
        assert value(found, "toolgate_decisions_total", tool="(unlisted)") == 4
        assert not any(s.labels.get("tool", "").startswith("made_up") for s in found["toolgate_decisions_total"])

        count = value(found, "mcp_server_operation_duration_seconds_count", mcp_method_name="tools/call", gen_ai_tool_name="echo")
        assert count == 8
        assert value(found, "mcp_server_operation_duration_seconds_count", gen_ai_tool_name="echo", error_type="denied") == 3
        buckets = [
            s for s in found["mcp_server_operation_duration_seconds_bucket"]
            if s.labels.get("gen_ai_tool_name") == "echo" and s.labels.get("error_type", "") == ""
        ]
        ordered = sorted(buckets, key=lambda s: float(s.labels["le"]))
        counts = [s.value for s in ordered]
        assert counts == sorted(counts) and counts[-1] == 5, counts
        assert ordered[-1].labels["le"] == "+Inf"
        assert value(found, "toolgate_build_info") == 1
        assert value(found, "toolgate_approvals_pending") == 0

        # Every series the shipped Grafana dashboard queries is one toolgate exports.
        dashboard = (E2E_DIR.parent.parent / "examples" / "grafana-dashboard.json").read_text()
        queried = set(re.findall(r"\b((?:toolgate|mcp)_[a-z_]+)", dashboard))
        exported = {name for name in found if name.startswith(("toolgate_", "mcp_"))}
        exported |= {"toolgate_upstream_up"}  # (a gateway config's; the test below scrapes it)
        assert queried and queried <= exported, queried - exported

        # The scrape-only listener serves nothing else; the admin listener serves the same
        # metrics behind its token.
        assert fetch(metrics_url.replace("/metrics", "/v1/approvals"))[0] == 404
        assert fetch(admin_base + "/metrics")[0] == 401
        status, _, admin_text = fetch(admin_base + "/metrics", ADMIN_TOKEN)
        assert status == 200
        assert value(samples(admin_text), "toolgate_decisions_total", decision="allow", tool="echo") == 5


def test_metrics_listen_refuses_a_public_address_unless_told(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    run = gateway.run_cli("-c", str(gateway.policy_path), "--state-dsn", "memory:", "--state-dir", str(gateway.state_dir),
                          "--metrics-listen", "0.0.0.0:0", "--", sys.executable, "-c", "pass")
    assert run.returncode != 0
    assert "--metrics-public" in run.stderr


@pytest.mark.anyio
async def test_servers_of_a_gateway_config_are_labelled_and_their_health_is_a_gauge(gateway: Gateway) -> None:
    def paging(stem: str, restart: str) -> dict[str, Any]:
        return {
            "command": [sys.executable, str(PAGING_SERVER_PY)],
            "env": {"PAGING_NAME": stem, "PAGING_TOOLS": "2", "PAGING_PAGE": "10"},
            "restart": restart,
        }

    config = gateway.dir / "gateway.yaml"
    config.write_text(json.dumps({"version": "1", "servers": {"a": paging("alpha", "on-failure"), "c": paging("gamma", "never")}}))
    argv = [
        str(toolgate_bin()), "-c", str(config), "--state-dsn", "memory:", "--state-dir", str(gateway.state_dir),
        "--audit-dir", str(gateway.audit_dir), "--metrics-listen", "127.0.0.1:0",
    ]
    log = gateway.new_log("gateway-metrics")
    async with mcp_session(argv, stderr_path=log, env=gateway.env()) as c:
        metrics_url = url_in(log, r"metrics on (http://127\.0\.0\.1:\d+/metrics)")
        await c.session.list_tools()
        assert first_text(await c.session.call_tool("a__alpha_0", {})) == "alpha: alpha_0"
        assert first_text(await c.session.call_tool("c__gamma_1", {})) == "gamma: gamma_1"
        found = samples(fetch(metrics_url)[2])
        assert value(found, "toolgate_upstream_up", server="a") == 1
        assert value(found, "toolgate_upstream_up", server="c") == 1
        assert value(found, "toolgate_decisions_total", server="a", tool="alpha_0", decision="allow") == 1
        assert value(found, "toolgate_decisions_total", server="c", tool="gamma_1", decision="allow") == 1

        await c.session.call_tool("c__crash", {})
        deadline = time.monotonic() + 10
        while value(samples(fetch(metrics_url)[2]), "toolgate_upstream_up", server="c") != 0:
            assert time.monotonic() < deadline, "server c never reported down"
            time.sleep(0.1)
