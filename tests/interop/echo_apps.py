"""The application that the third-party Python servers run: an ASGI and a WSGI twin.

``/echo…`` answers with JSON saying what the server received: the method, the request
target byte for byte (the server's raw path and query), every header field in order, and
the body. The other paths answer with what a server in the wild sends: repeated fields,
large header blocks, a body without a length. Both twins give the same answers, so one
set of cases runs against uvicorn, hypercorn and gunicorn.

Started as ``uvicorn tests.interop.echo_apps:asgi_app`` and
``gunicorn tests.interop.echo_apps:wsgi_app``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

Headers = list[tuple[str, str]]
BIG_HEADER_COUNT = 80
BIG_HEADER_SIZE = 1024


def answer(
    method: str, target: bytes, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    """The response for one request: status, header fields, body."""
    path = target.split(b"?", 1)[0]
    if path.startswith(b"/echo"):
        seen = {
            "method": method,
            "target": target.decode("latin-1"),
            "headers": [[name, value] for name, value in headers],
            "body_b64": base64.b64encode(body).decode(),
        }
        return 200, [("Content-Type", "application/json")], json.dumps(seen).encode()
    if path == b"/multi":
        fields = [("X-Multi", "one"), ("X-Multi", "two"), ("Set-Cookie", "a=1; Path=/")]
        fields.append(("Set-Cookie", "b=2; Path=/"))
        return 200, [*fields, ("Content-Type", "text/plain")], b"multi"
    if path == b"/big-headers":
        fields = [(f"X-Big-{n}", "v" * BIG_HEADER_SIZE) for n in range(BIG_HEADER_COUNT)]
        return 200, [*fields, ("Content-Type", "text/plain")], b"big"
    return 404, [("Content-Type", "text/plain")], b"not found"


# -- ASGI (uvicorn, hypercorn) -----------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def asgi_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            phase = (await receive())["type"].rsplit(".", 1)[-1]  # startup | shutdown
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/in-flight":
        content = await _in_flight(int(scope["query_string"].decode().partition("=")[2]))
        raw = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(content))]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": content})
        return
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]
    status, fields, content = answer(scope["method"], target, headers, body)
    raw_fields = [(n.encode(), v.encode()) for n, v in fields]
    raw_fields.append((b"content-length", str(len(content)).encode()))
    raw_fields.append((b"x-http-version", scope.get("http_version", "?").encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_fields})
    await send({"type": "http.response.body", "body": content})


# Requests of /in-flight being answered now, and the most seen at once (one process).
_IN_FLIGHT = {"now": 0, "peak": 0}


async def _in_flight(gate: int) -> bytes:
    """``/in-flight?gate=N``: held until N requests are in flight (or 2 s), so that a
    client that allows N at once is seen doing so; answers the peak since the server was
    last idle."""
    if _IN_FLIGHT["now"] == 0:
        _IN_FLIGHT["peak"] = 0
    _IN_FLIGHT["now"] += 1
    _IN_FLIGHT["peak"] = max(_IN_FLIGHT["peak"], _IN_FLIGHT["now"])
    try:
        for _ in range(200):
            if _IN_FLIGHT["now"] >= gate:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
    finally:
        _IN_FLIGHT["now"] -= 1
    return str(_IN_FLIGHT["peak"]).encode()


# -- WSGI (gunicorn) ----------------------------------------------------------------------

StartResponse = Callable[[str, Headers], Any]


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    # gunicorn keeps the request target as sent in RAW_URI.
    target = environ.get("RAW_URI", environ.get("PATH_INFO", "/")).encode("latin-1")
    status, fields, content = answer(
        environ["REQUEST_METHOD"], target, _wsgi_headers(environ), body
    )
    reason = {200: "OK", 404: "Not Found"}[status]
    start_response(f"{status} {reason}", [*fields, ("Content-Length", str(len(content)))])
    return [content]


def _wsgi_headers(environ: dict[str, Any]) -> Headers:
    """WSGI folds field names to CGI variables; give them back as lower-case names."""
    return list(_fields(environ))


def _fields(environ: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            yield key.lower().replace("_", "-"), environ[key]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].lower().replace("_", "-"), value
