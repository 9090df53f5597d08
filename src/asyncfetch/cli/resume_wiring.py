"""The output side of ``fetch``: a plain sink, or, for ``--resume``, a resumable output.

The resumable output is the library's (``resume/output.py``, behind
``Fetcher.fetch_to_file``); this module maps the options onto it and says what it did.
Either way the input passes a filter first: with ``--resume`` the journal skips finished
requests and repeated ids; without it a bounded window of recent ids drops repeats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._models import Item, RunStats
from ..pipeline.stats import StatsCollector
from ..pipeline.stores import SinkStore
from ..queues.base import ResultStore
from ..resume.filters import drop_repeat_batches
from ..resume.location import refuse_journaled_output
from ..resume.recent_ids import RECENT_IDS
from ..sinks import _resolve_format as resolve_output_format
from ..sinks import open_sink
from ..sinks.base import keep_only
from .console import Printer
from .job import FetchJob

if TYPE_CHECKING:
    # Only --resume needs it (and sqlite3 behind it); _open_resumable imports it.
    from ..resume.output import ResumableOutput

Batches = AsyncIterator[list[Item]]


class StoreWiring:
    """The store results go to and the filtered input, plus the output for --resume."""

    # A plain class: as a dataclass it cost about 0.4 ms of every CLI start to build.
    def __init__(
        self, store: ResultStore, batches: Batches, output: ResumableOutput | None = None
    ) -> None:
        self.store = store
        self.batches = batches  # the input, filtered: non-empty lists of requests
        self.output = output
        self.extra: dict[str, Any] = {} if output is None else output.describe()

    @property
    def already_done(self) -> int:
        return 0 if self.output is None else self.output.already_done

    async def finished(self) -> None:
        """The input was read to the end and every result committed."""
        if self.output is not None:
            await self.output.finished()

    def notes(self, stats: RunStats) -> list[str]:
        """Summary lines about skipped and repeated requests."""
        lines = []
        if stats.skipped:
            lines.append(f"skipped {stats.skipped} requests already done in earlier runs")
        if stats.duplicates:
            window = "" if self.output else f" (among the last {RECENT_IDS:,} ids)"
            lines.append(f"{stats.duplicates} repeated request ids fetched once{window}")
        return lines


async def open_store(
    job: FetchJob,
    stack: AsyncExitStack,
    stats: StatsCollector,
    batches: Batches,
    console: Printer,
) -> StoreWiring:
    """Open the sink (or resumable output) for ``job``; closing is registered on ``stack``.

    ``batches`` is the input as lists (:func:`~asyncfetch.cli.run.chain_input_batches`);
    the wiring's ``batches`` is that input filtered.
    """
    if job.resume:
        return await _open_resumable(job, stack, stats, batches, console)
    refuse_journaled_output(job.output)
    sink = open_sink(
        job.output, output_format=job.output_format, include_headers=job.include_headers
    )
    store = SinkStore(sink, keep=keep_only(job.only))
    stack.push_async_callback(store.aclose)
    return StoreWiring(store, drop_repeat_batches(batches, stats))


async def _open_resumable(
    job: FetchJob, stack: AsyncExitStack, stats: StatsCollector, batches: Batches, console: Printer
) -> StoreWiring:
    from ..resume.fingerprint import fingerprint
    from ..resume.output import ResumableOutput

    if job.output in (None, "-"):
        raise ConfigError("--resume needs an output file, e.g. -o results.jsonl")
    output_format = resolve_output_format(job.output, job.output_format)
    options = job.resume_options(output_format)
    output = await ResumableOutput.open(
        job.output,
        output_format=output_format,
        include_headers=job.include_headers,
        make_fingerprint=lambda salt: fingerprint(job.inputs, options, salt),
        force=job.resume_force,
        retry_failed=job.retry_failed,
    )
    output.keep = keep_only(job.only)
    stack.push_async_callback(output.aclose)
    if not job.quiet:
        message = f"asyncfetch: {output.report.describe(output.journal.path)}"
        console.print(message, highlight=False, markup=False)
    return StoreWiring(output, output.unfinished(batches, stats), output)
