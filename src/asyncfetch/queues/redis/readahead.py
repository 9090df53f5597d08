"""A Redis worker's read-ahead as its engine takes from it: without waiting (the
``TakesReady`` capability of ``queues/base.py``), and only while the worker's leases are
fresh, so that nothing another worker may have reclaimed is started.

The engine takes once per request, so this module is compiled with mypyc (pyproject's
native list). The reading itself, from Redis into the buffer, is ``worker_queue.py``'s.
It does no I/O and does not import redis.
"""

from __future__ import annotations

from collections.abc import Callable

from ..base import NOT_READY, NotReady, WorkItem
from ..memory import MemoryQueue
from .lease import Leases


class ReadAhead:
    """Hands out what ``buffer`` holds while ``leases`` are fresh.

    ``on_start`` is called at the first take (it starts the heartbeat that keeps the
    leases fresh); ``not_started`` receives each item that is no longer ours (reclaimed
    by another worker while our leases were stale).
    """

    def __init__(
        self,
        buffer: MemoryQueue,
        leases: Leases,
        *,
        on_start: Callable[[], None],
        not_started: Callable[[WorkItem], None],
    ) -> None:
        self._buffer = buffer
        self._leases = leases
        self._on_start = on_start
        self._not_started = not_started
        self.started = False
        self.stopping = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self._on_start()

    def take_nowait(self) -> WorkItem | NotReady | None:
        """The next item; None at the end (or once stopping); NOT_READY if none may be
        started now (none read yet, or our leases are stale until the next renewal)."""
        if not self.started:
            self.start()
        leases = self._leases
        while leases.is_fresh():
            if self.stopping:
                return None
            item = self._buffer.take_nowait()
            if not isinstance(item, WorkItem):
                return item
            if leases.ours(item.token):
                return item
            self._not_started(item)
        return NOT_READY

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, from the loop, when an item may be taken (or the end)."""
        self.start()
        if self._leases.is_fresh():
            self._buffer.call_when_ready(callback)
        else:
            self._leases.call_when_fresh(callback)
