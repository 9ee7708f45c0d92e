"""End-to-end test of `idempotency_window` with a real server whose tool has a countable side
effect: a retried call runs once, and every caller gets its result."""

from __future__ import annotations

import sys

import anyio
import pytest

from toolgate_harness import E2E_DIR, Gateway, first_text

pytestmark = [pytest.mark.gateway, pytest.mark.anyio]

TICKET_SERVER = [sys.executable, str(E2E_DIR / "servers" / "ticket_server.py")]

POLICY = """\
version: "1"
tools:
  open_ticket:
    idempotency_window: 5m
    rules: []
"""


async def test_a_retried_call_runs_once_and_both_callers_get_its_result(gateway: Gateway) -> None:
    gateway.write_policy(POLICY)
    async with gateway.session(TICKET_SERVER) as connected:
        session = connected.session
        answers: list[str] = []

        async def call() -> None:
            result = await session.call_tool("open_ticket", {"title": "Bug", "delay_ms": 300})
            answers.append(first_text(result))

        # Two identical calls in flight at once (an agent retrying): the second waits.
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            await anyio.sleep(0.05)
            tasks.start_soon(call)
        assert answers == ["ticket 1: Bug", "ticket 1: Bug"]

        # Later in the window: the same answer, and the server is not asked.
        again = await session.call_tool("open_ticket", {"delay_ms": 300, "title": "Bug"})
        assert first_text(again) == "ticket 1: Bug"
        # Another call is another ticket: the server ran the first one once.
        other = await session.call_tool("open_ticket", {"title": "Other"})
        assert first_text(other) == "ticket 2: Other"

    events = gateway.wait_for_audit(lambda e: e.get("decision") == "duplicate")
    decisions = sorted(
        (e for e in events if e.get("event") == "decision"), key=lambda e: e["ts"]
    )
    assert [(d["decision"], d["outcome"]) for d in decisions].count(("duplicate", "result")) == 2
    assert [d["decision"] for d in decisions].count("allow") == 2
