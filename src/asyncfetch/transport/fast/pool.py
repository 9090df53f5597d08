"""How the fast transport makes connections and keeps them: bounded keep-alive pools,
one per (scheme, host, port), under one budget of open connections (budget.py)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import aiohappyeyeballs

from ..._errors import (
    CertificateError,
    ConnectError,
    DNSError,
    TimeoutError_,
    TLSError,
    caused_by,
)
from ..resolver import AddrInfo, Resolver
from .budget import ConnectionBudget
from .connection import Connection, Outbox

Connector = Callable[[float | None], Awaitable[Connection]]
PoolEvent = Callable[["HostPool"], None]

# RFC 8305's recommended "Connection Attempt Delay": a second address (of the other
# family, see Resolver) is tried when the first has not connected within 250 ms.
HAPPY_EYEBALLS_DELAY: Final = 0.25
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})
# How long a connection that found no free descriptor waits before trying again, when no
# connection of ours closes first (the descriptors are held by something else).
_DESCRIPTOR_RETRY_S: Final = 0.05


class OutOfDescriptors(Exception):
    """The process (EMFILE) or the system (ENFILE) has no descriptor for a new socket.

    Never a request's error: the pool waits for one to be freed and tries again.
    """


class HostPool:
    """Keep-alive connections to one origin.

    At most ``limit`` connections exist at once (idle, busy or being opened). Callers past
    the bound wait in FIFO order and are handed a released connection directly, so a burst
    never opens more sockets than the bound. Idle connections are reused last-in first-out:
    the most recently used one is the least likely to have been closed by the server, and
    the oldest ones collect at the left end where expiry finds them.
    """

    __slots__ = (
        "_budget",
        "_closed",
        "_connect",
        "_idle",
        "_idle_timeout",
        "_limit",
        "_loop",
        "_on_unused",
        "_size",
        "_waiters",
    )

    def __init__(
        self,
        connect: Connector,
        *,
        limit: int,
        idle_timeout: float,
        loop: asyncio.AbstractEventLoop,
        budget: ConnectionBudget,
        on_unused: PoolEvent | None = None,
    ) -> None:
        self._connect = connect
        self._limit = limit
        self._idle_timeout = idle_timeout
        self._loop = loop
        self._budget = budget
        # Called when the pool holds nothing and nobody waits: its owner may forget it, so
        # memory does not grow with the number of hosts a run has seen.
        self._on_unused = on_unused
        self._idle: deque[Connection] = deque()
        self._size = 0  # connections that exist or are being opened
        self._closed = False
        # A waiter gets a connection, or None meaning "a slot is free: open one".
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()

    @property
    def unused(self) -> bool:
        return self._size == 0 and not self._waiters

    async def acquire(self, connect_timeout: float | None) -> tuple[Connection, float | None]:
        """A connection and the ms it took to open (None when an idle one was reused)."""
        while True:
            conn = self._pop_idle()
            if conn is not None:
                return conn, None
            if self._size < self._limit:
                self._size += 1
                return await self._open(connect_timeout)
            conn = await self._wait()
            if conn is not None:
                return conn, None

    def take_idle(self) -> Connection | None:
        """An idle connection now, or None (none idle, or callers already queued for one)."""
        if self._waiters:
            return None  # they were first in line
        return self._pop_idle()

    async def replace(
        self, dead: Connection, connect_timeout: float | None
    ) -> tuple[Connection, float]:
        """Open a fresh connection in the slot of ``dead``, so a retry never waits in line."""
        dead.abort()
        return await self._open(connect_timeout)

    def release(self, conn: Connection) -> None:
        """Give back a connection after a complete exchange; unusable ones are closed."""
        if self._closed or not conn.reusable():
            self.discard(conn)
            return
        conn.park()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        conn.idle_since = self._loop.time()
        self._idle.append(conn)
        self._budget.parked(conn)  # last: it may evict this very connection for a waiter

    def discard(self, conn: Connection) -> None:
        """Close a connection that ended badly (error, cancellation) and free its slot."""
        conn.abort()
        self._free_slot()

    def on_idle_lost(self, conn: Connection) -> None:
        """The server closed an idle connection: forget it now rather than at reuse."""
        if conn.idle:
            conn.idle = False
            self._idle.remove(conn)
            self._budget.unparked(conn)
            self._free_slot()

    def evict(self, conn: Connection) -> None:
        """Close an idle connection to make room for another host's (the budget's call)."""
        if conn.idle:
            conn.idle = False
            self._idle.remove(conn)
            conn.abort()
            self._free_slot()

    def expire(self, now: float) -> None:
        """Close connections idle for longer than the idle timeout."""
        idle = self._idle
        while idle and now - idle[0].idle_since >= self._idle_timeout:
            conn = idle.popleft()
            conn.idle = False
            self._budget.unparked(conn)
            conn.abort()
            self._free_slot()

    def close(self) -> None:
        """Close idle connections and fail waiters; busy ones are closed by their owners."""
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            conn.idle = False
            self._budget.unparked(conn)
            conn.abort()
            self._size -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError("the transport was closed"))

    def _pop_idle(self) -> Connection | None:
        idle = self._idle
        now = self._loop.time()
        while idle:
            conn = idle.pop()
            conn.idle = False
            self._budget.unparked(conn)
            if conn.usable() and now - conn.idle_since < self._idle_timeout:
                return conn
            conn.abort()
            self._size -= 1  # the caller takes this slot itself; no one to wake
        return None

    async def _open(self, connect_timeout: float | None) -> tuple[Connection, float]:
        # The caller already holds the pool's slot; give it back if opening fails or is
        # cancelled. Waiting for the budget is not connecting: connect_ms starts after.
        budget = self._budget
        try:
            if self._closed:  # e.g. a retry racing the transport's aclose()
                raise ConnectError("the transport was closed", may_have_been_sent=False)
            await budget.take()
        except BaseException:
            self._free_slot()
            raise
        start = time.perf_counter()
        try:
            conn = await self._connect_when_possible(connect_timeout)
        except BaseException:
            budget.give_back()
            self._free_slot()
            raise
        conn.on_idle_lost = self.on_idle_lost
        conn.pool = self
        if conn.closed:
            budget.give_back()  # already gone: its connection_lost came before the hook
        else:
            conn.on_lost = budget.closed
        return conn, (time.perf_counter() - start) * 1000.0

    async def _connect_when_possible(self, connect_timeout: float | None) -> Connection:
        # Out of descriptors is waited out: close an idle connection if there is one, else
        # wait for a socket of ours to close (or a moment, when others hold them).
        # The wait is outside the except block: a compiled coroutine suspended inside one
        # can leave the exception behind as "being handled" for unrelated code to re-raise.
        while True:
            try:
                return await self._connect(connect_timeout)
            except OutOfDescriptors:
                evicted = self._budget.evict_idle()
            if not evicted:
                await asyncio.sleep(_DESCRIPTOR_RETRY_S)

    async def _wait(self) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._pass_on(waiter)
            raise

    def _pass_on(self, waiter: asyncio.Future[Connection | None]) -> None:
        # Cancelled just after being served: hand what we got to the next in line.
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return
        conn = waiter.result()
        if conn is None:
            self._size += 1  # _free_slot decremented for us; give the slot back in turn
            self._free_slot()
        else:
            self.release(conn)

    def _free_slot(self) -> None:
        self._size -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._size == 0 and self._on_unused is not None:
            self._on_unused(self)


async def open_connection(
    loop: asyncio.AbstractEventLoop,
    resolver: Resolver,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float | None,
    live: set[Connection],
    outbox: Outbox,
) -> Connection:
    """Resolve, connect (Happy Eyeballs over the addresses) and, for https, handshake,
    mapping failures onto the error tree; OutOfDescriptors is the pool's to handle."""
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(connect_timeout):
            addresses = await resolver.resolve(host, port)
            conn = await _connect_to(loop, addresses, host, ssl_context, live, outbox)
    except (TimeoutError, socket.gaierror, OSError) as exc:  # ssl.SSLError is an OSError
        raise connect_error(exc, host, where)
    return conn


