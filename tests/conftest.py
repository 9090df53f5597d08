from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .recording_server import RecordingServer


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    server = RecordingServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["aiohttp", "fast"])
def engine(request: pytest.FixtureRequest) -> str:
    """Every HTTP behaviour test runs on both engines."""
    return str(request.param)


# In CI a skipped test is a failure: a missing dependency (redis-server, trustme, ...)
# must turn the run red, never quietly shrink what was tested.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import os

    if os.environ.get("CI") and _skipped and exitstatus == 0:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI treats as failure:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = 1
