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

from .._errors import ConfigError
from .._models import Request, Response, RunStats
from .._options import (
    EnqueueOptions,
    JobOptions,
    Option,
    WorkerOptions,
    options_of,
    run_options_for,
    stored_options,
)
from .._settings import Settings, Timeouts
from ..pipeline.executor import RequestExecutor
from ..pipeline.runner import ResultHook, Runner
from ..report import politeness
from ..report.progress import SUMMARY_HOSTS, host_lines, summary_lines
from ..transport.base import Transport
from .console import LazyConsole, Printer
from .exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .job import FetchJob
from .options import with_options
from .run import (
    chain_input_batches,
    check_inputs,
    open_watch,
    progress_display,
    run_with_exit_codes,
    signal_handler,
    start_metrics,
)

if TYPE_CHECKING:  # redis is imported lazily, so that --help stays fast
    from ..queues.redis.enqueue import Enqueuer
    from ..queues.redis.host_limits import SharedLimits
    from ..queues.redis.jobs import JobKeys, Redis
    from ..queues.redis.worker_queue import RedisWorkQueue
    from ..report.hosts import HostSummary
    from ..report.live import RunWatch

# The options an enqueue stores for its workers (-X, -H and -d are already part of each
# queued request): the option table's, by its ``stored`` column.
_STORED = stored_options()
_ENQUEUE_BATCH = 500
_ENQUEUE_BATCH_BYTES = 4 * 1024 * 1024
CRASH_HOOK_ENV = "ASYNCFETCH_TEST_CRASH_ON"
CRASH_EXIT_CODE = 70


redis_option = with_options([JobOptions.redis_url])
job_option = with_options([JobOptions.job])


def say(console: Printer, text: str) -> None:
    console.print(f"asyncfetch: {text}", highlight=False, markup=False)


# -- enqueue --------------------------------------------------------------------------


@click.command("enqueue")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@with_options([*options_of(JobOptions), *options_of(EnqueueOptions), *run_options_for("enqueue")])
def enqueue_command(
    inputs: tuple[str, ...],
    redis_url: str,
    job: str,
    append: bool,
    resume: bool,
    quiet: bool,
    **request_options: Any,
) -> None:
    """Put every request in INPUT into JOB, with the settings all workers will use.

    INPUT is read like fetch's (URL lines, JSONL specs or CSV; '-' = stdin). Invalid lines
    are queued too and become invalid_input records, one per line. --rate and
    --per-host-rate hold across all workers; -c and --per-host apply to each worker.
    Killed or failed, the same command with --resume adds each request exactly once.
    """
    if not inputs and sys.stdin.isatty():
        click.echo("asyncfetch: no INPUT given and stdin is a terminal; try --help", err=True)
        sys.exit(EXIT_USAGE)
    options = {**request_options, "inputs": inputs or ("-",), "quiet": quiet}
    fetch_job = FetchJob.from_options(options)
    console = LazyConsole()  # rich is imported only if something is shown
    modes = {"append": append, "resume": resume}
    coroutine = _enqueue(fetch_job, redis_url, job, modes, console)
    sys.exit(run_with_exit_codes(coroutine, console))


async def _enqueue(
    fetch_job: FetchJob,
    redis_url: str,
    job: str,
    modes: dict[str, bool],
    console: Printer,
) -> int:
    from ..queues.redis.enqueue import Enqueuer, begin_enqueue
    from ..queues.redis.jobs import JobKeys, connected, finish_enqueue, redact_redis_url
    from ..resume.fingerprint import fingerprint, fingerprint_differences

    keys = JobKeys(job)
    # Validate every setting, -X and -H included, before anything is written.
    fetch_job.settings()
    fetch_job.request_defaults()
    check_inputs(fetch_job)
    stored = {option.name: _to_json(fetch_job.values[option.name]) for option in _STORED}
    identity = {**stored, **fetch_job.resume_options("redis")}
    async with connected(redis_url) as client:
        start = await begin_enqueue(
            client,
            keys,
            stored,
            lambda salt: fingerprint(fetch_job.inputs, identity, salt),
            fingerprint_differences,
            **modes,
        )
        enqueuer = Enqueuer(client, keys, start or 0)
        if start is not None:
            await _add_all(enqueuer, fetch_job, skip=start)
            await finish_enqueue(client, keys)
    if not fetch_job.quiet:
        where = redact_redis_url(redis_url)
        earlier = "all" if start is None else f"{start}"
        note = f" ({earlier} enqueued by an earlier run)" if start != 0 else ""
        say(console, f"enqueued {enqueuer.added} requests into job {job} on {where}{note}")
    return 0


async def _add_all(enqueuer: Enqueuer, fetch_job: FetchJob, *, skip: int) -> None:
    """Add the input's requests after the first ``skip``, in batches bounded in count and
    bytes (a batch is one atomic script call)."""
    from ..queues.redis.codec import encode_request

    batch: list[bytes] = []
    size = 0
    async for items in chain_input_batches(fetch_job):
        if skip >= len(items):
            skip -= len(items)
            continue
        for item in items[skip:]:
            batch.append(payload := encode_request(item))
            size += len(payload)
            if len(batch) >= _ENQUEUE_BATCH or size >= _ENQUEUE_BATCH_BYTES:
                await enqueuer.add(batch)
                batch, size = [], 0
        skip = 0
    if batch:
        await enqueuer.add(batch)


