"""Load and resources: many requests under a small descriptor limit, and many hosts.

- The CLI fetches ASYNCFETCH_LOAD_REQUESTS URLs (default 30,000; 100,000 were run by hand,
  see docs/reliability.md) at concurrency 200 under ``ulimit -n 256``, from a fast server
  in another process. Its /proc descriptor count and VmRSS are sampled during the run.
- Requests spread over 200 loopback addresses (127.0.0.2-201), and over 200 host names
  answered by a resolver the test controls, keep per-host connection pools bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from asyncfetch import Fetcher, RetryPolicy, Settings, Timeouts
from asyncfetch._models import Request
from asyncfetch._settings import Limits, TransportOptions
from asyncfetch.concurrency import amap_unordered
from asyncfetch.pipeline.executor import RequestExecutor
from asyncfetch.transport.aiohttp import AiohttpTransport

from .cli_helpers import cli_env
from .fault_cases import ENGINES
from .fault_loadserver import load_server_process
from .fault_resolver import LoopbackResolver

LOAD_REQUESTS = int(os.environ.get("ASYNCFETCH_LOAD_REQUESTS", "30000"))
FD_LIMIT = 256
CONCURRENCY = 200
SERVER_HOSTS = 25  # x --per-host 8 = 200: the global limit, not the per-host one, binds
# The CLI remembers the ids of the last 1,000,000 requests to drop repeated input lines
# (asyncfetch.resume.filters.RECENT_IDS): about 140 bytes each, by design. Beyond that window
# memory must not grow with the number of requests.
DEDUPE_BYTES_PER_ID = 256
RSS_SLACK_KB = 16 * 1024
FORBIDDEN_ON_STDERR = (
    "Too many open files",
    "Unclosed",
    "ResourceWarning",
    "Traceback",
    "Exception ignored",
)


@pytest.fixture(scope="module")
def load_server() -> Iterator[list[str]]:
    """A separate process answering on 127.0.0.2..26; yields its host:port listeners."""
    with load_server_process(str(SERVER_HOSTS)) as listeners:
        yield listeners


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@dataclass
class Sample:
    progress: float  # fraction of records written
    descriptors: int
    rss_kb: int


@dataclass
class Watch:
    """Samples a child's /proc entries while it runs."""

    pid: int
    output: Path
    total: int
    samples: list[Sample] = field(default_factory=list)
    _lines: int = 0
    _offset: int = 0

    def sample(self) -> None:
        try:
            descriptors = len(os.listdir(f"/proc/{self.pid}/fd"))
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return  # the child has just exited
        rss = [int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line]
        if rss:  # an exiting process has no VmRSS line any more
            self.samples.append(Sample(self._progress(), descriptors, rss[0]))

    def _progress(self) -> float:
        if self.output.exists():
            with self.output.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
            self._offset += len(chunk)
            self._lines += chunk.count(b"\n")
        return self._lines / self.total


