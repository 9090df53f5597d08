"""``asyncfetch enqueue | worker | collect``: one job shared by workers through Redis.

enqueue streams request specs into the job's stream and stores the job's settings once;
each worker runs them with the same engine as ``fetch``; collect writes the results to
any sink. ``asyncfetch status`` lives in cli/status.py.

Test hook: when ``ASYNCFETCH_TEST_CRASH_ON`` is set, a worker that is handed a request
whose URL contains its value dies at once with ``os._exit(70)``, as a crashing worker
would (no cleanup, no acknowledgement). Only the worker command reads it; tests use it
to prove redelivery and dead-lettering against real crashes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from .._errors import ConfigError
from .._models import Request, Response, RunStats
from .._settings import Settings, Timeouts
from ..pipeline.executor import RequestExecutor
from ..pipeline.runner import Runner
from ..report.progress import ProgressReporter, summary_lines
from ..transport.base import Transport
from .exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .fetch import fetch_command
from .job import FetchJob
from .run import chain_inputs, check_inputs, run_with_exit_codes, signal_handler

if TYPE_CHECKING:  # redis is imported lazily, so that --help stays fast
    from ..queues.redis.host_limits import SharedLimits
    from ..queues.redis.jobs import JobKeys, Redis
    from ..queues.redis.worker_queue import RedisWorkQueue

# fetch's options that say how a job's requests are made. They are fetch_command's own
# parameter objects, so both commands take the same spellings, checks and defaults.
_REQUEST_OPTIONS = (
    "input_format",
    "concurrency",
    "per_host",
    "rate",
    "per_host_rate",
    "adapt",
    "method",
    "headers",
    "data",
    "timeout",
    "connect_timeout",
    "read_timeout",
    "retries",
    "retry_non_idempotent",
    "max_redirects",
    "body_mode",
    "max_body",
    "include_headers",
    "insecure",
    "cacert",
    "proxy",
    "engine",
)
# What workers need from enqueue: -X, -H and -d are already part of each queued request.
_STORED_OPTIONS = tuple(
    name for name in _REQUEST_OPTIONS if name not in ("input_format", "method", "headers", "data")
)
_LOCAL_DEFAULTS: dict[str, Any] = {
    "inputs": (),
    "input_format": None,
    "output": None,
    "output_format": None,
    "method": None,
    "headers": (),
    "data": None,
    "save_dir": None,
    "progress": None,
    "quiet": False,
    "summary_json": None,
    "fail_on_error": False,
}
_ENQUEUE_BATCH = 500
CRASH_HOOK_ENV = "ASYNCFETCH_TEST_CRASH_ON"
CRASH_EXIT_CODE = 70


def _fetch_params(*names: str) -> list[click.Parameter]:
    by_name = {param.name: param for param in fetch_command.params}
    return [by_name[name] for name in names]


redis_option = click.option(
    "--redis",
    "redis_url",
    envvar="ASYNCFETCH_REDIS",
    required=True,
    metavar="URL",
    help="redis:// or rediss:// URL; $ASYNCFETCH_REDIS keeps a password out of `ps`.",
)
job_option = click.option("--job", required=True, help="The job's name, e.g. crawl-1.")


def _say(console: Console, text: str) -> None:
    console.print(f"asyncfetch: {text}", highlight=False, markup=False)


# -- enqueue --------------------------------------------------------------------------


@click.command("enqueue")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@redis_option
@job_option
@click.option("--append", is_flag=True, help="Add to an existing job instead of refusing.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def enqueue_command(
    inputs: tuple[str, ...],
    redis_url: str,
    job: str,
    append: bool,
    quiet: bool,
    **request_options: Any,
) -> None:
    """Put every request in INPUT into JOB, with the settings all workers will use.

    INPUT is read like fetch's (URL lines, JSONL specs or CSV; '-' = stdin). Invalid lines
    are queued too and become invalid_input records, one per line. --rate and
    --per-host-rate hold across all workers; -c and --per-host apply to each worker.
    """
    if not inputs and sys.stdin.isatty():
        click.echo("asyncfetch: no INPUT given and stdin is a terminal; try --help", err=True)
        sys.exit(EXIT_USAGE)
    options = {**_LOCAL_DEFAULTS, **request_options, "inputs": inputs or ("-",), "quiet": quiet}
    fetch_job = FetchJob.from_options(options)
    console = Console(stderr=True)
    coroutine = _enqueue(fetch_job, redis_url, job, append, console)
    sys.exit(run_with_exit_codes(coroutine, console))


enqueue_command.params.extend(_fetch_params(*_REQUEST_OPTIONS))


async def _enqueue(
    fetch_job: FetchJob,
    redis_url: str,
    job: str,
    append: bool,
    console: Console,
) -> int:
    from ..queues.redis.jobs import (
        JobKeys,
        connected,
        create_job,
        finish_enqueue,
        redact_redis_url,
    )

    keys = JobKeys(job)
    # Validate every setting, -X and -H included, before anything is written.
    fetch_job.settings()
    fetch_job.request_defaults()
    check_inputs(fetch_job)
    stored = {name: getattr(fetch_job, name) for name in _STORED_OPTIONS}
    stored["cacert"] = None if fetch_job.cacert is None else str(fetch_job.cacert)
    async with connected(redis_url) as client:
        await create_job(client, keys, stored, append)
        count = await _add_all(client, keys, fetch_job)
        await finish_enqueue(client, keys)
    if not fetch_job.quiet:
        where = redact_redis_url(redis_url)
        _say(console, f"enqueued {count} requests into job {job} on {where}")
    return 0


async def _add_all(client: Redis, keys: JobKeys, fetch_job: FetchJob) -> int:
    from ..queues.redis.codec import encode_request
    from ..queues.redis.jobs import add_requests

    count = 0
    batch: list[bytes] = []
    async for item in chain_inputs(fetch_job):
        batch.append(encode_request(item))
        if len(batch) >= _ENQUEUE_BATCH:
            await add_requests(client, keys, batch)
            count, batch = count + len(batch), []
    if batch:
        await add_requests(client, keys, batch)
        count += len(batch)
    return count


# -- worker ---------------------------------------------------------------------------


@click.command("worker")
@redis_option
@job_option
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Requests in flight in this worker (default: the job's -c).",
)
@click.option(
    "--name",
    help="Consumer name (default HOST-PID). A worker restarted under the same name first"
    " finishes the requests it held.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may stay with a silent worker before others reclaim it"
    " (default: the worst-case time of one request under the job's settings).",
)
@click.option(
    "--max-deliveries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Deliveries without a result after which a request is dead-lettered.",
)
@click.option("--follow", is_flag=True, help="Keep waiting for work after the job completes.")
@click.option("--progress/--no-progress", default=None, help="Progress display.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary.")
def worker_command(
    redis_url: str,
    job: str,
    concurrency: int | None,
    name: str | None,
    lease: float | None,
    max_deliveries: int,
    follow: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Work on JOB until it is complete: fetch its requests, commit results, XACK.

    Several workers on several machines may share a job. Exit codes: 0 the job is
    complete, 2 usage error or unknown job, 3 Redis failed, 130 interrupted.
    """
    local = {"concurrency": concurrency, "quiet": quiet, "progress": progress}
    worker = _Worker(redis_url, job, local, name or f"{socket.gethostname()}-{os.getpid()}")
    worker.lease, worker.max_deliveries, worker.follow = lease, max_deliveries, follow
    console = Console(stderr=True)
    sys.exit(run_with_exit_codes(worker.run(console), console))


