"""SQLite: table ``results`` with the flat columns plus ``record``, the full JSON record.

``id`` is the primary key and rows are written with ``INSERT OR REPLACE``, so a later
record for the same request replaces the earlier one (``--retry-failed`` relies on it).
The schema is fixed: the ``headers`` column always exists and is NULL for records that
carry no headers.

Resume (ResumableSink, sinks/base.py): the position is the highest row id. A new or
replaced row gets a higher one, so the rows written after a position are those above it.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``; each flush commits
one transaction, which survives a crash of the process. ``flush(durable=True)`` commits
with ``synchronous=FULL`` (or checkpoints when nothing is pending), which also survives a
power loss.

sqlite3 blocks, so every call runs on one dedicated worker thread: the event loop never
waits on the disk and the connection is only ever used by the thread that opened it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .._errors import OutputError
from .._models import Result
from ._records import COLUMNS as RECORD_COLUMNS
from ._records import FlatValue, dumps, flat_columns, flat_row
from .base import KeepRecords, SavedRecord, StagedRewrite

T = TypeVar("T")

DEFAULT_BATCH_ROWS = 1000
COLUMNS = (*flat_columns(include_headers=True), "record")
_TYPES = {column.name: column.sql_type for column in RECORD_COLUMNS}
_CREATE = "CREATE TABLE IF NOT EXISTS results ({})".format(
    ", ".join(
        "id TEXT PRIMARY KEY" if name == "id" else f"{name} {_TYPES.get(name, 'TEXT')}"
        for name in COLUMNS
    )
)
_INSERT = "INSERT OR REPLACE INTO results ({}) VALUES ({})".format(
    ", ".join(COLUMNS), ", ".join("?" for _ in COLUMNS)
)


def _row(result: Result) -> tuple[FlatValue, ...]:
    # flat_row gives the values in COLUMNS order; the full JSON record comes last.
    return (
        *flat_row(result, include_headers=True),
        dumps(result.to_record()).decode("utf-8"),
    )


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Columns added since a database was written (``wait_ms``) are added to it, empty,
    so that a run resumed with a newer asyncfetch can still append its rows."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(results)")}
    for name in COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE results ADD COLUMN {name} {_TYPES.get(name, 'TEXT')}")


class SqliteSink:
    """Writes records into a SQLite database, replacing earlier records with the same id."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        append: bool = False,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self._path = Path(path)
        self._batch_rows = batch_rows
        self._pending: list[tuple[FlatValue, ...]] = []
        self._unsynced = False
        self._closed = False
        self._position = 0
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asyncfetch-sqlite")
        try:
            # Opening is rare and must fail loudly at once, so it waits for the thread.
            self._connection = self._executor.submit(self._connect, append).result()
            self._position = self._executor.submit(self._highest_row).result()
        except BaseException:
            self._executor.shutdown(wait=True)
            raise

    @property
    def path(self) -> Path:
        return self._path

    @property
    def position_unit(self) -> str:
        return "rows"

    async def committed_position(self) -> int:
        """The highest row id committed so far (0 for an empty table)."""
        return self._position

    async def truncate(self, position: int) -> int:
        """Delete, durably, the rows written after ``position``; returns how many."""
        self._check_open()
        async with self._lock:
            self._pending = []
            return await self._call(lambda: self._delete_after(position))

    def read_back(self) -> Iterator[SavedRecord]:
        """Every row, in the order written (blocking; reads through its own connection)."""
        connection = sqlite3.connect(self._path)
        try:
            query = "SELECT id, COALESCE(ok, 0), record FROM results ORDER BY rowid"
            for request_id, ok, record in connection.execute(query):
                yield SavedRecord(str(request_id), bool(ok), str(record or "").encode())
        finally:
            connection.close()

    def stage_rewrite(self, keep: KeepRecords, batch_size: int) -> StagedRewrite:
        """Nothing to copy: ``id`` is the key, so a new record replaces a dropped one.

        ``keep`` still sees every row, in batches (a rebuild learns the ids from it).
        """
        batch: list[SavedRecord] = []
        for record in self.read_back():
            batch.append(record)
            if len(batch) >= batch_size:
                keep(batch)
                batch = []
        if batch:
            keep(batch)
        return StagedRewrite(self._position, None)

    async def size(self) -> int:
        """The number of rows committed to the ``results`` table."""
        self._check_open()
        row = await self._call(
            lambda: self._connection.execute("SELECT COUNT(*) FROM results").fetchone()
        )
        return int(row[0])

    async def write(self, results: Sequence[Result]) -> None:
        """Buffer the rows; commit them once a batch has accumulated."""
        self._check_open()
        self._pending.extend(_row(result) for result in results)
        if len(self._pending) >= self._batch_rows:
            await self.flush()

    async def flush(self, *, durable: bool = False) -> None:
        """Commit everything buffered; with ``durable``, make it survive a power loss."""
        self._check_open()
        async with self._lock:
            rows, self._pending = self._pending, []
            if rows or (durable and self._unsynced):
                await self._call(lambda: self._commit(rows, durable=durable))

    async def aclose(self) -> None:
        """Commit what is buffered, close the database and stop the worker thread."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            try:
                await self._call(self._connection.close)
            finally:
                # The thread is idle by now (its last job has returned), so this is quick.
                self._executor.shutdown(wait=True)

    async def __aenter__(self) -> SqliteSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise OutputError(f"cannot write to {self._path}: the sink is closed")

    async def _call(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write results to {self._path}: {exc}") from exc

    def _connect(self, append: bool) -> sqlite3.Connection:
        if not self._path.parent.is_dir():
            raise OutputError(
                f"cannot open output file {self._path}: directory {self._path.parent} not found"
            )
        try:
            connection = sqlite3.connect(self._path)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot open output file {self._path}: {exc}") from exc
        try:
            self._prepare(connection, append)
        except sqlite3.Error as exc:
            connection.close()
            raise OutputError(f"cannot open output file {self._path}: {exc}") from exc
        return connection

    @staticmethod
    def _prepare(connection: sqlite3.Connection, append: bool) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        with connection:
            if not append:
                connection.execute("DROP TABLE IF EXISTS results")
            connection.execute(_CREATE)
            _add_missing_columns(connection)

    def _highest_row(self) -> int:
        row = self._connection.execute("SELECT COALESCE(MAX(rowid), 0) FROM results").fetchone()
        return int(row[0])

    def _delete_after(self, position: int) -> int:
        connection = self._connection
        connection.execute("PRAGMA synchronous=FULL")
        try:
            with connection:
                deleted = connection.execute(
                    "DELETE FROM results WHERE rowid > ?", (position,)
                ).rowcount
        finally:
            connection.execute("PRAGMA synchronous=NORMAL")
        self._position = self._highest_row()
        return int(deleted)

    def _commit(self, rows: list[tuple[FlatValue, ...]], *, durable: bool) -> None:
        connection = self._connection
        if not rows:
            # Earlier commits sit in the WAL unsynced; a checkpoint syncs the WAL first.
            connection.execute("PRAGMA wal_checkpoint(FULL)")
        else:
            if durable:
                connection.execute("PRAGMA synchronous=FULL")
            try:
                with connection:
                    connection.executemany(_INSERT, rows)
            finally:
                if durable:
                    connection.execute("PRAGMA synchronous=NORMAL")
            self._position = self._highest_row()
        self._unsynced = not durable
