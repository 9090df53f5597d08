"""``--metrics-port``: Prometheus metrics scraped from real runs while they go."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .cli_helpers import run_cli, start_cli
from .recording_server import RecordingServer
from .redis_server import RedisServer, running_redis

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_while(process: asyncio.subprocess.Process, port: int, done: int) -> Samples:
    """Scrape until ``done`` requests are counted while some are still in flight."""
    while True:
        assert process.returncode is None, "the run ended before the metrics were seen"
        try:
            samples = await asyncio.to_thread(scrape, port)
        except OSError:
            samples = {}  # not listening yet
        finished = samples.get(("asyncfetch_results_total", (("outcome", "ok"),)), 0)
        if finished >= done and samples.get(("asyncfetch_in_flight", ()), 0) > 0:
            return samples
        await asyncio.sleep(0.05)


async def scrape_run(process: asyncio.subprocess.Process, port: int) -> tuple[Samples, str]:
    """Samples taken while the run goes, and its stderr once it exited 0."""
    try:
        samples = await scrape_while(process, port, done=8)
    finally:
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return samples, stderr.decode()


def slow_urls(server: RecordingServer, count: int) -> list[str]:
    urls = [server.url(f"/status/429?n={n}", host="localhost") for n in range(3)]
    urls += [server.url(f"/status/503?n={n}", host="localhost") for n in range(2)]
    return urls + [server.url(f"/delay/200?n={n}") for n in range(count)]


def check_samples(samples: Samples, server: RecordingServer) -> None:
    ok = samples[("asyncfetch_results_total", (("outcome", "ok"),))]
    failed = samples[("asyncfetch_results_total", (("outcome", "failed"),))]
    assert failed == 5  # the 429s and 503s come first and are never retried (--retries 0)
    assert samples[("asyncfetch_requests_total", (("status_class", "2xx"),))] == ok
    assert samples[("asyncfetch_requests_total", (("status_class", "4xx"),))] == 3
    assert samples[("asyncfetch_request_duration_seconds_count", ())] == ok + failed
    assert (
        samples[("asyncfetch_request_duration_seconds_bucket", (("le", "+Inf"),))] == ok + failed
    )
    # Every delayed request took at least 200 ms, so none is in the 0.1 s bucket.
    assert samples[("asyncfetch_request_duration_seconds_bucket", (("le", "0.1"),))] <= 5
    throttled = f"localhost:{server.port}"
    assert (
        samples[("asyncfetch_host_throttled_total", (("host", throttled), ("status", "429")))] == 3
    )
    assert (
        samples[("asyncfetch_host_throttled_total", (("host", throttled), ("status", "503")))] == 2
    )
    busiest = ("asyncfetch_host_requests_total", (("host", f"127.0.0.1:{server.port}"),))
    assert samples[busiest] == ok


async def test_fetch_serves_metrics_while_it_runs(
    server: RecordingServer, unused_port: int, tmp_path: Path
) -> None:
    source = tmp_path / "urls.txt"
    source.write_text("".join(url + "\n" for url in slow_urls(server, 60)))
    process = await start_cli(
        "fetch",
        str(source),
        "-o",
        str(tmp_path / "o.jsonl"),
        "-c",
        "4",
        "--retries",
        "0",
        "--no-progress",
        "--metrics-port",
        str(unused_port),
    )
    samples, stderr = await scrape_run(process, unused_port)
    check_samples(samples, server)
    assert f"metrics on http://127.0.0.1:{unused_port}/metrics" in stderr
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        scrape(unused_port)  # the server went away with the run


async def test_worker_serves_metrics_while_it_runs(
    server: RecordingServer, redis_server: RedisServer, unused_port: int, tmp_path: Path
) -> None:
    source = tmp_path / "urls.txt"
    source.write_text("".join(url + "\n" for url in slow_urls(server, 60)))
    job = ("--redis", redis_server.url, "--job", "watched")
    done = await run_cli("enqueue", str(source), *job, "-c", "4", "--retries", "0")
    assert done.code == 0, done.stderr
    process = await start_cli("worker", *job, "--no-progress", "--metrics-port", str(unused_port))
    samples, _ = await scrape_run(process, unused_port)
    check_samples(samples, server)


async def test_a_busy_metrics_port_is_a_usage_error(
    server: RecordingServer, tmp_path: Path
) -> None:
    source = tmp_path / "urls.txt"
    source.write_text(server.url("/ok") + "\n")
    # The test server's own port is taken.
    done = await run_cli("fetch", str(source), "--metrics-port", str(server.port), "-q")
    assert done.code == 2
    assert done.stderr.strip() == (
        f"asyncfetch: cannot serve metrics on 127.0.0.1:{server.port}: Address already in use"
    )
    assert done.stdout == b""
