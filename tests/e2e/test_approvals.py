"""End-to-end tests of human approval: the Python `mcp` SDK as the agent, the reference
`server-filesystem` as the server, toolgate in between, and people deciding from another
process (`toolgate approvals …`) or through the admin API.

What is shown:
* retry mode: a write that needs approval is answered at once and writes nothing; once
  approved from another process, the identical retry writes the file, exactly once; other
  arguments are not covered; a denial's reason reaches the agent; a request expires;
* hold mode through the admin API: the call waits (with progress) and returns the real
  result after an approve, a denial after a deny, and never blocks the session's other
  calls; cancelling it withdraws the request;
* two gateways sharing one SQLite state file consume one approval exactly once under
  concurrent retries;
* the webhook arrives signed (a receiver on 127.0.0.1 checks the HMAC).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
from contextlib import AsyncExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest

from toolgate_harness import (
    DENY_PREFIX,
    Gateway,
    decision_meta,
    dump,
    filesystem_command,
    first_text,
    mcp_session,
)

needs_gateway = pytest.mark.gateway

APPROVAL_PREFIX = "[APPROVAL REQUIRED]"
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


def approval_policy(mode: str = "retry", timeout: str = "10m", extra: str = "") -> str:
    return f"""\
version: "1"
default: allow
tools:
  write_file:
    rules:
      - name: writes need a person
        action: require_approval
        message: "Every write is checked by a person."
        approval_timeout: {timeout}
        approval_mode: {mode}
{extra}"""


def approval_id(result: types.CallToolResult) -> str:
    meta = decision_meta(result)
    assert meta["decision"] == "approval_required", dump(result)
    return meta["approval"]["id"]


def asks_for_approval(result: types.CallToolResult) -> bool:
    return bool(result.is_error) and first_text(result).startswith(APPROVAL_PREFIX)


def approvals_cli(gateway: Gateway, *args: str) -> Any:
    """`toolgate approvals …` in its own process, on the gateway's state directory."""
    return gateway.run_cli("approvals", *args, "--state-dir", str(gateway.state_dir))


