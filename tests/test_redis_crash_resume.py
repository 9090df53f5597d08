"""enqueue and collect killed with kill -9 and run again: every request exactly once.

Real redis-server, the CLI as subprocesses. ASYNCFETCH_ENQUEUE_KILLS and
ASYNCFETCH_COLLECT_KILLS set how often each is killed (default 5); rerun with larger
counts to hunt for rare losses or duplicates.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from asyncfetch._models import Request, Result, Timings
from asyncfetch.policy.records import failure_result
from asyncfetch.queues.base import WorkItem
from asyncfetch.queues.redis.codec import decode_request, encode_request
from asyncfetch.queues.redis.jobs import GROUP, JobKeys, add_requests, create_job, finish_enqueue
from asyncfetch.queues.redis.worker_queue import RedisResultStore

from .cli_helpers import read_jsonl, run_cli, start_cli
from .redis_server import RedisServer

ENQUEUE_KILLS = int(os.environ.get("ASYNCFETCH_ENQUEUE_KILLS", "5"))
COLLECT_KILLS = int(os.environ.get("ASYNCFETCH_COLLECT_KILLS", "5"))


async def _kill_after_progress(
    process: asyncio.subprocess.Process, progress: AsyncIterator[int]
) -> bool:
    """kill -9 ``process`` a random moment after ``progress`` first moves; False if it
    finished first."""
    async for _moved in progress:
        break
    await asyncio.sleep(random.uniform(0, 0.05))
    if process.returncode is not None:
        return False
    process.send_signal(signal.SIGKILL)
    await process.wait()
    return True


async def _position_moves(
    client: aioredis.Redis, keys: JobKeys, process: asyncio.subprocess.Process
) -> AsyncIterator[int]:
    """Yields once the enqueue position has moved past where it was (or the process ended)."""
    start = int(await client.hget(keys.meta, "enqueue_position") or 0)
    while process.returncode is None:
        now = int(await client.hget(keys.meta, "enqueue_position") or 0)
        if now > start:
            yield now
            return
        await asyncio.sleep(0.005)
    yield start


async def test_enqueue_killed_again_and_again_adds_each_request_once(
    redis_server: RedisServer, client: aioredis.Redis, tmp_path: Path
) -> None:
    lines = 6_000 * max(ENQUEUE_KILLS, 5)  # room for every kill to land mid-run
    source = tmp_path / "urls.txt"
    source.write_text("".join(f"http://127.0.0.1:9/item/{n}\n" for n in range(lines)))
    keys = JobKeys("enq")
    command = ("enqueue", str(source), "--redis", redis_server.url, "--job", "enq", "-q")
    kills = 0
    for _round in range(ENQUEUE_KILLS):
        process = await start_cli(*command, "--resume")
        if not await _kill_after_progress(process, _position_moves(client, keys, process)):
            break
        kills += 1
    done = await run_cli(*command, "--resume")
    assert done.code == 0, done.stderr
    again = await run_cli(*command, "--resume")  # finished already: adds nothing
    assert again.code == 0, again.stderr

    entries = await client.xrange(keys.requests)
    urls = Counter(orjson.loads(fields[b"r"])["url"] for _entry, fields in entries)
    lost = lines - len(urls)
    duplicated = sum(count - 1 for count in urls.values())
    print(f"\nenqueue killed {kills} times: {lost} lost, {duplicated} duplicated")
    assert (lost, duplicated) == (0, 0)
    assert kills >= min(ENQUEUE_KILLS, 2), "the enqueue finished before it could be killed"
    meta = await client.hgetall(keys.meta)
    assert int(meta[b"enqueued"]) == int(meta[b"enqueue_position"]) == lines
    assert meta[b"enqueue_finished"] == b"1"


async def test_enqueue_refuses_to_resume_with_another_input(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("http://127.0.0.1:9/a\n")
    second.write_text("http://127.0.0.1:9/b\nhttp://127.0.0.1:9/c\n")
    base = ("--redis", redis_server.url, "--job", "mix")
    assert (await run_cli("enqueue", str(first), *base)).code == 0
    again = await run_cli("enqueue", str(first), *base)
    assert again.code == 2 and "--resume" in again.stderr
    other = await run_cli("enqueue", str(second), *base, "--resume")
    assert other.code == 2 and "is not the input of the job" in other.stderr, other.stderr
    added = await run_cli("enqueue", str(second), *base, "--append", "--resume")
    assert added.code == 0 and "enqueued 2 requests" in added.stderr, added.stderr
    repeat = await run_cli("enqueue", str(second), *base, "--append", "--resume")
    assert repeat.code == 0 and "enqueued 0 requests" in repeat.stderr, repeat.stderr


async def _job_with_results(client: aioredis.Redis, job: str, count: int) -> set[str]:
    """A job whose results stream holds ``count`` records, written by the workers' own
    commit script; every tenth request is enqueued twice (one record per id expected)."""
    keys = JobKeys(job)
    await create_job(client, keys, {})
    requests = [Request.create(f"http://127.0.0.1:9/r/{n}") for n in range(count)]
    twice = requests + requests[::10]
    await add_requests(client, keys, [encode_request(request) for request in twice])
    await finish_enqueue(client, keys)
    store = RedisResultStore(client, keys, "w")
    read = await client.xreadgroup(GROUP, "w", {keys.requests: ">"}, count=len(twice))
    for start in range(0, len(twice), 1000):
        chunk = read[0][1][start : start + 1000]
        await store.commit([_completed(token, fields) for token, fields in chunk])
    return {request.id for request in requests}


def _completed(token: bytes, fields: dict[bytes, bytes]) -> tuple[WorkItem, Result]:
    request = decode_request(fields[b"r"])
    assert isinstance(request, Request)
    result = failure_result(
        request, "connect", "refused", attempts=1, timings=Timings(), started_at="t"
    )
    return WorkItem(request, enqueued_at=0.0, token=token.decode()), result


async def _growth(path: Path, process: asyncio.subprocess.Process) -> AsyncIterator[int]:
    """Yields once ``path`` has grown (or the process ended)."""
    start = path.stat().st_size if path.exists() else 0
    while process.returncode is None:
        size = path.stat().st_size if path.exists() else 0
        if size > start:
            yield size
            return
        await asyncio.sleep(0.005)
    yield start


# JSONL shows the cut back to the committed length; CSV takes the same path
# (tests/test_resume_crash.py runs both for fetch --resume, on the same journal code).
@pytest.mark.parametrize("suffix", ["jsonl"])
async def test_collect_killed_again_and_again_writes_each_record_once(
    redis_server: RedisServer, client: aioredis.Redis, tmp_path: Path, suffix: str
) -> None:
    ids = await _job_with_results(client, "col", 4_000 * max(COLLECT_KILLS, 5))
    out = tmp_path / f"out.{suffix}"
    command = ("collect", "--redis", redis_server.url, "--job", "col", "-o", str(out), "-q")
    kills = 0
    for _round in range(COLLECT_KILLS):
        process = await start_cli(*command)
        if not await _kill_after_progress(process, _growth(out, process)):
            break
        kills += 1
    done = await run_cli(*command)
    assert done.code == 0, done.stderr
    again = await run_cli(*command)  # nothing new: the output stays as it is
    assert again.code == 0, again.stderr

    written = _ids_in(out)
    counts = Counter(written)
    lost = len(ids - set(counts))
    duplicated = sum(n - 1 for n in counts.values())
    print(f"\ncollect ({suffix}) killed {kills} times: {lost} lost, {duplicated} duplicated")
    assert (lost, duplicated, len(written)) == (0, 0, len(ids))
    assert kills >= min(COLLECT_KILLS, 2), "the collect finished before it could be killed"


def _ids_in(out: Path) -> list[str]:
    if out.suffix == ".csv":
        with out.open(newline="") as file:
            return [row["id"] for row in csv.DictReader(file)]
    return [str(record["id"]) for record in read_jsonl(out)]
