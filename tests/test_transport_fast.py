"""The fast transport against real servers on 127.0.0.1: aiohttp for well-behaved HTTP,
raw asyncio servers for misbehaviour (bad framing, resets, stalls, stale keep-alive)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import random
import socket
import ssl
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
import uvloop
from aiohttp import web

from asyncfetch._errors import (
    CancelledRequestError,
    ConfigError,
    ConnectError,
    DNSError,
    ProtocolError,
    ReadError,
    TimeoutError_,
    TLSError,
    TooLargeError,
)
from asyncfetch._models import Request, Response
from asyncfetch._settings import Timeouts, TransportOptions
from asyncfetch.transport.fast.connection import Connection, Outbox, StaleConnection
from asyncfetch.transport.fast.pool import open_connection
from asyncfetch.transport.fast.transport import FastTransport
from asyncfetch.transport.resolver import Resolver

from .llhttp_reference import llhttp_report

TIMEOUTS = Timeouts(total=20.0, connect=5.0, read=5.0)
MAX_BODY = 1 << 20
TEXT = b"hello world " * 200

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- servers -------------------------------------------------------------------------------


@dataclass
class ServerStats:
    """What the server observed: client ports (one per connection) and concurrency."""

    peers: set[int] = field(default_factory=set)
    in_flight: int = 0
    peak: int = 0


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to about 64 KiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(64)]
    parts.append(compressor.flush())
    return b"".join(parts)


def make_app(stats: ServerStats) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        stats.peers.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = await request.read()
        return web.Response(body=request.method.encode() + b":" + body)

    async def request_headers(request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    async def concurrent(request: web.Request) -> web.Response:
        stats.peers.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        stats.in_flight += 1
        stats.peak = max(stats.peak, stats.in_flight)
        await asyncio.sleep(0.01)
        stats.in_flight -= 1
        return web.Response(text="ok")

    async def encoded(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        compressors: dict[str, Callable[[bytes], bytes]] = {
            "gzip": gzip.compress,
            "deflate": zlib.compress,
            "rawdeflate": functools.partial(zlib.compress, wbits=-15),
        }
        compress = compressors[kind]
        encoding = "deflate" if kind == "rawdeflate" else kind
        return web.Response(body=compress(TEXT), headers={"Content-Encoding": encoding})

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=gzip_bomb(), headers={"Content-Encoding": "gzip"})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in (b"one ", b"two ", b"three"):
            await response.write(piece)
        await response.write_eof()
        return response

    async def close(request: web.Request) -> web.Response:
        stats.peers.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return web.Response(text="bye", headers={"Connection": "close"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(bytes(64 * 1024))
        return response

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=bytes(2 * MAX_BODY))

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/headers", request_headers)
    app.router.add_get("/concurrent", concurrent)
    app.router.add_get("/encoded/{kind}", encoded)
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/close", close)
    app.router.add_get("/slow", slow)
    app.router.add_get("/endless", endless)
    app.router.add_get("/big", big)
    app.router.add_get("/status/{code}", status)
    return app


@contextlib.asynccontextmanager
async def serve_app(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    # Cancel handlers whose client went away, so /slow never delays the teardown.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@dataclass
class RawServer:
    url: str
    stats: ServerStats


@contextlib.asynccontextmanager
async def serve_raw(handler: Handler) -> AsyncIterator[RawServer]:
    """A bare TCP server running ``handler`` per connection; ``stats.peers`` counts them."""
    stats = ServerStats()
    tasks: set[asyncio.Task[object]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        stats.peers.add(writer.get_extra_info("peername")[1])
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield RawServer(f"http://127.0.0.1:{port}", stats)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0)  # let closed transports release their sockets


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def respond_with(response: bytes, *, then_close: bool = True) -> Handler:
    """A handler that answers every request on the connection with ``response``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(response)
            await writer.drain()
            if then_close:
                return

    return handler


# -- fixtures ------------------------------------------------------------------------------


@dataclass
class AppServer:
    url: str
    stats: ServerStats


@pytest.fixture
async def app_server() -> AsyncIterator[AppServer]:
    stats = ServerStats()
    async with serve_app(make_app(stats)) as port:
        yield AppServer(f"http://127.0.0.1:{port}", stats)


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    async with FastTransport(TransportOptions()) as fast:
        yield fast


