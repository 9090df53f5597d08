"""The Runner: work queue → worker pool → writer → result store, with a clean shutdown.

This is the tutorial's producer/consumer (section 6) made to terminate and to push back:
the reader waits when workers are busy, workers wait when the writer is behind, and the
writer commits results in batches so file and network writes are few and large.

Two ways of driving requests share the queue, the executor and the writer: worker tasks
(any queue, any transport), and the fast lane (lane.py) when the run allows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .._errors import AsyncfetchError, OutputError
from .._models import InvalidInput, Result, RunStats
from ..policy.records import invalid_input_result
from ..queues.base import Completed, ResultStore, WorkItem, WorkQueue
from .executor import RequestExecutor, internal_error_result
from .handoff import ResultBuffer
from .lane import FastLane
from .stats import StatsCollector

log = logging.getLogger("asyncfetch")

ResultHook = Callable[[Result], None]


class Runner:
    """Runs every item of ``queue`` through ``executor`` and commits results to ``store``."""

    def __init__(
        self,
        queue: WorkQueue,
        store: ResultStore,
        executor: RequestExecutor,
        *,
        concurrency: int,
        lookahead: int | None = None,
        stats: StatsCollector | None = None,
        batch_size: int = 512,
        on_result: ResultHook | None = None,
    ) -> None:
        self._queue = queue
        self._store = store
        self._executor = executor
        self._concurrency = concurrency
        # Requests beyond the concurrency bound (which the executor enforces) wait for busy
        # hosts while others proceed; input grouped by host then still runs at full width.
        self._lookahead = lookahead if lookahead is not None else min(concurrency * 2, 1024)
        self._workers_count = concurrency + self._lookahead
        self.stats = stats or StatsCollector()
        self._batch_size = batch_size
        self._on_result = on_result
        self._workers: list[asyncio.Task[None]] = []
        self._lane: FastLane | None = None
        self._cancel_timer: asyncio.TimerHandle | None = None
        self.stopping = False
        self.cancelled = False

    @property
    def fast_lane(self) -> FastLane | None:
        """The fast lane driving this run's requests, if any (known once running)."""
        return self._lane

    async def run(self) -> RunStats:
        """Run until the queue is exhausted or the run is stopped; return the statistics."""
        results = ResultBuffer(high_water=max(self._concurrency * 2, self._batch_size * 2))
        self._lane = FastLane.for_run(
            self._queue,
            self._executor,
            results,
            self.stats,
            concurrency=self._concurrency,
            lookahead=self._lookahead,
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write(results), name="asyncfetch-writer")
                if self._lane is not None:
                    await self._lane.run()
                else:
                    self._workers = [
                        group.create_task(self._work(results), name=f"asyncfetch-worker-{n}")
                        for n in range(self._workers_count)
                    ]
                    await asyncio.wait(self._workers)
                results.close()
        except* AsyncfetchError as group_error:
            raise group_error.exceptions[0] from None
        finally:
            if self._cancel_timer is not None:
                self._cancel_timer.cancel()
        return self.stats.snapshot()

    def stop(self, grace_period: float | None = None) -> None:
        """Read no more input; let in-flight requests finish, cancelling them after grace."""
        self.stopping = True
        self._queue.stop()
        if self._lane is not None:
            self._lane.stop()
        if grace_period is not None and self._cancel_timer is None:
            loop = asyncio.get_running_loop()
            self._cancel_timer = loop.call_later(grace_period, self.cancel)

    def cancel(self) -> None:
        """Abandon in-flight requests (they get no record, so a resume redoes them)."""
        self.stopping = self.cancelled = True
        self._queue.stop()
        if self._lane is not None:
            self._lane.cancel()
        for worker in self._workers:
            worker.cancel()

    async def _work(self, results: ResultBuffer) -> None:
        while (item := await self._queue.get()) is not None:
            self.stats.in_flight += 1
            try:
                result = await self._execute(item)
            finally:
                self.stats.in_flight -= 1
            # Handed over before waiting for room, so a cancel cannot drop a final result.
            results.push((item, result))
            if results.backlogged:
                await results.wait_room()

    async def _execute(self, item: WorkItem) -> Result:
        request = item.request
        if isinstance(request, InvalidInput):
            return invalid_input_result(request)
        try:
            return await self._executor.execute(request, enqueued_at=item.enqueued_at)
        except (asyncio.CancelledError, OutputError):
            # A body that cannot be saved is the environment's failure, not the request's:
            # it ends the run as an unwritable output does (what is committed stays).
            raise
        except Exception as exc:
            # A bug must not cost the rest of the run: it becomes a visible record.
            log.exception("internal error while fetching request %s", request.id)
            return internal_error_result(request, exc)

    async def _write(self, results: ResultBuffer) -> None:
        while (batch := await results.take(self._batch_size)) is not None:
            await self._store.commit(batch)
            self._account(batch)

    def _account(self, batch: list[Completed]) -> None:
        for _item, result in batch:
            self.stats.record(result)
            if self._on_result is not None:
                self._on_result(result)
