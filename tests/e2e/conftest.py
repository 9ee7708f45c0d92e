"""Fixtures for toolgate's end-to-end tests; the machinery lives in toolgate_harness.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolgate_harness import Gateway


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
