"""End-to-end tests of the web console in a real browser: Debian's Chromium driven by the
Python `playwright` package, against a gateway in front of the reference `server-filesystem`
(and, for a gateway config, `server-memory` too), with the Python `mcp` SDK as the agent.

What is shown:
* signing in: without a login every page asks for the token; `/?token=` sets an HttpOnly,
  SameSite=Strict cookie and drops the token from the address; every page answers with a
  strict Content-Security-Policy, runs without a script error, holds no admin token, and
  fits a phone's width;
* a denial shows on Live within a second of the call;
* a call held for approval is approved from the Approvals page and completes; another is
  denied there with a reason the agent receives; argument values are not in the page until
  someone asks for them; the API refuses a signed-in browser's change without its CSRF token;
* a tool page's recommended YAML, copied with its button, passes `toolgate validate`;
* behind a gateway config, tools and health are shown per server;
* markup in a server's tool names and descriptions is shown as text, never as elements.

Screenshots of every page go to the test's directory, and to `docs/img/` when
`TOOLGATE_UPDATE_SCREENSHOTS=1`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from playwright.async_api import Browser, Page, async_playwright

from toolgate_harness import (
    E2E_DIR,
    MCP_PACKAGES,
    Gateway,
    filesystem_command,
    first_text,
    is_denial,
    mcp_session,
    node_bin,
    toolgate_bin,
)

needs_gateway = pytest.mark.gateway

TOKEN = "e2e-console-token-0123456789abcdef"
DOCS_IMG = E2E_DIR.parent.parent / "docs" / "img"
MEMORY_JS = MCP_PACKAGES / "server-memory" / "dist" / "index.js"
PAGES = ["/", "/live", "/tools", "/approvals", "/policy", "/counters"]

POLICY = """\
version: "1"
default: allow
tools:
  move_file:
    rules:
      - name: no moves
        action: deny
        message: "Files stay where they are."
  read_text_file:
    rules:
      # A day's window: the Counters page is read seconds after the call, and a window
      # that ended in between would show a fresh count.
      - name: reads per day
        rate_limit: 100/day
  write_file:
    rules:
      - name: writes need a person
        action: require_approval
        approval_mode: hold
        approval_timeout: 2m
