"""The demo's embedded HTTP server: delays, jsonplaceholder-like posts and a bulk endpoint.

It listens on 127.0.0.1 on a free port so the demo needs no network, and it counts the
requests it is serving at once: concurrency is then proven by what the server saw, not by
the wall clock of a possibly busy machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .._errors import ConfigError

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BULK_LATENCY_S = 0.1
# The bulk run opens hundreds of connections at once; with the default backlog (128) the
# kernel drops the excess SYNs and those clients wait a full second to retransmit.
_BACKLOG = 2048
# The longest delay a client may ask for; keeps a typo from holding a connection for hours.
MAX_DELAY_S = 60.0

_TITLES = (
    "sunt aut facere repellat provident occaecati excepturi optio reprehenderit",
    "qui est esse",
    "ea molestias quasi exercitationem repellat qui ipsa sit aut",
    "eum et est occaecati",
    "nesciunt quas odio",
)
_BODY = (
    "quia et suscipit suscipit recusandae consequuntur expedita et cum reprehenderit "
    "molestiae ut ut quas totam nostrum rerum est autem sunt rem eveniet architecto"
)


def _json(data: Any, status: int = 200) -> web.Response:
    # One line with ", " separators, like the tutorial's output: `{ "userId": 1, "id": 1, ...`
    return web.Response(
        text=json.dumps(data, ensure_ascii=False), status=status, content_type="application/json"
    )


def _post(post_id: int) -> dict[str, Any]:
    return {
        "userId": (post_id - 1) // 10 + 1,
        "id": post_id,
        "title": _TITLES[(post_id - 1) % len(_TITLES)],
        "body": _BODY,
    }


def _seconds(request: web.Request) -> float:
    try:
        seconds = float(request.match_info["seconds"])
    except ValueError:
        raise web.HTTPBadRequest(text="seconds must be a number, e.g. /delay/2") from None
    if not 0 <= seconds <= MAX_DELAY_S:
        raise web.HTTPBadRequest(text=f"seconds must be between 0 and {MAX_DELAY_S:g}")
    return seconds


def _post_id(request: web.Request, default: int) -> int:
    raw = request.match_info.get("n")
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise web.HTTPNotFound(text="posts are numbered from 1, e.g. /posts/1")
    return int(raw)


class DemoServer:
    """``async with DemoServer(scale=0.1) as server: ... server.url ...``

    ``scale`` multiplies every delay, so tests can walk the whole demo in a second.
    """

    def __init__(self, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ConfigError("scale must be > 0, e.g. scale=1.0 (real delays) or 0.05")
        self.scale = scale
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests_served = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("DemoServer is not started; use `async with DemoServer()`")
        return f"http://127.0.0.1:{self._port}"

    def reset_peak(self) -> None:
        """Start a new observation window for ``peak_in_flight``."""
        self.peak_in_flight = self.in_flight

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        # Bind the socket ourselves: it is the public way to learn which free port we got.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            self._port = sock.getsockname()[1]
            await web.SockSite(runner, sock, backlog=_BACKLOG).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> DemoServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._count_in_flight])
        app.router.add_get("/delay/{seconds}", self._delay)
        app.router.add_get("/posts/{n}", self._get_post)
        app.router.add_post("/posts", self._create_post)
        app.router.add_post("/posts/{n}", self._create_post)
        app.router.add_get("/bulk/{i}", self._bulk)
        return app

    @web.middleware
    async def _count_in_flight(
        self, request: web.Request, handler: _Handler
    ) -> web.StreamResponse:
        self.in_flight += 1
        self.requests_served += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _delay(self, request: web.Request) -> web.Response:
        seconds = _seconds(request)
        await asyncio.sleep(seconds * self.scale)
        return _json({"slept": seconds, "scaled": seconds * self.scale})

    async def _get_post(self, request: web.Request) -> web.Response:
        return _json(_post(_post_id(request, default=1)))

    async def _create_post(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="send a JSON object") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="send a JSON object")
        # jsonplaceholder gives a new post id 101; echo that, or the id in the path.
        return _json({**data, "id": _post_id(request, default=101)}, status=201)

    async def _bulk(self, request: web.Request) -> web.Response:
        await asyncio.sleep(BULK_LATENCY_S * self.scale)
        return _json({"i": request.match_info["i"]})
