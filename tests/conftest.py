from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from .recording_server import RecordingServer
from .redis_server import RedisServer, running_redis

_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    _checkout_basetemp(config)
    _rebuild_stale_native_modules()


def _checkout_basetemp(config: pytest.Config) -> None:
    """Temporary directories under a root of this checkout's own: pytest's shared root
    keeps only the three newest runs, so two checkouts tested at once would delete each
    other's files. (Nested runs, as test_native starts, still get numbered directories.)"""
    import hashlib
    import os
    import tempfile

    if config.option.basetemp is None and "PYTEST_DEBUG_TEMPROOT" not in os.environ:
        tag = hashlib.sha256(str(_ROOT).encode()).hexdigest()[:8]
        root = Path(tempfile.gettempdir()) / f"asyncfetch-tests-{tag}"
        root.mkdir(exist_ok=True)
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(root)


def _rebuild_stale_native_modules() -> None:
    """Never test stale compiled code: Python imports a compiled module in preference to
    the source beside it, so after an edit the tests would run the old code. Rebuild
    what is stale, or stop and say which command does it."""
    import subprocess
    import sys

    native = [sys.executable, str(_ROOT / "tools" / "native.py")]
    status = subprocess.run([*native, "status"], capture_output=True, text=True, check=False)
    if status.returncode == 0:
        return
    print(f"\nasyncfetch: {status.stdout.strip()}; rebuilding them", flush=True)
    build = subprocess.run([*native, "build", "--required"], text=True, check=False)
    if build.returncode != 0:
        pytest.exit(
            "compiled modules are older than their sources and the rebuild failed: "
            "run `make native`, or `python tools/native.py clean` to test plain Python",
            returncode=3,
        )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port (tests/redis_server.py)."""
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A redis-py client of ``redis_server``."""
    connection = aioredis.Redis.from_url(redis_server.url)
    try:
        yield connection
    finally:
        await connection.aclose()


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
