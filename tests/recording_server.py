"""A real aiohttp test server whose handlers record what they saw.

Concurrency is proven by what the server observes (peak in-flight requests, arrival
order), never by wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Recorder:
    in_flight: int = 0
    peak: int = 0
    in_flight_by_host: Counter[str] = field(default_factory=Counter)
    peak_by_host: Counter[str] = field(default_factory=Counter)
    requests: list[Seen] = field(default_factory=list)
    counters: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    waiters: list[tuple[int, asyncio.Event]] = field(default_factory=list)
    gate_open: asyncio.Event = field(default_factory=asyncio.Event)

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.path == path)

    async def seen(self, count: int) -> None:
        """Return once the server has received ``count`` requests: an event, not a sleep."""
        if len(self.requests) < count:
            arrived = asyncio.Event()
            self.waiters.append((count, arrived))
            await arrived.wait()

    def arrived(self, seen: Seen) -> None:
        self.requests.append(seen)
        for count, event in self.waiters:
            if len(self.requests) >= count:
                event.set()


def build_app(recorder: Recorder) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0]
        recorder.arrived(
            Seen(
                request.method,
                request.path,
                dict(request.headers),
                await request.read(),
                time.monotonic(),
            )
        )
        recorder.in_flight += 1
        recorder.in_flight_by_host[host] += 1
        recorder.peak = max(recorder.peak, recorder.in_flight)
        recorder.peak_by_host[host] = max(
            recorder.peak_by_host[host], recorder.in_flight_by_host[host]
        )
        try:
            return await handler(request)
        finally:
            recorder.in_flight -= 1
            recorder.in_flight_by_host[host] -= 1

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/ok", ok)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/delay/{ms}", delay)
    app.router.add_get("/never", never)
    app.router.add_get("/bytes/{n}", many_bytes)
    app.router.add_get("/binary", binary)
    app.router.add_route("*", "/redirect/{n}", redirect_chain)
    app.router.add_route("*", "/redirect-to", redirect_to)
    app.router.add_get("/loop", loop)
    app.router.add_route("*", "/flaky/{key}/{failures}/{code}", flaky(recorder))
    app.router.add_get("/retry-after/{key}/{value}", retry_after(recorder))
    app.router.add_get("/gate/{n}", gate(recorder))
    return app


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "headers": dict(request.headers),
            "body": body.decode("utf-8", "replace"),
        }
    )


async def set_cookie(request: web.Request) -> web.Response:
    """Hands the request's Cookie back as a Set-Cookie: a secret in a response header."""
    cookie = request.headers.get("Cookie", "none=1")
    return web.Response(text="cookie set", headers={"Set-Cookie": f"{cookie}; Path=/"})


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status")


async def delay(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(text="slept")


async def never(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    return web.Response(text="too late")


async def many_bytes(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * int(request.match_info["n"]), content_type="text/plain")


async def binary(request: web.Request) -> web.Response:
    return web.Response(body=bytes(range(256)), content_type="application/octet-stream")


async def redirect_chain(request: web.Request) -> web.Response:
    remaining = int(request.match_info["n"])
    if remaining == 0:
        return await echo(request)
    raise web.HTTPFound(f"/redirect/{remaining - 1}")


async def redirect_to(request: web.Request) -> web.Response:
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={"Location": request.query["url"]})


async def loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


def flaky(recorder: Recorder) -> web.Handler:
    """Fails ``failures`` times with ``code`` for each key, then answers 200."""

    async def handler(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        recorder.counters[key] += 1
        if recorder.counters[key] <= int(request.match_info["failures"]):
            return web.Response(status=int(request.match_info["code"]), text="fail")
        return web.Response(text="recovered")

    return handler


def gate(recorder: Recorder) -> web.Handler:
    """Holds each request until ``n`` are in flight at once (then lets every one through),
    or 10 s pass: a client that can reach ``n`` does, however slow the machine."""

    async def handler(request: web.Request) -> web.Response:
        if recorder.in_flight >= int(request.match_info["n"]):
            recorder.gate_open.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(recorder.gate_open.wait(), 10)
        return web.Response(text="through")

    return handler


def retry_after(recorder: Recorder) -> web.Handler:
    """429 with the given Retry-After once per key, then 200."""

    async def handler(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        recorder.counters[key] += 1
        if recorder.counters[key] == 1:
            value = request.match_info["value"].replace("_", " ")
            return web.Response(status=429, headers={"Retry-After": value})
        return web.Response(text="after")

    return handler


class LocalServer:
    """Starts an app on 127.0.0.1 (a free port); ``url(path)`` builds request URLs."""

    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        self.port = 0

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def close(self) -> None:
        await self._runner.cleanup()


class RecordingServer(LocalServer):
    """The recording app (``build_app``) on 127.0.0.1."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        super().__init__(build_app(self.recorder))
