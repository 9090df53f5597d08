"""The Runner: work queue → worker pool → writer → result store, with a clean shutdown.

This is the tutorial's producer/consumer (section 6) made to terminate and to push back:
the reader waits when workers are busy, workers wait when the writer is behind, and the
writer commits results in batches so file and network writes are few and large.

Every entry point (the CLI's fetch, a Redis worker, the library) runs this loop; what
differs is only the queue, the store and the transport behind their protocols. The
requests are driven by the dispatcher (dispatch.py), which uses the fast paths a transport
or a queue offers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .._errors import AsyncfetchError
from .._models import Result, RunStats
from ..queues.base import Completed, ResultStore, WorkQueue
from .dispatch import Dispatcher
from .executor import RequestExecutor
from .handoff import ResultBuffer
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
        linger_s: float = 0.0,
        on_result: ResultHook | None = None,
    ) -> None:
        self._queue = queue
        self._store = store
        self._executor = executor
        self._concurrency = concurrency
        # Requests beyond the concurrency bound wait for busy hosts while others proceed;
        # input grouped by host then still runs at full width.
        self._lookahead = lookahead if lookahead is not None else min(concurrency * 2, 1024)
        self.stats = stats or StatsCollector()
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._on_result = on_result
        self._dispatcher: Dispatcher | None = None
        self._cancel_timer: asyncio.TimerHandle | None = None
        self.stopping = False
        self.cancelled = False

    @property
    def dispatcher(self) -> Dispatcher | None:
        """What drives this run's requests (known once running)."""
        return self._dispatcher

    async def run(self) -> RunStats:
        """Run until the queue is exhausted or the run is stopped; return the statistics."""
        results = ResultBuffer(high_water=max(self._concurrency * 2, self._batch_size * 2))
        dispatcher = self._dispatcher = Dispatcher(
            self._queue,
            self._executor,
            results,
            self.stats,
            concurrency=self._concurrency,
            lookahead=self._lookahead,
        )
        if self.cancelled:
            dispatcher.cancel()
        elif self.stopping:
            dispatcher.stop()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write(results), name="asyncfetch-writer")
                await dispatcher.run()
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
        if self._dispatcher is not None:
            self._dispatcher.stop()
        if grace_period is not None and self._cancel_timer is None:
            loop = asyncio.get_running_loop()
            self._cancel_timer = loop.call_later(grace_period, self.cancel)

    def cancel(self) -> None:
        """Abandon in-flight requests (they get no record, so a resume redoes them)."""
        self.stopping = self.cancelled = True
        self._queue.stop()
        if self._dispatcher is not None:
            self._dispatcher.cancel()

    async def _write(self, results: ResultBuffer) -> None:
        """Commit what has finished, batch after batch. With ``linger_s``, wait that long
        after a commit before taking the next batch (unless a full batch is ready): for a
        store whose commit costs a round trip, few large commits instead of many small."""
        linger_s = self._linger_s
        while (batch := await results.take(self._batch_size)) is not None:
            await self._store.commit(batch)
            self._account(batch)
            if linger_s and results.pending < self._batch_size:
                await asyncio.sleep(linger_s)

    def _account(self, batch: list[Completed]) -> None:
        for _item, result in batch:
            self.stats.record(result)
            if self._on_result is not None:
                self._on_result(result)
