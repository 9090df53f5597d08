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


# -- opening for resume (reopen.py), in process: what it repairs, refuses and reports ----


async def _journaled(out: Path, *lines: bytes) -> None:
    """``out`` written and committed as a run would leave it."""
    output = await ResumableOutput.open(out)
    out.write_bytes(b"".join(lines))
    entries = [(orjson.loads(line)["id"], orjson.loads(line)["ok"]) for line in lines]
    await output.journal.commit(entries, out.stat().st_size)
    await output.aclose()


async def test_a_new_output_starts_a_journal(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    output = await ResumableOutput.open(out)
    await output.aclose()
    report = output.report
    assert (report.runs, report.already_done, report.cut, report.rebuilt) == (1, 0, 0, None)
    assert report.describe(Path("j")) == "journal j started; run the same command to resume"


async def test_an_unrecorded_tail_is_cut_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _journaled(out, _line("a"), _line("b", False))
    committed = out.read_bytes()
    with out.open("ab") as file:
        file.write(_line("c") + b'{"id": "d')  # a batch never journaled, and a torn line
    output = await ResumableOutput.open(out)
    await output.aclose()
    assert out.read_bytes() == committed
    report = output.report
    assert (report.runs, report.already_done, report.already_failed) == (2, 2, 1)
    assert report.describe(Path("j")) == (
        "resuming (run 2): 2 requests already done; 1 of them failed;"
        " dropped 30 bytes of unrecorded output"
    )
    assert len(_line("c") + b'{"id": "d') == 30


async def test_a_clean_output_resumes_with_nothing_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _journaled(out, _line("a"))
    output = await ResumableOutput.open(out)
    await output.aclose()
    assert output.report.describe(Path("j")) == "resuming (run 2): 1 requests already done"
    assert (await _state(out)).output_length == len(_line("a"))


async def _refusal(out: Path, **options: Any) -> str:
    """The message of the ResumeError that opening ``out`` with ``options`` raises."""
    with pytest.raises(ResumeError) as raised:
        await ResumableOutput.open(out, **options)
    return str(raised.value)


async def _state(out: Path) -> Any:
    journal = await Journal.open(journal_path(out))
    try:
        return await journal.state()
    finally:
        await journal.aclose()


async def test_an_output_shorter_than_its_journal_is_refused_unless_forced(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    await _journaled(out, _line("a"), _line("b"))
    out.write_bytes(_line("a"))  # truncated by hand
    assert await _refusal(out) == (
        f"cannot resume {out}: it is shorter (21 bytes) than the journal recorded"
        " (42 bytes): it was edited, replaced or truncated. Use --resume-force to rebuild"
        " the journal from out.jsonl as it is now (its requests that have no record are"
        " fetched again)."
    )
    assert len(_line("a")) == 21
    output = await ResumableOutput.open(out, force=True)
    await output.aclose()
    assert output.report.describe(Path("j")) == (
        "resuming (run 2): 1 requests already done;"
        " journal rebuilt from the output (1 records kept)"
    )
    assert (await _state(out)).done == 1


async def test_an_output_without_its_journal_is_refused_with_the_way_out(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(_line("a"))
    assert await _refusal(out) == (
        f"{out} already exists and has no resume journal (out.jsonl.journal), so it was"
        " not written with --resume. Use --resume-force to keep its records and resume"
        " (damaged or repeated ones are dropped), or choose another output."
    )
    assert not journal_path(out).exists()
    assert out.read_bytes() == _line("a")  # nothing of it was touched


async def test_an_empty_output_without_a_journal_is_simply_started(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"")
    output = await ResumableOutput.open(out)
    await output.aclose()
    assert (output.report.runs, output.report.rebuilt) == (1, None)


async def test_retry_failed_forgets_the_failures_and_says_how_many(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await _journaled(out, _line("a"), _line("b", False), _line("c", False))
    output = await ResumableOutput.open(out, retry_failed=True)
    await output.aclose()
    assert output.report.describe(Path("j")) == (
        "resuming (run 2): 3 requests already done; 2 of them failed; retrying 2 failed"
    )
    assert output.already_done == 1
    assert out.read_bytes() == _line("a")
    assert (await _state(out)).done == 1


async def test_another_job_is_refused_by_what_changed_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    def job(method: str) -> Any:
        return lambda salt: fingerprint((), {"method": method}, salt)

    output = await ResumableOutput.open(out, make_fingerprint=job("GET"))
    await output.aclose()
    assert await _refusal(out, make_fingerprint=job("POST")) == (
        f"cannot resume {out}: options changed: --method. Use --resume-force to continue"
        " the job anyway, or choose another output."
    )
    output = await ResumableOutput.open(out, make_fingerprint=job("GET"))
    await output.aclose()
    assert output.report.runs == 2
    output = await ResumableOutput.open(out, make_fingerprint=job("POST"), force=True)
    await output.aclose()
    assert output.report.runs == 3


async def test_a_job_with_a_secret_option_resumes_and_every_change_is_named(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    urls = tmp_path / "urls.txt"
    urls.write_text("http://h/1\n")
    secret = (("Authorization", "Bearer tok"),)

    def job(inputs: tuple[str, ...], method: str) -> Any:
        # The header is stored only as a hash salted by the journal: the same job must
        # be told the stored salt to match it.
        return lambda salt: fingerprint(inputs, {"method": method, "header": secret}, salt)

    output = await ResumableOutput.open(out, make_fingerprint=job((str(urls),), "GET"))
    await output.aclose()
    output = await ResumableOutput.open(out, make_fingerprint=job((str(urls),), "GET"))
    await output.aclose()
    assert output.report.runs == 2
    assert await _refusal(out, make_fingerprint=job((str(urls), str(urls)), "PUT")) == (
        f"cannot resume {out}: the job had 1 input(s), this run has 2; options changed:"
        " --method. Use --resume-force to continue the job anyway, or choose another output."
    )
