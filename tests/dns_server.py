"""A DNS server on 127.0.0.1 and a free UDP port that answers after a delay, and counts.

Queries are parsed by dnslib; the server is an asyncio datagram endpoint, so hundreds of queries
can wait out their delay at once (a thread per query would be the bottleneck measured).
It counts the queries per name and type and the most it held at once, which is how the
tests see whether the client resolves concurrently, and once per name. A query whose
transaction id was already seen for that name and type is a retransmission (c-ares resends
with the same id when an answer is late, and its timeout adapts to the server's latency, so
a loaded machine sees some): it is answered and counted apart, not as a second lookup.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

from dnslib import QTYPE, DNSRecord

Answer = Callable[[str], str | None]


def loopback_address(number: int) -> str:
    """The number-th distinct loopback address, from 127.1.0.1 up (16 million of them)."""
    number += 1
    return f"127.{1 + number // 65536}.{number // 256 % 256}.{number % 256}"


def crawl_address(name: str) -> str | None:
    """h<N>.crawl.test -> the N-th loopback address; other names do not exist."""
    label, _, rest = name.partition(".")
    if rest != "crawl.test" or not label[1:].isdigit():
        return None
    return loopback_address(int(label[1:]))


@dataclass
class DnsServer:
    """``ipv4(name)`` / ``ipv6(name)`` give the address for a name (None: no record);
    a name with neither is answered NXDOMAIN."""

    ipv4: Answer
    ipv6: Answer = lambda _name: None
    delay: float = 0.0
    ttl: int = 300
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)
    retransmissions: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    port: int = 0
    _ids_seen: set[tuple[str, str, int]] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def names_asked(self, qtype: str = "A") -> Counter[str]:
        return Counter({name: n for (name, kind), n in self.queries.items() if kind == qtype})

    def answer(self, data: bytes) -> bytes:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).rstrip(".").lower()
        kind = QTYPE[query.q.qtype]
        lookup = (name, kind, query.header.id)
        if lookup in self._ids_seen:
            self.retransmissions += 1
        else:
            self._ids_seen.add(lookup)
            self.queries[(name, kind)] += 1
        v4, v6 = self.ipv4(name), self.ipv6(name)
        if v4 is None and v6 is None:
            return _reply(data, _NXDOMAIN, b"")
        if kind == "A" and v4 is not None:
            return _reply(data, _NOERROR, _record(QTYPE.A, self.ttl, socket.AF_INET, v4))
        if kind == "AAAA" and v6 is not None:
            return _reply(data, _NOERROR, _record(QTYPE.AAAA, self.ttl, socket.AF_INET6, v6))
        return _reply(data, _NOERROR, b"")  # the name exists, without that record type


# The reply is packed by hand: dnslib's reply() and pack() took 160 us per answer on this
# machine, which made the server, not the client, the bottleneck of benchmarks/many_hosts.
_NOERROR = 0x8180  # a response, recursion desired and available
_NXDOMAIN = 0x8183


def _reply(query: bytes, flags: int, answer: bytes) -> bytes:
    question_end = query.index(b"\0", 12) + 5  # the name's end, then type and class
    header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if answer else 0, 0, 0)
    return header + query[12:question_end] + answer


def _record(qtype: int, ttl: int, family: int, address: str) -> bytes:
    data = socket.inet_pton(family, address)
    # 0xC00C: the name, by a pointer to the question's name at offset 12.
    return struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(data)) + data


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # _SelectorDatagramTransport does not subclass DatagramTransport; it behaves as one.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        server = self._server
        reply = server.answer(data)
        server.in_flight += 1
        server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
        asyncio.get_running_loop().call_later(server.delay, self._send, reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        self._server.in_flight -= 1
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(reply, addr)


async def _serve_until_stdin_closes(delay: float) -> None:
    async with running_dns_server(DnsServer(crawl_address, delay=delay)) as server:
        print(json.dumps({"port": server.port}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        asked = server.names_asked("A")
        summary = {"names": len(asked), "queries": sum(server.queries.values())}
        print(json.dumps(summary | {"peak_in_flight": server.peak_in_flight}), flush=True)


def main() -> None:
    """``python -m tests.dns_server DELAY``: serve h<N>.crawl.test until stdin closes,
    then print what was asked (for benchmarks/many_hosts.py)."""
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_until_stdin_closes(delay))
    else:
        uvloop.run(_serve_until_stdin_closes(delay))


@asynccontextmanager
async def running_dns_server(server: DnsServer) -> AsyncIterator[DnsServer]:
    """Serve ``server`` on 127.0.0.1 and a free port (``server.port``) while in use."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Endpoint(server), local_addr=("127.0.0.1", 0)
    )
    server.port = transport.get_extra_info("sockname")[1]
    # Room for a burst of queries, as a real resolver has: a full queue drops them.
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    try:
        yield server
    finally:
        transport.close()


if __name__ == "__main__":
    main()
