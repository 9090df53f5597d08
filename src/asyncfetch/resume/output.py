"""A resumable output: a file in any resumable format, and its journal, kept in step.

This is resume as the library offers it (``Fetcher.fetch_to_file``) and as ``fetch
--resume`` uses it: open the pair (repairing what a crash left, see reopen.py), filter
the input through it (skip what is done, each id once), commit results to it, and mark
the job complete. It knows no output format: the sink does (``ResumableSink``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._models import Item, Result
from ..queues.base import Completed
from ..sinks import open_resumable_sink
from ..sinks.base import Keep, ResumableSink
from .filters import FilterCounts, skip_done_batches
from .fingerprint import Fingerprinter, fingerprint
from .journal import Journal
from .reopen import ResumeReport, open_for_resume
from .rewrite import fsync_directory


class ResumableOutput:
    """An output and its journal, opened and made to agree; a ``ResultStore``.

    Order matters in :meth:`write`: the batch is written and fsynced first, then its ids
    and the output's new position go into one journal transaction. A crash in between
    leaves records the journal does not know; the next open cuts them off.
    """

    def __init__(self, sink: ResumableSink, journal: Journal, report: ResumeReport) -> None:
        self.sink = sink
        self.journal = journal
        self.report = report
        # ``--only``: which results reach the output; the journal answers for them all.
        self.keep: Keep = None
        # Ids handed to the run and not yet committed (see filters.skip_done_batches).
        self._in_flight: set[str] = set()

    @classmethod
    async def open(
        cls,
        output: str | os.PathLike[str],
        *,
        output_format: str | None = None,
        include_headers: bool = False,
        make_fingerprint: Fingerprinter | None = None,
        force: bool = False,
        retry_failed: bool = False,
    ) -> ResumableOutput:
        """Open ``output`` (JSONL, CSV or SQLite) and ``output.journal`` for a resumable run.

        ``make_fingerprint(salt)`` identifies the job (default: none, so any later run
        may continue it); ``force`` and ``retry_failed`` are ``--resume-force`` and
        ``--retry-failed``. Raises ResumeError, ConfigError or OutputError.
        """
        path = Path(output)
        identify = make_fingerprint or (lambda salt: fingerprint((), {}, salt))

        def open_sink() -> ResumableSink:
            return open_resumable_sink(
                path, output_format=output_format, include_headers=include_headers
            )

        journal, sink, report = await open_for_resume(
            path, open_sink, identify, force=force, retry_failed=retry_failed
        )
        # The output may be new: make its directory entry as durable as its contents.
        await journal.call(lambda _db: fsync_directory(path.absolute().parent))
        return cls(sink, journal, report)

    @property
    def already_done(self) -> int:
        """Requests finished by earlier runs that this run will skip."""
        return self.report.already_done - self.report.retrying

    def unfinished(
        self, batches: AsyncIterator[list[Item]], counts: FilterCounts
    ) -> AsyncIterator[list[Item]]:
        """``batches`` without the requests already done, each id handed out once."""
        return skip_done_batches(batches, self.journal, self._in_flight, counts)

    async def write(
        self, results: Sequence[Result], meta: Mapping[str, str] | None = None
    ) -> None:
        """Write ``results`` durably, then journal them: they count as done from here on.

        ``meta`` goes into the same journal transaction (``collect`` keeps its positions
        in the Redis streams there)."""
        keep = self.keep
        await self.sink.write(results if keep is None else [r for r in results if keep(r)])
        await self.sink.flush(durable=True)
        position = await self.sink.committed_position()
        entries = [(result.id, result.ok) for result in results]
        await self.journal.commit(entries, position, meta)
        # Only now may the input filter treat these ids as the journal's to answer for.
        self._in_flight.difference_update(result.id for result in results)

    async def commit(self, batch: Sequence[Completed]) -> None:
        """The ``ResultStore`` face of :meth:`write`."""
        await self.write([result for _item, result in batch])

    async def finished(self) -> None:
        """The input was read to the end and every result committed: the job is complete."""
        await self.journal.mark_complete()

    def describe(self) -> dict[str, Any]:
        """For a run's summary: where the journal is and which run this is."""
        return {"journal": str(self.journal.path), "journal_run": self.report.runs}

    async def aclose(self) -> None:
        """Close the sink, then the journal (every commit already flushed durably)."""
        try:
            await self.sink.aclose()
        finally:
            await self.journal.aclose()
