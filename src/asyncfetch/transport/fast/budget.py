"""The fast transport's global cap on open connections, with least-recently-used eviction.

Per-host pools bound the connections to one origin; nothing bounded their sum, and a
crawl over many hosts kept an idle keep-alive connection for every host it had seen
until the process ran out of descriptors. The budget counts every connection from the
moment one is about to be opened until its socket is closed (``connection_lost``), so
the count is the descriptors in use. At the cap, a new connection waits: the least
recently used idle connection, of any host, is closed to make room, or the caller
waits for one in use to close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .connection import Connection


class ConnectionBudget:
    """At most ``cap`` connections open at once across every pool of a transport."""

    __slots__ = ("_cap", "_evicting", "_idle", "_loop", "_open", "_waiters", "peak")

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        self._cap = max(1, cap)
        self._loop = loop
        self._open = 0  # connections opening, open, or closing (socket not closed yet)
        self.peak = 0
        # Idle connections, least recently parked first (a dict keeps insertion order).
        self._idle: dict[Connection, None] = {}
        self._evicting: set[Connection] = set()  # closed by us for a waiter, not yet gone
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def cap(self) -> int:
        return self._cap

    @property
    def open(self) -> int:
        return self._open

    async def take(self) -> None:
        """A slot for a new connection; waits (evicting idle ones) at the cap."""
        if self._open < self._cap and not self._waiters:
            self._count_one()
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        self._evict_for_waiters()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed a slot as we were cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def give_back(self) -> None:
        """A slot is free (a socket closed, or opening one failed): the next waiter's."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; the count stays
                return
        self._open -= 1

    def closed(self, conn: Connection) -> None:
        """``conn``'s socket is closed (its ``on_lost`` hook)."""
        self._idle.pop(conn, None)
        self._evicting.discard(conn)
        self.give_back()

    def parked(self, conn: Connection) -> None:
        """``conn`` went idle in its pool; it may be evicted from now on."""
        self._idle[conn] = None
        if self._waiters:
            self._evict_for_waiters()

    def unparked(self, conn: Connection) -> None:
        """``conn`` left its pool's idle list (reused, expired or closed)."""
        self._idle.pop(conn, None)

    def evict_idle(self) -> bool:
        """Close the least recently used idle connection; False when none is idle."""
        if not self._idle:
            return False
        conn = next(iter(self._idle))
        del self._idle[conn]
        self._evicting.add(conn)
        pool: Any = conn.pool
        pool.evict(conn)
        return True

    def _evict_for_waiters(self) -> None:
        # One eviction per waiter: a closing socket frees its slot a loop turn later.
        while len(self._waiters) > len(self._evicting) and self.evict_idle():
            pass

    def _count_one(self) -> None:
        self._open += 1
        if self._open > self.peak:
            self.peak = self._open
