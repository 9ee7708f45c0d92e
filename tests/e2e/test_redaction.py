"""End-to-end test of result redaction through server-filesystem: files holding each kind of
secret are read through toolgate, and the client never sees one — each is replaced, or the
whole result withheld where the rule says block — while the audit log counts what was found
and never holds a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolgate_harness import Gateway, filesystem_command, first_text

pytestmark = [pytest.mark.gateway, pytest.mark.anyio]

POLICY = """\
version: "1"
redact:
  secrets:
    detectors: [aws_access_key, github_token, slack_token, jwt, generic_api_key]
  internal_hosts:
    pattern: "\\\\b[a-z0-9-]+\\\\.corp\\\\.example\\\\.com\\\\b"
    replace: "[REDACTED:host]"
  private_keys:
    detectors: [private_key]
    on_match: block
tools:
  read_text_file:
    redact: [internal_hosts]
    rules: []
  "*":
    redact: [secrets, private_keys]
    rules: []
"""

SECRETS = {
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "slack_token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
}
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"


async def test_the_client_never_sees_a_secret(gateway: Gateway, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    for name, secret in SECRETS.items():
        (root / f"{name}.txt").write_text(f"config for {name}: {secret}\nhost db1.corp.example.com\n")
    (root / "settings.env").write_text("API_KEY=sk_9f8a7b6c5d4e3f2a1b0c9d8e\nDEBUG=false\n")
    (root / "id_ed25519").write_text(PRIVATE_KEY)
    (root / "plain.txt").write_text("nothing to hide here\n")
    gateway.write_policy(POLICY)

    async with gateway.session(filesystem_command(root)) as connected:
        s = connected.session
        for name, secret in SECRETS.items():
            result = await s.call_tool("read_text_file", {"path": str(root / f"{name}.txt")})
            text = first_text(result)
            assert secret not in text and secret not in str(result.structured_content)
            assert f"[REDACTED:{name}]" in text and "[REDACTED:host]" in text, text
        env = first_text(await s.call_tool("read_text_file", {"path": str(root / "settings.env")}))
        assert env == "API_KEY=[REDACTED:generic_api_key]\nDEBUG=false\n"
        # read_file has only the "*" rules: the host stays, the key goes.
        other = first_text(await s.call_tool("read_file", {"path": str(root / "aws_access_key.txt")}))
        assert "[REDACTED:aws_access_key]" in other and "db1.corp.example.com" in other
        # A private key withholds the whole result.
        withheld = await s.call_tool("read_text_file", {"path": str(root / "id_ed25519")})
        assert withheld.is_error and "PRIVATE KEY" not in first_text(withheld)
        assert first_text(withheld).startswith("[REDACTED] The server's result was withheld")
        # A clean file passes untouched.
        assert first_text(await s.call_tool("read_text_file", {"path": str(root / "plain.txt")})) == "nothing to hide here\n"

    events = gateway.wait_for_audit(lambda e: e.get("withheld_by") == "private_keys")
    decisions = [e for e in events if e.get("event") == "decision"]
    counted = [e["redactions"] for e in decisions if "redactions" in e]
    # The server returns the text twice (content and structuredContent): both are redacted.
    assert {"secrets/aws_access_key": 2, "internal_hosts/internal_hosts": 2} in counted
    assert any(e.get("withheld_by") == "private_keys" for e in decisions)
    log = "\n".join(p.read_text() for p in gateway.audit_dir.glob("*.jsonl"))
    for secret in [*SECRETS.values(), "sk_9f8a7b6c5d4e3f2a1b0c9d8e", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU="]:
        assert secret not in log
