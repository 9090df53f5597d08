"""What a user sees on stderr: status lines when not on a terminal, and the summary."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from asyncfetch._models import RunStats
from asyncfetch.report.progress import ProgressReporter, summary_dict, summary_lines

STATS = RunStats(
    elapsed_s=2.0,
    total=10,
    done=4,
    ok=3,
    failed=1,
    in_flight=2,
    retries=1,
    by_status_class={"2xx": 3, "5xx": 1},
    by_error_kind={},
    latency_ms={"p50": 10.0, "p90": 20.0, "p99": 30.0},
)


async def test_status_lines_when_stderr_is_not_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    async with ProgressReporter(lambda: STATS, console, interval=0.01):
        await asyncio.sleep(0.05)
    text = buffer.getvalue()
    assert "4/10 done, 3 ok, 1 failed, 2 in flight, 2.0 req/s" in text


async def test_a_bar_on_a_terminal_ends_on_the_final_count() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    async with ProgressReporter(lambda: STATS, console):
        await asyncio.sleep(0.01)
    text = buffer.getvalue()
    assert "4/10" in text and "3 ok" in text and "1 failed" in text


async def test_quiet_prints_nothing() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True)
    async with ProgressReporter(lambda: STATS, console, mode="off"):
        await asyncio.sleep(0.01)
    assert buffer.getvalue() == ""


def test_summary_has_counts_percentiles_and_rate() -> None:
    lines = "\n".join(summary_lines(STATS, {"engine": "fast"}))
    assert "done 4: 3 ok, 1 failed, 1 retries" in lines
    assert "2xx: 3, 5xx: 1" in lines
    assert "p50 10.0 ms, p90 20.0 ms, p99 30.0 ms" in lines
    assert "engine: fast" in lines
    assert summary_dict(STATS)["requests_per_second"] == 2.0
