"""The Redis job pieces as a library: payloads, atomic commits, status, shared rate limits.

Against a real redis-server (tests/redis_server.py); never skipped.
"""

from __future__ import annotations

import itertools

import orjson
import redis.asyncio as aioredis

from asyncfetch._models import InvalidInput, Request, Result, Timings
from asyncfetch.policy.records import failure_result
from asyncfetch.queues.base import WorkItem
from asyncfetch.queues.redis.codec import (
    dead_letter_record,
    decode_request,
    encode_request,
)
from asyncfetch.queues.redis.collect import ResultReader
from asyncfetch.queues.redis.jobs import (
    GROUP,
    JobKeys,
    add_requests,
    create_job,
    finish_enqueue,
    job_status,
    read_counts,
)
from asyncfetch.queues.redis.rate import RedisRateLimiter
from asyncfetch.queues.redis.worker_queue import RedisResultStore

from .redis_results import stored_results
from .redis_server import RedisServer


def test_requests_survive_the_trip_through_json() -> None:
    request = Request.create(
        "http://127.0.0.1/x",
        method="post",
        headers={"A": "1"},
        body=b"\x00\xff",
        line=7,
        meta={"k": [1]},
    )
    assert decode_request(encode_request(request)) == request
    bad = InvalidInput(line=3, message="bad url", raw="htp:/x")
    decoded = decode_request(encode_request(bad))
    assert isinstance(decoded, InvalidInput)
    assert (decoded.line, decoded.message, decoded.record_id) == (3, "bad url", bad.record_id)


async def _odd_job(
    client: aioredis.Redis, keys: JobKeys, ids: list[str]
) -> list[tuple[WorkItem, Result]]:
    """A job of requests with these ids, all read by worker "w", and a result for each."""
    await create_job(client, keys, {"retries": 0}, append=False)
    requests = [
        Request.create(f"http://127.0.0.1/{n}", id=record_id, meta={"n": n, "s": "a b\nc"})
        for n, record_id in enumerate(ids)
    ]
    await add_requests(client, keys, [encode_request(request) for request in requests])
    await finish_enqueue(client, keys)
    reply = await client.xreadgroup(GROUP, "w", {keys.requests: ">"}, count=len(ids))
    tokens = [entry_id.decode() for entry_id, _fields in reply[0][1]]
    timings = Timings(total_ms=5.0)
    return [
        (
            WorkItem(request, enqueued_at=0.0, token=token),
            failure_result(request, "timeout", "slow", attempts=2, timings=timings, started_at=""),
        )
        for request, token in zip(requests, tokens, strict=True)
    ]


# Ids with spaces, newlines, non-ASCII or JSON in them, and odd meta: one commit packs the
# records of many results into one argument and one results entry, and none of these may
# shift a byte.
ODD_IDS = ["plain", "with space", "two\nlines", "é 𝄞 ü", "1", '{"json": "id"}']


async def test_records_committed_together_come_back_each_whole(client: aioredis.Redis) -> None:
    keys = JobKeys("packed")
    completed = await _odd_job(client, keys, ODD_IDS)
    await RedisResultStore(client, keys, "w").commit(completed)
    stored = await stored_results(client, keys.results)
    assert [row.record["id"] for row in stored] == ODD_IDS
    assert [row.entry for row in stored] == [item.token for item, _result in completed]
    assert [Result.from_record(row.record).to_record() for row in stored] == [
        result.to_record() for _item, result in completed
    ]
    collected = [c async for batch in ResultReader(client, keys).batches() for c in batch]
    assert [c.result.to_record() for c in collected] == [
        result.to_record() for _item, result in completed
    ]


async def test_a_commit_keeps_only_the_records_of_entries_it_acknowledged(
    client: aioredis.Redis,
) -> None:
    # Two of the entries were committed by another worker first (it had reclaimed them):
    # this commit writes the other four, cut whole out of the packed records.
    keys = JobKeys("partly")
    completed = await _odd_job(client, keys, ODD_IDS)
    other = RedisResultStore(client, keys, "other")
    await other.commit([completed[1], completed[3]])
    store = RedisResultStore(client, keys, "w")
    await store.commit(completed)
    assert store.duplicates == 2
    stored = await stored_results(client, keys.results)
    mine = [row for row in stored if row.by == "w"]
    kept = [completed[n] for n in (0, 2, 4, 5)]
    assert [row.entry for row in mine] == [item.token for item, _result in kept]
    assert [row.record for row in mine] == [result.to_record() for _item, result in kept]
    assert sorted(row.record["id"] for row in stored) == sorted(ODD_IDS)  # once each
    assert (await read_counts(client, keys)).done == len(ODD_IDS)  # type: ignore[union-attr]


