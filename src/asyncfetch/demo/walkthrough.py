"""The tutorial's six sections, replayed with real HTTP against the embedded DemoServer.

Every request goes through asyncfetch's own public API (``Fetcher``, ``fetch_all``), so the
demo also shows how the library is used. Each section prints the tutorial's own lines, plus
the figures measured on this machine and the concurrency the server actually observed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from .. import Fetcher, Request, Result, Timeouts, fetch_all
from .._errors import AsyncfetchError
from .messages import Messages, messages
from .options import DEFAULT_BULK, DEFAULT_BULK_CONCURRENCY, check_options
from .server import BULK_LATENCY_S, DemoServer

# Sections 1-6 send at most three requests at once; these limits never get in their way.
_WALKTHROUGH_CONCURRENCY = 16
# Well above the longest scaled delay (3 s x MAX_SCALE): a slow demo is not a dead server.
_TIMEOUT_S = 60.0
BULK_SAMPLE = 10


class DemoRequestError(AsyncfetchError):
    """A walkthrough request to the embedded server failed; the demo cannot go on."""


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What the demo measured. Peaks are what the server saw in flight at once."""

    lang: str
    scale: float
    sequential_s: float
    concurrent_s: float
    sequential_peak_in_flight: int
    concurrent_peak_in_flight: int
    gather_order: tuple[int, ...]
    queue_consumed: tuple[int, ...]
    bulk_requests: int
    bulk_sample: int
    bulk_sequential_estimate_s: float
    bulk_concurrent_s: float
    bulk_concurrency: int
    bulk_ok: int
    bulk_peak_in_flight: int
    speedup: float


class _SyncVsAsync(NamedTuple):
    sequential_s: float
    concurrent_s: float
    sequential_peak: int
    concurrent_peak: int


class _BulkFigures(NamedTuple):
    sample: int
    estimate_s: float
    concurrent_s: float
    ok: int
    peak: int
    speedup: float


@dataclass(frozen=True, slots=True)
class _Demo:
    """What every section needs: the server, one pooled Fetcher, the console and messages."""

    server: DemoServer
    fetcher: Fetcher
    console: Console
    msg: Messages
    clock: Callable[[], float] = time.perf_counter

    def say(self, key: str, /, **values: object) -> None:
        # markup=False: response bodies and titles may contain "[" that rich would eat.
        self.console.print(self.msg(key, **values), markup=False, highlight=False)

    def title(self, key: str, /, **values: object) -> None:
        self.console.print()
        self.console.rule(Text(self.msg(key, **values), style="bold"), align="left")

    def url(self, path: str) -> str:
        return self.server.url + path

    async def send(self, target: str | Request) -> Result:
        result = await self.fetcher.fetch(target)
        if not result.ok:
            reason = result.error.message if result.error else f"HTTP {result.status}"
            raise DemoRequestError(f"demo request to {result.url} failed: {reason}")
        return result

    async def get(self, path: str) -> Result:
        return await self.send(self.url(path))

    async def post_json(self, path: str, data: Any) -> Result:
        request = Request.create(
            self.url(path),
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps(data).encode(),
        )
        return await self.send(request)

    async def task(self, n: int, delay: int, started: float) -> int:
        """The tutorial's ``task(name, delay)``, with the sleep done by the server."""
        await self.get(f"/delay/{delay}")
        self.say("task_done", name=self.msg("task_name", n=n), elapsed=self.clock() - started)
        return n


