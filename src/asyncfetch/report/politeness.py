"""Each host's learned limits in the end-of-run summary, and the progress display's count.

Kept apart from the run's totals (progress.py): the rows come from the per-host limits
(``policy/adaptive.py``), not from the statistics of records.
"""

from __future__ import annotations

from typing import Any

from ..policy.adaptive import HostReport


def host_rows(reports: list[HostReport]) -> list[dict[str, Any]]:
    """The hosts as plain data, for ``--summary-json``."""
    return [
        {
            "host": report.host,
            "requests": report.requests,
            "status_429": report.throttled_429,
            "status_503": report.throttled_503,
            "concurrency": report.concurrency,
            "concurrency_range": list(report.concurrency_range),
            "rate": _rounded(report.rate),
            "rate_range": None
            if report.rate_range is None
            else [_rounded(value) for value in report.rate_range],
        }
        for report in reports
    ]


def host_lines(reports: list[HostReport]) -> list[str]:
    """Human lines for the hosts that were held back; none for a run that never was."""
    lines = []
    for report in reports:
        limited = report.rate is not None or report.concurrency_range[0] < report.concurrency
        if not (report.throttled_429 or report.throttled_503 or limited):
            continue
        low, high = report.concurrency_range
        line = (
            f"host {report.host}: {report.requests} requests, {report.throttled_429} × 429,"
            f" {report.throttled_503} × 503; {report.concurrency} in flight (range {low}-{high})"
        )
        if report.rate is not None:
            line += f", {report.rate:.1f} req/s"
            if report.rate_range is not None:
                slowest, fastest = report.rate_range
                line += f" (range {slowest:.1f}-{fastest:.1f})"
        lines.append(line)
    return lines


def throttled_note(count: int) -> str:
    """The progress display's note on hosts held back now ('' when none)."""
    if count == 0:
        return ""
    return f", {count} host{'s' if count != 1 else ''} throttled"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
