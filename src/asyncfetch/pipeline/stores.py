"""ResultStores for local runs: into a Sink, or into a channel a caller iterates."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._models import Result
from ..queues.base import Completed
from ..sinks.base import Sink

if TYPE_CHECKING:  # only JournaledStore (--resume) holds one; it would import sqlite3
    from ..resume.journal import Journal

# Which results a store writes to its sink (``--only``); None keeps them all.
Keep = Callable[[Result], bool] | None


def keep_only(only: str) -> Keep:
    """The filter of ``--only``: ``"all"`` (None), ``"ok"`` or ``"failed"``."""
    if only == "ok":
        return _is_ok
    if only == "failed":
        return _is_failed
    return None


def _is_ok(result: Result) -> bool:
    return result.ok


def _is_failed(result: Result) -> bool:
    return not result.ok


def _kept(batch: Sequence[Completed], keep: Keep) -> list[Result]:
    if keep is None:
        return [result for _item, result in batch]
    return [result for _item, result in batch if keep(result)]


class SinkStore:
    """Commits results to a Sink and flushes after each batch so readers see them soon."""

    def __init__(self, sink: Sink, *, keep: Keep = None) -> None:
        self._sink = sink
        self._keep = keep

    async def commit(self, batch: Sequence[Completed]) -> None:
        await self._sink.write(_kept(batch, self._keep))
        await self._sink.flush()

    async def aclose(self) -> None:
        await self._sink.flush(durable=True)
        await self._sink.aclose()


class JournaledStore:
    """Commits results to a Sink and records them in the resume journal (``--resume``).

    Order matters: the batch is written and fsynced first, then its ids and the output's
    new length go into one journal transaction. A crash in between leaves records the
    journal does not know; resume cuts them off (JSONL/CSV) or replaces them (SQLite).
    ``output_length`` gives the committed byte length of a line-oriented output.
    """

    def __init__(
        self,
        sink: Sink,
        journal: Journal,
        in_flight: set[str],
        *,
        output_length: Callable[[], int] | None = None,
        keep: Keep = None,
    ) -> None:
        self._sink = sink
        self._journal = journal
        self._in_flight = in_flight
        self._output_length = output_length
        self._keep = keep

    async def commit(self, batch: Sequence[Completed]) -> None:
        # The journal answers for every result, written or left out by --only.
        results = [result for _item, result in batch]
        await self._sink.write(_kept(batch, self._keep))
        await self._sink.flush(durable=True)
        length = None if self._output_length is None else self._output_length()
        await self._journal.commit([(result.id, result.ok) for result in results], length)
        # Only now may the input filter treat these ids as the journal's to answer for.
        self._in_flight.difference_update(result.id for result in results)

    async def aclose(self) -> None:
        # Every commit already flushed durably; the journal is closed by its owner.
        await self._sink.aclose()


class ChannelStore:
    """Hands results to a consumer through a bounded channel (back-pressure included)."""

    def __init__(self, maxsize: int) -> None:
        self.channel: asyncio.Queue[Result | None] = asyncio.Queue(maxsize)

    async def commit(self, batch: Sequence[Completed]) -> None:
        for _item, result in batch:
            await self.channel.put(result)

    async def aclose(self) -> None:
        await self.channel.put(None)
