"""The WorkQueue and ResultStore protocols that the engine runs between.

The engine takes WorkItems from a WorkQueue, turns each into exactly one final Result,
and hands batches of (item, result) to a ResultStore, which makes them durable and, for a
shared queue, acknowledges them. Splitting the two lets the same engine run over a local
file (memory queue + sink) or a Redis job (stream + results stream + XACK).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._models import InvalidInput, Request, Result


@dataclass(slots=True, init=False)
class WorkItem:
    """One unit of work. ``token`` is the queue's own handle (a Redis entry id, say)."""

    request: Request | InvalidInput
    enqueued_at: float
    token: str | None = None
    deliveries: int = 1

    # Written out for the reason given in _models.py: compiled, it is native code.
    def __init__(
        self,
        request: Request | InvalidInput,
        enqueued_at: float,
        token: str | None = None,
        deliveries: int = 1,
    ) -> None:
        self.request = request
        self.enqueued_at = enqueued_at
        self.token = token
        self.deliveries = deliveries


class WorkQueue(Protocol):
    async def get(self) -> WorkItem | None:
        """The next item, waiting if none is ready; None once there is no more work."""
        ...

    def stop(self) -> None:
        """Hand out no new work (graceful shutdown); pending get() calls return None."""
        ...

    async def aclose(self) -> None: ...


class ReadyQueue(WorkQueue, Protocol):
    """A WorkQueue the engine's fast lane can take from without awaiting."""

    def take_nowait(self) -> WorkItem | object | None:
        """The next item; None once there is no more work; memory.NOTHING_YET if none is
        ready now."""
        ...

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, from the loop, when take_nowait may have an item."""
        ...


Completed = tuple[WorkItem, Result]


class ResultStore(Protocol):
    async def commit(self, batch: Sequence[Completed]) -> None:
        """Make the results durable (and acknowledge their items) before returning."""
        ...

    async def aclose(self) -> None: ...
