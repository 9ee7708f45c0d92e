"""Many servers behind one gateway (docs/GATEWAY.md): a gateway config puts the real
filesystem, memory and everything servers (and a paging fixture) behind one toolgate over
stdio, each with its own policy, and a gateway-wide policy over all of them. Driven by the
Python `mcp` SDK and the MCP inspector CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import MCPError

from http_harness import URL_LINE, env_without_proxies, http_session, stop
from toolgate_harness import (
    E2E_DIR,
    dump,
    MCP_PACKAGES,
    Gateway,
    everything_command,
    filesystem_command,
    first_text,
    is_denial,
    mcp_session,
    node_bin,
    toolgate_bin,
)

PAGING_SERVER_PY = E2E_DIR / "servers" / "paging_server.py"
MEMORY_JS = MCP_PACKAGES / "server-memory" / "dist" / "index.js"


def write_config(gateway: Gateway, servers: dict[str, dict[str, Any]], **top: Any) -> Path:
    """A gateway config (JSON is YAML) beside the test's policies."""
    path = gateway.dir / "gateway.yaml"
    path.write_text(json.dumps({"version": "1", "servers": servers, **top}, indent=2))
    return path


def paging_server(stem: str, tools: int = 9, page: int = 3) -> dict[str, Any]:
    return {
        "command": [sys.executable, str(PAGING_SERVER_PY)],
        "env": {"PAGING_NAME": stem, "PAGING_TOOLS": str(tools), "PAGING_PAGE": str(page)},
    }


def session(gateway: Gateway, config: Path, **callbacks: Any):
    argv = [
        str(toolgate_bin()), "-c", str(config), "--state-dsn", "memory:",
        "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir),
        "--log-level", "debug",
    ]
    return mcp_session(argv, stderr_path=gateway.new_log("gateway"), env=gateway.env(), **callbacks)


async def all_tools(client: Any) -> tuple[list[str], int]:
    """Every tool name across pages, and the number of pages."""
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        result = await client.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        pages += 1
        names += [t.name for t in result.tools]
        cursor = result.next_cursor
        if not cursor:
            return names, pages
        assert pages < 50, "the gateway's cursors never end"


@pytest.mark.anyio
async def test_real_servers_behind_one_gateway_each_under_its_own_policy(gateway: Gateway, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "readme.txt").write_text("hello from files")
    gateway.write_policy(
        'version: "1"\ntools:\n  write_file:\n    rules:\n      - name: read only\n        action: deny\n'
        '        message: "the docs are read-only"\n',
        gateway.dir / "files.yaml",
    )
    gateway.write_policy(
        'version: "1"\ntools:\n  memory__delete_entities:\n    rules:\n      - name: keep memories\n'
        '        action: deny\n        message: "nobody forgets"\n',
        gateway.dir / "everyone.yaml",
    )
    config = write_config(
        gateway,
        {
            "files": {"command": filesystem_command(docs), "policy": "files.yaml"},
            "memory": {
                "command": [node_bin(), str(MEMORY_JS)],
                "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")},
            },
            "everything": {"command": everything_command()},
        },
        policy="everyone.yaml",
    )
    async with session(gateway, config) as c:
        client = c.session
        assert c.init.server_info.name == "toolgate"
        names, _ = await all_tools(client)
        assert {"files__read_text_file", "files__write_file", "memory__create_entities", "everything__echo"} <= set(names)
        assert all("__" in n for n in names), names

        # The files server's own policy, written with its own names, refuses its write...
        refused = await client.call_tool("files__write_file", {"path": str(docs / "x.txt"), "content": "x"})
        assert is_denial(refused) and "read-only" in first_text(refused)
        assert not (docs / "x.txt").exists()
        read = await client.call_tool("files__read_text_file", {"path": str(docs / "readme.txt")})
        assert "hello from files" in first_text(read)

        # ...and touches no other server's tools.
        created = await client.call_tool(
            "memory__create_entities",
            {"entities": [{"name": "toolgate", "entityType": "project", "observations": ["gateway"]}]},
        )
        assert not created.is_error, first_text(created)
        # The gateway-wide policy sees aggregated names and applies to every server.
        forgotten = await client.call_tool("memory__delete_entities", {"entityNames": ["toolgate"]})
        assert is_denial(forgotten) and "nobody forgets" in first_text(forgotten)
        graph = await client.call_tool("memory__read_graph", {})
        assert "toolgate" in first_text(graph)

        echo = await client.call_tool("everything__echo", {"message": "hi"})
        assert first_text(echo) == "Echo: hi"
        with pytest.raises(MCPError, match="Unknown tool: nowhere__echo"):
            await client.call_tool("nowhere__echo", {"message": "hi"})

        prompts = await client.list_prompts()
        assert any(p.name.startswith("everything__") for p in prompts.prompts)
        prompt = next(p for p in prompts.prompts if p.name == "everything__simple-prompt")
        got = await client.get_prompt(prompt.name)
        assert got.messages

        resources = await client.list_resources()
        uris = [str(r.uri) for r in resources.resources]
        assert "memory://knowledge-graph" in uris or any(u.startswith("demo://") for u in uris)
        demo = next(u for u in uris if u.startswith("demo://"))
        read_back = await client.read_resource(demo)
        assert read_back.contents

    events = gateway.wait_for_audit(lambda e: e.get("tool") == "delete_entities" or e.get("tool") == "memory__delete_entities")
    decisions = [e for e in events if e.get("event") == "decision"]
    write = next(e for e in decisions if e.get("tool") == "write_file")
    assert write["server"] == "files" and write["decision"] == "deny"
    echo_line = next(e for e in decisions if e.get("tool") == "echo")
    assert echo_line["server"] == "everything"
    gate = next(e for e in decisions if e.get("tool") == "memory__delete_entities")
    assert "server" not in gate and gate["decision"] == "deny"
    health = {e["server"] for e in events if e.get("event") == "server_health" and e.get("up")}
    assert health == {"files", "memory", "everything"}


