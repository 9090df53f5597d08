"""Local servers that enforce a limit, as rate-limited APIs do, and count what they saw.

- ``/bucket/...``: a token bucket of ``rate`` requests per second holding up to ``burst``;
  a request that finds it empty gets ``429`` with ``Retry-After`` (whole seconds).
- ``/knee/...``: answers after ``base_ms``, plus ``step_ms`` for every request in flight
  beyond ``knee``: past the knee, more concurrency only makes everything slower.

Everything is judged by what the server observed (its own clock, its own counts), never
by the client's wall time. The benchmark ``benchmarks/politeness.py`` uses it too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.recording_server import LocalServer


@dataclass
class BucketLog:
    """What the token-bucket endpoint saw."""

    accepted: int = 0
    rejected: int = 0
    accepted_at: list[float] = field(default_factory=list)
    rejected_at: list[float] = field(default_factory=list)

    def accepted_rate(self, skip: int) -> float:
        """Accepted requests per second after the first ``skip`` (the initial burst)."""
        times = self.accepted_at[skip:]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


@dataclass
class KneeLog:
    """What the latency-knee endpoint saw: the requests in flight at each arrival."""

    in_flight: int = 0
    arrivals: list[int] = field(default_factory=list)


class LimitedServer(LocalServer):
    """Both endpoints on 127.0.0.1 (a free port)."""

    def __init__(
        self,
        *,
        rate: float = 40.0,
        burst: float = 40.0,
        retry_after: int = 1,
        knee: int = 3,
        base_ms: float = 20.0,
        step_ms: float = 40.0,
    ) -> None:
        self.rate, self.burst, self.retry_after = rate, burst, retry_after
        self.knee, self.base_ms, self.step_ms = knee, base_ms, step_ms
        self.bucket = BucketLog()
        self.knee_log = KneeLog()
        self._tokens = burst
        self._refilled = time.monotonic()
        app = web.Application()
        app.router.add_get("/bucket/{tail:.*}", self._bucket)
        app.router.add_get("/knee/{tail:.*}", self._knee)
        super().__init__(app)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def _bucket(self, request: web.Request) -> web.Response:
        if not self._take_token():
            self.bucket.rejected += 1
            self.bucket.rejected_at.append(time.monotonic())
            headers = {"Retry-After": str(self.retry_after)}
            return web.Response(status=429, text="slow down", headers=headers)
        self.bucket.accepted += 1
        self.bucket.accepted_at.append(time.monotonic())
        return web.Response(text="ok")

    async def _knee(self, request: web.Request) -> web.Response:
        log = self.knee_log
        log.in_flight += 1
        log.arrivals.append(log.in_flight)
        try:
            extra = max(0, log.in_flight - self.knee) * self.step_ms
            await asyncio.sleep((self.base_ms + extra) / 1000)
            return web.Response(text="ok")
        finally:
            log.in_flight -= 1
