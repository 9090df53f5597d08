"""Read a job's results back, one record per request id, while the job runs or after.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

The results stream holds one record per stream entry (see ``worker_queue.py``); records
are still deduplicated here by request id, because an input may list the same request
twice and a reader must see exactly one record per id. Dead-lettered requests become
records too (``error.kind = "internal"``), so that every request has its record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..._errors import ConfigError
from ..._models import Result
from .codec import dead_letter_result, decode_result
from .jobs import JobKeys, Redis, as_text, read_counts, retrying, stream_id_key

StreamEntry = tuple[bytes, dict[bytes, bytes]]


@dataclass
class CollectCounts:
    written: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class ResultReader:
    """Yields batches of deduplicated Results from the job's results and dead streams.

    Without ``follow`` it reads what the streams hold when it starts and stops; with
    ``follow`` it keeps reading until the job is complete and everything is read.

    Memory: the ids already written are kept in a set (about 100 bytes per request), the
    price of deduplicating into any sink, JSONL and CSV included.
    """

    def __init__(
        self,
        client: Redis,
        keys: JobKeys,
        *,
        follow: bool = False,
        include_dead: bool = True,
        batch_size: int = 1000,
        poll_s: float = 0.5,
    ) -> None:
        self._client = client
        self._keys = keys
        self._follow = follow
        self._batch_size = batch_size
        self._poll_s = poll_s
        streams = [keys.results, keys.dead] if include_dead else [keys.results]
        self._positions: dict[str, str] = dict.fromkeys(streams, "0-0")
        self._seen: set[str] = set()
        self.counts = CollectCounts()

    async def batches(self) -> AsyncIterator[list[Result]]:
        while True:
            # Completeness is read before the stream ends: whatever completed the job is
            # then already in the streams and is read in this pass.
            complete = await self._complete()
            ends = await self._ends()
            async for batch in self._read_until(ends):
                yield batch
            if not self._follow or complete:
                return
            await asyncio.sleep(self._poll_s)

    async def _complete(self) -> bool:
        counts = await retrying(lambda: read_counts(self._client, self._keys), "reading job")
        if counts is None:
            raise ConfigError(f"no job named {self._keys.job!r}")
        return counts.complete

    async def _ends(self) -> dict[str, tuple[int, int]]:
        ends: dict[str, tuple[int, int]] = {}
        for stream in self._positions:
            last: Any = await retrying(
                partial(self._client.xrevrange, stream, count=1), "reading results"
            )
            if last:
                ends[stream] = stream_id_key(last[0][0])
        return ends

    async def _read_until(self, ends: dict[str, tuple[int, int]]) -> AsyncIterator[list[Result]]:
        while wanted := self._behind(ends):
            reply: Any = await retrying(
                partial(self._client.xread, wanted, count=self._batch_size), "reading results"
            )
            batch: list[Result] = []
            for stream_name, entries in reply or []:
                stream = as_text(stream_name)
                self._positions[stream] = as_text(entries[-1][0])
                batch += self._fresh(stream, entries)
            if batch:
                yield batch

    def _behind(self, ends: dict[str, tuple[int, int]]) -> dict[Any, Any]:
        """The streams not yet read up to ``ends``, with the position to read from."""
        return {
            stream: position
            for stream, position in self._positions.items()
            if stream in ends and stream_id_key(position) < ends[stream]
        }

    def _fresh(self, stream: str, entries: list[StreamEntry]) -> list[Result]:
        fresh: list[Result] = []
        for _entry_id, fields in entries:
            request_id = as_text(fields[b"id"])
            if request_id in self._seen:
                self.counts.duplicates += 1
                continue
            self._seen.add(request_id)
            if stream == self._keys.dead:
                self.counts.dead_lettered += 1
                fresh.append(dead_letter_result(fields[b"request"], fields[b"r"]))
            else:
                fresh.append(decode_result(fields[b"r"]))
        self.counts.written += len(fresh)
        return fresh
