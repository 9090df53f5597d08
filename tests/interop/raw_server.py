"""A raw-socket HTTP/1.1 server for framing edge cases no packaged server sends on demand:
1xx before the answer, trailers, chunk extensions, close-delimited bodies, HTTP/1.0.

Each path answers with fixed bytes; every request is recorded with the number of the
connection it came on, so a test sees what the server received and how it arrived.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

BODY = b"hello, edge cases\n"

# path -> (response bytes, close the connection after it, read no more requests)
RESPONSES: dict[str, tuple[bytes, bool]] = {
    "/informational": (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Final: yes\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
        False,
    ),
    "/trailers": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: X-Checksum\r\n\r\n"
        b"6\r\nhello,\r\n%x\r\n%s\r\n0\r\nX-Checksum: abc123\r\n\r\n" % (len(BODY) - 6, BODY[6:]),
        False,
    ),
    "/chunk-extensions": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'6;name=value\r\nhello,\r\n%x;quoted="a b";flag\r\n%s\r\n0;last\r\n\r\n'
        % (len(BODY) - 6, BODY[6:]),
        False,
    ),
    "/close-delimited": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n" + BODY,
        True,
    ),
    # HTTP/1.0 without "Connection: keep-alive": the connection is not to be reused. The
    # server keeps it open and reads nothing more, so a client that reused it would hang.
    "/http10": (
        b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
        False,
    ),
}
_SILENT_AFTER = {"/http10"}


@dataclass
class Seen:
    connection: int
    method: str
    target: str
    headers: list[tuple[str, str]]


@dataclass
class RawServer:
    url: str
    seen: list[Seen] = field(default_factory=list)


def _read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    return head


def _serve(conn: socket.socket, number: int, server: RawServer) -> None:
    buffer = bytearray()
    with conn:
        while (head := _read_head(conn, buffer)) is not None:
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
            server.seen.append(Seen(number, method, target, headers))  # type: ignore[arg-type]
            response, close = RESPONSES.get(target, (b"HTTP/1.1 404 Not Found\r\n\r\n", True))
            conn.sendall(response)
            if close:
                return
            if target in _SILENT_AFTER:
                conn.recv(65536)  # wait for the client to go away (or reuse it: a hang)
                return


@contextmanager
def raw_server() -> Iterator[RawServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = RawServer(f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def accept() -> None:
        number = 0
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            number += 1
            threading.Thread(target=_serve, args=(conn, number, server), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(5)
