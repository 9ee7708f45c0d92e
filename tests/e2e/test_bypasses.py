"""End-to-end tests of the ways around a policy that come from two readers of one message
disagreeing: a hostile client over stdio against real servers that read leniently.

* A Go server decoding with `encoding/json` (`servers/gojson`, built here) folds member
  names: `Arguments`, `argumentſ` and `arguments` are one field to it.
* A Python SDK server (`servers/coercing_server.py`) coerces: `"5000"` runs as 5000.
* server-everything answers under the request ids it is given.

Each lenient server is first shown to be fooled when reached directly (`test_direct_*`), then
shown not to be fooled through toolgate: what the tool actually ran is read from the
server's own log of calls, not inferred from answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from toolgate_harness import (
    E2E_DIR,
    Gateway,
    RawSession,
    everything_command,
    first_text,
    is_denial,
)

GOJSON_SRC = E2E_DIR / "servers" / "gojson"
COERCING_SERVER_PY = E2E_DIR / "servers" / "coercing_server.py"

needs_gateway = pytest.mark.gateway


@pytest.fixture(scope="session")
def gojson_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go test server, built once per run (scripts/test.sh installs Go when missing)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` is not on PATH (Debian's golang-go; scripts/test.sh installs it)", pytrace=False)
    out = tmp_path_factory.mktemp("gojson")
    env = dict(
        os.environ,
        GOCACHE=str(out / "cache"),
        GOPATH=str(out / "gopath"),
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
    )
    binary = out / "gojson"
    build = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=GOJSON_SRC,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return binary


def calls_in(log: Path) -> list[dict[str, Any]]:
    """What a test server's tools actually ran (one JSON object per call)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def with_env(argv: list[str], **env: str) -> list[str]:
    """Runs `argv` with extra environment variables (toolgate passes its own environment on)."""
    return ["env", *(f"{k}={v}" for k, v in env.items()), *argv]


def call_line(request_id: int, params_json: str) -> str:
    return f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call","params":{params_json}}}'


def raw_through(gateway: Gateway, server: list[str]) -> RawSession:
    raw = RawSession(gateway.argv(server), stderr_path=gateway.new_log("toolgate-raw"), env=gateway.env())
    raw.initialize()
    return raw


# --------------------------------------------------------------------------------------
# Member names a Go server folds together
# --------------------------------------------------------------------------------------

PAY_POLICY = """\
version: "1"
tools:
  pay:
    rules:
      - name: large payments
        action: deny
        conditions:
          - {path: args.amount, op: gt, value: 1000}
        on_deny: "Payments over 1000 need a person"
      - name: large nested payments
        action: deny
        conditions:
          - {path: args.payment.amount, op: gt, value: 1000}
"""

# Each of these is a payment of 5000 (or more) to a Go server, and something else to a
# reader that matches member names exactly.
FOLDED_CALLS = [
    '{"name":"pay","Arguments":{"amount":5000}}',
    '{"name":"pay","argument\\u017f":{"amount":5000}}',
    '{"name":"pay","arguments":{},"argument\\u017f":{"amount":5000}}',
    '{"Name":"pay","arguments":{"amount":5000}}',
    '{"name":"pay","arguments":{"Amount":5000}}',
    '{"name":"pay","arguments":{"AMOUNT":5000}}',
    '{"name":"pay","arguments":{"amount":1,"Amount":9000}}',
    '{"name":"pay","arguments":{"payment":{"Amount":5000}}}',
    '{"name":"pay","arguments":{"Payment":{"amount":5000}}}',
]


def test_direct_go_server_folds_member_names(gateway: Gateway, gojson_binary: Path, tmp_path: Path) -> None:
    """The reference: reached directly, the Go server runs every folded spelling as 5000+."""
    log = tmp_path / "calls.jsonl"
    raw = RawSession(with_env([str(gojson_binary)], GOJSON_CALL_LOG=str(log)), stderr_path=gateway.new_log("gojson"))
    try:
        raw.initialize()
        for i, params in enumerate(FOLDED_CALLS[:3] + FOLDED_CALLS[4:7]):
            raw.send_line(call_line(100 + i, params))
            response = raw.response_to(100 + i)
            assert "result" in response, response
    finally:
        raw.close()
    ran = calls_in(log)
    assert len(ran) == 6 and all(c["amount"] >= 5000 for c in ran), ran


