"""The global cap on open connections: idle ones of other hosts are closed least recently
used first, and a run out of descriptors waits for one instead of failing requests."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from asyncfetch._models import Request
from asyncfetch._settings import Limits, RetryPolicy, Settings, Timeouts, TransportOptions
from asyncfetch.concurrency import amap_unordered
from asyncfetch.pipeline.executor import RequestExecutor
from asyncfetch.transport.aiohttp import AiohttpTransport
from asyncfetch.transport.base import Transport
from asyncfetch.transport.descriptors import connection_cap
from asyncfetch.transport.fast.transport import FastTransport

from .dns_server import loopback_address as host_address
from .fault_cases import ENGINES
from .fault_loadserver import load_server_process
from .test_many_hosts import every_loopback_address

__all__ = ["every_loopback_address"]  # the fixture, shared with test_many_hosts

HOSTS = 6
CAP = 3
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Observed:
    opened: Counter[str] = field(default_factory=Counter)  # connections per host
    open_now: int = 0
    peak_open: int = 0
    closed_order: list[str] = field(default_factory=list)

    live: set[asyncio.Transport] = field(default_factory=set)


class Answer(asyncio.Protocol):
    def __init__(self, host: str, observed: Observed) -> None:
        self._host = host
        self._observed = observed
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        observed = self._observed
        observed.live.add(self._transport)  # type: ignore[arg-type]
        observed.opened[self._host] += 1
        observed.open_now += 1
        observed.peak_open = max(observed.peak_open, observed.open_now)

    def connection_lost(self, exc: Exception | None) -> None:
        self._observed.live.discard(self._transport)  # type: ignore[arg-type]
        self._observed.open_now -= 1
        self._observed.closed_order.append(self._host)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(RESPONSE * data.count(b"\r\n\r\n"))


@pytest.fixture
async def hosts() -> AsyncIterator[tuple[list[str], Observed]]:
    """HOSTS servers on 127.0.0.2.. in this process; yields their URLs and what they saw."""
    loop = asyncio.get_running_loop()
    observed = Observed()
    servers, urls = [], []
    for index in range(HOSTS):
        address = f"127.0.0.{2 + index}"
        server = await loop.create_server(
            lambda address=address: Answer(address, observed), address, 0
        )
        servers.append(server)
        urls.append(f"http://{address}:{server.sockets[0].getsockname()[1]}/")
    try:
        yield urls, observed
    finally:
        for server in servers:
            server.close()
        for transport in list(observed.live):
            transport.abort()
        for server in servers:
            await server.wait_closed()


def open_engine(engine: str, max_connections: int, options: TransportOptions) -> Transport:
    if engine == "fast":
        return FastTransport(options, per_host_connections=1, max_connections=max_connections)
    return AiohttpTransport(
        options, concurrency=1, per_host_connections=1, max_connections=max_connections
    )


async def settle() -> None:
    for _ in range(5):  # a closed socket is reported a loop turn or two later
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("engine", ENGINES)
async def test_idle_connections_beyond_the_cap_close_least_recently_used_first(
    hosts: tuple[list[str], Observed], engine: str
) -> None:
    urls, observed = hosts
    address = [url.split("/")[2].split(":")[0] for url in urls]
    async with open_engine(engine, CAP, TransportOptions()) as transport:
        for url in urls:  # six hosts, one after the other: each keeps an idle connection
            response = await transport.send(Request.create(url), timeouts=Timeouts(), max_body=64)
            assert response.status == 200
            await settle()
        # Only the three most recent hosts still have one: the oldest were closed first.
        assert observed.closed_order == address[: HOSTS - CAP]
        await transport.send(Request.create(urls[-1]), timeouts=Timeouts(), max_body=64)
        assert observed.opened[address[-1]] == 1  # still idle: reused
        await transport.send(Request.create(urls[0]), timeouts=Timeouts(), max_body=64)
        assert observed.opened[address[0]] == 2  # closed before: a new connection
    assert observed.peak_open <= CAP


async def test_the_order_stays_exact_and_its_bookkeeping_bounded_over_many_requests(
    hosts: tuple[list[str], Observed],
) -> None:
    """The fast engine keeps its eviction order by lazy deletion (budget.py): a connection
    reused for hundreds of requests must neither grow it nor lose its place."""
    urls, observed = hosts
    address = [url.split("/")[2].split(":")[0] for url in urls]
    async with open_engine("fast", CAP, TransportOptions()) as transport:
        assert isinstance(transport, FastTransport)

        async def fetch(index: int) -> None:
            request = Request.create(urls[index])
            response = await transport.send(request, timeouts=Timeouts(), max_body=64)
            assert response.status == 200

        for _ in range(300):  # 900 requests, three hosts, one connection each reused
            for index in range(CAP):
                await fetch(index)
        budget = transport.budget
        assert budget is not None and budget.idle == CAP
        assert budget.entries <= 2 * CAP + 65, budget.entries
        for index in (2, 0, 1):  # host 2 is now the least recently used, host 1 the most
            await fetch(index)
        await fetch(3)  # a fourth host at the cap: room is made
        await settle()
        assert observed.closed_order == [address[2]]
        assert observed.opened == Counter(address[:4])  # one connection each: all reused
        await fetch(0)
        await fetch(1)
        assert observed.opened == Counter(address[:4])


@pytest.fixture(scope="module")
def other_process_hosts() -> Iterator[list[str]]:
    """Servers in another process (this one is about to run out of descriptors)."""
    with load_server_process("20") as listeners:
        yield listeners


def hold_every_descriptor() -> list[int]:
    held = []
    while True:
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            if exc.errno != errno.EMFILE:
                raise
            return held


@pytest.mark.parametrize("engine", ENGINES)
async def test_out_of_descriptors_waits_for_one_instead_of_failing(
    other_process_hosts: list[str], engine: str
) -> None:
    settings = Settings(
        limits=Limits(concurrency=20, per_host=1),
        timeouts=Timeouts(total=30, connect=10, read=30),
        retry=RetryPolicy(retries=0),  # a failure would be final: none may happen
    )
    requests = [Request.create(f"http://{listener}/") for listener in other_process_hosts]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    transport = open_engine(engine, connection_cap(20), TransportOptions())
    async with transport:
        executor = RequestExecutor(transport, settings)
        # Descriptors free only for what is open now: every new socket meets EMFILE.
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        held = hold_every_descriptor()
        try:
            fetches = [asyncio.ensure_future(executor.execute(r)) for r in requests]
            await asyncio.sleep(0.3)
            assert not any(fetch.done() for fetch in fetches), "a request did not wait"
        finally:
            for descriptor in held:
                os.close(descriptor)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        results = await asyncio.gather(*fetches)
        await executor.aclose()
    assert [result.error for result in results] == [None] * len(requests)
    assert all(result.status == 200 for result in results)


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_crawl_holds_state_for_the_cap_not_for_every_host_seen(
    every_loopback_address: int, engine: str
) -> None:
    """3,000 hosts once each, 100 connections at most: descriptors and pools stay within
    the cap during the run, and nothing per host is left once it is over."""
    urls = [f"http://{host_address(n)}:{every_loopback_address}/" for n in range(3000)]
    settings = Settings(limits=Limits(concurrency=50, per_host=1), retry=RetryPolicy(retries=0))
    baseline = len(os.listdir("/proc/self/fd"))
    peak = baseline
    transport = open_engine(engine, 100, TransportOptions())
    async with transport:
        executor = RequestExecutor(transport, settings)

        async def fetch(request: Request) -> bool:
            nonlocal peak
            peak = max(peak, len(os.listdir("/proc/self/fd")))
            return (await executor.execute(request)).ok

        requests = [Request.create(url) for url in urls]
        outcomes = [o.unwrap() async for o in amap_unordered(fetch, requests, limit=50)]
        if isinstance(transport, FastTransport):
            assert transport.pool_count <= 100
            assert transport.budget is not None and transport.budget.peak <= 100
        await executor.aclose()
    assert len(outcomes) == len(urls) and all(outcomes)
    assert peak <= baseline + 100 + 10, (baseline, peak)  # the cap, and a few of aiohttp's
