"""The fast lane: requests driven by callbacks on kept-alive connections, no task each.

A worker task per request costs several task switches and a chain of coroutine frames
resumed per response; at tens of thousands of requests a second on one core, that was
most of the run. Here the event that completes a response also builds its record and
writes the next request onto the same connection, as a hand-written protocol client
would. Only the common case runs this way: a request whose host and global slots are
free and that finds an idle connection, and whose response is final (not a redirect,
not to be retried). Everything else (connecting, waiting for a busy host beyond the
lookahead, redirects, retries, stale connections) is handed to the executor as a task,
so the rules and the records are the executor's in both cases: the lane only decides who
drives the first attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from functools import partial
from typing import Any

from .._errors import TransportError
from .._models import InvalidInput, Request, Response, Result
from ..policy.records import invalid_input_result
from ..queues.base import WorkItem, WorkQueue
from ..queues.memory import NOTHING_YET, MemoryQueue
from ..transport.fast.connection import StaleConnection
from ..transport.fast.transport import FastTransport, Route, route, stale_error, stale_may_retry
from ..transport.redirects import REDIRECT_STATUSES
from .executor import Clock, RequestExecutor, internal_error_result
from .handoff import ResultBuffer
from .stats import StatsCollector

log = logging.getLogger("asyncfetch")

Landing = Response | TransportError | StaleConnection


class _Flight:
    """One request in flight: what the lane needs when its exchange ends."""

    __slots__ = ("clock", "host", "item", "lane", "request")

    def __init__(
        self, lane: FastLane, item: WorkItem, request: Request, host: str, clock: Clock
    ) -> None:
        self.lane = lane
        self.item = item
        self.request = request
        self.host = host
        self.clock = clock

    def landed(self, outcome: Landing) -> None:
        self.lane.landed(self, outcome)


class FastLane:
    """Drives a run's requests from callbacks; see the module docstring."""

    @classmethod
    def for_run(
        cls,
        queue: WorkQueue,
        executor: RequestExecutor,
        results: ResultBuffer,
        stats: StatsCollector,
        *,
        concurrency: int,
        lookahead: int,
    ) -> FastLane | None:
        """A lane for this run, or None when it needs worker tasks (another transport or
        queue, a rate limit, bodies saved to files)."""
        transport = executor.transport
        if not isinstance(queue, MemoryQueue) or not isinstance(transport, FastTransport):
            return None
        if not executor.finishes_inline:
            return None
        return cls(
            queue,
            executor,
            transport,
            results,
            stats,
            concurrency=concurrency,
            lookahead=lookahead,
        )

    def __init__(
        self,
        queue: MemoryQueue,
        executor: RequestExecutor,
        transport: FastTransport,
        results: ResultBuffer,
        stats: StatsCollector,
        *,
        concurrency: int,
        lookahead: int,
    ) -> None:
        self._queue = queue
        self._executor = executor
        self._transport = transport
        self._results = results
        self._stats = stats
        self._concurrency = concurrency
        self._lookahead = lookahead
        settings = executor.settings
        self._timeouts = settings.timeouts
        self._max_body = settings.body.max_body
        self._follows = settings.transport.max_redirects > 0
        self._in_flight = 0
        # Items whose host was busy, oldest first per host; hosts in the order they parked.
        self._parked: dict[str, deque[tuple[WorkItem, Request, Route]]] = {}
        self._parked_count = 0
        self._tasks: set[asyncio.Task[Result]] = set()
        self._input_done = False
        self._cancelled = False
        self.started_inline = 0  # first attempts started here, on an idle connection
        self.handed_over = 0  # requests the executor finished in a task
        self._done: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Drive requests until the input is exhausted and every request has a result."""
        self._done = asyncio.get_running_loop().create_future()
        # A host paused or rate-limited wakes its parked items when its time comes.
        self._executor.hosts.add_ready_callback(self._pump)
        self._pump()
        try:
            await self._done
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            self._executor.hosts.remove_ready_callback(self._pump)

    def stop(self) -> None:
        """Start nothing new; parked items were never started and are dropped."""
        self._input_done = True
        self._parked_count = 0
        self._parked.clear()
        self._check_done()

    def cancel(self) -> None:
        """Abandon every request in flight: none of them gets a record."""
        self._cancelled = True
        self.stop()
        for task in self._tasks:
            task.cancel()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # -- starting requests -------------------------------------------------------------------

    def _pump(self) -> None:
        """Start queued requests while there is room; arrange to be called again later."""
        self._unpark()
        executor = self._executor
        queue = self._queue
        while not self._input_done:
            if (
                self._in_flight >= self._concurrency
                or self._parked_count >= self._lookahead
                or not executor.slot_free()
            ):
                return  # a request ending calls us again
            if self._results.backlogged:
                self._results.call_when_room(self._pump)
                return
            item = queue.take_nowait()
            if item is NOTHING_YET:
                queue.call_when_ready(self._pump)
                return
            if item is None:
                self._input_done = True
                self._check_done()
                return
            self._start(item)  # type: ignore[arg-type]

    def _start(self, item: WorkItem) -> None:
        request = item.request
        if isinstance(request, InvalidInput):
            self._results.push((item, invalid_input_result(request)))
            return
        try:
            where = route(request.url)
        except TransportError:
            # Not sendable: the executor reports it exactly as for any other request.
            flight = self._track(item, request, "")
            self._hand_over(flight, self._executor.attempts(request, flight.clock))
            return
        host = where.origin.limit_key
        # A host with parked items is busy: a new item must not overtake them.
        if host in self._parked or not self._executor.try_hold(host):
            self._park(host, (item, request, where))
            return
        self._launch(item, request, where)

    def _track(self, item: WorkItem, request: Request, host: str) -> _Flight:
        flight = _Flight(self, item, request, host, Clock.start(item.enqueued_at))
        self._in_flight += 1
        self._stats.in_flight += 1
        return flight

    def _launch(self, item: WorkItem, request: Request, where: Route) -> None:
        """Start ``request``, whose slots are held, on an idle connection or as a task."""
        host = where.origin.limit_key
        flight = self._track(item, request, host)
        started = self._transport.start_now(
            request,
            where,
            flight,
            timeouts=self._timeouts,
            max_body=self._max_body,
            total_timeout=self._timeouts.total,
        )
        if started:
            self.started_inline += 1
        else:
            self._executor.release(host)  # the executor takes them again, in turn
            self._hand_over(flight, self._executor.attempts(request, flight.clock))

    def _park(self, host: str, parked: tuple[WorkItem, Request, Route]) -> None:
        waiting = self._parked.get(host)
        if waiting is None:
            waiting = self._parked[host] = deque()
        waiting.append(parked)
        self._parked_count += 1

    def _unpark(self) -> None:
        """Start parked items whose host has room now, oldest host first."""
        if not self._parked:
            return
        executor = self._executor
        for host in list(self._parked):
            waiting = self._parked[host]
            while executor.slot_free() and executor.try_hold(host):
                item, request, where = waiting.popleft()
                self._parked_count -= 1
                if not waiting:
                    del self._parked[host]
                self._launch(item, request, where)
                if not waiting:
                    break
            if not executor.slot_free():
                return

    # -- requests ending ---------------------------------------------------------------------

    def landed(self, flight: _Flight, outcome: Landing) -> None:
        """The first attempt's exchange ended (called from the connection's callbacks)."""
        if self._cancelled:
            return
        self._executor.release(flight.host, outcome, flight.clock.started)
        try:
            self._conclude(flight, outcome)
        except Exception as exc:
            # A bug must not cost the rest of the run: it becomes a visible record.
            log.exception("internal error while fetching request %s", flight.request.id)
            self._finish(flight, internal_error_result(flight.request, exc))
        self._pump()

    def _conclude(self, flight: _Flight, outcome: Landing) -> None:
        executor = self._executor
        request, clock = flight.request, flight.clock
        if isinstance(outcome, StaleConnection):
            if stale_may_retry(outcome, request):
                self._hand_over(flight, executor.attempts(request, clock))
                return
            outcome = stale_error(outcome)
        redirect = isinstance(outcome, Response) and outcome.status in REDIRECT_STATUSES
        if redirect and self._follows:
            first = outcome if isinstance(outcome, Response) else None
            self._hand_over(flight, executor.attempts(request, clock, first=first))
            return
        decision = executor.decide(request, 1, outcome)
        if decision.retry:
            self._hand_over(
                flight, executor.attempts(request, clock, made=1, delay=decision.delay)
            )
            return
        self._finish(flight, executor.result(request, outcome, 1, clock))

    def _hand_over(self, flight: _Flight, attempts: Coroutine[Any, Any, Result]) -> None:
        """Let the executor finish ``flight`` in a task of its own."""
        task = asyncio.get_running_loop().create_task(attempts)
        self.handed_over += 1
        self._tasks.add(task)
        task.add_done_callback(partial(self._task_done, flight))

    def _task_done(self, flight: _Flight, task: asyncio.Task[Result]) -> None:
        self._tasks.discard(task)
        if self._cancelled or task.cancelled():
            return
        error = task.exception()
        if error is None:
            result = task.result()
        else:
            log.error(
                "internal error while fetching request %s",
                flight.request.id,
                exc_info=error,
            )
            result = internal_error_result(flight.request, error)
        self._finish(flight, result)
        self._pump()

    def _finish(self, flight: _Flight, result: Result) -> None:
        self._in_flight -= 1
        self._stats.in_flight -= 1
        self._results.push((flight.item, result))
        self._check_done()

    def _check_done(self) -> None:
        if self._input_done and self._in_flight == 0 and not self._parked:
            done = self._done
            if done is not None and not done.done():
                done.set_result(None)
