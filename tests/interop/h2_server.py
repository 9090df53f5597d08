"""A small HTTP/2 server on real sockets (the h2 library, server side) that misbehaves
on purpose: it refuses streams (RST_STREAM REFUSED_STREAM), resets others with
INTERNAL_ERROR, and answers the rest with what it received. Run in a thread with its own
event loop; ``log`` is what it saw, in order.

- ``/refuse-first``: the first request of this path is refused, later ones answered;
- ``/reset``: always reset with INTERNAL_ERROR (after reading the request);
- anything else: 200, ``METHOD TARGET BODY`` and ``connection N``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import trustme


@dataclass
class Seen:
    """What the server saw: (connection number, method, path, body, answer) per stream."""

    streams: list[tuple[int, str, str, bytes, str]] = field(default_factory=list)
    connections: int = 0
    refused_once: bool = False
    open: set[asyncio.BaseTransport] = field(default_factory=set)


class _ServerConnection(asyncio.Protocol):
    def __init__(self, seen: Seen) -> None:
        self._seen = seen
        seen.connections += 1
        self._number = seen.connections
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._requests: dict[int, tuple[str, str, bytearray]] = {}
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._seen.open.add(transport)
        self._h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._seen.open.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        for event in self._h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                fields = dict(event.headers)
                self._requests[event.stream_id] = (fields[":method"], fields[":path"], bytearray())
            elif isinstance(event, h2.events.DataReceived):
                self._requests[event.stream_id][2].extend(event.data)
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._answer(event.stream_id)
        self._flush()

    def _answer(self, stream_id: int) -> None:
        method, path, body = self._requests.pop(stream_id)
        if path == "/refuse-first" and not self._seen.refused_once:
            self._seen.refused_once = True
            self._note(method, path, body, "refused")
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        if path == "/reset":
            self._note(method, path, body, "reset")
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        self._note(method, path, body, "answered")
        content = f"{method} {path} {body.decode()} connection {self._number}".encode()
        headers = [(":status", "200"), ("content-type", "text/plain")]
        headers.append(("content-length", str(len(content))))
        self._h2.send_headers(stream_id, headers)
        self._h2.send_data(stream_id, content, end_stream=True)

    def _note(self, method: str, path: str, body: bytearray, what: str) -> None:
        self._seen.streams.append((self._number, method, path, bytes(body), what))

    def _flush(self) -> None:
        if self._transport is not None:
            self._transport.write(self._h2.data_to_send())


@dataclass(frozen=True)
class H2Server:
    url: str
    seen: Seen


@contextmanager
def h2_server(ca: trustme.CA) -> Iterator[H2Server]:
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    context.set_alpn_protocols(["h2"])
    seen = Seen()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def serve() -> None:
        server = await loop.create_server(
            lambda: _ServerConnection(seen), "127.0.0.1", 0, ssl=context
        )
        holder["server"] = server
        started.set()

    def run() -> None:
        loop.run_until_complete(serve())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield H2Server(f"https://localhost:{port}", seen)
    finally:
        # Close the connections the client left open too (Server.close leaves them),
        # or their sockets are found unclosed by a later test's garbage collection.
        asyncio.run_coroutine_threadsafe(_shut(holder["server"], seen), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _shut(server: asyncio.Server, seen: Seen) -> None:
    server.close()
    for transport in list(seen.open):
        transport.abort()
    await asyncio.sleep(0)  # let each connection_lost run
    await server.wait_closed()
