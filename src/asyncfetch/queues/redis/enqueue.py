"""Crash-safe enqueue: every input request lands in the job's stream exactly once, even if
``enqueue`` is killed (kill -9 included) and run again with ``--resume``.

Imports redis, as only the ``queues/redis/`` package may (see ``jobs.py``).

The job's ``meta`` hash holds the enqueue's place in its input: ``enqueue_position`` (how
many input items, requests and invalid lines alike, are in the stream) and
``enqueue_input`` (the fingerprint of the inputs and options that position refers to).
Each batch is XADDed by a Lua script that also moves the position, so the two never
disagree, whatever moment a crash picks. The script adds the batch only if the position
is still the one the batch starts from: a batch resent after a lost reply, or a second
enqueue racing the first, adds nothing twice. A resumed enqueue reads its input again and
skips that many items: nothing is kept in memory per request, and the input may be
streamed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..._errors import ConfigError, QueueError
from .jobs import JobKeys, Redis, create_job, retrying

# KEYS: requests, meta. ARGV: position before, position after, payloads.
_ADD = """
local position = tonumber(redis.call('HGET', KEYS[2], 'enqueue_position') or '0')
if position ~= tonumber(ARGV[1]) then
  return position
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'r', ARGV[i])
end
redis.call('HINCRBY', KEYS[2], 'enqueued', #ARGV - 2)
redis.call('HSET', KEYS[2], 'enqueue_position', ARGV[2])
return tonumber(ARGV[2])
"""

Fingerprinter = Callable[[str | None], dict[str, Any]]
Differences = Callable[[dict[str, Any], dict[str, Any]], list[str]]


async def begin_enqueue(
    client: Redis,
    keys: JobKeys,
    options: dict[str, Any],
    make_fingerprint: Fingerprinter,
    differences: Differences,
    *,
    append: bool,
    resume: bool,
) -> int | None:
    """Create or reopen the job; return how many input items are already in it (skip
    them), or None when an earlier run with these inputs finished the enqueue.

    ``make_fingerprint(salt)`` identifies the inputs and options (see
    :func:`asyncfetch.resume.fingerprint`); ``differences`` compares two fingerprints.
    """
    meta: dict[Any, Any] = await client.hgetall(keys.meta)
    if not meta:
        fingerprint = make_fingerprint(None)
        await create_job(client, keys, options, fingerprint=orjson.dumps(fingerprint))
        return 0
    finished = meta.get(b"enqueue_finished") == b"1"
    stored = orjson.loads(meta.get(b"enqueue_input", b"null"))
    if resume and stored is not None:
        problems = differences(stored, make_fingerprint(stored.get("salt")))
        if not problems:
            return None if finished else int(meta.get(b"enqueue_position", b"0"))
        if not (append and finished):
            raise ConfigError(f"cannot resume the enqueue of job {keys.job!r}: {problems[0]}")
    if not append and not resume:
        raise ConfigError(
            f"job {keys.job!r} already exists; choose another --job, pass --append to add"
            " to it, or --resume to finish an interrupted enqueue"
        )
    if not finished:
        raise ConfigError(
            f"an earlier enqueue into job {keys.job!r} did not finish: run it again with"
            " --resume first"
        )
    await _start_append(client, keys, orjson.dumps(make_fingerprint(None)))
    return 0


async def _start_append(client: Redis, keys: JobKeys, fingerprint: bytes) -> None:
    await client.hset(
        keys.meta,
        mapping={"enqueue_input": fingerprint, "enqueue_position": 0, "enqueue_finished": 0},
    )


class Enqueuer:
    """Adds batches of request payloads at the job's enqueue position (see the module)."""

    def __init__(self, client: Redis, keys: JobKeys, position: int) -> None:
        self._keys = keys
        self._add = client.register_script(_ADD)
        self.position = position
        self.added = 0

    async def add(self, payloads: list[bytes]) -> None:
        before, after = self.position, self.position + len(payloads)
        keys = [self._keys.requests, self._keys.meta]
        now = await retrying(
            lambda: self._add(keys=keys, args=[before, after, *payloads]), "enqueueing"
        )
        # ``now != after``: the position moved under us; only another enqueue does that.
        if int(now) != after:
            raise QueueError(
                f"another enqueue is adding to job {self._keys.job!r} at the same time;"
                " run one at a time"
            )
        self.position = after
        self.added += len(payloads)