def files_root(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    return root


# -- retry mode --------------------------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_write_waits_for_approval_from_another_process_then_writes_once(
    gateway: Gateway, tmp_path: Path
) -> None:
    root = files_root(tmp_path)
    target = root / "report.txt"
    args = {"path": str(target), "content": "approved content"}
    gateway.write_policy(approval_policy())
    async with gateway.session(filesystem_command(root), state_dsn=None) as c:
        asked = await c.session.call_tool("write_file", args)
        assert asks_for_approval(asked), dump(asked)
        request = approval_id(asked)
        text = first_text(asked)
        assert request in text and "retry exactly the same call" in text, text
        assert "Every write is checked by a person." in text
        assert decision_meta(asked)["approval"]["expires_at"].endswith("Z")
        assert not target.exists()

        # A retry before anyone decides is the same request, and still writes nothing.
        assert approval_id(await c.session.call_tool("write_file", args)) == request
        assert not target.exists()

        listed = approvals_cli(gateway, "list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        pending = json.loads(listed.stdout)["approvals"]
        assert [p["id"] for p in pending] == [request]
        assert pending[0]["tool"] == "write_file"
        assert pending[0]["arguments"] == {"path": "string", "content": "string"}
        shown = approvals_cli(gateway, "show", request)
        assert shown.returncode == 0 and "approved content" in shown.stdout, shown

        approved = approvals_cli(gateway, "approve", request, "--note", "fine by me")
        assert approved.returncode == 0, approved.stderr
        assert f"Approved {request}" in approved.stdout

        written = await c.session.call_tool("write_file", args)
        assert not written.is_error, dump(written)
        assert target.read_text() == "approved content"

        # Used once: the same call again needs a new approval and does not write.
        target.unlink()
        again = await c.session.call_tool("write_file", args)
        assert asks_for_approval(again), dump(again)
        assert approval_id(again) != request
        assert not target.exists()

        # An approval covers its own arguments only.
        third = approval_id(again)
        assert approvals_cli(gateway, "approve", third).returncode == 0
        other = await c.session.call_tool("write_file", {"path": str(target), "content": "something else"})
        assert asks_for_approval(other), dump(other)
        assert approval_id(other) not in (request, third)
        assert not target.exists()

    history = json.loads(approvals_cli(gateway, "list", "--all", "--format", "json").stdout)["approvals"]
    states = {h["id"]: h["state"] for h in history}
    assert states[request] == "consumed" and states[third] == "approved", states
    # The CLI's decisions are in the audit log beside the gateway's.
    cli_log = (gateway.audit_dir.parent / "state" / "audit" / "toolgate-cli.jsonl").read_text()
    lines = [json.loads(line) for line in cli_log.splitlines()]
    assert any(line["transition"] == "approved" and line["approval"] == request for line in lines), lines


@needs_gateway
@pytest.mark.anyio
async def test_a_denial_and_its_reason_reach_the_agent(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    args = {"path": str(root / "x.txt"), "content": "nope"}
    gateway.write_policy(approval_policy())
    async with gateway.session(filesystem_command(root), state_dsn=None) as c:
        request = approval_id(await c.session.call_tool("write_file", args))
        assert approvals_cli(gateway, "deny", request).returncode != 0  # --reason is required
        denied_cli = approvals_cli(gateway, "deny", request, "--reason", "Not during the release freeze.")
        assert denied_cli.returncode == 0, denied_cli.stderr
        denied = await c.session.call_tool("write_file", args)
        assert denied.is_error and first_text(denied).startswith(DENY_PREFIX), dump(denied)
        assert "A person denied this call: Not during the release freeze." in first_text(denied)
        assert decision_meta(denied)["decision"] == "approval_denied"
        # A decided request cannot be decided again.
        late = approvals_cli(gateway, "approve", request)
        assert late.returncode == 1 and "denied" in late.stderr
    assert not (root / "x.txt").exists()


@needs_gateway
@pytest.mark.anyio
async def test_a_request_expires_and_the_next_call_starts_a_new_one(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    args = {"path": str(root / "late.txt"), "content": "late"}
    gateway.write_policy(approval_policy(timeout="2s"))
    async with gateway.session(filesystem_command(root), state_dsn=None) as c:
        first = approval_id(await c.session.call_tool("write_file", args))
        await anyio.sleep(2.5)
        late = approvals_cli(gateway, "approve", first)
        assert late.returncode == 1 and "expired" in late.stderr, late
        second = await c.session.call_tool("write_file", args)
        assert asks_for_approval(second) and approval_id(second) != first
    assert not (root / "late.txt").exists()


# -- hold mode through the admin API ----------------------------------------------------------


class Admin:
    """The admin API of a running gateway, found from the URL it prints on stderr."""

    def __init__(self, log: Path, token: str):
        deadline = time.monotonic() + 15
        while True:
            found = re.search(r"admin API on (http://127\.0\.0\.1:\d+)/v1/approvals", log.read_text())
            if found:
                self.base = found.group(1)
                break
            assert time.monotonic() < deadline, f"no admin URL in {log}:\n{log.read_text()}"
            time.sleep(0.05)
        self.token = token

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    async def pending(self, count: int = 1) -> list[dict[str, Any]]:
        with anyio.fail_after(10):
            while True:
                status, body = await anyio.to_thread.run_sync(self.request, "GET", "/v1/approvals")
                assert status == 200, body
                if len(body["approvals"]) >= count:
                    return body["approvals"]
                await anyio.sleep(0.05)


def admin_session(gateway: Gateway, root: Path, token_file: Path):
    """A filesystem session through a gateway with the admin API on a free loopback port."""
    token_file.write_text(ADMIN_TOKEN)
    extra = ["--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    argv = gateway.argv(filesystem_command(root), state_dsn=None, extra=extra)
    log = gateway.new_log("toolgate-admin")
    return mcp_session(argv, stderr_path=log, env=gateway.env()), log


@needs_gateway
@pytest.mark.anyio
async def test_hold_mode_answers_after_an_admin_decision_without_blocking_the_session(
    gateway: Gateway, tmp_path: Path
) -> None:
    root = files_root(tmp_path)
    (root / "existing.txt").write_text("here")
    gateway.write_policy(approval_policy(mode="hold", timeout="5m"))
    session, log = admin_session(gateway, root, tmp_path / "admin.token")
    async with session as c:
        admin = Admin(log, ADMIN_TOKEN)
        assert admin.request("GET", "/v1/approvals", token="wrong-token-wrong-token")[0] == 401

        progress: list[str] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        outcome: dict[str, types.CallToolResult] = {}

        async def held_write(name: str, content: str) -> None:
            outcome[name] = await c.session.call_tool(
                "write_file",
                {"path": str(root / f"{name}.txt"), "content": content},
                progress_callback=on_progress,
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(held_write, "approved", "held then approved")
            request = (await admin.pending())[0]
            assert request["tool"] == "write_file" and request["state"] == "pending"
            # The session's other calls go through while the write waits.
            listing = await c.session.call_tool("list_directory", {"path": str(root)})
            assert "existing.txt" in first_text(listing)
            assert "approved" not in outcome and not (root / "approved.txt").exists()
            shown = admin.request("GET", f"/v1/approvals/{request['id']}")[1]
            assert shown["arguments"]["content"] == "held then approved"
            status, body = admin.request("POST", f"/v1/approvals/{request['id']}/approve", {"note": "ok"})
            assert status == 200 and body["state"] == "approved", body
        assert not outcome["approved"].is_error, dump(outcome["approved"])
        assert (root / "approved.txt").read_text() == "held then approved"
        assert any("Waiting for a person" in m for m in progress), progress

        async with anyio.create_task_group() as tg:
            tg.start_soon(held_write, "denied", "held then denied")
            request = (await admin.pending())[0]
            status, _ = admin.request("POST", f"/v1/approvals/{request['id']}/deny", {"reason": "Keep the tree clean."})
            assert status == 200
        denied = outcome["denied"]
        assert denied.is_error and "A person denied this call: Keep the tree clean." in first_text(denied)
        assert not (root / "denied.txt").exists()


@needs_gateway
@pytest.mark.anyio
async def test_cancelling_a_held_call_withdraws_its_request(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    gateway.write_policy(approval_policy(mode="hold", timeout="5m"))
    session, log = admin_session(gateway, root, tmp_path / "admin.token")
    async with session as c:
        admin = Admin(log, ADMIN_TOKEN)
        async with anyio.create_task_group() as tg:

            async def held() -> None:
                await c.session.call_tool("write_file", {"path": str(root / "w.txt"), "content": "w"})

            tg.start_soon(held)
            request = (await admin.pending())[0]
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            while admin.request("GET", f"/v1/approvals/{request['id']}")[1]["state"] != "withdrawn":
                await anyio.sleep(0.05)
        status, body = admin.request("POST", f"/v1/approvals/{request['id']}/approve")
        assert status == 409 and body["state"] == "withdrawn"
        # The session is still usable.
        assert not (await c.session.call_tool("list_directory", {"path": str(root)})).is_error
    assert not (root / "w.txt").exists()


# -- two gateways, one state file ---------------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_two_gateways_sharing_a_state_file_consume_one_approval_once(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    log_file = root / "log.txt"
    args = {"path": str(log_file), "content": "written once"}
    gateway.write_policy(approval_policy())
    async with AsyncExitStack() as stack:
        sessions = [
            (await stack.enter_async_context(gateway.session(filesystem_command(root), state_dsn=None))).session
            for _ in range(2)
        ]
        first = approval_id(await sessions[0].call_tool("write_file", args))
        assert approval_id(await sessions[1].call_tool("write_file", args)) == first
        assert approvals_cli(gateway, "approve", first).returncode == 0

        results: list[types.CallToolResult] = []

        async def retry(session: Any) -> None:
            results.append(await session.call_tool("write_file", args))

        async with anyio.create_task_group() as tg:
            for session in sessions:
                for _ in range(6):
                    tg.start_soon(retry, session)

    written = [r for r in results if not r.is_error]
    asked = [r for r in results if asks_for_approval(r)]
    assert len(written) == 1, [dump(r) for r in results]
    assert len(asked) == len(results) - 1
    # Every loser landed on one new request, shared by both gateways.
    assert len({approval_id(r) for r in asked}) == 1
    assert log_file.read_text() == "written once"
    state = json.loads(approvals_cli(gateway, "show", first, "--format", "json").stdout)["state"]
    assert state == "consumed"


# -- notifications ------------------------------------------------------------------------------


class WebhookReceiver(ThreadingHTTPServer):
    """Records each POST with its headers; answers 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@needs_gateway
@pytest.mark.anyio
async def test_the_webhook_receives_a_correctly_signed_request(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    secret = "e2e-webhook-secret"
    receiver = WebhookReceiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/toolgate"
        notify = f"approvals:\n  notify:\n    webhook:\n      url: {url}\n      secret_env: E2E_HOOK_SECRET\n"
        gateway.write_policy(approval_policy(extra=notify))
        argv = gateway.argv(filesystem_command(root), state_dsn=None)
        env = {**gateway.env(), "E2E_HOOK_SECRET": secret}
        async with mcp_session(argv, stderr_path=gateway.new_log("toolgate-webhook"), env=env) as c:
            args = {"path": str(root / "secret-plans.txt"), "content": "the content stays private"}
            request = approval_id(await c.session.call_tool("write_file", args))
            assert await anyio.to_thread.run_sync(receiver.arrived.wait, 10), "no webhook arrived"
        headers, body = receiver.received[0]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-toolgate-signature"], expected)
        payload = json.loads(body)
        assert payload["event"] == "approval.requested"
        assert payload["id"] == request and payload["tool"] == "write_file"
        assert payload["arguments"] == {"path": "string", "content": "string"}
        assert b"stays private" not in body
        command = payload["decide"]["approve_command"]
        assert command.startswith("toolgate approvals --state-dir ") and command.endswith(f" approve {request}")
        assert str(gateway.state_dir) in command
        # The secret never reaches the gateway's logs.
        assert all(secret not in log.read_text() for log in gateway.logs)
    finally:
        receiver.shutdown()


# -- over the HTTP listener ---------------------------------------------------------------------


@needs_gateway
@pytest.mark.anyio
async def test_hold_mode_over_streamable_http_with_progress(gateway: Gateway, tmp_path: Path) -> None:
    from http_harness import http_session, listener

    root = files_root(tmp_path)
    token_file = tmp_path / "admin.token"
    token_file.write_text(ADMIN_TOKEN)
    gateway.write_policy(approval_policy(mode="hold", timeout="5m"))
    extra = ["--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    with listener(gateway, filesystem_command(root), extra=extra) as base:
        admin = Admin(gateway.logs[-1], ADMIN_TOKEN)
        async with http_session(f"{base}/mcp") as c:
            progress: list[str] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(message or "")

            outcome: list[types.CallToolResult] = []

            async def held() -> None:
                outcome.append(
                    await c.session.call_tool(
                        "write_file",
                        {"path": str(root / "via-http.txt"), "content": "over http"},
                        progress_callback=on_progress,
                    )
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(held)
                request = (await admin.pending())[0]
                with anyio.fail_after(10):
                    while not progress:
                        await anyio.sleep(0.05)
                listing = await c.session.call_tool("list_directory", {"path": str(root)})
                assert not listing.is_error and not outcome
                status, _ = await anyio.to_thread.run_sync(
                    admin.request, "POST", f"/v1/approvals/{request['id']}/approve"
                )
                assert status == 200
        assert not outcome[0].is_error, dump(outcome[0])
        assert "Waiting for a person" in progress[0]
    assert (root / "via-http.txt").read_text() == "over http"
