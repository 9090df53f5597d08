"""Each host's learned rate and ``Retry-After`` pause, shared by every worker of a job.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

Ten workers that each learned a host's limit alone would each rediscover it, and each
send the whole of it. So in Redis mode a host's rate is learned and enforced in one small
hash per host, next to the shared GCRA meters (``rate.py``): the same AIMD as
``policy/adaptive.py`` (see there for why), in two Lua scripts that read the clock with
Redis TIME so the workers' clocks do not matter. ``acquire`` reserves the host's next
slot (the acquires of one event-loop turn share a round trip, ``batched.py``) and counts
the requests sent, all workers together, which is what a cut starts from; ``throttled``
(a worker saw 429/503) pauses the host for its ``Retry-After`` and cuts its rate, once
per round. Concurrency and the
latency signal stay in each worker: ``-c`` and ``--per-host`` are per worker too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...policy.adaptive import MIN_RATE, RATE_DECREASE, RATE_GROWTH, SLOW_START_GROWTH
from ...policy.limits import PerHostLimiter, RateLimiter
from .batched import BatchedScript
from .jobs import JobKeys, Redis, retrying

log = logging.getLogger("asyncfetch")

# The host's rate now, from its last cut: slow start after the first, linear after.
_RATE_NOW = """
local function rate_now(f, now, cap)
  local cut = tonumber(f[1])
  local rate = nil
  if cut then
    local since = math.max(0, now - tonumber(f[2])) / 1000000
    if tonumber(f[3]) == 1 then
      rate = cut * math.pow(tonumber(ARGV[3]), math.min(since, 30))
    else
      rate = cut + tonumber(f[4]) * since
    end
  end
  if cap > 0 and (rate == nil or rate > cap) then rate = cap end
  return rate
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local f = redis.call('HMGET', KEYS[1], 'cut', 'cut_at', 'cuts', 'slope', 'pause_until',
                     'tat', 'sent', 'sent_at')
local cap = tonumber(ARGV[1])
local pause_until = tonumber(f[5]) or 0
local sent = (tonumber(f[7]) or 0) * math.exp(-(now - (tonumber(f[8]) or now)) / 1000000)
"""

# ARGV: cap (req/s, 0 = none), ttl ms, slow-start growth, sends made on a free pass (see
# RedisHostLimits). Returns {paused, wait µs, free}: free when the host has no rate at all.
_ACQUIRE = (
    _RATE_NOW
    + """
if pause_until > now then return {1, pause_until - now, 0} end
local wait = 0
local fields = {'sent', string.format('%.6f', sent + 1 + tonumber(ARGV[4])),
                'sent_at', string.format('%.0f', now)}
local rate = rate_now(f, now, cap)
if rate then
  local interval = 1000000 / rate
  local tat = tonumber(f[6]) or 0
  local arrival = now
  if tat > now - interval then arrival = tat end
  if arrival > now then wait = arrival - now end
  table.insert(fields, 'tat')
  table.insert(fields, string.format('%.0f', arrival + interval))
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {0, math.floor(wait), rate and 0 or 1}
"""
)

# ARGV: cap, ttl ms, slow-start growth, Retry-After µs (0 = none), started µs ago,
# decrease, minimum rate, linear growth. Returns the new rate (string), or false.
_THROTTLED = (
    _RATE_NOW
    + """
local retry_after = tonumber(ARGV[4])
if retry_after > 0 and now + retry_after > pause_until then
  pause_until = now + retry_after
  redis.call('HSET', KEYS[1], 'pause_until', string.format('%.0f', pause_until),
             'tat', string.format('%.0f', pause_until))
end
local started = now - tonumber(ARGV[5])
local result = false
if started >= (tonumber(f[2]) or -1) then
  local base = sent
  local current = rate_now(f, now, cap)
  if current and current < base then base = current end
  local cut = math.max(tonumber(ARGV[7]), base * tonumber(ARGV[6]))
  if cap > 0 and cut > cap then cut = cap end
  redis.call('HSET', KEYS[1], 'cut', string.format('%.6f', cut),
             'cut_at', string.format('%.0f', math.max(now, pause_until)),
             'cuts', (tonumber(f[3]) or 0) + 1,
             'slope', string.format('%.6f', cut * tonumber(ARGV[8])))
  result = string.format('%.3f', cut)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return result
