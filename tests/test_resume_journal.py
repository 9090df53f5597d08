"""The journal and the input filters, as a library: fast, no subprocesses."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from asyncfetch._errors import InputError, ResumeError
from asyncfetch._models import InvalidInput, Request
from asyncfetch.pipeline.stats import StatsCollector
from asyncfetch.resume.filters import ready_batches, skip_done
from asyncfetch.resume.fingerprint import fingerprint, fingerprint_differences
from asyncfetch.resume.journal import Journal, journal_path
from asyncfetch.resume.output import ResumableOutput
from asyncfetch.resume.recent_ids import RecentIds


async def _items(count: int, *, pause: float = 0.0) -> AsyncIterator[int]:
    for number in range(count):
        if pause:
            await asyncio.sleep(pause)
        yield number


async def test_ready_batches_groups_what_is_ready_and_passes_errors_on() -> None:
    fast = [batch async for batch in ready_batches(_items(2500), limit=1000)]
    assert [len(batch) for batch in fast] == [1000, 1000, 500]
    slow = [batch async for batch in ready_batches(_items(3, pause=0.01))]
    assert slow == [[0], [1], [2]]

    async def failing() -> AsyncIterator[int]:
        yield 1
        raise InputError("cannot read input")

    with pytest.raises(InputError):
        async for _batch in ready_batches(failing()):
            pass


def test_recent_ids_forget_the_oldest() -> None:
    recent = RecentIds(capacity=2)
    assert recent.add("a") and recent.add("b") and not recent.add("a")
    assert recent.add("c")  # "a" is forgotten now
    assert recent.add("a") and not recent.add("c")


async def _source(requests: list[Request | InvalidInput]) -> AsyncIterator[Request | InvalidInput]:
    for request in requests:
        yield request


async def test_skip_done_skips_finished_and_repeated_ids(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "out.jsonl.journal")
    try:
        await journal.start_run({})
        journal.run = 1
        await journal.commit([("old", True)], position=10)
        journal.run = 2  # a later run: "old" was finished by an earlier one
        requests = [
            Request.create(f"http://h/{name}", id=name) for name in ("a", "b", "a", "old", "c")
        ]
        bad = InvalidInput(line=9, message="bad", raw="x")
        in_flight = {"c"}  # handed out, not yet committed
        stats = StatsCollector()
        passed = [
            item async for item in skip_done(_source([*requests, bad]), journal, in_flight, stats)
        ]
    finally:
        await journal.aclose()
    assert [getattr(item, "id", None) for item in passed] == ["a", "b", ""]
    assert (stats.skipped, stats.duplicates) == (1, 2)
    assert in_flight == {"a", "b", "c", bad.record_id}


def test_fingerprint_names_changes_and_hides_secrets(tmp_path: Path) -> None:
    source = tmp_path / "urls.txt"
    source.write_text("http://h/1\n")
    options: dict[str, Any] = {"method": "GET", "header": (("Authorization", "Bearer tok"),)}
    stored = fingerprint((str(source),), options)
    assert b"tok" not in orjson.dumps(stored)
    same = fingerprint((str(source),), options, stored["salt"])
    assert fingerprint_differences(stored, same) == []
    changed = fingerprint((str(source),), {**options, "method": "POST"}, stored["salt"])
    assert fingerprint_differences(stored, changed) == ["options changed: --method"]
    source.write_text("http://h/2\n")
    edited = fingerprint((str(source),), options, stored["salt"])
    assert "urls.txt" in fingerprint_differences(stored, edited)[0]


def _line(record_id: str, ok: bool = True) -> bytes:
    return orjson.dumps({"id": record_id, "ok": ok}) + b"\n"


async def test_resume_force_rebuilds_from_a_damaged_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(_line("a") + b"{not json\n" + _line("b", False) + _line("a") + b'{"id": "c')
    with pytest.raises(ResumeError, match="no resume journal"):
        await ResumableOutput.open(out)
    output = await ResumableOutput.open(out, force=True)
    try:
        report = output.report
        assert report.rebuilt == 2 and (report.already_done, report.already_failed) == (2, 1)
        assert (await output.journal.lookup(["a", "b", "c"])).keys() == {"a", "b"}
        assert (await output.journal.state()).output_length == out.stat().st_size
    finally:
        await output.aclose()
    assert out.read_bytes() == _line("a") + _line("b", False)


async def test_a_rewrite_cut_short_by_a_crash_is_completed_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    output = await ResumableOutput.open(out)
    out.write_bytes(_line("a") + _line("b", False))
    await output.journal.commit([("a", True), ("b", False)], out.stat().st_size)
    await output.aclose()

    def crash(*_args: object) -> None:
        raise OSError(5, "simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Exception, match="simulated crash"):
        await ResumableOutput.open(out, retry_failed=True)
    monkeypatch.undo()
    assert out.read_bytes() == _line("a") + _line("b", False)  # not replaced yet
    output = await ResumableOutput.open(out)
    await output.aclose()
    assert out.read_bytes() == _line("a")  # the committed rewrite was completed
    assert (output.report.already_done, output.report.already_failed) == (1, 0)
    with sqlite3.connect(journal_path(out)) as db:
        assert (
            db.execute("SELECT value FROM meta WHERE key = 'pending_rewrite'").fetchone() is None
        )


async def test_a_repeat_is_caught_even_after_its_first_copy_was_committed(
    tmp_path: Path,
) -> None:
    # The first "a" is committed (and leaves in_flight) before the filter reaches the
    # second "a" of the same batch: the batch's own lookup cannot have seen it.
    journal = await Journal.open(tmp_path / "out.jsonl.journal")
    try:
        await journal.start_run({})
        in_flight: set[str] = set()
        stats = StatsCollector()
        requests = [Request.create(f"http://h/{name}", id=name) for name in ("a", "b", "a")]
        passed = []
        async for item in skip_done(_source(list(requests)), journal, in_flight, stats):
            passed.append(item)
            await journal.commit([(item.id, True)], position=None)
            in_flight.discard(item.id)
    finally:
        await journal.aclose()
    assert [item.id for item in passed] == ["a", "b"] and stats.duplicates == 1
