"""Reading result records back, streaming, as the small :class:`Observation` a report needs.

Every output asyncfetch writes can be read: JSONL, CSV, SQLite and a Redis job's results.
Files are read in batches of a few thousand records, so memory does not grow with them.
A line that is not a record (a torn last line, say) is counted in ``unreadable`` and
skipped: a report of what is there is more use than none.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from .._errors import ConfigError
from .._models import Result

BATCH = 4096
FORMATS = ("jsonl", "csv", "sqlite")
_FORMAT_BY_SUFFIX = {".csv": "csv", ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite"}
_SQL_COLUMNS = (
    "id, method, url, status, ok, error_kind, error_message, attempts, total_ms, bytes, started_at"
)


class Observation(NamedTuple):
    """What a report reads of one record (values already redacted, as records are)."""

    id: str
    method: str
    url: str
    status: int | None
    ok: bool
    error_kind: str | None
    error_message: str | None
    attempts: int
    total_ms: float
    bytes: int
    started_at: str


class ReadCounts:
    """How many records a reader took and how many lines it had to skip."""

    def __init__(self) -> None:
        self.read = 0
        self.unreadable = 0


def from_result(result: Result) -> Observation:
    error = result.error
    status = result.status
    return Observation(
        result.id,
        result.method,
        result.url,
        status,
        error is None and status is not None and status < 400,
        None if error is None else error.kind,
        None if error is None else error.message,
        result.attempts,
        result.timings.total_ms,
        result.bytes,
        result.started_at,
    )


def from_record(record: dict[str, Any]) -> Observation:
    """From a schema-v1 record as JSONL holds it (nested ``error`` and ``timings``)."""
    error = record.get("error") or {}
    timings = record.get("timings") or {}
    return Observation(
        str(record["id"]),
        str(record.get("method") or ""),
        str(record.get("url") or ""),
        record.get("status"),
        bool(record.get("ok")),
        error.get("kind"),
        error.get("message"),
        int(record.get("attempts") or 0),
        float(timings.get("total_ms") or 0.0),
        int(record.get("bytes") or 0),
        str(record.get("started_at") or ""),
    )


def from_flat(row: dict[str, str]) -> Observation:
    """From a CSV row: every cell is text, and an empty cell is None."""
    status = row.get("status") or ""
    return Observation(
        row["id"],
        row.get("method") or "",
        row.get("url") or "",
        int(status) if status else None,
        row.get("ok") == "true",
        row.get("error_kind") or None,
        row.get("error_message") or None,
        int(row.get("attempts") or 0),
        float(row.get("total_ms") or 0.0),
        int(row.get("bytes") or 0),
        row.get("started_at") or "",
    )


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown records format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    return _FORMAT_BY_SUFFIX.get(path.suffix.lower(), "jsonl")


def read_file(path: Path, fmt: str | None, counts: ReadCounts) -> Iterator[list[Observation]]:
    """Batches of the records in ``path`` (JSONL, CSV or SQLite: ``fmt`` or the suffix)."""
    if not path.is_file():
        raise ConfigError(f"no such records file: {path}")
    chosen = detect_format(path, fmt)
    if chosen == "sqlite":
        return _counted(_read_sqlite(path), counts)
    if chosen == "csv":
        return _counted(_read_csv(path, counts), counts)
    return _counted(_read_jsonl(path, counts), counts)


def _counted(
    batches: Iterator[list[Observation]], counts: ReadCounts
) -> Iterator[list[Observation]]:
    for batch in batches:
        counts.read += len(batch)
        yield batch


def _batched(observations: Iterable[Observation]) -> Iterator[list[Observation]]:
    batch: list[Observation] = []
    for observation in observations:
        batch.append(observation)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_jsonl(path: Path, counts: ReadCounts) -> Iterator[list[Observation]]:
    with open(path, "rb") as file:
        yield from _batched(_jsonl_observations(file, counts))


def _jsonl_observations(lines: Iterable[bytes], counts: ReadCounts) -> Iterator[Observation]:
    for line in lines:
        if not line.strip():
            continue
        try:
            yield from_record(orjson.loads(line))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            counts.unreadable += 1


def _read_csv(path: Path, counts: ReadCounts) -> Iterator[list[Observation]]:
    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        rows = csv.DictReader(file)
        if rows.fieldnames is None or "id" not in rows.fieldnames:
            raise ConfigError(f"{path} is not an asyncfetch CSV output (no id column)")
        yield from _batched(_csv_observations(rows, counts))


def _csv_observations(rows: Iterable[dict[str, str]], counts: ReadCounts) -> Iterator[Observation]:
    rows = iter(rows)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error:
            counts.unreadable += 1
            return  # the reader cannot go on past a broken quoted field
        try:
            yield from_flat(row)
        except (KeyError, TypeError, ValueError):
            counts.unreadable += 1


def _read_sqlite(path: Path) -> Iterator[list[Observation]]:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        raise ConfigError(f"cannot open {path} as SQLite: {error}") from error
    try:
        cursor = _select_results(connection, path)
        while rows := cursor.fetchmany(BATCH):
            yield [_from_row(row) for row in rows]
    finally:
        connection.close()


def _select_results(connection: sqlite3.Connection, path: Path) -> sqlite3.Cursor:
    try:
        return connection.execute(f"SELECT {_SQL_COLUMNS} FROM results")
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{path} is not an asyncfetch SQLite output: {error}") from error


def _from_row(row: tuple[Any, ...]) -> Observation:
    record_id, method, url, status, ok, kind, message, attempts, total_ms, size, started = row
    return Observation(
        str(record_id),
        method or "",
        url or "",
        status,
        bool(ok),
        kind,
        message,
        attempts or 0,
        total_ms or 0.0,
        size or 0,
        started or "",
    )


async def read_redis_job(
    redis_url: str, job: str, counts: ReadCounts
) -> AsyncIterator[list[Observation]]:
    """Batches of a Redis job's results (and dead letters), one per request id."""
    from ..queues.redis.collect import ResultReader
    from ..queues.redis.jobs import JobKeys, connected
    from ..resume.recent_ids import RecentIds

    # The reader does not deduplicate (collect does it with its journal): a window of
    # recent ids drops an id the input listed twice, in bounded memory.
    recent = RecentIds()
    async with connected(redis_url) as client:
        reader = ResultReader(client, JobKeys(job))
        async for collected in reader.batches():
            results = [item.result for item in collected if recent.add(item.result.id)]
            counts.read += len(results)
            yield [from_result(result) for result in results]
