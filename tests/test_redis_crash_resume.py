"""enqueue and collect killed with kill -9 and run again: every request exactly once.

Real redis-server, the CLI as subprocesses. ASYNCFETCH_ENQUEUE_KILLS and
ASYNCFETCH_COLLECT_KILLS set how often each is killed (default 5); rerun with larger
counts to hunt for rare losses or duplicates.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from asyncfetch.queues.redis.jobs import JobKeys

from .cli_helpers import run_cli, start_cli
from .redis_server import RedisServer, running_redis

ENQUEUE_KILLS = int(os.environ.get("ASYNCFETCH_ENQUEUE_KILLS", "5"))
COLLECT_KILLS = int(os.environ.get("ASYNCFETCH_COLLECT_KILLS", "5"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    try:
        yield connection
    finally:
        await connection.aclose()


async def _kill_after_progress(
    process: asyncio.subprocess.Process, progress: AsyncIterator[int]
) -> bool:
    """kill -9 ``process`` a random moment after ``progress`` first moves; False if it
    finished first."""
    async for _moved in progress:
        break
    await asyncio.sleep(random.uniform(0, 0.05))
    if process.returncode is not None:
        return False
    process.send_signal(signal.SIGKILL)
    await process.wait()
    return True


async def _position_moves(
    client: aioredis.Redis, keys: JobKeys, process: asyncio.subprocess.Process
) -> AsyncIterator[int]:
    """Yields once the enqueue position has moved past where it was (or the process ended)."""
    start = int(await client.hget(keys.meta, "enqueue_position") or 0)
    while process.returncode is None:
        now = int(await client.hget(keys.meta, "enqueue_position") or 0)
        if now > start:
            yield now
            return
        await asyncio.sleep(0.005)
    yield start


async def test_enqueue_killed_again_and_again_adds_each_request_once(
    redis_server: RedisServer, client: aioredis.Redis, tmp_path: Path
) -> None:
    lines = 30_000
    source = tmp_path / "urls.txt"
    source.write_text("".join(f"http://127.0.0.1:9/item/{n}\n" for n in range(lines)))
    keys = JobKeys("enq")
    command = ("enqueue", str(source), "--redis", redis_server.url, "--job", "enq", "-q")
    kills = 0
    for _round in range(ENQUEUE_KILLS):
        process = await start_cli(*command, "--resume")
        if not await _kill_after_progress(process, _position_moves(client, keys, process)):
            break
        kills += 1
    done = await run_cli(*command, "--resume")
    assert done.code == 0, done.stderr
    again = await run_cli(*command, "--resume")  # finished already: adds nothing
    assert again.code == 0, again.stderr

    entries = await client.xrange(keys.requests)
    urls = Counter(orjson.loads(fields[b"r"])["url"] for _entry, fields in entries)
    lost = lines - len(urls)
    duplicated = sum(count - 1 for count in urls.values())
    print(f"\nenqueue killed {kills} times: {lost} lost, {duplicated} duplicated")
    assert (lost, duplicated) == (0, 0)
    assert kills >= min(ENQUEUE_KILLS, 2), "the enqueue finished before it could be killed"
    meta = await client.hgetall(keys.meta)
    assert int(meta[b"enqueued"]) == int(meta[b"enqueue_position"]) == lines
    assert meta[b"enqueue_finished"] == b"1"


async def test_enqueue_refuses_to_resume_with_another_input(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("http://127.0.0.1:9/a\n")
    second.write_text("http://127.0.0.1:9/b\nhttp://127.0.0.1:9/c\n")
    base = ("--redis", redis_server.url, "--job", "mix")
    assert (await run_cli("enqueue", str(first), *base)).code == 0
    again = await run_cli("enqueue", str(first), *base)
    assert again.code == 2 and "--resume" in again.stderr
    other = await run_cli("enqueue", str(second), *base, "--resume")
    assert other.code == 2 and "is not the input of the job" in other.stderr, other.stderr
    added = await run_cli("enqueue", str(second), *base, "--append", "--resume")
    assert added.code == 0 and "enqueued 2 requests" in added.stderr, added.stderr
    repeat = await run_cli("enqueue", str(second), *base, "--append", "--resume")
    assert repeat.code == 0 and "enqueued 0 requests" in repeat.stderr, repeat.stderr