"""


def chromium_path() -> str:
    """Debian's Chromium (Playwright cannot download a browser of its own here)."""
    path = os.environ.get("TOOLGATE_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is missing: install Debian's `chromium` (scripts/test.sh does)", pytrace=False)
    return path


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=chromium_path(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def console_url(log: Path) -> str:
    """The console's address, as the gateway printed it at start."""
    with anyio.fail_after(15):
        while True:
            found = re.search(r"web console on (http://127\.0\.0\.1:\d+)/", log.read_text())
            if found:
                return found.group(1)
            await anyio.sleep(0.05)


def console_session(gateway: Gateway, root: Path):
    token_file = gateway.dir / "admin.token"
    token_file.write_text(TOKEN)
    extra = ["--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    argv = gateway.argv(filesystem_command(root), extra=extra)
    log = gateway.new_log("toolgate-console")
    return mcp_session(argv, stderr_path=log, env=gateway.env()), log


async def signed_in_page(b: Browser, base: str, **context: Any) -> Page:
    ctx = await b.new_context(**{"viewport": {"width": 1280, "height": 800}, **context})
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{base}/?token={TOKEN}")
    assert page.url == f"{base}/", page.url
    return page


async def screenshot(page: Page, gateway: Gateway, name: str, docs: bool = True) -> None:
    """Saves a screenshot beside the test's logs (and in docs/img/ when asked, unless it
    shows a path of the machine the test ran on)."""
    path = gateway.dir / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    if docs and os.environ.get("TOOLGATE_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / f"console-{name}.png")


def files_root(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "notes.txt").write_text("first line\nsecond line\n")
    return root


async def pending(base: str) -> list[str]:
    """The ids of the requests waiting, through the admin API with the bearer token."""

    def ids() -> list[str]:
        request = urllib.request.Request(f"{base}/v1/approvals", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return [a["id"] for a in json.loads(response.read())["approvals"]]

    with anyio.fail_after(10):
        while not (found := await anyio.to_thread.run_sync(ids)):
            await anyio.sleep(0.05)
    return found


def post(url: str, body: Any, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


@needs_gateway
@pytest.mark.anyio
async def test_sign_in_then_every_page_is_safe_and_fits_a_phone(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    gateway.write_policy(POLICY)
    session, log = console_session(gateway, root)
    async with session as c, browser() as b:
        await c.session.list_tools()
        await c.session.call_tool("read_text_file", {"path": str(root / "notes.txt")})
        denied = await c.session.call_tool("move_file", {"source": str(root / "notes.txt"), "destination": str(root / "x")})
        assert is_denial(denied)
        base = await console_url(log)
        assert TOKEN not in log.read_text(), "the admin token is never logged"

        # Without a login, a page asks for the token; a wrong one is refused.
        anonymous = await (await b.new_context()).new_page()
        response = await anonymous.goto(f"{base}/tools")
        assert response is not None and response.status == 401
        await anonymous.fill("input[name=token]", "not-the-token-at-all")
        await anonymous.click("button[type=submit]")
        assert "not the admin token" in await anonymous.inner_text("main")
        await anonymous.fill("input[name=token]", TOKEN)
        await anonymous.click("button[type=submit]")
        assert await anonymous.title() == "Overview · toolgate"

        page = await signed_in_page(b, base)
        [cookie] = [c for c in await page.context.cookies() if c["name"] == "toolgate_console"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
        assert TOKEN not in cookie["value"]

        for path in PAGES:
            response = await page.goto(base + path)
            assert response is not None and response.status == 200, path
            csp = response.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
            html = await page.content()
            assert TOKEN not in html, path
            name = "overview" if path == "/" else path.strip("/")
            await screenshot(page, gateway, name, docs=path != "/policy")
        await page.goto(base + "/")
        assert "no moves" in await page.inner_text("main")
        assert await page.inner_text("#stat-calls") == "2"
        assert await page.inner_text("#stat-deny-rate") == "50.0%"
        counters = await (await page.goto(base + "/counters")).text()
        assert "read_text_file._rate_day" in counters and "1 / 100" in counters
        policy = await page.goto(base + "/policy")
        assert "reads per day" in await policy.text()

        await page.goto(f"{base}/tools/-/read_text_file")
        await screenshot(page, gateway, "tool")
        assert page.errors == [], page.errors  # type: ignore[attr-defined]

        # A phone's width: nothing wider than the screen but tables that scroll themselves.
        phone = await signed_in_page(b, base, viewport={"width": 390, "height": 844}, is_mobile=True)
        for path in PAGES:
            await phone.goto(base + path)
            overflow = await phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, overflow)
        await phone.goto(base + "/tools")
        await screenshot(phone, gateway, "tools-phone")

        # The API takes the cookie for reading, but a change needs the page's CSRF token too.
        cookie_header = {"Cookie": f"toolgate_console={cookie['value']}", "Content-Type": "application/json"}
        assert post(f"{base}/v1/approvals/apr_x/approve", {}, cookie_header) == 401
        forged = {**cookie_header, "X-Toolgate-Csrf": "forged"}
        assert post(f"{base}/v1/approvals/apr_x/approve", {}, forged) == 401
        foreign = {**cookie_header, "Origin": "https://evil.example"}
        assert post(f"{base}/v1/approvals/apr_x/approve", {}, foreign) == 403

        # A wrong token is answered late (a guesser gets few tries a second), a right one not.
        for path, headers in (
            ("/v1/approvals", {"Authorization": "Bearer wrong-token-wrong-token"}),
            ("/?token=wrong-token-wrong-token", {}),
        ):
            started = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as wrong:
                urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10)
            assert wrong.value.code == 401 and time.monotonic() - started >= 0.45, path

        # Signing out ends the login on the server, not only in this browser.
        await page.goto(base + "/")
        await page.click("header .logout button")
        request = urllib.request.Request(f"{base}/tools", headers={"Cookie": f"toolgate_console={cookie['value']}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401


@needs_gateway
@pytest.mark.anyio
async def test_a_denial_appears_on_live_within_a_second(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    gateway.write_policy(POLICY)
    session, log = console_session(gateway, root)
    async with session as c, browser() as b:
        base = await console_url(log)
        page = await signed_in_page(b, base)
        await page.goto(f"{base}/live?decision=deny")
        await page.wait_for_function("document.getElementById('live-status').textContent.startsWith('Live')")
        # An allowed call is filtered out; the denial arrives.
        await c.session.call_tool("read_text_file", {"path": str(root / "notes.txt")})
        started = time.monotonic()
        denied = await c.session.call_tool("move_file", {"source": str(root / "notes.txt"), "destination": str(root / "y")})
        assert is_denial(denied)
        row = page.locator("#live-rows tr.new")
        await row.first.wait_for(timeout=1_000)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, elapsed
        text = await row.first.inner_text()
        assert "move_file" in text and "deny" in text and "no moves" in text, text
        assert await row.count() == 1, "the allowed call is not shown under decision=deny"
        await screenshot(page, gateway, "live")


@needs_gateway
@pytest.mark.anyio
async def test_a_held_call_is_approved_and_another_denied_from_the_approvals_page(
    gateway: Gateway, tmp_path: Path
) -> None:
    root = files_root(tmp_path)
    gateway.write_policy(POLICY)
    secret = "content-only-the-approver-reveals"
    session, log = console_session(gateway, root)
    async with session as c, browser() as b:
        base = await console_url(log)
        page = await signed_in_page(b, base)
        await page.goto(f"{base}/approvals")
        results: dict[str, Any] = {}

        async def write(name: str) -> None:
            results[name] = await c.session.call_tool("write_file", {"path": str(root / name), "content": secret})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(write, "approved.txt")
            # The open page reloads itself when the request arrives.
            card = page.locator("article[data-approval]")
            await card.first.wait_for(timeout=10_000)
            assert secret not in await page.content(), "argument values stay out of the HTML"
            await screenshot(page, gateway, "approvals")
            await card.first.locator("button[data-reveal]").click()
            await page.wait_for_function(
                f"document.querySelector('pre.arguments').textContent.includes({json.dumps(secret)})"
            )
            await card.first.locator("button[data-approve]").click()
        assert not results["approved.txt"].is_error, first_text(results["approved.txt"])
        assert (root / "approved.txt").read_text() == secret

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(write, "denied.txt")
            # The page (reloading itself after the approval) shows the new request by itself.
            [request] = await pending(base)
            card = page.locator(f"article#approval-{request}")
            await card.first.wait_for(timeout=10_000)
            await card.first.locator("button[data-deny]").click()
            assert "Say why" in await card.first.locator(".result").inner_text()
            await card.first.locator("input[data-reason-for]").fill("Keep the tree clean.")
            await card.first.locator("button[data-deny]").click()
        denied = results["denied.txt"]
        assert denied.is_error and "Keep the tree clean." in first_text(denied), first_text(denied)
        assert not (root / "denied.txt").exists()

        await page.goto(f"{base}/approvals")
        history = await page.inner_text("main")
        assert "consumed" in history and "denied" in history and "Keep the tree clean." in history
        audit = gateway.wait_for_audit(lambda e: e.get("event") == "approval" and e.get("transition") in ("denied", "deny"))
        assert any(e.get("by", "").startswith("admin-api") for e in audit if e.get("event") == "approval"), audit


@needs_gateway
@pytest.mark.anyio
async def test_a_tool_pages_recommended_yaml_is_copied_and_validates(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    gateway.write_policy(POLICY)
    session, log = console_session(gateway, root)
    async with session as c, browser() as b:
        await c.session.list_tools()
        base = await console_url(log)
        page = await signed_in_page(b, base, permissions=["clipboard-read", "clipboard-write"])
        await page.goto(f"{base}/tools")
        row = page.locator("table.tools tr", has_text="directory_tree")
        assert "Read" in await row.inner_text()
        await row.locator("a").click()
        assert await page.title() == "directory_tree · toolgate"
        await page.click("button[data-copy=policy-yaml]")
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert copied == await page.inner_text("#policy-yaml")
        assert '"directory_tree":' in copied
        saved = tmp_path / "recommended.yaml"
        saved.write_text(copied)
        checked = gateway.run_cli("validate", "-c", str(saved))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        await page.click("button[data-copy=policy-json]")
        assert json.loads(await page.evaluate("navigator.clipboard.readText()"))["tools"]["directory_tree"] is not None


@needs_gateway
@pytest.mark.anyio
async def test_a_gateway_config_shows_each_servers_tools_and_health(gateway: Gateway, tmp_path: Path) -> None:
    root = files_root(tmp_path)
    (tmp_path / "files-policy.yaml").write_text(POLICY)
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({
        "version": "1",
        "servers": {
            "files": {"command": filesystem_command(root), "policy": "files-policy.yaml"},
            "memory": {"command": [node_bin(), str(MEMORY_JS)], "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.json")}},
        },
    }))
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN)
    argv = [
        str(toolgate_bin()), "-c", str(config), "--state-dsn", "memory:",
        "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir),
        "--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file),
    ]
    log = gateway.new_log("gateway-console")
    async with mcp_session(argv, stderr_path=log, env=gateway.env()) as c, browser() as b:
        await c.session.list_tools()
        denied = await c.session.call_tool("files__move_file", {"source": str(root / "notes.txt"), "destination": str(root / "z")})
        assert is_denial(denied)
        base = await console_url(log)
        page = await signed_in_page(b, base)
        servers = await page.inner_text("main")
        for server in ("files", "memory"):
            assert re.search(rf"{server}\s+up", servers), servers
        await page.goto(f"{base}/tools")
        tools = await page.inner_text("table.tools")
        assert re.search(r"files\s+read_text_file", tools) and re.search(r"memory\s+create_entities", tools), tools
        await screenshot(page, gateway, "tools-gateway")
        await page.goto(f"{base}/live?server=files")
        assert "move_file" in await page.inner_text("#live-rows")
        await page.goto(f"{base}/tools/memory/delete_entities")
        assert "Destructive" in await page.inner_text("main")
        policy = await page.goto(f"{base}/policy")
        text = await policy.text()
        assert "files-policy.yaml" in text and "writes need a person" in text

        # A request waiting for a person names its server, and is approved from the page.
        written: dict[str, Any] = {}

        async def write() -> None:
            args = {"path": str(root / "held.txt"), "content": "held"}
            written["result"] = await c.session.call_tool("files__write_file", args)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(write)
            [request] = await pending(base)
            await page.goto(f"{base}/approvals")
            card = page.locator(f"article#approval-{request}")
            await card.wait_for(timeout=10_000)
            assert re.search(r"Server\s+files", await card.inner_text()), await card.inner_text()
            await card.locator("button[data-approve]").click()
        assert not written["result"].is_error, first_text(written["result"])
        assert (root / "held.txt").read_text() == "held"


@needs_gateway
@pytest.mark.anyio
async def test_markup_in_a_servers_tool_names_is_shown_as_text(gateway: Gateway, tmp_path: Path) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    gateway.write_policy('version: "1"\ndefault: allow\n')
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN)
    extra = ["--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    server = [sys.executable, str(E2E_DIR / "servers" / "paging_server.py")]
    log = gateway.new_log("toolgate-hostile")
    env = {**gateway.env(), "PAGING_NAME": hostile, "PAGING_TOOLS": "2"}
    async with mcp_session(gateway.argv(server, extra=extra), stderr_path=log, env=env) as c, browser() as b:
        await c.session.list_tools()
        await c.session.call_tool(f"{hostile}_1", {})
        base = await console_url(log)
        page = await signed_in_page(b, base)
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        for path in ("/tools", "/live", f"/tools/-/{quote(hostile + '_1', safe='')}", "/"):
            response = await page.goto(base + path)
            assert response is not None and response.status == 200, path
            main = page.locator("main")
            assert await main.locator("img").count() == 0, path
            if path != "/":
                assert f"{hostile}_1" in await main.inner_text(), path
        await page.goto(f"{base}/tools/-/{quote(hostile + '_1', safe='')}")
        assert f"Tool 1 of {hostile}." in await page.inner_text("main")
        assert dialogs == []
