"""The audit log's hash chain end to end: a gateway (server-everything) and the `approvals`
command write lines, `toolgate audit verify` accepts the log, and names the line a test
changed, removed or swapped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolgate_harness import Gateway, first_text

POLICY = """\
version: "1"
tools:
  echo:
    rules:
      - name: echo limit
        rate_limit: 2/minute
"""


def verify(gateway: Gateway, audit_dir: Path) -> tuple[int, str]:
    done = gateway.run_cli("audit", "verify", "--audit-dir", str(audit_dir))
    return done.returncode, done.stdout + done.stderr


@pytest.mark.anyio
async def test_audit_verify_accepts_the_log_and_names_the_line_a_test_tampered_with(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    async with gateway.session() as c:
        for i in range(4):
            first_text(await c.session.call_tool("echo", {"message": f"m{i}"}))
    # A line from a short-lived process joins its own chain.
    listed = gateway.run_cli("approvals", "list", "--state-dir", str(gateway.state_dir), "--audit-dir", str(gateway.audit_dir))
    assert listed.returncode == 0, listed.stderr
    gateway.wait_for_audit(lambda e: e.get("decision") == "deny")
    code, out = verify(gateway, gateway.audit_dir)
    assert code == 0 and out.startswith("Verified "), out
    [live] = [p for p in gateway.audit_dir.glob("toolgate-*.jsonl") if "cli" not in p.name]
    lines = live.read_text().splitlines()
    assert len(lines) >= 5 and all(json.loads(line)["prev"] for line in lines)

    def tampered(name: str, edit) -> tuple[int, str, Path]:
        copy = gateway.dir / name
        copy.mkdir()
        shutil.copy(live, copy / live.name)
        (copy / live.name).write_text("\n".join(edit(list(lines))) + "\n")
        code, out = verify(gateway, copy)
        return code, out, copy / live.name

    # A denial made to look allowed: the line after it names the break.
    denied = next(i for i, line in enumerate(lines) if '"decision":"deny"' in line)
    code, out, path = tampered("changed", lambda ls: ls[:denied] + [ls[denied].replace('"decision":"deny"', '"decision":"allow"')] + ls[denied + 1 :])
    assert code == 1 and out.startswith(f"{path}:{denied + 2}:"), out
    code, out, path = tampered("removed", lambda ls: ls[:denied] + ls[denied + 1 :])
    assert code == 1 and out.startswith(f"{path}:{denied + 1}:"), out
    code, out, path = tampered("swapped", lambda ls: ls[:1] + [ls[2], ls[1]] + ls[3:])
    assert code == 1 and out.startswith(f"{path}:2:"), out
