"""A DNS server on 127.0.0.1 and a free UDP port that answers after a delay, and counts.

Records are dnslib's; the server is an asyncio datagram endpoint, so hundreds of queries
can wait out their delay at once (a thread per query would be the bottleneck measured).
It counts the queries per name and type and the most it held at once, which is how the
tests see whether the client resolves concurrently, and once per name.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

Answer = Callable[[str], str | None]


@dataclass
class DnsServer:
    """``ipv4(name)`` / ``ipv6(name)`` give the address for a name (None: no record);
    a name with neither is answered NXDOMAIN."""

    ipv4: Answer
    ipv6: Answer = lambda _name: None
    delay: float = 0.0
    ttl: int = 300
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def names_asked(self, qtype: str = "A") -> Counter[str]:
        return Counter({name: n for (name, kind), n in self.queries.items() if kind == qtype})

    def answer(self, data: bytes) -> bytes:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).rstrip(".").lower()
        kind = QTYPE[query.q.qtype]
        self.queries[(name, kind)] += 1
        reply = query.reply()
        v4, v6 = self.ipv4(name), self.ipv6(name)
        if v4 is None and v6 is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif kind == "A" and v4 is not None:
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(v4), ttl=self.ttl))
        elif kind == "AAAA" and v6 is not None:
            reply.add_answer(RR(query.q.qname, QTYPE.AAAA, rdata=AAAA(v6), ttl=self.ttl))
        return bytes(reply.pack())


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


@asynccontextmanager
async def running_dns_server(server: DnsServer) -> AsyncIterator[DnsServer]:
    """Serve ``server`` on 127.0.0.1 and a free port (``server.port``) while in use."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Endpoint(server), local_addr=("127.0.0.1", 0)
    )
    server.port = transport.get_extra_info("sockname")[1]
    try:
        yield server
    finally:
        transport.close()
