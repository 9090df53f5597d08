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

from .._errors import (
    ConfigError,
    InputError,
    OutputClosed,
    OutputError,
    QueueError,
    ResumeError,
)
from .._models import InvalidInput, Request, Response, RunStats, request_id
from .._settings import Settings
from ..pipeline.executor import RequestExecutor, SaveBody
from ..pipeline.runner import Runner
from ..pipeline.stats import StatsCollector
from ..policy.limits import GcraRateMeter
from ..queues.memory import MemoryQueue
from ..report import politeness
from ..report.progress import (
    SUMMARY_HOSTS,
    ProgressReporter,
    host_dicts,
    host_lines,
    summary_dict,
    summary_lines,
)
from ..runtime.eventloop import run_coroutine
from ..runtime.gc_tuning import fewer_collections
from ..sinks import _resolve_format as resolve_output_format
from ..sources.batching import Flattened
from ..transport.factory import open_transport, resolve_engine
from .advice import empty_run_line, interrupted_lines, limit_lines, output_lines
from .console import LazyConsole, Printer
from .exit_codes import (
    EXIT_CLOSED_PIPE,
    EXIT_FAILURES,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from .job import FetchJob
from .resume_wiring import open_store

if TYPE_CHECKING:
    from rich.console import Console

    from ..report.live import RunWatch


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
        # One line, never wrapped: stderr on a pipe is 80 columns to rich, and a long path
        # cut in two can no longer be read or matched.
        console.print(f"asyncfetch: {error}", highlight=False, markup=False, soft_wrap=True)
        return EXIT_USAGE
    except OutputClosed:
        # `| head` read what it wanted: end as a Unix filter does, without a word.
        silence_stdout()
        return EXIT_CLOSED_PIPE
    except (OutputError, QueueError) as error:
        hint = fatal_hint if isinstance(error, OutputError) else ""
        message = f"asyncfetch: fatal: {error}{hint}"
        console.print(message, highlight=False, markup=False, soft_wrap=True)
        return EXIT_FATAL
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for the closed pipe is dropped
    instead of failing once more (and loudly) when the process exits."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        return  # no descriptor behind stdout: nothing buffered at the OS level either


def chain_inputs(job: FetchJob) -> Flattened[Request | InvalidInput]:
    """Every input's requests, one at a time: :func:`chain_input_batches` flattened."""
    return Flattened(chain_input_batches(job))


async def chain_input_batches(job: FetchJob) -> AsyncIterator[list[Request | InvalidInput]]:
    """Every input's requests, input after input, in the lists open_source_batches reads."""
    from ..sources import open_source_batches

    for path in job.inputs:
        batches = open_source_batches(
            path,
            input_format=job.input_format,
            defaults=job.request_defaults(),
            refuse_binary=True,
        )
        async with aclosing(batches):
            async for batch in batches:
                yield batch


def _body_saver(settings: Settings) -> SaveBody | None:
    """The body saver of ``--save-dir``; raises OutputError now if the directory cannot
    take files, before the output is opened or any request is made."""
    if settings.body.save_dir is None:
        return None
    from ..sinks import BodyStore

    store = BodyStore(settings.body.save_dir, names=settings.body.save_names)
    store.check_writable()

    async def save(request: Request, response: Response) -> str:
        # A URL-named body takes the URL's path as it is only for a plain GET of the URL.
        plain = (
            request.body is None
            and request.method == "GET"
            and request.id == request_id("GET", request.url, None)
        )
        return await store.save(
            request.id, request.url, response.header("Content-Type"), response.body, plain=plain
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
    # Every check that can fail comes before the output is opened or a request is made.
    settings = job.settings()
    job.request_defaults()  # validates -X and -H before anything starts
    engine = resolve_engine(job.engine, settings)
    check_inputs(job)
    output_format = resolve_output_format(job.output, job.output_format)
    save_body = _body_saver(settings)
    stats = StatsCollector()
    watch = open_watch(job)
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
            save_body=save_body,
        )
        stack.push_async_callback(executor.aclose)
        runner = Runner(
            queue,
            wiring.store,
            executor,
            concurrency=settings.limits.concurrency,
            stats=stats,
            on_result=None if watch is None else watch.on_result,
        )
        if job.metrics_port is not None and watch is not None:
            await start_metrics(job, stats, watch, console, stack)
        result = await _run_with_signals(
            job, runner, console, settings, wiring.already_done, executor.hosts.throttled_hosts
        )
        hosts = executor.hosts.reports()
        input_error = queue.feeder_error()
        if input_error is not None:
            raise input_error
        if not runner.stopping:
            await wiring.finished()
    waits = executor.waits.as_dict()
    extra = {
        **wiring.extra,
        **write_run_report(job, watch, wiring.already_done),
        "output": job.output or "-",
        "output_format": output_format,
        "limit_waits_s": {name: round(value, 3) for name, value in waits.items()},
        "host_limits": politeness.host_rows(hosts),
    }
    notes = politeness.host_lines(hosts) + wiring.notes(result)
    notes += output_lines(job, output_format, result)
    notes += limit_lines(job, waits, result)
    if "report" in extra:
        notes.append(f"report: {extra['report']}")
    if runner.stopping:
        notes += interrupted_lines(job, wiring.output is not None)
    return _finish(job, runner, result, console, engine, extra, notes, watch)


def open_watch(job: FetchJob) -> RunWatch | None:
    """Per-host figures (and the report's) when anything will show them."""
    if not job.watches_hosts:
        return None
    from ..report.live import RunWatch

    return RunWatch(full_report=job.report is not None)


async def start_metrics(
    job: FetchJob, stats: StatsCollector, watch: RunWatch, console: Printer, stack: AsyncExitStack
) -> None:
    """``--metrics-port``: serve the run's metrics until ``stack`` closes."""
    from ..report.metrics import MetricsServer

    assert job.metrics_port is not None
    server = MetricsServer(stats, watch.hosts, job.metrics_port, job.metrics_host)
    await stack.enter_async_context(server)
    if not job.quiet:
        console.print(f"asyncfetch: metrics on {server.url}", highlight=False, markup=False)


def write_run_report(job: FetchJob, watch: RunWatch | None, already_done: int) -> dict[str, Any]:
    """Write ``--report``'s page; the summary's ``report`` entry, or nothing."""
    if job.report is None or watch is None or watch.aggregate is None:
        return {}
    from ..report.build import write_report

    notes = []
    if already_done:
        notes.append(
            f"This page shows this run's requests; {already_done:,} were done by an earlier"
            " run of the same command (asyncfetch report OUT shows them all)."
        )
    source = f"fetch {' '.join(job.inputs)} → {job.output or 'stdout'}"
    write_report(watch.aggregate.data(notes), job.report, source=source)
    return {"report": str(job.report)}


def check_inputs(job: FetchJob) -> None:
    """Refuse a missing input, or a binary file given by mistake, before anything runs."""
    from pathlib import Path

    from ..sources.reader import check_not_binary

    for path in job.inputs:
        if path != "-" and not Path(path).exists():
            raise InputError(f"input file not found: {path}")
        if path != "-":
            check_not_binary(path)


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
        async with progress_display(job, runner, console, throttled):
            return await runner.run()
    finally:
        if estimator is not None:
            estimator.cancel()
            await asyncio.gather(estimator, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def progress_display(
    job: FetchJob, runner: Runner, console: LazyConsole, throttled: Callable[[], int] | None
) -> AbstractAsyncContextManager[object]:
    """The run's progress bar or lines, as ``job`` asks (none for "off")."""
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
    watch: RunWatch | None = None,
) -> int:
    extra = {"engine": engine, **(extra or {})}
    if runner.stopping:
        extra["interrupted"] = True
    busiest = [] if watch is None else watch.hosts.busiest(SUMMARY_HOSTS)
    slowest = [] if watch is None else watch.hosts.slowest(SUMMARY_HOSTS)
    if job.summary_json is not None:
        summary = summary_dict(stats, extra)
        summary["hosts"] = {"busiest": host_dicts(busiest), "slowest": host_dicts(slowest)}
        try:
            job.summary_json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        except OSError as error:
            raise OutputError(
                f"cannot write summary {job.summary_json}: {error.strerror}"
            ) from error
    if not job.quiet:
        shown = (
            [empty_run_line(stats)] if not stats.done else summary_lines(stats, {"engine": engine})
        )
        hosts = host_lines(busiest, slowest) if stats.done else []
        for line in shown + hosts + (notes or []):
            # Not wrapped: a table row cut at 80 columns (stderr on a pipe) reads badly.
            console.print(f"asyncfetch: {line}", highlight=False, markup=False, soft_wrap=True)
    if runner.stopping:
        return EXIT_INTERRUPTED
    if job.fail_on_error and stats.failed:
        return EXIT_FAILURES
    return EXIT_OK
