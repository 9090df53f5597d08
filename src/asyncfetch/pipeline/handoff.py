"""The hand-over between the requests that finish and the writer that commits them.

A list and a future rather than an asyncio.Queue: producers append without awaiting (a
final result is never dropped by a cancel arriving at the wrong moment), the writer takes
whole batches in one step, and producers that can only be called back (the dispatcher)
register a callback to be run when there is room again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..queues.base import Completed


class ResultBuffer:
    """Finished results waiting for the writer; ``backlogged`` past ``high_water``."""

    def __init__(self, high_water: int) -> None:
        self._high_water = high_water
        self._items: list[Completed] = []
        self._closed = False
        self._reader: asyncio.Future[None] | None = None
        self._room: list[asyncio.Future[None]] = []
        self._on_room: Callable[[], None] | None = None

    @property
    def pending(self) -> int:
        """Results handed over and not yet taken by the writer."""
        return len(self._items)

    @property
    def backlogged(self) -> bool:
        """Whether producers should wait before handing over more."""
        return len(self._items) >= self._high_water

    def push(self, completed: Completed) -> None:
        """Hand over one finished result (always accepted: the bound is advisory)."""
        self._items.append(completed)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def wait_room(self) -> None:
        """Wait until the writer has caught up below the high-water mark."""
        while self.backlogged and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            await waiter

    def call_when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the writer next takes a batch."""
        self._on_room = callback

    async def take(self, limit: int) -> list[Completed] | None:
        """Up to ``limit`` results, waiting for one; None once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        items = self._items
        if len(items) <= limit:
            self._items = []
            batch = items
        else:
            batch = items[:limit]
            del items[:limit]
        if not self.backlogged:
            self._make_room()
        return batch

    def close(self) -> None:
        """No more results will come; the writer ends once it has taken the rest."""
        self._closed = True
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)
        self._make_room()

    def _make_room(self) -> None:
        waiters, self._room = self._room, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        on_room, self._on_room = self._on_room, None
        if on_room is not None:
            asyncio.get_running_loop().call_soon(on_room)
