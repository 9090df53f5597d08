"""Distributed jobs on Redis Streams: connections, key names, job records and status.

Import rule: only the ``queues/redis/`` package imports redis. Its modules: this one,
``worker_queue.py`` (the WorkQueue and ResultStore of a worker), ``rate.py`` (rate limits
shared by all workers), ``collect.py`` (reading results back) and ``codec.py`` (JSON
payloads; no redis import).

Every key of a job lives under ``asyncfetch:{JOB}:``. The braces are a Redis Cluster hash
tag: all keys of a job share one slot, so the atomic scripts that touch several of them
work on a cluster too.

Redis errors never leave these modules: they become :class:`QueueError` (CLI exit 3), and
the URL in any message has its password redacted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from ..._errors import ConfigError, QueueError
from ...policy.redact import redact_url

log = logging.getLogger("asyncfetch")
T = TypeVar("T")
Redis = aioredis.Redis

GROUP = "workers"
# At most this many records share one entry of the results stream (a worker commits its
# results in chunks of this many): readers size their reads by it.
RECORDS_PER_RESULTS_ENTRY = 100
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
)
# How long an outage may last before a worker gives up with exit 3. Long enough to ride
# out a Redis restart or a failover; short enough that a dead server is noticed.
OUTAGE_LIMIT_S = 600.0
_BACKOFF_FIRST_S = 0.1
_BACKOFF_CAP_S = 5.0
_MAX_JOB_NAME = 200


def redact_redis_url(url: str) -> str:
    """The URL with its user and password hidden, for messages and logs."""
    return redact_url(url)


@dataclass(frozen=True, slots=True)
class JobKeys:
    """The Redis key names of one job."""

    job: str

    def __post_init__(self) -> None:
        name = self.job
        if not name or len(name) > _MAX_JOB_NAME or not name.isprintable():
            raise ConfigError("--job must be 1 to 200 printable characters, e.g. --job crawl-1")
        if any(char in name for char in "{} "):
            raise ConfigError("--job must not contain braces or spaces, e.g. --job crawl-1")

    def key(self, part: str) -> str:
        return f"asyncfetch:{{{self.job}}}:{part}"

    @property
    def requests(self) -> str:
        return self.key("requests")

    @property
    def results(self) -> str:
        return self.key("results")

    @property
    def dead(self) -> str:
        return self.key("dead")

    @property
    def options(self) -> str:
        return self.key("options")

    @property
    def meta(self) -> str:
        return self.key("meta")

    @property
    def ticks(self) -> str:
        """Per-commit counts with server timestamps (entry ids): the basis of ``rate``."""
        return self.key("ticks")

    def rate(self, scope: str) -> str:
        return self.key(f"rate:{scope}")


def open_client(url: str) -> Redis:
    """A client for ``redis://`` or ``rediss://`` URLs (password and TLS options included).

    redis-py retries a failed command a few times with jittered backoff; the callers add
    their own longer loop (:func:`retrying`) so that a worker outlives a Redis restart.
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("--redis must be a redis://, rediss:// or unix:// URL")
    try:
        return aioredis.Redis.from_url(
            url,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
            retry_on_error=[redis_errors.ConnectionError, redis_errors.TimeoutError],
            socket_connect_timeout=5.0,
            # Longer than any BLOCK we use, so a blocked read is never taken for a hang.
            socket_timeout=15.0,
            health_check_interval=15,
        )
    except ValueError as error:
        raise ConfigError(f"invalid Redis URL {redact_redis_url(url)}: {error}") from error


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Redis]:
    """An open client that has answered PING; QueueError (exit 3) if Redis is unreachable."""
    client = open_client(url)
    try:
        try:
            await client.ping()
        except redis_errors.RedisError as error:
            raise QueueError(f"cannot reach Redis at {redact_redis_url(url)}: {error}") from error
        try:
            yield client
        except redis_errors.RedisError as error:
            raise QueueError(f"Redis error: {error}") from error
    finally:
        await client.aclose()