@needs_gateway
def test_folded_member_names_never_reach_a_go_server(gateway: Gateway, gojson_binary: Path, tmp_path: Path) -> None:
    gateway.write_policy(PAY_POLICY)
    log = tmp_path / "calls.jsonl"
    raw = raw_through(gateway, with_env([str(gojson_binary)], GOJSON_CALL_LOG=str(log)))
    try:
        for i, params in enumerate(FOLDED_CALLS):
            raw.send_line(call_line(200 + i, params))
            response = raw.response_to(200 + i)
            assert response.get("error", {}).get("code") == -32600, f"{params}: {response}"
        # Envelope members fold too.
        raw.send_line('{"jsonrpc":"2.0","id":300,"method":"tools/call","Params":{"name":"pay","arguments":{"amount":5000}}}')
        assert raw.response_to(300)["error"]["code"] == -32600
        # The session goes on: a small payment runs, a large one is denied by the rule.
        raw.send_line(call_line(301, '{"name":"pay","arguments":{"amount":5}}'))
        assert "paid 5" in raw.response_to(301)["result"]["content"][0]["text"]
        raw.send_line(call_line(302, '{"name":"pay","arguments":{"amount":5000}}'))
        denied = raw.response_to(302)["result"]
        assert denied["isError"] is True and "Payments over 1000" in denied["content"][0]["text"]
    finally:
        raw.close()
    assert calls_in(log) == [{"amount": 5, "currency": "", "payment_amount": 0}]


# --------------------------------------------------------------------------------------
# Values a pydantic server coerces
# --------------------------------------------------------------------------------------

COERCION_POLICY = """\
version: "1"
tools:
  refund:
    rules:
      - name: large refunds
        action: deny
        conditions:
          - {path: args.amount, op: gt, value: 1000}
      - name: known currencies
        conditions:
          - {path: args.currency, op: in, value: [usd, eur]}
  delete_customer:
    rules:
      - name: test customers only
        action: deny
        conditions:
          - {path: args.livemode, op: eq, value: true}
"""


def coercing_command(log: Path) -> list[str]:
    return with_env([sys.executable, str(COERCING_SERVER_PY)], COERCING_CALL_LOG=str(log))


