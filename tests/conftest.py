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