async def retrying(operation: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``operation`` until it succeeds, backing off (capped, jittered) while Redis is
    unreachable; give up with QueueError after OUTAGE_LIMIT_S of continuous failure."""
    delay = _BACKOFF_FIRST_S
    deadline: float | None = None
    while True:
        try:
            return await operation()
        except TRANSIENT_ERRORS as error:
            now = time.monotonic()
            if deadline is None:
                deadline = now + OUTAGE_LIMIT_S
                log.warning("Redis unavailable while %s (%s); retrying", what, error)
            if now >= deadline:
                raise QueueError(
                    f"Redis unreachable for {OUTAGE_LIMIT_S:.0f} s while {what}: {error}"
                ) from error
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, _BACKOFF_CAP_S)
        except redis_errors.RedisError as error:
            raise QueueError(f"Redis error while {what}: {error}") from error


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stream_id_key(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1700000000000-3"`` → ``(1700000000000, 3)``, for ordering stream ids."""
    millis, _, sequence = as_text(entry_id).partition("-")
    return int(millis), int(sequence or 0)


# -- the job record -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobCounts:
    """The counters a job keeps in its ``meta`` hash, updated atomically with the streams."""

    enqueued: int
    done: int
    dead: int
    enqueue_finished: bool
    created_ms: int

    @property
    def complete(self) -> bool:
        """Every enqueued entry is acknowledged: by a result or by a dead letter.

        Both counters only grow in the same atomic step that acknowledges an entry (and
        only when the acknowledgement took effect), so no entry can still be pending, or
        be waiting to be reclaimed from a dead worker, once this is true.
        """
        return self.enqueue_finished and self.done + self.dead >= self.enqueued


async def read_counts(client: Redis, keys: JobKeys) -> JobCounts | None:
    """The job's counters, or None when no job of that name exists."""
    meta: dict[Any, Any] = await client.hgetall(keys.meta)
    if not meta:
        return None

    def number(name: bytes) -> int:
        return int(meta.get(name, b"0"))

    return JobCounts(
        enqueued=number(b"enqueued"),
        done=number(b"done"),
        dead=number(b"dead"),
        enqueue_finished=meta.get(b"enqueue_finished") == b"1",
        created_ms=number(b"created_ms"),
    )


async def server_time_ms(client: Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def create_job(
    client: Redis,
    keys: JobKeys,
    options: dict[str, Any],
    append: bool = False,
    *,
    fingerprint: bytes = b"null",
) -> None:
    """Create the job (its options, counters and consumer group), or reopen it to append.

    ``fingerprint`` identifies the enqueue's inputs, for ``enqueue --resume``
    (enqueue.py).
    """
    exists = await client.exists(keys.meta)
    if exists and not append:
        raise ConfigError(
            f"job {keys.job!r} already exists; choose another --job or pass --append"
        )
    if exists:
        await client.hset(keys.meta, "enqueue_finished", "0")
        return
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.options, orjson.dumps(options))
        pipe.hset(
            keys.meta,
            mapping={
                "created_ms": await server_time_ms(client),
                "enqueued": 0,
                "done": 0,
                "dead": 0,
                "enqueue_finished": 0,
                "enqueue_position": 0,
                "enqueue_input": fingerprint,
            },
        )
        pipe.xgroup_create(keys.requests, GROUP, id="0", mkstream=True)
        await pipe.execute()


async def load_options(client: Redis, keys: JobKeys) -> dict[str, Any] | None:
    payload = await client.get(keys.options)
    if payload is None:
        return None
    options = orjson.loads(payload)
    if not isinstance(options, dict):
        raise QueueError(f"the options of job {keys.job!r} are not a JSON object")
    return options


async def add_requests(client: Redis, keys: JobKeys, payloads: list[bytes]) -> None:
    """XADD a batch of request payloads and count them, in one transaction: the
    ``enqueued`` counter always matches the stream. (The CLI's enqueue uses
    enqueue.Enqueuer, which also survives being killed and resent.)"""
    async with client.pipeline(transaction=True) as pipe:
        for payload in payloads:
            pipe.xadd(keys.requests, {"r": payload})
        pipe.hincrby(keys.meta, "enqueued", len(payloads))
        pipe.hincrby(keys.meta, "enqueue_position", len(payloads))
        await pipe.execute()


async def finish_enqueue(client: Redis, keys: JobKeys) -> None:
    await client.hset(keys.meta, "enqueue_finished", "1")


# -- status ---------------------------------------------------------------------------

_RATE_WINDOW_MS = 60_000


async def job_status(redis_url: str, job: str) -> dict[str, Any]:
    """A job's progress: counts, pending entries per consumer, recent rate, completeness.

    Raises ConfigError for an unknown job and QueueError when Redis is unreachable.
    """
    keys = JobKeys(job)
    async with connected(redis_url) as client:
        counts = await read_counts(client, keys)
        if counts is None:
            raise ConfigError(f"no job named {job!r} on {redact_redis_url(redis_url)}")
        by_consumer = await _pending_by_consumer(client, keys)
        rate = await _recent_rate(client, keys, counts.created_ms)
    return {
        "job": job,
        "enqueued": counts.enqueued,
        "enqueue_finished": counts.enqueue_finished,
        "done": counts.done,
        "pending": sum(by_consumer.values()),
        "pending_by_consumer": by_consumer,
        "dead_lettered": counts.dead,
        "rate": rate,
        "complete": counts.complete,
    }


async def _pending_by_consumer(client: Redis, keys: JobKeys) -> dict[str, int]:
    try:
        consumers: list[dict[str, Any]] = await client.xinfo_consumers(keys.requests, GROUP)
    except redis_errors.ResponseError:
        return {}  # no group yet: nothing can be pending
    return {as_text(info["name"]): int(info["pending"]) for info in consumers}


async def _recent_rate(client: Redis, keys: JobKeys, created_ms: int) -> float:
    """Results per second over the last minute (or since the job was created)."""
    now_ms = await server_time_ms(client)
    since = max(created_ms, now_ms - _RATE_WINDOW_MS)
    ticks: Any = await client.xrange(keys.ticks, min=since)
    finished = sum(int(fields.get(b"n", b"0")) for _entry, fields in ticks)
    window_s = max(1.0, (now_ms - since) / 1000)
    return round(finished / window_s, 2)