class _Worker:
    def __init__(self, redis_url: str, job: str, local: dict[str, Any], name: str) -> None:
        self.redis_url = redis_url
        self.job = job
        self.local = local
        self.name = name
        self.lease: float | None = None
        self.max_deliveries = 5
        self.follow = False

    def fetch_job(self, stored: dict[str, Any]) -> FetchJob:
        options = {**_LOCAL_DEFAULTS, **{k: stored.get(k) for k in _STORED_OPTIONS}}
        options["cacert"] = None if options["cacert"] is None else Path(options["cacert"])
        options["quiet"] = self.local["quiet"]
        options["progress"] = self.local["progress"]
        if self.local["concurrency"] is not None:
            options["concurrency"] = self.local["concurrency"]
        return FetchJob.from_options(options)

    async def run(self, console: Console) -> int:
        from ..queues.redis.jobs import JobKeys, connected, load_options
        from ..transport.factory import open_transport, resolve_engine

        keys = JobKeys(self.job)
        async with connected(self.redis_url) as client, AsyncExitStack() as stack:
            stored = await load_options(client, keys)
            if stored is None:
                raise ConfigError(f"no job named {self.job!r}; run asyncfetch enqueue first")
            fetch_job = self.fetch_job(stored)
            settings = fetch_job.settings()
            engine = resolve_engine(fetch_job.engine, settings)
            transport = open_transport(engine, settings)
            stack.push_async_callback(transport.aclose)
            runner, queue = self._runner(client, keys, stored, settings, transport)
            stack.push_async_callback(queue.aclose)
            stats = await _run_with_signals(runner, console, settings, fetch_job)
            error = queue.feeder_error()
            if error is not None:
                raise error
        extra = {"engine": engine, "worker": self.name, "reclaimed": queue.reclaimed}
        extra["dead_lettered"] = queue.dead_lettered
        return _report(runner, stats, console, extra, quiet=fetch_job.quiet)

    def _runner(
        self,
        client: Redis,
        keys: JobKeys,
        stored: dict[str, Any],
        settings: Settings,
        transport: Transport,
    ) -> tuple[Runner, RedisWorkQueue]:
        from ..queues.redis.worker_queue import (
            RedisResultStore,
            RedisWorkQueue,
            WorkerOptions,
            default_lease_s,
        )

        concurrency = settings.limits.concurrency
        options = WorkerOptions(
            consumer=self.name,
            prefetch=concurrency,
            lease_s=self.lease or default_lease_s(settings),
            max_deliveries=self.max_deliveries,
            follow=self.follow,
        )
        queue = RedisWorkQueue(client, keys, options)
        executor = _executor(transport, settings, _shared_rate(client, keys, stored))
        store = RedisResultStore(client, keys, self.name, on_commit=queue.committed)
        return Runner(queue, store, executor, concurrency=concurrency), queue


