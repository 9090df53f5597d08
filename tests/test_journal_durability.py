"""The resume journal's promises, each made to fail on purpose and checked deterministically.

What the randomised kill test (test_resume_crash.py) finds only by luck is set up here
exactly: a COMMIT that fails, a torn CSV line, a batch written but never journaled, an
output cut shorter than the journal says. Real files and a real SQLite database.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from asyncfetch._errors import OutputError, ResumeError
from asyncfetch._models import Request, Result, Timings
from asyncfetch.pipeline.stores import ChannelStore, SinkStore
from asyncfetch.policy.records import failure_result
from asyncfetch.queues.base import WorkItem
from asyncfetch.resume.fingerprint import fingerprint_differences
from asyncfetch.resume.journal import (
    Journal,
    connect,
    journal_path,
    read_state,
    set_meta,
    transaction,
)
from asyncfetch.resume.location import refuse_journaled_output
from asyncfetch.resume.output import ResumableOutput
from asyncfetch.sinks import open_sink


def _no_fingerprint(_salt: str | None) -> dict[str, Any]:
    return {"version": 1, "salt": "00", "inputs": [], "options": {}}


def _result(n: int) -> Result:
    request = Request.create(f"http://127.0.0.1/{n}", id=f"r{n}")
    return failure_result(request, "read", "reset", attempts=1, timings=Timings(), started_at="t")


def _batch(*numbers: int) -> list[tuple[WorkItem, Result]]:
    return [(WorkItem(Request.create(f"http://127.0.0.1/{n}"), 0.0), _result(n)) for n in numbers]


def _fail_at_commit(connection: sqlite3.Connection) -> None:
    """A transaction whose COMMIT fails (a deferred constraint), as a full disk would."""
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)")
    connection.execute(
        "CREATE TEMP TABLE IF NOT EXISTS child"
        " (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with transaction(connection):
        connection.execute("INSERT OR REPLACE INTO done (id, ok, run) VALUES ('lost', 1, 1)")
        connection.execute("INSERT INTO child (p) VALUES (1)")


async def test_the_journal_is_usable_after_a_failed_commit(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "out.jsonl.journal")
    try:
        await journal.start_run({"version": 1})
        with pytest.raises(OutputError) as failed:
            await journal.call(_fail_at_commit)
        assert str(failed.value) == (
            f"cannot update the resume journal {journal.path}: FOREIGN KEY constraint failed"
        )
        # Rolled back, not left open: the next commit starts its own transaction...
        await journal.commit([("kept", True), ("bad", False)], 123)
        assert await journal.lookup(["lost", "kept", "bad"]) == {"kept": 1, "bad": 1}
        state = await journal.state()
        # ...and nothing of the failed one ever reaches the database.
        assert (state.done, state.failed, state.output_length) == (2, 1, 123)
    finally:
        await journal.aclose()
    with pytest.raises(OutputError) as closed:
        await journal.commit([("late", True)], None)
    assert str(closed.value) == f"the resume journal {journal.path} is closed"


async def test_journal_state_lookup_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.journal"
    journal = await Journal.open(path)
    try:
        created = await journal.state()
        assert (created.created, created.runs, created.done, created.complete) == (
            True,
            0,
            0,
            False,
        )
        assert await journal.start_run({"version": 1, "salt": "ab"}) == 1
        ids = [f"id{n}" for n in range(2500)]  # more than one lookup query holds
        await journal.commit([(request_id, True) for request_id in ids], None)
        found = await journal.lookup([*ids, "missing"])
        assert len(found) == 2500 and set(found.values()) == {1}
        assert await journal.lookup([]) == {}
        await journal.mark_complete()
        assert (await journal.state()).complete is True
    finally:
        await journal.aclose()
    await journal.aclose()  # closing twice is harmless
    again = await Journal.open(path)
    try:
        assert await again.start_run({"version": 1}) == 2
        state = await again.state()
        assert state.fingerprint == {"version": 1}
        assert (state.created, state.runs, state.done, state.failed) == (False, 2, 2500, 0)
        assert state.complete is False  # a new run is incomplete until told
        assert state.output_length is None  # no commit gave a position
    finally:
        await again.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone() == ("1",)
        assert read_state(db).done == 2500


def _synchronous_inside_and_after(connection: sqlite3.Connection) -> tuple[int, int, int]:
    before = connection.execute("PRAGMA synchronous").fetchone()[0]
    with transaction(connection, durable=True):
        inside = connection.execute("PRAGMA synchronous").fetchone()[0]
    after = connection.execute("PRAGMA synchronous").fetchone()[0]
    return before, inside, after


async def test_durable_transactions_sync_fully_then_go_back(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "out.jsonl.journal")
    try:
        # NORMAL (1) for ordinary commits, FULL (2) for those a rename depends on.
        assert await journal.call(_synchronous_inside_and_after) == (1, 2, 1)
        assert await journal.call(lambda db: db.execute("PRAGMA busy_timeout").fetchone()) == (
            5000,
        )
    finally:
        await journal.aclose()


async def test_a_run_starts_durably_and_commits_carry_their_meta(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.journal"
    journal = await Journal.open(path)
    try:
        statements: list[str] = []
        await journal.call(lambda db: db.set_trace_callback(statements.append))
        await journal.start_run({"version": 1})
        upper = [statement.upper() for statement in statements]
        assert upper[:2] == ["PRAGMA SYNCHRONOUS=FULL", "BEGIN IMMEDIATE"]
        await journal.commit([("a", True)], 10, meta={"stream:0": "5-0", "stream:1": "7-1"})
        await journal.call(lambda db: db.set_trace_callback(None))
        meta = await journal.call(
            lambda db: db.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'stream:%'"
            ).fetchall()
        )
        assert sorted(meta) == [("stream:0", "5-0"), ("stream:1", "7-1")]
        assert (await journal.state()).output_length == 10
    finally:
        await journal.aclose()


def test_a_pending_rewrite_is_read_back_from_the_journal(tmp_path: Path) -> None:
    connection = connect(tmp_path / "out.csv.journal")
    try:
        assert read_state(connection).pending_rewrite is None
        set_meta(connection, "pending_rewrite", "out.csv.rewrite")
        assert read_state(connection).pending_rewrite == "out.csv.rewrite"
    finally:
        connection.close()


async def test_errors_name_the_journal_and_the_file_that_failed(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.journal"
    journal = await Journal.open(path)

    def missing(_connection: sqlite3.Connection) -> None:
        raise FileNotFoundError(2, "No such file or directory", "/gone/out.csv.rewrite")

    try:
        with pytest.raises(OutputError) as raised:
            await journal.call(missing)
        assert str(raised.value) == (
            "cannot resume: No such file or directory: /gone/out.csv.rewrite"
        )
    finally:
        await journal.aclose()
    # Closed, the connection is gone: SQLite removed its write-ahead log on closing.
    assert not Path(f"{path}-wal").exists()
    with pytest.raises(OutputError) as raised:
        await journal.state()
    assert str(raised.value) == f"the resume journal {path} is closed"


def test_journal_path() -> None:
    assert journal_path("out.jsonl") == Path("out.jsonl.journal")
    assert journal_path(Path("a/out.csv")) == Path("a/out.csv.journal")
    assert journal_path("a/out.csv.journal") == Path("a/out.csv.journal")


async def test_journal_open_fails_cleanly_where_no_database_can_be(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot open the resume journal"):
        await Journal.open(tmp_path / "missing-dir" / "out.journal")


async def _journaled_csv(out: Path, *batches: tuple[int, ...]) -> set[str]:
    """Write ``batches`` to a CSV output through the resumable output, as a run does."""
    output = await ResumableOutput.open(out, make_fingerprint=_no_fingerprint)
    # The ids the input filter handed out (a private set the filter and store share).
    in_flight = output._in_flight
    in_flight.update({f"r{n}" for batch in batches for n in batch} | {"other"})
    for numbers in batches:
        await output.commit(_batch(*numbers))
    await output.aclose()
    return in_flight


async def test_a_torn_csv_tail_is_cut_back_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    in_flight = await _journaled_csv(out, (1, 2), (3,))
    assert in_flight == {"other"}  # committed ids are the journal's now, only those
    committed = out.read_bytes()
    assert committed.count(b"\n") == 4  # the header and three rows
    # A crash mid-write: a whole row the journal never heard of, then half a row.
    torn = b"r4,4,GET,http://127.0.0.1/4\r\nr5,5,GE"
    out.write_bytes(committed + torn)
    output = await ResumableOutput.open(out, make_fingerprint=_no_fingerprint)
    await output.aclose()
    report = output.report
    assert (report.cut, report.cut_unit) == (len(torn), "bytes")
    assert (report.already_done, report.already_failed) == (3, 3)
    assert out.read_bytes() == committed


async def test_an_output_shorter_than_the_journal_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    await _journaled_csv(out, (1, 2))
    size = out.stat().st_size
    out.write_bytes(out.read_bytes()[:-5])
    with pytest.raises(ResumeError) as refused:
        await ResumableOutput.open(out, make_fingerprint=_no_fingerprint)
    assert str(refused.value) == (
        f"cannot resume {out}: it is shorter ({size - 5} bytes) than the journal recorded"
        f" ({size} bytes): it was edited, replaced or truncated. Use --resume-force to"
        f" rebuild the journal from {out.name} as it is now (its requests that have no"
        " record are fetched again)."
    )


async def test_a_failed_journal_commit_keeps_the_ids_in_flight(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    output = await ResumableOutput.open(out, make_fingerprint=_no_fingerprint)
    in_flight = output._in_flight
    in_flight.add("r1")
    await output.journal.aclose()
    with pytest.raises(OutputError):
        await output.commit(_batch(1))
    await output.aclose()
    # Not journaled: the input filter must not treat r1 as answered for.
    assert in_flight == {"r1"}


def test_fingerprint_differences_in_words() -> None:
    stored = {
        "version": 1,
        "inputs": [{"name": "/a", "size": 10, "head": "h", "tail": "t"}],
        "options": {"method": "GET", "max_body": 1, "header": "x"},
    }
    same = {**stored}
    assert fingerprint_differences(stored, same) == []
    changed = {
        "version": 1,
        "inputs": [{"name": "/a", "size": 12, "head": "h", "tail": "t"}],
        "options": {"method": "POST", "max_body": 1, "follow_redirects": True},
    }
    assert fingerprint_differences(stored, changed) == [
        "input /a is not the input of the job (10 → 12 bytes)",
        "options changed: --follow-redirects, --header, --method",
    ]
    assert fingerprint_differences(stored, {**stored, "inputs": []}) == [
        "the job had 1 input(s), this run has 0"
    ]
    assert fingerprint_differences(stored, {**stored, "version": 2}) == [
        "the journal was written by another asyncfetch version"
    ]


async def test_a_sink_store_makes_each_batch_readable_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    store = SinkStore(open_sink(out, output_format="jsonl"))
    await store.commit(_batch(1, 2))
    # Flushed after the batch: a reader (tail -f, a resume) sees both records now.
    assert [line["id"] for line in map(orjson.loads, out.read_bytes().splitlines())] == [
        "r1",
        "r2",
    ]
    await store.commit(_batch(3))
    await store.aclose()
    assert out.read_bytes().count(b"\n") == 3


async def test_a_channel_store_hands_results_over_then_the_end() -> None:
    store = ChannelStore(maxsize=2)
    await store.commit(_batch(1, 2))
    assert store.channel.full()  # bounded: a third would wait for the consumer
    received = [store.channel.get_nowait(), store.channel.get_nowait()]
    assert [result.id for result in received if result is not None] == ["r1", "r2"]
    await store.aclose()
    assert store.channel.get_nowait() is None


async def test_a_sink_store_writes_only_the_kept_results(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    store = SinkStore(open_sink(out, output_format="jsonl"), keep=lambda r: r.id != "r2")
    await store.commit(_batch(1, 2, 3))
    await store.aclose()
    assert [line["id"] for line in map(orjson.loads, out.read_bytes().splitlines())] == [
        "r1",
        "r3",
    ]


def test_journal_path_is_beside_the_output_or_the_journal_itself() -> None:
    assert journal_path("out.jsonl") == Path("out.jsonl.journal")
    assert journal_path(Path("d/out.csv")) == Path("d/out.csv.journal")
    assert journal_path("d/out.jsonl.journal") == Path("d/out.jsonl.journal")


def test_a_plain_run_refuses_only_an_output_that_has_a_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("-.journal").write_bytes(b"")  # stdout is never a journaled output
    refuse_journaled_output("-")
    refuse_journaled_output(None)
    refuse_journaled_output(tmp_path / "plain.jsonl")
    (tmp_path / "job.jsonl.journal").write_bytes(b"")
    with pytest.raises(ResumeError) as raised:
        refuse_journaled_output(tmp_path / "job.jsonl")
    assert str(raised.value) == (
        f"{tmp_path / 'job.jsonl'} belongs to a resumable job (job.jsonl.journal): add"
        " --resume (resume=True in the library) to continue it, or delete both files to"
        " start over."
    )