async def _sync_vs_async(demo: _Demo) -> _SyncVsAsync:
    demo.title("title_1")
    demo.say("sync_heading")
    demo.server.reset_peak()
    started = demo.clock()
    for n in (1, 2):
        await demo.task(n, 2, started)  # one after the other, like the tutorial's time.sleep
    sequential_s = demo.clock() - started
    sequential_peak = demo.server.peak_in_flight
    demo.say("all_done", elapsed=sequential_s)

    demo.console.print()
    demo.say("async_heading")
    demo.server.reset_peak()
    started = demo.clock()
    await asyncio.gather(demo.task(1, 2, started), demo.task(2, 2, started))
    concurrent_s = demo.clock() - started
    concurrent_peak = demo.server.peak_in_flight
    demo.say("all_done", elapsed=concurrent_s)

    demo.console.print()
    demo.say(
        "sync_vs_async",
        sequential=sequential_s,
        concurrent=concurrent_s,
        ratio=sequential_s / concurrent_s,
    )
    demo.say("server_peak", sequential=sequential_peak, concurrent=concurrent_peak)
    return _SyncVsAsync(sequential_s, concurrent_s, sequential_peak, concurrent_peak)


async def _async_await(demo: _Demo) -> None:
    demo.title("title_2")
    demo.say("async_function")
    demo.say("task_start")
    started = demo.clock()
    result = await demo.get("/delay/2")  # the loop is free to run other tasks meanwhile
    demo.say("task_finished", status=result.status, elapsed=demo.clock() - started)


async def _gather(demo: _Demo) -> tuple[int, ...]:
    demo.title("title_3")
    completed: list[int] = []
    started = demo.clock()

    async def task(n: int, delay: int) -> None:
        completed.append(await demo.task(n, delay, started))

    await asyncio.gather(task(1, 2), task(2, 3), task(3, 1))
    return tuple(completed)


async def _aiohttp(demo: _Demo) -> None:
    demo.title("title_4")
    urls = [demo.url(f"/posts/{n}") for n in (1, 2, 3)]
    started = demo.clock()
    # fetch_all is the tutorial's gather over fetch(url), with one shared session.
    results = await fetch_all(urls, concurrency=len(urls), body="text")
    elapsed = demo.clock() - started
    for n, result in enumerate(results, 1):
        if not result.ok or result.body is None:
            raise DemoRequestError(f"demo request to {result.url} failed: {result.error}")
        demo.say("response_line", n=n, data=result.body.value[:50])
    demo.say("fetched_together", elapsed=elapsed)


async def _create_task(demo: _Demo, scale: float) -> None:
    demo.title("title_5")

    async def background_task() -> None:
        await demo.get("/delay/2")
        demo.say("background_done")

    # A TaskGroup rather than a bare create_task: if the demo is interrupted, the
    # background request is cancelled with it instead of being left orphaned.
    async with asyncio.TaskGroup() as group:
        task = group.create_task(background_task())
        demo.say("main_running")
        await asyncio.sleep(1 * scale)
        demo.say("main_done")
        await task


async def _queue(demo: _Demo, items: int = 5) -> tuple[int, ...]:
    demo.title("title_6")
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def producer() -> None:
        for i in range(items):
            await demo.get("/delay/1")  # the tutorial's asyncio.sleep(1), done by the server
            await queue.put(i)
            demo.say("produced", item=i)
        # The tutorial's consumer loops forever; a sentinel lets this one finish.
        await queue.put(None)

    async def consumer() -> tuple[int, ...]:
        processed: list[int] = []
        while (item := await queue.get()) is not None:
            await demo.post_json("/posts", {"data": item})
            demo.say("consumed", item=item)
            processed.append(item)
        return tuple(processed)

    async with asyncio.TaskGroup() as group:
        group.create_task(producer())
        consumed = group.create_task(consumer())
    demo.say("queue_closed", count=len(consumed.result()))
    return consumed.result()


