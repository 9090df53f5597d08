"""The C one-pass response parse (whole_response.c) agrees with llhttp wherever it answers.

The fast transport hands a response arriving in one read to ``whole_response`` first and
to llhttp only when that returns None. So whatever ``whole_response`` accepts must be a
response llhttp parses without error, completely and exactly to the end of the data, and
the status, header fields, keep-alive decision, Content-Encoding and body must be those
that llhttp's callbacks give. Thousands of random responses, most of them near an edge
(framing headers, versions, status codes, whitespace, control bytes, lengths, limits)
are held to that; typical responses must be accepted, or the fast path would never run.
"""

from __future__ import annotations

import os
import random

import pytest

from asyncfetch.transport.base import MAX_HEADER_FIELD_BYTES as MAX_HEADER_BYTES
from asyncfetch.transport.base import MAX_HEADER_FIELDS as MAX_HEADER_COUNT

from .llhttp_reference import llhttp_report
from .native_build import C_MODULES

if os.environ.get("ASYNCFETCH_EXPECT_NATIVE") == "0":
    # The Python fallback the rest of the suite runs with NATIVE=0 is what users without
    # a compiler get; this module compares the C module against it, so needs it built.
    pytest.skip(
        "NATIVE=0 builds no C module; `make test` (NATIVE=1) tests it", allow_module_level=True
    )
# Anywhere else a missing build is a failure: `make native` builds it.
from asyncfetch.transport.fast.whole_response import whole_response

assert "asyncfetch.transport.fast.whole_response" in C_MODULES


def assert_agrees(data: bytes, max_body: int = 1 << 20) -> bool:
    """True when whole_response accepted ``data``; fails if it disagrees with llhttp."""
    whole = whole_response(data, max_body, MAX_HEADER_BYTES, MAX_HEADER_COUNT)
    if whole is None:
        return False
    status, keep_alive, headers, encoding, body = whole
    report = llhttp_report(data)
    assert report.error is None, (data, report.error)
    assert report.complete and report.begun == 1, data
    assert status >= 200, data
    assert (status, keep_alive, headers, encoding, body) == (
        report.status,
        report.keep_alive,
        report.headers,
        report.encoding,
        report.body,
    ), data
    assert len(body) <= max_body
    assert len(headers) <= MAX_HEADER_COUNT
    assert sum(len(n.encode("latin-1")) + 4 for n, _ in headers) <= MAX_HEADER_BYTES
    return True


TYPICAL = [
    # nginx
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 5\r\n"
    b"Last-Modified: Tue, 24 Nov 2026 09:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6543-5"\r\nAccept-Ranges: bytes\r\n\r\nhello',
    # aiohttp's server
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 14\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.9.5\r\n\r\n404: Not Found",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nConnection: close\r\n"
    b"Content-Length: 4\r\n\r\nbusy",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n\x1f\x8b\x08",
    b"HTTP/1.1 200 \r\nX-Cafe: caf\xc3\xa9 \xff\t1\r\nContent-Length: 1\r\n\r\n.",
]


@pytest.mark.parametrize("data", TYPICAL)
def test_typical_responses_take_the_one_pass_parse(data: bytes) -> None:
    assert assert_agrees(data), data


# The cases llhttp must judge: each one makes whole_response decline.
DECLINED = {
    "head not finished": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    "body not all here": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok",
    "a byte after the body": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok!",
    "no Content-Length": b"HTTP/1.1 200 OK\r\n\r\nok",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "signed length": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "interim response first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "no content": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "not modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n",
    "switching protocols": b"HTTP/1.1 101 Switching\r\nUpgrade: ws\r\nContent-Length: 0\r\n\r\n",
    "upgrade field": b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
    "connection list": b"HTTP/1.1 200 OK\r\nConnection: close, x\r\nContent-Length: 0\r\n\r\n",
    "proxy-connection": b"HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "space before colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "folded field": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok",
    "trailing whitespace": b"HTTP/1.1 200 OK\r\nX-A: 1 \r\nContent-Length: 2\r\n\r\nok",
    "empty value": b"HTTP/1.1 200 OK\r\nX-A:\r\nContent-Length: 2\r\n\r\nok",
    "control byte": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
    # Rare, and llhttp tells the record the version.
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.0 kept alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
    b"Content-Length: 0\r\n\r\n",
    "HTTP/2.0": b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "leading CRLF": b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status 600": b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok",
}


@pytest.mark.parametrize("data", DECLINED.values(), ids=DECLINED.keys())
def test_unusual_responses_are_left_to_llhttp(data: bytes) -> None:
    assert whole_response(data, 1 << 20, MAX_HEADER_BYTES, MAX_HEADER_COUNT) is None


