"""ResultStores for local runs: into a Sink, or into a channel a caller iterates.

A resumable run's store is the output and its journal together (resume/output.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .._models import Result
from ..queues.base import Completed
from ..sinks.base import Keep, Sink


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


class ChannelStore:
    """Hands results to a consumer through a bounded channel (back-pressure included)."""

    def __init__(self, maxsize: int) -> None:
        self.channel: asyncio.Queue[Result | None] = asyncio.Queue(maxsize)

    async def commit(self, batch: Sequence[Completed]) -> None:
        for _item, result in batch:
            await self.channel.put(result)

    async def aclose(self) -> None:
        await self.channel.put(None)
