"""The worker's side of a Redis job, in-process: which entries it takes, in what order,
with what delivery count, and what it gives back or dead-letters.

Against a real redis-server (tests/redis_server.py). The CLI tests run whole workers as
subprocesses; these drive one RedisWorkQueue directly, so every decision it makes is
checked against what Redis then holds (XPENDING, the dead-letter stream, the counters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from asyncfetch._models import Request, Result, Timings
from asyncfetch.policy.records import failure_result, invalid_input_result
from asyncfetch.queues.base import WorkItem
from asyncfetch.queues.redis.codec import encode_request
from asyncfetch.queues.redis.jobs import GROUP, JobKeys, add_requests, create_job, finish_enqueue
from asyncfetch.queues.redis.worker_queue import (
    RedisResultStore,
    RedisWorkQueue,
    WorkerOptions,
)

from .redis_server import running_redis

LONG_IDLE_MS = 10 * 24 * 3600 * 1000  # an entry abandoned long ago


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    with running_redis(tmp_path / "redis") as server:
        connection = aioredis.Redis.from_url(server.url)
        try:
            yield connection
        finally:
            await connection.aclose()


@pytest.fixture
async def workers() -> AsyncIterator[list[RedisWorkQueue]]:
    """Queues to close after the test, even a failed one (their readers would go on)."""
    opened: list[RedisWorkQueue] = []
    try:
        yield opened
    finally:
        for queue in opened:
            await asyncio.wait_for(queue.aclose(), 10)


def _options(consumer: str = "w1", **overrides: float | int) -> WorkerOptions:
    values: dict[str, float | int] = {"prefetch": 8, "lease_s": 3600.0, "max_deliveries": 5}
    values.update(overrides)
    return WorkerOptions(consumer=consumer, block_s=0.05, **values)  # type: ignore[arg-type]


async def _job(client: aioredis.Redis, keys: JobKeys, count: int) -> list[Request]:
    await create_job(client, keys, {"retries": 0}, append=False)
    requests = [Request.create(f"http://127.0.0.1/{n}") for n in range(count)]
    await add_requests(client, keys, [encode_request(request) for request in requests])
    await finish_enqueue(client, keys)
    return requests


async def _pending(client: aioredis.Redis, keys: JobKeys) -> dict[str, tuple[str, int]]:
    """entry id → (consumer, times delivered), as Redis holds them."""
    rows = await client.xpending_range(keys.requests, GROUP, "-", "+", 1000)
    return {
        row["message_id"].decode(): (row["consumer"].decode(), int(row["times_delivered"]))
        for row in rows
    }


def _result(request: Request) -> Result:
    return failure_result(request, "read", "reset", attempts=1, timings=Timings(), started_at="t")


async def _commit(
    client: aioredis.Redis, keys: JobKeys, queue: RedisWorkQueue, item: WorkItem
) -> None:
    assert isinstance(item.request, Request)
    store = RedisResultStore(client, keys, "w1", on_commit=queue.committed)
    await store.commit([(item, _result(item.request))])


async def _abandon(
    client: aioredis.Redis, keys: JobKeys, count: int, deliveries: int
) -> list[str]:
    """Hand ``count`` entries to a worker that then died, as if each had already been
    delivered ``deliveries`` times."""
    reply = await client.xreadgroup(GROUP, "dead", {keys.requests: ">"}, count=count)
    tokens = [entry_id.decode() for entry_id, _fields in reply[0][1]]
    for token in tokens:
        await client.xclaim(
            keys.requests, GROUP, "dead", 0, [token], idle=LONG_IDLE_MS, retrycount=deliveries
        )
    return tokens


async def test_a_restarted_worker_takes_its_own_pending_entries_first(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("restart")
    requests = await _job(client, keys, 3)
    # The worker's previous life read two entries, then was killed before finishing them.
    reply = await client.xreadgroup(GROUP, "w1", {keys.requests: ">"}, count=2)
    held = [entry_id.decode() for entry_id, _fields in reply[0][1]]
    queue = RedisWorkQueue(client, keys, _options("w1"), clock=lambda: 42.0)
    workers.append(queue)
    items = [await queue.get() for _ in range(3)]
    assert all(item is not None for item in items)
    assert [item.token for item in items[:2]] == held  # type: ignore[union-attr]
    assert [item.request for item in items] == requests  # type: ignore[union-attr]
    # Delivered once before the restart and once now; the new entry once.
    assert [item.deliveries for item in items] == [2, 2, 1]  # type: ignore[union-attr]
    assert [item.enqueued_at for item in items] == [42.0, 42.0, 42.0]  # type: ignore[union-attr]
    for item in items:
        await _commit(client, keys, queue, item)  # type: ignore[arg-type]
    assert await asyncio.wait_for(queue.get(), 10) is None  # the job is complete
    assert await asyncio.wait_for(queue.get(), 10) is None  # for every worker task
    await queue.aclose()
    assert await _pending(client, keys) == {}
    assert await client.xlen(keys.results) == 3


async def test_an_entry_delivered_too_often_is_dead_lettered(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("poison")
    [request] = await _job(client, keys, 1)
    [token] = await _abandon(client, keys, 1, deliveries=3)
    queue = RedisWorkQueue(client, keys, _options("w1", max_deliveries=3))
    workers.append(queue)
    assert await asyncio.wait_for(queue.get(), 10) is None  # nothing to run: the job is over
    await queue.aclose()
    assert queue.dead_lettered == 1
    [(_dead_id, fields)] = await client.xrange(keys.dead)
    assert fields[b"id"].decode() == request.id
    assert orjson.loads(fields[b"r"]) == {
        "id": request.id,
        "entry": token,
        "url": "http://127.0.0.1/0",
        "deliveries": 3,
        "reason": (
            "delivered 3 times without a result: each worker handling it crashed or"
            " stopped renewing its lease of 3600 s"
        ),
    }
    assert await client.hget(keys.meta, "dead") == b"1"
    assert await _pending(client, keys) == {}


async def test_an_entry_at_the_delivery_limit_is_still_run(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("limit")
    await _job(client, keys, 1)
    await _abandon(client, keys, 1, deliveries=2)
    queue = RedisWorkQueue(client, keys, _options("w1", max_deliveries=3))
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None and item.deliveries == 3
    await _commit(client, keys, queue, item)
    assert await asyncio.wait_for(queue.get(), 10) is None
    await queue.aclose()
    assert queue.dead_lettered == 0


async def test_a_worker_holds_one_suspect_at_a_time(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("suspects")
    await _job(client, keys, 2)
    first, second = await _abandon(client, keys, 2, deliveries=2)  # each a suspect now
    # A lease long enough that no renewal interval (a quarter of it) passes in the test:
    # the suspect given back must be reclaimed because the held one was committed.
    queue = RedisWorkQueue(client, keys, _options("w1", lease_s=3600.0, max_deliveries=9))
    workers.append(queue)
    held = await asyncio.wait_for(queue.get(), 10)
    assert held is not None and (held.token, held.deliveries) == (first, 3)
    # The second suspect went back with the delivery that brought it taken away.
    pending = await _pending(client, keys)
    assert pending[second] == ("w1", 2)
    await _commit(client, keys, queue, held)  # the suspect is done: the next may come
    following = await asyncio.wait_for(queue.get(), 30)
    assert queue.reclaimed == 3  # the two from the dead worker, then the one given back
    assert following is not None and (following.token, following.deliveries) == (second, 3)
    await _commit(client, keys, queue, following)
    assert await asyncio.wait_for(queue.get(), 10) is None
    await queue.aclose()


async def test_a_malformed_entry_becomes_an_invalid_input_item(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("malformed")
    await create_job(client, keys, {"retries": 0}, append=False)
    await client.xadd(keys.requests, {"r": b"{not json"})
    await client.hincrby(keys.meta, "enqueued", 1)
    await finish_enqueue(client, keys)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None
    assert item.request.message == "malformed queued request (JSONDecodeError)"  # type: ignore[union-attr]
    assert item.request.raw == "{not json"  # type: ignore[union-attr]
    store = RedisResultStore(client, keys, "w1", on_commit=queue.committed)
    await store.commit([(item, invalid_input_result(item.request))])  # type: ignore[arg-type]
    assert await asyncio.wait_for(queue.get(), 10) is None  # still owed one record: done
    await queue.aclose()
