"""OpenTelemetry traces (docs/OBSERVABILITY.md): toolgate exports a span per call to a small
OTLP/HTTP receiver started by the test, decoded with the official protobuf definitions
(`opentelemetry-proto`) or read as OTLP/JSON; the caller's trace is continued and passed on
to the server."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from toolgate_harness import E2E_DIR, Gateway, first_text, is_denial, mcp_session, toolgate_bin

PAGING_SERVER_PY = E2E_DIR / "servers" / "paging_server.py"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

POLICY = """version: "1"
tools:
  alpha_1:
    rules:
      - name: not this one
        action: deny
"""


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: every span it was sent, as plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, str]] = []
        self.content_types: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the handler's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                content_type = self.headers.get("Content-Type", "")
                receiver.take(self.path, content_type, body)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, path: str, content_type: str, body: bytes) -> None:
        assert path == "/v1/traces", path
        self.content_types.add(content_type)
        if content_type == "application/x-protobuf":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for rs in request.resource_spans:
                self.resources.append({a.key: a.value.string_value for a in rs.resource.attributes})
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append({
                            "name": s.name,
                            "traceId": s.trace_id.hex(),
                            "spanId": s.span_id.hex(),
                            "parentSpanId": s.parent_span_id.hex(),
                            "kind": s.kind,
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "attributes": {a.key: a.value.string_value for a in s.attributes},
                            "status": s.status.code,
                        })
        else:
            request = json.loads(body)
            for rs in request["resourceSpans"]:
                self.resources.append({a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]})
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        self.spans.append({
                            "name": s["name"],
                            "traceId": s["traceId"],
                            "spanId": s["spanId"],
                            "parentSpanId": s.get("parentSpanId", ""),
                            "kind": s["kind"],
                            "start": int(s["startTimeUnixNano"]),
                            "end": int(s["endTimeUnixNano"]),
                            "attributes": {a["key"]: a["value"]["stringValue"] for a in s["attributes"]},
                            "status": s.get("status", {}).get("code", 0),
                        })

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.spans) < count:
            assert time.monotonic() < deadline, f"only {len(self.spans)} spans arrived: {self.spans}"
            time.sleep(0.05)
        return self.spans

    def wait_for_method(self, method: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every span so far, once `count` of them are of `method`."""
        deadline = time.monotonic() + timeout
        while sum(s["attributes"].get("mcp.method.name") == method for s in self.spans) < count:
            assert time.monotonic() < deadline, f"not {count} {method} spans: {self.spans}"
            time.sleep(0.05)
        return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def traced_session(gateway: Gateway, env: dict[str, str], extra: tuple[str, ...] = ()):
    server = [sys.executable, str(PAGING_SERVER_PY)]
    argv = gateway.argv(server, extra=extra)
    full_env = {**gateway.env(), "PAGING_NAME": "alpha", "PAGING_TOOLS": "3", "PAGING_ECHO_TRACEPARENT": "1", **env}
    return mcp_session(argv, stderr_path=gateway.new_log("toolgate-traced"), env=full_env)


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
async def test_each_call_is_a_span_that_continues_the_callers_trace(gateway: Gateway, protocol: str) -> None:
    gateway.write_policy(POLICY)
    with receiver() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "toolgate-under-test",
        }
        async with traced_session(gateway, env) as c:
            traceparent = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
            result = await c.session.call_tool("alpha_0", {}, meta={"traceparent": traceparent})
            # A call without a trace starts one of its own.
            plain = await c.session.call_tool("alpha_2", {})
            denied = await c.session.call_tool("alpha_1", {})
            assert is_denial(denied)
            await c.session.list_tools()
            spans = collector.wait_for_method("tools/call", 3)
            spans = collector.wait_for_method("tools/list", 1)

        expected_type = "application/x-protobuf" if protocol == "http/protobuf" else "application/json"
        assert collector.content_types == {expected_type}
        assert all(r["service.name"] == "toolgate-under-test" for r in collector.resources)
        by_tool = {s["attributes"]["gen_ai.tool.name"]: s for s in spans if "gen_ai.tool.name" in s["attributes"]}

        # Every other request is a span too, named by its method, ended by its answer.
        [initialize] = [s for s in spans if s["name"] == "initialize"]
        listing = [s for s in spans if s["name"] == "tools/list"][-1]
        for other in (initialize, listing):
            assert other["parentSpanId"] == "" and other["start"] <= other["end"], other
            assert other["attributes"]["jsonrpc.request.id"].isdigit(), other
            assert other["attributes"]["mcp.session.id"] == by_tool["alpha_0"]["attributes"]["mcp.session.id"]
            assert "error.type" not in other["attributes"] and other["status"] != 2, other

        continued = by_tool["alpha_0"]
        assert continued["name"] == "tools/call alpha_0"
        assert continued["traceId"] == TRACE_ID and continued["parentSpanId"] == CALLER_SPAN
        assert continued["kind"] == 2 and continued["start"] <= continued["end"]
        attributes = continued["attributes"]
        assert attributes["mcp.method.name"] == "tools/call"
        assert attributes["toolgate.decision"] == "allow"
        assert attributes["jsonrpc.request.id"].isdigit()
        assert attributes["mcp.session.id"] and attributes["mcp.protocol.version"]
        assert "error.type" not in attributes
        # The server was handed toolgate's span as its parent, in the same trace.
        assert first_text(result) == f"alpha: alpha_0 traceparent=00-{TRACE_ID}-{continued['spanId']}-01"

        started = by_tool["alpha_2"]
        assert started["traceId"] != TRACE_ID and started["parentSpanId"] == ""
        assert first_text(plain) == f"alpha: alpha_2 traceparent=00-{started['traceId']}-{started['spanId']}-01"

        refused = by_tool["alpha_1"]["attributes"]
        assert refused["error.type"] == "denied" and refused["toolgate.rule"] == "not this one"
        assert by_tool["alpha_1"]["status"] == 2


