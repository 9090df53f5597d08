"""The fast transport's global cap on open connections, with least-recently-used eviction.

Per-host pools bound the connections to one origin; nothing bounded their sum, and a
crawl over many hosts kept an idle keep-alive connection for every host it had seen
until the process ran out of descriptors. The budget counts every connection from the
moment one is about to be opened until its socket is closed (``connection_lost``), so
the count is the descriptors in use. At the cap, a new connection waits: the least
recently used idle connection, of any host, is closed to make room, or the caller
waits for one in use to close.

The least recently used order is kept with lazy deletion, because it changes on every
request (a connection is parked after each response and taken for the next request),
while it is read only when a connection must be evicted. Parking appends the connection
to a list; taking it out of the pool changes nothing here. A connection may then have
several entries: only its last one stands for its place in the order, and only while it
is idle. Eviction skips the others from the front. A dict that kept the exact order cost
about 500 instructions per request (an insertion and a removal); an append costs 30. The
list is compacted when stale entries outnumber the idle connections, which keeps it
within twice their number (plus a constant), at constant cost per request on average.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

from .connection import Connection

# Stale entries allowed beyond the idle connections' number before compacting.
_SLACK: Final = 64


class ConnectionBudget:
    """At most ``cap`` connections open at once across every pool of a transport."""

    __slots__ = (
        "_cap",
        "_evicting",
        "_head",
        "_idle_count",
        "_loop",
        "_open",
        "_order",
        "_waiters",
        "peak",
    )

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        self._cap = max(1, cap)
        self._loop = loop
        self._open = 0  # connections opening, open, or closing (socket not closed yet)
        self.peak = 0
        # Parked connections, least recently parked first, stale entries included (see
        # the module docstring); entries before _head have been read.
        self._order: list[Connection] = []
        self._head = 0
        self._idle_count = 0
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
        self._evicting.discard(conn)
        self.give_back()

    def parked(self, conn: Connection) -> None:
        """``conn`` went idle in its pool (``conn.idle`` is set); it may be evicted now."""
        self._order.append(conn)
        conn.budget_entries += 1
        self._idle_count += 1
        if len(self._order) - self._head > 2 * self._idle_count + _SLACK:
            self._compact()
        if self._waiters:
            self._evict_for_waiters()

    def unparked(self, conn: Connection) -> None:
        """``conn`` left its pool's idle list (reused, expired or closed); its entries
        stay, stale, until eviction or compaction passes them."""
        self._idle_count -= 1

    @property
    def idle(self) -> int:
        """Idle connections of every pool, which eviction may close."""
        return self._idle_count

    @property
    def entries(self) -> int:
        """Entries in the order (the idle connections' and stale ones): a bounded multiple
        of :attr:`idle`, whatever the number of requests."""
        return len(self._order) - self._head

    def evict_idle(self) -> bool:
        """Close the least recently used idle connection; False when none is idle."""
        order = self._order
        while self._head < len(order):
            conn = order[self._head]
            self._head += 1
            conn.budget_entries -= 1
            if conn.budget_entries == 0 and conn.idle:
                self._idle_count -= 1
                if self._head > _SLACK and 2 * self._head > len(order):
                    del order[: self._head]  # the read entries, once they are the most
                    self._head = 0
                self._evicting.add(conn)
                pool: Any = conn.pool
                pool.evict(conn)
                return True
        order.clear()
        self._head = 0
        return False

    def _compact(self) -> None:
        """Drop the stale entries: a connection keeps its last one, if it is idle."""
        kept: list[Connection] = []
        for conn in self._order[self._head :]:
            conn.budget_entries -= 1
            if conn.budget_entries == 0 and conn.idle:
                kept.append(conn)
        for conn in kept:
            conn.budget_entries = 1
        self._order = kept
        self._head = 0

    def _evict_for_waiters(self) -> None:
        # One eviction per waiter: a closing socket frees its slot a loop turn later.
        while len(self._waiters) > len(self._evicting) and self.evict_idle():
            pass

    def _count_one(self) -> None:
        self._open += 1
        if self._open > self.peak:
            self.peak = self._open
