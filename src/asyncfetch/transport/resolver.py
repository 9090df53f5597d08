"""Name resolution at crawl speed: c-ares (through aiodns) with a TTL cache and a bound.

The event loop's getaddrinfo runs in a small thread pool: a crawl over many distinct
host names then resolves a handful of names at a time, whatever ``-c`` says, and each
slow answer holds a thread. c-ares sends queries from the event loop itself, so as many
lookups run at once as the run has requests in flight (bounded by ``max_lookups``).

Answers are cached for their TTL (clamped, see below) in a bounded LRU, and concurrent
lookups of one name share a single query. ``overrides`` are curl's ``--resolve``
entries: that host and port go to the given address without asking DNS.

aiodns (and pycares under it) is imported at the first name that needs DNS: importing it
costs 14 ms, a tenth of the start-up of a run whose URLs are addresses or --resolve'd.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from .._errors import DNSError
from .._settings import is_ip_address
from ..policy.limits import Slots

if TYPE_CHECKING:
    import aiodns

# (family, type, proto, canonname, sockaddr): what socket.getaddrinfo returns, and what
# aiohappyeyeballs connects to.
AddrInfo = tuple[int, int, int, str, tuple[object, ...]]
Clock = Callable[[], float]

# A TTL of 0 (hosts-file answers, some CDNs) would send a query per connection; a day-long
# TTL would pin an address a crawl may outlive. Within these bounds the server's TTL holds.
MIN_TTL: Final = 10.0
MAX_TTL: Final = 300.0
# "No such name" is remembered briefly, so a dead host's many URLs ask once, not each.
NEGATIVE_TTL: Final = 5.0
DEFAULT_CACHE_SIZE: Final = 4096


class _Answer:
    __slots__ = ("addresses", "error", "expires")

    def __init__(
        self, addresses: tuple[tuple[int, str], ...], error: str | None, expires: float
    ) -> None:
        self.addresses = addresses  # (family, address) pairs, in the server's order
        self.error = error
        self.expires = expires


class Resolver:
    """Resolves host names to connectable addresses; see the module docstring."""

    def __init__(
        self,
        *,
        servers: Sequence[str] = (),
        overrides: Iterable[tuple[str, int, str]] = (),
        max_lookups: int = 256,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Clock = time.monotonic,
    ) -> None:
        self._servers = list(servers)
        self._overrides = {(host.lower(), port): addr for host, port, addr in overrides}
        self._slots = Slots(max(1, max_lookups))
        self._cache: OrderedDict[str, _Answer] = OrderedDict()
        self._cache_size = cache_size
        self._pending: dict[str, asyncio.Future[_Answer]] = {}
        self._clock = clock
        self._channel: aiodns.DNSResolver | None = None  # made on the running loop
        self.queries = 0  # names sent to DNS (cache misses), for statistics and tests

    @property
    def cached_names(self) -> int:
        return len(self._cache)

    async def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """Addresses for ``host:port``, ordered for Happy Eyeballs (RFC 8305 section 4).

        Raises DNSError (never sent, so retryable) when the name does not resolve.
        """
        override = self._overrides.get((host.lower(), port))
        if override is not None:
            return _addr_infos([(_family_of(override), override)], port)
        if is_ip_address(host):
            return _addr_infos([(_family_of(host), host)], port)
        answer = self._cached(host)
        if answer is None:
            answer = await self._lookup_shared(host)
        if answer.error is not None:
            raise DNSError(f"cannot resolve {host}: {answer.error}")
        return _addr_infos(_interleaved(answer.addresses), port)

    async def aclose(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    def _cached(self, host: str) -> _Answer | None:
        answer = self._cache.get(host)
        if answer is None:
            return None
        if answer.expires <= self._clock():
            del self._cache[host]
            return None
        self._cache.move_to_end(host)
        return answer

    async def _lookup_shared(self, host: str) -> _Answer:
        # Requests for one name that arrive together wait for the same query.
        pending = self._pending.get(host)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(host))
            self._pending[host] = pending
            pending.add_done_callback(lambda _done: self._pending.pop(host, None))
        return await asyncio.shield(pending)

    async def _lookup(self, host: str) -> _Answer:
        import aiodns.error  # lazily, see the module docstring

        async with self._slots:
            channel = self._channel_now()
            self.queries += 1
            try:
                result = await channel.getaddrinfo(
                    host, family=socket.AF_UNSPEC, port=0, type=socket.SOCK_STREAM
                )
            except aiodns.error.DNSError as exc:
                return self._remember_failure(host, exc)
        nodes = [node for node in result.nodes if node.family in (socket.AF_INET, socket.AF_INET6)]
        if not nodes:
            return self._remember(host, _Answer((), "no address for this name", 0.0), 0.0)
        addresses = tuple(dict.fromkeys((node.family, node.addr[0].decode()) for node in nodes))
        ttl = min(max(min(node.ttl for node in nodes), MIN_TTL), MAX_TTL)
        return self._remember(host, _Answer(addresses, None, 0.0), ttl)

    def _remember_failure(self, host: str, exc: aiodns.error.DNSError) -> _Answer:
        import aiodns.error

        code = exc.args[0] if exc.args else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        answer = _Answer((), message, 0.0)
        # Timeouts and server failures may pass: a retry must ask again.
        not_found = code in (aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENODATA)
        return self._remember(host, answer, NEGATIVE_TTL if not_found else 0.0)

    def _remember(self, host: str, answer: _Answer, ttl: float) -> _Answer:
        if ttl <= 0:
            return answer
        answer.expires = self._clock() + ttl
        cache = self._cache
        cache[host] = answer
        cache.move_to_end(host)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)  # the least recently used name
        return answer

    def _channel_now(self) -> aiodns.DNSResolver:
        if self._channel is None:
            import aiodns.error

            try:
                self._channel = aiodns.DNSResolver(
                    nameservers=self._servers or None, loop=asyncio.get_running_loop()
                )
            except aiodns.error.DNSError as exc:
                raise DNSError(f"cannot set up the DNS resolver: {exc}") from exc
        return self._channel


def _family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _interleaved(addresses: tuple[tuple[int, str], ...]) -> list[tuple[int, str]]:
    """Alternate address families, the first family first (RFC 8305 section 4)."""
    if len(addresses) < 2:
        return list(addresses)
    first = addresses[0][0]
    same = [entry for entry in addresses if entry[0] == first]
    other = [entry for entry in addresses if entry[0] != first]
    merged: list[tuple[int, str]] = []
    for index in range(max(len(same), len(other))):
        merged.extend(group[index] for group in (same, other) if index < len(group))
    return merged


def _addr_infos(addresses: Iterable[tuple[int, str]], port: int) -> list[AddrInfo]:
    infos: list[AddrInfo] = []
    for family, address in addresses:
        sockaddr: tuple[object, ...] = (
            (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
        )
        infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
    return infos
