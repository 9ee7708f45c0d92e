"""HTTP helpers for the end-to-end tests: toolgate as a listener, server-everything over
Streamable HTTP and legacy SSE, and SDK sessions over both HTTP client transports.

Every process binds 127.0.0.1 on a port the OS picked; nothing leaves the machine.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Iterator

import anyio
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from toolgate_harness import (
    EVERYTHING_JS,
    EXIT_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    Connected,
    Gateway,
    Recorder,
    node_bin,
    require_node_modules,
)

URL_LINE = re.compile(r"listening on (http://\S+/mcp)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen[Any]) -> None:
    """Ends a process we started (by its own pid): SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def everything_http(gateway: Gateway, mode: str, port: int | None = None) -> Iterator[str]:
    """server-everything in `streamableHttp` or `sse` mode; yields its endpoint URL."""
    require_node_modules()
    port = port or free_port()
    log = gateway.new_log(f"everything-{mode}")
    env = dict(gateway.env(), PORT=str(port))
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [node_bin(), str(EVERYTHING_JS), mode],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=env,
        )
    try:
        wait_for_port(port)
        path = "/mcp" if mode == "streamableHttp" else "/sse"
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        stop(proc)


@contextmanager
def listener(
    gateway: Gateway,
    server: Sequence[str] = (),
    *,
    upstream: str | None = None,
    extra: Sequence[str] = (),
    config: Path | None = None,
) -> Iterator[str]:
    """toolgate --transport http on a free port; yields its base URL (http://127.0.0.1:N).
    `config`: a policy or gateway config other than the gateway's policy file."""
    flags = ["--transport", "http", "--port", "0", *extra]
    if upstream is not None:
        flags += ["--upstream", upstream]
    argv = gateway.argv(list(server), policy=config, extra=flags)
    if upstream is not None:
        argv = argv[: argv.index("--")]  # no server command with --upstream
    log = gateway.new_log("toolgate-http")
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=gateway.env())
    try:
        deadline = time.monotonic() + 20
        url = None
        while url is None and time.monotonic() < deadline:
            match = URL_LINE.search(log.read_text(errors="replace"))
            if match:
                url = match.group(1)
                break
            if proc.poll() is not None:
                raise AssertionError(f"toolgate exited with {proc.returncode}:\n{log.read_text()}")
            time.sleep(0.05)
        assert url, f"toolgate printed no URL:\n{log.read_text()}"
        yield url.removesuffix("/mcp")
    finally:
        stop(proc)


@asynccontextmanager
async def http_session(
    url: str,
    *,
    transport: str = "streamable",
    headers: dict[str, str] | None = None,
    request_timeout: float = REQUEST_TIMEOUT_S,
    **callbacks: Any,
) -> AsyncIterator[Connected]:
    """An initialized SDK session over Streamable HTTP (`url` ends in /mcp) or SSE (/sse)."""
    recorder = Recorder()
    if transport == "streamable":
        import httpx2  # the SDK's HTTP client

        client = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30.0, read=300.0))
        transport_cm = streamable_http_client(url, http_client=client)
    else:
        client = None
        transport_cm = sse_client(url, headers=headers)
    try:
        async with transport_cm as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(
                read,
                write,
                read_timeout_seconds=request_timeout,
                message_handler=recorder.handle,
                sampling_callback=callbacks.get("sampling"),
                elicitation_callback=callbacks.get("elicitation"),
                list_roots_callback=callbacks.get("roots"),
            ) as session:
                with anyio.fail_after(request_timeout):
                    init = await session.initialize()
                yield Connected(session=session, recorder=recorder, init=init)
    finally:
        if client is not None:
            await client.aclose()


def bridge_argv(gateway: Gateway, upstream: str, extra: Sequence[str] = ()) -> list[str]:
    """toolgate as a stdio server bridging to `upstream` (no server command)."""
    argv = gateway.argv([], extra=["--upstream", upstream, *extra])
    return argv[: argv.index("--")]


def env_without_proxies(gateway: Gateway) -> dict[str, str]:
    env = gateway.env()
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(key, None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


__all__ = [
    "bridge_argv",
    "env_without_proxies",
    "everything_http",
    "free_port",
    "http_session",
    "listener",
]