def _shared_rate(client: Redis, keys: JobKeys, stored: dict[str, Any]) -> SharedLimits | None:
    from ..queues.redis.host_limits import shared_limits

    return shared_limits(client, keys, stored)


def _executor(
    transport: Transport, settings: Settings, rate_limiter: SharedLimits | None
) -> RequestExecutor:
    crash_on = os.environ.get(CRASH_HOOK_ENV)
    if crash_on:
        transport = _CrashingTransport(crash_on, transport)
    executor = RequestExecutor(transport, settings, rate_limiter=rate_limiter)
    if rate_limiter is not None:
        rate_limiter.follow(executor.hosts)
    return executor


class _CrashingTransport:
    """The test hook: a real crash, so redelivery and dead-lettering run for real."""

    def __init__(self, crash_on: str, inner: Transport) -> None:
        self.name = inner.name
        self._crash_on = crash_on
        self._inner = inner

    async def send(self, request: Request, *, timeouts: Timeouts, max_body: int) -> Response:
        if self._crash_on in request.url:
            os._exit(CRASH_EXIT_CODE)
        return await self._inner.send(request, timeouts=timeouts, max_body=max_body)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _run_with_signals(
    runner: Runner, console: Console, settings: Settings, fetch_job: FetchJob
) -> RunStats:
    loop = asyncio.get_running_loop()
    handler = signal_handler(runner, console, settings.grace_period, quiet=fetch_job.quiet)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler)
    try:
        async with ProgressReporter(runner.stats.snapshot, console, mode=fetch_job.progress_mode):
            return await runner.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _report(
    runner: Runner, stats: RunStats, console: Console, extra: dict[str, Any], *, quiet: bool
) -> int:
    if runner.stopping:
        extra["interrupted"] = True
    if not quiet:
        for line in summary_lines(stats, extra):
            _say(console, line)
    return EXIT_INTERRUPTED if runner.stopping else EXIT_OK


# -- collect --------------------------------------------------------------------------


@click.command("collect")
@redis_option
@job_option
@click.option("--follow", is_flag=True, help="Keep collecting until the job is complete.")
@click.option(
    "--dead/--no-dead",
    default=True,
    show_default=True,
    help="Write a record (error kind internal) for each dead-lettered request.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def collect_command(
    redis_url: str,
    job: str,
    follow: bool,
    dead: bool,
    quiet: bool,
    output: str | None,
    output_format: str | None,
) -> None:
    """Write JOB's results to -o OUT (JSONL, CSV or SQLite): one record per request id.

    May run while the job is still going: without --follow it writes what is there now.
    """
    console = Console(stderr=True)
    coroutine = _collect(redis_url, job, follow, dead, output, output_format, console, quiet)
    sys.exit(run_with_exit_codes(coroutine, console))


collect_command.params.extend(_fetch_params("output", "output_format"))


async def _collect(
    redis_url: str,
    job: str,
    follow: bool,
    dead: bool,
    output: str | None,
    output_format: str | None,
    console: Console,
    quiet: bool,
) -> int:
    from ..queues.redis.collect import ResultReader
    from ..queues.redis.jobs import JobKeys, connected, load_options
    from ..sinks import open_sink

    keys = JobKeys(job)
    async with connected(redis_url) as client:
        stored = await load_options(client, keys)
        if stored is None:
            raise ConfigError(f"no job named {job!r}")
        include_headers = bool(stored.get("include_headers"))
        sink = open_sink(output, output_format=output_format, include_headers=include_headers)
        reader = ResultReader(client, keys, follow=follow, include_dead=dead)
        try:
            async for batch in reader.batches():
                await sink.write(batch)
                await sink.flush()
            await sink.flush(durable=True)
        finally:
            await sink.aclose()
    counts = reader.counts
    if not quiet:
        _say(
            console,
            f"collected {counts.written} records ({counts.dead_lettered} dead-lettered,"
            f" {counts.duplicates} duplicates skipped)",
        )
    return 0


commands = [enqueue_command, worker_command, collect_command]
