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
