"""Fixtures for toolgate's end-to-end tests; the machinery lives in toolgate_harness.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from toolgate_harness import Gateway


# Many tests count calls against `N/minute` limits, whose windows are fixed to the clock's
# minutes: a test whose calls straddle a minute's end would see the count start again. A
# test starting in a minute's last seconds waits for the next one, so calls made within
# that margin share a window. (Tests whose calls span longer use longer windows.)
MINUTE_MARGIN_S = 5.0


@pytest.fixture(autouse=True)
def start_clear_of_a_minute_boundary() -> None:
    into_minute = time.time() % 60
    if into_minute > 60 - MINUTE_MARGIN_S:
        time.sleep(60 - into_minute + 0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    """This test's policy file, state and log directories, and ways to start toolgate."""
    return Gateway(tmp_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """On failure, show what toolgate (and the servers) wrote to stderr."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        gw = getattr(item, "funcargs", {}).get("gateway")
        if isinstance(gw, Gateway):
            text = gw.stderr_report()
            if text:
                report.sections.append(("stderr of toolgate and servers", text))
