"""End-to-end tests of toolgate as a stdio MCP proxy, against real MCP servers and clients.

The servers are the reference ones (`server-everything`, `server-filesystem`, pinned in
package.json) plus a small Python SDK server that can be told to exit; the clients are the
Python `mcp` SDK, raw JSON-RPC lines, and the MCP Inspector CLI.

The `test_direct_*` tests talk to the servers without toolgate: they pin down the
reference behaviour the gateway tests compare against, and prove the harness works.
Everything else goes through the binary named by TOOLGATE_BIN (default
target/debug/toolgate) and fails, never skips, when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import MCPError

from toolgate_harness import (
    DENY_PREFIX,
    E2E_DIR,
    EXIT_TIMEOUT_S,
    Gateway,
    RawSession,
    avoid_window_edge,
    decision_meta,
    dump,
    everything_command,
    exit_server_command,
    filesystem_command,
    first_text,
    is_denial,
    read_pid,
    toolgate_bin,
    wait_until_dead,
    with_pidfile,
)

# --------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------

HIDDEN_TOOL = "get-env"

BASE_POLICY = """\
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

# The same policy after an edit: one more hidden tool, and echo switched off.
EDITED_POLICY = """\
version: "1"
default: allow
hide: [get-env, get-sum]
tools:
  echo:
    rules:
      - name: echo off
        action: deny
        on_deny: "Echo is switched off"
"""

FILESYSTEM_POLICY = """\
version: "1"
default: allow
tools:
  write_file:
    rules:
      - name: no writes
        action: deny
        on_deny: "Writing files is not allowed"
"""


def limit_policy(tool: str, rate: str, rule: str = "the limit") -> str:
    return f"""\
version: "1"
default: allow
tools:
  {tool}:
    rules:
      - name: {rule}
        rate_limit: {rate}
"""


def denial_text(message: str, rule: str) -> str:
    return f'{DENY_PREFIX} {message} (rule "{rule}"). The tool was not called.'


async def list_all_tools(session: Any) -> list[types.Tool]:
    """Every page of tools/list."""
    tools: list[types.Tool] = []
    cursor = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


# Client callbacks that record what reached them.