def connect_error(exc: OSError, host: str, where: str) -> BaseException:
    """A failure to open a connection to ``where`` as the error tree has it (a
    TransportError chained to ``exc``), or OutOfDescriptors for the pool to wait out."""
    if isinstance(exc, TimeoutError):  # ours, or the kernel's ETIMEDOUT: nothing was sent
        return caused_by(
            TimeoutError_(f"connecting to {where} timed out", may_have_been_sent=False), exc
        )
    if isinstance(exc, socket.gaierror):
        return caused_by(DNSError(f"cannot resolve {host}: {exc.strerror or exc}"), exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        failed = f"TLS handshake with {where} failed: {_ssl_reason(exc)}"
        return caused_by(CertificateError(failed), exc)
    if isinstance(exc, ssl.SSLError):
        return caused_by(TLSError(f"TLS handshake with {where} failed: {_ssl_reason(exc)}"), exc)
    if exc.errno in _OUT_OF_DESCRIPTORS:
        return OutOfDescriptors(str(exc))
    return caused_by(ConnectError(f"cannot connect to {where}: {exc.strerror or exc}"), exc)


async def _connect_to(
    loop: asyncio.AbstractEventLoop,
    addresses: list[AddrInfo],
    host: str,
    ssl_context: ssl.SSLContext | None,
    live: set[Connection],
    outbox: Outbox,
) -> Connection:
    server_hostname = host if ssl_context is not None else None
    if len(addresses) == 1:
        # One address (an IP literal, --resolve, a single-stack name): the loop's own
        # connect, in C under uvloop, costs less than racing a single candidate.
        address = addresses[0][4]
        _, conn = await loop.create_connection(
            lambda: Connection(loop, live, outbox),
            str(address[0]),
            int(address[1]),  # type: ignore[call-overload]
            ssl=ssl_context,
            server_hostname=server_hostname,
        )
        return conn
    sock = await aiohappyeyeballs.start_connection(
        addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1, loop=loop
    )
    return await wrap_socket(loop, sock, host, ssl_context, live, outbox)


async def wrap_socket(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    host: str,
    ssl_context: ssl.SSLContext | None,
    live: set[Connection],
    outbox: Outbox,
) -> Connection:
    """A Connection on a connected socket, after the TLS handshake with ``host`` when
    ``ssl_context`` is given; the socket is closed if that fails."""
    server_hostname = host if ssl_context is not None else None
    try:
        _, conn = await loop.create_connection(
            lambda: Connection(loop, live, outbox),
            sock=sock,
            ssl=ssl_context,
            server_hostname=server_hostname,
        )
    except BaseException:
        sock.close()  # asyncio closes its transport, not always the socket given
        raise
    return conn


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    return str(exc.reason or exc)
