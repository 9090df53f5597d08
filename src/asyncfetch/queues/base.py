"""The WorkQueue and ResultStore protocols that the run loop runs between.

The run loop takes WorkItems from a WorkQueue, turns each into exactly one final Result,
and hands batches of (item, result) to a ResultStore, which makes them durable and, for a
shared queue, acknowledges them. Splitting the two lets the same loop run over a local
file (memory queue + sink) or a Redis job (stream + results stream + XACK).

A queue may also offer :class:`TakesReady`: items taken from a callback without awaiting
anything, and a call back when more are ready. The run loop looks for it by protocol; a
queue without it is read by one task awaiting :meth:`WorkQueue.get`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeGuard

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


class NotReady:
    """The type of :data:`NOT_READY`."""


# TakesReady.take_nowait's answer when no item is ready but more may come.
NOT_READY: Final = NotReady()


class TakesReady(Protocol):
    """A queue capability: take what is ready without waiting."""

    def take_nowait(self) -> WorkItem | NotReady | None:
        """The next item; None once there is no more work; NOT_READY if none is ready."""
        ...

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once (soon, from the loop) when an item or the end is ready."""
        ...


def takes_ready(queue: WorkQueue) -> TypeGuard[TakesReady]:
    """Whether ``queue`` offers :class:`TakesReady` (checked by its methods, as
    ``runtime_checkable`` would; a compiled Protocol cannot be made runtime-checkable)."""
    return callable(getattr(queue, "take_nowait", None)) and callable(
        getattr(queue, "call_when_ready", None)
    )


Completed = tuple[WorkItem, Result]


class ResultStore(Protocol):
    async def commit(self, batch: Sequence[Completed]) -> None:
        """Make the results durable (and acknowledge their items) before returning."""
        ...

    async def aclose(self) -> None: ...
