"""Adaptive politeness against local servers that enforce a limit, judged by what they saw.

The token-bucket host answers 429 with Retry-After beyond its rate; the knee host gets
slower with every request in flight past its knee. No assertion reads the client's clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncfetch import fetch_all
from tests.cli_helpers import read_jsonl, run_cli
from tests.limited_server import LimitedServer


@pytest.fixture
async def limited() -> AsyncIterator[LimitedServer]:
    server = LimitedServer(rate=100, burst=20, retry_after=1, knee=3)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def test_a_rate_limited_host_gets_close_to_its_rate_with_few_429s(
    limited: LimitedServer, engine: str
) -> None:
    limited.burst = limited.rate  # "100 requests a second": a second's worth may come at once
    urls = [limited.url(f"/bucket/{n}") for n in range(500)]
    results = await fetch_all(urls, engine=engine, concurrency=50)
    assert all(result.ok for result in results)
    bucket = limited.bucket
    assert bucket.rejected <= 0.05 * len(urls)
    # After the first burst, the host accepted close to the 100 req/s it allows.
    assert bucket.accepted_rate(skip=int(limited.burst)) >= 0.7 * limited.rate


async def test_a_host_with_a_small_burst_allowance_is_learned_more_slowly_but_politely(
    limited: LimitedServer,
) -> None:
    urls = [limited.url(f"/bucket/{n}") for n in range(400)]  # 100 req/s, bursts of 20
    results = await fetch_all(urls, concurrency=50)
    assert all(result.ok for result in results)
    assert limited.bucket.rejected <= 0.05 * len(urls)
    assert limited.bucket.accepted_rate(skip=int(limited.burst)) >= 0.4 * limited.rate


async def test_without_adaptation_the_same_host_rejects_far_more(
    limited: LimitedServer,
) -> None:
    urls = [limited.url(f"/bucket/{n}") for n in range(200)]
    await fetch_all(urls, concurrency=50, adapt=False)
    # The bar the adaptive run passes above: fixed limits miss it.
    assert limited.bucket.rejected > 0.05 * len(urls)


async def test_a_host_slowing_past_its_knee_gets_fewer_requests_at_once(
    limited: LimitedServer, engine: str
) -> None:
    urls = [limited.url(f"/knee/{n}") for n in range(150)]
    results = await fetch_all(urls, engine=engine, per_host=8)
    assert all(result.ok for result in results)
    settled = limited.knee_log.arrivals[40:]
    past_knee = sum(1 for in_flight in settled if in_flight > limited.knee + 1)
    assert past_knee <= 0.25 * len(settled)


async def test_with_fixed_limits_the_knee_host_stays_overloaded(limited: LimitedServer) -> None:
    urls = [limited.url(f"/knee/{n}") for n in range(60)]
    await fetch_all(urls, per_host=8, adapt=False)
    settled = limited.knee_log.arrivals[20:]
    assert sum(1 for in_flight in settled if in_flight > limited.knee + 1) > 0.5 * len(settled)


async def test_a_healthy_host_is_not_held_back(limited: LimitedServer, engine: str) -> None:
    from tests.recording_server import RecordingServer

    server = RecordingServer()
    await server.start()
    try:
        urls = [server.url(f"/delay/30?n={n}") for n in range(160)]
        results = await fetch_all(urls, engine=engine, concurrency=50, per_host=8)
    finally:
        await server.close()
    assert all(result.ok for result in results)
    assert server.recorder.peak == 8


async def test_retry_after_pauses_the_whole_host(limited: LimitedServer, tmp_path: Path) -> None:
    limited.burst = limited.rate = 1  # one request a second, the rest get Retry-After: 1
    urls = "".join(limited.url(f"/bucket/{n}") + "\n" for n in range(5))
    (tmp_path / "urls.txt").write_text(urls)
    summary = tmp_path / "summary.json"
    completed = await run_cli(
        "fetch",
        str(tmp_path / "urls.txt"),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--summary-json",
        str(summary),
    )
    assert completed.code == 0, completed.stderr
    records = read_jsonl(tmp_path / "out.jsonl")
    assert all(record["ok"] for record in records)
    # Each 429 paused the whole host for its Retry-After: in the second after a rejection
    # nothing arrived (but what was already on its way, within a few milliseconds).
    bucket = limited.bucket
    assert bucket.rejected >= 1
    arrivals = bucket.accepted_at + bucket.rejected_at
    for rejected in bucket.rejected_at:
        assert not [at for at in arrivals if rejected + 0.05 < at < rejected + 0.95]
    hosts = json.loads(summary.read_text())["host_limits"]
    assert hosts[0]["host"] == "127.0.0.1"
    assert hosts[0]["status_429"] == bucket.rejected
    assert hosts[0]["rate"] is not None
    assert "127.0.0.1" in completed.stderr and "429" in completed.stderr


async def test_per_host_rate_on_fetch_holds_without_a_single_429(
    limited: LimitedServer, tmp_path: Path
) -> None:
    urls = "".join(limited.url(f"/bucket/{n}") + "\n" for n in range(60))
    (tmp_path / "urls.txt").write_text(urls)
    completed = await run_cli(
        "fetch",
        str(tmp_path / "urls.txt"),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--per-host-rate",
        "50",
        "-q",
    )
    assert completed.code == 0, completed.stderr
    assert limited.bucket.rejected == 0
    assert limited.bucket.accepted_rate(skip=1) <= 55


async def test_a_bad_per_host_rate_is_a_usage_error(tmp_path: Path) -> None:
    completed = await run_cli("fetch", "--per-host-rate", "0", "http://127.0.0.1:9/")
    assert completed.code == 2
    assert "per-host-rate" in completed.stderr
    assert "Traceback" not in completed.stderr


async def test_the_library_shows_what_it_learned(limited: LimitedServer) -> None:
    from asyncfetch import Fetcher

    async with Fetcher(concurrency=20) as fetcher:
        results = [r async for r in fetcher.stream(limited.url(f"/bucket/{n}") for n in range(80))]
        (host,) = fetcher.host_limits()
    assert all(result.ok for result in results)
    assert host.host == "127.0.0.1"
    assert host.throttled_429 == limited.bucket.rejected > 0
    assert host.rate is not None and host.rate_range is not None
    assert host.requests == limited.bucket.accepted + limited.bucket.rejected
