"""Turn one Request into its one final Result: limits, attempts, retries, body policy."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from .config import Settings
from .deadlines import DeadlineWatch
from .errors import ErrorKind, TimeoutError_, TransportError
from .limits import PerHostLimiter, RateLimiter, Slots
from .models import Request, Response, Result, Timings
from .redact import CREDENTIAL_HEADERS, redact_text
from .results import failure_result, success_result, utc_now_iso
from .retry import RetryDecision, decide_after_error, decide_after_response
from .transport.base import Transport
from .transport.redirects import send_following

SaveBody = Callable[[Request, Response], Awaitable[str]]


def host_of(url: str) -> str:
    """The lower-cased host name of an absolute http(s) URL (the per-host limit's key).

    Hand-parsed because urlsplit was a visible share of the per-request cost; URLs reach
    here already validated, and anything unusual falls back to urlsplit.
    """
    _scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not sep or "@" in authority or "[" in authority:
        try:
            return (urlsplit(url).hostname or "").lower()
        except ValueError:
            return ""
    return authority.rsplit(":", 1)[0].lower() if ":" in authority else authority.lower()


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
        self._per_host = PerHostLimiter(settings.limits.per_host)
        self._global = Slots(settings.limits.concurrency)
        self._deadlines = DeadlineWatch()
        self._rate = rate_limiter
        self._save_body = save_body
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def aclose(self) -> None:
        """Stop the deadline sweeper (it also stops by itself once nothing is running)."""
        await self._deadlines.aclose()

    async def execute(self, request: Request, *, enqueued_at: float | None = None) -> Result:
        started = time.perf_counter()
        started_at = utc_now_iso()
        queued_ms = 0.0 if enqueued_at is None else max(0.0, (started - enqueued_at) * 1000)
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(request)
            decision = self._decide(request, attempt, outcome)
            if not decision.retry:
                return await self._finish(
                    request, outcome, attempt, started, started_at, queued_ms
                )
            await self._sleep(decision.delay)

    async def _attempt(self, request: Request) -> Response | TransportError:
        host = host_of(request.url)
        settings = self._settings
        async with self._per_host.hold(host), self._global:
            if self._rate is not None:
                await self._rate.acquire(host)
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
                )
            except asyncio.CancelledError:
                if task is not None and self._deadlines.stop(task):
                    task.uncancel()  # our own cancellation: it is a timeout, not a stop
                    return TimeoutError_(f"no complete response within {total} s")
                raise
            except TransportError as error:
                outcome = error
            if task is not None and self._deadlines.stop(task):
                # The deadline's cancellation was absorbed below us: a timeout all the same.
                task.uncancel()
                return TimeoutError_(f"no complete response within {total} s")
            return outcome

    def _decide(
        self, request: Request, attempt: int, outcome: Response | TransportError
    ) -> RetryDecision:
        policy = self._settings.retry
        if isinstance(outcome, TransportError):
            return decide_after_error(request, attempt, outcome, policy, self._rng)
        return decide_after_response(request, attempt, outcome, policy, self._rng)

    async def _finish(
        self,
        request: Request,
        outcome: Response | TransportError,
        attempts: int,
        started: float,
        started_at: str,
        queued_ms: float,
    ) -> Result:
        connect_ms = ttfb_ms = None
        if isinstance(outcome, Response):
            connect_ms, ttfb_ms = outcome.connect_ms, outcome.ttfb_ms
        timings = Timings(
            queued_ms=round(queued_ms, 3),
            connect_ms=None if connect_ms is None else round(connect_ms, 3),
            ttfb_ms=None if ttfb_ms is None else round(ttfb_ms, 3),
            total_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        if isinstance(outcome, TransportError):
            message = redact_text(outcome.message, _secrets_of(request))
            return failure_result(
                request,
                outcome.kind.value,
                message,
                attempts=attempts,
                timings=timings,
                started_at=started_at,
            )
        saved = None
        if self._save_body is not None:
            saved = await self._save_body(request, outcome)
        return success_result(
            request,
            outcome,
            attempts=attempts,
            timings=timings,
            started_at=started_at,
            policy=self._settings.body,
            saved_path=saved,
        )


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
