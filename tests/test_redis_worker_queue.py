"""The worker's side of a Redis job, in-process: which entries it takes, in what order,
with what delivery count, and what it gives back or dead-letters.

Against a real redis-server (tests/redis_server.py). The CLI tests run whole workers as
subprocesses; these drive one RedisWorkQueue directly, so every decision it makes is
checked against what Redis then holds (XPENDING, the dead-letter stream, the counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from asyncfetch._errors import QueueError
from asyncfetch._models import Request, Result, Timings
from asyncfetch.policy.records import failure_result, invalid_input_result
from asyncfetch.queues.base import WorkItem
from asyncfetch.queues.redis.codec import encode_request
from asyncfetch.queues.redis.jobs import GROUP, JobKeys, add_requests, create_job, finish_enqueue
from asyncfetch.queues.redis.worker_queue import (
    RedisResultStore,
    RedisWorkQueue,
    WorkerOptions,
    _chunks,
)

from .redis_results import stored_results
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
    assert len(await stored_results(client, keys.results)) == 3


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


# -- what a worker asks of Redis, and what it leaves there ------------------------------


async def _calls(client: aioredis.Redis, command: str) -> int:
    """How often the server has run ``command`` (scripts' calls included)."""
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check`` holds, looking every 10 ms; fail after 20 s."""
    for _ in range(2000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def _drain(
    client: aioredis.Redis, keys: JobKeys, queue: RedisWorkQueue, count: int
) -> list[WorkItem]:
    """Take ``count`` items, committing each, then check the worker ends."""
    items = []
    for _ in range(count):
        item = await asyncio.wait_for(queue.get(), 10)
        assert item is not None
        await _commit(client, keys, queue, item)
        items.append(item)
    assert await asyncio.wait_for(queue.get(), 10) is None
    return items


async def test_a_worker_reads_ahead_only_as_far_as_its_prefetch(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("prefetch")
    await _job(client, keys, 60)
    await _abandon(client, keys, 20, deliveries=1)  # 20 to reclaim, 40 never delivered
    queue = RedisWorkQueue(client, keys, _options("w1", prefetch=4))
    workers.append(queue)
    assert await asyncio.wait_for(queue.get(), 10) is not None
    held = [consumer for consumer, _count in (await _pending(client, keys)).values()]
    # Read in batches of half the prefetch (2): a full buffer (4), the item taken and a
    # batch on its way at most; not all 60 at once.
    assert 1 <= held.count("w1") <= 8
    assert held.count("dead") >= 20 - 8


async def test_a_worker_takes_its_own_pending_entries_over_several_reads(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("own")
    await _job(client, keys, 7)
    reply = await client.xreadgroup(GROUP, "w1", {keys.requests: ">"}, count=7)
    held = [entry_id.decode() for entry_id, _fields in reply[0][1]]
    queue = RedisWorkQueue(client, keys, _options("w1", prefetch=6))  # 3 a read
    workers.append(queue)
    items = await _drain(client, keys, queue, 7)
    assert [item.token for item in items] == held  # each once, in order
    assert [item.deliveries for item in items] == [2] * 7
    await queue.aclose()
    assert queue.feeder_error() is None


async def test_fresh_entries_cost_no_delivery_count_query(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("fresh")
    await _job(client, keys, 5)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    items = await _drain(client, keys, queue, 5)
    assert [item.deliveries for item in items] == [1] * 5
    assert await _calls(client, "xpending") == 0  # never delivered before: nothing to ask
    await queue.aclose()
    assert queue.feeder_error() is None


async def test_an_idle_worker_waits_inside_redis_and_reclaims_once_a_renewal(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("idle")
    await _job(client, keys, 0)
    queue = RedisWorkQueue(client, keys, _options("w1", follow=True))
    workers.append(queue)
    waiter = asyncio.create_task(queue.get())

    async def blocked_in_a_read() -> bool:
        clients = await client.client_list()
        return any(c["cmd"] == "xreadgroup" and "b" in c["flags"] for c in clients)

    await _eventually(blocked_in_a_read, "the worker blocked in XREADGROUP")
    await _eventually(lambda: _calls_at_least(client, "xreadgroup", 6), "six reads of new entries")
    # Looking for abandoned entries once per renewal interval (15 min here), not per read.
    assert await _calls(client, "xautoclaim") == 1
    queue.stop()
    assert await asyncio.wait_for(waiter, 10) is None
    await queue.aclose()
    assert queue.feeder_error() is None


async def _calls_at_least(client: aioredis.Redis, command: str, count: int) -> bool:
    return await _calls(client, command) >= count


async def test_a_worker_ends_soon_after_its_last_commit_however_long_reads_may_wait(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    # A read blocked in Redis for block_s would keep the worker idle that long after the
    # commit that completed the job: with requests of its own, a worker waits for them.
    keys = JobKeys("tail")
    await _job(client, keys, 1)
    options = WorkerOptions(consumer="w1", prefetch=8, lease_s=3600.0, block_s=60.0)
    queue = RedisWorkQueue(client, keys, options)
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None
    ending = asyncio.create_task(queue.get())
    await _eventually(lambda: _calls_at_least(client, "xreadgroup", 3), "reads of an empty stream")
    assert not ending.done()  # the job is not complete: the worker waits for more
    await _commit(client, keys, queue, item)
    assert await asyncio.wait_for(ending, 10) is None  # not after the 60 s of a read


async def test_an_idle_worker_ends_soon_after_another_completes_the_job(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    # Everything enqueued and read by another worker: this one has nothing to do, and the
    # job completes with the other's commit, which no read of new entries reports.
    keys = JobKeys("idle-end")
    [request] = await _job(client, keys, 1)
    reply = await client.xreadgroup(GROUP, "other", {keys.requests: ">"}, count=1)
    token = reply[0][1][0][0].decode()
    options = WorkerOptions(consumer="w1", prefetch=8, lease_s=3600.0, block_s=60.0)
    queue = RedisWorkQueue(client, keys, options)
    workers.append(queue)
    ending = asyncio.create_task(queue.get())
    await _eventually(lambda: _calls_at_least(client, "xreadgroup", 3), "reads of an empty stream")
    assert not ending.done()
    item = WorkItem(request, enqueued_at=0.0, token=token)
    await RedisResultStore(client, keys, "other").commit([(item, _result(request))])
    assert await asyncio.wait_for(ending, 10) is None  # not after the 60 s of a read


async def test_a_following_worker_waits_its_whole_block_for_new_entries(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    # The short reads of a draining job are for workers that end with it: one that
    # follows the job keeps waiting inside Redis for block_s, not polling.
    keys = JobKeys("follow-block")
    await _job(client, keys, 0)
    options = WorkerOptions(consumer="w1", prefetch=8, lease_s=3600.0, block_s=3.0, follow=True)
    queue = RedisWorkQueue(client, keys, options)
    workers.append(queue)
    waiter = asyncio.create_task(queue.get())
    await _eventually(lambda: _calls_at_least(client, "xreadgroup", 2), "a read of new entries")
    await asyncio.sleep(1.0)  # ten reads at the draining pace of 100 ms
    assert await _calls(client, "xreadgroup") <= 3
    queue.stop()
    assert await asyncio.wait_for(waiter, 10) is None


async def test_a_following_worker_goes_on_after_the_job_completes(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("follow")
    await _job(client, keys, 1)
    queue = RedisWorkQueue(client, keys, _options("w1", follow=True))
    workers.append(queue)
    first = await asyncio.wait_for(queue.get(), 10)
    assert first is not None
    await _commit(client, keys, queue, first)
    later = Request.create("http://127.0.0.1/later")
    await add_requests(client, keys, [encode_request(later)])
    second = await asyncio.wait_for(queue.get(), 10)
    assert second is not None and second.request == later
    queue.stop()
    await queue.aclose()


async def test_abandoned_entries_are_reclaimed_batch_after_batch(
    client: aioredis.Redis, workers: list[RedisWorkQueue], caplog: pytest.LogCaptureFixture
) -> None:
    keys = JobKeys("batches")
    await _job(client, keys, 10)
    tokens = await _abandon(client, keys, 10, deliveries=1)
    caplog.set_level(logging.INFO, logger="asyncfetch")
    queue = RedisWorkQueue(client, keys, _options("w1", prefetch=2))  # 1 a claim
    workers.append(queue)
    items = [await asyncio.wait_for(queue.get(), 10) for _ in range(10)]
    reads, claims = await _calls(client, "xreadgroup"), await _calls(client, "xautoclaim")
    # While more may be claimable, the next claim follows at once: one read (of 50 ms at
    # most) between two, where waiting even a second between claims would mean 20. The
    # margin allows for reads while this test was slow to look.
    assert claims >= 10 and reads <= claims + 10
    assert sorted(item.token for item in items) == sorted(tokens)  # type: ignore[union-attr,type-var]
    assert [item.deliveries for item in items] == [2] * 10  # type: ignore[union-attr]
    assert queue.reclaimed == 10
    assert caplog.messages.count("reclaimed 1 requests whose lease ran out") == 10
    for item in items:
        await _commit(client, keys, queue, item)  # type: ignore[arg-type]
    assert await asyncio.wait_for(queue.get(), 10) is None
    await queue.aclose()
    assert queue.feeder_error() is None


async def test_an_entry_deleted_from_the_stream_is_not_counted_as_reclaimed(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("deleted")
    await _job(client, keys, 2)
    first, second = await _abandon(client, keys, 2, deliveries=1)
    await client.xdel(keys.requests, first)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None and item.token == second
    assert queue.reclaimed == 1
    queue.stop()
    await queue.aclose()
    assert queue.feeder_error() is None


async def test_a_live_worker_renews_the_lease_of_what_it_holds(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("renew")
    await _job(client, keys, 1)
    queue = RedisWorkQueue(client, keys, _options("w1", lease_s=1.0))
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None
    # The heartbeat is a task of its own, found by name in a task dump.
    assert "asyncfetch-leases" in {task.get_name() for task in asyncio.all_tasks()}

    async def renewed_five_times() -> bool:
        return queue.leases.renewals >= 5

    # Five renewals, a quarter lease apart: read longer than the lease ago; the last
    # renewal leaves a whole second for a loaded machine to reach the next line.
    await _eventually(renewed_five_times, "five renewals")
    # Longer than the lease since it was read, yet no other worker may claim it.
    claimed = await client.xautoclaim(keys.requests, GROUP, "w2", min_idle_time=1000)
    assert claimed[1] == []
    assert (await _pending(client, keys))[item.token] == ("w1", 1)  # type: ignore[index]
    await _commit(client, keys, queue, item)
    assert await asyncio.wait_for(queue.get(), 10) is None
    await queue.aclose()


async def test_a_stopped_worker_hands_out_nothing_and_gives_back_what_it_read_ahead(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("stop")
    await _job(client, keys, 6)
    queue = RedisWorkQueue(client, keys, _options("w1", prefetch=8))
    workers.append(queue)
    started = await asyncio.wait_for(queue.get(), 10)
    assert started is not None
    queue.stop()
    assert await asyncio.wait_for(queue.get(), 10) is None
    await queue.aclose()
    assert queue.feeder_error() is None
    pending = await _pending(client, keys)
    # The one started keeps its delivery; those read ahead go back as never delivered.
    assert pending.pop(started.token) == ("w1", 1)  # type: ignore[arg-type]
    assert sorted(pending.values()) == [("w1", 0)] * 5
    rows = await client.xpending_range(keys.requests, GROUP, "-", "+", 10)
    assert all(row["time_since_delivered"] > LONG_IDLE_MS for row in rows)  # claimable


async def test_closing_a_worker_that_never_read_leaves_redis_as_it_was(
    client: aioredis.Redis,
) -> None:
    keys = JobKeys("unread")
    await _job(client, keys, 2)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    await asyncio.wait_for(queue.aclose(), 10)
    assert await _pending(client, keys) == {}
    assert await client.xinfo_consumers(keys.requests, GROUP) == []


async def test_a_worker_that_cannot_give_back_says_so_and_loses_nothing(
    client: aioredis.Redis, workers: list[RedisWorkQueue], caplog: pytest.LogCaptureFixture
) -> None:
    keys = JobKeys("cannot")
    await _job(client, keys, 3)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    assert await asyncio.wait_for(queue.get(), 10) is not None
    async with _denied(client, "xpending"):
        await queue.aclose()
    [warning] = [m for m in caplog.messages if m.startswith("could not give back")]
    assert warning.startswith("could not give back unstarted requests (")
    assert "xpending" in warning and warning.endswith("); others will")
    assert sorted(await _pending(client, keys)) == sorted(
        entry_id.decode() for entry_id, _fields in await client.xrange(keys.requests)
    )


async def _feeder_error(queue: RedisWorkQueue) -> str:
    assert await asyncio.wait_for(queue.get(), 10) is None
    error = queue.feeder_error()
    assert isinstance(error, QueueError)
    return str(error)


@contextlib.asynccontextmanager
async def _denied(client: aioredis.Redis, command: str | None) -> AsyncIterator[None]:
    """Redis refuses ``command`` (NOPERM) to everyone meanwhile: a deterministic error."""
    if command is None:
        yield
        return
    await client.execute_command("ACL", "SETUSER", "default", f"-{command}")
    try:
        yield
    finally:
        await client.execute_command("ACL", "SETUSER", "default", f"+{command}")


async def _spoil(client: aioredis.Redis, keys: JobKeys, what: str | None) -> None:
    """Break one thing of the job: its group, or a key replaced by one of the wrong type."""
    if what == "group":
        await client.xgroup_destroy(keys.requests, GROUP)
    elif what is not None:
        key = getattr(keys, what)
        await client.delete(key)
        await client.set(key, "of the wrong type")


@pytest.mark.parametrize(
    ("step", "entries", "deliveries", "denied", "spoiled"),
    [
        ("reading requests", 1, 0, None, "group"),
        ("reclaiming requests", 1, 0, "xautoclaim", None),
        ("reading job", 0, 0, None, "meta"),
        ("reading delivery counts", 1, 1, "xpending", None),
        ("releasing requests", 2, 2, "xclaim", None),  # two suspects: one is given back
        ("dead-lettering a request", 1, 3, None, "dead"),
    ],
)
async def test_a_redis_error_says_which_step_of_the_worker_met_it(
    client: aioredis.Redis,
    workers: list[RedisWorkQueue],
    step: str,
    entries: int,
    deliveries: int,
    denied: str | None,
    spoiled: str | None,
) -> None:
    keys = JobKeys("steps")
    await _job(client, keys, entries)
    if deliveries:
        await _abandon(client, keys, entries, deliveries=deliveries)
    await _spoil(client, keys, spoiled)
    queue = RedisWorkQueue(client, keys, _options("w1", max_deliveries=3))
    workers.append(queue)
    async with _denied(client, denied):
        message = await _feeder_error(queue)
    assert message.startswith(f"Redis error while {step}: ")


async def test_a_commit_that_redis_refuses_says_so(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("refused")
    await _job(client, keys, 1)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None
    await client.set(keys.results, "not a stream")
    with pytest.raises(QueueError) as raised:
        await _commit(client, keys, queue, item)
    assert str(raised.value).startswith("Redis error while committing results: ")
    queue.stop()


async def test_a_result_without_its_entry_id_is_refused(client: aioredis.Redis) -> None:
    keys = JobKeys("tokenless")
    request = Request.create("http://127.0.0.1/x")
    store = RedisResultStore(client, keys, "w1")
    item = WorkItem(request, enqueued_at=0.0)
    with pytest.raises(ValueError, match=r"^a Redis job item must carry its stream entry id$"):
        await store.commit([(item, _result(request))])


async def test_duplicates_are_counted_over_every_commit(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("dupes")
    await _job(client, keys, 2)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    store = RedisResultStore(client, keys, "w1")
    for _ in range(2):
        item = await asyncio.wait_for(queue.get(), 10)
        assert item is not None and isinstance(item.request, Request)
        completed = [(item, _result(item.request))]
        await store.commit(completed)
        await store.commit(completed)  # a resend after a lost reply, say
    assert store.duplicates == 2
    assert len(await stored_results(client, keys.results)) == 2


async def test_a_renewal_during_a_commit_does_not_count_the_entry_as_lost(
    client: aioredis.Redis, workers: list[RedisWorkQueue], caplog: pytest.LogCaptureFixture
) -> None:
    keys = JobKeys("during")
    await _job(client, keys, 1)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    item = await asyncio.wait_for(queue.get(), 10)
    assert item is not None and isinstance(item.request, Request)
    # Acknowledged, but the worker has not yet heard back (no on_commit): a renewal now
    # finds the entry gone from our pending list.
    store = RedisResultStore(client, keys, "w1", leases=queue.leases)
    await store.commit([(item, _result(item.request))])
    await queue.leases.renew()
    assert queue.leases.lost == 0
    assert not [m for m in caplog.messages if "reclaimed by other workers" in m]
    queue.stop()


async def test_dead_letters_are_counted_and_logged_by_record_id(
    client: aioredis.Redis, workers: list[RedisWorkQueue], caplog: pytest.LogCaptureFixture
) -> None:
    keys = JobKeys("dead-ids")
    await create_job(client, keys, {"retries": 0}, append=False)
    request = Request.create("http://127.0.0.1/poison")
    await add_requests(client, keys, [encode_request(request)])
    await client.xadd(keys.requests, {"r": b"{not json"})
    await client.hincrby(keys.meta, "enqueued", 1)
    await finish_enqueue(client, keys)
    await _abandon(client, keys, 2, deliveries=4)
    queue = RedisWorkQueue(client, keys, _options("w1", max_deliveries=3))
    workers.append(queue)
    assert await asyncio.wait_for(queue.get(), 10) is None
    await queue.aclose()
    assert queue.dead_lettered == 2
    dead = [fields for _id, fields in await client.xrange(keys.dead)]
    invalid_id = orjson.loads(dead[1][b"r"])["id"]
    assert dead[0][b"id"].decode() == request.id
    assert dead[1][b"id"].decode() == invalid_id != request.id
    logged = [m for m in caplog.messages if m.startswith("dead-lettered")]
    assert logged == [
        f"dead-lettered request {request.id} after 4 deliveries",
        f"dead-lettered request {invalid_id} after 4 deliveries",
    ]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([], []),
        ([0] * 100, [100]),
        ([0] * 101, [100, 1]),
        ([0] * 250, [100, 100, 50]),
        # 4 MiB in all with 512 bytes counted per record: the limit itself still fits...
        ([2 * 1024 * 1024 - 512] * 2, [2]),
        # ...one byte more does not, and the next chunk counts from its first record.
        ([2 * 1024 * 1024 - 511, 2 * 1024 * 1024 - 512, 2 * 1024 * 1024 - 512], [1, 2]),
        ([5 * 1024 * 1024, 0, 0], [1, 2]),  # one record over the limit goes alone
        # A new chunk counts its first record with its 512 bytes too.
        ([5 * 1024 * 1024, 2 * 1024 * 1024 - 511, 2 * 1024 * 1024 - 512], [1, 1, 1]),
        ([1024 * 1024] * 3 + [1024 * 1024 - 2048], [4]),
        ([1024 * 1024] * 3 + [1024 * 1024 - 2047], [3, 1]),
    ],
)
def test_commits_are_split_by_count_and_by_size(sizes: list[int], expected: list[int]) -> None:
    requests = [Request.create(f"http://127.0.0.1/{n}") for n in range(len(sizes))]
    batch = []
    for request, size in zip(requests, sizes, strict=True):
        result = _result(request)
        result.bytes = size
        batch.append((WorkItem(request, enqueued_at=0.0, token=f"{size}-0"), result))
    chunks = _chunks(batch)
    assert [len(chunk) for chunk in chunks] == expected
    assert [pair for chunk in chunks for pair in chunk] == batch


async def test_entries_that_cannot_be_read_as_requests_still_owe_a_record(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("unreadable")
    await create_job(client, keys, {"retries": 0}, append=False)
    await client.xadd(keys.requests, {"other": b"field"})  # no request at all
    await client.xadd(keys.requests, {"r": b"\xff{" + b"x" * 300})  # not UTF-8, long
    await client.hincrby(keys.meta, "enqueued", 2)
    await finish_enqueue(client, keys)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    first, second = [await asyncio.wait_for(queue.get(), 10) for _ in range(2)]
    assert first is not None and second is not None
    assert first.request.raw == ""  # type: ignore[union-attr]
    assert first.request.message == "malformed queued request (JSONDecodeError)"  # type: ignore[union-attr]
    assert second.request.raw == "\ufffd{" + "x" * 198  # type: ignore[union-attr]
    queue.stop()


async def test_giving_back_touches_only_this_workers_entries(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("mine")
    await _job(client, keys, 3)
    reply = await client.xreadgroup(GROUP, "w2", {keys.requests: ">"}, count=1)
    [(theirs, _fields)] = reply[0][1]
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    for item in [await asyncio.wait_for(queue.get(), 10) for _ in range(2)]:
        await _commit(client, keys, queue, item)  # type: ignore[arg-type]
    await queue.aclose()
    assert await _pending(client, keys) == {theirs.decode(): ("w2", 1)}
    rows = await client.xpending_range(keys.requests, GROUP, "-", "+", 10)
    assert rows[0]["time_since_delivered"] < LONG_IDLE_MS  # not marked as abandoned
    # This worker holds nothing any more: it is dropped from the group.
    consumers = await client.xinfo_consumers(keys.requests, GROUP)
    assert [consumer["name"] for consumer in consumers] == [b"w2"]


async def _tokens_taken(
    client: aioredis.Redis, keys: JobKeys, workers: list[RedisWorkQueue], count: int
) -> list[str | None]:
    """The entry ids of the first ``count`` items a new worker hands out."""
    queue = RedisWorkQueue(client, keys, _options("w1", max_deliveries=9))
    workers.append(queue)
    items = [await asyncio.wait_for(queue.get(), 10) for _ in range(count)]
    queue.stop()
    return [item.token if item is not None else "(none)" for item in items]


async def test_an_entry_deleted_by_hand_is_skipped_among_the_workers_own(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("own-deleted")
    await _job(client, keys, 3)
    reply = await client.xreadgroup(GROUP, "w1", {keys.requests: ">"}, count=3)
    first, middle, last = [entry_id.decode() for entry_id, _fields in reply[0][1]]
    await client.xdel(keys.requests, middle)
    assert await _tokens_taken(client, keys, workers, 2) == [first, last]


async def test_a_suspect_given_back_does_not_hold_back_the_rest_of_its_batch(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("suspect-batch")
    await _job(client, keys, 3)
    first, _given_back = await _abandon(client, keys, 2, deliveries=2)  # suspects
    [plain] = await _abandon(client, keys, 1, deliveries=1)
    assert await _tokens_taken(client, keys, workers, 2) == [first, plain]


async def test_the_engines_ready_interface_hands_out_every_entry_once(
    client: aioredis.Redis, workers: list[RedisWorkQueue]
) -> None:
    keys = JobKeys("ready")
    await _job(client, keys, 3)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    taken: list[WorkItem] = []
    while (item := await _next_ready(queue)) is not None:
        taken.append(item)
        await _commit(client, keys, queue, item)
    assert len({item.token for item in taken}) == len(taken) == 3
    await queue.aclose()
    assert queue.feeder_error() is None


async def _next_ready(queue: RedisWorkQueue) -> WorkItem | None:
    """The next item through the engine's interface (take_nowait, call_when_ready)."""
    while not isinstance(item := queue.take_nowait(), WorkItem | None):
        ready = asyncio.Event()
        queue.call_when_ready(ready.set)
        await asyncio.wait_for(ready.wait(), 10)
    return item


@pytest.mark.parametrize("interface", ["get", "take_nowait"])
async def test_an_entry_another_worker_took_is_not_started(
    client: aioredis.Redis, workers: list[RedisWorkQueue], interface: str
) -> None:
    keys = JobKeys("taken")
    requests = await _job(client, keys, 2)
    queue = RedisWorkQueue(client, keys, _options("w1"))
    workers.append(queue)
    first = await asyncio.wait_for(queue.get(), 10)
    assert first is not None
    second_token = next(token for token in await _pending(client, keys) if token != first.token)
    # Our leases lapsed and w2 claimed the entry we had read ahead; the renewal says so.
    await client.xclaim(keys.requests, GROUP, "w2", 0, [second_token], justid=True)
    await queue.leases.renew()
    assert queue.leases.lost == 1
    await _commit(client, keys, queue, first)
    w2 = RedisResultStore(client, keys, "w2")
    await w2.commit([(WorkItem(requests[1], 0.0, token=second_token), _result(requests[1]))])
    take = queue.get() if interface == "get" else _next_ready(queue)
    assert await asyncio.wait_for(take, 20) is None  # not started here
    await queue.aclose()
    assert len(await stored_results(client, keys.results)) == 2
