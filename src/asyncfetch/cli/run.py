"""Run a FetchJob: wire source → queue → engine → sink, handle signals, map errors to exits.

This is the one place where library errors become exit codes and messages.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, nullcontext
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import ConfigError, InputError, OutputError, QueueError, ResumeError
from .._models import InvalidInput, Request, Response, RunStats
from .._settings import Settings
from ..pipeline.executor import RequestExecutor, SaveBody
from ..pipeline.runner import Runner
from ..pipeline.stats import StatsCollector
from ..policy.limits import GcraRateMeter
from ..queues.memory import MemoryQueue
from ..report.politeness import host_lines, host_rows
from ..report.progress import ProgressReporter, summary_dict, summary_lines
from ..runtime.eventloop import run_coroutine
from ..runtime.gc_tuning import fewer_collections
from ..sources.batching import Flattened
from ..transport.factory import open_transport, resolve_engine
from .console import LazyConsole, Printer
from .exit_codes import EXIT_FAILURES, EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .job import FetchJob
from .resume_wiring import open_store

if TYPE_CHECKING:
    from rich.console import Console


def run_fetch_job(job: FetchJob, console: Console | None = None) -> int:
    """Run ``job`` to completion; return the process exit code."""
    lazy = LazyConsole(console)  # rich is imported only if something is shown
    hint = ""
    if job.resume:
        hint = " (the journal is consistent: fix this and run the same command to resume)"
    return run_with_exit_codes(_fetch(job, lazy), lazy, fatal_hint=hint)


def run_with_exit_codes(
    coroutine: Coroutine[Any, Any, int], console: Printer, *, fatal_hint: str = ""
) -> int:
    """Run ``coroutine`` (which returns an exit code); map library errors to exit codes."""
    try:
        with fewer_collections():
            return run_coroutine(coroutine)
    except (ConfigError, InputError, ResumeError) as error:
        console.print(f"asyncfetch: {error}", highlight=False, markup=False)
        return EXIT_USAGE
    except (OutputError, QueueError) as error:
        hint = fatal_hint if isinstance(error, OutputError) else ""
        console.print(f"asyncfetch: fatal: {error}{hint}", highlight=False, markup=False)
        return EXIT_FATAL
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def chain_inputs(job: FetchJob) -> Flattened[Request | InvalidInput]:
    """Every input's requests, one at a time: :func:`chain_input_batches` flattened."""
    return Flattened(chain_input_batches(job))


async def chain_input_batches(job: FetchJob) -> AsyncIterator[list[Request | InvalidInput]]:
    """Every input's requests, input after input, in the lists open_source_batches reads."""
    from ..sources import open_source_batches

    for path in job.inputs:
        batches = open_source_batches(
            path, input_format=job.input_format, defaults=job.request_defaults()
        )
        async with aclosing(batches):
            async for batch in batches:
                yield batch


def _body_saver(settings: Settings) -> SaveBody | None:
    if settings.body.save_dir is None:
        return None
    from ..sinks import BodyStore

    store = BodyStore(settings.body.save_dir)

    async def save(request: Request, response: Response) -> str:
        return await store.save(
            request.id, request.url, response.header("Content-Type"), response.body
        )

    return save


async def _estimate_total(job: FetchJob, runner: Runner, already_done: int) -> None:
    from ..sources import estimate_total

    total = 0
    for path in job.inputs:
        count = await asyncio.to_thread(estimate_total, path, job.input_format)
        if count is None:
            return
        total += count
    runner.stats.total = max(total - already_done, 0)


