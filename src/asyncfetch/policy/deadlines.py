"""One sweeper task enforcing every attempt's total deadline.

``asyncio.timeout`` arms and disarms a timer per attempt; at thousands of requests a
second that bookkeeping was about a tenth of the pipeline's time. Here an attempt only
puts its deadline in a dict and takes it out again, and a single background task wakes
every ``resolution`` seconds to cancel the attempts that are overdue. Deadlines are
therefore enforced up to ``resolution`` late, which is nothing beside a timeout of
seconds.
"""

from __future__ import annotations

import asyncio

from .._errors import TimeoutError_


def overdue_error(total: float) -> TimeoutError_:
    """The error of an attempt that had no complete response within ``total`` seconds."""
    return TimeoutError_(f"no complete response within {total} s")


class DeadlineWatch:
    """Cancels tracked tasks that outlive their deadline (loop time, in seconds)."""

    def __init__(self, resolution: float = 0.05) -> None:
        self._resolution = resolution
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self, task: asyncio.Task[object], timeout: float) -> None:
        """Watch ``task`` for the next ``timeout`` seconds (until :meth:`stop`)."""
        loop = task.get_loop()
        self._deadlines[task] = loop.time() + timeout
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="asyncfetch-deadlines")

    def stop(self, task: asyncio.Task[object]) -> bool:
        """Stop watching ``task``; True if its deadline passed and it was cancelled for it.

        The caller that gets True owns the cancellation: it must ``task.uncancel()`` and
        report a timeout instead of letting CancelledError escape.
        """
        self._deadlines.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deadlines:
            await asyncio.sleep(self._resolution)
            now = loop.time()
            overdue = [task for task, when in self._deadlines.items() if when <= now]
            for task in overdue:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
