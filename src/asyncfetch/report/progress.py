"""Progress display and the end-of-run summary.

The reporter is a background task that reads statistics snapshots; it never touches the
hot path. Console and clock are injected so tests can read exactly what a user sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._models import RunStats
from .politeness import throttled_note

if TYPE_CHECKING:
    # rich is imported where a bar is made: the summary helpers and a run without a
    # display (``-q``, ``--no-progress``) should not pay for importing it.
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from .hosts import HostSummary

Snapshot = Callable[[], RunStats]


def status_line(stats: RunStats, throttled: int = 0) -> str:
    total = f"/{stats.total}" if stats.total is not None else ""
    return (
        f"asyncfetch: {stats.done}{total} done, {stats.ok} ok, {stats.failed} failed, "
        f"{stats.in_flight} in flight, {stats.rate:.1f} req/s, {stats.elapsed_s:.0f} s"
        f"{throttled_note(throttled)}"
    )


class ProgressReporter:
    """Shows progress while a run goes: a rich bar on a terminal, else a periodic line."""

    def __init__(
        self,
        snapshot: Snapshot,
        console: Console,
        *,
        mode: str = "auto",
        interval: float = 5.0,
        throttled: Callable[[], int] | None = None,
    ) -> None:
        if mode == "auto":
            mode = "bar" if console.is_terminal else "lines"
        self._snapshot = snapshot
        self._console = console
        self._mode = mode
        self._interval = interval
        self._throttled = throttled or (lambda: 0)
        self._task: asyncio.Task[None] | None = None
        self._progress: Progress | None = None
        self._task_id: TaskID | None = None

    async def __aenter__(self) -> ProgressReporter:
        if self._mode == "bar":
            self._progress = _make_bar(self._console)
            self._progress.start()
            self._task_id = self._progress.add_task(
                "fetching", total=None, ok=0, failed=0, rate=0.0, throttled=""
            )
            self._task = asyncio.create_task(self._loop(0.2), name="asyncfetch-progress")
        elif self._mode == "lines":
            self._task = asyncio.create_task(
                self._loop(self._interval), name="asyncfetch-progress"
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._progress is not None:
            self._update_bar(self._snapshot())
            self._progress.stop()
            self._progress = None

    async def _loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            stats = self._snapshot()
            if self._progress is not None:
                self._update_bar(stats)
            else:
                line = status_line(stats, self._throttled())
                self._console.print(line, highlight=False, soft_wrap=True)

    def _update_bar(self, stats: RunStats) -> None:
        assert self._progress is not None
        assert self._task_id is not None
        self._progress.update(
            self._task_id,
            completed=stats.done,
            total=stats.total,
            ok=stats.ok,
            failed=stats.failed,
            rate=stats.rate,
            throttled=throttled_note(self._throttled()).lstrip(", "),
        )


def _make_bar(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]asyncfetch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
        TextColumn("{task.fields[rate]:.0f} req/s", style="cyan"),
        TextColumn("{task.fields[throttled]}", style="yellow"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        refresh_per_second=5,
    )


def summary_dict(stats: RunStats, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary as plain data (for --summary-json)."""
    data: dict[str, Any] = {
        "done": stats.done,
        "ok": stats.ok,
        "failed": stats.failed,
        "retries": stats.retries,
        "skipped": stats.skipped,
        "duplicates": stats.duplicates,
        "by_status_class": dict(sorted(stats.by_status_class.items())),
        "by_error_kind": dict(sorted(stats.by_error_kind.items())),
        "latency_ms": {key: round(value, 1) for key, value in stats.latency_ms.items()},
        "requests_per_second": round(stats.rate, 1),
        "elapsed_s": round(stats.elapsed_s, 3),
    }
    data.update(extra or {})
    return data


def summary_lines(stats: RunStats, extra: dict[str, Any] | None = None) -> list[str]:
    """The human summary printed on stderr at the end of a run."""
    data = summary_dict(stats, extra)
    statuses = ", ".join(f"{k}: {v}" for k, v in data["by_status_class"].items()) or "none"
    kinds = ", ".join(f"{k}: {v}" for k, v in data["by_error_kind"].items()) or "none"
    latency = data["latency_ms"]
    lines = [
        f"done {stats.done}: {stats.ok} ok, {stats.failed} failed, {stats.retries} retries",
        f"status: {statuses}",
        f"errors: {kinds}",
        f"latency p50 {latency['p50']} ms, p90 {latency['p90']} ms, p99 {latency['p99']} ms",
        f"{data['requests_per_second']} requests/s over {data['elapsed_s']} s",
    ]
    if not latency["p50"]:  # no request was sent (every line invalid): no latency to give
        del lines[3]
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    return lines


SUMMARY_HOSTS = 5
_HOST_COLUMNS = ("requests", "ok %", "p50 ms", "p99 ms", "429", "503", "retries")
_HOST_NAME_CHARS = 40


def host_dicts(hosts: Sequence[HostSummary]) -> list[dict[str, Any]]:
    """Hosts as plain data (for --summary-json)."""
    return [
        {
            "host": host.host,
            "requests": host.requests,
            "ok": host.ok,
            "p50_ms": round(host.p50_ms, 1),
            "p99_ms": round(host.p99_ms, 1),
            "429": host.too_many_requests,
            "503": host.unavailable,
            "retries": host.retries,
        }
        for host in hosts
    ]


def host_lines(busiest: Sequence[HostSummary], slowest: Sequence[HostSummary]) -> list[str]:
    """The summary's host tables: the busiest hosts, then the slowest if not the same."""
    if not busiest:
        return []
    lines = ["busiest hosts:", *_host_table(busiest)]
    if {host.host for host in slowest} != {host.host for host in busiest}:
        lines += ["slowest hosts (mean latency):", *_host_table(slowest)]
    return lines


def _host_table(hosts: Sequence[HostSummary]) -> list[str]:
    rows = [["host", *_HOST_COLUMNS]]
    for host in hosts:
        rows.append(
            [
                _short_host(host.host),
                f"{host.requests:,}",
                f"{host.ok_percent:.1f}",
                f"{host.p50_ms:.1f}",
                f"{host.p99_ms:.1f}",
                f"{host.too_many_requests:,}",
                f"{host.unavailable:,}",
                f"{host.retries:,}",
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  "
        + row[0].ljust(widths[0])
        + "".join(cell.rjust(width + 2) for cell, width in zip(row[1:], widths[1:], strict=True))
        for row in rows
    ]


def _short_host(host: str) -> str:
    return host if len(host) <= _HOST_NAME_CHARS else host[: _HOST_NAME_CHARS - 1] + "…"
