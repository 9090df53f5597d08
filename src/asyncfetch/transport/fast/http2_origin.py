"""The streams to one origin over HTTP/2, without the protocol: their turns and their
connection. The ``h2`` library lives in ``http2.py``, which is imported only when a run
offers h2 (--http2): importing h2 costs 11 ms, which every other run would pay at start-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .http2 import H2Session

# Request fields HTTP/2 forbids (RFC 9113 §8.2.2) or carries as pseudo-headers.
_NOT_IN_H2: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)
_FRAMING: Final = frozenset({"content-length", "transfer-encoding"})

H2Answer = tuple[int, tuple[tuple[str, str], ...], bytes, float]  # status, headers, body, ttfb


class NotH2(Exception):
    """The server chose HTTP/1.1 by ALPN: the origin is served by the HTTP/1.1 path."""


class H2Origin:
    """The HTTP/2 connection to one origin, and the streams waiting for room on it.

    At most ``limit`` streams (the per-host limit) are in flight at once, and never more
    than the server allows; a connection that received GOAWAY takes no new stream and is
    closed once its last stream ends, while new streams go to a new connection.
    """

    def __init__(
        self,
        connect: Callable[[float | None, Callable[[], None]], Awaitable[H2Session]],
        *,
        limit: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._connect = connect
        self._limit = limit
        self._loop = loop
        self._session: H2Session | None = None
        self._opening: asyncio.Future[H2Session | None] | None = None
        self._draining: set[H2Session] = set()
        self._in_flight = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._idle_since = loop.time()
        self.connections_opened = 0

    async def request(
        self,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        max_body: int,
    ) -> tuple[H2Answer, float | None]:
        """The answer, and the ms spent connecting (None on an open connection)."""
        await self._take_turn()
        try:
            session, connect_ms = await self._session_with_room(connect_timeout)
            answer = await session.request(
                headers, body, max_body=max_body, read_timeout=read_timeout
            )
            return answer, connect_ms
        finally:
            self._in_flight -= 1
            self._idle_since = self._loop.time()
            self._changed()

    def expire(self, now: float, idle_timeout: float) -> bool:
        """Close the connection when no stream has run for ``idle_timeout`` seconds; True
        when the origin holds nothing any more (its owner may forget it)."""
        idle = self._in_flight == 0 and self._opening is None and not self._waiters
        if not idle or now - self._idle_since < idle_timeout:
            return False
        self.close()  # its sockets close on their own; nothing waits for them here
        return True

    async def _take_turn(self) -> None:
        while self._in_flight >= self._limit:
            await self._wait_for_change()
        self._in_flight += 1

    async def _session_with_room(
        self, connect_timeout: float | None
    ) -> tuple[H2Session, float | None]:
        while True:
            session = self._session
            if session is None or session.closed:
                start = time.perf_counter()
                opened = await self._open(connect_timeout)
                if opened is None:
                    continue  # the task opening it was cancelled: open one ourselves
                if opened.capacity > 0:
                    return opened, (time.perf_counter() - start) * 1000.0
            elif session.capacity > 0:
                return session, None
            await self._wait_for_change()

    async def _open(self, connect_timeout: float | None) -> H2Session | None:
        """A new connection, shared by the streams that wanted one meanwhile; None when
        the task opening it was cancelled (the caller tries again)."""
        if self._opening is None:
            self._opening = self._loop.create_future()
            opening = self._opening
            try:
                session = await self._connect(connect_timeout, self._changed)
            except Exception as exc:  # the waiters re-raise it as their own failure
                self._opening = None
                opening.set_exception(exc)
                opening.exception()  # retrieved
                raise
            except BaseException:
                self._opening = None
                opening.set_result(None)
                raise
            self.connections_opened += 1
            old, self._session, self._opening = self._session, session, None
            if old is not None:
                self._retire(old)
            opening.set_result(session)
            return session
        return await asyncio.shield(self._opening)

    def _retire(self, session: H2Session) -> None:
        if session.busy:
            self._draining.add(session)
        else:
            session.close()

    def _changed(self) -> None:
        for session in [s for s in self._draining if not s.busy]:
            self._draining.discard(session)
            session.close()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_for_change(self) -> None:
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def close(self) -> list[asyncio.Future[None]]:
        """Close every connection; the futures resolve when their sockets are closed."""
        sessions = [*self._draining, *([self._session] if self._session else [])]
        for session in sessions:
            session.abort()
        self._session = None
        self._draining.clear()
        return [session.lost for session in sessions]


def request_headers(
    method: str, authority: str, target: str, fields: list[tuple[str, str]], body: bytes | None
) -> list[tuple[str, str]]:
    """HTTP/2 request headers: pseudo-headers first, names lower-case, framing ours."""
    headers = [(":method", method), (":scheme", "https"), (":authority", authority)]
    headers.append((":path", target))
    for name, value in fields:
        lowered = name.lower()
        if lowered == "host":
            headers[2] = (":authority", value)
        elif lowered not in _NOT_IN_H2 and lowered not in _FRAMING:
            headers.append((lowered, value))
    if body is not None:
        headers.append(("content-length", str(len(body))))
    elif method in ("POST", "PUT", "PATCH"):
        headers.append(("content-length", "0"))
    return headers
