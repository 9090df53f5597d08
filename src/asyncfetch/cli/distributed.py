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
from .._settings import DEFAULT_LEASE_S, Settings, Timeouts
from ..pipeline.executor import RequestExecutor
from ..pipeline.runner import ResultHook, Runner
from ..report.progress import SUMMARY_HOSTS, ProgressReporter, host_lines, summary_lines
from ..transport.base import Transport
from .exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .fetch import fetch_command
from .job import FetchJob
from .run import (
    chain_input_batches,
    check_inputs,
    open_watch,
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
_ENQUEUE_BATCH_BYTES = 4 * 1024 * 1024
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


def say(console: Console, text: str) -> None:
    console.print(f"asyncfetch: {text}", highlight=False, markup=False)


# -- enqueue --------------------------------------------------------------------------


@click.command("enqueue")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@redis_option
@job_option
@click.option("--append", is_flag=True, help="Add to an existing job instead of refusing.")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted enqueue of the same INPUT: requests already in the job are"
    " skipped, none is added twice (creates the job if it does not exist yet).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
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
    options = {**_LOCAL_DEFAULTS, **request_options, "inputs": inputs or ("-",), "quiet": quiet}
    fetch_job = FetchJob.from_options(options)
    console = Console(stderr=True)
    modes = {"append": append, "resume": resume}
    coroutine = _enqueue(fetch_job, redis_url, job, modes, console)
    sys.exit(run_with_exit_codes(coroutine, console))


enqueue_command.params.extend(_fetch_params(*_REQUEST_OPTIONS))


async def _enqueue(
    fetch_job: FetchJob,
    redis_url: str,
    job: str,
    modes: dict[str, bool],
    console: Console,
) -> int:
    from ..queues.redis.enqueue import Enqueuer, begin_enqueue
    from ..queues.redis.jobs import JobKeys, connected, finish_enqueue, redact_redis_url
    from ..resume.fingerprint import fingerprint, fingerprint_differences

    keys = JobKeys(job)
    # Validate every setting, -X and -H included, before anything is written.
    fetch_job.settings()
    fetch_job.request_defaults()
    check_inputs(fetch_job)
    stored = {name: getattr(fetch_job, name) for name in _STORED_OPTIONS}
    stored["cacert"] = None if fetch_job.cacert is None else str(fetch_job.cacert)
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
    default=DEFAULT_LEASE_S,
    show_default=True,
    help="Seconds a silent (dead) worker keeps its requests before others reclaim them."
    " Live workers renew theirs every quarter lease, so a slow request is never taken over.",
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
    console = Console(stderr=True)
    sys.exit(run_with_exit_codes(worker.run(console), console))


worker_command.params.extend(_fetch_params("metrics_port", "metrics_host"))


class _Worker:
    def __init__(self, redis_url: str, job: str, local: dict[str, Any], name: str) -> None:
        self.redis_url = redis_url
        self.job = job
        self.local = local
        self.name = name
        self.lease = DEFAULT_LEASE_S
        self.max_deliveries = 5
        self.follow = False

    def fetch_job(self, stored: dict[str, Any]) -> FetchJob:
        options = {**_LOCAL_DEFAULTS, **{k: stored.get(k) for k in _STORED_OPTIONS}}
        options["cacert"] = None if options["cacert"] is None else Path(options["cacert"])
        options["quiet"] = self.local["quiet"]
        options["progress"] = self.local["progress"]
        options["metrics_port"] = self.local["metrics_port"]
        options["metrics_host"] = self.local["metrics_host"]
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
            watch = open_watch(fetch_job)
            on_result = None if watch is None else watch.on_result
            runner, queue = self._runner(client, keys, stored, settings, transport, on_result)
            stack.push_async_callback(queue.aclose)
            if watch is not None and fetch_job.metrics_port is not None:
                await start_metrics(fetch_job, runner.stats, watch, console, stack)
            stats = await _run_with_signals(runner, console, settings, fetch_job)
            error = queue.feeder_error()
            if error is not None:
                raise error
        extra = {"engine": engine, "worker": self.name, "reclaimed": queue.reclaimed}
        extra["dead_lettered"] = queue.dead_lettered
        return _report(runner, stats, console, extra, quiet=fetch_job.quiet, watch=watch)

    def _runner(
        self,
        client: Redis,
        keys: JobKeys,
        stored: dict[str, Any],
        settings: Settings,
        transport: Transport,
        on_result: ResultHook | None,
    ) -> tuple[Runner, RedisWorkQueue]:
        from ..queues.redis.worker_queue import (
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
        runner = Runner(queue, store, executor, concurrency=concurrency, on_result=on_result)
        return runner, queue


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
    runner: Runner,
    stats: RunStats,
    console: Console,
    extra: dict[str, Any],
    *,
    quiet: bool,
    watch: RunWatch | None,
) -> int:
    if runner.stopping:
        extra["interrupted"] = True
    if not quiet:
        hosts = [] if watch is None else host_lines(*_hosts_shown(watch))
        for line in summary_lines(stats, extra) + hosts:
            say(console, line)
    return EXIT_INTERRUPTED if runner.stopping else EXIT_OK


def _hosts_shown(watch: RunWatch) -> tuple[list[HostSummary], list[HostSummary]]:
    return watch.hosts.busiest(SUMMARY_HOSTS), watch.hosts.slowest(SUMMARY_HOSTS)


commands = [enqueue_command, worker_command]
