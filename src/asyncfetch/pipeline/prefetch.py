"""Any WorkQueue taken from without waiting: the run loop's view of a queue that only
offers ``get`` (a Redis stream, say).

One ``get`` is kept in flight by a task; its item is handed over when the loop next asks,
and the loop is called back when it arrives. A queue that offers ``TakesReady`` itself
(the memory queue) is used directly and needs none of this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..queues.base import NOT_READY, NotReady, WorkItem, WorkQueue


class Prefetch:
    """``TakesReady`` over ``queue``: at most one item read ahead."""

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue
        self._getting: asyncio.Task[WorkItem | None] | None = None
        self._ended = False
        self._on_ready: Callable[[], None] | None = None

    def take_nowait(self) -> WorkItem | NotReady | None:
        """The item read ahead, if it has arrived (and start reading the next); None
        once the queue has ended; a failed ``get`` raises its error here."""
        if self._ended:
            return None
        getting = self._getting
        if getting is None:
            self._getting = asyncio.get_running_loop().create_task(self._queue.get())
            self._getting.add_done_callback(self._arrived)
            return NOT_READY
        if not getting.done():
            return NOT_READY
        self._getting = None
        item = getting.result()
        if item is None:
            self._ended = True
        return item

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, soon, when the item read ahead has arrived."""
        getting = self._getting
        if self._ended or getting is None or getting.done():
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._on_ready = callback

    def _arrived(self, _task: asyncio.Task[WorkItem | None]) -> None:
        on_ready, self._on_ready = self._on_ready, None
        if on_ready is not None:
            on_ready()

    def close(self) -> None:
        """Stop reading ahead: an item in flight was never started (a shared queue gives
        it back when it closes)."""
        self._ended = True
        getting, self._getting = self._getting, None
        if getting is not None and not getting.done():
            getting.cancel()
