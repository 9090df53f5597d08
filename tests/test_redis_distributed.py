"""Distributed mode as users run it: enqueue, several worker processes, collect.

Real redis-server (tests/redis_server.py), real HTTP server (tests/recording_server.py),
workers as subprocesses. ASYNCFETCH_KILL_ROUNDS sets how often the kill -9 test kills a
worker (default 3); rerun it with a larger count to hunt for rare losses.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from asyncfetch.queues.redis.jobs import JobKeys, job_status

from .cli_helpers import cli_env, read_jsonl, run_cli
from .recording_server import RecordingServer
from .redis_results import stored_results
from .redis_server import RedisServer, free_port, running_redis

KILL_ROUNDS = int(os.environ.get("ASYNCFETCH_KILL_ROUNDS", "3"))


class Worker:
    """One ``asyncfetch worker`` process; its stderr goes to a file (no pipe to fill)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @classmethod
    async def start(
        cls, redis: RedisServer, job: str, log: Path, *args: str, env: dict[str, str] | None = None
    ) -> Worker:
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "asyncfetch",
                "worker",
                "--redis",
                redis.url,
                "--job",
                job,
                "--no-progress",
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env={**cli_env(), **(env or {})},
            )
        return cls(process, log)

    async def wait(self, timeout: float = 90) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    def summary(self, key: str) -> int:
        for line in self.log.read_text().splitlines():
            if line.startswith(f"asyncfetch: {key}: "):
                return int(line.rsplit(" ", 1)[1])
        return 0


async def enqueue(
    redis: RedisServer, job: str, urls: Sequence[str], tmp_path: Path, *args: str
) -> None:
    source = tmp_path / f"{job}.txt"
    source.write_text("".join(url + "\n" for url in urls))
    done = await run_cli("enqueue", str(source), "--redis", redis.url, "--job", job, *args)
    assert done.code == 0, done.stderr


async def collect(redis: RedisServer, job: str, out: Path) -> list[dict[str, Any]]:
    done = await run_cli("collect", "--redis", redis.url, "--job", job, "-o", str(out), "-q")
    assert done.code == 0, done.stderr
    return read_jsonl(out)


async def results_by_worker(redis: RedisServer, job: str) -> Counter[str]:
    client = aioredis.Redis.from_url(redis.url)
    try:
        stored = await stored_results(client, JobKeys(job).results)
    finally:
        await client.aclose()
    return Counter(row.by for row in stored)


def assert_exactly_once(records: list[dict[str, Any]], urls: Sequence[str]) -> None:
    collected = Counter(record["url"] for record in records)
    lost = set(urls) - set(collected)
    duplicates = sum(count - 1 for count in collected.values())
    assert (len(lost), duplicates) == (0, 0), f"lost {len(lost)}, duplicates {duplicates}"
    assert len(records) == len(urls)


async def test_workers_share_a_job_and_each_request_has_one_record(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(5000)]
    await enqueue(redis_server, "share", urls, tmp_path, "-c", "50", "--body", "none")
    logs = [tmp_path / f"w{n}.log" for n in range(2)]
    workers = [await Worker.start(redis_server, "share", log) for log in logs]
    assert [await worker.wait() for worker in workers] == [0, 0], logs[0].read_text()

    records = await collect(redis_server, "share", tmp_path / "out.jsonl")
    assert_exactly_once(records, urls)
    assert all(record["ok"] for record in records)
    assert len(server.recorder.requests) == 5000  # no request was sent twice
    shares = await results_by_worker(redis_server, "share")
    assert len(shares) == 2 and min(shares.values()) > 500, shares
    status = await job_status(redis_server.url, "share")
    assert (status["done"], status["pending"], status["complete"]) == (5000, 0, True)


