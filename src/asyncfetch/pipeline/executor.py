"""Turn one Request into its one final Result: limits, attempts, retries, body policy."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from .._errors import ErrorKind, TransportError
from .._models import Request, Response, Result, Timings
from .._settings import Settings
from ..policy.deadlines import DeadlineWatch, overdue_error
from ..policy.hosts import host_of
from ..policy.limits import PerHostLimiter, RateLimiter, Slots
from ..policy.records import failure_result, success_result, utc_now_iso
from ..policy.redact import CREDENTIAL_HEADERS, redact_text
from ..policy.retry import RetryDecision, decide_after_error, decide_after_response
from ..transport.base import Transport
from ..transport.redirects import send_following

SaveBody = Callable[[Request, Response], Awaitable[str]]
Outcome = Response | TransportError
# Bound once: compiled, ``time.perf_counter`` is a module attribute lookup on every call.
_perf_counter: Final = time.perf_counter


@dataclass(slots=True, init=False)
class Clock:
    """When a request started, for its record's timings."""

    started: float  # perf_counter
    started_at: str  # wall clock, ISO 8601
    queued_ms: float

    # Written out for the reason given in _models.py: compiled, it is native code.
    def __init__(self, started: float, started_at: str, queued_ms: float) -> None:
        self.started = started
        self.started_at = started_at
        self.queued_ms = queued_ms

    @classmethod
    def start(cls, enqueued_at: float | None) -> Clock:
        started = _perf_counter()
        queued = 0.0 if enqueued_at is None else max(0.0, (started - enqueued_at) * 1000)
        return cls(started, utc_now_iso(), queued)


