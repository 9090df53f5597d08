"""Politeness limits: a GCRA rate meter, global slots, and each host's adaptive limits.

Global concurrency is the number of workers; these add the limits that workers share.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeGuard

from .._errors import ConfigError
from .adaptive import (
    THROTTLED,
    HostLimit,
    HostReport,
    HostTable,
    classify,
    client_is_bottleneck,
    retry_after_of,
)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# (host, seconds of Retry-After or None, seconds since the throttled attempt started)
ThrottleListener = Callable[[str, float | None, float], None]


class RateLimiter(Protocol):
    """Anything that can make a caller wait for its turn (local GCRA, or one in Redis)."""

    async def acquire(self, host: str) -> None: ...


class AcquiresNow(Protocol):
    """A rate limiter capability: let a request through at once when no wait is due.

    With it, a run under that limiter keeps the transport's callback path (a request
    started with no task); without it every request awaits :meth:`RateLimiter.acquire`
    in a task of its own, which cost a Redis worker half its throughput.
    """

    def try_acquire(self, host: str) -> bool:
        """True: the request may go now, and its turn is taken. False: nothing is taken
        and the caller awaits ``acquire``."""
        ...


def acquires_now(limiter: RateLimiter) -> TypeGuard[AcquiresNow]:
    """Whether ``limiter`` offers :class:`AcquiresNow` (by its method, as for transports)."""
    return callable(getattr(limiter, "try_acquire", None))


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
    """Each host's adaptive limits (``adaptive.py``) enforced: in-flight slots, pauses, rate.

    ``hold(host)`` is an async context manager that waits for a slot under the host's
    current concurrency, then for the end of any ``Retry-After`` pause and for the host's
    rate slot; ``try_hold`` takes all of that only if it is free now. Callers report each
    attempt's outcome with :meth:`observe`. When a ``try_hold`` fails for time alone (a
    pause, the rate), the callbacks added with :meth:`add_ready_callback` run once the
    host may start again, so a caller that parked work is woken without polling.
    """

    def __init__(
        self,
        limit: int,
        *,
        rate: float | None = None,
        adapt: bool = True,
        clock: Clock = time.perf_counter,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if limit < 1:
            raise ConfigError("per-host limit must be at least 1")
        if rate is not None and rate <= 0:
            raise ConfigError("per-host rate must be > 0 requests per second")
        self.table = HostTable(limit, rate, adapt=adapt)
        self._clock = clock
        self._sleep = sleep
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._ready_callbacks: list[Callable[[], None]] = []
        self._wake_timer: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self._listeners: list[ThrottleListener] = []
        self._client_load = ClientLoad()

    def hold(self, host: str) -> _HostSlot:
        return _HostSlot(self, host)

    def try_hold(self, host: str) -> bool:
        """Take a slot for ``host`` if one is free now (then :meth:`release` it); never waits."""
        return self.try_hold_at(host, self._clock())

    def try_hold_at(self, host: str, now: float) -> bool:
        """:meth:`try_hold` at ``now``, a ``clock()`` reading the caller already has (one
        clock call fewer per request on the fast path)."""
        self._client_load.watch()
        limit = self.table.get(host)
        if limit.can_start(now) and host not in self._waiters:
            limit.start(now)
            return True
        if limit.in_flight < limit.concurrency:
            self._wake_later(limit.wait_time(now))
        return False

    def release(self, host: str, outcome: object = None, started: float = 0.0) -> None:
        """Give back a slot taken with :meth:`try_hold` or ``hold``; ``outcome`` is what
        the attempt that started at ``started`` got, None if it never ran."""
        self.release_at(host, outcome, started, self._clock() if outcome is not None else 0.0)

    def release_at(self, host: str, outcome: object, started: float, ended: float) -> None:
        """:meth:`release` of an attempt that ended at ``ended`` (a ``clock()`` reading)."""
        limit = self.table.hosts[host]
        limit.finish()
        if outcome is not None:
            self._learn(host, limit, outcome, started, ended)
        self._hand_on(host, limit)

    def observe(self, host: str, outcome: object, started: float) -> None:
        """Learn from the outcome of an attempt on ``host`` that started at ``started``
        (a ``clock()`` value), its slot still held."""
        limit = self.table.hosts.get(host)
        if limit is not None:
            self._learn(host, limit, outcome, started, self._clock())
            self._hand_on(host, limit)

    def _learn(
        self, host: str, limit: HostLimit, outcome: object, started: float, now: float
    ) -> None:
        """Every attempt's outcome comes here, and only here."""
        limit.observe(outcome, started, now, self._client_load.idle_enough)
        if self._listeners and classify(outcome) == THROTTLED:
            for listener in self._listeners:
                listener(host, retry_after_of(outcome), now - started)

    def share_rates(self, listener: ThrottleListener) -> None:
        """Let ``listener`` learn hosts' rates (across workers) from every 429/503: rates
        are then no longer learned here, only concurrency and pauses."""
        self.table.learn_rate = False
        self._listeners.append(listener)

    def now(self) -> float:
        return self._clock()

    def stop(self) -> None:
        """Stop the timer that tells the client's load from the hosts'."""
        self._client_load.stop()

    @property
    def tracked_hosts(self) -> int:
        return len(self.table.hosts)

    def throttled_hosts(self) -> int:
        """Hosts held back below the user's limits right now (for the progress display)."""
        return self.table.throttled_now(self._clock())

    def reports(self, top: int = 10) -> list[HostReport]:
        """The throttled and the busiest hosts' figures (for the end-of-run summary)."""
        return self.table.reports(self._clock(), top=top)

    # -- waking callers ------------------------------------------------------------------

    def add_ready_callback(self, callback: Callable[[], None]) -> None:
        self._ready_callbacks.append(callback)

    def remove_ready_callback(self, callback: Callable[[], None]) -> None:
        if callback in self._ready_callbacks:
            self._ready_callbacks.remove(callback)

    def _wake_later(self, delay: float) -> None:
        if not self._ready_callbacks or delay <= 0:
            return
        when = self._clock() + delay
        if when >= self._wake_at:
            return
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        self._wake_at = when
        self._wake_timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._wake_timer = None
        self._wake_at = math.inf
        for callback in list(self._ready_callbacks):
            callback()

    def _hand_on(self, host: str, limit: HostLimit) -> None:
        """Hand free slots to the oldest waiters for ``host`` (the limit may have grown)."""
        waiters = self._waiters.get(host)
        while waiters and limit.in_flight < limit.concurrency:
            waiter = waiters.popleft()
            if not waiter.done():
                limit.in_flight += 1
                waiter.set_result(None)
        if waiters is not None and not waiters:
            del self._waiters[host]

    async def _enter(self, host: str) -> None:
        self._client_load.watch()
        limit = self.table.get(host)
        if limit.in_flight < limit.concurrency and host not in self._waiters:
            limit.in_flight += 1
        else:
            await self._queue_for(host)
        try:
            await self._wait_turn(limit)
        except BaseException:
            self.release(host)
            raise

    async def _queue_for(self, host: str) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(host, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self.release(host)  # the slot was handed to us as we were cancelled
            else:
                queue = self._waiters.get(host)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._waiters[host]
            raise

    async def _wait_turn(self, limit: HostLimit) -> None:
        """Wait out the host's pause, then for its rate slot; a pause that begins while
        we wait voids the slot, and we queue again after it."""
        while True:
            now = self._clock()
            if now < limit.paused_until:
                await self._sleep(limit.paused_until - now)
                continue
            pauses = limit.pauses
            delay = limit.take_slot(now)
            if delay > 0:
                await self._sleep(delay)
            if limit.pauses == pauses:
                return


class _HostSlot:
    """``async with limiter.hold(host):`` a slot for one attempt on ``host``."""

    __slots__ = ("_host", "_owner")

    def __init__(self, owner: PerHostLimiter, host: str) -> None:
        self._owner = owner
        self._host = host

    async def __aenter__(self) -> None:
        await self._owner._enter(self._host)

    async def __aexit__(self, *exc_info: object) -> None:
        self._owner.release(self._host)


class ClientLoad:
    """Whether latencies measured now are the hosts' or our own (see
    :func:`~asyncfetch.policy.adaptive.client_is_bottleneck`): a timer every
    ``interval`` seconds reads the process's CPU time and how late the timer itself ran."""

    __slots__ = (
        "_cpu",
        "_cpu_clock",
        "_due",
        "_handle",
        "_interval",
        "_wall",
        "_wall_clock",
        "idle_enough",
    )

    def __init__(
        self,
        interval: float = 0.1,
        *,
        cpu_clock: Clock = time.process_time,
        wall_clock: Clock = time.perf_counter,
    ) -> None:
        self._interval = interval
        # The process's CPU time and a monotonic wall clock (tests drive both by hand).
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._handle: asyncio.TimerHandle | None = None
        self._cpu = 0.0
        self._wall = 0.0
        self._due = 0.0
        self.idle_enough = False  # until the first interval has been measured

    def watch(self) -> None:
        """Start measuring (once, from inside the running loop)."""
        if self._handle is None:
            self._cpu, self._wall = self._cpu_clock(), self._wall_clock()
            self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = self._wall + self._interval
        self._handle = loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        cpu, wall = self._cpu_clock(), self._wall_clock()
        late = max(0.0, wall - self._due)
        self.idle_enough = not client_is_bottleneck(cpu - self._cpu, wall - self._wall, late)
        self._cpu, self._wall = cpu, wall
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
