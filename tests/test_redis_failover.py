"""Leases renewed by a heartbeat: fast failover from a dead worker, no double sends from a
live one, under default settings.

Real redis-server (tests/redis_server.py), real HTTP server, workers as subprocesses.
ASYNCFETCH_LONG_REQUEST_S sets how long the long request takes (default 60 s, five
default leases); it runs alongside the failover measurement, so the test takes about that
long.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asyncfetch._models import Request
from asyncfetch.queues.base import WorkItem
from asyncfetch.queues.redis.codec import encode_request
from asyncfetch.queues.redis.jobs import GROUP, JobKeys, add_requests, create_job, finish_enqueue
from asyncfetch.queues.redis.worker_queue import RedisWorkQueue, WorkerOptions

from .recording_server import RecordingServer
from .redis_server import RedisServer
from .test_redis_distributed import Worker, assert_exactly_once, collect, enqueue

LONG_REQUEST_S = float(os.environ.get("ASYNCFETCH_LONG_REQUEST_S", "60"))
FAILOVER_BOUND_S = 20.0


async def _queue_with_entries(
    client: aioredis.Redis, job: str, count: int, lease_s: float
) -> tuple[JobKeys, RedisWorkQueue, list[WorkItem]]:
    keys = JobKeys(job)
    await create_job(client, keys, {}, append=False)
    payloads = [encode_request(_request(str(n))) for n in range(count)]
    await add_requests(client, keys, payloads)
    await finish_enqueue(client, keys)
    options = WorkerOptions(consumer="alive", prefetch=count, lease_s=lease_s)
    queue = RedisWorkQueue(client, keys, options)
    items = [item for _ in range(count) if (item := await queue.get()) is not None]
    return keys, queue, items


async def test_a_live_worker_keeps_its_entries_and_a_silent_one_loses_them(
    client: aioredis.Redis,
) -> None:
    lease = 0.6

    async def reclaimable() -> list[bytes]:
        ids: list[bytes] = await client.xautoclaim(
            keys.requests, GROUP, "other", min_idle_time=int(lease * 1000), justid=True
        )
        return ids

    keys, queue, items = await _queue_with_entries(client, "renew", 3, lease)
    assert len(items) == 3
    try:
        # Held for four leases: the heartbeat keeps every entry younger than the lease.
        for _ in range(8):
            await asyncio.sleep(lease / 2)
            assert await reclaimable() == [], "a live worker's entry was reclaimable"
        assert queue.leases.renewals >= 8
        await _fall_silent(queue)  # as a killed worker does
        await asyncio.sleep(lease * 1.5)
        assert len(await reclaimable()) == 3
    finally:
        await queue.aclose()


async def _fall_silent(queue: RedisWorkQueue) -> None:
    """Stop reading and renewing, without giving anything back: as kill -9 would."""
    queue._buffer.stop()
    heartbeat = queue._heartbeat
    assert heartbeat is not None
    heartbeat.cancel()
    await asyncio.gather(heartbeat, return_exceptions=True)


async def test_an_entry_taken_by_another_worker_is_not_started(client: aioredis.Redis) -> None:
    keys, queue, _items = await _queue_with_entries(client, "taken", 2, 5.0)
    try:
        pending = await client.xpending_range(keys.requests, GROUP, "-", "+", 10)
        token = pending[0]["message_id"].decode()
        # Another worker reclaimed it (our lease ran out while Redis was unreachable, say).
        await client.xclaim(keys.requests, GROUP, "other", 0, [token], justid=True)
        await queue.leases.renew()
        assert queue.leases.lost == 1
        assert not await queue.leases.may_start(token)
        owner = await client.xpending_range(keys.requests, GROUP, token, token, 1)
        assert owner[0]["consumer"] == b"other"  # the renewal did not snatch it back
    finally:
        await queue.aclose()


async def test_a_worker_that_cannot_renew_starts_nothing_new(client: aioredis.Redis) -> None:
    keys, queue, _items = await _queue_with_entries(client, "stale", 2, 0.4)
    heartbeat = queue._heartbeat
    assert heartbeat is not None
    heartbeat.cancel()  # as if Redis stopped answering the heartbeat
    await asyncio.gather(heartbeat, return_exceptions=True)
    try:
        await asyncio.sleep(0.3)  # more than half a lease since the last renewal
        await client.xadd(keys.requests, {"r": encode_request(_request("late"))})
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.5)
        assert not waiting.done(), "a request was started on a stale lease"
        await queue.leases.renew()  # Redis is back
        item = await asyncio.wait_for(waiting, 5)
        assert item is not None
    finally:
        await queue.aclose()


def _request(name: str) -> Request:
    return Request.create(f"http://127.0.0.1/{name}")


async def _failover_seconds(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> float:
    """Kill -9 a worker holding requests; how long until all of them run on another."""
    paths = [f"/delay/{5000 + n}" for n in range(30)]
    urls = [server.url(path) for path in paths]
    options = ("-c", "30", "--per-host", "30", "--timeout", "120", "--body", "none")
    await enqueue(redis_server, "failover", urls, tmp_path, *options)
    wanted = set(paths)

    def sends(after: float = 0.0) -> list[float]:
        return [s.at for s in server.recorder.requests if s.path in wanted and s.at > after]

    doomed = await Worker.start(redis_server, "failover", tmp_path / "doomed.log")
    while len(sends()) < 30:
        await asyncio.sleep(0.05)
    survivor = await Worker.start(redis_server, "failover", tmp_path / "survivor.log")
    await asyncio.sleep(1.0)  # the survivor is up and looking for work
    doomed.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert await doomed.wait() == -signal.SIGKILL
    while len(again := sends(after=killed_at)) < 30:
        await asyncio.sleep(0.05)
        assert time.monotonic() - killed_at < 90, "the dead worker's requests never came back"
    assert await survivor.wait() == 0, survivor.log.read_text()
    records = await collect(redis_server, "failover", tmp_path / "failover.jsonl")
    assert_exactly_once(records, urls)
    assert all(record["ok"] for record in records)
    return max(again) - killed_at


async def _long_request_sends(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> int:
    """A request answering after LONG_REQUEST_S, with a second worker ready to take it."""
    path = f"/delay/{int(LONG_REQUEST_S * 1000)}"
    # --read-timeout too: its 30 s default would end (and retry) the request first.
    options = ("--timeout", "120", "--read-timeout", "120")
    await enqueue(redis_server, "long", [server.url(path)], tmp_path, *options)
    holder = await Worker.start(redis_server, "long", tmp_path / "holder.log")
    while server.recorder.hits(path) < 1:
        await asyncio.sleep(0.05)
    # Would reclaim the request if the holder's lease ran out while it waits.
    rival = await Worker.start(redis_server, "long", tmp_path / "rival.log")
    assert await holder.wait(timeout=LONG_REQUEST_S + 60) == 0, holder.log.read_text()
    assert await rival.wait() == 0, rival.log.read_text()
    records = await collect(redis_server, "long", tmp_path / "long.jsonl")
    assert [record["status"] for record in records] == [200]
    return server.recorder.hits(path)


@pytest.mark.slow
@pytest.mark.timeout(LONG_REQUEST_S + 120)
async def test_default_settings_failover_within_seconds_and_a_long_request_sent_once(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Two jobs on one Redis at once, so the long request costs no extra wall time.
    sends, failover = await asyncio.gather(
        _long_request_sends(server, redis_server, tmp_path),
        _failover_seconds(server, redis_server, tmp_path),
    )
    print(f"\nfailover after kill -9 (default lease): {failover:.1f} s")
    assert failover < FAILOVER_BOUND_S
    assert sends == 1, f"a {LONG_REQUEST_S:g} s request was sent {sends} times"
