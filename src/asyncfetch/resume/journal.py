"""The resume journal: a SQLite database (WAL) of the request ids that have a final record.

It sits next to the output (``OUT.journal``) and holds, besides the ids:

- ``output_length``: the output's committed position at the last commit, as its
  :class:`~asyncfetch.sinks.base.ResumableSink` counts it (bytes of a JSONL/CSV file, the
  highest row id of a SQLite table; the key keeps its first name). Results are written
  and fsynced *before* the transaction that records their ids and the new position, so
  the journal never runs ahead of the output. After a crash the output may hold more
  than the journal knows (a batch written but not recorded, or a torn line): resume has
  the sink cut it back to that position and fetches those requests again.
- the run's fingerprint (inputs and request options), to refuse a mismatched resume.
- ``pending_rewrite``: a redo record for the one step that replaces the output file
  (``--retry-failed`` and ``--resume-force`` rewrite it), so a crash in between is
  completed on the next open instead of leaving the two out of step.

Durability: the output is fsynced before each commit, so the journal can never run ahead
of what is on disk. The journal itself runs with ``synchronous=NORMAL`` (WAL): a commit
survives any process crash, and after a power loss the journal may lag the output by the
last few commits, which only means those requests are fetched again (the output is cut
back to the older length). That saves an fsync per batch. Transactions that must not be
lost, because a file is renamed on their word (``durable=True``), use FULL.

sqlite3 blocks, so every call runs on one dedicated thread, in submission order: a
lookup submitted after a commit always sees it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .._errors import OutputError
from .location import JOURNAL_SUFFIX as JOURNAL_SUFFIX
from .location import MAX_LOOKUP as MAX_LOOKUP
from .location import journal_path as journal_path

T = TypeVar("T")

SCHEMA_VERSION = "1"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # WITHOUT ROWID: the id index is the table, so each id is stored once.
    "CREATE TABLE IF NOT EXISTS done"
    " (id TEXT PRIMARY KEY, ok INTEGER NOT NULL, run INTEGER NOT NULL) WITHOUT ROWID",
)


@dataclass(frozen=True, slots=True)
class JournalState:
    """What the journal says about the job so far."""

    fingerprint: dict[str, Any] | None
    output_length: int | None  # None: never recorded
    pending_rewrite: str | None
    done: int
    failed: int
    runs: int
    complete: bool
    created: bool


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the journal database with the durability settings above."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        with transaction(connection):
            for statement in _SCHEMA:
                connection.execute(statement)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


@contextmanager
def transaction(
    connection: sqlite3.Connection, *, durable: bool = False
) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error; ``durable`` syncs the commit."""
    if durable:
        connection.execute("PRAGMA synchronous=FULL")
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (disk full) may leave the transaction open: end it here so the
        # connection stays usable and nothing half-done is ever committed later.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        if durable:
            connection.execute("PRAGMA synchronous=NORMAL")


def get_meta(connection: sqlite3.Connection, key: str) -> str | None:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(connection: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        connection.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def read_state(connection: sqlite3.Connection) -> JournalState:
    """The journal's state, read in one go (one consistent WAL snapshot)."""
    connection.execute("BEGIN")
    try:
        done, failed = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(ok = 0), 0) FROM done"
        ).fetchone()
        fingerprint = get_meta(connection, "fingerprint")
        return JournalState(
            fingerprint=None if fingerprint is None else orjson.loads(fingerprint),
            output_length=_optional_int(get_meta(connection, "output_length")),
            pending_rewrite=get_meta(connection, "pending_rewrite"),
            done=int(done),
            failed=int(failed),
            runs=int(get_meta(connection, "runs") or 0),
            complete=get_meta(connection, "complete") == "1",
            created=fingerprint is None,
        )
    finally:
        connection.execute("COMMIT")


def _optional_int(text: str | None) -> int | None:
    return None if text is None else int(text)


class Journal:
    """The async face of the journal; each method runs on the journal's own thread."""

    def __init__(self, path: Path, connection: sqlite3.Connection, executor: ThreadPoolExecutor):
        self.path = path
        self._connection = connection
        self._executor = executor
        self._closed = False
        self.run = 0

    @classmethod
    async def open(cls, path: Path) -> Journal:
        """Open or create the journal at ``path``; OutputError if that cannot be done."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asyncfetch-journal")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, connect, path)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise OutputError(f"cannot open the resume journal {path}: {exc}") from exc
        return cls(path, connection, executor)

    async def call(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function(connection)`` on the journal thread; sqlite errors → OutputError."""
        if self._closed:
            raise OutputError(f"the resume journal {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, self._connection)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot update the resume journal {self.path}: {exc}") from exc
        except OSError as exc:
            # Repairs and rewrites of the output also run here.
            raise OutputError(f"cannot resume: {exc.strerror or exc}: {exc.filename}") from exc

    async def state(self) -> JournalState:
        return await self.call(read_state)

    async def start_run(self, fingerprint: dict[str, Any]) -> int:
        """Record the fingerprint and a new run number; the job is incomplete until told."""

        def start(connection: sqlite3.Connection) -> int:
            with transaction(connection, durable=True):
                run = int(get_meta(connection, "runs") or 0) + 1
                set_meta(connection, "runs", str(run))
                set_meta(connection, "fingerprint", orjson.dumps(fingerprint).decode())
                set_meta(connection, "version", SCHEMA_VERSION)
                set_meta(connection, "complete", "0")
            return run

        self.run = await self.call(start)
        return self.run

    async def lookup(self, ids: Collection[str]) -> dict[str, int]:
        """Which of ``ids`` are done: id → the run that finished it."""
        wanted = list(ids)
        if not wanted:
            return {}

        def find(connection: sqlite3.Connection) -> dict[str, int]:
            found: dict[str, int] = {}
            for start in range(0, len(wanted), MAX_LOOKUP):
                chunk = wanted[start : start + MAX_LOOKUP]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT id, run FROM done WHERE id IN ({marks})"
                found.update(connection.execute(query, chunk).fetchall())
            return found

        return await self.call(find)

    async def commit(
        self,
        entries: Sequence[tuple[str, bool]],
        position: int | None,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Record ``(id, ok)`` pairs (and the output's new position) in one transaction.

        ``meta``: more of the job's place to move in the same transaction (``collect``
        keeps its positions in the Redis streams here)."""
        run = self.run

        def record(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.executemany(
                    "INSERT OR REPLACE INTO done (id, ok, run) VALUES (?, ?, ?)",
                    [(request_id, int(ok), run) for request_id, ok in entries],
                )
                if position is not None:
                    set_meta(connection, "output_length", str(position))
                for key, value in (meta or {}).items():
                    set_meta(connection, key, value)

        await self.call(record)

    async def mark_complete(self) -> None:
        def mark(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                set_meta(connection, "complete", "1")

        await self.call(mark)

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            await self.call(lambda connection: connection.close())
        finally:
            self._closed = True
            self._executor.shutdown(wait=True)
