"""End-to-end test of `toolgate replay`: calls recorded through a real server under a lenient
policy are re-decided under a stricter one, giving the exact list of calls that would change;
without recorded arguments, the decisions that read them are undetermined, never guessed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolgate_harness import Gateway, filesystem_command

pytestmark = [pytest.mark.gateway, pytest.mark.anyio]

LENIENT = """\
version: "1"
audit:
  arguments: {mode}
tools:
  write_file:
    rules: []
"""

STRICT = """\
version: "1"
hide: [create_directory]
tools:
  write_file:
    rules:
      - name: no secrets
        action: deny
        conditions:
          - path: args.path
            op: regex
            value: "secret"
  read_text_file:
    rules:
      - name: one read a minute
        rate_limit: 1/minute
"""


async def record_calls(gateway: Gateway, root: Path) -> None:
    async with gateway.session(filesystem_command(root)) as connected:
        s = connected.session
        await s.call_tool("write_file", {"path": str(root / "notes.txt"), "content": "a"})
        await s.call_tool("write_file", {"path": str(root / "secret.txt"), "content": "b"})
        await s.call_tool("read_text_file", {"path": str(root / "notes.txt")})
        await s.call_tool("read_text_file", {"path": str(root / "notes.txt")})
        await s.call_tool("create_directory", {"path": str(root / "d")})
    gateway.wait_for_audit(lambda e: e.get("tool") == "create_directory")


def replay(gateway: Gateway) -> dict:
    strict = gateway.dir / "strict.yaml"
    strict.write_text(STRICT)
    done = gateway.run_cli("replay", "--audit-dir", str(gateway.audit_dir), "-c", str(strict), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def changes(report: dict) -> list[tuple[str, str, str, str | None]]:
    return [(c["tool"], c["old"], c["new"], c.get("new_rule")) for c in report["changed_calls"]]


async def test_replay_with_recorded_arguments_lists_exactly_the_calls_that_would_change(gateway: Gateway, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    gateway.write_policy(LENIENT.format(mode="full"))
    await record_calls(gateway, root)
    line = next(e for e in gateway.audit_events() if e.get("tool") == "write_file")
    assert line["arguments"]["content"] == "a", "audit: {arguments: full} records them"

    report = replay(gateway)
    assert (report["calls"], report["changed"], report["undetermined"], report["unchanged"]) == (5, 3, 0, 2)
    assert changes(report) == [
        ("write_file", "allow", "deny", "no secrets"),
        ("read_text_file", "allow", "deny", "one read a minute"),
        ("create_directory", "allow", "hidden", None),
    ]

    text = gateway.run_cli("replay", "--audit-dir", str(gateway.audit_dir), "-c", str(gateway.dir / "strict.yaml"))
    assert "would change:  3" in text.stdout, text.stdout


async def test_without_recorded_arguments_decisions_that_read_them_are_undetermined(gateway: Gateway, tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    gateway.write_policy(LENIENT.format(mode="hash"))
    await record_calls(gateway, root)
    assert all("arguments" not in e for e in gateway.audit_events())

    report = replay(gateway)
    assert (report["calls"], report["changed"], report["undetermined"]) == (5, 2, 2)
    assert changes(report) == [
        ("read_text_file", "allow", "deny", "one read a minute"),
        ("create_directory", "allow", "hidden", None),
    ]
    assert {c["tool"] for c in report["undetermined_calls"]} == {"write_file"}
