"""A name resolver the tests control: every name maps to a loopback address, no DNS traffic.

It counts what it was asked, and how many lookups ran at once, so a test can show that
name resolution neither repeats needlessly nor runs in (and exhausts) a thread pool.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult


class LoopbackResolver(AbstractResolver):
    """Answers ``address_of(name)`` (default 127.0.0.1) after ``delay`` seconds."""

    def __init__(
        self, address_of: Callable[[str], str] | None = None, *, delay: float = 0.0
    ) -> None:
        self._address_of = address_of or (lambda _name: "127.0.0.1")
        self._delay = delay
        self.lookups: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups[host] += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self._delay:
                await asyncio.sleep(self._delay)  # a slow DNS server, without a thread
            address = self._address_of(host)
        finally:
            self.in_flight -= 1
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None
