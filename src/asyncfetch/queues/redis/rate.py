"""Rate limits shared by every worker of a job: a GCRA kept in Redis.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

Ten workers each running the local :class:`~asyncfetch.policy.limits.GcraRateMeter` would make
ten times the rate, so the meter's one number of state (the theoretical arrival time)
lives in Redis instead and a Lua script updates it atomically. The script reads the clock
with Redis TIME, so the clocks of the workers' machines do not matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..._errors import ConfigError
from .batched import BatchedScript
from .jobs import JobKeys, Redis, retrying

# KEYS: one meter each (global, per host). ARGV: per key, interval then tolerance (µs).
# Like GcraRateMeter.reserve, a caller reserves its slot at once and then sleeps until
# it is due: FIFO order, no polling; the reservations of one event-loop turn share a
# round trip (``batched.py``). With two meters the slot
# is the earliest time both allow, and both meters advance past it.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local arrival = now
local stored = {}
for i = 1, #KEYS do
  stored[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  local earliest = stored[i] - tonumber(ARGV[2 * i])
  if earliest > arrival then arrival = earliest end
end
for i = 1, #KEYS do
  local next_arrival = math.max(stored[i], arrival) + tonumber(ARGV[2 * i - 1])
  local ttl_ms = math.ceil((next_arrival - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', next_arrival), 'PX', ttl_ms)
end
return arrival - now
"""

Sleep = Callable[[float], Awaitable[None]]


class RedisRateLimiter:
    """The RateLimiter protocol over Redis: ``rate`` overall and ``per_host_rate`` per host
    (requests per second, either may be None), shared by all workers of the job."""

    def __init__(
        self,
        client: Redis,
        keys: JobKeys,
        *,
        rate: float | None,
        per_host_rate: float | None,
        burst: int = 1,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate is None and per_host_rate is None:
            raise ConfigError("a shared rate limiter needs rate or per_host_rate")
        if burst < 1:
            raise ConfigError("burst must be at least 1")
        self._keys = keys
        self._global = _meter_args(rate, burst)
        self._per_host = _meter_args(per_host_rate, burst)
        self._reserve = BatchedScript(client, _RESERVE)
        self._sleep = sleep

    async def acquire(self, host: str) -> None:
        keys: list[str] = []
        args: list[int] = []
        if self._global is not None:
            keys.append(self._keys.rate("global"))
            args += self._global
        if self._per_host is not None:
            keys.append(self._keys.rate(f"host:{host}"))
            args += self._per_host
        # Retried through outages: a failure here must delay the request, not fail it.
        delay_us = await retrying(
            lambda: self._reserve(keys, args), "waiting for the shared rate limit"
        )
        if int(delay_us) > 0:
            await self._sleep(int(delay_us) / 1_000_000)


def _meter_args(rate: float | None, burst: int) -> list[int] | None:
    if rate is None:
        return None
    if rate <= 0:
        raise ConfigError("rates must be > 0 requests per second")
    interval_us = round(1_000_000 / rate)
    return [interval_us, (burst - 1) * interval_us]
