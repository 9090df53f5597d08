"""Opening a job for ``--resume``: check the journal against the run, repair the output.

Before any request is sent this makes the output and the journal agree: it completes an
interrupted rewrite, has the sink cut the output back to the position the journal
committed (dropping a torn line, or a batch whose ids never reached the journal),
refuses a journal that belongs to other inputs or options, and, with ``--retry-failed``,
forgets the failed requests and removes their records. The output's format is the
sink's business (:class:`~asyncfetch.sinks.base.ResumableSink`); blocking steps run on
the journal's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._errors import ResumeError
from ..sinks.base import ResumableSink
from .fingerprint import Fingerprinter, fingerprint_differences
from .journal import Journal, JournalState, journal_path
from .rewrite import drop_failed, finish_pending_rewrite, rebuild


@dataclass(frozen=True, slots=True)
class ResumeReport:
    """What opening the job did, for the user: nothing of it is needed to run."""

    already_done: int
    already_failed: int
    cut: int = 0  # how much unrecorded output was dropped, in cut_unit
    cut_unit: str = "bytes"
    rebuilt: int | None = None
    retrying: int = 0
    runs: int = 1

    def describe(self, journal: Path) -> str:
        """What opening the job did, in one line for the user."""
        if self.runs == 1 and self.rebuilt is None:
            return f"journal {journal} started; run the same command to resume"
        parts = [f"resuming (run {self.runs}): {self.already_done} requests already done"]
        if self.already_failed:
            parts.append(f"{self.already_failed} of them failed")
        if self.retrying:
            parts.append(f"retrying {self.retrying} failed")
        if self.cut:
            parts.append(f"dropped {self.cut} {self.cut_unit} of unrecorded output")
        if self.rebuilt is not None:
            parts.append(f"journal rebuilt from the output ({self.rebuilt} records kept)")
        return "; ".join(parts)


SinkOpener = Callable[[], ResumableSink]


async def open_for_resume(
    output: Path,
    open_output: SinkOpener,
    make_fingerprint: Fingerprinter,
    *,
    force: bool = False,
    retry_failed: bool = False,
) -> tuple[Journal, ResumableSink, ResumeReport]:
    """Open ``output``'s journal and sink, and make them agree; see the module doc.

    ``open_output()`` opens the output to append to it; it is called again after a
    rewrite replaced the file. ``make_fingerprint(salt)`` gives this run's fingerprint
    (see :func:`fingerprint`); it is called with the stored salt so the two compare.
    Raises ResumeError when the journal belongs to something else, unless ``force``;
    OutputError when the files cannot be used.
    """
    path = journal_path(output)
    had_journal = path.exists()
    had_data = _output_has_data(output)
    if not had_journal and had_data and not force:
        _refuse_output_without_journal(output, path)
    journal = await Journal.open(path)
    sinks: list[ResumableSink] = []  # the one open, once opened (for the clean-up)
    try:
        await journal.call(lambda db: finish_pending_rewrite(db, output))
        state = await journal.state()
        salt = None if state.fingerprint is None else state.fingerprint.get("salt")
        current = await asyncio.to_thread(make_fingerprint, salt)
        _check_fingerprint(state, current, output, force)
        sinks.append(open_output())
        if had_journal:
            mismatch = await _mismatch(state, sinks[-1])
        else:
            mismatch = "its journal is missing" if had_data else None
        if mismatch is None:
            report = await _cut_back(journal, state, sinks[-1])
        else:
            _refuse_mismatch(output, mismatch, force)
            report = await _rebuild(journal, sinks, open_output)
        if retry_failed:
            report = await _retry_failed(journal, sinks, open_output, report)
        runs = await journal.start_run(current)
    except BaseException:
        if sinks:
            await sinks[-1].aclose()
        await journal.aclose()
        raise
    return journal, sinks[-1], replace(report, runs=runs)


def _refuse_output_without_journal(output: Path, path: Path) -> None:
    raise ResumeError(
        f"{output} already exists and has no resume journal ({path.name}), so it was"
        " not written with --resume. Use --resume-force to keep its records and resume"
        " (damaged or repeated ones are dropped), or choose another output."
    )


def _output_has_data(output: Path) -> bool:
    return output.exists() and output.stat().st_size > 0


def _check_fingerprint(
    state: JournalState, current: dict[str, Any], output: Path, force: bool
) -> None:
    if state.fingerprint is None or force:
        return
    problems = fingerprint_differences(state.fingerprint, current)
    if problems:
        raise ResumeError(
            f"cannot resume {output}: " + "; ".join(problems) + ". Use --resume-force"
            " to continue the job anyway, or choose another output."
        )


def _refuse_mismatch(output: Path, mismatch: str, force: bool) -> None:
    if not force:
        raise ResumeError(
            f"cannot resume {output}: {mismatch}. Use --resume-force to rebuild the"
            f" journal from {output.name} as it is now (its requests that have no"
            " record are fetched again)."
        )


def _committed(state: JournalState) -> int | None:
    """The committed position; None for a journal that lists ids but never recorded one
    (a SQLite output journaled before sinks had positions: nothing to check or cut)."""
    if state.output_length is None:
        return 0 if state.done == 0 else None
    return state.output_length


async def _mismatch(state: JournalState, sink: ResumableSink) -> str | None:
    """Why the journal cannot describe the output, or None when it can."""
    committed = _committed(state)
    now = await sink.committed_position()
    if committed is not None and now < committed:
        unit = sink.position_unit
        return (
            f"it is shorter ({now} {unit}) than the journal recorded ({committed} {unit}):"
            " it was edited, replaced or truncated"
        )
    return None


async def _cut_back(journal: Journal, state: JournalState, sink: ResumableSink) -> ResumeReport:
    """Cut what the journal never recorded, and record the position that is left."""
    committed = _committed(state)
    cut = 0 if committed is None else await sink.truncate(committed)
    # A sink's position may end below the recorded one (a replaced row's old id is gone).
    await journal.commit([], await sink.committed_position())
    return ResumeReport(state.done, state.failed, cut=cut, cut_unit=sink.position_unit)


async def _rebuild(
    journal: Journal, sinks: list[ResumableSink], open_output: SinkOpener
) -> ResumeReport:
    sink = sinks[-1]
    kept = await journal.call(lambda db: rebuild(db, sink))
    await _reopen(sinks, open_output)
    state = await journal.state()
    return ResumeReport(state.done, state.failed, rebuilt=kept)


async def _retry_failed(
    journal: Journal, sinks: list[ResumableSink], open_output: SinkOpener, report: ResumeReport
) -> ResumeReport:
    sink = sinks[-1]
    retrying = await journal.call(lambda db: drop_failed(db, sink))
    await _reopen(sinks, open_output)
    return replace(report, retrying=retrying)


async def _reopen(sinks: list[ResumableSink], open_output: SinkOpener) -> None:
    """The sink again, after a rewrite may have put a new file in place of its own."""
    await sinks.pop().aclose()
    sinks.append(open_output())