def test_limits_send_a_response_to_llhttp() -> None:
    body = b"x" * 100
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body
    assert whole_response(data, 100, MAX_HEADER_BYTES, MAX_HEADER_COUNT) is not None
    assert whole_response(data, 99, MAX_HEADER_BYTES, MAX_HEADER_COUNT) is None
    many = b"".join(b"X-%d: v\r\n" % i for i in range(5))
    crowded = b"HTTP/1.1 200 OK\r\n" + many + b"Content-Length: 0\r\n\r\n"
    assert whole_response(crowded, 0, MAX_HEADER_BYTES, 6) is not None
    assert whole_response(crowded, 0, MAX_HEADER_BYTES, 5) is None
    # name + value + 4 per field, as the llhttp path counts: 5 * 8 + 19 = 59
    assert whole_response(crowded, 0, 59, MAX_HEADER_COUNT) is not None
    assert whole_response(crowded, 0, 58, MAX_HEADER_COUNT) is None


def test_bad_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError):
        whole_response("HTTP/1.1 200 OK\r\n", 1, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        whole_response(b"", 1, 1)  # type: ignore[call-arg]


_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FRAMING = [
    b"Content-Length",
    b"content-length",
    b"Content-Encoding",
    b"Transfer-Encoding",
    b"Connection",
    b"CONNECTION",
    b"Proxy-Connection",
    b"Upgrade",
    b"Keep-Alive",
]
_CONNECTION_VALUES = [b"close", b"Close", b"keep-alive", b"Keep-Alive", b"upgrade", b"close, x"]


_CLEAN_VALUE = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100)) + b" \t"


def _value(rng: random.Random, hostile: bool) -> bytes:
    pool = bytes(range(0x00, 0x100)) if hostile else _CLEAN_VALUE
    value = bytes(rng.choice(pool) for _ in range(rng.randrange(0, 24)))
    return value if hostile else value.strip(b" \t") or b"v"


def _field(rng: random.Random, body_len: int, hostile: bool) -> bytes:
    if rng.random() < (0.35 if hostile else 0.1):
        name = rng.choice(_FRAMING)
        lowered = name.lower()
        if lowered == b"content-length":
            value = rng.choice([b"%d" % body_len, b"%d" % (body_len + 1), b"0%d" % body_len])
        elif lowered in (b"connection", b"proxy-connection"):
            value = rng.choice(_CONNECTION_VALUES)
        elif lowered == b"transfer-encoding":
            value = b"chunked"
        else:
            value = rng.choice([b"gzip", b"identity", b"br", _value(rng, hostile)])
    else:
        name = bytes(rng.choice(_TOKEN) for _ in range(rng.randrange(1, 12)))
        value = _value(rng, hostile)
    if not hostile:
        return name + rng.choice([b":", b": ", b":\t", b":  "]) + value + b"\r\n"
    separator = rng.choice([b":", b": ", b":\t", b":  ", b" :"])
    end = rng.choice([b"\r\n"] * 20 + [b"\n", b"\r"])
    return name + separator + value + end


def _random_response(rng: random.Random) -> bytes:
    """Half of them clean, the kind whole_response takes; half with something amiss."""
    hostile = rng.random() < 0.5
    version = b"HTTP/1.1"
    status = rng.choice([b"200", b"201", b"299", b"301", b"404", b"599"])
    reason = rng.choice([b" OK", b" ", b" Not Found"])
    if hostile:
        version = rng.choice([version, b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1.1 "])
        status = rng.choice([status, b"100", b"101", b"204", b"304", b"600", b"20"])
        reason = rng.choice([reason, b"", b" Caf\xc3\xa9", b" a\tb", b" x\x7f", b" \x00"])
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
    fields = [_field(rng, len(body), hostile) for _ in range(rng.randrange(0, 8))]
    if not hostile or rng.random() < 0.8:
        fields.insert(rng.randrange(len(fields) + 1), b"Content-Length: %d\r\n" % len(body))
    data = version + b" " + status + reason + b"\r\n" + b"".join(fields) + b"\r\n" + body
    cut = rng.random()
    if hostile and cut < 0.1:
        data = data[: rng.randrange(len(data))]
    elif hostile and cut < 0.2:
        data += b"HTTP/1.1 200 OK\r\n"
    return data


def test_random_responses_agree_with_llhttp() -> None:
    rng = random.Random(20261124)
    accepted = 0
    runs = 6000
    for _ in range(runs):
        data = _random_response(rng)
        max_body = rng.choice([1 << 20, 1 << 20, 16, 0])
        accepted += assert_agrees(data, max_body)
    # Not a vacuous pass: a fair share of the cases took the one-pass parse.
    assert accepted > runs // 4, accepted
