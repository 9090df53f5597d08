"""Building a report: read records (or take a live run's figures), write the page.

The page is written next to its target and renamed over it, so a report is either the
old one or the whole new one, never half a page (Ctrl-C may come at any time).
"""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import OutputError
from .aggregate import ReportData, RunAggregate
from .records import ReadCounts, read_file, read_redis_job


def _notes(counts: ReadCounts) -> list[str]:
    if not counts.unreadable:
        return []
    return [f"{counts.unreadable:,} lines were not records (torn or damaged) and were skipped."]


def report_from_file(path: Path, fmt: str | None = None) -> ReportData:
    """Figures of every record in ``path`` (JSONL, CSV or SQLite), in one streaming pass."""
    aggregate, counts = RunAggregate(), ReadCounts()
    for batch in read_file(path, fmt, counts):
        aggregate.add_batch(batch)
    return aggregate.data(_notes(counts))


async def report_from_redis(redis_url: str, job: str) -> ReportData:
    """Figures of a Redis job's results, one record per request id."""
    aggregate, counts = RunAggregate(), ReadCounts()
    async for batch in read_redis_job(redis_url, job, counts):
        aggregate.add_batch(batch)
    return aggregate.data(_notes(counts))


def write_report(data: ReportData, target: Path, *, source: str) -> None:
    """Render ``data`` into ``target``; raises OutputError when it cannot be written."""
    from .html import render

    page = render(data, source=source)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write report {target}: {error.strerror}") from error