RawServerFactory = Callable[[Handler], Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServerFactory]:
    """Start raw servers on demand; all are stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(handler: Handler) -> RawServer:
            return await stack.enter_async_context(serve_raw(handler))

        yield start


async def get(
    fast: FastTransport,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    timeouts: Timeouts = TIMEOUTS,
    max_body: int = MAX_BODY,
) -> Response:
    request = Request.create(url, method=method, body=body, headers=headers)
    return await fast.send(request, timeouts=timeouts, max_body=max_body)


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- construction ----------------------------------------------------------------------------


def test_supports_http_and_socks_proxies_but_not_tls_to_the_proxy() -> None:
    assert FastTransport.supports(TransportOptions())
    assert FastTransport.supports(TransportOptions(proxy="http://proxy:3128"))
    assert FastTransport.supports(TransportOptions(proxy="socks5h://proxy:1080"))
    assert not FastTransport.supports(TransportOptions(proxy="https://proxy:3128"))
    with pytest.raises(ConfigError, match="https:// proxy"):
        FastTransport(TransportOptions(proxy="https://proxy:3128"))


def test_rejects_bad_pool_settings() -> None:
    with pytest.raises(ConfigError):
        FastTransport(TransportOptions(), per_host_connections=0)
    with pytest.raises(ConfigError):
        FastTransport(TransportOptions(), idle_timeout=0)


# -- basic requests ----------------------------------------------------------------------------


async def test_get_and_post_echo(app_server: AppServer, transport: FastTransport) -> None:
    response = await get(transport, f"{app_server.url}/echo")
    assert (response.status, response.body) == (200, b"GET:")
    assert response.url == f"{app_server.url}/echo"
    assert response.header("content-length") == "4"
    assert response.connect_ms is not None
    assert response.ttfb_ms is not None
    assert response.ttfb_ms >= response.connect_ms >= 0

    response = await get(transport, f"{app_server.url}/echo", method="POST", body=b"payload")
    assert response.body == b"POST:payload"
    large = bytes(range(256)) * 1024  # written apart from the head
    response = await get(transport, f"{app_server.url}/echo", method="PUT", body=large)
    assert response.body == b"PUT:" + large


async def test_request_headers(app_server: AppServer, transport: FastTransport) -> None:
    response = await get(transport, f"{app_server.url}/headers")
    sent = json.loads(response.body)
    assert sent["User-Agent"] == "asyncfetch/0.1"
    assert sent["Accept-Encoding"] == "gzip, deflate"
    assert sent["Host"] == app_server.url.removeprefix("http://")

    custom = (("User-Agent", "probe/2"), ("X-Trace", "abc"), ("Host", "example.test"))
    response = await get(transport, f"{app_server.url}/headers", headers=custom)
    sent = json.loads(response.body)
    assert (sent["User-Agent"], sent["X-Trace"], sent["Host"]) == (
        "probe/2",
        "abc",
        "example.test",
    )


@pytest.mark.parametrize(
    "headers",
    [(("X-Evil", "a\r\nInjected: 1"),), (("X-Evil", "a\nb"),), (("Bad Name", "x"),)],
)
async def test_header_injection_is_refused_before_sending(
    app_server: AppServer, transport: FastTransport, headers: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(ProtocolError) as caught:
        await get(transport, f"{app_server.url}/echo", headers=headers)
    assert caught.value.may_have_been_sent is False
    assert app_server.stats.peers == set()  # not even a connection was opened


async def test_head_and_bodiless_statuses_keep_the_connection(
    app_server: AppServer, transport: FastTransport
) -> None:
    response = await get(transport, f"{app_server.url}/echo", method="HEAD")
    assert (response.status, response.body) == (200, b"")
    for code in (204, 304):
        response = await get(transport, f"{app_server.url}/status/{code}")
        assert (response.status, response.body) == (code, b"")
    response = await get(transport, f"{app_server.url}/echo")
    assert response.body == b"GET:"
    assert response.connect_ms is None  # still the first connection
    assert len(app_server.stats.peers) == 1


async def test_chunked_body(app_server: AppServer, transport: FastTransport) -> None:
    response = await get(transport, f"{app_server.url}/chunked")
    assert response.body == b"one two three"
    assert response.header("transfer-encoding") == "chunked"


@pytest.mark.parametrize("kind", ["gzip", "deflate", "rawdeflate"])
async def test_content_decoding(
    app_server: AppServer, transport: FastTransport, kind: str
) -> None:
    response = await get(transport, f"{app_server.url}/encoded/{kind}")
    assert response.body == TEXT
    assert response.header("content-encoding") in ("gzip", "deflate")  # headers as received


async def test_decoded_size_limit_is_exact(
    app_server: AppServer, transport: FastTransport
) -> None:
    url = f"{app_server.url}/encoded/gzip"
    assert (await get(transport, url, max_body=len(TEXT))).body == TEXT
    with pytest.raises(TooLargeError):
        await get(transport, url, max_body=len(TEXT) - 1)


async def test_gzip_bomb_is_never_inflated(
    app_server: AppServer, transport: FastTransport
) -> None:
    gzip_bomb()  # build it before measuring
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError):
            await get(transport, f"{app_server.url}/bomb", max_body=MAX_BODY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MAX_BODY  # the bomb inflates to 64 MiB


async def test_endless_body_stops_at_max_body(
    app_server: AppServer, transport: FastTransport
) -> None:
    with pytest.raises(TooLargeError):
        await get(transport, f"{app_server.url}/endless", max_body=256 * 1024)
    with pytest.raises(TooLargeError):  # Content-Length over the cap fails before reading
        await get(transport, f"{app_server.url}/big")
    assert (await get(transport, f"{app_server.url}/echo")).status == 200


# -- keep-alive and the pool ---------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(
    app_server: AppServer, transport: FastTransport
) -> None:
    responses = [await get(transport, f"{app_server.url}/echo") for _ in range(5)]
    assert len(app_server.stats.peers) == 1
    assert responses[0].connect_ms is not None
    assert all(r.connect_ms is None for r in responses[1:])


async def test_pool_bound_holds_under_a_burst(app_server: AppServer) -> None:
    async with FastTransport(TransportOptions(), per_host_connections=4) as fast:
        responses = await asyncio.gather(
            *(get(fast, f"{app_server.url}/concurrent") for _ in range(50))
        )
    assert all(r.body == b"ok" for r in responses)
    assert app_server.stats.peak <= 4
    assert len(app_server.stats.peers) <= 4


async def test_connection_close_is_honoured(
    app_server: AppServer, transport: FastTransport
) -> None:
    for _ in range(3):
        assert (await get(transport, f"{app_server.url}/close")).body == b"bye"
    assert len(app_server.stats.peers) == 3


async def test_idle_connections_expire(app_server: AppServer) -> None:
    async with FastTransport(TransportOptions(), idle_timeout=0.1) as fast:
        await get(fast, f"{app_server.url}/echo")
        await asyncio.sleep(0.4)
        response = await get(fast, f"{app_server.url}/echo")
    assert response.connect_ms is not None
    assert len(app_server.stats.peers) == 2


async def test_server_closing_an_idle_connection(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    async def close_soon_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK_RESPONSE)  # claims keep-alive...
        await asyncio.sleep(0.05)  # ...then times the connection out

    server = await raw_server(close_soon_after)
    assert (await get(transport, server.url)).body == b"ok"
    await asyncio.sleep(0.3)
    assert (await get(transport, server.url)).body == b"ok"
    assert len(server.stats.peers) == 2


async def one_answer_per_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    writer.write(OK_RESPONSE)
    await read_head(reader)  # the next request arrives as we close: never answered


async def test_stale_keep_alive_get_is_retried_once(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    server = await raw_server(one_answer_per_connection)
    first = await get(transport, server.url)
    second = await get(transport, server.url)
    assert (first.body, second.body) == (b"ok", b"ok")
    assert second.connect_ms is not None  # it was served by a fresh connection
    assert len(server.stats.peers) == 2


async def test_stale_keep_alive_post_that_was_written_is_not_replayed(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    # The server read the second POST before closing: it may have acted on it, so
    # sending it again could repeat its effect (RFC 9110 §9.2.2).
    server = await raw_server(one_answer_per_connection)
    assert (await get(transport, server.url, method="POST")).body == b"ok"
    with pytest.raises(ReadError) as caught:
        await get(transport, server.url, method="POST")
    assert caught.value.may_have_been_sent is True
    assert len(server.stats.peers) == 1


async def _connect(url: str, outbox: Outbox) -> Connection:
    loop = asyncio.get_running_loop()
    port = int(url.rsplit(":", 1)[1])
    return await open_connection(loop, Resolver(), "127.0.0.1", port, None, 5.0, set(), outbox)


def _start(
    conn: Connection, head: bytes, body: bytes | None
) -> asyncio.Future[BaseException | None]:
    """Start one exchange on ``conn``; the future ends with what ``on_done`` was given."""
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    conn.start(
        head,
        body,
        is_head=False,
        max_body=MAX_BODY,
        read_timeout=5.0,
        total_timeout=None,
        on_done=lambda _conn, error: done.set_result(error),
    )
    return done


async def _recording_server(raw_server: RawServerFactory, heads: list[bytes]) -> str:
    """A server that records the request heads it reads and never answers."""

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            heads.append(await read_head(reader))

    return (await raw_server(record)).url


async def test_requests_started_in_one_turn_are_written_at_its_end(
    raw_server: RawServerFactory,
) -> None:
    server = await raw_server(respond_with(OK_RESPONSE, then_close=False))
    outbox = Outbox(asyncio.get_running_loop())
    conns = [await _connect(server.url, outbox), await _connect(server.url, outbox)]
    ended = []
    for conn in conns:
        ended.append(_start(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None))
        assert conn.sent_at == 0.0  # posted, not written yet
    assert await asyncio.gather(*ended) == [None, None]
    assert conns[0].sent_at == conns[1].sent_at > 0  # one write-out for both
    assert [conn.body() for conn in conns] == [b"ok", b"ok"]
    for conn in conns:
        conn.abort()


async def test_a_request_whose_connection_closed_before_the_write_is_unwritten(
    raw_server: RawServerFactory,
) -> None:
    # The connection ends in the turn that started a POST: it was never written, so it
    # is reported as such (and the callers may send it again, even a POST).
    heads: list[bytes] = []
    url = await _recording_server(raw_server, heads)
    conn = await _connect(url, Outbox(asyncio.get_running_loop()))
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n"
    done = _start(conn, post, b"x")
    conn.abort()
    error = await done
    assert isinstance(error, StaleConnection) and error.written is False
    await asyncio.sleep(0.05)
    assert heads == []


async def test_bytes_that_arrive_before_the_write_make_the_request_unwritten(
    raw_server: RawServerFactory,
) -> None:
    # A server's unsolicited "408" lands in the same turn that started a request, before
    # the outbox wrote it: that answer is not ours, so the request counts as unwritten.
    heads: list[bytes] = []
    url = await _recording_server(raw_server, heads)
    conn = await _connect(url, Outbox(asyncio.get_running_loop()))
    done = _start(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None)
    conn.data_received(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    error = await done
    assert isinstance(error, StaleConnection) and error.written is False
    assert conn.closed
    await asyncio.sleep(0.05)
    assert heads == []


async def test_stray_bytes_on_an_idle_connection(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK_RESPONSE)
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\n")  # nobody asked
        await asyncio.sleep(5)

    server = await raw_server(chatty)
    await get(transport, server.url)
    await asyncio.sleep(0.2)
    assert (await get(transport, server.url)).body == b"ok"
    assert len(server.stats.peers) == 2


async def test_cancellation_closes_the_connection(app_server: AppServer) -> None:
    async with FastTransport(TransportOptions(), per_host_connections=1) as fast:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await get(fast, f"{app_server.url}/slow")
        response = await get(fast, f"{app_server.url}/echo")  # the only slot was freed
    assert response.connect_ms is not None


# -- framing and protocol errors ------------------------------------------------------------


async def test_http10_body_until_close(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    server = await raw_server(respond_with(b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil close"))
    for _ in range(2):
        response = await get(transport, server.url)
        assert (response.status, response.body) == (200, b"until close")
    assert len(server.stats.peers) == 2


async def test_informational_responses_are_skipped(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    early_hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    server = await raw_server(respond_with(early_hints + OK_RESPONSE, then_close=False))
    for _ in range(2):
        response = await get(transport, server.url)
        assert (response.status, response.body, response.headers) == (
            200,
            b"ok",
            (("Content-Length", "2"),),
        )
    assert len(server.stats.peers) == 1


async def test_body_shorter_than_content_length(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    server = await raw_server(respond_with(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
    with pytest.raises(ReadError) as caught:
        await get(transport, server.url)
    assert caught.value.may_have_been_sent is True


async def test_body_longer_than_content_length(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    # The extra bytes come with the response: its framing is in dispute, so it is a
    # protocol error (as aiohttp's parser has it), and the connection is not reused.
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES"
    server = await raw_server(respond_with(response, then_close=False))
    for _ in range(2):
        with pytest.raises(ProtocolError, match="more bytes than its Content-Length"):
            await get(transport, server.url)
    assert len(server.stats.peers) == 2  # the desynced connection was not reused


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n", id="chunk"
        ),
        pytest.param(b"garbage in, garbage out\r\n\r\n", id="status-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", id="header-line"),
        pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", id="status-code"),
    ],
)
async def test_malformed_responses(
    raw_server: RawServerFactory, transport: FastTransport, response: bytes
) -> None:
    server = await raw_server(respond_with(response))
    with pytest.raises(ProtocolError):
        await get(transport, server.url)


@pytest.mark.parametrize(
    "header_block",
    [
        pytest.param(b"X-Big: %s\r\n" % (b"v" * (64 * 1024 + 1)), id="one-field-bytes"),
        pytest.param(
            b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 60000) for i in range(20)), id="block-bytes"
        ),
        pytest.param(b"".join(b"X-%d: v\r\n" % i for i in range(600)), id="count"),
    ],
)
async def test_oversized_headers(
    raw_server: RawServerFactory, transport: FastTransport, header_block: bytes
) -> None:
    response = b"HTTP/1.1 200 OK\r\n" + header_block + b"Content-Length: 0\r\n\r\n"
    server = await raw_server(respond_with(response))
    with pytest.raises(ProtocolError, match="headers exceed"):
        await get(transport, server.url)


async def test_endless_header_line(raw_server: RawServerFactory, transport: FastTransport) -> None:
    async def endless_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while True:
            writer.write(b"a" * 16384)
            await writer.drain()

    server = await raw_server(endless_header)
    with pytest.raises(ProtocolError, match="headers exceed"):
        await get(transport, server.url)


async def test_reset_before_status(raw_server: RawServerFactory, transport: FastTransport) -> None:
    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        reset(writer)

    server = await raw_server(reset_at_once)
    with pytest.raises(ReadError) as caught:
        await get(transport, server.url)
    assert caught.value.may_have_been_sent is True


async def test_reset_mid_body(raw_server: RawServerFactory, transport: FastTransport) -> None:
    async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    server = await raw_server(reset_mid_body)
    with pytest.raises(ReadError, match="response body"):
        await get(transport, server.url)


# -- timeouts and connection failures -------------------------------------------------------


async def test_read_timeout_before_headers(
    app_server: AppServer, transport: FastTransport
) -> None:
    timeouts = Timeouts(total=10.0, connect=5.0, read=0.2)
    with pytest.raises(TimeoutError_) as caught:
        await get(transport, f"{app_server.url}/slow", timeouts=timeouts)
    assert caught.value.may_have_been_sent is True
    assert (await get(transport, f"{app_server.url}/echo")).status == 200


async def test_read_timeout_is_per_wait(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for piece in (b"ab", b"cd", b"ef"):  # 0.45 s in all, never 0.3 s of silence
            await asyncio.sleep(0.15)
            writer.write(piece)
        await asyncio.sleep(5)

    server = await raw_server(trickle)
    timeouts = Timeouts(total=10.0, connect=5.0, read=0.3)
    assert (await get(transport, server.url, timeouts=timeouts)).body == b"abcdef"

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
        await asyncio.sleep(5)

    stalled = await raw_server(stall)
    with pytest.raises(TimeoutError_):
        await get(transport, stalled.url, timeouts=timeouts)


async def test_connection_refused(transport: FastTransport) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError) as caught:
        await get(transport, f"http://127.0.0.1:{port}/")
    assert caught.value.may_have_been_sent is False


async def test_unresolvable_host(transport: FastTransport) -> None:
    with pytest.raises(DNSError) as caught:
        await get(transport, "http://nonexistent.invalid/")
    assert caught.value.may_have_been_sent is False


async def test_unsupported_url(transport: FastTransport) -> None:
    with pytest.raises(ProtocolError) as caught:
        await get(transport, "ftp://127.0.0.1/file")
    assert caught.value.may_have_been_sent is False


# -- TLS -------------------------------------------------------------------------------------


@dataclass
class TLSServer:
    url: str
    cacert: Path


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TLSServer]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    cacert = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cacert))
    async with serve_app(make_app(ServerStats()), server_context) as port:
        yield TLSServer(f"https://127.0.0.1:{port}", cacert)


async def test_connect_timeout_covers_the_tls_handshake(raw_server: RawServerFactory) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)  # accepts TCP, never answers the ClientHello

    server = await raw_server(silent)
    url = server.url.replace("http://", "https://")
    timeouts = Timeouts(total=10.0, connect=0.2, read=5.0)
    async with FastTransport(TransportOptions(insecure=True)) as fast:
        with pytest.raises(TimeoutError_) as caught:
            await get(fast, url, timeouts=timeouts)
    assert caught.value.may_have_been_sent is False


async def test_send_after_aclose_is_a_cancelled_request(app_server: AppServer) -> None:
    # Same contract as the aiohttp engine: work still running when a client closes gets
    # a `cancelled` outcome, never a new connection.
    fast = FastTransport(TransportOptions())
    await get(fast, f"{app_server.url}/echo")
    await fast.aclose()
    with pytest.raises(CancelledRequestError):
        await get(fast, f"{app_server.url}/echo")


async def test_tls_verification_fails_by_default(tls_server: TLSServer) -> None:
    async with FastTransport(TransportOptions()) as fast:
        with pytest.raises(TLSError) as caught:
            await get(fast, f"{tls_server.url}/echo")
    assert caught.value.may_have_been_sent is False


async def test_tls_with_cacert(tls_server: TLSServer) -> None:
    async with FastTransport(TransportOptions(cacert=tls_server.cacert)) as fast:
        responses = [await get(fast, f"{tls_server.url}/echo") for _ in range(3)]
    assert [r.body for r in responses] == [b"GET:"] * 3
    assert responses[1].connect_ms is None


async def test_tls_insecure(tls_server: TLSServer) -> None:
    async with FastTransport(TransportOptions(insecure=True)) as fast:
        response = await get(fast, f"{tls_server.url}/chunked")
    assert response.body == b"one two three"


# -- uvloop ------------------------------------------------------------------------------------


async def _uvloop_scenario() -> None:
    stats = ServerStats()
    async with serve_app(make_app(stats)) as port, FastTransport(TransportOptions()) as fast:
        url = f"http://127.0.0.1:{port}"
        assert (await get(fast, f"{url}/echo", method="POST", body=b"x")).body == b"POST:x"
        assert (await get(fast, f"{url}/encoded/gzip")).body == TEXT
        assert (await get(fast, f"{url}/chunked")).body == b"one two three"
        await asyncio.gather(*(get(fast, f"{url}/concurrent") for _ in range(20)))
        with pytest.raises(TooLargeError):
            await get(fast, f"{url}/bomb")
        with pytest.raises(TimeoutError_):
            await get(fast, f"{url}/slow", timeouts=Timeouts(read=0.2))
    async with (
        serve_raw(respond_with(b"garbage\r\n\r\n")) as raw,
        FastTransport(TransportOptions()) as fast,
    ):
        with pytest.raises(ProtocolError):
            await get(fast, raw.url)
    assert stats.peak <= 8


def test_on_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        runner.run(_uvloop_scenario())


# --- header fields: read from the raw head, exactly as llhttp reports them --------------

_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Field-value bytes llhttp accepts: visible ASCII, obs-text, and SP/HTAB inside or around.
_VALUE_CHARS = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100)) + b"  \t"


def _random_head(rng: random.Random) -> bytes:
    fields = []
    for _ in range(rng.randrange(0, 12)):
        name = bytes(rng.choice(_TOKEN_CHARS) for _ in range(rng.randrange(1, 16)))
        if rng.random() < 0.15:
            name = rng.choice([b"Content-Type", b"content-encoding", b"Content-Length"])
            if name != b"Content-Type":
                continue  # framing headers change the body: covered elsewhere
        value = bytes(rng.choice(_VALUE_CHARS) for _ in range(rng.randrange(0, 40)))
        separator = rng.choice([b":", b": ", b":\t", b":  \t "])
        fields.append(name + separator + value + b"\r\n")
    reason = rng.choice([b" OK", b" Fine Thanks", b"", b" "])
    head = b"HTTP/1.1 200" + reason + b"\r\n" + b"".join(fields) + b"Content-Length: 2\r\n\r\n"
    if rng.random() < 0.2:
        head = b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" + head
    if rng.random() < 0.1:
        head = b"\r\n" + head
    return head + b"ok"


def _llhttp_reports(response: bytes) -> tuple[tuple[str, str], ...]:
    """The final response's fields as httptools' on_header callback gives them, decoded
    the way the transport decodes them (UTF-8, Latin-1 for anything else)."""
    return tuple(llhttp_report(response).headers)


async def test_header_fields_are_those_llhttp_reports(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    rng = random.Random(20261124)
    current: list[bytes] = [b""]

    async def in_pieces(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            response = current[0]
            cuts = sorted(rng.sample(range(1, len(response)), k=min(3, len(response) - 1)))
            for begin, end in zip([0, *cuts], [*cuts, len(response)], strict=True):
                writer.write(response[begin:end])
                await writer.drain()
                if rng.random() < 0.3:
                    await asyncio.sleep(0.002)  # a separate read on the other side

    server = await raw_server(in_pieces)
    for _ in range(300):
        current[0] = _random_head(rng)
        response = await get(transport, server.url)
        reported = _llhttp_reports(current[0])
        # One field read from the raw section, as the record path does, then all of them.
        for name in {name for name, _ in reported} | {"Content-Type", "Absent"}:
            asked = rng.choice([name, name.lower(), name.upper()])
            first = next((v for n, v in reported if n.lower() == name.lower()), None)
            assert response.header(asked) == first, (asked, current[0])
        assert response.headers == reported, current[0]
        assert response.body == b"ok"


# --- whole responses in one read: the one-pass parse (whole_response.c) ------------------


def _one_write_response(rng: random.Random) -> bytes:
    """A response of the kind that arrives in one read: random fields, sometimes gzip."""
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    fields = [
        bytes(rng.choice(_TOKEN_CHARS) for _ in range(rng.randrange(1, 12)))
        + b": "
        + (bytes(rng.choice(_VALUE_CHARS) for _ in range(rng.randrange(1, 30))).strip() or b"v")
        + b"\r\n"
        for _ in range(rng.randrange(0, 10))
    ]
    if rng.random() < 0.3:
        body = gzip.compress(body)
        fields.append(b"Content-Encoding: gzip\r\n")
    if rng.random() < 0.2:
        fields.append(b"Connection: close\r\n")
    fields.insert(rng.randrange(len(fields) + 1), b"Content-Length: %d\r\n" % len(body))
    version = rng.choice([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"])
    return version + b" 200 OK\r\n" + b"".join(fields) + b"\r\n" + body


async def test_whole_responses_read_at_once_are_what_llhttp_reports(
    raw_server: RawServerFactory, transport: FastTransport
) -> None:
    rng = random.Random(11)
    current: list[bytes] = [b""]
    connections: list[int] = []

    async def at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            await read_head(reader)
            writer.write(current[0])  # one write: the client reads it in one piece
            await writer.drain()
            if not llhttp_report(current[0]).keep_alive:
                writer.close()
                return

    server = await raw_server(at_once)
    closed_before_last = 0
    for i in range(200):
        current[0] = _one_write_response(rng)
        response = await get(transport, server.url)
        report = llhttp_report(current[0])
        assert response.headers == tuple(report.headers), current[0]
        gzipped = report.encoding == b"gzip"
        assert response.body == (gzip.decompress(report.body) if gzipped else report.body)
        if i < 199:
            closed_before_last += not report.keep_alive
    # Kept-alive connections were reused, closed ones were not: the same decision llhttp makes.
    assert len(connections) == 1 + closed_before_last


@pytest.mark.parametrize("in_one_read", [True, False], ids=["one read", "two reads"])
async def test_a_corrupt_body_fails_alike_on_both_parse_paths(
    raw_server: RawServerFactory, transport: FastTransport, in_one_read: bool
) -> None:
    # One read takes the one-pass parse, two reads llhttp: the same error either way,
    # and the connection is not used again.
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"
    connections: list[int] = []

    async def corrupt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            await read_head(reader)
            if in_one_read:
                writer.write(response)
            else:
                writer.write(response[:20])
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(response[20:])
            await writer.drain()

    server = await raw_server(corrupt)
    for _ in range(2):
        with pytest.raises(ProtocolError, match="invalid compressed response body"):
            await get(transport, server.url)
    assert len(connections) == 2
