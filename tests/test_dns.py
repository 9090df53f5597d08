"""Name resolution at crawl speed, seen from a real DNS server on 127.0.0.1 (dnslib).

The server answers after a delay and counts what it is asked: names are resolved
concurrently (not a few at a time in a thread pool), each once while cached, through the
server given with --dns-server; --resolve skips DNS for its host and port only.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import orjson
import pytest

from asyncfetch._errors import DNSError
from asyncfetch._models import Request
from asyncfetch._settings import Timeouts, TransportOptions
from asyncfetch.transport.fast.transport import FastTransport
from asyncfetch.transport.resolver import Resolver

from .cli_helpers import cli_env
from .dns_server import DnsServer, crawl_address, running_dns_server
from .fault_cases import ENGINES
from .test_many_hosts import every_loopback_address

__all__ = ["every_loopback_address"]  # the fixture, shared with test_many_hosts

NAMES = 300
DNS_DELAY = 0.1


async def run_cli(*args: str) -> list[dict[str, object]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncfetch",
        "fetch",
        *args,
        "-q",
        "--retries",
        "0",
        "--body",
        "none",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
    return [orjson.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("engine", ENGINES)
async def test_names_resolve_concurrently_once_each_through_the_given_server(
    every_loopback_address: int, tmp_path: Path, engine: str
) -> None:
    port = every_loopback_address
    urls = tmp_path / "urls.txt"
    # Each name twice, the second visit 50 lines after the first.
    lines = [f"http://h{n}.crawl.test:{port}/a\n" for n in range(NAMES)]
    lines += [f"http://h{n}.crawl.test:{port}/b\n" for n in range(NAMES)]
    urls.write_text("".join(lines))
    async with running_dns_server(DnsServer(crawl_address, delay=DNS_DELAY)) as dns:
        records = await run_cli(
            str(urls), "-c", "200", "--engine", engine, "--dns-server", dns.address
        )
    assert len(records) == 2 * NAMES
    assert all(record["ok"] for record in records), [r["error"] for r in records][:3]
    asked = dns.names_asked("A")
    assert set(asked) == {f"h{n}.crawl.test" for n in range(NAMES)}
    assert max(asked.values()) == 1, "a cached name was asked again"
    # 300 lookups of 100 ms each: a thread pool of a few threads holds a few at a time.
    assert dns.peak_in_flight >= 100, dns.peak_in_flight


@pytest.mark.parametrize("engine", ENGINES)
async def test_resolve_option_skips_dns_for_its_host_and_port_only(
    every_loopback_address: int, engine: str
) -> None:
    port = every_loopback_address
    urls = f"http://pinned.test:{port}/\nhttp://pinned.test:{port + 1}/\n"
    async with running_dns_server(DnsServer(crawl_address)) as dns:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asyncfetch",
            "fetch",
            "-",
            "-q",
            "--retries",
            "0",
            "--engine",
            engine,
            "--dns-server",
            dns.address,
            "--resolve",
            f"pinned.test:{port}:127.5.0.1",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
        )
        stdout, stderr = await process.communicate(urls.encode())
    assert process.returncode == 0, stderr.decode()
    by_url = {record["url"]: record for record in map(orjson.loads, stdout.splitlines())}
    assert by_url[f"http://pinned.test:{port}/"]["ok"] is True
    other = by_url[f"http://pinned.test:{port + 1}/"]
    assert other["error"]["kind"] == "dns", other  # not pinned: asked, and not found
    assert dns.names_asked("A") == {"pinned.test": 1}


async def test_a_dual_stack_host_is_reached_over_the_family_that_answers(
    every_loopback_address: int,
) -> None:
    # IPv6 first (as the server lists it); nothing listens on [::1]:port, the IPv4
    # address answers: Happy Eyeballs moves on to it instead of failing the request.
    dns = DnsServer(lambda name: "127.6.0.1", ipv6=lambda name: "::1")
    async with running_dns_server(dns):
        resolver = Resolver(servers=[dns.address])
        try:
            addresses = await resolver.resolve("dual.test", every_loopback_address)
            families = [info[0] for info in addresses]
            assert families[0] == socket.AF_INET6 and socket.AF_INET in families
            options = TransportOptions(dns_servers=(dns.address,))
            async with FastTransport(options) as transport:
                url = f"http://dual.test:{every_loopback_address}/"
                response = await transport.send(
                    Request.create(url), timeouts=Timeouts(), max_body=1024
                )
        finally:
            await resolver.aclose()
    assert response.status == 200


async def test_answers_are_cached_for_their_ttl_and_lookups_are_bounded() -> None:
    now = [0.0]
    dns = DnsServer(crawl_address, delay=0.05, ttl=60)
    async with running_dns_server(dns):
        resolver = Resolver(servers=[dns.address], max_lookups=5, clock=lambda: now[0])
        try:
            names = [f"h{n}.crawl.test" for n in range(40)]
            await asyncio.gather(*(resolver.resolve(name, 80) for name in names * 2))
            assert dns.peak_in_flight <= 2 * 5  # an A and an AAAA query per lookup
            assert resolver.queries == 40
            await resolver.resolve("h1.crawl.test", 80)
            assert resolver.queries == 40  # within its TTL: from the cache
            now[0] = 61.0
            await resolver.resolve("h1.crawl.test", 80)
            assert resolver.queries == 41  # expired: asked again
            with pytest.raises(DNSError, match=r"cannot resolve nowhere\.test"):
                await resolver.resolve("nowhere.test", 80)
        finally:
            await resolver.aclose()
