"""End-to-end tests of toolgate's HTTP transports with real MCP servers and clients.

The listener (`--transport http`) is driven by the Python `mcp` SDK's Streamable HTTP and
SSE clients and by the MCP Inspector CLI, in front of `server-everything` run three ways:
as a stdio child (one per session), as a `streamableHttp` server and as a legacy `sse`
server. The bridge (`--upstream URL`) is driven by the SDK's stdio client against the two
HTTP servers. The same policy behaviours as over stdio must hold: denials, hidden tools,
rate limits.
"""

from __future__ import annotations

import json
import subprocess
import time

import anyio
import httpx2
import mcp.types as types
import pytest
from mcp import MCPError

from http_harness import bridge_argv, everything_http, free_port, http_session, listener
from toolgate_harness import (
    DENY_PREFIX,
    E2E_DIR,
    Gateway,
    RawSession,
    everything_command,
    first_text,
    is_denial,
    mcp_session,
)

pytestmark = pytest.mark.gateway

HIDDEN_TOOL = "get-env"

POLICY = """\
version: "1"
default: allow
hide: [get-env]
tools:
  echo:
    rules:
      - name: echo limit
        rate_limit: 3/minute
  get-tiny-image:
    rules:
      - name: no images
        action: deny
        on_deny: "Images are not allowed here"
"""


async def check_policy_holds(connected, *, rate_limit: bool = True) -> None:
    """The behaviours every transport must share: listing, denial, hidden tool, limit."""
    session = connected.session
    names = [t.name for t in (await session.list_tools()).tools]
    assert "echo" in names and HIDDEN_TOOL not in names
    result = await session.call_tool("echo", {"message": "through http"})
    assert first_text(result) == "Echo: through http"
    denied = await session.call_tool("get-tiny-image", {})
    assert is_denial(denied), denied
    assert "Images are not allowed here" in first_text(denied)
    with pytest.raises(MCPError) as hidden:
        await session.call_tool(HIDDEN_TOOL, {})
    assert hidden.value.error.code == -32602
    assert f"Unknown tool: {HIDDEN_TOOL}" in hidden.value.error.message
    if rate_limit:
        results = [await session.call_tool("echo", {"message": str(i)}) for i in range(3)]
        assert not any(is_denial(r) for r in results[:2])
        assert is_denial(results[2]) and "echo limit" in first_text(results[2])


def avoid_minute_edge() -> None:
    remaining = 60 - (time.time() % 60)
    if remaining < 15:
        time.sleep(remaining + 0.5)


# -- the listener in front of a stdio child --------------------------------------------