async def test_kill_9_loses_nothing_and_duplicates_nothing(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    step = 600
    urls = [server.url(f"/delay/5?n={n}") for n in range(step * (KILL_ROUNDS + 2))]
    await enqueue(redis_server, "kill", urls, tmp_path, "-c", "20", "--body", "none")
    args = ("--lease", "1.5")
    workers = [
        await Worker.start(redis_server, "kill", tmp_path / f"w{n}.log", *args) for n in range(3)
    ]
    killed = 0
    while killed < KILL_ROUNDS:
        status = await job_status(redis_server.url, "kill")
        if status["done"] < step * (killed + 1):
            await asyncio.sleep(0.05)
            continue
        victim = random.choice([w for w in workers if w.process.returncode is None])
        victim.process.send_signal(signal.SIGKILL)
        await victim.wait()
        killed += 1
        log = tmp_path / f"w{len(workers)}.log"
        workers.append(await Worker.start(redis_server, "kill", log, *args))
    codes = [await worker.wait() for worker in workers]
    assert codes.count(-signal.SIGKILL) == KILL_ROUNDS and codes.count(0) == 3, codes

    records = await collect(redis_server, "kill", tmp_path / "out.jsonl")
    assert_exactly_once(records, urls)
    assert sum(w.summary("reclaimed") for w in workers) > 0  # the dead ones' entries moved
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert len(await stored_results(client, JobKeys("kill").results)) == len(urls)
    finally:
        await client.aclose()


async def test_a_poison_request_is_dead_lettered_after_max_deliveries(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(100)] + [server.url("/ok?poison=1")]
    await enqueue(redis_server, "poison", urls, tmp_path, "-c", "10")
    env = {"ASYNCFETCH_TEST_CRASH_ON": "poison"}
    args = ("--lease", "1", "--max-deliveries", "3")
    crashes = 0
    for name in ("w0", "w1"):
        log = tmp_path / f"{name}.log"
        # A crashed worker restarts under its name, so it first drains its own entries.
        while (
            code := await (
                await Worker.start(redis_server, "poison", log, "--name", name, *args, env=env)
            ).wait()
        ) == 70:
            crashes += 1
        assert code == 0, log.read_text()
    assert crashes == 3

    records = await collect(redis_server, "poison", tmp_path / "out.jsonl")
    assert_exactly_once(records, urls)
    poison = [record for record in records if "poison" in record["url"]]
    assert poison[0]["error"]["kind"] == "internal"
    assert "dead-lettered after 3 deliveries" in poison[0]["error"]["message"]
    assert sum(1 for record in records if record["ok"]) == 100
    status = await job_status(redis_server.url, "poison")
    assert (status["dead_lettered"], status["done"], status["complete"]) == (1, 100, True)


async def test_sigterm_gives_read_ahead_back_for_others_at_once(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/delay/20?n={n}") for n in range(400)]
    await enqueue(redis_server, "term", urls, tmp_path, "-c", "10", "--body", "none")
    first = await Worker.start(redis_server, "term", tmp_path / "first.log")
    while (await job_status(redis_server.url, "term"))["done"] < 50:
        await asyncio.sleep(0.05)
    first.process.send_signal(signal.SIGTERM)
    assert await first.wait() == 130
    # With a lease this long, only given-back entries can be taken by the second worker.
    second = await Worker.start(redis_server, "term", tmp_path / "second.log", "--lease", "600")
    assert await second.wait(timeout=60) == 0, second.log.read_text()
    records = await collect(redis_server, "term", tmp_path / "out.jsonl")
    assert_exactly_once(records, urls)


def peak_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    peak = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


async def test_the_rate_limit_holds_across_workers(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    rate, burst, tolerance = 20.0, 1, 0.25
    urls = [server.url(f"/ok?n={n}") for n in range(60)]
    await enqueue(redis_server, "rate", urls, tmp_path, "-c", "20", "--rate", str(rate))
    workers = [await Worker.start(redis_server, "rate", tmp_path / f"w{n}.log") for n in range(2)]
    assert [await worker.wait() for worker in workers] == [0, 0]

    times = [seen.at for seen in server.recorder.requests]
    assert len(times) == 60
    for window in (0.5, 1.0, 2.0):
        allowed = rate * window * (1 + tolerance) + burst
        assert peak_in_window(times, window) <= allowed, (window, peak_in_window(times, window))
    assert min(shares := (await results_by_worker(redis_server, "rate")).values()) > 0, shares


async def test_a_worker_rides_out_a_redis_restart(
    server: RecordingServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/delay/2?n={n}") for n in range(2000)]
    await enqueue(redis_server, "outage", urls, tmp_path, "-c", "20", "--body", "none")
    workers = [
        await Worker.start(redis_server, "outage", tmp_path / f"w{n}.log") for n in range(2)
    ]
    # Both workers are reading (a worker that cannot reach Redis at start exits 3).
    while len((await job_status(redis_server.url, "outage"))["pending_by_consumer"]) < 2:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(redis_server.restart, 2.0)
    assert [await worker.wait() for worker in workers] == [0, 0]
    assert any("Redis unavailable" in w.log.read_text() for w in workers)

    records = await collect(redis_server, "outage", tmp_path / "out.jsonl")
    assert_exactly_once(records, urls)


async def test_secrets_usage_errors_and_unreachable_redis(
    server: RecordingServer, tmp_path: Path
) -> None:
    password = "s3cret-pass"
    with running_redis(tmp_path / "redis", password=password) as redis_server:
        source = tmp_path / "urls.txt"
        source.write_text(server.url("/ok") + "\nnot a url\n")
        base = ("--redis", redis_server.url, "--job", "secret")
        first = await run_cli("enqueue", str(source), *base)
        assert first.code == 0 and password not in first.stderr, first.stderr
        assert "enqueued 2 requests" in first.stderr
        again = await run_cli("enqueue", str(source), *base)
        assert again.code == 2 and "--append" in again.stderr
        unknown = await run_cli("worker", "--redis", redis_server.url, "--job", "nope", "-q")
        assert unknown.code == 2 and "no job named 'nope'" in unknown.stderr
        worker = await run_cli("worker", *base, "-q")
        assert worker.code == 0, worker.stderr
        records = await collect(redis_server, "secret", tmp_path / "out.jsonl")
        kinds = sorted(str((record["error"] or {}).get("kind")) for record in records)
        assert kinds == ["None", "invalid_input"]
    gone = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    for command in ("enqueue", "worker", "collect"):
        extra = [str(source)] if command == "enqueue" else []
        failed = await run_cli(command, *extra, "--redis", gone, "--job", "x", "-q")
        assert failed.code == 3, (command, failed.stderr)
        assert password not in failed.stderr and "cannot reach Redis" in failed.stderr


async def test_workers_share_what_they_learn_about_a_rate_limited_host(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from .limited_server import LimitedServer

    limited = LimitedServer(rate=100, burst=20, retry_after=1)
    await limited.start()
    try:
        urls = [limited.url(f"/bucket/{n}") for n in range(300)]
        await enqueue(redis_server, "polite", urls, tmp_path)
        workers = [
            await Worker.start(redis_server, "polite", tmp_path / f"w{n}.log") for n in range(2)
        ]
        assert [await worker.wait() for worker in workers] == [0, 0]
    finally:
        await limited.close()
    records = await collect(redis_server, "polite", tmp_path / "out.jsonl")
    assert all(record["ok"] for record in records)
    assert len(records) == len(urls)
    bucket = limited.bucket
    assert bucket.rejected <= 0.08 * len(urls)
    # Looser than one process's bar: a run this short is mostly the learning.
    assert bucket.accepted_rate(skip=20) >= 0.4 * limited.rate
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        learned = await client.hgetall(JobKeys("polite").rate("learned:127.0.0.1"))
    finally:
        await client.aclose()
    assert float(learned[b"cut"]) > 0  # one rate for the host, in Redis, for both workers
    # Each worker's summary names the host and what it learned, as fetch's does.
    logs = [(tmp_path / f"w{n}.log").read_text() for n in range(2)]
    assert any("host 127.0.0.1:" in log and "× 429" in log for log in logs), logs