@pytest.mark.anyio
async def test_pages_of_three_servers_merge_without_loss_or_repeat(gateway: Gateway) -> None:
    config = write_config(gateway, {"a": paging_server("alpha"), "b": paging_server("beta"), "c": paging_server("gamma")})
    async with session(gateway, config) as c:
        names, pages = await all_tools(c.session)
        # 10 tools each (9 and `crash`), 3 per page: 4 pages, each server in turn.
        assert pages == 4
        assert len(names) == len(set(names)) == 30
        for server, stem in (("a", "alpha"), ("b", "beta"), ("c", "gamma")):
            assert {f"{server}__{stem}_{i}" for i in range(9)} | {f"{server}__crash"} <= set(names)
        with pytest.raises(MCPError, match="cursor"):
            await c.session.list_tools(params=types.PaginatedRequestParams(cursor="forged"))
        result = await c.session.call_tool("b__beta_4", {})
        assert first_text(result) == "beta: beta_4"


@pytest.mark.anyio
async def test_a_crashed_server_loses_only_its_tools_and_comes_back(gateway: Gateway) -> None:
    config = write_config(
        gateway,
        {
            "a": paging_server("alpha", tools=2, page=10),
            "b": paging_server("beta", tools=2, page=10),
            "c": {**paging_server("gamma", tools=2, page=10), "restart": "never"},
        },
    )
    async with session(gateway, config) as c:
        names, _ = await all_tools(c.session)
        assert {"a__alpha_0", "b__beta_0", "c__gamma_0"} <= set(names)

        # `c` is not restarted: its tools leave the listing and calls to it are refused
        # with its name; the others answer as before.
        changes = c.recorder.count(types.ToolListChangedNotification)
        await c.session.call_tool("c__crash", {})
        assert await c.recorder.wait_for(types.ToolListChangedNotification, more_than=changes)
        names, _ = await all_tools(c.session)
        assert not any(n.startswith("c__") for n in names)
        assert {"a__alpha_0", "b__beta_0"} <= set(names)
        with pytest.raises(MCPError, match='server "c" is not available: The server exited \\(code 3\\)'):
            await c.session.call_tool("c__gamma_0", {})
        assert first_text(await c.session.call_tool("b__beta_1", {})) == "beta: beta_1"

        # `a` is restarted (on-failure, after half a second) and listed again.
        changes = c.recorder.count(types.ToolListChangedNotification)
        await c.session.call_tool("a__crash", {})
        assert await c.recorder.wait_for(types.ToolListChangedNotification, more_than=changes)
        with anyio.fail_after(15):
            while True:
                names, _ = await all_tools(c.session)
                if "a__alpha_0" in names:
                    break
                await anyio.sleep(0.2)
        assert first_text(await c.session.call_tool("a__alpha_1", {})) == "alpha: alpha_1"
        assert not any(n.startswith("c__") for n in names)
    events = gateway.wait_for_audit(lambda e: e.get("event") == "server_health" and e.get("server") == "a" and not e.get("up"))
    down = {e["server"]: e for e in events if e.get("event") == "server_health" and not e.get("up")}
    assert set(down) == {"a", "c"} and "code 3" in down["c"]["reason"]
    ups = [e["server"] for e in events if e.get("event") == "server_health" and e.get("up")]
    assert ups.count("a") == 2 and ups.count("c") == 1


