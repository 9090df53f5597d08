"""A fault-injecting HTTP/1.1 server on 127.0.0.1, written on raw asyncio streams.

aiohttp's own server cannot misbehave enough (it will not send a garbage status line, a
Content-Length that lies or a broken chunk), so this one speaks HTTP by hand. Each path
is one behaviour (see ``fault_behaviours``); the server records every request it reads,
so tests can count attempts and check what headers reached which host.

Listeners, all on loopback:
- ``plain``: the behaviours over http (also reached as ``localhost``, "another host");
- ``tls``: the same behaviours over https, with a certificate from a test CA (trustme);
- ``stall``: accepts connections and never reads or answers (a stalled TLS handshake when
  reached over https, a server that never answers when reached over http).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_REQUEST_HEAD = 64 * 1024


@dataclass
class SeenRequest:
    """One request as the server read it."""

    listener: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def host(self) -> str:
        return self.headers.get("host", "").rsplit(":", 1)[0]


@dataclass(eq=False)  # identity semantics: kept in a set of live connections
class Connection:
    """One accepted connection; behaviours write to it and may ask to close or reset it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    listener: str
    served: int = 0
    # Set by a behaviour: drop the next request on this connection without answering.
    drop_next: bool = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def peer_gone(self) -> bool:
        return self.reader.at_eof() or self.writer.transport.is_closing()

    def reset(self) -> None:
        """Close with RST instead of FIN (SO_LINGER 0), as a crashing server does."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# A behaviour answers one request; it returns True to keep the connection for the next.
Behaviour = Callable[["FaultServer", Connection, SeenRequest], Awaitable[bool]]


@dataclass
class FaultServer:
    """Start with :meth:`start`; build URLs with :meth:`url`; always :meth:`close`."""

    behaviours: dict[str, Behaviour]
    server_ssl: ssl.SSLContext | None = None
    requests: list[SeenRequest] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    ports: dict[str, int] = field(default_factory=dict)
    # path → set once a behaviour for it has done all it does (closing included).
    settled: defaultdict[str, asyncio.Event] = field(
        default_factory=lambda: defaultdict(asyncio.Event)
    )
    _servers: list[asyncio.Server] = field(default_factory=list)
    _connections: set[Connection] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        await self._listen("plain", self._serve, None)
        if self.server_ssl is not None:
            await self._listen("tls", self._serve, self.server_ssl)
        await self._listen("stall", self._stall, None)

    async def _listen(
        self,
        name: str,
        serve: Callable[[Connection], Awaitable[None]],
        tls: ssl.SSLContext | None,
    ) -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = Connection(reader, writer, name)
            self._connections.add(conn)
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await serve(conn)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                pass  # the client went away mid-behaviour: that is what clients do here
            except asyncio.CancelledError:
                # Only close() cancels a handler. Ending quietly keeps asyncio's stream
                # callback from logging the cancellation as an unhandled exception.
                return
            finally:
                self._tasks.discard(task)
                # close(), not abort(): what a behaviour wrote still reaches the client.
                # close() below aborts whatever a client never read.
                conn.writer.close()

        server = await asyncio.start_server(
            accepted, "127.0.0.1", 0, ssl=tls, limit=MAX_REQUEST_HEAD
        )
        self._servers.append(server)
        self.ports[name] = server.sockets[0].getsockname()[1]

    def url(self, path: str, *, host: str = "127.0.0.1", listener: str = "plain") -> str:
        scheme = "https" if listener in ("tls", "tls-stall") else "http"
        port = self.ports["stall" if listener == "tls-stall" else listener]
        return f"{scheme}://{host}:{port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.path == path)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _stall(self, conn: Connection) -> None:
        # Never read: the client's bytes sit in the kernel buffer, as with a hung server.
        await asyncio.Event().wait()

    async def _serve(self, conn: Connection) -> None:
        while True:
            seen = await self._read_request(conn)
            if seen is None:
                return
            self.requests.append(seen)
            if conn.drop_next:
                return  # a server whose keep-alive timeout fired as this request arrived
            behaviour = self.behaviours.get(seen.path)
            if behaviour is None:
                await conn.send(head(404, [], b"no such behaviour") + b"no such behaviour")
                return
            conn.served += 1
            keep = await behaviour(self, conn, seen)
            if not keep:
                conn.writer.close()
                await conn.writer.wait_closed()
            self.settled[seen.path].set()
            if not keep:
                return

    async def _read_request(self, conn: Connection) -> SeenRequest | None:
        try:
            raw = await conn.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        request_line, *header_lines = raw.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await conn.reader.readexactly(int(headers["content-length"]))
        path, _, query = target.partition("?")
        return SeenRequest(conn.listener, method, path, query, headers, body)


def head(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes | None = None,
    *,
    reason: str = "Whatever",
) -> bytes:
    """A response head; with ``body`` given, a Content-Length that matches it."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
