"""End-to-end tests of shadow mode and dry-run rules against server-filesystem: a call the
policy would refuse reaches the server and is audited as what the policy would have done;
enforced rules beside dry-run ones still refuse; `status` shows shadow decisions apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolgate_harness import Gateway, filesystem_command, first_text, is_denial

pytestmark = [pytest.mark.gateway, pytest.mark.anyio]

STRICT = """\
version: "1"
mode: shadow
hide: [list_directory]
tools:
  write_file:
    rules:
      - name: no writes
        action: deny
  read_text_file:
    rules:
      - name: two reads a minute
        rate_limit: 2/minute
"""

MIXED = """\
version: "1"
tools:
  write_file:
    rules:
      - name: proposed no writes
        dry_run: true
        action: deny
  create_directory:
    rules:
      - name: no directories
        action: deny
"""


def decisions(gateway: Gateway, count: int) -> list[dict]:
    events = gateway.wait_for_audit(
        lambda e: len([x for x in gateway.audit_events() if x.get("event") == "decision"]) >= count
    )
    # One file per gateway run: in time order across them.
    return sorted((e for e in events if e.get("event") == "decision"), key=lambda e: e["ts"])


async def test_shadow_mode_forwards_and_audits_what_the_policy_would_have_done(gateway: Gateway, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.txt").write_text("hello")
    gateway.write_policy(STRICT)
    async with gateway.session(filesystem_command(root)) as connected:
        session = connected.session
        # The hidden tool is still listed: nothing is hidden in shadow mode.
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"list_directory", "write_file"} <= names

        written = await session.call_tool("write_file", {"path": str(root / "b.txt"), "content": "x"})
        assert not written.is_error, first_text(written)
        assert (root / "b.txt").read_text() == "x"
        listed = await session.call_tool("list_directory", {"path": str(root)})
        assert not listed.is_error and "a.txt" in first_text(listed)
        for _ in range(3):
            read = await session.call_tool("read_text_file", {"path": str(root / "a.txt")})
            assert not read.is_error and first_text(read) == "hello"

    found = [(d["tool"], d["decision"], d.get("rule"), d["outcome"]) for d in decisions(gateway, 5)]
    assert found == [
        ("write_file", "would_deny", "no writes", "result"),
        ("list_directory", "would_hide", None, "result"),
        ("read_text_file", "allow", None, "result"),
        ("read_text_file", "allow", None, "result"),
        ("read_text_file", "would_deny", "two reads a minute", "result"),
    ]

    status = gateway.run_cli("status", "--audit-dir", str(gateway.audit_dir))
    assert status.returncode == 0, status.stderr
    assert "would_deny" in status.stdout and "Top dry-run rules" in status.stdout
    assert "no writes" in status.stdout


async def test_dry_run_rules_beside_enforced_ones_and_the_shadow_flag(gateway: Gateway, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    gateway.write_policy(MIXED)
    async with gateway.session(filesystem_command(root)) as connected:
        session = connected.session
        written = await session.call_tool("write_file", {"path": str(root / "b.txt"), "content": "x"})
        assert not written.is_error and (root / "b.txt").exists()
        refused = await session.call_tool("create_directory", {"path": str(root / "d")})
        assert is_denial(refused) and not (root / "d").exists()

    # --shadow makes the enforced rule a dry run too, without editing the policy.
    async with gateway.session(filesystem_command(root), extra=["--shadow"]) as connected:
        made = await connected.session.call_tool("create_directory", {"path": str(root / "d")})
        assert not made.is_error and (root / "d").is_dir()

    found = [(d["tool"], d["decision"], d.get("rule")) for d in decisions(gateway, 3)]
    assert found == [
        ("write_file", "would_deny", "proposed no writes"),
        ("create_directory", "deny", "no directories"),
        ("create_directory", "would_deny", "no directories"),
    ]