class RequestExecutor:
    """Runs the attempts of one request under the shared limits.

    The per-host slot, the global slot and the rate token are taken per attempt, in that
    order, and released during backoff. Taking the per-host slot first means a request
    waiting for a busy host holds no global slot, so requests for other hosts overtake
    it instead of the whole run slowing to one host's pace (head-of-line blocking).
    """

    def __init__(
        self,
        transport: Transport,
        settings: Settings,
        *,
        rate_limiter: RateLimiter | None = None,
        save_body: SaveBody | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._transport = transport
        self._settings = settings
        limits = settings.limits
        self._per_host = PerHostLimiter(
            min(limits.per_host, limits.concurrency),
            rate=limits.host_rate_cap,
            adapt=limits.adapt,
        )
        self._global = Slots(limits.concurrency)
        self._deadlines = DeadlineWatch()
        self._rate = rate_limiter
        self._save_body = save_body
        self._rng = rng or random.Random()
        self._sleep = sleep

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def finishes_inline(self) -> bool:
        """True when a final outcome becomes a Result without awaiting anything: no rate
        limit and no bodies saved (what the engine's fast lane needs)."""
        return self._rate is None and self._save_body is None

    async def aclose(self) -> None:
        """Stop the deadline sweeper (it also stops by itself once nothing is running)
        and the per-host limits' load timer."""
        self._per_host.stop()
        await self._deadlines.aclose()

    async def execute(self, request: Request, *, enqueued_at: float | None = None) -> Result:
        return await self.attempts(request, Clock.start(enqueued_at))

    async def attempts(
        self,
        request: Request,
        clock: Clock,
        *,
        made: int = 0,
        delay: float | None = None,
        first: Response | None = None,
    ) -> Result:
        """Make attempts after the ``made`` ones already made, until one is final.

        ``delay`` is the backoff still owed before the next attempt; ``first`` a redirect
        response that attempt ``made + 1`` got already, to follow rather than resend.
        """
        attempt = made
        if delay is not None:
            await self._sleep(delay)
        while True:
            attempt += 1
            outcome = await self._attempt(request, first)
            first = None
            decision = self.decide(request, attempt, outcome)
            if not decision.retry:
                return await self._finish(request, outcome, attempt, clock)
            await self._sleep(decision.delay)

    # -- slots for callers that start attempts themselves (the engine's fast lane) ---------

    def slot_free(self) -> bool:
        """Whether an attempt could take a global slot now without waiting."""
        return self._global.free

    def try_hold(self, host: str) -> bool:
        """Take ``host``'s slot and a global slot now if both are free; never waits."""
        if not self._per_host.try_hold(host):
            return False
        if self._global.try_acquire():
            return True
        self._per_host.release(host)
        return False

    def release(self, host: str, outcome: object = None, started: float = 0.0) -> None:
        """Give back the slots :meth:`try_hold` took; ``outcome`` is what the attempt that
        started at ``started`` (a ``perf_counter`` value) got, None if it never ran."""
        self._global.release()
        self._per_host.release(host, outcome, started)

    @property
    def hosts(self) -> PerHostLimiter:
        """Each host's limits: what they learned, and waking those who wait for them."""
        return self._per_host

    async def _attempt(self, request: Request, first: Response | None = None) -> Outcome:
        host = host_of(request.url)
        async with self._per_host.hold(host), self._global:
            if self._rate is not None:
                await self._rate.acquire(host)
            started = _perf_counter()
            outcome = await self._send(request, first)
            self._per_host.observe(host, outcome, started)
            return outcome

    async def _send(self, request: Request, first: Response | None) -> Outcome:
        """One attempt (its redirects followed) within the total deadline."""
        settings = self._settings
        total = settings.timeouts.total
        task = asyncio.current_task() if total is not None else None
        outcome: Response | TransportError
        try:
            if task is not None and total is not None:
                self._deadlines.start(task, total)
            outcome = await send_following(
                self._transport,
                request,
                timeouts=settings.timeouts,
                max_body=settings.body.max_body,
                max_redirects=settings.transport.max_redirects,
                first=first,
            )
        except asyncio.CancelledError:
            if task is not None and total is not None and self._deadlines.stop(task):
                task.uncancel()  # our own cancellation: it is a timeout, not a stop
                return overdue_error(total)
            raise
        except TransportError as error:
            outcome = error
        if task is not None and total is not None and self._deadlines.stop(task):
            # The deadline's cancellation was absorbed below us: a timeout all the same.
            task.uncancel()
            return overdue_error(total)
        return outcome

    def decide(self, request: Request, attempt: int, outcome: Outcome) -> RetryDecision:
        """Whether attempt number ``attempt`` of ``request`` is to be followed by another."""
        policy = self._settings.retry
        if isinstance(outcome, TransportError):
            return decide_after_error(request, attempt, outcome, policy, self._rng)
        return decide_after_response(request, attempt, outcome, policy, self._rng)

    async def _finish(
        self, request: Request, outcome: Outcome, attempts: int, clock: Clock
    ) -> Result:
        saved = None
        if self._save_body is not None and isinstance(outcome, Response):
            saved = await self._save_body(request, outcome)
        return self.result(request, outcome, attempts, clock, saved)

    def result(
        self,
        request: Request,
        outcome: Outcome,
        attempts: int,
        clock: Clock,
        saved_path: str | None = None,
    ) -> Result:
        """The record of a final outcome (the body saved at ``saved_path``, if any)."""
        total_ms = _three_places((_perf_counter() - clock.started) * 1000)
        queued_ms = _three_places(clock.queued_ms)
        if isinstance(outcome, TransportError):
            timings = Timings(queued_ms, None, None, total_ms)  # positional: cheaper
            message = redact_text(outcome.message, _secrets_of(request))
            return failure_result(
                request,
                outcome.kind.value,
                message,
                attempts=attempts,
                timings=timings,
                started_at=clock.started_at,
            )
        connect_ms, ttfb_ms = outcome.connect_ms, outcome.ttfb_ms
        timings = Timings(
            queued_ms,
            None if connect_ms is None else _three_places(connect_ms),
            None if ttfb_ms is None else _three_places(ttfb_ms),
            total_ms,
        )
        return success_result(
            request,
            outcome,
            attempts=attempts,
            timings=timings,
            started_at=clock.started_at,
            policy=self._settings.body,
            saved_path=saved_path,
        )


def _three_places(duration_ms: float) -> float:
    """``round(duration_ms, 3)``, but for halves one float-multiplication error away.

    round() with digits converts to decimal text and back; it ran four times per record
    and cost twice this. Negative, huge or NaN values (never measured) go to round().
    """
    scaled = duration_ms * 1000.0 + 0.5
    if not 0.0 <= scaled < 1e15:
        return round(duration_ms, 3)
    return int(scaled) / 1000.0


def _secrets_of(request: Request) -> tuple[str, ...]:
    secrets = [value for name, value in request.headers if name.lower() in CREDENTIAL_HEADERS]
    password = _url_password(request.url)
    if password:
        secrets.append(password)
    return tuple(secrets)


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def internal_error_result(request: Request, exc: BaseException) -> Result:
    """A record for a bug in asyncfetch itself: the run goes on, the bug is visible."""
    return failure_result(
        request,
        ErrorKind.INTERNAL.value,
        f"internal error ({type(exc).__name__}); please report it",
        attempts=1,
        timings=Timings(),
        started_at=utc_now_iso(),
    )
