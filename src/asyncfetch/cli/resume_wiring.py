"""The output side of ``fetch``: a plain sink, or a sink plus journal for ``--resume``.

Either way the input passes a filter first: with ``--resume`` the journal skips finished
requests and repeated ids; without it a bounded window of recent ids drops repeats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, ResumeError
from .._models import Item, RunStats
from ..pipeline.stats import StatsCollector
from ..pipeline.stores import JournaledStore, SinkStore, keep_only
from ..queues.base import ResultStore
from ..resume.filters import drop_repeat_batches, skip_done_batches
from ..resume.location import journal_path
from ..resume.recent_ids import RECENT_IDS
from ..sinks import JsonlSink, open_sink
from ..sinks import _resolve_format as resolve_output_format
from .console import Printer
from .job import FetchJob

if TYPE_CHECKING:
    # Only --resume needs these (and sqlite3 behind them); _open_journaled imports them.
    from ..resume.journal import Journal
    from ..resume.reopen import ResumeReport

Batches = AsyncIterator[list[Item]]


class StoreWiring:
    """The store results go to and the filtered input, plus the journal for --resume."""

    # A plain class: as a dataclass it cost about 0.4 ms of every CLI start to build.
    def __init__(
        self,
        store: ResultStore,
        batches: Batches,
        journal: Journal | None = None,
        report: ResumeReport | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.batches = batches  # the input, filtered: non-empty lists of requests
        self.journal = journal
        self.report = report
        self.extra: dict[str, Any] = {} if extra is None else extra

    @property
    def already_done(self) -> int:
        if self.report is None:
            return 0
        return self.report.already_done - self.report.retrying

    async def finished(self) -> None:
        """The input was read to the end and every result committed."""
        if self.journal is not None:
            await self.journal.mark_complete()

    def notes(self, stats: RunStats) -> list[str]:
        """Summary lines about skipped and repeated requests."""
        lines = []
        if stats.skipped:
            lines.append(f"skipped {stats.skipped} requests already done in earlier runs")
        if stats.duplicates:
            window = "" if self.journal else f" (among the last {RECENT_IDS:,} ids)"
            lines.append(f"{stats.duplicates} repeated request ids fetched once{window}")
        return lines


async def open_store(
    job: FetchJob,
    stack: AsyncExitStack,
    stats: StatsCollector,
    batches: Batches,
    console: Printer,
) -> StoreWiring:
    """Open the sink (and journal) for ``job``; closing is registered on ``stack``.

    ``batches`` is the input as lists (:func:`~asyncfetch.cli.run.chain_input_batches`);
    the wiring's ``batches`` is that input filtered.
    """
    if job.resume:
        return await _open_journaled(job, stack, stats, batches, console)
    _refuse_journaled_output(job)
    sink = open_sink(
        job.output, output_format=job.output_format, include_headers=job.include_headers
    )
    store = SinkStore(sink, keep=keep_only(job.only))
    stack.push_async_callback(store.aclose)
    return StoreWiring(store, drop_repeat_batches(batches, stats))


def _refuse_journaled_output(job: FetchJob) -> None:
    # A run without --resume would truncate the output and strand its journal: hours of
    # work lost to a forgotten flag. Make the user say what they want.
    if job.output not in (None, "-") and journal_path(job.output).exists():
        raise ResumeError(
            f"{job.output} belongs to a resumable job ({journal_path(job.output).name}):"
            " add --resume to continue it, or delete both files to start over."
        )


async def _open_journaled(
    job: FetchJob, stack: AsyncExitStack, stats: StatsCollector, batches: Batches, console: Printer
) -> StoreWiring:
    from ..resume.reopen import fingerprint, open_for_resume
    from ..resume.rewrite import fsync_directory
    from ..sinks import CsvSink

    if job.output in (None, "-"):
        raise ConfigError("--resume needs an output file, e.g. -o results.jsonl")
    output = Path(job.output)
    output_format = resolve_output_format(job.output, job.output_format)
    options = job.resume_options(output_format)
    journal, report = await open_for_resume(
        output,
        output_format,
        lambda salt: fingerprint(job.inputs, options, salt),
        force=job.resume_force,
        retry_failed=job.retry_failed,
    )
    stack.push_async_callback(journal.aclose)
    sink = open_sink(
        output, output_format=output_format, include_headers=job.include_headers, append=True
    )
    length = (lambda: sink.position) if isinstance(sink, JsonlSink | CsvSink) else None
    in_flight: set[str] = set()
    store = JournaledStore(
        sink, journal, in_flight, output_length=length, keep=keep_only(job.only)
    )
    stack.push_async_callback(store.aclose)
    # The output may be new: make its directory entry as durable as its contents.
    await journal.call(lambda _db: fsync_directory(output.parent))
    if not job.quiet:
        console.print(f"asyncfetch: {_describe(report, journal)}", highlight=False, markup=False)
    extra = {"journal": str(journal.path), "journal_run": report.runs}
    filtered = skip_done_batches(batches, journal, in_flight, stats)
    return StoreWiring(store, filtered, journal, report, extra)


def _describe(report: ResumeReport, journal: Journal) -> str:
    if report.runs == 1 and report.rebuilt is None:
        return f"journal {journal.path} started; run the same command to resume"
    parts = [f"resuming (run {report.runs}): {report.already_done} requests already done"]
    if report.already_failed:
        parts.append(f"{report.already_failed} of them failed")
    if report.retrying:
        parts.append(f"retrying {report.retrying} failed")
    if report.cut_bytes:
        parts.append(f"dropped {report.cut_bytes} bytes of unrecorded output")
    if report.rebuilt is not None:
        parts.append(f"journal rebuilt from the output ({report.rebuilt} records kept)")
    return "; ".join(parts)
