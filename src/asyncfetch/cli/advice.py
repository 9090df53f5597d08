"""The end-of-run advice of ``fetch``: where the output went, how to list its failures,
which limit held the run back, and the exact command that resumes an interrupted run.

Plain functions from facts to lines; cli/run.py prints them after the summary.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from .._models import RunStats
from .job import FetchJob

# A limit is named when requests waited for it, on average, at least this share of
# their own latency (p50) and this many milliseconds: less is noise.
_NOTABLE_WAIT_SHARE = 0.5
_NOTABLE_WAIT_MS = 20.0


def output_lines(job: FetchJob, output_format: str, stats: RunStats) -> list[str]:
    """Where the records went and, when some failed, a command that lists the failures."""
    kept = "" if job.only == "all" else f", only {job.only} requests"
    if job.output in (None, "-"):
        return [f"records: stdout ({output_format}{kept})"]
    lines = [f"records: {job.output} ({output_format}{kept})"]
    if stats.failed and job.only != "ok":
        lines.append(f"list the failures: {failures_command(job.output, output_format)}")
    return lines


def failures_command(output: str, output_format: str) -> str:
    """A ready shell command that lists the failed records of ``output``."""
    path = shlex.quote(output)
    if output_format == "sqlite":
        query = "SELECT url, status, error_kind, error_message FROM results WHERE NOT ok"
        return f'sqlite3 {path} "{query}"'
    if output_format == "csv":
        query = "SELECT url, status, error_kind, error_message FROM r WHERE ok = 'false'"
        return f"sqlite3 :memory: -cmd '.import --csv {path} r' \"{query}\""
    return f"jq -c 'select(.ok | not) | {{url, status, error}}' {path}"


def limit_lines(job: FetchJob, waits: dict[str, float], stats: RunStats) -> list[str]:
    """Which limit held the run back, and the option that lifts it (none if none did)."""
    if not stats.done:
        return []
    own_ms = stats.latency_ms.get("p50", 0.0)
    options = {
        "per_host": ("a per-host slot", f"--per-host {job.per_host}", "raise --per-host"),
        "concurrency": ("a slot", f"-c {job.concurrency}", "raise -c/--concurrency"),
        "rate": ("their turn under the rate limit", f"--rate {job.rate}", "raise --rate"),
    }
    lines = []
    for name, (what, setting, remedy) in options.items():
        mean_ms = waits.get(name, 0.0) * 1000 / stats.done
        if mean_ms >= _NOTABLE_WAIT_MS and mean_ms >= _NOTABLE_WAIT_SHARE * own_ms:
            lines.append(
                f"limits: requests waited {_duration(mean_ms)} on average for {what}"
                f" ({setting}); {remedy} to go faster if the server allows it"
            )
    return lines


def interrupted_lines(
    job: FetchJob, journal: bool, argv: Sequence[str] | None = None
) -> list[str]:
    """After Ctrl-C: the exact command that resumes, when a journal makes that possible."""
    if not journal:
        return [
            "interrupted: no journal was kept, so running again starts over"
            " (add --resume with -o FILE to make a run resumable)"
        ]
    words = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in words and not {"--resume-force", "--retry-failed"} & set(words):
        words.append("--resume")
    stdin = " (with the same input on stdin)" if "-" in job.inputs else ""
    return [f"interrupted: to fetch the rest, run{stdin}: {shlex.join(['asyncfetch', *words])}"]


def empty_run_line(stats: RunStats) -> str:
    """What to say instead of figures when the run made no request at all."""
    if stats.skipped:
        return f"nothing left to do: all {stats.skipped} requests were done in earlier runs"
    return "the input held no requests (it is empty, or only blank and # comment lines)"


def _duration(millis: float) -> str:
    return f"{millis / 1000:.1f} s" if millis >= 1000 else f"{millis:.0f} ms"
