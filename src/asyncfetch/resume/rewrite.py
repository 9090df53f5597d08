"""Replacing an output in step with its journal (``--retry-failed``, rebuilds).

The sink stages the records to keep (:meth:`ResumableSink.stage_rewrite`): an
append-only file copies them into ``OUT.rewrite`` and fsyncs it; a sink keyed by id
stages nothing. Then, in one journal transaction, the new ids, the new position and
``pending_rewrite`` (the copy's name) are recorded. Only then is the copy renamed over
the output; a crash before the commit leaves the old state untouched, a crash after it
is completed by :func:`finish_pending_rewrite` on the next open. These transactions are
synced (``durable=True``): a file is renamed on their word. Everything here blocks: it
runs on the journal's thread, and the caller reopens the sink afterwards.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..sinks.base import KeepRecords, ResumableSink, SavedRecord
from .journal import MAX_LOOKUP, get_meta, set_meta, transaction


def _ids_in(connection: sqlite3.Connection, ids: list[str], where: str) -> set[str]:
    marks = ",".join("?" * len(ids))
    query = f"SELECT id FROM done WHERE id IN ({marks}){where}"
    return {row[0] for row in connection.execute(query, ids)}


def _without_failed(connection: sqlite3.Connection) -> KeepRecords:
    def keep(batch: list[SavedRecord]) -> list[SavedRecord]:
        failed = _ids_in(connection, [record.id for record in batch], " AND ok = 0")
        return [record for record in batch if record.id not in failed]

    return keep


def _first_of_each_id(connection: sqlite3.Connection) -> KeepRecords:
    # Rebuilding: the journal fills up as we go, so it also spots repeats across batches.
    def keep(batch: list[SavedRecord]) -> list[SavedRecord]:
        known = _ids_in(connection, [record.id for record in batch], "")
        kept: list[SavedRecord] = []
        for record in batch:
            if record.id in known:
                continue
            known.add(record.id)
            connection.execute(
                "INSERT INTO done (id, ok, run) VALUES (?, ?, 0)", (record.id, int(record.ok))
            )
            kept.append(record)
        return kept

    return keep


def _stage(connection: sqlite3.Connection, sink: ResumableSink, keep: KeepRecords) -> None:
    """Stage the rewrite and record it (inside the caller's transaction)."""
    staged = sink.stage_rewrite(keep, MAX_LOOKUP)
    set_meta(connection, "output_length", str(staged.position))
    set_meta(connection, "pending_rewrite", None if staged.copy is None else staged.copy.name)


def drop_failed(connection: sqlite3.Connection, sink: ResumableSink) -> int:
    """Forget the failed requests and remove their records; returns how many."""
    with transaction(connection, durable=True):
        _stage(connection, sink, _without_failed(connection))
        dropped = connection.execute("DELETE FROM done WHERE ok = 0").rowcount
    finish_pending_rewrite(connection, sink.path)
    return int(dropped)


def rebuild(connection: sqlite3.Connection, sink: ResumableSink) -> int:
    """Make the journal describe the output as it is; returns the records kept.

    Torn and damaged records are dropped, and so is every repeat of an id, so the output
    keeps its one-record-per-id promise and the dropped requests are fetched again.
    """
    with transaction(connection, durable=True):
        connection.execute("DELETE FROM done")
        _stage(connection, sink, _first_of_each_id(connection))
        kept = int(connection.execute("SELECT COUNT(*) FROM done").fetchone()[0])
    finish_pending_rewrite(connection, sink.path)
    return kept


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
