"""Turn one Request into its one final Result: limits, attempts, retries, body policy.

Every per-request policy is here once, for both ways a request is driven: a task that
awaits (:meth:`RequestExecutor.complete`), and a callback from the transport when it
started the attempt itself (:meth:`RequestExecutor.start`, then
:meth:`RequestExecutor.land`). Both end an attempt in :meth:`RequestExecutor._ends`, the
one place that decides between a record, a retry and a redirect to follow.
"""

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
from .._settings import Settings, Timeouts
from ..policy.deadlines import DeadlineWatch, overdue_error
from ..policy.hosts import host_of
from ..policy.limits import LimitWaits, PerHostLimiter, RateLimiter, Slots, acquires_now
from ..policy.records import failure_result, success_result, utc_now_iso
from ..policy.redact import CREDENTIAL_HEADERS, redact_text
from ..policy.retry import decide_after_error, decide_after_response
from ..queues.base import WorkItem
from ..transport.base import Landing, Transport, starts_now
from ..transport.redirects import REDIRECT_STATUSES, send_following

SaveBody = Callable[[Request, Response], Awaitable[str]]
Outcome = Response | TransportError
# Bound once: compiled, ``time.perf_counter`` is a module attribute lookup on every call.
_perf_counter: Final = time.perf_counter
perf_counter: Final = _perf_counter  # the clock of Clock.started, for the fast lane


@dataclass(slots=True, init=False)
class Clock:
    """When a request started, for its record's timings."""

    started: float  # perf_counter
    started_at: str  # wall clock, ISO 8601
    queued_ms: float
    wait_ms: float = 0.0  # waiting for limit slots, over all attempts: not the request's time

    # Written out for the reason given in _models.py: compiled, it is native code.
    def __init__(
        self, started: float, started_at: str, queued_ms: float, wait_ms: float = 0.0
    ) -> None:
        self.started = started
        self.started_at = started_at
        self.queued_ms = queued_ms
        self.wait_ms = wait_ms

    @classmethod
    def start(cls, enqueued_at: float | None) -> Clock:
        started = _perf_counter()
        queued = 0.0 if enqueued_at is None else max(0.0, (started - enqueued_at) * 1000)
        return cls(started, utc_now_iso(), queued)


# Who drives a job: told when an attempt started by RequestExecutor.start ends (from the
# transport's callbacks). A bound method, called without a method look-up.
OnLanded = Callable[["Job", Landing], None]
StartNow = Callable[["Job", Timeouts, int], bool]


