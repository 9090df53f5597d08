"""What each path of the fault server does: one broken-server behaviour per path.

A behaviour returns True to keep the connection open for another request, False to close
it (FIN). Behaviours that must RST call ``conn.reset()`` themselves.
"""

from __future__ import annotations

import asyncio
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache

import orjson

from .faultserver import Behaviour, Connection, FaultServer, SeenRequest, head

OK_BODY = b"ok"
BINARY_BODY = bytes(range(256)) * 4
BAD_UTF8_BODY = b"caf\xc3\xa9 \xff\xfe broken \xc3( utf-8 \xed\xa0\x80"
GZIP_BOMB_DECODED = 4 * 1024**3  # what a client without a cap would inflate
_MIB = 1024 * 1024
TRICKLE_INTERVAL = 0.2


async def ok(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(head(200, [("Content-Type", "text/plain")], OK_BODY) + OK_BODY)
    return True


async def echo(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    body = orjson.dumps({"method": seen.method, "headers": seen.headers})
    await conn.send(head(200, [("Content-Type", "application/json")], body) + body)
    return True


async def never_answer(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await asyncio.Event().wait()
    return False


async def reset_before_status(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    conn.reset()
    return False


async def reset_mid_body(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(head(200, [("Content-Length", "100000")]) + b"x" * 1000)
    await asyncio.sleep(0.05)  # let the client start reading the body first
    conn.reset()
    return False


async def close_after_headers(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(head(200, [("Content-Length", "1000")]))
    return False


async def length_longer(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(head(200, [("Content-Length", "100")]) + b"x" * 50)
    return False


async def length_shorter(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    # 40 bytes beyond the declared length: a client that trusted the connection afterwards
    # would read them as the start of the next response.
    await conn.send(head(200, [("Content-Length", "10")]) + b"0123456789" + b"y" * 40)
    return False


async def length_shorter_keepalive(
    server: FaultServer, conn: Connection, seen: SeenRequest
) -> bool:
    """10 declared bytes, then (a moment later) 40 more on a connection kept open: a
    client that pools this connection reads them as the next request's response."""
    await conn.send(head(200, [("Content-Length", "10")]) + b"0123456789")
    await asyncio.sleep(0.05)
    await conn.send(b"HTTP/1.1 200 Smuggled\r\nContent-Length: 7\r\n\r\nforged!")
    return True


async def bad_chunked(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(
        head(200, [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\nzz\r\nbroken\r\n0\r\n\r\n"
    )
    return False


async def garbage_status(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(b"\x16\x03\x01 GARBAGE \xff\xfe not http at all\r\n\r\n")
    return False


async def huge_header(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(head(200, [("X-Huge", "h" * (70 * 1024))], OK_BODY) + OK_BODY)
    return False


async def many_headers(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    headers = [(f"X-Header-{n}", "v") for n in range(600)]
    await conn.send(head(200, headers, OK_BODY) + OK_BODY)
    return False


async def endless_body(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    await conn.send(head(200, [("Content-Type", "application/octet-stream")]))
    chunk = b"e" * 65536
    while not conn.peer_gone():
        await conn.send(chunk)  # drain() blocks while the client is not reading
    return False


async def trickle(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    # Slowloris in reverse: a byte at a time, each well within the read timeout, so only
    # the total deadline ends it. One byte per 0.2 s: the matrix runs at 1/5 of real time.
    await conn.send(head(200, [("Content-Length", "100")]))
    for _ in range(100):
        await asyncio.sleep(TRICKLE_INTERVAL)
        if conn.peer_gone():
            break
        await conn.send(b"t")
    return False


@cache
def _gzip_pieces() -> tuple[bytes, bytes]:
    """A gzip header plus 1 MiB of zeros, and a repeatable 1 MiB-of-zeros piece.

    A full flush resets the compressor's history, so every later piece is the same bytes:
    a 4 GiB bomb costs 4 MB on the wire and no server CPU.
    """
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    zeros = bytes(_MIB)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first, repeat


async def gzip_bomb(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    first, repeat = _gzip_pieces()
    await conn.send(
        head(200, [("Content-Type", "application/octet-stream"), ("Content-Encoding", "gzip")])
        + first
    )
    for _ in range(GZIP_BOMB_DECODED // _MIB - 1):
        if conn.peer_gone():
            break
        await conn.send(repeat)
    return False


def _http_date(seconds_ahead: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


def status_then_ok(status: int, retry_after: str | None, failures: int) -> Behaviour:
    """``status`` (with Retry-After) for the first ``failures`` hits of a path, then 200.

    A Retry-After of ``date+N`` is sent as the HTTP-date N seconds from now.
    """

    async def behaviour(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
        server.counters[seen.path] += 1
        if server.counters[seen.path] > failures:
            return await ok(server, conn, seen)
        headers: list[tuple[str, str]] = []
        if retry_after is not None:
            value = retry_after
            if value.startswith("date+"):
                value = _http_date(float(value.removeprefix("date+")))
            headers.append(("Retry-After", value))
        body = b"try again later"
        await conn.send(head(status, headers, body) + body)
        return True

    return behaviour


def redirect(location: str, status: int = 302) -> Behaviour:
    """A redirect; ``{plain}`` in the location becomes the plain listener's port."""

    async def behaviour(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
        target = location.replace("{plain}", str(server.ports["plain"]))
        await conn.send(head(status, [("Location", target)], b"") + b"")
        return True

    return behaviour


async def bad_utf8(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    body = BAD_UTF8_BODY
    await conn.send(head(200, [("Content-Type", "text/plain; charset=utf-8")], body) + body)
    return True


async def binary(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    body = BINARY_BODY
    await conn.send(head(200, [("Content-Type", "application/octet-stream")], body) + body)
    return True


async def keepalive_then_idle_close(
    server: FaultServer, conn: Connection, seen: SeenRequest
) -> bool:
    """Answer with keep-alive, then close the idle connection 50 ms later (a server's
    keep-alive timeout): the client's pool holds a connection that is already dead."""
    await ok(server, conn, seen)
    await asyncio.sleep(0.05)
    return False


async def keepalive_then_drop(server: FaultServer, conn: Connection, seen: SeenRequest) -> bool:
    """Answer with keep-alive; then read the next request on this connection and close
    without answering: the race where the server gives up on an idle connection just as
    the client reuses it. The client cannot tell whether its request was processed."""
    await ok(server, conn, seen)
    conn.drop_next = True
    return True


BEHAVIOURS: dict[str, Behaviour] = {
    "/ok": ok,
    "/echo": echo,
    "/never": never_answer,
    "/reset-before-status": reset_before_status,
    "/reset-mid-body": reset_mid_body,
    "/close-after-headers": close_after_headers,
    "/length-longer": length_longer,
    "/length-shorter": length_shorter,
    "/length-shorter-ka": length_shorter_keepalive,
    "/bad-chunked": bad_chunked,
    "/garbage-status": garbage_status,
    "/huge-header": huge_header,
    "/many-headers": many_headers,
    "/endless": endless_body,
    "/trickle": trickle,
    "/gzip-bomb": gzip_bomb,
    "/429-seconds": status_then_ok(429, "1", 1),
    "/503-date": status_then_ok(503, "date+2", 1),
    "/429-absurd": status_then_ok(429, "999999999", 1),
    "/503-unparseable": status_then_ok(503, "soon, maybe", 99),
    "/503-superscript": status_then_ok(503, "\u00b2", 99),
    "/500-storm": status_then_ok(500, None, 99),
    "/redirect-loop": redirect("/redirect-loop"),
    "/redirect-file": redirect("file:///etc/passwd"),
    "/redirect-other-host": redirect("http://localhost:{plain}/echo"),
    "/redirect-bad-location": redirect("http://[::1/broken"),
    "/redirect-bad-port": redirect("http://127.0.0.1:99999/"),
    "/redirect-space": redirect("http://127.0.0.1:{plain}/o k"),
    "/bad-utf8": bad_utf8,
    "/binary": binary,
    "/ka/idle-close": keepalive_then_idle_close,
    "/ka/drop-next": keepalive_then_drop,
}