async def _bulk_sequential(demo: _Demo, count: int) -> tuple[int, float]:
    """Time a small sample one request at a time and extrapolate: all of it would be slow."""
    sample = min(BULK_SAMPLE, count)
    started = demo.clock()
    for i in range(sample):
        await demo.get(f"/bulk/sample-{i}")
    elapsed = demo.clock() - started
    estimate = elapsed / sample * count
    demo.say("bulk_sequential", sample=sample, elapsed=elapsed, count=count, estimate=estimate)
    return sample, estimate


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def _bulk_concurrent(demo: _Demo, count: int, concurrency: int) -> tuple[float, int]:
    urls = (demo.url(f"/bulk/{i}") for i in range(count))
    ok = 0
    async with Fetcher(
        concurrency=concurrency, per_host=concurrency, timeouts=_timeouts(), body="none"
    ) as fetcher:
        demo.server.reset_peak()
        with _progress(demo.console) as progress:
            bar = progress.add_task(demo.msg("bulk_progress"), total=count)
            started = demo.clock()
            async for result in fetcher.stream(urls):
                ok += result.ok
                progress.advance(bar)
            elapsed = demo.clock() - started
    return elapsed, ok


async def _bulk(demo: _Demo, count: int, concurrency: int, scale: float) -> _BulkFigures:
    demo.title("title_bulk", count=count, latency_ms=BULK_LATENCY_S * scale * 1000)
    sample, estimate = await _bulk_sequential(demo, count)
    elapsed, ok = await _bulk_concurrent(demo, count, concurrency)
    peak = demo.server.peak_in_flight
    demo.say("bulk_concurrent", concurrency=concurrency, elapsed=elapsed, ok=ok, count=count)
    demo.say("bulk_peak", peak=peak)
    speedup = estimate / elapsed
    demo.say("speedup", speedup=speedup)
    return _BulkFigures(sample, estimate, elapsed, ok, peak, speedup)


def _timeouts() -> Timeouts:
    return Timeouts(total=_TIMEOUT_S, connect=10.0, read=_TIMEOUT_S)


async def run_demo(
    *,
    lang: str = "ko",
    scale: float = 1.0,
    bulk: int = DEFAULT_BULK,
    console: Console,
    concurrency: int = DEFAULT_BULK_CONCURRENCY,
) -> DemoReport:
    """Walk the tutorial's six sections and a bulk run against an embedded server.

    ``scale`` multiplies every delay (0.02 runs the whole demo in about a second);
    ``concurrency`` bounds the bulk run. Raises ConfigError for a bad option.
    """
    check_options(lang=lang, scale=scale, bulk=bulk, concurrency=concurrency)
    msg = messages(lang)
    async with (
        DemoServer(scale=scale) as server,
        Fetcher(
            concurrency=_WALKTHROUGH_CONCURRENCY,
            per_host=_WALKTHROUGH_CONCURRENCY,
            timeouts=_timeouts(),
            body="text",
        ) as fetcher,
    ):
        demo = _Demo(server=server, fetcher=fetcher, console=console, msg=msg)
        console.print(msg("intro", url=server.url, scale=scale), markup=False, highlight=False)
        timing = await _sync_vs_async(demo)
        await _async_await(demo)
        order = await _gather(demo)
        await _aiohttp(demo)
        await _create_task(demo, scale)
        consumed = await _queue(demo)
        figures = await _bulk(demo, bulk, concurrency, scale)
    return _report(lang, scale, bulk, concurrency, timing, order, consumed, figures)


def _report(
    lang: str,
    scale: float,
    bulk: int,
    concurrency: int,
    timing: _SyncVsAsync,
    order: tuple[int, ...],
    consumed: tuple[int, ...],
    figures: _BulkFigures,
) -> DemoReport:
    return DemoReport(
        lang=lang,
        scale=scale,
        sequential_s=timing.sequential_s,
        concurrent_s=timing.concurrent_s,
        sequential_peak_in_flight=timing.sequential_peak,
        concurrent_peak_in_flight=timing.concurrent_peak,
        gather_order=order,
        queue_consumed=consumed,
        bulk_requests=bulk,
        bulk_sample=figures.sample,
        bulk_sequential_estimate_s=figures.estimate_s,
        bulk_concurrent_s=figures.concurrent_s,
        bulk_concurrency=concurrency,
        bulk_ok=figures.ok,
        bulk_peak_in_flight=figures.peak,
        speedup=figures.speedup,
    )