"""
)

Sleep = Callable[[float], Awaitable[None]]
# How long a healthy host goes without asking Redis, and how many such hosts are kept.
FREE_PASS_S = 0.1
MAX_PASSES = 10_000
# A host's learned state outlives a pause in its traffic, but not a day of silence.
_TTL_MS = 600_000


class FreePasses:
    """Hosts with no learned rate and no pause, let through without asking Redis.

    Asking Redis before every request to a healthy host cost a round trip per request
    and held one worker far below ``fetch``. A host whose state says "no rate, no pause"
    gets a pass for FREE_PASS_S: its requests go at once, counted here and added to the
    host's shared count with the next request that asks Redis. Another worker's 429 is
    thus seen at most FREE_PASS_S late (this worker's own at once: ``revoke``); a host
    with a rate (learned or ``--per-host-rate``) or a pause asks Redis every time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._sends: dict[str, int] = {}

    def use(self, host: str) -> bool:
        """True (and the send counted) if ``host`` holds a pass that has not run out."""
        if self._until.get(host, 0.0) <= self._clock():
            return False
        self._sends[host] = self._sends.get(host, 0) + 1
        return True

    def uncounted(self, host: str) -> int:
        """The sends made on ``host``'s pass, handed over to Redis now (and forgotten)."""
        self._until.pop(host, None)
        return self._sends.pop(host, 0)

    def grant(self, host: str) -> None:
        if len(self._until) >= MAX_PASSES:
            self._forget_expired()
            if len(self._until) >= MAX_PASSES:  # all fresh: this host asks Redis each time
                return
        self._until[host] = self._clock() + FREE_PASS_S

    def revoke(self, host: str) -> None:
        self._until.pop(host, None)

    def _forget_expired(self) -> None:
        # A crawl visits most hosts once: the passes of a million hosts must not pile up.
        now = self._clock()
        self._until = {host: until for host, until in self._until.items() if until > now}
        self._sends = {host: n for host, n in self._sends.items() if host in self._until}


class RedisHostLimits:
    """The RateLimiter protocol for each host's shared, learned rate and pause."""

    def __init__(
        self,
        client: Redis,
        keys: JobKeys,
        *,
        per_host_rate: float | None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._keys = keys
        self._cap = per_host_rate or 0.0
        self._acquire = BatchedScript(client, _ACQUIRE)
        self._throttled = client.register_script(_THROTTLED)
        self._sleep = sleep
        self._pending: set[asyncio.Task[None]] = set()
        self._passes = FreePasses()

    def _key(self, host: str) -> str:
        return self._keys.rate(f"learned:{host}")

    def try_acquire(self, host: str) -> bool:
        """AcquiresNow: True if ``host`` holds a free pass (the send is counted)."""
        return self._passes.use(host)

    async def acquire(self, host: str) -> None:
        if self._passes.use(host):
            return
        keys = [self._key(host)]
        args = [self._cap, _TTL_MS, SLOW_START_GROWTH, self._passes.uncounted(host)]
        while True:
            paused, wait_us, free = await retrying(
                lambda: self._acquire(keys, args), "waiting for a host's shared limit"
            )
            args[3] = 0
            if int(wait_us) > 0:
                await self._sleep(int(wait_us) / 1_000_000)
            if not int(paused):
                if int(free):
                    self._passes.grant(host)
                return

    def throttled(self, host: str, retry_after: float | None, started_ago: float) -> None:
        """A worker's attempt on ``host`` got 429/503: tell every worker (in the background,
        so the attempt's record is not held up by Redis)."""
        self._passes.revoke(host)
        task = asyncio.get_running_loop().create_task(self._report(host, retry_after, started_ago))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _report(self, host: str, retry_after: float | None, started_ago: float) -> None:
        args = [
            self._cap,
            _TTL_MS,
            SLOW_START_GROWTH,
            round((retry_after or 0.0) * 1_000_000),
            round(started_ago * 1_000_000),
            RATE_DECREASE,
            MIN_RATE,
            RATE_GROWTH,
        ]
        keys = [self._key(host)]
        cut = await retrying(
            lambda: self._throttled(keys=keys, args=args), "sharing a host's limit"
        )
        if cut:
            log.info("host %s throttled: %s requests/s across workers", host, cut.decode())

    async def aclose(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)


class SharedLimits:
    """A worker's rate limits in Redis: the job's ``--rate`` (if any), then the host's."""

    def __init__(self, overall: RateLimiter | None, hosts: RedisHostLimits | None) -> None:
        self._limiters = [limiter for limiter in (overall, hosts) if limiter is not None]
        self._hosts = hosts

    async def acquire(self, host: str) -> None:
        for limiter in self._limiters:
            await limiter.acquire(host)

    def try_acquire(self, host: str) -> bool:
        """AcquiresNow: a host's free pass lets a request go at once, unless the job has
        a ``--rate``, whose meter in Redis is asked every time."""
        hosts = self._hosts
        return len(self._limiters) == 1 and hosts is not None and hosts.try_acquire(host)

    def follow(self, per_host: PerHostLimiter) -> None:
        """Have ``per_host`` report its hosts' 429/503 here, and learn rates only here."""
        if self._hosts is not None:
            per_host.share_rates(self._hosts.throttled)

    async def aclose(self) -> None:
        if self._hosts is not None:
            await self._hosts.aclose()


def shared_limits(client: Redis, keys: JobKeys, stored: dict[str, Any]) -> SharedLimits | None:
    """A worker's shared limits from the job's stored options; None when it has none."""
    from .rate import RedisRateLimiter

    rate, per_host_rate = stored.get("rate"), stored.get("per_host_rate")
    if stored.get("adapt") is False:  # fixed limits: the GCRA meters alone, as configured
        if rate is None and per_host_rate is None:
            return None
        return SharedLimits(
            RedisRateLimiter(client, keys, rate=rate, per_host_rate=per_host_rate), None
        )
    overall = (
        None if rate is None else RedisRateLimiter(client, keys, rate=rate, per_host_rate=None)
    )
    return SharedLimits(overall, RedisHostLimits(client, keys, per_host_rate=per_host_rate))