# -- worker ---------------------------------------------------------------------------


@click.command("worker")
@with_options([*options_of(JobOptions), *options_of(WorkerOptions), *run_options_for("worker")])
def worker_command(
    redis_url: str,
    job: str,
    concurrency: int | None,
    name: str | None,
    lease: float,
    max_deliveries: int,
    follow: bool,
    progress: bool | None,
    quiet: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Work on JOB until it is complete: fetch its requests, commit results, XACK.

    Several workers on several machines may share a job. Exit codes: 0 the job is
    complete, 2 usage error or unknown job, 3 Redis failed, 130 interrupted.
    """
    local: dict[str, Any] = {"concurrency": concurrency, "quiet": quiet, "progress": progress}
    local.update(metrics_port=metrics_port, metrics_host=metrics_host)
    worker = _Worker(redis_url, job, local, name or f"{socket.gethostname()}-{os.getpid()}")
    worker.lease, worker.max_deliveries, worker.follow = lease, max_deliveries, follow
    console = LazyConsole()  # rich is imported only if something is shown
    sys.exit(run_with_exit_codes(worker.run(console), console))


class _Worker:
    def __init__(self, redis_url: str, job: str, local: dict[str, Any], name: str) -> None:
        self.redis_url = redis_url
        self.job = job
        self.local = local
        self.name = name
        self.lease = WorkerOptions.lease.default
        self.max_deliveries = WorkerOptions.max_deliveries.default
        self.follow = WorkerOptions.follow.default

    def fetch_job(self, stored: dict[str, Any]) -> FetchJob:
        # An option the job has no value for (enqueued before it existed): its default.
        options = {o.name: _from_json(o, stored[o.name]) for o in _STORED if o.name in stored}
        options.update(self.local)
        if self.local["concurrency"] is None:
            del options["concurrency"]
        return FetchJob.from_options(options)

    async def run(self, console: LazyConsole) -> int:
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
            watch = open_watch(fetch_job)
            on_result = None if watch is None else watch.on_result
            runner, queue, executor = self._runner(
                client, keys, stored, settings, transport, on_result
            )
            stack.push_async_callback(queue.aclose)
            if watch is not None and fetch_job.metrics_port is not None:
                await start_metrics(fetch_job, runner.stats, watch, console, stack)
            stats = await _run_with_signals(runner, console, settings, fetch_job)
            error = queue.feeder_error()
            if error is not None:
                raise error
        extra = {"engine": engine, "worker": self.name, "reclaimed": queue.reclaimed}
        extra["dead_lettered"] = queue.dead_lettered
        limits = politeness.host_lines(executor.hosts.reports())
        return _report(runner, stats, console, extra, limits, quiet=fetch_job.quiet, watch=watch)

    def _runner(
        self,
        client: Redis,
        keys: JobKeys,
        stored: dict[str, Any],
        settings: Settings,
        transport: Transport,
        on_result: ResultHook | None,
    ) -> tuple[Runner, RedisWorkQueue, RequestExecutor]:
        from ..queues.redis.worker_queue import (
            COMMIT_LINGER_S,
            RedisResultStore,
            RedisWorkQueue,
            WorkerOptions,
        )

        concurrency = settings.limits.concurrency
        options = WorkerOptions(
            consumer=self.name,
            prefetch=concurrency,
            lease_s=self.lease,
            max_deliveries=self.max_deliveries,
            follow=self.follow,
        )
        queue = RedisWorkQueue(client, keys, options)
        executor = _executor(transport, settings, _shared_rate(client, keys, stored))
        store = RedisResultStore(
            client, keys, self.name, leases=queue.leases, on_commit=queue.committed
        )
        runner = Runner(
            queue,
            store,
            executor,
            concurrency=concurrency,
            linger_s=COMMIT_LINGER_S,
            on_result=on_result,
        )
        return runner, queue, executor


def _to_json(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


def _from_json(option: Option[Any], value: object) -> object:
    return Path(str(value)) if option.kind is Path and value is not None else value


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
    runner: Runner, console: LazyConsole, settings: Settings, fetch_job: FetchJob
) -> RunStats:
    loop = asyncio.get_running_loop()
    handler = signal_handler(runner, console, settings.grace_period, quiet=fetch_job.quiet)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler)
    try:
        async with progress_display(fetch_job, runner, console, throttled=None):
            return await runner.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _report(
    runner: Runner,
    stats: RunStats,
    console: Printer,
    extra: dict[str, Any],
    limits: list[str],
    *,
    quiet: bool,
    watch: RunWatch | None,
) -> int:
    if runner.stopping:
        extra["interrupted"] = True
    if not quiet:
        hosts = [] if watch is None else host_lines(*_hosts_shown(watch))
        # The learned per-host limits, as `fetch` gives them: shared through Redis, so each
        # worker's lines show the host's state as this worker last saw it.
        for line in summary_lines(stats, extra) + limits + hosts:
            say(console, line)
    return EXIT_INTERRUPTED if runner.stopping else EXIT_OK


def _hosts_shown(watch: RunWatch) -> tuple[list[HostSummary], list[HostSummary]]:
    return watch.hosts.busiest(SUMMARY_HOSTS), watch.hosts.slowest(SUMMARY_HOSTS)


commands = [enqueue_command, worker_command]