async def run_watched(
    args: list[str], output: Path, total: int, preexec_fn: Callable[[], None], every: float = 0.1
) -> Watch:
    """Run the CLI with ``args`` (its records to ``output``), sampling its /proc entries;
    it must exit 0 with nothing alarming on stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",  # shown on stderr, where the test looks for them
        "-m",
        "asyncfetch",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        preexec_fn=preexec_fn,
    )
    watch = Watch(process.pid, output, total)
    stderr_task = asyncio.ensure_future(process.stderr.read())  # type: ignore[union-attr]
    while process.returncode is None:
        watch.sample()
        try:
            await asyncio.wait_for(process.wait(), every)
        except TimeoutError:
            continue
    stderr = (await stderr_task).decode(errors="replace")
    assert process.returncode == 0, stderr[-2000:]
    for text in FORBIDDEN_ON_STDERR:
        assert text not in stderr, stderr[-2000:]
    return watch


@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ENGINES)
async def test_cli_load_under_a_descriptor_limit(
    load_server: list[str], tmp_path: Path, engine: str
) -> None:
    urls = tmp_path / "urls.txt"
    with urls.open("w") as handle:
        for number in range(LOAD_REQUESTS):
            handle.write(f"http://{load_server[number % len(load_server)]}/r?n={number}\n")
    output = tmp_path / "out.jsonl"
    args = ["fetch", str(urls), "-o", str(output), "-c", str(CONCURRENCY), "--per-host", "8"]
    args += ["-q", "--retries", "0", "--body", "none", "--engine", engine]
    watch = await run_watched(args, output, LOAD_REQUESTS, limit_descriptors)
    check_one_record_per_line(output, LOAD_REQUESTS)
    check_flat(watch.samples, LOAD_REQUESTS)
    descriptors = max(sample.descriptors for sample in watch.samples)
    rss_mib = max(sample.rss_kb for sample in watch.samples) / 1024
    print(
        f"\nload {engine}: {LOAD_REQUESTS} requests, 0 records lost, peak {descriptors} "
        f"descriptors, peak RSS {rss_mib:.1f} MiB ({len(watch.samples)} samples)"
    )


def check_one_record_per_line(output: Path, total: int) -> None:
    lines: Counter[int] = Counter()
    ids = set()
    not_ok = 0
    with output.open("rb") as handle:
        for raw in handle:
            record = json.loads(raw)
            lines[record["line"]] += 1
            ids.add(record["id"])
            not_ok += not record["ok"]
    assert set(lines) == set(range(1, total + 1)), "records lost"
    assert max(lines.values()) == 1 and len(ids) == total, "a request has two records"
    assert not_ok == 0


def check_flat(samples: list[Sample], total: int) -> None:
    steady = [sample for sample in samples if sample.progress >= 0.1]
    assert len(steady) >= 3, f"too few samples to judge: {samples}"
    first = steady[0]
    assert max(sample.descriptors for sample in samples) <= FD_LIMIT
    assert max(sample.descriptors for sample in steady) <= first.descriptors + 8, steady
    allowance = RSS_SLACK_KB + DEDUPE_BYTES_PER_ID * total // 1024
    assert max(sample.rss_kb for sample in steady) <= first.rss_kb + allowance, steady


# -- many hosts ---------------------------------------------------------------------------

MANY_HOSTS = 200
PER_HOST = 4
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class HostStats:
    connections: int = 0
    peak_connections: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    served: int = 0


class SlowAnswer(asyncio.Protocol):
    """Answers each request 20 ms later, so requests for one host overlap."""

    def __init__(self, stats: HostStats, live: set[asyncio.Transport]) -> None:
        self._stats = stats
        self._live = live
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._live.add(transport)
        self._stats.connections += 1
        self._stats.peak_connections = max(self._stats.peak_connections, self._stats.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self._transport is not None
        self._live.discard(self._transport)
        self._stats.connections -= 1

    def data_received(self, data: bytes) -> None:
        for _ in range(data.count(b"\r\n\r\n")):
            self._stats.in_flight += 1
            self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._stats.in_flight)
            asyncio.get_running_loop().call_later(0.02, self._answer)

    def _answer(self) -> None:
        self._stats.in_flight -= 1
        self._stats.served += 1
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(RESPONSE)


@dataclass
class ManyHosts:
    stats: dict[str, HostStats]
    ports: dict[str, int]
    live: set[asyncio.Transport]

    def url(self, address: str, number: int, host: str | None = None) -> str:
        return f"http://{host or address}:{self.ports[address]}/r?n={number}"

    @property
    def peak_total_connections(self) -> int:
        return sum(stats.peak_connections for stats in self.stats.values())


@pytest.fixture
async def many_hosts() -> AsyncIterator[ManyHosts]:
    loop = asyncio.get_running_loop()
    stats: dict[str, HostStats] = {}
    ports: dict[str, int] = {}
    live: set[asyncio.Transport] = set()
    servers = []
    for index in range(MANY_HOSTS):
        address = f"127.0.0.{2 + index}"
        stats[address] = host_stats = HostStats()
        server = await loop.create_server(
            lambda host_stats=host_stats: SlowAnswer(host_stats, live), address, 0
        )
        servers.append(server)
        ports[address] = server.sockets[0].getsockname()[1]
    try:
        yield ManyHosts(stats, ports, live)
    finally:
        for server in servers:
            server.close()
        for transport in list(live):
            transport.abort()
        for server in servers:
            await server.wait_closed()


def many_host_settings() -> Settings:
    return Settings(
        limits=Limits(concurrency=CONCURRENCY, per_host=PER_HOST),
        timeouts=Timeouts(total=30, connect=10, read=30),
        retry=RetryPolicy(retries=0),
    )


@pytest.mark.parametrize("engine", ENGINES)
async def test_many_addresses_keep_per_host_pools_bounded(
    many_hosts: ManyHosts, engine: str
) -> None:
    addresses = list(many_hosts.stats)
    urls = [many_hosts.url(addresses[n % MANY_HOSTS], n) for n in range(MANY_HOSTS * 10)]
    async with Fetcher(engine=engine, settings=many_host_settings()) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    assert len(results) == len(urls) and all(result.ok for result in results)
    assert {result.url for result in results} == set(urls)
    check_bounded(many_hosts)


async def test_many_host_names_resolve_without_threads_or_stalls(many_hosts: ManyHosts) -> None:
    addresses = list(many_hosts.stats)
    names = {f"h{index}.fault.test": address for index, address in enumerate(addresses)}
    # A slow DNS server: 50 ms a lookup. Looked up one at a time, 200 names would hold
    # the run for 10 s; they must be looked up concurrently, once each.
    resolver = LoopbackResolver(names.__getitem__, delay=0.05)
    requests = [
        Request.create(many_hosts.url(address, n, host=name))
        for n in range(10)
        for name, address in names.items()
    ]
    threads_before = threading.active_count()
    peak_threads = threads_before
    transport = AiohttpTransport(
        TransportOptions(),
        concurrency=CONCURRENCY,
        per_host_connections=PER_HOST,
        resolver=resolver,
    )
    async with transport:
        executor = RequestExecutor(transport, many_host_settings())

        async def fetch(request: Request) -> bool:
            nonlocal peak_threads
            peak_threads = max(peak_threads, threading.active_count())
            return (await executor.execute(request)).ok

        outcomes = [
            outcome.unwrap()
            async for outcome in amap_unordered(fetch, requests, limit=CONCURRENCY)
        ]
    assert len(outcomes) == len(requests) and all(outcomes)
    assert set(resolver.lookups) == set(names)
    assert max(resolver.lookups.values()) == 1, "a name was looked up more than once"
    assert resolver.peak_in_flight >= 10, "lookups ran one after another"
    assert peak_threads == threads_before, "name resolution used threads"
    check_bounded(many_hosts)


def check_bounded(many_hosts: ManyHosts) -> None:
    for address, stats in many_hosts.stats.items():
        assert stats.served >= 10, address
        assert stats.peak_in_flight <= PER_HOST, (address, stats)
        assert stats.peak_connections <= PER_HOST, (address, stats)
    # Every host got its own pool, and the pools together stayed within the global limit.
    assert many_hosts.peak_total_connections <= MANY_HOSTS * PER_HOST