def test_the_inspector_cli_lists_every_server(gateway: Gateway) -> None:
    config = write_config(gateway, {"a": paging_server("alpha"), "everything": {"command": everything_command()}})
    inspector = E2E_DIR / "node_modules" / ".bin" / "mcp-inspector"
    argv = [
        str(toolgate_bin()), "-c", str(config), "--state-dsn", "memory:",
        "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir),
    ]
    run = subprocess.run(
        [str(inspector), "--cli", *argv, "--method", "tools/list"],
        capture_output=True, text=True, timeout=90, env=gateway.env(), cwd=gateway.dir,
    )
    assert run.returncode == 0, f"inspector failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    names = [t["name"] for t in json.loads(run.stdout)["tools"]]
    assert "a__alpha_0" in names and "everything__echo" in names


def test_validate_reports_every_config_problem_with_its_place(gateway: Gateway) -> None:
    config = gateway.dir / "gateway.yaml"
    config.write_text(
        'version: "1"\n'
        "servers:\n"
        "  Files:\n"
        "    command: [node, x.js]\n"
        "  memory:\n"
        "    command: [node, m.js]\n"
        "    polcy: p.yaml\n"
        "  gh:\n"
        '    url: "https://example.invalid/mcp"\n'
        '    headers: {Authorization: "Bearer ${TOOLGATE_E2E_UNSET_TOKEN}"}\n'
    )
    run = gateway.run_cli("validate", "-c", str(config))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "gateway.yaml:3:3" in run.stdout and "cannot name a server" in run.stdout
    assert "gateway.yaml:7:5" in run.stdout and 'did you mean `policy`' in run.stdout
    assert "gateway.yaml:10:" in run.stdout and "TOOLGATE_E2E_UNSET_TOKEN is not set" in run.stdout

    config.write_text('version: "1"\nservers:\n  memory:\n    command: [node, m.js]\n    policy: missing.yaml\n')
    run = gateway.run_cli("validate", "-c", str(config))
    assert run.returncode == 1
    assert "gateway.yaml:5:13" in run.stdout and "missing.yaml" in run.stdout

    (gateway.dir / "bad.yaml").write_text('version: "1"\ntools:\n  x:\n    rules:\n      - action: explode\n')
    config.write_text('version: "1"\nservers:\n  memory:\n    command: [node, m.js]\n    policy: bad.yaml\n')
    run = gateway.run_cli("validate", "-c", str(config))
    assert run.returncode == 1 and "bad.yaml:5:" in run.stdout

    (gateway.dir / "ok.yaml").write_text('version: "1"\ntools: {}\n')
    config.write_text('version: "1"\nservers:\n  memory:\n    command: [node, m.js]\n    policy: ok.yaml\n')
    run = gateway.run_cli("validate", "-c", str(config))
    assert run.returncode == 0 and "1 servers (memory)" in run.stdout

    # A gateway config never starts with servers after `--`.
    started = gateway.run_cli("-c", str(config), "--", "node", "x.js")
    assert started.returncode != 0 and "names its servers itself" in started.stderr


@pytest.mark.anyio
async def test_a_call_a_server_policy_refuses_costs_no_gateway_wide_quota(gateway: Gateway) -> None:
    """Both policies must pass, and deny wins: a call the server's own policy refuses gives
    back what the gateway-wide policy reserved for it, so refusals never use up its limits."""
    gateway.write_policy(
        'version: "1"\ntools:\n  "*":\n    rules:\n      - name: all calls\n        rate_limit: 2/hour\n',
        gateway.dir / "everyone.yaml",
    )
    gateway.write_policy(
        'version: "1"\ntools:\n  alpha_0:\n    rules:\n      - name: never\n        action: deny\n',
        gateway.dir / "a.yaml",
    )
    config = write_config(
        gateway, {"a": {**paging_server("alpha", tools=2, page=10), "policy": "a.yaml"}}, policy="everyone.yaml"
    )
    async with session(gateway, config) as c:
        for _ in range(4):
            refused = await c.session.call_tool("a__alpha_0", {})
            assert is_denial(refused) and '"never"' in first_text(refused)
        # Four refusals later, the two calls an hour are all still there.
        for _ in range(2):
            assert first_text(await c.session.call_tool("a__alpha_1", {})) == "alpha: alpha_1"
        limited = await c.session.call_tool("a__alpha_1", {})
        assert is_denial(limited) and "all calls" in first_text(limited)
    events = gateway.wait_for_audit(lambda e: e.get("outcome") == "refused_downstream")
    front = [e for e in events if e.get("event") == "decision" and "server" not in e]
    assert [e["outcome"] for e in front if e["tool"] == "a__alpha_0"] == ["refused_downstream"] * 4


