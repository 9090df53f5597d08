"""Politeness limits: a GCRA rate meter and per-host concurrency.

Global concurrency is the number of workers; these two add the limits that workers share.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from .._errors import ConfigError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter(Protocol):
    """Anything that can make a caller wait for its turn (local GCRA, or one in Redis)."""

    async def acquire(self, host: str) -> None: ...


class GcraRateMeter:
    """Generic Cell Rate Algorithm: one float of state, no timer task, O(1) per call.

    Each caller reserves the next emission slot at once ("theoretical arrival time") and
    then sleeps until it is due. Reserving before sleeping keeps callers in FIFO order
    without a lock or a queue, which matters when hundreds of workers share one meter.
    ``burst`` lets that many requests through back to back after an idle period.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ConfigError("rate must be > 0 requests per second")
        if burst < 1:
            raise ConfigError("burst must be at least 1")
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._theoretical_arrival = 0.0

    def reserve(self) -> float:
        """Take the next slot; return how long the caller must wait before using it."""
        now = self._clock()
        arrival = max(self._theoretical_arrival, now)
        self._theoretical_arrival = arrival + self._interval
        return max(0.0, arrival - self._tolerance - now)

    async def acquire(self, host: str = "") -> None:
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)


class LimitWaits:
    """Seconds that requests spent waiting for each limit, summed over a run.

    The end-of-run summary reads them to say which limit held the run back (and which
    option lifts it); a record carries its own share as ``timings.wait_ms``.
    """

    __slots__ = ("concurrency", "per_host", "rate")

    def __init__(self) -> None:
        self.per_host = 0.0
        self.concurrency = 0.0
        self.rate = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"per_host": self.per_host, "concurrency": self.concurrency, "rate": self.rate}


class Slots:
    """A FIFO counting semaphore whose acquire and release are O(1).

    asyncio.Semaphore (3.11) scans every waiter on each acquire, which turns hundreds of
    workers queued on one busy host into quadratic work. Here a release hands its slot
    directly to the oldest waiter, so the order is fair and the cost constant.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> bool:
        """Whether :meth:`try_acquire` would succeed now."""
        return self._free > 0 and not self._waiters

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued for it; never waits."""
        if self.free:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            elif waiter in self._waiters:  # release() may already have dropped it
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class PerHostLimiter:
    """At most ``limit`` requests in flight per host.

    Semaphores are created on first use and dropped when no request for the host is in
    flight or waiting, so a run over a million distinct hosts holds only the busy ones.
    ``hold(host)`` returns a small async context manager (a class, not a generator: this
    runs once per attempt on the hot path).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ConfigError("per-host limit must be at least 1")
        self._limit = limit
        self._slots: dict[str, _HostSlot] = {}

    def hold(self, host: str) -> _HostSlot:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = _HostSlot(self, host, self._limit)
        return slot

    def try_hold(self, host: str) -> bool:
        """Take a slot for ``host`` if one is free now (then :meth:`release` it); never waits."""
        slot = self.hold(host)
        if slot.try_enter():
            return True
        if slot.unused:
            self._forget(host)
        return False

    def release(self, host: str) -> None:
        """Give back a slot taken with :meth:`try_hold`."""
        self._slots[host].exit()

    def _forget(self, host: str) -> None:
        del self._slots[host]

    @property
    def tracked_hosts(self) -> int:
        return len(self._slots)


class _HostSlot:
    __slots__ = ("_host", "_owner", "_semaphore", "_users")

    def __init__(self, owner: PerHostLimiter, host: str, limit: int) -> None:
        self._owner = owner
        self._host = host
        self._semaphore = Slots(limit)
        self._users = 0

    async def __aenter__(self) -> None:
        self._users += 1
        try:
            await self._semaphore.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self.exit()

    @property
    def unused(self) -> bool:
        return self._users == 0

    def try_enter(self) -> bool:
        if self._semaphore.try_acquire():
            self._users += 1
            return True
        return False

    def exit(self) -> None:
        self._semaphore.release()
        self._leave()

    def _leave(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._owner._forget(self._host)
