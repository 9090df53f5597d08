"""Rebuilding a journal from an output, and removing failed records, byte for byte.

Every expectation is the exact file content or the exact journal rows: the records kept
are copied unchanged, torn or damaged ones and repeats are dropped. The sinks read their
own outputs back (``ResumableSink.read_back``) and stage the copies.
"""

from __future__ import annotations

import io
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from asyncfetch._models import Request, Result, Timings
from asyncfetch.policy.records import failure_result
from asyncfetch.resume.journal import connect, get_meta
from asyncfetch.resume.rewrite import drop_failed, rebuild
from asyncfetch.sinks import CsvSink, JsonlSink, SqliteSink
from asyncfetch.sinks.base import SavedRecord as Record

HEADER = b"id,ok,url\r\n"


def _csv(out: Path) -> CsvSink:
    """A CSV sink over ``out`` that reads it back (its writes go nowhere)."""
    return CsvSink(io.BytesIO(), name=str(out), owns_stream=False)


def read_records(out: Path, output_format: str) -> Iterator[Record]:
    if not out.exists():
        return iter(())
    if output_format == "csv":
        return _csv(out).read_back()
    return JsonlSink(io.BytesIO(), name=str(out), owns_stream=False).read_back()


# What a rewritten CSV copy starts with: the sink's own header.
COPY_HEADER = _csv(Path("unused.csv"))._copy_prefix()


def _done(connection: sqlite3.Connection) -> list[tuple[str, int, int]]:
    return sorted(connection.execute("SELECT id, ok, run FROM done").fetchall())


def test_csv_records_keep_their_bytes_and_drop_the_torn_and_the_broken(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    rows = [
        b'a,true,"http://x/?q=1,2"\r\n',  # a quoted comma
        b'b,false,"http://x/\r\nline"\r\n',  # a quoted line break
        b"short,true\r\n",  # too few columns: damaged
        b"c,true,http://x/\xff\r\n",  # not UTF-8: kept as it is
    ]
    out.write_bytes(HEADER + b"".join(rows) + b"d,true,http://x/to")  # torn last row
    assert list(read_records(out, "csv")) == [
        Record("a", True, rows[0]),
        Record("b", False, rows[1]),
        Record("c", True, rows[3]),
    ]


def test_a_complete_last_csv_row_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_bytes(HEADER + b"a,true,u\r\n")
    assert [record.id for record in read_records(out, "csv")] == ["a"]
    out.write_bytes(b"url,status\r\nu,200\r\n")  # no id or ok column: nothing to keep
    assert list(read_records(out, "csv")) == []
    out.write_bytes(HEADER + b'a,true,"unterminated\r\n')
    assert [record.id for record in read_records(out, "csv")] == []
    assert list(read_records(tmp_path / "missing.csv", "csv")) == []


def test_jsonl_records_drop_damaged_and_torn_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = [b'{"id":"a","ok":true}\n', b'{"id":7,"ok":false}\n']
    out.write_bytes(good[0] + b"{broken\n" + b'{"ok":true}\n' + good[1] + b'{"id":"t"')
    assert list(read_records(out, "jsonl")) == [
        Record("a", True, good[0]),
        Record("7", False, good[1]),
    ]


def test_rebuild_keeps_the_first_record_of_each_id(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_bytes(HEADER + b"a,true,u1\r\nb,false,u2\r\na,false,u3\r\nc,true,u4")
    connection = connect(tmp_path / "out.csv.journal")
    try:
        connection.execute("INSERT INTO done (id, ok, run) VALUES ('stale', 1, 3)")
        assert rebuild(connection, _csv(out)) == 2
        assert _done(connection) == [("a", 1, 0), ("b", 0, 0)]
        assert get_meta(connection, "output_length") == str(len(COPY_HEADER) + 11 + 12)
        assert get_meta(connection, "pending_rewrite") is None
    finally:
        connection.close()
    assert out.read_bytes() == COPY_HEADER + b"a,true,u1\r\nb,false,u2\r\n"
    assert not (tmp_path / "out.csv.rewrite").exists()


def test_rebuild_goes_on_after_a_repeated_id(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_bytes(HEADER + b"a,true,u1\r\na,false,u2\r\nb,true,u3\r\n")
    connection = connect(tmp_path / "out.csv.journal")
    try:
        assert rebuild(connection, _csv(out)) == 2
        assert _done(connection) == [("a", 1, 0), ("b", 1, 0)]
    finally:
        connection.close()
    assert out.read_bytes() == COPY_HEADER + b"a,true,u1\r\nb,true,u3\r\n"


def _durable_commits(connection: sqlite3.Connection) -> list[str]:
    """Trace the statements run on ``connection``; returns the list they go to."""
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    return statements


def _full_syncs(statements: list[str]) -> int:
    """Transactions begun under synchronous=FULL (SQL keywords in any case)."""
    upper = [statement.upper() for statement in statements]
    return sum(
        1
        for first, second in itertools.pairwise(upper)
        if first == "PRAGMA SYNCHRONOUS=FULL" and second == "BEGIN IMMEDIATE"
    )


def test_rewrites_commit_durably_before_and_after_replacing_the_output(tmp_path: Path) -> None:
    # The output file is replaced between two transactions; each must be synced fully
    # (were either lost in a power cut, the journal and the file would disagree).
    out = tmp_path / "out.csv"
    out.write_bytes(HEADER + b"a,true,u1\r\nb,false,u2\r\n")
    connection = connect(tmp_path / "out.csv.journal")
    try:
        statements = _durable_commits(connection)
        rebuild(connection, _csv(out))
        assert _full_syncs(statements) == 2
        statements.clear()
        drop_failed(connection, _csv(out))
        assert _full_syncs(statements) == 2
    finally:
        connection.close()


def test_drop_failed_removes_failed_records_and_forgets_them(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_bytes(HEADER + b"a,true,u1\r\nb,false,u2\r\nc,false,u3\r\n")
    connection = connect(tmp_path / "out.csv.journal")
    try:
        connection.executemany(
            "INSERT INTO done (id, ok, run) VALUES (?, ?, 1)", [("a", 1), ("b", 0), ("c", 0)]
        )
        assert drop_failed(connection, _csv(out)) == 2
        assert _done(connection) == [("a", 1, 1)]
        assert get_meta(connection, "output_length") == str(len(COPY_HEADER) + 11)
    finally:
        connection.close()
    assert out.read_bytes() == COPY_HEADER + b"a,true,u1\r\n"


def _failed(n: int) -> Result:
    request = Request.create(f"http://127.0.0.1/{n}", id=f"r{n}")
    return failure_result(request, "read", "reset", attempts=1, timings=Timings(), started_at="t")


async def test_sqlite_outputs_are_rebuilt_from_their_results_table(tmp_path: Path) -> None:
    out = tmp_path / "out.sqlite"
    sink = SqliteSink(out, append=True)
    connection = connect(tmp_path / "out.sqlite.journal")
    try:
        assert rebuild(connection, sink) == 0  # an empty output
        await sink.write([_failed(n) for n in range(3)])
        await sink.flush(durable=True)
        assert rebuild(connection, sink) == 3
        assert _done(connection) == [("r0", 0, 0), ("r1", 0, 0), ("r2", 0, 0)]
        assert get_meta(connection, "output_length") == "3"  # the highest row id
        assert drop_failed(connection, sink) == 3
        assert _done(connection) == []
        assert get_meta(connection, "pending_rewrite") is None  # rows replace in place
    finally:
        connection.close()
        await sink.aclose()
