"""A worker's shared-limit calls: batched into round trips, and skipped for healthy hosts.

Against a real redis-server (tests/redis_server.py); never skipped. What Redis saw is read
from its own statistics (INFO commandstats), not from the client.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from asyncfetch.queues.redis.batched import BatchedScript
from asyncfetch.queues.redis.host_limits import (
    FREE_PASS_S,
    FreePasses,
    RedisHostLimits,
    SharedLimits,
)
from asyncfetch.queues.redis.jobs import JobKeys
from asyncfetch.queues.redis.rate import RedisRateLimiter

from .fake_clock import FakeClock
from .recording_server import RecordingServer
from .redis_server import RedisServer
from .test_redis_distributed import Worker, collect, enqueue

_COUNTER = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
_FAILS_ON_ZERO = "if ARGV[1] == '0' then return redis.error_reply('zero') end return ARGV[1]"


async def _evalsha_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_calls_of_one_turn_each_get_their_own_reply_in_order(
    client: aioredis.Redis,
) -> None:
    script = BatchedScript(client, _COUNTER)
    replies = await asyncio.gather(*(script(["counter"], [step]) for step in (1, 10, 100)))
    # Run in the order made: each caller sees the counter after its own increment.
    assert replies == [1, 11, 111]


async def test_one_failing_call_fails_only_its_caller(client: aioredis.Redis) -> None:
    script = BatchedScript(client, _FAILS_ON_ZERO)
    replies = await asyncio.gather(
        script([], ["7"]), script([], ["0"]), script([], ["9"]), return_exceptions=True
    )
    assert replies[0] == b"7" and replies[2] == b"9"
    assert isinstance(replies[1], ResponseError) and "zero" in str(replies[1])


async def test_a_redis_that_forgot_its_scripts_is_taught_again(client: aioredis.Redis) -> None:
    script = BatchedScript(client, _COUNTER)
    assert await script(["counter"], [5]) == 5
    await client.script_flush()
    assert await asyncio.gather(script(["counter"], [1]), script(["counter"], [2])) == [6, 8]


def test_a_free_pass_lasts_its_time_and_counts_the_sends_it_let_through() -> None:
    clock = FakeClock()
    passes = FreePasses(clock)
    assert not passes.use("a")  # no pass yet: ask Redis
    passes.grant("a")
    assert passes.use("a") and passes.use("a")
    assert not passes.use("b")
    clock.now += FREE_PASS_S + 0.001
    assert not passes.use("a")  # run out: ask Redis, handing over the two sends
    assert passes.uncounted("a") == 2
    assert passes.uncounted("a") == 0


def test_a_throttled_host_loses_its_pass_at_once() -> None:
    passes = FreePasses(FakeClock())
    passes.grant("a")
    passes.revoke("a")
    assert not passes.use("a")


async def test_a_host_with_a_free_pass_lets_requests_start_at_once(
    client: aioredis.Redis,
) -> None:
    # try_acquire is what keeps a worker's requests on the callback path (AcquiresNow).
    keys = JobKeys("at-once")
    hosts = RedisHostLimits(client, keys, per_host_rate=None)
    assert not hosts.try_acquire("h")  # no pass yet: the request awaits acquire
    await hosts.acquire("h")  # Redis says the host is healthy: a pass is granted
    assert hosts.try_acquire("h") and hosts.try_acquire("h")
    assert SharedLimits(None, hosts).try_acquire("h")
    # A job with --rate asks its meter in Redis for every request.
    overall = RedisRateLimiter(client, keys, rate=1000.0, per_host_rate=None)
    assert not SharedLimits(overall, hosts).try_acquire("h")
    hosts.throttled("h", None, 0.0)  # a 429: the pass is gone at once
    assert not hosts.try_acquire("h")
    await hosts.aclose()


async def test_a_host_with_a_learned_rate_asks_redis_every_time(client: aioredis.Redis) -> None:
    keys = JobKeys("learned")
    limits = RedisHostLimits(client, keys, per_host_rate=1000.0)  # a rate: no free pass
    await limits.acquire("h")  # the first call also loads the script
    before = await _evalsha_calls(client)
    for _ in range(5):
        await limits.acquire("h")
    assert await _evalsha_calls(client) - before == 5
    fields = await client.hgetall(keys.rate("learned:h"))
    assert float(fields[b"sent"]) > 5


async def test_a_healthy_host_costs_a_worker_few_redis_calls(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    server = RecordingServer()
    await server.start()
    try:
        urls = [server.url(f"/ok?n={n}") for n in range(400)]
        await enqueue(redis_server, "healthy", urls, tmp_path)
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            before = await _evalsha_calls(client)
            worker = await Worker.start(redis_server, "healthy", tmp_path / "w.log")
            assert await worker.wait() == 0
            calls = await _evalsha_calls(client) - before
            sent = await client.hgetall(JobKeys("healthy").rate("learned:127.0.0.1"))
        finally:
            await client.aclose()
    finally:
        await server.close()
    records = await collect(redis_server, "healthy", tmp_path / "out.jsonl")
    assert len(records) == 400 and all(record["ok"] for record in records)
    # Before, each request asked Redis for the host's slot: 400 calls, and the result
    # commits (scripts too) on top. Now the host is asked about ten times a second, so
    # the bound holds unless the 400 requests took most of 40 s (a very loaded machine).
    assert calls < 400, calls
    assert float(sent[b"sent"]) > 0  # the sends are still counted for the host, in Redis