async def test_results_entries_of_the_one_record_form_are_read_too(
    client: aioredis.Redis,
) -> None:
    # A job whose results were partly written by an earlier version (one record per entry,
    # no newline) and partly by this one (a commit's records as JSON lines in one entry).
    keys = JobKeys("forms")
    completed = await _odd_job(client, keys, ODD_IDS)
    old_item, old_result = completed[0]
    old = {"id": old_result.id, "entry": str(old_item.token), "by": "old"}
    await client.xadd(keys.results, {**old, "r": orjson.dumps(old_result.to_record())})
    await RedisResultStore(client, keys, "w").commit(completed[1:])
    collected = [c async for batch in ResultReader(client, keys).batches() for c in batch]
    assert [c.result.to_record() for c in collected] == [
        result.to_record() for _item, result in completed
    ]


async def test_collected_batches_stay_within_their_size(client: aioredis.Redis) -> None:
    # 450 records in entries of up to 100 and 300 dead letters of one each, read in
    # batches of at most 200 records: every record comes back once, in bounded batches.
    keys = JobKeys("batches")
    completed = await _odd_job(client, keys, [f"r{n}" for n in range(450)])
    store = RedisResultStore(client, keys, "w")
    for start in range(0, 450, 150):
        await store.commit(completed[start : start + 150])
    dead = [Request.create(f"http://127.0.0.1/dead/{n}") for n in range(300)]
    for n, request in enumerate(dead):
        record = dead_letter_record(request, f"0-{n + 1}", 5, "crashed")
        fields = {"id": request.id, "entry": f"0-{n + 1}", "r": record}
        await client.xadd(keys.dead, {**fields, "request": encode_request(request)})
    batches = [batch async for batch in ResultReader(client, keys, batch_size=200).batches()]
    assert max(len(batch) for batch in batches) <= 200
    assert len(batches) <= 6  # in few reads: the dead letters too come 200 at a time
    collected = [c for batch in batches for c in batch]
    assert sorted(c.result.id for c in collected if not c.dead) == sorted(
        item.request.id  # type: ignore[union-attr]
        for item, _result in completed
    )
    assert sorted(c.result.id for c in collected if c.dead) == sorted(r.id for r in dead)


async def _job_with_one_request(client: aioredis.Redis, keys: JobKeys) -> tuple[str, Request]:
    await create_job(client, keys, {"retries": 0}, append=False)
    request = Request.create("http://127.0.0.1/one")
    await add_requests(client, keys, [encode_request(request)])
    await finish_enqueue(client, keys)
    reply = await client.xreadgroup(GROUP, "slow", {keys.requests: ">"}, count=1)
    return reply[0][1][0][0].decode(), request


def _result(request: Request) -> Result:
    return failure_result(
        request, "read", "reset", attempts=1, timings=Timings(), started_at="2024-01-01"
    )


async def test_an_entry_finished_twice_gets_one_record(client: aioredis.Redis) -> None:
    keys = JobKeys("twice")
    token, request = await _job_with_one_request(client, keys)
    # A second worker reclaims the entry while the first is still working on it.
    await client.xautoclaim(keys.requests, GROUP, "fast", min_idle_time=0)
    item = WorkItem(request, enqueued_at=0.0, token=token)
    slow, fast = RedisResultStore(client, keys, "slow"), RedisResultStore(client, keys, "fast")
    await fast.commit([(item, _result(request))])
    await slow.commit([(item, _result(request))])
    await fast.commit([(item, _result(request))])  # a resend after a lost reply
    assert len(await stored_results(client, keys.results)) == 1
    assert (fast.duplicates, slow.duplicates) == (1, 1)


async def test_status_reports_counts_and_completion(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    keys = JobKeys("status")
    token, request = await _job_with_one_request(client, keys)
    before = await job_status(redis_server.url, "status")
    assert before["pending_by_consumer"] == {"slow": 1}
    assert (before["enqueued"], before["done"], before["complete"]) == (1, 0, False)
    item = WorkItem(request, enqueued_at=0.0, token=token)
    await RedisResultStore(client, keys, "slow").commit([(item, _result(request))])
    after = await job_status(redis_server.url, "status")
    assert (after["done"], after["pending"], after["dead_lettered"]) == (1, 0, 0)
    assert after["complete"] is True
    assert after["rate"] > 0


async def test_shared_rate_limits_space_reservations(client: aioredis.Redis) -> None:
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    keys = JobKeys("rate")
    # Two limiters stand for two workers: they share the meters in Redis. One request per
    # 100 s: the waits they are told (not taken) are 100 s apart, less the few
    # milliseconds between two calls, so the check does not depend on the machine's speed.
    first, second = (
        RedisRateLimiter(client, keys, rate=None, per_host_rate=0.01, sleep=record)
        for _ in range(2)
    )
    for n in range(10):
        await (first if n % 2 else second).acquire("a.example")
    await first.acquire("b.example")  # another host has its own meter
    assert len(delays) == 9  # the first request of each host goes at once
    spacing = [later - earlier for earlier, later in itertools.pairwise(delays)]
    assert all(90 < step <= 100 for step in spacing), spacing
    assert 890 < delays[-1] <= 900