INIT_FIXTURES = E2E_DIR / "fixtures" / "init"


def install_fixture(name: str, target: Path, tmp_path: Path) -> bytes:
    """A committed client config, with this machine's paths filled in, at `target`."""
    text = (INIT_FIXTURES / name).read_text()
    for key, value in {
        "@NODE@": node_bin(),
        "@EVERYTHING_JS@": str(MCP_PACKAGES / "server-everything" / "dist" / "index.js"),
        "@MEMORY_JS@": str(MEMORY_JS),
        "@TMP@": str(tmp_path),
    }.items():
        text = text.replace(key, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target.read_bytes()


@pytest.mark.anyio
async def test_init_adopts_a_claude_desktop_config_and_undo_restores_it(gateway: Gateway, tmp_path: Path) -> None:
    config = gateway.home / ".config" / "Claude" / "claude_desktop_config.json"
    original = install_fixture("claude_desktop_config.json", config, tmp_path)

    dry = gateway.run_cli("init", "--dry-run", "--timeout", "20", timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert config.read_bytes() == original, "--dry-run changed the client's config"
    assert '-     "everything": {' in dry.stdout and '+     "toolgate": {' in dry.stdout
    assert "memory.jsonl" not in dry.stdout, "--dry-run printed an env value"
    assert not (gateway.home / ".toolgate").exists()

    done = gateway.run_cli("init", "--timeout", "20", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken: could not list its tools" in done.stdout
    rewritten = json.loads(config.read_text())
    assert rewritten["globalShortcut"] == "Ctrl+Space"
    assert list(rewritten["mcpServers"]) == ["toolgate"]
    launch = rewritten["mcpServers"]["toolgate"]
    assert Path(launch["command"]).name == "toolgate"
    gateway_yaml = Path(launch["args"][1])
    text = gateway_yaml.read_text()
    assert "memory-server:" in text and "everything:" in text and "broken:" in text
    assert "# toolgate init could not list this server's tools" in text
    policies = gateway_yaml.parent / "policies"
    assert sorted(p.name for p in policies.iterdir()) == ["everything.yaml", "memory-server.yaml"]
    assert gateway.run_cli("validate", "-c", str(gateway_yaml)).returncode == 0

    # The client's new entry is a working gateway: the two servers that start answer
    # through it; the broken one is only missing its tools.
    argv = [launch["command"], *launch["args"], "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir)]
    async with mcp_session(argv, stderr_path=gateway.new_log("init-gateway"), env=gateway.env()) as c:
        names, _ = await all_tools(c.session)
        assert "everything__echo" in names and "memory-server__read_graph" in names
        assert not any(n.startswith("broken__") for n in names)
        assert first_text(await c.session.call_tool("everything__echo", {"message": "adopted"})) == "Echo: adopted"

    undone = gateway.run_cli("init", "--undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert config.read_bytes() == original
    assert not list(config.parent.glob("*.toolgate-backup-*"))


def test_init_names_a_vscode_config_explicitly(gateway: Gateway, tmp_path: Path) -> None:
    config = tmp_path / "project" / ".vscode" / "mcp.json"
    original = install_fixture("vscode_mcp.json", config, tmp_path)
    args = ["--client", "vscode", "--client-config", str(config), "--dir", str(tmp_path / "gateways")]
    done = gateway.run_cli("init", *args, "--timeout", "20", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rewritten = json.loads(config.read_text())
    assert rewritten["inputs"] == [] and rewritten["servers"]["toolgate"]["type"] == "stdio"
    assert (tmp_path / "gateways" / "vscode" / "policies" / "everything.yaml").is_file()
    assert gateway.run_cli("init", *args[:4], "--undo").returncode == 0
    assert config.read_bytes() == original
    assert "no backup" in gateway.run_cli("init", *args[:4], "--undo").stderr


@pytest.mark.anyio
async def test_status_and_explain_speak_of_servers(gateway: Gateway) -> None:
    gateway.write_policy(
        'version: "1"\ntools:\n  alpha_0:\n    rules:\n      - name: never\n        action: deny\n',
        gateway.dir / "a.yaml",
    )
    config = write_config(
        gateway,
        {"a": {**paging_server("alpha", tools=2, page=10), "policy": "a.yaml"}, "b": {**paging_server("beta", tools=2, page=10), "restart": "never"}},
    )
    async with session(gateway, config) as c:
        assert is_denial(await c.session.call_tool("a__alpha_0", {}))
        await c.session.call_tool("a__alpha_1", {})
        await c.session.call_tool("b__crash", {})
        gateway.wait_for_audit(lambda e: e.get("event") == "server_health" and e.get("server") == "b" and not e["up"])
    gateway.wait_for_audit(lambda e: e.get("event") == "shutdown")
    status = gateway.run_cli("status", "--audit-dir", str(gateway.audit_dir), "--format", "json")
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    servers = {s["name"]: s for s in summary["servers"]}
    assert servers["a"]["calls"] == 2 and servers["a"]["denied"] == 1 and servers["a"]["up"] is True
    assert servers["b"]["up"] is False and "code 3" in servers["b"]["reason"]
    assert summary["recent_denials"][0]["tool"] == "a__alpha_0"
    assert all(not i["running"] for i in summary["instances"]), "the gateway's shutdown was not audited"
    text = gateway.run_cli("status", "--audit-dir", str(gateway.audit_dir)).stdout
    assert "Servers (behind a gateway config)" in text

    explained = gateway.run_cli("explain", "-c", str(config), "--tool", "a__alpha_0")
    assert explained.returncode == 0, explained.stderr
    assert "server a's policy, as alpha_0:" in explained.stdout and "decision: deny" in explained.stdout
    by_server = gateway.run_cli("explain", "-c", str(config), "--server", "b", "--tool", "beta_0", "--format", "json")
    assert json.loads(by_server.stdout)["server"]["explanation"]["decision"] == "allow"


@contextmanager
def gateway_listener(gateway: Gateway, config: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """`toolgate -c gateway.yaml --transport http` on a free port; yields its base URL."""
    argv = [
        str(toolgate_bin()), "-c", str(config), "--state-dsn", "memory:",
        "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir),
        "--log-level", "debug", "--transport", "http", "--port", "0", *extra,
    ]
    log = gateway.new_log("gateway-http")
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=gateway.env())
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            match = URL_LINE.search(log.read_text(errors="replace"))
            if match:
                break
            assert proc.poll() is None, f"toolgate exited with {proc.returncode}:\n{log.read_text()}"
            time.sleep(0.05)
        assert match, f"toolgate printed no URL:\n{log.read_text()}"
        yield match.group(1).removesuffix("/mcp")
    finally:
        stop(proc)


@pytest.mark.anyio
async def test_the_http_listener_serves_every_server_to_each_session(gateway: Gateway) -> None:
    gateway.write_policy(
        'version: "1"\ntools:\n  alpha_0:\n    rules:\n      - name: never\n        action: deny\n',
        gateway.dir / "a.yaml",
    )
    config = write_config(
        gateway,
        {"a": {**paging_server("alpha", tools=2, page=10), "policy": "a.yaml"}, "everything": {"command": everything_command()}},
    )
    with gateway_listener(gateway, config) as base:
        for transport, path in (("streamable", "/mcp"), ("sse", "/sse")):
            async with http_session(base + path, transport=transport) as c:
                names, _ = await all_tools(c.session)
                assert {"a__alpha_0", "a__alpha_1", "everything__echo"} <= set(names), transport
                assert is_denial(await c.session.call_tool("a__alpha_0", {}))
                assert first_text(await c.session.call_tool("a__alpha_1", {})) == "alpha: alpha_1"
                echo = await c.session.call_tool("everything__echo", {"message": transport})
                assert first_text(echo) == f"Echo: {transport}"
        inspector = E2E_DIR / "node_modules" / ".bin" / "mcp-inspector"
        run = subprocess.run(
            [str(inspector), "--cli", base + "/mcp", "--transport", "http", "--method", "tools/list"],
            capture_output=True, text=True, timeout=90, env=env_without_proxies(gateway),
        )
        assert run.returncode == 0, f"inspector failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
        assert "a__alpha_1" in [t["name"] for t in json.loads(run.stdout)["tools"]]
    decisions = [e for e in gateway.audit_events() if e.get("event") == "decision"]
    assert {e["server"] for e in decisions} == {"a", "everything"}


@pytest.mark.anyio
async def test_each_server_alone_at_its_own_path_under_its_own_names(gateway: Gateway, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "readme.txt").write_text("hello from files")
    # The gateway-wide policy is written with aggregated names; it must hold at /mcp/files,
    # where the client calls the tool by its own name.
    gateway.write_policy(
        'version: "1"\ntools:\n  files__write_file:\n    rules:\n      - name: read only\n        action: deny\n'
        '        message: "the docs are read-only"\n',
        gateway.dir / "everyone.yaml",
    )
    config = write_config(
        gateway,
        {"files": {"command": filesystem_command(docs)}, "a": paging_server("alpha", tools=2, page=10)},
        policy="everyone.yaml",
    )
    with gateway_listener(gateway, config) as base:
        async with http_session(base + "/mcp/files") as c:
            names, _ = await all_tools(c.session)
            assert {"read_text_file", "write_file"} <= set(names)
            assert not any("__" in n for n in names), names
            read = await c.session.call_tool("read_text_file", {"path": str(docs / "readme.txt")})
            assert "hello from files" in first_text(read)
            refused = await c.session.call_tool("write_file", {"path": str(docs / "x.txt"), "content": "x"})
            assert is_denial(refused) and "read-only" in first_text(refused)
            assert not (docs / "x.txt").exists()
            # Another server's tools are not reachable from here, by any name: this one is
            # asked of the files server, which has no such tool.
            elsewhere = await c.session.call_tool("a__alpha_0", {})
            assert elsewhere.is_error and "alpha: alpha_0" not in first_text(elsewhere)
        # The aggregated view beside it is unchanged.
        async with http_session(base + "/mcp") as c:
            names, _ = await all_tools(c.session)
            assert {"files__write_file", "a__alpha_0"} <= set(names)
        # A path naming no server is a 404, like any unknown path.
        request = urllib.request.Request(
            base + "/mcp/nowhere", data=b"{}", method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused_path:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)
        assert refused_path.value.code == 404
        assert "no server" in refused_path.value.read().decode()
    decisions = [e for e in gateway.audit_events() if e.get("event") == "decision" and e.get("tool") == "files__write_file"]
    assert decisions and decisions[0]["decision"] == "deny"


@pytest.mark.anyio
async def test_bare_when_unique_names_converge_and_the_gateway_wide_policy_sees_aggregated_names(gateway: Gateway) -> None:
    gateway.write_policy(
        'version: "1"\ntools:\n  b__beta_1:\n    rules:\n      - name: not this one\n        action: deny\n',
        gateway.dir / "everyone.yaml",
    )
    # `a` lists everything on one page, `b` two tools a page: both list `crash`, and `b`'s
    # comes on a later page than `a`'s.
    config = write_config(
        gateway,
        {"a": paging_server("alpha", tools=3, page=10), "b": paging_server("beta", tools=3, page=2)},
        policy="everyone.yaml",
        tool_names="bare_when_unique",
    )
    async with session(gateway, config) as c:
        changes = c.recorder.count(types.ToolListChangedNotification)
        first, _ = await all_tools(c.session)
        assert {"alpha_0", "alpha_2", "beta_0", "beta_2"} <= set(first), first
        # `crash` was shown bare on the first page, then `b` listed it too: the client is
        # told to list again, and from then on both are prefixed.
        assert await c.recorder.wait_for(types.ToolListChangedNotification, more_than=changes)
        names, _ = await all_tools(c.session)
        assert {"a__crash", "b__crash"} <= set(names) and "crash" not in names
        assert len(names) == len(set(names)) == 8

        assert first_text(await c.session.call_tool("alpha_0", {})) == "alpha: alpha_0"
        assert first_text(await c.session.call_tool("a__alpha_1", {})) == "alpha: alpha_1"
        # The gateway-wide rule names `b__beta_1`; calling it bare does not get around it.
        assert is_denial(await c.session.call_tool("beta_1", {}))
        with pytest.raises(MCPError, match="Unknown tool: crash"):
            await c.session.call_tool("crash", {})
    decisions = [e for e in gateway.audit_events() if e.get("event") == "decision" and not e.get("server")]
    assert {e["tool"] for e in decisions} >= {"a__alpha_0", "a__alpha_1", "b__beta_1"}


@pytest.mark.anyio
async def test_a_slow_server_does_not_hold_up_the_others_listing(gateway: Gateway) -> None:
    slow = {**paging_server("beta", tools=2, page=10)}
    slow["env"] = {**slow["env"], "PAGING_LIST_DELAY": "7"}
    config = write_config(gateway, {"a": paging_server("alpha", tools=2, page=10), "b": slow})
    async with session(gateway, config) as c:
        changes = c.recorder.count(types.ToolListChangedNotification)
        started = time.monotonic()
        first = await c.session.list_tools()
        waited = time.monotonic() - started
        names = {t.name for t in first.tools}
        # The listing waits a bounded time (5 s) for the slow one, and goes on without it.
        assert waited < 6.5, waited
        assert "a__alpha_0" in names and not any(n.startswith("b__") for n in names)
        # When it answers, the client is told to list again, and then sees it.
        assert await c.recorder.wait_for(types.ToolListChangedNotification, more_than=changes, timeout=10)
        with anyio.fail_after(20):
            names = {t.name for t in (await c.session.list_tools()).tools}
        assert {"a__alpha_0", "b__beta_0"} <= names


@pytest.mark.anyio
async def test_editing_the_config_adds_and_removes_servers_while_it_runs(gateway: Gateway) -> None:
    config = write_config(gateway, {"a": paging_server("alpha", tools=2, page=10), "b": paging_server("beta", tools=2, page=10)})
    async with session(gateway, config) as c:
        names, _ = await all_tools(c.session)
        assert {"a__alpha_0", "b__beta_0"} <= set(names)

        # A broken edit keeps what runs, and says why.
        config.write_text('version: "1"\nservers:\n  a:\n    comand: [x]\n')
        events = gateway.wait_for_audit(lambda e: e.get("event") == "reload" and e.get("ok") is False)
        failed = [e for e in events if e.get("event") == "reload" and e.get("ok") is False]
        assert failed and any("unknown key" in err for err in failed[0]["errors"])
        assert first_text(await c.session.call_tool("b__beta_1", {})) == "beta: beta_1"

        changes = c.recorder.count(types.ToolListChangedNotification)
        write_config(gateway, {"a": paging_server("alpha", tools=2, page=10), "c": paging_server("gamma", tools=2, page=10)})
        with anyio.fail_after(20):
            while True:
                names, _ = await all_tools(c.session)
                if "c__gamma_0" in names and not any(n.startswith("b__") for n in names):
                    break
                await anyio.sleep(0.2)
        assert c.recorder.count(types.ToolListChangedNotification) > changes
        assert first_text(await c.session.call_tool("c__gamma_1", {})) == "gamma: gamma_1"
        assert first_text(await c.session.call_tool("a__alpha_1", {})) == "alpha: alpha_1"
        with pytest.raises(MCPError, match="Unknown tool: b__beta_1"):
            await c.session.call_tool("b__beta_1", {})
    ready = [e["server"] for e in gateway.audit_events() if e.get("event") == "server_health" and e.get("up")]
    assert ready.count("a") == 1, "an unchanged server was restarted"


@pytest.mark.anyio
async def test_server_requests_from_two_servers_reach_the_client_and_go_back(gateway: Gateway, tmp_path: Path) -> None:
    """Two everything servers use the same ids for their own requests; the gateway relays
    each server's sampling, elicitation and roots requests under ids it mints, and each
    answer goes back to the server that asked."""
    from test_stdio_proxy import Callbacks

    cb = Callbacks(roots=[tmp_path])
    config = write_config(gateway, {"one": {"command": everything_command()}, "two": {"command": everything_command()}})
    async with session(gateway, config, **cb.all()) as c:
        sampled: dict[str, str] = {}

        async def sample(server: str) -> None:
            result = await c.session.call_tool(f"{server}__trigger-sampling-request", {"prompt": f"from {server}"})
            sampled[server] = first_text(result)

        async with anyio.create_task_group() as group:
            group.start_soon(sample, "one")
            group.start_soon(sample, "two")
        assert all("a sampled answer from the client" in text for text in sampled.values()), sampled
        prompts = sorted(json.dumps(dump(r)) for r in cb.sampling_requests)
        assert len(prompts) == 2 and "from one" in prompts[0] and "from two" in prompts[1]

        elicited = await c.session.call_tool("two__trigger-elicitation-request", {})
        assert "Ada Lovelace" in json.dumps(dump(elicited))
        roots = first_text(await c.session.call_tool("one__get-roots-list", {}))
        assert tmp_path.resolve().as_uri() in roots

        steps: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            steps.append(progress)

        done = await c.session.call_tool(
            "two__trigger-long-running-operation", {"duration": 0.6, "steps": 3}, progress_callback=on_progress
        )
        assert not done.is_error and len(steps) == 3


def test_a_session_that_would_start_more_processes_than_are_left_is_refused(gateway: Gateway) -> None:
    """Over HTTP every session starts a process per stdio server: a client cannot open
    sessions past `--max-children`, counted in processes, not sessions."""
    import urllib.error
    import urllib.request

    servers = {name: paging_server(name, tools=1, page=10) for name in ("a", "b", "c")}
    config = write_config(gateway, servers)
    initialize = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }).encode()
    with gateway_listener(gateway, config, extra=["--max-children", "5"]) as base:
        def open_session() -> int:
            request = urllib.request.Request(
                base + "/mcp", data=initialize, method="POST",
                headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(request, timeout=30) as answer:
                    return answer.status
            except urllib.error.HTTPError as refused:
                return refused.code

        assert open_session() == 200  # 3 of 5 processes
        assert open_session() == 503  # 3 more would make 6

        # A request without a session takes its processes from the same count: a listing
        # of every server would make 6, a call that names one server makes 4.
        with pytest.raises(urllib.error.HTTPError) as refused:
            post_sessionless(base + "/mcp", "tools/list", {})
        assert refused.value.code == 503
        _, answer = post_sessionless(base + "/mcp", "tools/call", {"name": "a__a_0", "arguments": {}}, "a__a_0")
        assert answer["id"] == 1


CONFORMANCE_FIXTURE_PY = E2E_DIR / "servers" / "conformance_fixture.py"
SESSIONLESS = "2026-07-28"


def post_sessionless(url: str, method: str, params: dict[str, Any], name: str | None = None) -> tuple[dict[str, str], Any]:
    """One 2026-07-28 request, without a session: its answer's headers and body."""
    meta = {"io.modelcontextprotocol/protocolVersion": SESSIONLESS, "io.modelcontextprotocol/clientCapabilities": {}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}).encode()
    headers = {
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": SESSIONLESS, "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as answer:
        return {k.lower(): v for k, v in answer.headers.items()}, json.loads(answer.read())


@pytest.mark.anyio
async def test_requests_without_a_session_reach_the_servers_they_name_under_both_policies(gateway: Gateway) -> None:
    """The 2026-07-28 era over a gateway config: each request is served alone, starting only
    the servers it can reach, which are asked `server/discover` first. Both policies decide,
    and their per-session limits hold across requests, as for a single server. (The limits
    slide: a fixed window's boundary between two calls would start a new count.)"""
    gateway.write_policy(
        'version: "1"\ntools:\n  one__test_simple_text:\n    rules:\n      - name: two per session\n'
        "        rate_limit: {max: 2, window: 1h, mode: sliding}\n",
        gateway.dir / "everyone.yaml",
    )
    gateway.write_policy(
        'version: "1"\ntools:\n  test_simple_text:\n    rules:\n      - name: not from two\n        action: deny\n'
        "  test_image_content:\n    rules:\n      - name: one image per session\n"
        "        rate_limit: {max: 1, window: 1h, mode: sliding}\n",
        gateway.dir / "two.yaml",
    )
    fixture = [sys.executable, str(CONFORMANCE_FIXTURE_PY), "stdio"]
    config = write_config(
        gateway, {"one": {"command": fixture}, "two": {"command": fixture, "policy": "two.yaml"}}, policy="everyone.yaml"
    )
    from mcp.client.client import Client

    with gateway_listener(gateway, config) as base:
        # A call names its server: only that one is started for it.
        headers, answer = post_sessionless(
            base + "/mcp", "tools/call", {"name": "one__test_simple_text", "arguments": {}}, "one__test_simple_text"
        )
        assert "mcp-session-id" not in headers
        assert answer["result"]["content"][0]["text"].startswith("This is a simple text response")
        started = [e.get("server") for e in gateway.audit_events() if e.get("event") == "server_health"]
        assert started and set(started) == {"one"}, started

        _, listed = post_sessionless(base + "/mcp", "tools/list", {})
        result = listed["result"]
        assert (result["resultType"], result["ttlMs"], result["cacheScope"]) == ("complete", 0, "private")
        _, discovered = post_sessionless(base + "/mcp", "server/discover", {})
        assert SESSIONLESS in discovered["result"]["supportedVersions"]
        assert "tools" in discovered["result"]["capabilities"]

        async with Client(base + "/mcp", mode="auto", cache=None) as client:
            assert client.session.protocol_version == SESSIONLESS
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"one__test_simple_text", "two__test_simple_text", "two__test_image_content"} <= names
            assert all("__" in n for n in names)
            # The first request above was the session limit's first call.
            assert not (await client.call_tool("one__test_simple_text", {})).is_error
            limited = await client.call_tool("one__test_simple_text", {})
            assert is_denial(limited) and "two per session" in first_text(limited)
            refused = await client.call_tool("two__test_simple_text", {})
            assert is_denial(refused) and "not from two" in first_text(refused)
            assert not (await client.call_tool("two__test_image_content", {})).is_error
            again = await client.call_tool("two__test_image_content", {})
            assert is_denial(again) and "one image per session" in first_text(again)
            with pytest.raises(MCPError, match="Unknown tool: three__anything"):
                await client.call_tool("three__anything", {})

        async with Client(base + "/mcp/two", mode="auto", cache=None) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "test_simple_text" in names and not any("__" in n for n in names)
            refused = await client.call_tool("test_simple_text", {})
            assert is_denial(refused) and "not from two" in first_text(refused)
    decisions = [e for e in gateway.audit_events() if e.get("event") == "decision"]
    assert {e["server"] for e in decisions if "server" in e} == {"one", "two"}
