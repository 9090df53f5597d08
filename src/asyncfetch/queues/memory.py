"""The in-process work queue: a reader task feeding a bounded asyncio.Queue.

The bound is the back-pressure of the design: when workers are busy the reader waits,
so memory holds at most ``maxsize`` requests however large the input is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from ..models import InvalidInput, Request
from .base import WorkItem

_END = None


class MemoryQueue:
    """Feeds WorkItems from an async iterator of requests; ends when it is exhausted."""

    def __init__(
        self,
        source: AsyncIterator[Request | InvalidInput],
        *,
        maxsize: int = 1000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._source = source
        self._queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize)
        self._clock = clock
        self._feeder: asyncio.Task[None] | None = None
        self._stopped = False

    def _start(self) -> None:
        if self._feeder is None:
            self._feeder = asyncio.create_task(self._feed(), name="asyncfetch-reader")

    async def _feed(self) -> None:
        try:
            async for request in self._source:
                await self._queue.put(WorkItem(request, enqueued_at=self._clock()))
        except asyncio.CancelledError:
            raise  # stop() has already queued the end marker
        except BaseException:
            # Input failed mid-way: let workers finish what was read, then end.
            await self._queue.put(_END)
            raise
        await self._queue.put(_END)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def get(self) -> WorkItem | None:
        self._start()
        item = await self._queue.get()
        if item is None:
            # Every worker must see the end: put the marker back for the next one.
            self._queue.put_nowait(_END)
        return item

    def stop(self) -> None:
        """Stop reading input; workers finish what they hold and then get None."""
        self._stopped = True
        if self._feeder is not None:
            self._feeder.cancel()
        # What is queued was never started: drop it so that workers end at once.
        self._drain()
        self._queue.put_nowait(_END)

    async def aclose(self) -> None:
        self._stopped = True
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