@pytest.mark.anyio
async def test_an_unsampled_trace_is_neither_recorded_nor_changed(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    with receiver() as collector:
        async with traced_session(gateway, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}) as c:
            unsampled = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
            result = await c.session.call_tool("alpha_0", {}, meta={"traceparent": unsampled})
            assert first_text(result) == f"alpha: alpha_0 traceparent={unsampled}"
            await c.session.call_tool("alpha_2", {})
            spans = collector.wait_for_method("tools/call", 1)
        time.sleep(1.5)
        calls = [s for s in collector.spans if s["attributes"]["mcp.method.name"] == "tools/call"]
        assert [s["attributes"]["gen_ai.tool.name"] for s in calls] == ["alpha_2"], spans


@pytest.mark.anyio
async def test_an_unreachable_collector_costs_calls_nothing_and_drops_are_counted(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    async with traced_session(gateway, env, ("--metrics-listen", "127.0.0.1:0")) as c:
        for _ in range(5):
            assert first_text(await c.session.call_tool("alpha_0", {})).startswith("alpha: alpha_0")
        log = gateway.logs[-1]
        metrics_url = re.search(r"metrics on (http://\S+/metrics)", log.read_text()).group(1)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 10
        while True:
            text = opener.open(metrics_url, timeout=5).read().decode()
            found = re.search(r"^toolgate_spans_dropped_total (\d+)", text, re.M)
            # Five calls, and the session's other requests (initialize, a listing).
            if found and int(found.group(1)) >= 6:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    assert "trace spans are being dropped" in log.read_text()


def test_a_bad_otel_variable_is_refused_at_start(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    import subprocess

    run = subprocess.run(
        [str(toolgate_bin()), "-c", str(gateway.policy_path), "--state-dsn", "memory:", "--state-dir", str(gateway.state_dir),
         "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, timeout=30,
        env={**gateway.env(), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    )
    assert run.returncode != 0
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in run.stderr and "http/protobuf" in run.stderr