class Callbacks:
    def __init__(self, roots: list[Path] | None = None):
        self.sampling_requests: list[types.CreateMessageRequestParams] = []
        self.elicitation_requests: list[types.ElicitRequestParams] = []
        self.roots_requests = 0
        self.roots = roots or []

    async def sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampling_requests.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="a sampled answer from the client"),
            model="toolgate-e2e-model",
            stop_reason="endTurn",
        )

    async def elicitation(self, ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitation_requests.append(params)
        return types.ElicitResult(action="accept", content={"name": "Ada Lovelace"})

    async def list_roots(self, ctx: Any) -> types.ListRootsResult:
        self.roots_requests += 1
        return types.ListRootsResult(
            roots=[types.Root(uri=r.resolve().as_uri(), name=r.name) for r in self.roots]
        )

    def all(self) -> dict[str, Any]:
        return {"sampling": self.sampling, "elicitation": self.elicitation, "roots": self.list_roots}


async def wait_for_allowed_dir(session: Any, directory: Path, timeout: float = 10.0) -> str:
    """Polls server-filesystem until it reports `directory` as allowed."""
    text = ""
    with anyio.move_on_after(timeout):
        while True:
            text = first_text(await session.call_tool("list_allowed_directories", {}))
            if str(directory.resolve()) in text.splitlines():
                return text
            await anyio.sleep(0.2)
    raise AssertionError(f"{directory} never became an allowed directory; last answer: {text!r}")


# ======================================================================================
# Direct connections (no toolgate): the reference behaviour, and proof the harness works
# ======================================================================================


@pytest.mark.anyio
async def test_direct_everything_lists_tools_and_echoes(gateway: Gateway) -> None:
    async with gateway.direct() as c:
        assert c.init.capabilities.tools is not None
        names = [t.name for t in await list_all_tools(c.session)]
        for expected in ("echo", HIDDEN_TOOL, "get-sum", "get-tiny-image", "trigger-long-running-operation"):
            assert expected in names
        result = await c.session.call_tool("echo", {"message": "hello"})
        assert not result.is_error
        assert first_text(result) == "Echo: hello"


@pytest.mark.anyio
async def test_direct_sampling_elicitation_roots_and_progress(gateway: Gateway, tmp_path: Path) -> None:
    cb = Callbacks(roots=[tmp_path])
    async with gateway.direct(**cb.all()) as c:
        sampled = first_text(await c.session.call_tool("trigger-sampling-request", {"prompt": "ping"}))
        assert "toolgate-e2e-model" in sampled and "a sampled answer from the client" in sampled
        assert "ping" in json.dumps(dump(cb.sampling_requests[0]))

        elicited = await c.session.call_tool("trigger-elicitation-request", {})
        assert "- Name: Ada Lovelace" in "\n".join(first_text_blocks(elicited))
        assert len(cb.elicitation_requests) == 1

        roots = first_text(await c.session.call_tool("get-roots-list", {}))
        assert tmp_path.resolve().as_uri() in roots
        assert cb.roots_requests >= 1

        progress: list[tuple[float, float | None]] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append((p, total))

        done = await c.session.call_tool(
            "trigger-long-running-operation", {"duration": 0.6, "steps": 3}, progress_callback=on_progress
        )
        assert "completed" in first_text(done)
        assert progress == [(1, 3), (2, 3), (3, 3)]


def first_text_blocks(result: types.CallToolResult) -> list[str]:
    return [b.text for b in result.content if isinstance(b, types.TextContent)]


@pytest.mark.anyio
async def test_direct_filesystem_roots_and_write(gateway: Gateway, tmp_path: Path) -> None:
    start_dir, root_dir = tmp_path / "start", tmp_path / "root"
    start_dir.mkdir()
    root_dir.mkdir()
    cb = Callbacks(roots=[root_dir])
    async with gateway.direct(filesystem_command(start_dir), roots=cb.list_roots) as c:
        await wait_for_allowed_dir(c.session, root_dir)
        target = root_dir / "written.txt"
        result = await c.session.call_tool("write_file", {"path": str(target), "content": "data"})
        assert not result.is_error, dump(result)
        assert target.read_text() == "data"


@pytest.mark.anyio
async def test_direct_url_elicitation_error_path_is_a_jsonrpc_error(gateway: Gateway) -> None:
    """server-everything's one tools/call that fails with a JSON-RPC error, not isError."""
    cb = Callbacks()
    async with gateway.direct(elicitation=cb.elicitation) as c:
        with pytest.raises(MCPError) as err:
            await c.session.call_tool(
                "trigger-url-elicitation",
                {"url": "http://127.0.0.1:9/direct", "errorPath": True, "elicitationId": "direct-1"},
            )
        assert err.value.code == -32042


@pytest.mark.anyio
async def test_direct_bad_arguments_are_an_error_result(gateway: Gateway) -> None:
    async with gateway.direct() as c:
        result = await c.session.call_tool("echo", {"message": 5})
        assert result.is_error
        assert "Input validation error" in first_text(result)


@pytest.mark.anyio
async def test_direct_cancellation_keeps_session_usable(gateway: Gateway) -> None:
    async with gateway.direct() as c:
        await cancel_after_first_progress(c.session)
        assert first_text(await c.session.call_tool("echo", {"message": "after"})) == "Echo: after"


def test_direct_raw_session_sees_exit_status(gateway: Gateway) -> None:
    raw = RawSession(exit_server_command(), stderr_path=gateway.new_log("exit-server"))
    try:
        raw.initialize()
        response = raw.request("tools/call", {"name": "exit_after", "arguments": {"code": 7, "delay": 0.2}})
        assert "result" in response, response
        assert raw.wait() == 7
    finally:
        raw.close()


def test_direct_inspector_cli_lists_tools(gateway: Gateway) -> None:
    names = inspector_tool_names(gateway, everything_command())
    assert "echo" in names and HIDDEN_TOOL in names


# ======================================================================================
# Through toolgate
# ======================================================================================

needs_gateway = pytest.mark.gateway


# -- the CLI ---------------------------------------------------------------------------


@needs_gateway
def test_toolgate_binary_is_present() -> None:
    assert toolgate_bin().is_file()


@needs_gateway
def test_validate_accepts_a_good_policy(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    run = gateway.run_cli("validate", "-c", gateway.policy_path.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Policy file is valid." in run.stdout


@needs_gateway
def test_validate_reports_every_error_with_file_line_col(gateway: Gateway) -> None:
    bad = gateway.write_policy(
        """\
version: "1"
default: allow
tools:
  echo:
    rules:
      - name: echo limit
        rate_limit: lots/minute
      - name: explode
        action: explode
""",
        gateway.dir / "bad-policy.yaml",
    )
    run = gateway.run_cli("validate", "-c", bad.name)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Policy file is valid." not in output
    assert re.search(r"bad-policy\.yaml:7:\d+", output), output
    assert re.search(r"bad-policy\.yaml:9:\d+", output), output


# -- what the client sees ----------------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_initialize_advertises_tools_list_changed(gateway: Gateway) -> None:
    """Even when the server does not: the gateway itself may change the list on reload."""
    gateway.write_policy(BASE_POLICY)
    async with gateway.direct(exit_server_command()) as direct:
        assert not (direct.init.capabilities.tools and direct.init.capabilities.tools.list_changed)
    async with gateway.session(exit_server_command()) as c:
        assert c.init.capabilities.tools is not None
        assert c.init.capabilities.tools.list_changed is True


@needs_gateway
@pytest.mark.anyio
async def test_tools_list_omits_hidden_tools_and_keeps_the_rest_verbatim(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    async with gateway.direct() as d:
        direct_tools = {t.name: dump(t) for t in await list_all_tools(d.session)}
    async with gateway.session() as c:
        gated_tools = {t.name: dump(t) for t in await list_all_tools(c.session)}
    assert HIDDEN_TOOL in direct_tools
    assert HIDDEN_TOOL not in gated_tools
    expected = {name: tool for name, tool in direct_tools.items() if name != HIDDEN_TOOL}
    assert gated_tools == expected


@needs_gateway
@pytest.mark.anyio
async def test_calling_a_hidden_tool_is_an_unknown_tool_error(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    async with gateway.session() as c:
        with pytest.raises(MCPError) as err:
            await c.session.call_tool(HIDDEN_TOOL, {})
        assert err.value.code == -32602
        assert err.value.message == f"Unknown tool: {HIDDEN_TOOL}"
        # The session is still fine.
        assert first_text(await c.session.call_tool("echo", {"message": "still here"})) == "Echo: still here"


@needs_gateway
@pytest.mark.anyio
async def test_allowed_call_returns_exactly_what_the_server_returns(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    async with gateway.direct() as d:
        direct_echo = dump(await d.session.call_tool("echo", {"message": "same bytes ✓"}))
        direct_sum = dump(await d.session.call_tool("get-structured-content", {"location": "New York"}))
    async with gateway.session() as c:
        gated_echo = dump(await c.session.call_tool("echo", {"message": "same bytes ✓"}))
        gated_sum = dump(await c.session.call_tool("get-structured-content", {"location": "New York"}))
    assert gated_echo == direct_echo
    assert gated_sum == direct_sum


@needs_gateway
@pytest.mark.anyio
async def test_denied_call_is_an_error_result_with_the_rules_message(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    async with gateway.session() as c:
        result = await c.session.call_tool("get-tiny-image", {})
    wire = dump(result)
    assert result.is_error is True
    assert wire["content"] == [
        {"type": "text", "text": denial_text("Images are not allowed here", "no images")}
    ]
    decision = decision_meta(result)
    assert decision["decision"] == "deny"
    assert decision["rule"] == "no images"


@needs_gateway
@pytest.mark.anyio
async def test_denied_write_on_filesystem_server_creates_no_file(gateway: Gateway, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    (root / "existing.txt").write_text("kept")
    gateway.write_policy(FILESYSTEM_POLICY)
    async with gateway.session(filesystem_command(root)) as c:
        target = root / "new.txt"
        result = await c.session.call_tool("write_file", {"path": str(target), "content": "should not exist"})
        assert is_denial(result), dump(result)
        assert first_text(result) == denial_text("Writing files is not allowed", "no writes")
        overwrite = await c.session.call_tool("write_file", {"path": str(root / "existing.txt"), "content": "x"})
        assert is_denial(overwrite)
        # Reads are still allowed.
        listing = await c.session.call_tool("list_directory", {"path": str(root)})
        assert not listing.is_error and "existing.txt" in first_text(listing)
    assert not target.exists()
    assert (root / "existing.txt").read_text() == "kept"


# -- rate limits and state ----------------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_rate_limit_allows_exactly_three_per_minute(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    await avoid_window_edge(60, margin_s=20)
    async with gateway.session() as c:
        for i in range(3):
            result = await c.session.call_tool("echo", {"message": f"call {i}"})
            assert not result.is_error, dump(result)
            assert first_text(result) == f"Echo: call {i}"
        for _ in range(2):
            denied = await c.session.call_tool("echo", {"message": "one too many"})
            assert is_denial(denied), dump(denied)
            assert '(rule "echo limit")' in first_text(denied)
            decision = decision_meta(denied)
            assert decision["decision"] == "deny" and decision["rule"] == "echo limit"
            assert decision.get("retry_after_ms", 0) > 0
        # Other tools are not limited by echo's rule.
        assert not (await c.session.call_tool("get-sum", {"a": 1, "b": 2})).is_error


@needs_gateway
@pytest.mark.anyio
async def test_sqlite_state_survives_a_restart(gateway: Gateway, tmp_path: Path) -> None:
    gateway.write_policy(limit_policy("echo", "3/hour", "hourly echo"))
    dsn = f"sqlite:{tmp_path / 'counters.db'}"
    await avoid_window_edge(3600, margin_s=60)
    async with gateway.session(state_dsn=dsn) as c:
        for i in range(2):
            assert not (await c.session.call_tool("echo", {"message": f"first run {i}"})).is_error
    assert (tmp_path / "counters.db").exists()
    async with gateway.session(state_dsn=dsn) as c:
        assert not (await c.session.call_tool("echo", {"message": "second run"})).is_error
        denied = await c.session.call_tool("echo", {"message": "fourth overall"})
        assert is_denial(denied), dump(denied)
        assert '(rule "hourly echo")' in first_text(denied)


@needs_gateway
@pytest.mark.anyio
async def test_two_gateways_sharing_sqlite_allow_exactly_n_in_total(gateway: Gateway, tmp_path: Path) -> None:
    limit, calls_each = 5, 8
    gateway.write_policy(limit_policy("echo", f"{limit}/hour", "shared echo"))
    dsn = f"sqlite:{tmp_path / 'shared.db'}"
    await avoid_window_edge(3600, margin_s=60)
    results: list[types.CallToolResult] = []

    async with AsyncExitStack() as stack:
        sessions = []
        for _ in range(2):
            sessions.append((await stack.enter_async_context(gateway.session(state_dsn=dsn))).session)

        async def call(session: Any, i: int) -> None:
            results.append(await session.call_tool("echo", {"message": f"concurrent {i}"}))

        async with anyio.create_task_group() as tg:
            for s_index, session in enumerate(sessions):
                for i in range(calls_each):
                    tg.start_soon(call, session, s_index * 100 + i)

    allowed = [r for r in results if not r.is_error]
    denied = [r for r in results if is_denial(r)]
    assert len(results) == 2 * calls_each
    assert len(allowed) == limit, [dump(r) for r in results]
    assert len(denied) == 2 * calls_each - limit
    assert all(first_text(r).startswith("Echo: concurrent ") for r in allowed)


@needs_gateway
@pytest.mark.anyio
async def test_upstream_jsonrpc_error_does_not_consume_quota(gateway: Gateway) -> None:
    gateway.write_policy(limit_policy("trigger-url-elicitation", "1/minute", "one url"))
    cb = Callbacks()
    await avoid_window_edge(60, margin_s=20)
    async with gateway.session(elicitation=cb.elicitation) as c:
        # A JSON-RPC error from the server (-32042): rolled back, so the quota is intact.
        with pytest.raises(MCPError) as err:
            await c.session.call_tool(
                "trigger-url-elicitation",
                {"url": "http://127.0.0.1:9/first", "errorPath": True, "elicitationId": "gw-1"},
            )
        assert err.value.code == -32042
        ok = await c.session.call_tool(
            "trigger-url-elicitation", {"url": "http://127.0.0.1:9/second", "elicitationId": "gw-2"}
        )
        assert not ok.is_error, dump(ok)
        assert "completed the URL elicitation" in first_text(ok)
        denied = await c.session.call_tool(
            "trigger-url-elicitation", {"url": "http://127.0.0.1:9/third", "elicitationId": "gw-3"}
        )
        assert is_denial(denied), dump(denied)


@needs_gateway
@pytest.mark.anyio
async def test_upstream_is_error_result_counts_by_default(gateway: Gateway) -> None:
    gateway.write_policy(limit_policy("echo", "1/minute", "one echo"))
    await avoid_window_edge(60, margin_s=20)
    async with gateway.session() as c:
        failed = await c.session.call_tool("echo", {"message": 5})
        assert failed.is_error and not is_denial(failed), dump(failed)
        denied = await c.session.call_tool("echo", {"message": "now over"})
        assert is_denial(denied), dump(denied)


# -- hot reload --------------------------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_policy_edit_applies_to_the_next_call_and_notifies_list_changed(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    async with gateway.session() as c:
        await c.recorder.settle()
        assert "get-sum" in [t.name for t in await list_all_tools(c.session)]
        assert first_text(await c.session.call_tool("echo", {"message": "before"})) == "Echo: before"
        seen = c.recorder.count(types.ToolListChangedNotification)

        gateway.write_policy(EDITED_POLICY)
        assert await c.recorder.wait_for(types.ToolListChangedNotification, more_than=seen, timeout=10), (
            "no notifications/tools/list_changed after the policy edit"
        )

        denied = await c.session.call_tool("echo", {"message": "after"})
        assert first_text(denied) == denial_text("Echo is switched off", "echo off")
        names = [t.name for t in await list_all_tools(c.session)]
        assert "get-sum" not in names and HIDDEN_TOOL not in names and "echo" in names
        with pytest.raises(MCPError) as err:
            await c.session.call_tool("get-sum", {"a": 1, "b": 2})
        assert err.value.code == -32602


@needs_gateway
@pytest.mark.anyio
@pytest.mark.parametrize(
    "broken",
    [
        pytest.param('version: "1"\ndefault: allow\nhide: [get-env\ntools: {\n', id="yaml-syntax"),
        pytest.param(
            'version: "1"\ndefault: allow\ntools:\n  echo:\n    rules:\n      - name: x\n        action: explode\n',
            id="invalid-rule",
        ),
    ],
)
async def test_invalid_policy_edit_changes_nothing(gateway: Gateway, broken: str) -> None:
    gateway.write_policy(BASE_POLICY)
    async with gateway.session() as c:
        await c.recorder.settle()
        names_before = [t.name for t in await list_all_tools(c.session)]
        seen = c.recorder.count(types.ToolListChangedNotification)

        gateway.write_policy(broken)
        assert not await c.recorder.wait_for(types.ToolListChangedNotification, more_than=seen, timeout=3)

        assert [t.name for t in await list_all_tools(c.session)] == names_before
        assert first_text(await c.session.call_tool("echo", {"message": "unchanged"})) == "Echo: unchanged"
        assert is_denial(await c.session.call_tool("get-tiny-image", {}))
        with pytest.raises(MCPError):
            await c.session.call_tool(HIDDEN_TOOL, {})

        # The watcher survived the bad edit: a good one still takes effect.
        gateway.write_policy(EDITED_POLICY)
        assert await c.recorder.wait_for(types.ToolListChangedNotification, more_than=seen, timeout=10)
        assert is_denial(await c.session.call_tool("echo", {"message": "now off"}))


# -- everything else passes through --------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_sampling_request_reaches_the_client_and_the_answer_the_server(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    cb = Callbacks()
    async with gateway.session(sampling=cb.sampling) as c:
        result = await c.session.call_tool("trigger-sampling-request", {"prompt": "via the gateway"})
    assert len(cb.sampling_requests) == 1
    assert "via the gateway" in json.dumps(dump(cb.sampling_requests[0]))
    text = first_text(result)
    assert "toolgate-e2e-model" in text and "a sampled answer from the client" in text


@needs_gateway
@pytest.mark.anyio
async def test_elicitation_request_reaches_the_client_and_the_answer_the_server(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    cb = Callbacks()
    async with gateway.session(elicitation=cb.elicitation) as c:
        result = await c.session.call_tool("trigger-elicitation-request", {})
    assert len(cb.elicitation_requests) == 1
    assert cb.elicitation_requests[0].message.startswith("Please provide inputs")
    assert "- Name: Ada Lovelace" in "\n".join(first_text_blocks(result))


@needs_gateway
@pytest.mark.anyio
async def test_roots_request_from_filesystem_server_is_answered(gateway: Gateway, tmp_path: Path) -> None:
    start_dir, root_dir = tmp_path / "start", tmp_path / "root"
    start_dir.mkdir()
    root_dir.mkdir()
    gateway.write_policy(FILESYSTEM_POLICY)
    cb = Callbacks(roots=[root_dir])
    async with gateway.session(filesystem_command(start_dir), roots=cb.list_roots) as c:
        text = await wait_for_allowed_dir(c.session, root_dir)
        assert str(start_dir.resolve()) not in text.splitlines()
    assert cb.roots_requests >= 1


@needs_gateway
@pytest.mark.anyio
async def test_progress_notifications_arrive(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    progress: list[tuple[float, float | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total))

    async with gateway.session() as c:
        done = await c.session.call_tool(
            "trigger-long-running-operation", {"duration": 0.6, "steps": 3}, progress_callback=on_progress
        )
    assert "completed" in first_text(done)
    assert progress == [(1, 3), (2, 3), (3, 3)]


async def cancel_after_first_progress(session: Any) -> None:
    """Starts a long operation, cancels it once it reports progress, and lets the cancel land."""
    started = anyio.Event()

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        started.set()

    async with anyio.create_task_group() as tg:

        async def long_call() -> None:
            await session.call_tool(
                "trigger-long-running-operation", {"duration": 30, "steps": 60}, progress_callback=on_progress
            )
            raise AssertionError("the long call finished instead of being cancelled")

        tg.start_soon(long_call)
        with anyio.fail_after(10):
            await started.wait()
        tg.cancel_scope.cancel()
    await anyio.sleep(0.3)  # notifications/cancelled is on its way before the next request


@needs_gateway
@pytest.mark.anyio
async def test_cancelled_call_still_counts_and_the_session_goes_on(gateway: Gateway) -> None:
    """A call cancelled after it was forwarded may have run on the server, so it keeps its
    quota (test_bypasses.py checks three such calls against one limit); the session stays
    usable after the cancellation."""
    gateway.write_policy(limit_policy("trigger-long-running-operation", "1/minute", "one long op"))
    short_op = {"duration": 0.2, "steps": 1}
    await avoid_window_edge(60, margin_s=30)
    async with gateway.session() as c:
        await cancel_after_first_progress(c.session)
        assert is_denial(await c.session.call_tool("trigger-long-running-operation", short_op))
        assert first_text(await c.session.call_tool("echo", {"message": "ok"})) == "Echo: ok"


# -- process lifecycle (raw pipes) ------------------------------------------------------------


@needs_gateway
def test_server_exit_fails_in_flight_calls_and_toolgate_exits_with_its_status(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    raw = gateway.raw(exit_server_command())
    try:
        raw.initialize()
        in_flight = raw.send_request("tools/call", {"name": "sleep", "arguments": {"seconds": 30}})
        trigger = raw.request("tools/call", {"name": "exit_after", "arguments": {"code": 7, "delay": 0.5}})
        assert "result" in trigger, trigger
        failed = raw.response_to(in_flight, timeout=10)
        assert "error" in failed, f"in-flight call should get a JSON-RPC error, got {failed}"
        assert raw.wait(EXIT_TIMEOUT_S) == 7
    finally:
        raw.close()


@needs_gateway
def test_killed_server_fails_in_flight_calls_and_toolgate_exits(gateway: Gateway, tmp_path: Path) -> None:
    gateway.write_policy(BASE_POLICY)
    pidfile = tmp_path / "server.pid"
    raw = gateway.raw(with_pidfile(everything_command(), pidfile))
    try:
        raw.initialize()
        server_pid = read_pid(pidfile)
        in_flight = raw.send_request(
            "tools/call", {"name": "trigger-long-running-operation", "arguments": {"duration": 30, "steps": 3}}
        )
        assert raw.request("ping")["result"] == {}
        os.kill(server_pid, signal.SIGKILL)
        failed = raw.response_to(in_flight, timeout=10)
        assert "error" in failed, f"in-flight call should get a JSON-RPC error, got {failed}"
        status = raw.wait(EXIT_TIMEOUT_S)
        assert status in (128 + signal.SIGKILL, -signal.SIGKILL), f"toolgate exit status {status}"
    finally:
        raw.close()


@needs_gateway
def test_closing_stdin_shuts_down_toolgate_and_server(gateway: Gateway, tmp_path: Path) -> None:
    gateway.write_policy(BASE_POLICY)
    pidfile = tmp_path / "server.pid"
    raw = gateway.raw(with_pidfile(everything_command(), pidfile))
    try:
        raw.initialize()
        server_pid = read_pid(pidfile)
        assert raw.request("ping")["result"] == {}
        raw.close_stdin()
        assert raw.wait(5.0) == 0, "toolgate did not exit cleanly within 5s of stdin closing"
        assert wait_until_dead(server_pid, 5.0), "the server outlived toolgate"
    finally:
        raw.close()


# -- malformed input (raw pipes) ---------------------------------------------------------------

MALFORMED_TIMEOUT_S = 5.0


def assert_error(response: dict[str, Any], code: int) -> None:
    assert "error" in response, response
    assert response["error"]["code"] == code, response
    assert response.get("jsonrpc") == "2.0", response


def assert_still_working(raw: Any) -> None:
    assert raw.request("ping")["result"] == {}
    response = raw.request("tools/call", {"name": "echo", "arguments": {"message": "alive"}})
    assert response["result"]["content"][0]["text"] == "Echo: alive", response


@needs_gateway
def test_malformed_json_line_gets_a_parse_error(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    raw = gateway.raw()
    try:
        raw.initialize()
        raw.send_line("{bad json")
        response = raw.next_response(MALFORMED_TIMEOUT_S)
        assert_error(response, -32700)
        assert response.get("id") is None
        assert_still_working(raw)
    finally:
        raw.close()


@needs_gateway
def test_a_message_larger_than_a_pipes_backlog_does_not_stall_the_next(gateway: Gateway) -> None:
    """A 9 MiB call and a small one in one write: the gateway reads them in one burst, and
    must send the first on before the second instead of waiting for room only it can make."""
    gateway.write_policy(BASE_POLICY)
    raw = gateway.raw()
    try:
        raw.initialize()
        big = "x" * (9 * 1024 * 1024)
        first, second = raw.new_id(), raw.new_id()
        lines = [
            {"jsonrpc": "2.0", "id": first, "method": "tools/call",
             "params": {"name": "echo", "arguments": {"message": big}}},
            {"jsonrpc": "2.0", "id": second, "method": "tools/call",
             "params": {"name": "echo", "arguments": {"message": "small"}}},
        ]
        raw.send_line("\n".join(json.dumps(line, separators=(",", ":")) for line in lines))
        answer = raw.response_to(first, timeout=30)
        assert answer["result"]["content"][0]["text"] == "Echo: " + big
        answer = raw.response_to(second, timeout=30)
        assert answer["result"]["content"][0]["text"] == "Echo: small"
    finally:
        raw.close()


@needs_gateway
def test_batch_is_rejected_as_invalid_request(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    raw = gateway.raw()
    try:
        raw.initialize(protocol_version="2025-06-18")
        raw.send_line(
            '[{"jsonrpc":"2.0","id":501,"method":"ping"},'
            '{"jsonrpc":"2.0","id":502,"method":"tools/call","params":{"name":"get-env","arguments":{}}}]'
        )
        response = raw.next_response(MALFORMED_TIMEOUT_S)
        assert_error(response, -32600)
        assert_still_working(raw)
        # Neither element was carried out.
        assert all(r.get("id") not in (501, 502) for r in raw.unclaimed_responses)
    finally:
        raw.close()


@needs_gateway
def test_duplicate_key_in_envelope_is_rejected(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    raw = gateway.raw()
    try:
        raw.initialize()
        raw.send_line('{"jsonrpc":"2.0","id":601,"id":602,"method":"ping"}')
        assert_error(raw.next_response(MALFORMED_TIMEOUT_S), -32600)
        raw.send_line(
            '{"jsonrpc":"2.0","id":603,"method":"tools/call","method":"ping",'
            '"params":{"name":"get-env","arguments":{}}}'
        )
        assert_error(raw.next_response(MALFORMED_TIMEOUT_S), -32600)
        assert_still_working(raw)
    finally:
        raw.close()


@needs_gateway
def test_duplicate_key_in_tool_call_params_is_rejected(gateway: Gateway) -> None:
    """`name` twice must not let a hidden tool through on a parser differential."""
    gateway.write_policy(BASE_POLICY)
    raw = gateway.raw()
    try:
        raw.initialize()
        raw.send_line(
            '{"jsonrpc":"2.0","id":701,"method":"tools/call",'
            '"params":{"name":"echo","name":"get-env","arguments":{"message":"x"}}}'
        )
        response = raw.next_response(MALFORMED_TIMEOUT_S)
        assert_error(response, -32600)
        assert "result" not in response
        assert_still_working(raw)
    finally:
        raw.close()


# -- MCP Inspector CLI ------------------------------------------------------------------------


def inspector_tool_names(gateway: Gateway, server_argv: list[str]) -> list[str]:
    """`mcp-inspector --cli --method tools/list -- <server argv>`.

    Runs the package's `mcp-inspector` bin from tests/e2e/node_modules/.bin, which is what
    `npx mcp-inspector` resolves to there, without npm's own start-up and registry checks.
    """
    inspector = E2E_DIR / "node_modules" / ".bin" / "mcp-inspector"
    assert inspector.exists(), f"{inspector} is missing: run `npm ci` in tests/e2e"
    env = gateway.env()
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"
    run = subprocess.run(
        [str(inspector), "--cli", "--method", "tools/list", "--", *server_argv],
        cwd=E2E_DIR,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, f"inspector failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    try:
        listing = json.loads(run.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"inspector printed no JSON:\n{run.stdout}\n{run.stderr}") from e
    return [t["name"] for t in listing["tools"]]


@needs_gateway
def test_inspector_cli_lists_tools_through_toolgate_minus_hidden(gateway: Gateway) -> None:
    gateway.write_policy(BASE_POLICY)
    direct = inspector_tool_names(gateway, everything_command())
    gated = inspector_tool_names(gateway, gateway.argv(everything_command()))
    assert HIDDEN_TOOL in direct
    assert gated == [name for name in direct if name != HIDDEN_TOOL]
