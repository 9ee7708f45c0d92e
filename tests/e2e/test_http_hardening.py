"""End-to-end tests of what a hostile HTTP client can make the listener hold, and of
authentication that must never silently disappear. Real sockets on 127.0.0.1, a real
server-everything child per session, the Python SDK as the well-behaved client."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import time
from urllib.parse import urlparse

import pytest

from http_harness import http_session, listener
from toolgate_harness import Gateway, RawSession, everything_command, first_text

needs_gateway = pytest.mark.gateway

ALICE_TOKEN = "alice-token-for-tests"
BOB_TOKEN = "bob-token-for-tests"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


IDENTITY_POLICY = f"""\
version: "1"
identities:
  alice:
    token_sha256: {sha256(ALICE_TOKEN)}
  bob:
    token_sha256: {sha256(BOB_TOKEN)}
tools: {{}}
"""

OPEN_POLICY = """\
version: "1"
tools: {}
"""


def host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    assert parsed.hostname and parsed.port
    return parsed.hostname, parsed.port


def initialize_body() -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "toolgate-e2e", "version": "0"},
            },
        }
    )


def post_initialize(url: str, token: str | None = None) -> http.client.HTTPResponse:
    host, port = host_port(url)
    connection = http.client.HTTPConnection(host, port, timeout=20)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("POST", "/mcp", body=initialize_body(), headers=headers)
    response = connection.getresponse()
    response.read()
    return response


@needs_gateway
@pytest.mark.anyio
async def test_stalled_uploads_time_out_and_never_lock_clients_out(gateway: Gateway) -> None:
    """Clients that send headers and then no body are answered 408 after the body timeout,
    and while they stall (more of them than the connection cap) a real client still gets in."""
    gateway.write_policy(OPEN_POLICY)
    with listener(
        gateway, everything_command(), extra=["--body-timeout", "1", "--max-connections", "8"]
    ) as base:
        host, port = host_port(base)
        stalled = []
        for _ in range(24):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(
                (
                    f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                    "Content-Length: 4096\r\n\r\n{"
                ).encode()
            )
            stalled.append(s)
        started = time.monotonic()
        async with http_session(f"{base}/mcp") as c:
            result = await c.session.call_tool("echo", {"message": "through"})
            assert first_text(result) == "Echo: through"
        assert time.monotonic() - started < 15
        first = stalled[0].recv(4096).decode(errors="replace")
        assert first.startswith("HTTP/1.1 408"), first[:200]
        for s in stalled:
            s.close()


@needs_gateway
def test_a_legacy_session_id_on_the_streamable_endpoint_is_unknown(gateway: Gateway) -> None:
    gateway.write_policy(OPEN_POLICY)
    with listener(gateway, everything_command()) as base:
        host, port = host_port(base)
        stream = socket.create_connection((host, port), timeout=10)
        stream.sendall(f"GET /sse HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        seen = b""
        deadline = time.monotonic() + 10
        while b"sessionId=" not in seen and time.monotonic() < deadline:
            seen += stream.recv(4096)
        session_id = seen.split(b"sessionId=")[1].split(b"\r")[0].split(b"\n")[0].decode()
        connection = http.client.HTTPConnection(host, port, timeout=5)
        connection.request(
            "POST",
            "/mcp",
            body=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "Mcp-Session-Id": session_id,
            },
        )
        response = connection.getresponse()
        assert response.status == 404, response.read()
        stream.close()


@needs_gateway
def test_one_identity_cannot_take_every_session(gateway: Gateway) -> None:
    gateway.write_policy(IDENTITY_POLICY)
    with listener(gateway, everything_command(), extra=["--max-sessions-per-identity", "2"]) as base:
        assert post_initialize(f"{base}/mcp", ALICE_TOKEN).status == 200
        assert post_initialize(f"{base}/mcp", ALICE_TOKEN).status == 200
        refused = post_initialize(f"{base}/mcp", ALICE_TOKEN)
        assert refused.status == 503
        assert post_initialize(f"{base}/mcp", BOB_TOKEN).status == 200


@needs_gateway
def test_a_reload_cannot_turn_authentication_off(gateway: Gateway) -> None:
    gateway.write_policy(IDENTITY_POLICY)
    with listener(gateway, everything_command()) as base:
        assert post_initialize(f"{base}/mcp").status == 401
        gateway.write_policy(OPEN_POLICY)
        time.sleep(1.5)  # past the watcher's debounce
        assert post_initialize(f"{base}/mcp").status == 401
        assert post_initialize(f"{base}/mcp", ALICE_TOKEN).status == 200
    reloads = []
    for path in gateway.audit_dir.glob("*.jsonl"):
        reloads += [e for e in map(json.loads, path.read_text().splitlines()) if e.get("event") == "reload"]
    assert reloads and reloads[-1]["ok"] is False and "identities" in reloads[-1]["errors"][0], reloads


@needs_gateway
def test_a_non_loopback_listener_needs_authentication(gateway: Gateway) -> None:
    """Refused before anything is bound (so no port is ever opened beyond loopback here)."""
    gateway.write_policy(OPEN_POLICY)
    argv = gateway.argv(everything_command(), extra=["--transport", "http", "--bind", "0.0.0.0", "--port", "0"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=gateway.env())
    assert done.returncode != 0
    assert "--allow-unauthenticated" in done.stderr and "identities" in done.stderr, done.stderr


@needs_gateway
def test_a_configmap_swap_reloads_the_policy(gateway: Gateway) -> None:
    """Kubernetes mounts `policy.yaml -> ..data/policy.yaml` and updates by swapping `..data`."""
    mount = gateway.dir / "config"
    first = mount / "..2026_12_01_v1"
    first.mkdir(parents=True)
    (first / "policy.yaml").write_text(OPEN_POLICY)
    (mount / "..data").symlink_to(first.name)
    (mount / "policy.yaml").symlink_to("..data/policy.yaml")

    argv = gateway.argv(everything_command(), policy=mount / "policy.yaml")
    raw = RawSession(argv, stderr_path=gateway.new_log("toolgate-raw"), env=gateway.env())
    try:
        raw.initialize()
        ok = raw.request("tools/call", {"name": "echo", "arguments": {"message": "before"}})
        assert ok["result"]["content"][0]["text"] == "Echo: before"
        second = mount / "..2026_12_02_v2"
        second.mkdir()
        (second / "policy.yaml").write_text(OPEN_POLICY.replace("tools: {}", "hide: [echo]\ntools: {}"))
        (mount / "..data_tmp").symlink_to(second.name)
        (mount / "..data_tmp").rename(mount / "..data")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = raw.request("tools/call", {"name": "echo", "arguments": {"message": "after"}})
            if "error" in answer:
                assert answer["error"]["code"] == -32602
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the swapped policy was never loaded")
    finally:
        raw.close()