class Job:
    """One request between its attempts: what has been done, and what is owed next.

    It is also the transport's ``Exchange`` for an attempt started from a callback.
    """

    __slots__ = (
        "clock",
        "delay",
        "first",
        "host",
        "item",
        "made",
        "on_landed",
        "rate_taken",
        "request",
        "sent",
    )

    def __init__(self, item: WorkItem, request: Request, on_landed: OnLanded | None) -> None:
        self.item = item
        self.request = request
        self.on_landed = on_landed
        self.host = host_of(request.url)  # the per-host limit's key
        self.clock = Clock.start(item.enqueued_at)
        self.made = 0  # attempts made (a resend after a stale connection is not one)
        self.delay = 0.0  # the backoff owed before the next attempt
        self.first: Response | None = None  # a redirect the next attempt follows from
        self.sent = 0.0  # when the attempt started from a callback began (perf_counter)
        self.rate_taken = False  # the next attempt's rate turn, taken on the callback path

    def landed(self, outcome: Landing) -> None:
        on_landed = self.on_landed
        if on_landed is not None:
            on_landed(self, outcome)


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
        self.waits = LimitWaits()
        self._global = Slots(_usable_concurrency(transport, limits.concurrency))
        self._deadlines = DeadlineWatch()
        self._rate = rate_limiter
        self._save_body = save_body
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._follows = settings.transport.max_redirects > 0
        # Read once: Settings is an interpreted class, and each attribute read from compiled
        # code is a dictionary look-up (160 instructions, five of them per request).
        self._timeouts = settings.timeouts
        self._max_body = settings.body.max_body
        self._retry_policy = settings.retry
        self._body_policy = settings.body
        # The transport's fast path, used when a final outcome becomes a Result without
        # awaiting anything: no body to save, and no rate limit or one that can say at
        # once that no wait is due (AcquiresNow).
        self._start_now: StartNow | None = None
        self._rate_now: Callable[[str], bool] | None = None
        if save_body is None and starts_now(transport):
            if rate_limiter is None:
                self._start_now = transport.start_now
            elif acquires_now(rate_limiter):
                self._start_now = transport.start_now
                self._rate_now = rate_limiter.try_acquire

    @property
    def settings(self) -> Settings:
        return self._settings

    async def aclose(self) -> None:
        """Stop the deadline sweeper (it also stops by itself once nothing is running)
        and the per-host limits' load timer."""
        self._per_host.stop()
        await self._deadlines.aclose()

    async def execute(self, request: Request, *, enqueued_at: float | None = None) -> Result:
        """``request`` to its final Result, in the calling task."""
        item = WorkItem(request, _perf_counter() if enqueued_at is None else enqueued_at)
        job = Job(item, request, None)
        if enqueued_at is None:
            job.clock.queued_ms = 0.0
        return await self.complete(job)

    # -- slots -----------------------------------------------------------------------------

    def slot_free(self) -> bool:
        """Whether an attempt could take a global slot now without waiting."""
        return self._global.free

    def try_hold(self, job: Job) -> bool:
        """Take ``job``'s host slot and a global slot now if both are free; never waits.
        Then :meth:`start` the job (which gives them back if it cannot)."""
        host = job.host
        # One clock reading serves the host's limit and the attempt's start (job.sent): the
        # attempt starts in this same loop turn.
        now = _perf_counter()
        if not self._per_host.try_hold_at(host, now):
            return False
        if self._global.try_acquire():
            job.sent = now
            return True
        self._per_host.release(host)
        return False

    def _release(self, job: Job, outcome: Landing, started: float, ended: float) -> None:
        """Give back the slots :meth:`try_hold` took; ``outcome`` is what the attempt that
        started at ``started`` and ended at ``ended`` (``perf_counter`` values) got, None
        if it never ran: the host's adaptive limit learns from it."""
        self._global.release()
        self._per_host.release_at(job.host, outcome, started, ended)

    @property
    def hosts(self) -> PerHostLimiter:
        """Each host's limits: what they learned, and waking those who wait for them."""
        return self._per_host

    # -- the callback path -----------------------------------------------------------------

    def start(self, job: Job) -> bool:
        """Start ``job``'s next attempt now, on its held slots (:meth:`try_hold`), through
        the transport's fast path; its owner hears of the end and calls :meth:`land`.

        False when the transport cannot start it now: the slots are given back and the
        caller runs :meth:`complete` in a task.
        """
        start_now = self._start_now
        if (
            start_now is not None
            and job.delay == 0.0
            and job.first is None
            and (self._rate_now is None or self._rate_turn(job))
            and start_now(job, self._timeouts, self._max_body)
        ):
            job.rate_taken = False
            return True
        self._global.release()
        self._per_host.release(job.host)
        return False

    def _rate_turn(self, job: Job) -> bool:
        """Whether the rate limit (if any) lets ``job`` go now; a turn taken is kept on
        the job for the task path if the transport then cannot start it."""
        rate_now = self._rate_now
        if rate_now is None or job.rate_taken:
            return True
        job.rate_taken = rate_now(job.host)
        return job.rate_taken

    def land(self, job: Job, outcome: Landing) -> Result | None:
        """An attempt begun by :meth:`start` ended: the Result, or None when more is to be
        done (a retry, a redirect to follow, a resend): run :meth:`complete` in a task."""
        ended = _perf_counter()
        self._release(job, outcome, job.sent, ended)
        if self._ends(job, outcome):
            assert outcome is not None  # _ends is False for a resend
            return self._record(job, outcome, ended)
        return None

    # -- the task path ---------------------------------------------------------------------

    async def complete(self, job: Job) -> Result:
        """Make ``job``'s attempts, from where it stands, until one is final."""
        while True:
            delay = job.delay
            if delay > 0.0:
                job.delay = 0.0
                await self._sleep(delay)
            first, job.first = job.first, None
            outcome = await self._attempt(job, first)
            if self._ends(job, outcome):
                return await self._finish(job, outcome)

    async def _attempt(self, job: Job, first: Response | None) -> Outcome:
        request, clock, host = job.request, job.clock, job.host
        waits = self.waits
        asked = _perf_counter()
        async with self._per_host.hold(host):
            got_host = _perf_counter()
            async with self._global:
                got_slot = _perf_counter()
                if job.rate_taken:  # taken when a callback start was tried
                    job.rate_taken = False
                elif self._rate is not None:
                    await self._rate.acquire(host)
                    waits.rate += _perf_counter() - got_slot
                ready = _perf_counter()
                waits.per_host += got_host - asked
                waits.concurrency += got_slot - got_host
                clock.wait_ms += (ready - asked) * 1000
                outcome = await self._send(request, first)
                self._per_host.observe(host, outcome, ready)
                return outcome

    async def _send(self, request: Request, first: Response | None) -> Outcome:
        """One attempt, its slots held: the transport under the total deadline."""
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

    async def _finish(self, job: Job, outcome: Outcome) -> Result:
        saved = None
        if self._save_body is not None and isinstance(outcome, Response):
            saved = await self._save_body(job.request, outcome)
        return self._record(job, outcome, _perf_counter(), saved)

    # -- the policies, once for both paths -------------------------------------------------

    def _ends(self, job: Job, outcome: Landing) -> bool:
        """Whether ``outcome`` is ``job``'s final one; if not, what is owed next is noted
        on the job (a redirect to follow, a backoff before the retry, or a plain resend)."""
        if outcome is None:
            return False  # a stale connection: sent again, not counted as an attempt
        if self._follows and isinstance(outcome, Response) and outcome.status in REDIRECT_STATUSES:
            # One hop from the fast path: the next attempt follows it (it is part of this
            # attempt, so it is not counted).
            job.first = outcome
            return False
        job.made += 1
        policy = self._retry_policy
        # Response first: it is a compiled class, checked without TransportError's global
        # look-up (a dictionary read per request).
        if isinstance(outcome, Response):
            decision = decide_after_response(job.request, job.made, outcome, policy, self._rng)
        else:
            decision = decide_after_error(job.request, job.made, outcome, policy, self._rng)
        if decision.retry:
            job.delay = decision.delay
            return False
        return True

    def _record(
        self, job: Job, outcome: Outcome, ended: float, saved_path: str | None = None
    ) -> Result:
        """The record of a final outcome that came at ``ended`` (a ``perf_counter`` value),
        its body saved at ``saved_path``, if any."""
        request, clock, attempts = job.request, job.clock, job.made
        wait_ms = clock.wait_ms
        total_ms = _three_places((ended - clock.started) * 1000 - wait_ms)
        queued_ms = _three_places(clock.queued_ms)
        wait_ms = _three_places(wait_ms)
        if isinstance(outcome, Response):  # first, as in _ends
            connect_ms, ttfb_ms = outcome.connect_ms, outcome.ttfb_ms
            timings = Timings(
                queued_ms,
                None if connect_ms is None else _three_places(connect_ms),
                None if ttfb_ms is None else _three_places(ttfb_ms),
                total_ms,
                wait_ms,
            )
            return success_result(
                request,
                outcome,
                attempts=attempts,
                timings=timings,
                started_at=clock.started_at,
                policy=self._body_policy,
                saved_path=saved_path,
            )
        timings = Timings(queued_ms, None, None, total_ms, wait_ms)  # positional: cheaper
        message = redact_text(outcome.message, _secrets_of(request))
        return failure_result(
            request,
            outcome.kind.value,
            message,
            attempts=attempts,
            timings=timings,
            started_at=clock.started_at,
        )


def _usable_concurrency(transport: Transport, concurrency: int) -> int:
    """``concurrency``, or fewer when the transport can hold fewer connections open (a low
    file limit): attempts beyond would only wait for a connection with their deadline
    running, and start-up would read ahead into timeouts instead of results."""
    max_connections = getattr(transport, "max_connections", None)
    if isinstance(max_connections, int) and 0 < max_connections < concurrency:
        return max_connections
    return concurrency


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
