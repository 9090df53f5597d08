"""Read a job's results back, one record per request id, while the job runs or after.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

The results stream holds one record per request entry, the records of one commit in one
results entry as JSON lines (see ``worker_queue.py``); records must still be
deduplicated by request id, because an input may list the same request twice and a
reader must see exactly one record per id. That is the caller's part (the
``collect`` command does it with its resume journal, in bounded memory). Dead-lettered
requests become records too (``error.kind = "internal"``), so that every request has its
record.
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
from .jobs import (
    RECORDS_PER_RESULTS_ENTRY,
    JobKeys,
    Redis,
    as_text,
    read_counts,
    retrying,
    stream_id_key,
)

StreamEntry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Collected:
    """A record read back, and whether it stands for a dead-lettered request."""

    result: Result
    dead: bool


class ResultReader:
    """Yields batches of Results from the job's results and dead streams, in stream order.

    Without ``follow`` it reads what the streams hold when it starts and stops; with
    ``follow`` it keeps reading until the job is complete and everything is read.
    ``positions`` (stream key → last entry id read) says where to start; after each
    batch it says where that batch ends, for a caller that keeps its place durably.
    Memory does not grow with the job: a batch at a time.
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
        positions: dict[str, str] | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._follow = follow
        self._poll_s = poll_s
        streams = [keys.results, keys.dead] if include_dead else [keys.results]
        # Entries per read: a results entry holds up to RECORDS_PER_RESULTS_ENTRY records
        # and a dead-letter entry one, so a batch (one read) holds at most batch_size.
        self._entries_per_read = {
            keys.results: max(1, batch_size // RECORDS_PER_RESULTS_ENTRY),
            keys.dead: batch_size,
        }
        start = positions or {}
        self.positions: dict[str, str] = {name: start.get(name, "0-0") for name in streams}
        self.complete = False

    async def batches(self) -> AsyncIterator[list[Collected]]:
        while True:
            # Completeness is read before the stream ends: whatever completed the job is
            # then already in the streams and is read in this pass.
            complete = await self._complete()
            ends = await self._ends()
            async for batch in self._read_until(ends):
                yield batch
            self.complete = complete
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
        for stream in self.positions:
            last: Any = await retrying(
                partial(self._client.xrevrange, stream, count=1), "reading results"
            )
            if last:
                ends[stream] = stream_id_key(last[0][0])
        return ends

    async def _read_until(
        self, ends: dict[str, tuple[int, int]]
    ) -> AsyncIterator[list[Collected]]:
        while wanted := self._behind(ends):
            for stream, position in wanted.items():
                count = self._entries_per_read[stream]
                read = partial(self._client.xread, {stream: position}, count=count)
                reply: Any = await retrying(read, "reading results")
                batch: list[Collected] = []
                for _stream, entries in reply or []:
                    self.positions[stream] = as_text(entries[-1][0])
                    batch += self._decode(stream, entries)
                yield batch

    def _behind(self, ends: dict[str, tuple[int, int]]) -> dict[str, str]:
        """The streams not yet read up to ``ends``, with the position to read from."""
        return {
            stream: position
            for stream, position in self.positions.items()
            if stream in ends and stream_id_key(position) < ends[stream]
        }

    def _decode(self, stream: str, entries: list[StreamEntry]) -> list[Collected]:
        if stream == self._keys.dead:
            return [
                Collected(dead_letter_result(fields[b"request"], fields[b"r"]), dead=True)
                for _entry_id, fields in entries
            ]
        return [
            Collected(decode_result(line), dead=False)
            for _entry_id, fields in entries
            for line in fields[b"r"].splitlines()
        ]