async def _fetch(job: FetchJob, console: LazyConsole) -> int:
    settings = job.settings()
    job.request_defaults()  # validates -X and -H before anything starts
    engine = resolve_engine(job.engine, settings)
    check_inputs(job)
    stats = StatsCollector()
    async with AsyncExitStack() as stack:
        wiring = await open_store(job, stack, stats, chain_input_batches(job), console)
        transport = open_transport(engine, settings)
        stack.push_async_callback(transport.aclose)
        queue = MemoryQueue(batches=wiring.batches, maxsize=settings.limits.concurrency * 2)
        stack.push_async_callback(queue.aclose)
        rate = settings.limits.rate
        executor = RequestExecutor(
            transport,
            settings,
            rate_limiter=GcraRateMeter(rate) if rate else None,
            save_body=_body_saver(settings),
        )
        stack.push_async_callback(executor.aclose)
        runner = Runner(
            queue, wiring.store, executor, concurrency=settings.limits.concurrency, stats=stats
        )
        result = await _run_with_signals(
            job, runner, console, settings, wiring.already_done, executor.hosts.throttled_hosts
        )
        hosts = executor.hosts.reports()
        input_error = queue.feeder_error()
        if input_error is not None:
            raise input_error
        if not runner.stopping:
            await wiring.finished()
    notes = host_lines(hosts) + wiring.notes(result)
    extra = {**(wiring.extra or {}), "hosts": host_rows(hosts)}
    return _finish(job, runner, result, console, engine, extra, notes)


def check_inputs(job: FetchJob) -> None:
    from pathlib import Path

    for path in job.inputs:
        if path != "-" and not Path(path).exists():
            raise InputError(f"input file not found: {path}")


async def _run_with_signals(
    job: FetchJob,
    runner: Runner,
    console: LazyConsole,
    settings: Settings,
    already_done: int,
    throttled: Callable[[], int],
) -> RunStats:
    loop = asyncio.get_running_loop()
    handler = signal_handler(runner, console, settings.grace_period, quiet=job.quiet)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler)
    # The total only feeds the progress display: without one, do not read the input twice.
    estimator = None
    if job.progress_mode != "off":
        estimator = asyncio.create_task(_estimate_total(job, runner, already_done))
    try:
        async with _progress(job, runner, console, throttled):
            return await runner.run()
    finally:
        if estimator is not None:
            estimator.cancel()
            await asyncio.gather(estimator, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _progress(
    job: FetchJob, runner: Runner, console: LazyConsole, throttled: Callable[[], int]
) -> AbstractAsyncContextManager[object]:
    # "off" shows nothing, so no reporter: its console would import rich for nothing.
    if job.progress_mode == "off":
        return nullcontext()
    return ProgressReporter(
        runner.stats.snapshot,
        console.console,
        mode=job.progress_mode,
        throttled=throttled,
    )


def signal_handler(
    runner: Runner, console: Printer, grace_period: float, *, quiet: bool
) -> Callable[[], None]:
    def on_signal() -> None:
        if not runner.stopping:
            if not quiet:
                console.print(
                    "asyncfetch: stopping; finishing requests in flight"
                    f" (up to {grace_period:.0f} s). Press Ctrl-C again to abort them.",
                    highlight=False,
                )
            runner.stop(grace_period)
        else:
            runner.cancel()

    return on_signal


def _finish(
    job: FetchJob,
    runner: Runner,
    stats: RunStats,
    console: Printer,
    engine: str,
    extra: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> int:
    extra = {"engine": engine, **(extra or {})}
    if runner.stopping:
        extra["interrupted"] = True
    if job.summary_json is not None:
        try:
            job.summary_json.write_bytes(
                orjson.dumps(summary_dict(stats, extra), option=orjson.OPT_INDENT_2)
            )
        except OSError as error:
            raise OutputError(
                f"cannot write summary {job.summary_json}: {error.strerror}"
            ) from error
    if not job.quiet:
        # The hosts are in the JSON as rows, and for people in the notes as lines.
        shown = {key: value for key, value in extra.items() if key != "hosts"}
        for line in summary_lines(stats, shown) + (notes or []):
            console.print(f"asyncfetch: {line}", highlight=False, markup=False)
    if runner.stopping:
        return EXIT_INTERRUPTED
    if job.fail_on_error and stats.failed:
        return EXIT_FAILURES
    return EXIT_OK
