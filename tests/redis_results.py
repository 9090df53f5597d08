"""What a job's results stream holds, read the way a test wants it: one row per record.

A results entry holds the records of one worker commit (fields ``n``, ``by``,
``entries``, ``r``: the count, the worker, the request entry ids and the records as JSON
lines, in the same order); see ``queues/redis/worker_queue.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis


@dataclass(frozen=True)
class StoredResult:
    by: str
    entry: str
    record: dict[str, Any]


async def stored_results(client: aioredis.Redis, stream: str) -> list[StoredResult]:
    """Every record in ``stream``, with the worker that wrote it and the request entry."""
    rows: list[StoredResult] = []
    for _entry_id, fields in await client.xrange(stream):
        entries = fields[b"entries"].decode().split()
        lines = fields[b"r"].splitlines()
        assert len(entries) == len(lines) == int(fields[b"n"]), fields
        by = fields[b"by"].decode()
        rows += [
            StoredResult(by, entry, orjson.loads(line))
            for entry, line in zip(entries, lines, strict=True)
        ]
    return rows
