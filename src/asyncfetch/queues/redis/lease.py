"""A worker's leases on the entries it holds, kept fresh by a heartbeat.

Imports redis (it is part of ``queues/redis/``, the one package that may).

An entry a worker has read stays in the consumer group's pending list, with an idle time
that Redis resets whenever the entry is claimed. Other workers reclaim entries idle
longer than the lease (XAUTOCLAIM). So that the lease can be short, a few seconds, and
yet never run out under a live worker however long its request takes, the worker
re-claims its own entries every quarter lease (XCLAIM ... JUSTID: the idle time goes back
to zero and the delivery count is left alone). A dead worker stops renewing, and its
entries become claimable one lease after its last heartbeat.

The renewal is a Lua script that re-claims only entries still owned by this worker: a
plain XCLAIM would snatch back an entry that another worker had rightly reclaimed. The
entries it reports as gone are dropped from the worker's read-ahead, never started.

A worker that cannot renew (Redis unreachable) stops starting requests once half a lease
has passed since its last renewal: from then on another worker may soon own them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from ..._settings import DEFAULT_LEASE_S as DEFAULT_LEASE_S
from .jobs import GROUP, JobKeys, Redis, as_text

log = logging.getLogger("asyncfetch")

# Entries per renewal call: bounds the script's argument list and its time in Redis.
_RENEW_CHUNK = 1000

# KEYS: requests. ARGV: group, consumer, entry ids. Returns the ids no longer ours.
# JUSTID: the idle time is reset and the delivery count is left as it is.
_RENEW = """
local owned, gone = {}, {}
for i = 3, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then
    owned[#owned + 1] = ARGV[i]
  else
    gone[#gone + 1] = ARGV[i]
  end
end
if #owned > 0 then
  owned[#owned + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(owned))
end
return gone
"""


class Leases:
    """The entries a worker holds (read ahead or in flight) and the heartbeat renewing them.

    ``hold`` when an entry is handed to the engine, ``release`` when it is committed or
    given back. :meth:`may_start` says whether an entry may still be started: it is ours
    and our leases are fresh.
    """

    def __init__(
        self,
        client: Redis,
        keys: JobKeys,
        consumer: str,
        lease_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._keys = keys
        self._consumer = consumer
        self.lease_s = lease_s
        self._clock = clock
        self._renew = client.register_script(_RENEW)
        self._held: set[str] = set()
        self._gone: set[str] = set()
        self._committing: set[str] = set()
        self._renewed_at = clock()
        self._fresh = asyncio.Event()
        self._fresh.set()
        self._none_held = asyncio.Event()
        self._none_held.set()
        self._when_fresh: list[Callable[[], None]] = []
        self._stopping = False
        self._closing = False
        self.sleeping = False
        self.renewals = 0
        self.lost = 0

    @property
    def every_s(self) -> float:
        """How often leases are renewed (and reclaims are looked for)."""
        return max(0.05, self.lease_s / 4)

    @property
    def held(self) -> int:
        return len(self._held)

    def holds(self, token: str) -> bool:
        return token in self._held

    def hold(self, token: str) -> None:
        self._held.add(token)
        self._none_held.clear()

    def committing(self, tokens: set[str]) -> None:
        """Their commit is under way: they may be acknowledged before we hear of it, so a
        renewal that finds them gone means nothing. Still renewed until released."""
        self._committing.update(tokens)

    def release(self, tokens: set[str]) -> None:
        self._unhold(tokens)
        self._gone.difference_update(tokens)
        self._committing.difference_update(tokens)

    def _unhold(self, tokens: set[str] | list[str]) -> None:
        self._held.difference_update(tokens)
        if not self._held:
            self._none_held.set()  # wakes wait_released

    def clear(self) -> None:
        self._held.clear()
        self._gone.clear()
        self._committing.clear()
        self._none_held.set()

    async def wait_released(self, timeout_s: float) -> None:
        """Until none is held (all committed or given back), or ``timeout_s`` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_held.wait(), timeout_s)

    def stop(self) -> None:
        """The worker is stopping: nothing waits for a renewal any more."""
        self._stopping = True
        self._fresh.set()
        callbacks, self._when_fresh = self._when_fresh, []
        for callback in callbacks:
            asyncio.get_running_loop().call_soon(callback)

    async def may_start(self, token: str | None) -> bool:
        """Wait while our leases are stale; then True unless the entry is no longer ours
        (or the worker stops before they are fresh again)."""
        while not self.is_fresh():
            if self._stopping:
                return False
            self._fresh.clear()
            await self._fresh.wait()
        return self.ours(token)

    def ours(self, token: str | None) -> bool:
        """False for an entry a renewal found in another worker's hands."""
        if token is None or token not in self._gone:
            return True
        self._gone.discard(token)
        return False

    def is_fresh(self) -> bool:
        """Renewed within half a lease: nobody can have reclaimed what we hold."""
        return self._clock() - self._renewed_at < self.lease_s / 2

    def call_when_fresh(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once, from the loop) after the next successful renewal."""
        self._when_fresh.append(callback)

    async def run(self) -> None:
        """Renew every quarter lease until closed; a failed renewal is tried again."""
        while not self._closing:
            self.sleeping = True
            try:
                await asyncio.sleep(self.every_s)
            finally:
                self.sleeping = False
            try:
                await self.renew()
            except (RedisError, OSError) as error:
                log.warning("could not renew request leases (%s); retrying", error)

    async def close(self, heartbeat: asyncio.Task[None]) -> None:
        """End :meth:`run` (its task is ``heartbeat``) without cutting a Redis command
        short: a command cancelled mid-reply can leave redis-py's connection stuck."""
        self._closing = True
        if self.sleeping:
            heartbeat.cancel()
        await asyncio.wait([heartbeat], timeout=5.0)
        if not heartbeat.done():
            heartbeat.cancel()  # Redis is unreachable: do not wait for it on exit

    async def renew(self) -> None:
        """Reset the idle time of every entry we hold; drop those another worker took."""
        sent_at = self._clock()
        tokens = list(self._held)
        for start in range(0, len(tokens), _RENEW_CHUNK):
            chunk = tokens[start : start + _RENEW_CHUNK]
            gone = await self._renew(
                keys=[self._keys.requests], args=[GROUP, self._consumer, *chunk]
            )
            self._forget([as_text(token) for token in gone])
        self.renewals += 1
        self._renewed_at = sent_at
        self._fresh.set()
        callbacks, self._when_fresh = self._when_fresh, []
        loop = asyncio.get_running_loop()
        for callback in callbacks:
            loop.call_soon(callback)

    def _forget(self, tokens: list[str]) -> None:
        # Committed meanwhile (acknowledged, so no longer pending): nothing to drop.
        held, committing = self._held, self._committing
        taken = [token for token in tokens if token in held and token not in committing]
        if taken:
            self.lost += len(taken)
            log.warning("%d requests were reclaimed by other workers; skipping them", len(taken))
            self._unhold(taken)
            self._gone.update(taken)