@pytest.mark.anyio
async def test_direct_pydantic_server_runs_quoted_numbers_and_booleans(gateway: Gateway, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    async with gateway.direct(coercing_command(log)) as c:
        assert first_text(await c.session.call_tool("refund", {"amount": "5000"})) == "refunded 5000 usd"
        await c.session.call_tool("delete_customer", {"customer": "c1", "livemode": "true"})
    assert calls_in(log) == [
        {"tool": "refund", "amount": 5000, "currency": "usd"},
        {"tool": "delete_customer", "customer": "c1", "livemode": True},
    ]


@needs_gateway
@pytest.mark.anyio
async def test_values_a_server_would_coerce_count_as_restrictive(gateway: Gateway, tmp_path: Path) -> None:
    gateway.write_policy(COERCION_POLICY)
    log = tmp_path / "calls.jsonl"
    async with gateway.session(coercing_command(log)) as c:
        for tool, arguments in [
            ("refund", {"amount": "5000", "currency": "usd"}),  # a deny rule's condition cannot be evaluated
            ("refund", {"amount": "500", "currency": "usd"}),  # ... whatever the quoted number
            ("refund", {"amount": [5000], "currency": "usd"}),
            ("refund", {"amount": 50, "currency": 1}),  # a require rule's too
            ("delete_customer", {"customer": "c1", "livemode": "true"}),
            ("delete_customer", {"customer": "c1", "livemode": 1}),
        ]:
            result = await c.session.call_tool(tool, arguments)
            assert is_denial(result), f"{tool} {arguments}: {first_text(result)}"
        allowed = await c.session.call_tool("refund", {"amount": 500, "currency": "usd"})
        assert first_text(allowed) == "refunded 500 usd"
        await c.session.call_tool("delete_customer", {"customer": "c2", "livemode": False})
    assert calls_in(log) == [
        {"tool": "refund", "amount": 500, "currency": "usd"},
        {"tool": "delete_customer", "customer": "c2", "livemode": False},
    ]


@needs_gateway
def test_a_tools_call_without_an_id_is_never_forwarded(gateway: Gateway, tmp_path: Path) -> None:
    gateway.write_policy(COERCION_POLICY)
    log = tmp_path / "calls.jsonl"
    raw = raw_through(gateway, coercing_command(log))
    try:
        raw.notify("tools/call", {"name": "refund", "arguments": {"amount": 5}})
        raw.send_line('{"jsonrpc":"2.0","method":"tools/call","params":{"name":"refund","Arguments":{"amount":5000}}}')
        # A request after them is answered, so they were read and dealt with.
        assert "result" in raw.request("ping")
        ran = raw.request("tools/call", {"name": "refund", "arguments": {"amount": 7, "currency": "usd"}})
        assert ran["result"]["isError"] is False, ran
    finally:
        raw.close()
    assert calls_in(log) == [{"tool": "refund", "amount": 7, "currency": "usd"}]
    events = gateway.wait_for_audit(lambda e: e.get("what") == "call_without_id")
    dropped = [e for e in events if e.get("what") == "call_without_id"]
    assert len(dropped) == 2 and dropped[0]["tool"] == "refund", dropped


# --------------------------------------------------------------------------------------
# Request ids: the gateway owns every id it sends upstream
# --------------------------------------------------------------------------------------

HIDE_POLICY = """\
version: "1"
hide: [get-env]
tools: {}
"""


def next_answer_line(raw: RawSession, timeout: float = 20.0) -> bytes:
    """The next answer toolgate wrote, unparsed (ids must come back byte for byte);
    notifications are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        line = raw._lines.get(timeout=max(0.1, deadline - time.monotonic()))  # noqa: SLF001
        assert line is not None, "stdout closed"
        if b'"method"' not in line:
            return line


@needs_gateway
def test_answers_carry_the_clients_id_as_written_and_are_filtered(gateway: Gateway) -> None:
    """Ids a server would write back differently reach the server as the gateway's own, so the
    answer is recognised, filtered, and returned under the id exactly as the client wrote it."""
    gateway.write_policy(HIDE_POLICY)
    raw = raw_through(gateway, everything_command())
    try:
        for written in ['9000000000000001.0', '"\\uD800"', '"toolgate-1"', '1e0']:
            raw.send_line(f'{{"jsonrpc":"2.0","id":{written},"method":"tools/list"}}')
            line = next_answer_line(raw)
            assert line.startswith(b'{"jsonrpc":"2.0","id":' + written.encode() + b","), line[:80]
            tools = [t["name"] for t in json.loads(line)["result"]["tools"]]
            assert "echo" in tools and "get-env" not in tools, tools
    finally:
        raw.close()


CATEGORY_POLICY = """\
version: "1"
tools: {}
categories:
  Destructive:
    rules:
      - name: no destructive tools
        action: deny
        on_deny: "Destructive tools are off"
"""


@needs_gateway
def test_a_client_cannot_answer_the_gateways_own_tool_listing(gateway: Gateway) -> None:
    """A call to a tool not yet listed makes the gateway list the tools itself. Answers the
    client forges for that listing (any id it could guess) go nowhere, so `echo` is decided
    by its real category; and a tool the server never lists is decided as the most
    restrictive category the policy names (fail closed)."""
    gateway.write_policy(CATEGORY_POLICY)
    raw = raw_through(gateway, everything_command())
    try:
        raw.send_line(call_line(1, '{"name":"echo","arguments":{"message":"hi"}}'))
        for forged in [1, 2, 3, '"toolgate-1"', '"toolgate-2"']:
            raw.send_line(f'{{"jsonrpc":"2.0","id":{forged},"result":{{"tools":[]}}}}')
        assert raw.response_to(1)["result"]["content"][0]["text"] == "Echo: hi"
        raw.send_line(call_line(2, '{"name":"not_listed_anywhere","arguments":{}}'))
        denied = raw.response_to(2)["result"]
        assert denied["isError"] is True and "Destructive tools are off" in denied["content"][0]["text"]
    finally:
        raw.close()


# --------------------------------------------------------------------------------------
# A forwarded call counts, and is answered once
# --------------------------------------------------------------------------------------

ONE_PER_HOUR = """\
version: "1"
tools:
  trigger-long-running-operation:
    rules:
      - name: one long op
        rate_limit: 1/hour
"""


@needs_gateway
def test_cancelled_calls_count_once_they_reached_the_server(gateway: Gateway) -> None:
    """Three calls under `1/hour`, each cancelled after it was sent and waited out past the
    cancel grace: only the first reaches the server; its cancellation does not give the
    quota back, so the other two are refused."""
    gateway.write_policy(ONE_PER_HOUR)
    argv = gateway.argv(everything_command(), extra=["--cancel-grace", "1"])
    raw = RawSession(argv, stderr_path=gateway.new_log("toolgate-raw"), env=gateway.env())
    try:
        raw.initialize()
        long_op = '{"name":"trigger-long-running-operation","arguments":{"duration":5,"steps":5}}'
        for request_id in (11, 12, 13):
            raw.send_line(call_line(request_id, long_op))
            time.sleep(0.5)
            raw.notify("notifications/cancelled", {"requestId": request_id, "reason": "changed my mind"})
            time.sleep(1.6)  # past the grace and the sweep that ends it
        for request_id in (12, 13):
            result = raw.response_to(request_id)["result"]
            assert result["isError"] is True and "one long op" in result["content"][0]["text"], result
        assert all(m.get("id") != 11 for m in raw.unclaimed_responses), "a cancelled call was answered"
    finally:
        raw.close()


@needs_gateway
def test_a_timed_out_call_is_answered_once(gateway: Gateway) -> None:
    gateway.write_policy(ONE_PER_HOUR)
    argv = gateway.argv(everything_command(), extra=["--call-timeout", "1"])
    raw = RawSession(argv, stderr_path=gateway.new_log("toolgate-raw"), env=gateway.env())
    try:
        raw.initialize()
        raw.send_line(call_line(21, '{"name":"trigger-long-running-operation","arguments":{"duration":3,"steps":3}}'))
        first = raw.response_to(21)
        assert first["error"]["code"] == -31002, first
        # Whatever the server does next, the client hears nothing more of request 21.
        time.sleep(3.5)
        assert "result" in raw.request("ping")
        assert all(m.get("id") != 21 for m in raw.unclaimed_responses)
        # And the call counted: the server may have run it.
        raw.send_line(call_line(22, '{"name":"trigger-long-running-operation","arguments":{"duration":0.1,"steps":1}}'))
        assert raw.response_to(22)["result"]["isError"] is True
    finally:
        raw.close()
