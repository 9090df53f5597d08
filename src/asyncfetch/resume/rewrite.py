"""Replacing a JSONL/CSV output in step with its journal (``--retry-failed``, rebuilds).

An append-only file cannot drop a record in place, so both operations copy the records
to keep into ``OUT.rewrite``, fsync it, and then, in one journal transaction, record the
new ids, the new length and ``pending_rewrite``. Only then is the copy renamed over the
output; a crash before the commit leaves the old state untouched, a crash after it is
completed by :func:`finish_pending_rewrite` on the next open. These transactions are
synced (``durable=True``): a file is renamed on their word. Everything here blocks: it
runs on the journal's thread.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import orjson

from .journal import MAX_LOOKUP, get_meta, set_meta, transaction

REWRITE_SUFFIX = ".rewrite"
# Decoding with surrogateescape lets any byte sequence round-trip unchanged.
_CSV_ERRORS = "surrogateescape"


class Record(NamedTuple):
    """One well-formed record of an output file: its id, ok flag and exact bytes."""

    id: str
    ok: bool
    data: bytes


def _jsonl_records(file: BinaryIO) -> Iterator[Record]:
    for line in file:
        if not line.endswith(b"\n"):
            return  # a torn last line: not a record
        try:
            record = orjson.loads(line)
            yield Record(str(record["id"]), bool(record["ok"]), line)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # a damaged line in the middle: dropped, so its request is redone


def _csv_records(file: BinaryIO) -> Iterator[Record]:
    complete = _ends_with_line_break(file)
    text = io.TextIOWrapper(file, encoding="utf-8", errors=_CSV_ERRORS, newline="")
    try:
        yield from _csv_rows_as_records(text, complete)
    finally:
        text.detach()  # the caller closes the file; a wrapper left to the collector warns


def _csv_rows_as_records(text: io.TextIOWrapper, complete: bool) -> Iterator[Record]:
    rows = _csv_rows(text)
    header = next(rows, None)
    if header is None or "id" not in header or "ok" not in header:
        return
    id_column, ok_column = header.index("id"), header.index("ok")
    yield Record("", True, _csv_line(header))
    # Each row is held back by one, since only the last may be cut short.
    previous: list[str] | None = None
    for row in rows:
        if previous is not None and len(previous) == len(header):
            yield Record(previous[id_column], previous[ok_column] == "true", _csv_line(previous))
        previous = row
    if previous is not None and complete and len(previous) == len(header):
        yield Record(previous[id_column], previous[ok_column] == "true", _csv_line(previous))


def _ends_with_line_break(file: BinaryIO) -> bool:
    size = file.seek(0, os.SEEK_END)
    file.seek(max(size - 2, 0))
    ending = file.read(2)
    file.seek(0)
    return ending == b"\r\n"


def _csv_rows(text: io.TextIOWrapper) -> Iterator[list[str]]:
    try:
        yield from csv.reader(text, strict=True)
    except csv.Error:
        return  # an unterminated quoted field: everything from there on is torn


def _csv_line(row: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(row)
    return buffer.getvalue().encode("utf-8", _CSV_ERRORS)


def read_records(path: Path, output_format: str) -> Iterator[Record]:
    """The well-formed records of ``path`` (CSV: the header first, with an empty id).

    Streams the file; the caller has already cut it back to its committed length.
    """
    if not path.exists():
        return
    with open(path, "rb") as file:
        yield from (_csv_records if output_format == "csv" else _jsonl_records)(file)


def _batches(records: Iterator[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= MAX_LOOKUP:
            yield batch
            batch = []
    if batch:
        yield batch


def _ids_in(connection: sqlite3.Connection, ids: list[str], where: str) -> set[str]:
    marks = ",".join("?" * len(ids))
    query = f"SELECT id FROM done WHERE id IN ({marks}){where}"
    return {row[0] for row in connection.execute(query, ids)}


Selector = Callable[[sqlite3.Connection, list[Record]], list[Record]]


def _without_failed(connection: sqlite3.Connection, batch: list[Record]) -> list[Record]:
    failed = _ids_in(connection, [record.id for record in batch], " AND ok = 0")
    return [record for record in batch if not record.id or record.id not in failed]


def _first_of_each_id(connection: sqlite3.Connection, batch: list[Record]) -> list[Record]:
    # Rebuilding: the journal fills up as we go, so it also spots repeats across batches.
    known = _ids_in(connection, [record.id for record in batch], "")
    kept: list[Record] = []
    for record in batch:
        if record.id and record.id in known:
            continue
        if record.id:
            known.add(record.id)
            connection.execute(
                "INSERT INTO done (id, ok, run) VALUES (?, ?, 0)", (record.id, int(record.ok))
            )
        kept.append(record)
    return kept


def _copy(
    connection: sqlite3.Connection, records: Iterator[Record], select: Selector, target: Path
) -> int:
    with open(target, "wb") as out:
        for batch in _batches(records):
            out.write(b"".join(record.data for record in select(connection, batch)))
        out.flush()
        os.fsync(out.fileno())
        return out.tell()


def drop_failed(connection: sqlite3.Connection, output: Path, output_format: str) -> int:
    """Forget the failed requests and remove their records; returns how many."""
    if output_format == "sqlite":
        # INSERT OR REPLACE will put each new record in place of the old one.
        with transaction(connection):
            return connection.execute("DELETE FROM done WHERE ok = 0").rowcount
    records = read_records(output, output_format)
    with transaction(connection, durable=True):
        target = output.with_name(output.name + REWRITE_SUFFIX)
        new_length = _copy(connection, records, _without_failed, target)
        dropped = connection.execute("DELETE FROM done WHERE ok = 0").rowcount
        set_meta(connection, "output_length", str(new_length))
        set_meta(connection, "pending_rewrite", target.name)
    finish_pending_rewrite(connection, output)
    return dropped


def rebuild(connection: sqlite3.Connection, output: Path, output_format: str) -> int:
    """Make the journal describe ``output`` as it is; returns the records kept.

    Torn and damaged records are dropped, and so is every repeat of an id, so the output
    keeps its one-record-per-id promise and the dropped requests are fetched again.
    """
    if output_format == "sqlite":
        return _rebuild_sqlite(connection, output)
    with transaction(connection, durable=True):
        connection.execute("DELETE FROM done")
        target = output.with_name(output.name + REWRITE_SUFFIX)
        length = _copy(connection, read_records(output, output_format), _first_of_each_id, target)
        set_meta(connection, "output_length", str(length))
        set_meta(connection, "pending_rewrite", target.name)
        kept = int(connection.execute("SELECT COUNT(*) FROM done").fetchone()[0])
    finish_pending_rewrite(connection, output)
    return kept


def _rebuild_sqlite(connection: sqlite3.Connection, output: Path) -> int:
    if not output.exists():
        with transaction(connection):
            connection.execute("DELETE FROM done")
        return 0
    connection.execute("ATTACH DATABASE ? AS output", (str(output),))
    try:
        with transaction(connection):
            connection.execute("DELETE FROM done")
            has_results = connection.execute(
                "SELECT 1 FROM output.sqlite_master WHERE type = 'table' AND name = 'results'"
            ).fetchone()
            if has_results:
                connection.execute(
                    "INSERT INTO done (id, ok, run)"
                    " SELECT id, COALESCE(ok, 0), 0 FROM output.results"
                )
            return int(connection.execute("SELECT COUNT(*) FROM done").fetchone()[0])
    finally:
        connection.execute("DETACH DATABASE output")


def finish_pending_rewrite(connection: sqlite3.Connection, output: Path) -> None:
    """Complete a rewrite the journal has committed to (idempotent; a no-op if none)."""
    pending = get_meta(connection, "pending_rewrite")
    if pending is None:
        return
    copy = output.with_name(pending)
    if copy.exists():
        os.replace(copy, output)
        fsync_directory(output.parent)
    # Durable: were this lost, a later rewrite's half-written copy could be taken for it.
    with transaction(connection, durable=True):
        set_meta(connection, "pending_rewrite", None)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a power loss."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
