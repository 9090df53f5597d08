"""The dispatcher against a real server: which requests start from callbacks (the fast
transport's StartsNow capability), and that the results, limits and shutdown are those of
the task path.

Each test warms the transport's connections with one run, then makes a second run whose
requests find idle connections, so they start from callbacks rather than in a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from asyncfetch._api import make_settings
from asyncfetch._models import Request, Result
from asyncfetch._settings import Settings, Timeouts
from asyncfetch.pipeline.executor import RequestExecutor
from asyncfetch.pipeline.runner import Runner
from asyncfetch.policy.retry import RetryPolicy
from asyncfetch.queues.base import Completed
from asyncfetch.queues.memory import MemoryQueue
from asyncfetch.sources import iter_requests
from asyncfetch.transport.fast.transport import FastTransport

from .recording_server import RecordingServer

FAST_RETRY = RetryPolicy(retries=2, backoff_base=0.01, backoff_cap=0.05)


class ListStore:
    """A ResultStore keeping every committed result, optionally slow to commit;
    ``on_commit`` is called as each commit begins."""

    def __init__(self, delay: float = 0.0, on_commit: Callable[[], None] | None = None) -> None:
        self.results: list[Result] = []
        self.commits = 0
        self.delay = delay
        self.on_commit = on_commit

    async def commit(self, batch: Sequence[Completed]) -> None:
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.results.extend(result for _item, result in batch)

    async def aclose(self) -> None:
        return None


class PassLimiter:
    """A RateLimiter that offers AcquiresNow: ``passes`` requests go at once, the rest
    await ``acquire``; every turn taken is counted."""

    def __init__(self) -> None:
        self.passes = 0
        self.at_once = 0
        self.awaited = 0

    def try_acquire(self, host: str) -> bool:
        if self.passes <= 0:
            return False
        self.passes -= 1
        self.at_once += 1
        return True

    async def acquire(self, host: str) -> None:
        self.awaited += 1


class Harness:
    """One transport and executor shared by successive runs, as a Fetcher shares them."""

    def __init__(self, settings: Settings, rate_limiter: PassLimiter | None = None) -> None:
        self.settings = settings
        self.transport = FastTransport(
            settings.transport, per_host_connections=settings.limits.per_host
        )
        self.executor = RequestExecutor(self.transport, settings, rate_limiter=rate_limiter)

    def runner(
        self, urls: Sequence[str], store: ListStore | None = None, *, linger_s: float = 0.0
    ) -> Runner:
        queue = MemoryQueue(iter_requests(urls), maxsize=self.settings.limits.concurrency * 2)
        return Runner(
            queue,
            store or ListStore(),
            self.executor,
            concurrency=self.settings.limits.concurrency,
            linger_s=linger_s,
        )

    async def run(self, urls: Sequence[str]) -> tuple[Runner, list[Result]]:
        store = ListStore()
        runner = self.runner(urls, store)
        await runner.run()
        return runner, store.results

    async def aclose(self) -> None:
        await self.executor.aclose()
        await self.transport.aclose()


async def warmed(
    server: RecordingServer,
    settings: Settings,
    hosts: Sequence[str],
    rate_limiter: PassLimiter | None = None,
) -> Harness:
    harness = Harness(settings, rate_limiter)
    per_host = settings.limits.per_host
    warm = [server.url(f"/ok?warm={n}", host=host) for host in hosts for n in range(per_host)]
    await harness.run(warm)
    server.recorder.requests.clear()
    server.recorder.peak = 0
    server.recorder.peak_by_host.clear()
    return harness


def by_line(results: list[Result]) -> list[Result]:
    return sorted(results, key=lambda result: result.line)


async def test_a_warm_run_starts_its_requests_from_callbacks(server: RecordingServer) -> None:
    settings = make_settings(concurrency=8, per_host=8)
    harness = await warmed(server, settings, ["127.0.0.1"])
    try:
        urls = [server.url(f"/ok?n={n}") for n in range(300)]
        runner, results = await harness.run(urls)
    finally:
        await harness.aclose()
    dispatcher = runner.dispatcher
    assert dispatcher is not None
    assert dispatcher.started_inline >= 290 and dispatcher.handed_over <= 10
    assert [result.url for result in by_line(results)] == urls
    assert all(result.ok and result.attempts == 1 for result in results)
    assert server.recorder.peak <= 8
    assert len(server.recorder.requests) == 300


async def test_a_rate_limit_that_lets_requests_go_at_once_keeps_the_callback_path(
    server: RecordingServer,
) -> None:
    # A Redis worker's shared limits give healthy hosts free passes (AcquiresNow): its
    # requests must start from callbacks as fetch's do, each taking exactly one turn.
    limiter = PassLimiter()
    settings = make_settings(concurrency=8, per_host=8)
    harness = await warmed(server, settings, ["127.0.0.1"], limiter)
    limiter.passes, limiter.at_once, limiter.awaited = 200, 0, 0
    try:
        urls = [server.url(f"/ok?n={n}") for n in range(300)]
        runner, results = await harness.run(urls)
    finally:
        await harness.aclose()
    assert runner.dispatcher is not None and runner.dispatcher.started_inline >= 190
    assert limiter.at_once == 200 and limiter.awaited == 100  # one turn per request
    assert all(result.ok for result in results) and len(server.recorder.requests) == 300


async def test_a_lingering_writer_commits_at_most_once_per_linger(
    server: RecordingServer,
) -> None:
    # A Redis worker's store pays a round trip per commit: its writer lets results gather.
    settings = make_settings(concurrency=8, per_host=8)
    harness = await warmed(server, settings, ["127.0.0.1"])
    store = ListStore()
    urls = [server.url(f"/ok?n={n}") for n in range(300)]
    runner = harness.runner(urls, store, linger_s=0.05)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await runner.run()
        elapsed = loop.time() - started
    finally:
        await harness.aclose()
    assert sorted(result.url for result in store.results) == sorted(urls)
    assert store.commits <= elapsed / 0.05 + 1, (store.commits, elapsed)


async def test_redirects_retries_and_timeouts_from_callbacks_match_the_rules(
    server: RecordingServer,
) -> None:
    settings = make_settings(
        concurrency=4,
        per_host=4,
        retries=FAST_RETRY,
        timeouts=Timeouts(total=0.3, connect=5.0, read=5.0),
    )
    harness = await warmed(server, settings, ["127.0.0.1"])
    try:
        urls = [
            server.url("/redirect/2"),
            server.url("/flaky/lane/1/503"),
            server.url("/delay/2000"),
            server.url("/status/404"),
        ]
        runner, results = await harness.run(urls)
    finally:
        await harness.aclose()
    assert runner.dispatcher is not None and runner.dispatcher.started_inline == 4
    redirected, flaky, slow, missing = by_line(results)
    assert redirected.ok and redirected.final_url == server.url("/redirect/0")
    assert redirected.attempts == 1
    assert flaky.ok and flaky.attempts == 2
    assert slow.error is not None and slow.error.kind == "timeout"
    assert slow.attempts == 3  # every attempt timed out, then the retries ran out
    assert missing.status == 404 and missing.attempts == 1


async def test_a_busy_host_parks_its_requests_without_blocking_another(
    server: RecordingServer,
) -> None:
    settings = make_settings(concurrency=6, per_host=2)
    harness = await warmed(server, settings, ["127.0.0.1", "localhost"])
    try:
        slow = [server.url(f"/delay/200?n={n}") for n in range(12)]
        other = [server.url(f"/ok?n={n}", host="localhost") for n in range(8)]
        runner, results = await harness.run(slow + other)
    finally:
        await harness.aclose()
    assert runner.dispatcher is not None and runner.dispatcher.started_inline >= 18
    assert all(result.ok for result in results) and len(results) == 20
    paths = [seen.path for seen in server.recorder.requests]
    last_other = max(index for index, path in enumerate(paths) if path == "/ok")
    assert last_other < 12, paths
    assert server.recorder.peak_by_host["127.0.0.1"] == 2
    assert server.recorder.peak <= 6


async def test_a_slow_writer_holds_the_dispatcher_back(server: RecordingServer) -> None:
    settings = make_settings(concurrency=4, per_host=4)
    harness = await warmed(server, settings, ["127.0.0.1"])
    ahead: list[int] = []  # at each commit: requests the server saw minus records committed
    store = ListStore(delay=0.5)  # long enough for the dispatcher to reach its bound each time
    store.on_commit = lambda: ahead.append(len(server.recorder.requests) - len(store.results))
    runner = harness.runner([server.url(f"/ok?n={n}") for n in range(3000)], store)
    try:
        await runner.run()
    finally:
        await harness.aclose()
    assert len(store.results) == 3000
    # The dispatcher may run ahead of the writer by the buffer's high-water mark (2 batches),
    # the batch the writer is committing, and the requests in flight, no more; and the
    # writer was slow enough to be caught up with (else the bound says nothing).
    batch, in_flight = 512, 4
    assert len(ahead) >= 3000 // batch
    assert max(ahead) <= 2 * batch + batch + in_flight, ahead
    assert max(ahead) > batch, ahead


async def test_stop_lets_started_requests_finish_and_starts_no_more(
    server: RecordingServer,
) -> None:
    settings = make_settings(concurrency=4, per_host=4)
    harness = await warmed(server, settings, ["127.0.0.1"])
    store = ListStore()
    runner = harness.runner([server.url(f"/delay/50?n={n}") for n in range(400)], store)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(server.recorder.seen(8), 30)
        runner.stop()
        await asyncio.wait_for(task, 5)
    finally:
        await harness.aclose()
    seen = len(server.recorder.requests)
    assert 0 < seen < 400
    assert len(store.results) == seen  # every request the server saw has its record
    assert len({result.id for result in store.results}) == seen


async def test_cancel_abandons_requests_in_flight(server: RecordingServer) -> None:
    settings = make_settings(concurrency=4, per_host=4)
    harness = await warmed(server, settings, ["127.0.0.1"])
    store = ListStore()
    runner = harness.runner([server.url(f"/never?n={n}") for n in range(10)], store)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(server.recorder.seen(4), 30)  # all four are in flight
        runner.cancel()
        stats = await asyncio.wait_for(task, 5)
    finally:
        await harness.aclose()
    assert store.results == []  # abandoned requests get no record: a resume redoes them
    assert stats.done == 0


async def test_requests_the_transport_cannot_send_get_the_executors_record(
    server: RecordingServer,
) -> None:
    settings = make_settings(concurrency=2, per_host=2)
    harness = await warmed(server, settings, ["127.0.0.1"])
    try:
        good = server.url("/ok")
        bad = Request.create(server.url("/ok"), headers=(("Bad Name", "x"),))
        queue = MemoryQueue(iter_requests([good, bad]), maxsize=4)
        store = ListStore()
        runner = Runner(queue, store, harness.executor, concurrency=2)
        await runner.run()
    finally:
        await harness.aclose()
    [ok] = [result for result in store.results if result.ok]
    [refused] = [result for result in store.results if not result.ok]
    assert ok.url == good
    assert refused.error is not None and refused.error.kind == "protocol"
    assert "invalid request header" in refused.error.message


async def test_a_queue_getter_woken_then_cancelled_passes_the_item_on() -> None:
    # Worker tasks wait in MemoryQueue.get; one woken for an item but cancelled before it
    # ran must not leave the item unseen while another worker waits.
    arrived = asyncio.Event()

    async def one_request() -> AsyncIterator[Request]:
        await arrived.wait()
        yield Request.create("http://127.0.0.1:1/a")
        await asyncio.Event().wait()  # more input may come: the queue does not end

    queue = MemoryQueue(one_request(), maxsize=4)
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # both wait; the reader waits for input
    arrived.set()
    await asyncio.sleep(0)  # the reader hands the item to the first getter
    first.cancel()
    item = await asyncio.wait_for(second, timeout=5)
    assert item is not None and item.request.url == "http://127.0.0.1:1/a"
    assert first.cancelled()
    await queue.aclose()
