"""A worker's side of a Redis job: the WorkQueue it reads and the ResultStore it commits to.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

Delivery guarantees, and why they hold:

* A request leaves the job only when its entry is acknowledged, and it is acknowledged
  only in the same atomic step that writes its result record (or its dead letter). A
  worker that dies, kill -9 included, leaves its entries pending in the consumer group,
  and after the lease other workers take them over with XAUTOCLAIM. Nothing is lost.
* The atomic step is a Lua script, which Redis runs exactly as it runs MULTI/EXEC
  (nothing else runs in between). A script is used rather than MULTI because it can make
  each result's record conditional on its XACK having taken effect: when a slow worker
  and the worker that reclaimed its entry both finish, or a commit is resent after a lost
  reply, only the first writes a record. The results stream therefore holds one record
  per request entry (a commit's records share one results entry, one JSON line each),
  and ``collect`` still deduplicates by request id.
* The lease is short (12 s by default) because a live worker renews it for every entry it
  holds (``lease.py``): a dead worker's entries are running elsewhere within
  seconds, and a live worker's request is never reclaimed however long it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from ..._models import InvalidInput, Request
from ..base import Completed, NotReady, WorkItem
from ..memory import MemoryQueue
from .codec import dead_letter_record
from .entries import Entry, commit_arguments, decode_entry, fresh_work
from .jobs import (
    GROUP,
    RECORDS_PER_RESULTS_ENTRY,
    JobKeys,
    Redis,
    as_text,
    read_counts,
    retrying,
)
from .lease import DEFAULT_LEASE_S, Leases
from .readahead import ReadAhead

log = logging.getLogger("asyncfetch")

# KEYS: requests, results, meta, ticks. ARGV: group, consumer, the entry ids (separated
# by spaces), the byte lengths of their records (likewise), and those records back to
# back, each a JSON line ending in a newline (the JSONL sink's). Three arguments per
# result, each encoded by redis-py one at a time, had cost a worker more CPU than the
# rest of the commit.
#
# The records of one commit go into one entry of the results stream (fields n, by,
# entries, r): an XADD and its copy of the record per result had been half of Redis' work
# per request. When every entry is acknowledged (the usual case) the records are added as
# they came; otherwise only those whose XACK took effect are cut out and kept.
_COMMIT = """
local ids, acked, all = {}, {}, true
for entry in string.gmatch(ARGV[3], '%S+') do
  local ok = redis.call('XACK', KEYS[1], ARGV[1], entry) == 1
  ids[#ids + 1] = entry
  acked[#ids] = ok
  all = all and ok
end
local written, entries, records = #ids, ARGV[3], ARGV[5]
if not all then
  local kept_ids, kept, at, n = {}, {}, 1, 0
  for size in string.gmatch(ARGV[4], '%d+') do
    n = n + 1
    local length = tonumber(size)
    if acked[n] then
      kept_ids[#kept_ids + 1] = ids[n]
      kept[#kept + 1] = string.sub(ARGV[5], at, at + length - 1)
    end
    at = at + length
  end
  written, entries, records = #kept, table.concat(kept_ids, ' '), table.concat(kept)
end
if written > 0 then
  redis.call('XADD', KEYS[2], '*', 'n', written, 'by', ARGV[2], 'entries', entries,
             'r', records)
  redis.call('HINCRBY', KEYS[3], 'done', written)
  local tick = redis.call('XADD', KEYS[4], '*', 'n', written)
  local millis = tonumber(string.match(tick, '^(%d+)'))
  redis.call('XTRIM', KEYS[4], 'MINID', '~', string.format('%.0f', millis - 120000))
end
return written
"""

# KEYS: requests, dead, meta. ARGV: group, entry id, request id, dead record, request.
_DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'entry', ARGV[2], 'r', ARGV[4],
             'request', ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'dead', 1)
  return 1
end
return 0
"""

# KEYS: requests. ARGV: group, consumer. Deleting a consumer drops its pending entries,
# so it is done only when it has none, checked in the same atomic step.
_FORGET_CONSUMER = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

# From this many deliveries on, an entry has been with a worker that died at least twice:
# it may be the poison. A worker holds at most one such suspect at a time, so that when a
# poison crashes it, innocent suspects are not in its hands and do not collect deliveries
# towards the dead-letter limit (which should therefore be at least this number).
SUSPECT_FROM = 3
_RELEASED_IDLE_MS = 30 * 24 * 3600 * 1000  # longer than any sensible lease
_COMMIT_CHUNK_BYTES = 4 * 1024 * 1024
# How long the writer lets results gather between two commits: each commit is a round
# trip and a script call, and committed one loop turn's worth at a time (a handful of
# results) they took more of a worker's CPU than its requests. Results wait 5 ms at most.
COMMIT_LINGER_S = 0.005
# How long a worker that still has requests of its own, and finds no new entries, waits
# for its requests before it reads again and looks whether the job is complete.
_TAIL_WAIT_S = 0.05
# How long an idle worker's read waits while the job drains, between looks at its counts.
_DRAINING_BLOCK_S = 0.1


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerOptions:
    """How one worker takes part in a job.

    ``prefetch`` bounds the entries read ahead of the engine: a dead worker strands at
    most that many (plus those in flight) until their lease runs out. ``lease_s``: how
    long a silent worker keeps its entries; live workers renew theirs (lease.py).
    """

    consumer: str
    prefetch: int
    lease_s: float = DEFAULT_LEASE_S
    max_deliveries: int = 5
    follow: bool = False
    block_s: float = 1.0


class RedisWorkQueue:
    """WorkItems from the job's stream via XREADGROUP; ends when the job is complete."""

    def __init__(
        self,
        client: Redis,
        keys: JobKeys,
        options: WorkerOptions,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._client = client
        self._keys = keys
        self._options = options
        self._clock = clock
        self.leases = Leases(client, keys, options.consumer, options.lease_s)
        # The read-ahead: a MemoryQueue fed with batches read from Redis, so that the run
        # loop takes from it as from a local input (TakesReady). The engine calls these two
        # for every request, so they are the compiled ReadAhead's own methods, with no
        # interpreted frame of this class in between.
        self._buffer = MemoryQueue(batches=self._entries(), maxsize=options.prefetch, clock=clock)
        self._read_ahead = ReadAhead(
            self._buffer,
            self.leases,
            on_start=self._start_heartbeat,
            not_started=self._not_started,
        )
        self.take_nowait: Callable[[], WorkItem | NotReady | None] = self._read_ahead.take_nowait
        self.call_when_ready: Callable[[Callable[[], None]], None] = (
            self._read_ahead.call_when_ready
        )
        # All enqueued and none left unread: the job is ending. Assumed until the job's
        # counts (read after the first empty read) say otherwise; a following worker
        # never ends with the job, so for it the job never drains.
        self._draining = not options.follow
        self._reader_done = asyncio.Event()
        self._unstarted: dict[str, int] = {}
        self._suspect: str | None = None
        self._suspects_given_back = False
        self._claim_cursor = "0-0"
        self._next_reclaim = 0.0
        self._dead_letter = client.register_script(_DEAD_LETTER)
        self._heartbeat: asyncio.Task[None] | None = None
        self.reclaimed = 0
        self.dead_lettered = 0

    # -- taking work (WorkQueue, and TakesReady's take_nowait / call_when_ready) --

    async def get(self) -> WorkItem | None:
        self._read_ahead.start()
        while not self._stopping and (item := await self._buffer.get()) is not None:
            if not self._stopping and await self.leases.may_start(item.token):
                return item
            self._not_started(item)
        return None

    @property
    def _stopping(self) -> bool:
        return self._read_ahead.stopping

    def _start_heartbeat(self) -> None:
        self._heartbeat = asyncio.create_task(self.leases.run(), name="asyncfetch-leases")

    def _not_started(self, item: WorkItem) -> None:
        # Reclaimed by another worker while our leases were stale (theirs now), or
        # stopping: not attempted, so the delivery that brought it is given back.
        if item.token is not None:
            self._unstarted[item.token] = item.deliveries - 1

    def stop(self) -> None:
        """Hand out nothing more; what was read ahead is released in :meth:`aclose`.

        The reader is not cancelled but told to stop: it ends after its current command
        (a read blocks for at most ``block_s``), and the engine's waiting tasks get None
        then. Cutting a Redis command short can leave redis-py's connection stuck.
        """
        self._read_ahead.stopping = True
        self.leases.stop()
        self._take_unstarted()  # also makes room, so a reader waiting for it goes on

    async def aclose(self) -> None:
        """Give back every entry this worker still holds; the engine has stopped by now."""
        self.stop()
        if self._heartbeat is not None:
            await self.leases.close(self._heartbeat)
        if self._read_ahead.started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader_done.wait(), self._options.block_s + 5)
        self._take_unstarted()
        await self._buffer.aclose()  # cancels the reader only if Redis kept it waiting
        try:
            await self._give_back_all()
            self.leases.clear()
            await self._forget_consumer()
        except (RedisError, OSError) as error:
            # One attempt only: a worker must not hang on exit while Redis is down.
            log.warning("could not give back unstarted requests (%s); others will", error)

    def feeder_error(self) -> BaseException | None:
        """The error (a QueueError after a long outage, say) that ended reading, if any."""
        return self._buffer.feeder_error()

    # -- reading ----------------------------------------------------------------------

    async def _entries(self) -> AsyncIterator[list[WorkItem]]:
        """Batches of work read from Redis; the buffer asks for the next one only when
        half of its room is free, so each round trip brings many entries."""
        try:
            cursor = "0-0"  # after a restart under the same name: our own entries first
            while not self._stopping and (entries := await self._read(cursor, block_ms=None)):
                cursor = as_text(entries[-1][0])
                yield await self._hand_out(entries, fresh=False)
            while not self._stopping:
                if time.monotonic() >= self._next_reclaim:
                    yield await self._reclaim()
                entries = await self._read_new()
                yield await self._hand_out(entries, fresh=True)
                if not entries and await self._finished():
                    return
        finally:
            self._reader_done.set()

    async def _read_new(self) -> list[Entry]:
        """New entries, waiting up to ``block_s`` inside Redis for some to come.

        While this worker still holds entries, one of them may be the job's last: a read
        blocked in Redis would keep the worker idle after that commit until the read
        times out. So it reads without blocking and, if the stream is empty, waits here
        for its own entries to be committed (or for _TAIL_WAIT_S), then the caller looks
        whether the job is complete.

        A worker with nothing of its own while the job drains (everything enqueued and
        read) waits in Redis only briefly: the job completes when the other workers'
        last commits land, which no read of new entries would report.
        """
        block_s = self._options.block_s
        if self._draining:
            block_s = min(block_s, _DRAINING_BLOCK_S)
        if self._options.follow or not self.leases.held:
            return await self._read(">", block_ms=int(block_s * 1000))
        entries = await self._read(">", block_ms=None)
        if not entries:
            await self.leases.wait_released(_TAIL_WAIT_S)
        return entries

    async def _finished(self) -> bool:
        if self._options.follow:
            return False
        counts = await retrying(lambda: read_counts(self._client, self._keys), "reading job")
        self._draining = counts is not None and counts.enqueue_finished
        return counts is not None and counts.complete

    async def _read(self, start: str, block_ms: int | None) -> list[Entry]:
        count = self._read_count
        streams: dict[Any, Any] = {self._keys.requests: start}
        reply: Any = await retrying(
            lambda: self._client.xreadgroup(
                GROUP, self._options.consumer, streams, count=count, block=block_ms
            ),
            "reading requests",
        )
        if not reply:
            return []
        entries: list[Entry] = reply[0][1]
        return entries

    @property
    def _read_count(self) -> int:
        """Entries per read: the room the buffer has when it asks (half of it, at least)."""
        return max(1, self._options.prefetch // 2)

    async def _reclaim(self) -> list[WorkItem]:
        """XAUTOCLAIM entries whose holder has been silent for longer than the lease."""
        options = self._options
        count = self._read_count
        reply = await retrying(
            lambda: self._client.xautoclaim(
                self._keys.requests,
                GROUP,
                options.consumer,
                min_idle_time=int(options.lease_s * 1000),
                start_id=self._claim_cursor,
                count=count,
            ),
            "reclaiming requests",
        )
        self._claim_cursor = as_text(reply[0])
        # A cursor other than 0-0 means more may be claimable: look again at once.
        wait = self.leases.every_s if self._claim_cursor == "0-0" else 0.0
        self._next_reclaim = time.monotonic() + wait
        # Our own entries come back here only if our renewals lapsed: they are still in
        # our hands (claiming them just renewed them), not to be handed out twice.
        entries: list[Entry] = [
            entry for entry in reply[1] if entry[1] and not self.leases.holds(as_text(entry[0]))
        ]
        if entries:
            self.reclaimed += len(entries)
            log.info("reclaimed %d requests whose lease ran out", len(entries))
        return await self._hand_out(entries, fresh=False)

    async def _hand_out(self, entries: list[Entry], *, fresh: bool) -> list[WorkItem]:
        """The entries as work for the engine; dead-letter those delivered too many times
        and give back suspects beyond the one this worker may hold."""
        now = self._clock()
        if fresh and self._options.max_deliveries >= 1:
            # Delivered once: neither suspects nor due for the dead letters.
            return fresh_work(entries, self.leases, now)
        for entry_id, _fields in entries:
            self.leases.hold(as_text(entry_id))  # renewed from now on, even while queued
        deliveries = await self._deliveries([entry for entry, _ in entries])
        give_back: list[tuple[str, int]] = []
        work: list[WorkItem] = []
        for entry_id, fields in entries:
            if not fields:
                self.leases.release({as_text(entry_id)})
                continue  # deleted from the stream by hand: nothing left to run
            token = as_text(entry_id)
            item = decode_entry(fields)
            count = deliveries.get(token, 1)
            if count > self._options.max_deliveries:
                await self._send_to_dead_letters(token, item, fields, count)
                continue
            if count >= SUSPECT_FROM:
                if self._suspect is not None:
                    give_back.append((token, count - 1))
                    self._suspects_given_back = True
                    continue
                self._suspect = token
            work.append(WorkItem(item, enqueued_at=now, token=token, deliveries=count))
        await self._release(give_back)
        return work

    def committed(self, tokens: set[str]) -> None:
        """Called by the store: committed entries need no lease, and the held suspect, if
        committed, no longer blocks others."""
        self.leases.release(tokens)
        if self._suspect in tokens:
            self._suspect = None
            if self._suspects_given_back:
                # The suspects given back wait for a reclaim: look at the next read
                # rather than after a renewal interval (a quarter of the lease).
                self._suspects_given_back = False
                self._next_reclaim = 0.0

    async def _deliveries(self, entry_ids: list[bytes]) -> dict[str, int]:
        """How often each entry has been delivered (XPENDING; XREADGROUP does not say)."""

        async def query() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for entry_id in entry_ids:
                    pipe.xpending_range(self._keys.requests, GROUP, entry_id, entry_id, 1)
                replies: list[Any] = await pipe.execute()
                return replies

        replies = await retrying(query, "reading delivery counts")
        return {
            as_text(row["message_id"]): int(row["times_delivered"])
            for reply in replies
            for row in reply
        }

    async def _send_to_dead_letters(
        self, token: str, item: Request | InvalidInput, fields: dict[bytes, bytes], count: int
    ) -> None:
        # The delivery that brought it here is not counted: it was never attempted.
        handed_out = count - 1
        reason = (
            f"delivered {handed_out} times without a result: each worker handling it"
            f" crashed or stopped renewing its lease of {self._options.lease_s:g} s"
        )
        record_id = item.record_id if isinstance(item, InvalidInput) else item.id
        record = dead_letter_record(item, token, handed_out, reason)
        self.leases.release({token})
        keys = self._keys
        acked = await retrying(
            lambda: self._dead_letter(
                keys=[keys.requests, keys.dead, keys.meta],
                args=[GROUP, token, record_id, record, fields[b"r"]],
            ),
            "dead-lettering a request",
        )
        if acked:
            self.dead_lettered += 1
            log.warning("dead-lettered request %s after %d deliveries", record_id, handed_out)

    # -- shutdown ---------------------------------------------------------------------

    def _take_unstarted(self) -> None:
        if not self._read_ahead.started:
            return  # the buffer has read nothing (and must not start reading now)
        while isinstance(item := self._buffer.take_nowait(), WorkItem):
            self._not_started(item)

    async def _give_back_all(self) -> None:
        """Release our whole pending list: read-ahead entries, and entries a cancelled
        read or hand-out had fetched without queueing them (their count is kept)."""
        rows: list[Any] = await self._client.xpending_range(
            self._keys.requests, GROUP, "-", "+", 100_000, consumername=self._options.consumer
        )
        await self._release_now(
            [
                (token, self._unstarted.get(token, int(row["times_delivered"])))
                for row in rows
                if (token := as_text(row["message_id"]))
            ]
        )

    async def _release(self, entries: list[tuple[str, int]]) -> None:
        if entries:
            await retrying(lambda: self._release_now(entries), "releasing requests")

    async def _release_now(self, entries: list[tuple[str, int]]) -> None:
        """Make entries claimable by any worker at once.

        XCLAIM to ourselves with a long IDLE marks them as abandoned for any worker's
        lease; RETRYCOUNT sets their delivery count (callers take back the delivery that
        brought an entry they did not attempt).
        """
        if not entries:
            return
        self.leases.release({token for token, _deliveries in entries})
        async with self._client.pipeline(transaction=False) as pipe:
            for token, deliveries in entries:
                pipe.xclaim(
                    self._keys.requests,
                    GROUP,
                    self._options.consumer,
                    0,
                    [token],
                    idle=_RELEASED_IDLE_MS,
                    retrycount=deliveries,
                    justid=True,
                )
            await pipe.execute()

    async def _forget_consumer(self) -> None:
        """Drop this consumer from the group when it holds nothing (tidier status)."""
        script = self._client.register_script(_FORGET_CONSUMER)
        await script(keys=[self._keys.requests], args=[GROUP, self._options.consumer])


class RedisResultStore:
    """Commits results: XACK their entries and XADD their records (one results entry per
    chunk) in one atomic script."""

    def __init__(
        self,
        client: Redis,
        keys: JobKeys,
        consumer: str,
        *,
        leases: Leases | None = None,
        on_commit: Callable[[set[str]], None] | None = None,
    ) -> None:
        self._keys = keys
        self._consumer = consumer
        self._commit = client.register_script(_COMMIT)
        self._leases = leases
        self._on_commit = on_commit
        self.duplicates = 0

    async def commit(self, batch: Sequence[Completed]) -> None:
        for chunk in _chunks(batch):
            entry_ids, sizes, packed, tokens = commit_arguments(chunk)
            args: list[str | bytes] = [GROUP, self._consumer, entry_ids, sizes, packed]
            if self._leases is not None:
                self._leases.committing(tokens)
            keys = self._keys
            send = partial(
                self._commit, keys=[keys.requests, keys.results, keys.meta, keys.ticks], args=args
            )
            written = await retrying(send, "committing results")
            # Not written: another worker (or our own earlier, unanswered attempt)
            # already acknowledged the entry with its record.
            self.duplicates += len(chunk) - int(written)
            if self._on_commit is not None:
                self._on_commit(tokens)

    async def aclose(self) -> None:
        """Nothing to flush: every commit is durable in Redis when it returns."""


def _chunks(batch: Sequence[Completed]) -> list[Sequence[Completed]]:
    """Split a batch so that no single script call carries megabytes of bodies."""
    chunks: list[Sequence[Completed]] = []
    start = size = 0
    for index, (_item, result) in enumerate(batch):
        size += result.bytes + 512
        full = index - start >= RECORDS_PER_RESULTS_ENTRY or size > _COMMIT_CHUNK_BYTES
        if index > start and full:
            chunks.append(batch[start:index])
            start, size = index, result.bytes + 512
    if start < len(batch):
        chunks.append(batch[start:])
    return chunks
