"""The run loop's driver: takes a run's requests from the queue and sees each to its one
Result, with no task per request where the transport and the queue allow it.

A worker task per request costs several task switches and a chain of coroutine frames
resumed per response; at tens of thousands of requests a second on one core, that was
most of the run. So requests are started from callbacks: when an item is ready, when a
response completes, when the writer has room. A request whose host and global slots are
free is started through the executor, which uses the transport's fast path (the
``StartsNow`` capability of ``transport/base.py``) when it has one and an idle connection
is there; the event that completes the response then builds its record and starts the
next request, as a hand-written protocol client would. Everything else (connecting,
redirects, retries, a rate limit, a transport without the fast path) the executor
finishes in a task. Items whose host is busy are parked, up to the lookahead, so that
requests for other hosts overtake them. The queue is taken from without waiting when it
offers ``TakesReady`` (``queues/base.py``), and through :class:`Prefetch` otherwise.

The policies (limits, retries, redirects, records) are the executor's, on either path;
this module only decides when a request starts and where its result goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import partial

from .._errors import OutputError
from .._models import InvalidInput, Result
from ..policy.records import invalid_input_result
from ..queues.base import TakesReady, WorkItem, WorkQueue, takes_ready
from ..transport.base import Landing
from .executor import Job, RequestExecutor, internal_error_result
from .handoff import ResultBuffer
from .prefetch import Prefetch
from .stats import StatsCollector

log = logging.getLogger("asyncfetch")


class Dispatcher:
    """Drives a run's requests from callbacks; see the module docstring."""

    def __init__(
        self,
        queue: WorkQueue,
        executor: RequestExecutor,
        results: ResultBuffer,
        stats: StatsCollector,
        *,
        concurrency: int,
        lookahead: int,
    ) -> None:
        ready: TakesReady
        self._prefetch: Prefetch | None = None
        if takes_ready(queue):
            ready = queue
        else:
            ready = self._prefetch = Prefetch(queue)
        # Bound once: called per request, without a method look-up.
        self._take_nowait = ready.take_nowait
        self._call_when_ready = ready.call_when_ready
        self._on_landed = self.landed
        self._executor = executor
        self._results = results
        self._stats = stats
        self._concurrency = concurrency
        self._lookahead = lookahead
        self._in_flight = 0
        # Jobs whose host was busy, oldest first per host; hosts in the order they parked.
        self._parked: dict[str, deque[Job]] = {}
        self._parked_count = 0
        self._tasks: set[asyncio.Task[Result]] = set()
        self._input_done = False
        self._cancelled = False
        self.started_inline = 0  # attempts started from a callback, on a ready connection
        self.handed_over = 0  # requests the executor finished in a task
        self._done: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Drive requests until the input is exhausted and every request has a result."""
        self._done = asyncio.get_running_loop().create_future()
        # A host paused (Retry-After) or held to its rate wakes its parked jobs in time.
        hosts = self._executor.hosts
        hosts.add_ready_callback(self._pump)
        self._pump()
        self._check_done()  # stopped before it ran, say
        try:
            await self._done
        except BaseException:
            self.cancel()  # stopped from outside, or the queue failed
            raise
        finally:
            hosts.remove_ready_callback(self._pump)
            if self._prefetch is not None:
                self._prefetch.close()

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
        try:
            self._start_what_fits()
        except Exception as error:
            self._fail(error)  # the queue failed (or a bug): the run ends with that error

    def _fail(self, error: BaseException) -> None:
        done = self._done
        self._input_done = True
        if done is not None and not done.done():
            done.set_exception(error)

    def _start_what_fits(self) -> None:
        self._unpark()
        executor = self._executor
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
            item = self._take_nowait()
            if item is None:
                self._input_done = True
                self._check_done()
                return
            if not isinstance(item, WorkItem):
                self._call_when_ready(self._pump)
                return
            self._start(item)

    def _start(self, item: WorkItem) -> None:
        request = item.request
        if isinstance(request, InvalidInput):
            self._results.push((item, invalid_input_result(request)))
            return
        job = Job(item, request, self._on_landed)
        host = job.host
        # A host with parked items is busy: a new item must not overtake them.
        if host in self._parked or not self._executor.try_hold(job):
            self._park(job)
            return
        self._launch(job)

    def _launch(self, job: Job) -> None:
        """Start ``job``, whose slots are held: from here, or in a task."""
        self._in_flight += 1
        self._stats.in_flight += 1
        if self._executor.start(job):
            self.started_inline += 1
        else:
            self._hand_over(job)

    def _park(self, job: Job) -> None:
        waiting = self._parked.get(job.host)
        if waiting is None:
            waiting = self._parked[job.host] = deque()
        waiting.append(job)
        self._parked_count += 1

    def _unpark(self) -> None:
        """Start parked jobs whose host has room now, oldest host first."""
        if not self._parked:
            return
        executor = self._executor
        for host in list(self._parked):
            waiting = self._parked[host]
            while executor.slot_free() and executor.try_hold(waiting[0]):
                job = waiting.popleft()
                self._parked_count -= 1
                if not waiting:
                    del self._parked[host]
                # Parked, it waited for its host: that is its record's wait_ms, not part of
                # its own time (its clock started when it parked; try_hold set job.sent).
                waited = job.sent - job.clock.started
                executor.waits.per_host += waited
                job.clock.wait_ms += waited * 1000
                self._launch(job)
                if not waiting:
                    break
            if not executor.slot_free():
                return

    # -- requests ending ---------------------------------------------------------------------

    def landed(self, job: Job, outcome: Landing) -> None:
        """An attempt the executor started from here ended (from the transport's callbacks)."""
        if self._cancelled:
            return
        try:
            result = self._executor.land(job, outcome)
        except Exception as exc:
            # A bug must not cost the rest of the run: it becomes a visible record.
            log.exception("internal error while fetching request %s", job.request.id)
            result = internal_error_result(job.request, exc)
        if result is None:
            self._hand_over(job)
        else:
            self._finish(job, result)
        self._pump()

    def _hand_over(self, job: Job) -> None:
        """Let the executor finish ``job`` in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._executor.complete(job))
        self.handed_over += 1
        self._tasks.add(task)
        task.add_done_callback(partial(self._task_done, job))

    def _task_done(self, job: Job, task: asyncio.Task[Result]) -> None:
        self._tasks.discard(task)
        if self._cancelled or task.cancelled():
            return
        error = task.exception()
        if isinstance(error, OutputError):
            # A body that cannot be saved is the environment's failure, not the request's:
            # it ends the run as an unwritable output does (what is committed stays).
            self._fail(error)
            return
        if error is None:
            result = task.result()
        else:
            log.error("internal error while fetching request %s", job.request.id, exc_info=error)
            result = internal_error_result(job.request, error)
        self._finish(job, result)
        self._pump()

    def _finish(self, job: Job, result: Result) -> None:
        self._in_flight -= 1
        self._stats.in_flight -= 1
        self._results.push((job.item, result))
        self._check_done()

    def _check_done(self) -> None:
        if self._input_done and self._in_flight == 0 and not self._parked:
            done = self._done
            if done is not None and not done.done():
                done.set_result(None)