@pytest.mark.anyio
async def test_listener_streamable_http_sdk_in_front_of_stdio_child(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    avoid_minute_edge()
    with listener(gateway, everything_command()) as base:
        async with http_session(f"{base}/mcp") as connected:
            assert connected.init.capabilities.tools.list_changed is True
            await check_policy_holds(connected)


@pytest.mark.anyio
async def test_listener_legacy_sse_sdk_in_front_of_stdio_child(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    avoid_minute_edge()
    with listener(gateway, everything_command()) as base:
        async with http_session(f"{base}/sse", transport="sse") as connected:
            await check_policy_holds(connected)


@pytest.mark.anyio
async def test_listener_server_requests_reach_the_http_client(gateway: Gateway) -> None:
    """A sampling request from the server in the middle of a call reaches the SDK client."""
    gateway.write_policy(POLICY)
    asked: list[str] = []

    async def sampling(_ctx, params: types.CreateMessageRequestParams):
        asked.append(str(params.messages[0].content))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled answer"),
            model="test-model",
        )

    with listener(gateway, everything_command()) as base:
        async with http_session(f"{base}/mcp", sampling=sampling) as connected:
            tools = [t.name for t in (await connected.session.list_tools()).tools]
            tool = next(t for t in tools if "sampling" in t)
            result = await connected.session.call_tool(tool, {"prompt": "hello", "maxTokens": 5})
            assert asked, "the sampling request never reached the client"
            assert "sampled answer" in json.dumps(result.model_dump(mode="json"))


def test_listener_refuses_foreign_origin_and_unknown_session(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    with listener(gateway, everything_command()) as base:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
        }
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        with httpx2.Client(timeout=30) as http:
            evil = http.post(f"{base}/mcp", json=init, headers={**headers, "origin": "http://evil.example"})
            assert evil.status_code == 403
            unknown = http.post(f"{base}/mcp", json=init, headers={**headers, "mcp-session-id": "f" * 32})
            assert unknown.status_code == 404
            ok = http.post(f"{base}/mcp", json=init, headers=headers)
            assert ok.status_code == 200, ok.text
            assert ok.headers.get("mcp-session-id")


# -- the listener in front of HTTP servers ---------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("client_transport", ["streamable", "sse"])
async def test_listener_in_front_of_streamable_http_server(gateway: Gateway, client_transport: str) -> None:
    gateway.write_policy(POLICY)
    avoid_minute_edge()
    with everything_http(gateway, "streamableHttp") as upstream, listener(gateway, upstream=upstream) as base:
        path = "/mcp" if client_transport == "streamable" else "/sse"
        async with http_session(base + path, transport=client_transport) as connected:
            await check_policy_holds(connected)


@pytest.mark.anyio
async def test_listener_in_front_of_legacy_sse_server_detects_it(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    avoid_minute_edge()
    with everything_http(gateway, "sse") as upstream, listener(gateway, upstream=upstream) as base:
        async with http_session(f"{base}/mcp") as connected:
            await check_policy_holds(connected)


# -- the Inspector CLI -----------------------------------------------------------------


def inspector_tools(gateway: Gateway, url: str, transport: str) -> list[str]:
    inspector = E2E_DIR / "node_modules" / ".bin" / "mcp-inspector"
    assert inspector.exists(), f"{inspector} is missing: run `npm ci` in tests/e2e"
    env = gateway.env()
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"
    run = subprocess.run(
        [str(inspector), "--cli", url, "--transport", transport, "--method", "tools/list"],
        cwd=E2E_DIR,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, f"inspector failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    return [t["name"] for t in json.loads(run.stdout)["tools"]]


@pytest.mark.parametrize("upstream_mode", ["stdio", "streamableHttp", "sse"])
def test_inspector_cli_through_the_listener(gateway: Gateway, upstream_mode: str) -> None:
    gateway.write_policy(POLICY)
    if upstream_mode == "stdio":
        with listener(gateway, everything_command()) as base:
            http_names = inspector_tools(gateway, f"{base}/mcp", "http")
            sse_names = inspector_tools(gateway, f"{base}/sse", "sse")
    else:
        with everything_http(gateway, upstream_mode) as upstream, listener(gateway, upstream=upstream) as base:
            http_names = inspector_tools(gateway, f"{base}/mcp", "http")
            sse_names = inspector_tools(gateway, f"{base}/sse", "sse")
    assert "echo" in http_names and HIDDEN_TOOL not in http_names
    assert http_names == sse_names


# -- the bridge: stdio client → HTTP server --------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["streamableHttp", "sse"])
async def test_bridge_stdio_client_to_http_server(gateway: Gateway, mode: str) -> None:
    gateway.write_policy(POLICY)
    avoid_minute_edge()
    extra = ["--transport", "sse"] if mode == "sse" else []
    with everything_http(gateway, mode) as upstream:
        argv = bridge_argv(gateway, upstream, extra)
        async with mcp_session(argv, stderr_path=gateway.new_log("bridge"), env=gateway.env()) as connected:
            await check_policy_holds(connected)
            # No head-of-line blocking: a quick call overtakes a slow one.
            order: list[str] = []

            async def slow() -> None:
                await connected.session.call_tool(
                    "trigger-long-running-operation", {"duration": 2, "steps": 2}
                )
                order.append("slow")

            async def fast() -> None:
                await anyio.sleep(0.3)
                await connected.session.call_tool("get-sum", {"a": 1, "b": 2})
                order.append("fast")

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                tg.start_soon(fast)
            assert order == ["fast", "slow"]


def test_bridge_reports_a_lost_upstream_session_as_json_rpc(gateway: Gateway) -> None:
    """The server restarts and forgets the session: the client gets a JSON-RPC error naming
    it, never an HTML page or a hang."""
    gateway.write_policy(POLICY)
    port = free_port()
    with everything_http(gateway, "streamableHttp", port=port) as upstream:
        raw = RawSession(bridge_argv(gateway, upstream), stderr_path=gateway.new_log("bridge-raw"), env=gateway.env())
        try:
            raw.initialize()
            assert "result" in raw.request("tools/list")
        except BaseException:
            raw.close()
            raise
    try:
        with everything_http(gateway, "streamableHttp", port=port):
            answer = raw.request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
            assert answer["error"]["code"] == -31003, answer
            assert "session" in answer["error"]["message"]
            again = raw.request("ping")
            assert again["error"]["code"] == -31003
    finally:
        raw.close()
    assert raw.proc.returncode == 0
    assert DENY_PREFIX  # the module's policy constants stay shared with the stdio suite
