"""The in-process work queue: a reader task filling a bounded buffer of WorkItems.

The bound is the back-pressure of the design: when workers are busy the reader waits,
so memory holds at most ``maxsize`` requests (plus one input batch) however large the
input is. Items are taken by coroutines (:meth:`MemoryQueue.get`) or, without awaiting
anything, by the run loop (:meth:`MemoryQueue.take_nowait`, the ``TakesReady``
capability of ``queues/base.py``), which asks to be called back when more arrive
(:meth:`MemoryQueue.call_when_ready`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from .._models import Item
from .base import NOT_READY, NotReady, WorkItem


class MemoryQueue:
    """Feeds WorkItems from an async iterator of requests; ends when it is exhausted."""

    def __init__(
        self,
        source: AsyncIterator[Item] | None = None,
        *,
        batches: AsyncIterator[Sequence[Item | WorkItem]] | None = None,
        maxsize: int = 1000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Read ``source`` (one item at a time) or ``batches`` (lists of items): one of them.

        A batch may hold ready WorkItems (a Redis worker's, which carry their entry ids);
        they are queued as they are.
        """
        if (source is None) == (batches is None):
            raise TypeError("MemoryQueue takes either source or batches")
        self._source: AsyncIterator[Item] | AsyncIterator[Sequence[Item]]
        self._source = source if source is not None else batches  # type: ignore[assignment]
        self._batched = batches is not None
        self._maxsize = max(1, maxsize)
        self._clock = clock
        self._items: deque[WorkItem] = deque()
        self._ended = False
        self._getters: deque[asyncio.Future[None]] = deque()
        self._room: asyncio.Future[None] | None = None
        self._on_ready: Callable[[], None] | None = None
        self._feeder: asyncio.Task[None] | None = None

    # -- taking work -------------------------------------------------------------------------

    def take_nowait(self) -> WorkItem | NotReady | None:
        """The next item; None once there is no more work; NOT_READY if none is ready."""
        self._start()
        items = self._items
        if not items:
            return None if self._ended else NOT_READY
        item = items.popleft()
        room = self._room
        # Wake the reader only once half the buffer is free: waking it for every item
        # taken would cost a task switch per item.
        if room is not None and len(items) <= self._maxsize // 2 and not room.done():
            room.set_result(None)
        return item

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once (soon, from the loop) when an item or the end is ready."""
        self._start()
        if self._items or self._ended:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._on_ready = callback

    async def get(self) -> WorkItem | None:
        """The next item, waiting for one; None once there is no more work."""
        while True:
            item = self.take_nowait()
            if not isinstance(item, NotReady):
                return item
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter in self._getters:
                    self._getters.remove(getter)
                elif self._items or self._ended:
                    self._wake(1)  # woken, then cancelled: pass the wake-up on
                raise

    # -- feeding -----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._feeder is None and not self._ended:
            self._feeder = asyncio.create_task(self._feed(), name="asyncfetch-reader")

    async def _feed(self) -> None:
        try:
            if self._batched:
                async for batch in self._source:
                    await self._push(batch)  # type: ignore[arg-type]
            else:
                async for request in self._source:
                    await self._push((request,))  # type: ignore[arg-type]
        finally:
            # Input ended or failed mid-way: workers finish what was read, then end.
            self._end()

    async def _push(self, batch: Sequence[Item | WorkItem]) -> None:
        while len(self._items) >= self._maxsize and not self._ended:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        if self._ended:
            return  # stopped: nothing more is handed out
        enqueued_at = self._clock()  # one clock reading per batch: items arrive together
        self._items.extend(
            [item if isinstance(item, WorkItem) else WorkItem(item, enqueued_at) for item in batch]
        )
        self._wake(len(batch))

    def _wake(self, count: int) -> None:
        getters = self._getters
        while getters and count > 0:
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                count -= 1
        on_ready, self._on_ready = self._on_ready, None
        if on_ready is not None:
            on_ready()

    def _end(self) -> None:
        self._ended = True
        self._wake(len(self._getters))

    # -- shutdown ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop reading input; workers finish what they hold and then get None."""
        if self._feeder is not None:
            self._feeder.cancel()
        # What is queued was never started: drop it so that workers end at once.
        self._items.clear()
        self._end()

    async def aclose(self) -> None:
        self._ended = True
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()

    def feeder_error(self) -> BaseException | None:
        """The exception that stopped input reading (a missing file, say), if any."""
        if self._feeder is None or not self._feeder.done() or self._feeder.cancelled():
            return None
        return self._feeder.exception()
