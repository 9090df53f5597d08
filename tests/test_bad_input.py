"""Malformed input lines: each gives exactly one invalid_input record with its line number,
nothing crashes, and the good lines around them are fetched.

The second half are property tests (hypothesis) of the parts that read untrusted text,
beyond the readers covered by test_sources_properties.py: the record each bad line
becomes, the request that goes on the wire, the Retry-After parser and the redirect
builder (server input is untrusted too).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncfetch import Fetcher, RetryPolicy, Settings, Timeouts
from asyncfetch._errors import InputError, RedirectError
from asyncfetch._models import InvalidInput, Request, Response
from asyncfetch._settings import RequestDefaults, TransportOptions
from asyncfetch.pipeline.executor import RequestExecutor
from asyncfetch.policy.records import invalid_input_result
from asyncfetch.policy.retry import parse_retry_after
from asyncfetch.sources import open_source, validate_url
from asyncfetch.sources.jsonl import jsonl_line
from asyncfetch.sources.reader import MAX_LINE_BYTES, RawLine
from asyncfetch.sources.spec import build_request
from asyncfetch.sources.text import text_line
from asyncfetch.sources.validate import validate_header
from asyncfetch.transport.aiohttp import AiohttpTransport
from asyncfetch.transport.redirects import next_request

from .cli_helpers import read_jsonl, run_cli
from .fault_resolver import LoopbackResolver
from .recording_server import RecordingServer

OK, BAD, SKIP = "ok", "invalid", "skip"
T = TypeVar("T")
BOM = b"\xef\xbb\xbf"

# -- the corpus: (line bytes, what it must become) ----------------------------------------


def jsonl_corpus(ok_url: str) -> list[tuple[bytes, str]]:
    def spec(**fields: Any) -> bytes:
        return orjson.dumps(fields)

    good = iter(range(1000))

    def ok(**extra: Any) -> tuple[bytes, str]:
        return spec(url=f"{ok_url}?n={next(good)}", **extra), OK

    return [
        (BOM + spec(url=f"{ok_url}?n=bom"), OK),  # a BOM at the start of the file is fine
        ok(),
        (b'{"url": "http://127.0.0.1/", ', BAD),  # truncated JSON
        (b"{}", BAD),  # no url
        (spec(url=None), BAD),
        (spec(url=42), BAD),
        (spec(url=["http://127.0.0.1/"]), BAD),
        (spec(url="ftp://127.0.0.1/file"), BAD),
        (spec(url="javascript:alert(1)"), BAD),
        (spec(url="file:///etc/passwd"), BAD),
        (spec(url="http://"), BAD),
        (spec(url="http://[::1/"), BAD),
        (spec(url="http://127.0.0.1:99999/"), BAD),
        (spec(url=ok_url + "?" + "a" * 9000), BAD),  # over 8 KiB
        (spec(url=ok_url + "\u0000x"), BAD),  # NUL, escaped in JSON
        (spec(url=ok_url + "\r\nHost: evil"), BAD),
        ok(),
        (spec(url=ok_url, headers={"X-A": "a\r\nInjected: 1"}), BAD),  # CR/LF in a header
        (spec(url=ok_url, headers={"X-A": "a\nb"}), BAD),
        (spec(url=ok_url, headers={"X-A": "nul\u0000"}), BAD),
        (spec(url=ok_url, headers={"Bad Name": "v"}), BAD),
        (spec(url=ok_url, headers={"X-A": 5}), BAD),
        (spec(url=ok_url, headers="X-A: 1"), BAD),
        (spec(url=ok_url, headers=[["X-A"]]), BAD),
        (spec(url=ok_url, method=5), BAD),
        (spec(url=ok_url, method="G E T"), BAD),
        (spec(url=ok_url, method="GET\r\n"), BAD),
        (spec(url=ok_url, id=True), BAD),
        (spec(url=ok_url, id={"a": 1}), BAD),
        (spec(url=ok_url, json=1, body="x"), BAD),
        (spec(url=ok_url, body_b64="!!not base64!!"), BAD),
        (spec(url=ok_url, body=5), BAD),
        (spec(url=ok_url, header={"X-A": "1"}), BAD),  # unknown key
        (b"[1, 2, 3]", BAD),
        (b'"http://127.0.0.1/"', BAD),
        (b"null", BAD),
        ok(),
        (b'{"url": "' + ok_url.encode() + b'\x00"}', BAD),  # a raw NUL byte
        (b'{"url": "' + ok_url.encode() + b'?caf\xe9"}', BAD),  # Latin-1, not UTF-8
        ('{"url": "http://127.0.0.1/"}'.encode("utf-16-le"), BAD),  # UTF-16
        (BOM + spec(url=ok_url + "?n=late-bom"), BAD),  # a BOM inside the file
        (b'{"url": "' + b"x" * (2 * 1024 * 1024) + b'"}', BAD),  # a 2 MiB line
        (b"\x00\x01\x02\xff\xfe binary garbage \x80\x81", BAD),
        (b"   ", SKIP),
        (b"# a comment", SKIP),
        ok(method="post", json={"k": "v"}, id="named", meta={"row": 1}),
        ok(headers={"X-Unicode": "caf\u00e9"}, body_b64=base64.b64encode(b"\x00\xff").decode()),
    ]


def text_corpus(ok_url: str) -> list[tuple[bytes, str]]:
    url = ok_url.encode()
    return [
        (BOM + url + b"?n=bom", OK),
        (url + b"?n=1", OK),
        (b"not a url", BAD),
        (b"ftp://127.0.0.1/file", BAD),
        (b"javascript:alert(1)", BAD),
        (b"127.0.0.1:8080/x", BAD),  # no scheme
        (b"http://exa mple.com/", BAD),
        (url + b"?n=2\r", OK),  # CRLF line ending
        (b"  " + url + b"?n=3\t ", OK),  # surrounding whitespace
        (url + b"?" + b"a" * 9000, BAD),
        (url + b"\x00x", BAD),
        (url + b"\rHost: evil", BAD),  # a lone CR inside a line
        (url + b"?caf\xe9", BAD),  # Latin-1
        ("http://127.0.0.1/".encode("utf-16-le"), BAD),
        (BOM + url + b"?n=late-bom", BAD),
        (b"http://[::1/", BAD),
        (b"http://127.0.0.1:0/", BAD),
        (b"x" * (2 * 1024 * 1024), BAD),
        (b"", SKIP),
        (b"# comment " + b"\xff" * 10, SKIP),
        (url + b"?n=4", OK),
    ]


def csv_corpus(ok_url: str) -> list[tuple[bytes, str]]:
    url = ok_url.encode()
    return [
        (BOM + b"url,method,id,note", SKIP),  # the header row
        (url + b"?n=1,GET,a,first", OK),
        (b",GET,b,no url", BAD),
        (b"ftp://127.0.0.1/,GET,c,scheme", BAD),
        (url + b"?n=2,G E T,d,bad method", BAD),
        (url + b"?n=3,GET,e,too,many,fields", BAD),
        (url + b"?n=4\x00,GET,f,nul", BAD),
        (url + b"?n=5,GET,g,caf\xe9", BAD),  # Latin-1 note
        (b'"' + url + b'?n=6",POST,h,"quoted, with comma"', OK),
        (url + b"?" + b"a" * 9000 + b",GET,i,long", BAD),
        (url + b"?n=7,,j,", OK),
        (b"", SKIP),
        (url + b"?n=8,GET,k,last good", OK),
        (b'"' + url + b"?n=9,GET,l,unterminated quote", BAD),  # runs to the end of input
    ]


def expected(corpus: list[tuple[bytes, str]]) -> dict[int, str]:
    return {number: kind for number, (_, kind) in enumerate(corpus, 1) if kind != SKIP}


def write_corpus(path: Path, corpus: list[tuple[bytes, str]], newline: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(line + newline for line, _ in corpus))
    return path


CORPORA = {"jsonl": jsonl_corpus, "text": text_corpus, "csv": csv_corpus}


async def read_items(path: Path, input_format: str) -> list[Request | InvalidInput]:
    return [item async for item in open_source(path, input_format=input_format)]


@pytest.mark.parametrize("input_format", sorted(CORPORA))
async def test_each_bad_line_is_one_invalid_item_with_its_line(
    input_format: str, tmp_path: Path
) -> None:
    corpus = CORPORA[input_format]("http://127.0.0.1:9/ok")
    path = write_corpus(tmp_path / "input", corpus)
    items = await read_items(path, input_format)
    kinds = {item.line: OK if isinstance(item, Request) else BAD for item in items}
    assert len(kinds) == len(items), "a line gave more than one item"
    assert kinds == expected(corpus)
    for item in items:
        if isinstance(item, InvalidInput):
            assert item.message and len(item.raw) <= 1024
            record = invalid_input_result(item).to_record()
            orjson.dumps(record)  # every record can be written
            assert record["error"]["kind"] == "invalid_input"
        else:
            assert validate_url(item.url) == item.url


async def test_a_line_longer_than_the_reader_cap_is_one_record(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"url": "http://127.0.0.1:9/a"}\n{"url": "')
        chunk = b"y" * (1024 * 1024)
        for _ in range(MAX_LINE_BYTES // len(chunk) + 1):
            handle.write(chunk)
        handle.write(b'"}\n{"url": "http://127.0.0.1:9/b"}\n')
    items = await read_items(path, "jsonl")
    assert [(item.line, type(item).__name__) for item in items] == [
        (1, "Request"),
        (2, "InvalidInput"),
        (3, "Request"),
    ]
    bad = items[1]
    assert isinstance(bad, InvalidInput) and "longer than" in bad.message


@pytest.mark.parametrize("input_format", sorted(CORPORA))
async def test_cli_fetches_the_good_lines_around_the_bad(
    server: RecordingServer, tmp_path: Path, input_format: str
) -> None:
    corpus = CORPORA[input_format](server.url("/ok"))
    # CRLF line endings: Windows-made input must read the same.
    source = write_corpus(tmp_path / f"input.{input_format}", corpus, newline=b"\r\n")
    out = tmp_path / "out.jsonl"
    done = await run_cli("fetch", str(source), "-o", str(out), "-q", "--retries", "0")
    assert done.code == 0, done.stderr
    assert "Traceback" not in done.stderr
    records = read_jsonl(out)
    lines = [record["line"] for record in records]
    assert len(lines) == len(set(lines)), "a line has more than one record"
    outcome = {
        record["line"]: OK if record["ok"] else (record["error"] or {}).get("kind")  # type: ignore[union-attr]
        for record in records
    }
    want = {line: OK if kind == OK else "invalid_input" for line, kind in expected(corpus).items()}
    assert outcome == want
    good = sum(kind == OK for kind in want.values())
    assert len(server.recorder.requests) == good


async def test_library_stream_gives_one_record_per_item(server: RecordingServer) -> None:
    items: list[Any] = [
        server.url("/ok?n=1"),
        "not a url",
        {"url": server.url("/ok?n=2"), "method": "POST", "json": [1]},
        {"url": 42},
        None,
        b"http://127.0.0.1/",
        12.5,
        {"url": server.url("/ok?n=3"), "headers": {"X": "a\r\nb"}},
        Request.create(server.url("/ok?n=4")),
    ]
    async with Fetcher(retries=0) as fetcher:
        records = [result async for result in fetcher.stream(items)]
    by_line = {record.line: record for record in records}
    assert len(records) == len(by_line) == len(items)
    kinds = {
        line: "ok" if record.ok else (record.error.kind if record.error else "?")
        for line, record in by_line.items()
    }
    assert kinds == {
        1: "ok",
        2: "invalid_input",
        3: "ok",
        4: "invalid_input",
        5: "invalid_input",
        6: "invalid_input",
        7: "invalid_input",
        8: "invalid_input",
        None: "ok",  # a Request built by the caller keeps its own (absent) line
    }


# -- property tests -------------------------------------------------------------------

PROPERTIES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
nasty_text = st.text(
    st.characters(codec="utf-8")
    | st.sampled_from(["\r", "\n", "\x00", "\ufeff", "\u2028", "\x85", "\t", " ", "%", "@"]),
    max_size=20,
)
url_parts = st.builds(
    "{}://{}{}{}{}".format,
    st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "http:"]),
    st.sampled_from(["", "user:pass@", "u@"]) | nasty_text.map(lambda text: text + "@"),
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "xn--", "a..b", ""]) | nasty_text,
    st.sampled_from(["", ":8080", ":0", ":65536", ":x"]),
    nasty_text,
)
header_values = st.dictionaries(nasty_text, nasty_text, max_size=3)


def line_of(value: Any) -> bytes:
    # The stdlib encoder: it writes big integers and escapes lone surrogates, both of
    # which a reader must then cope with.
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def outcome(call: Callable[[], T], error: type[Exception]) -> T | Exception:
    """The call's result, or the ``error`` it raised; any other exception propagates."""
    try:
        return call()
    except error as raised:
        return raised


spec_values = st.fixed_dictionaries(
    {"url": url_parts | st.text() | json_values},
    optional={
        "method": st.sampled_from(["GET", "post", "PATCH", ""]) | nasty_text | json_values,
        "headers": header_values | json_values,
        "json": json_values,
        "body": nasty_text | json_values,
        "body_b64": st.binary(max_size=10).map(lambda b: base64.b64encode(b).decode())
        | nasty_text,
        "id": st.integers() | nasty_text | json_values,
        "meta": json_values,
    },
)


@PROPERTIES
@given(value=spec_values | json_values | st.binary(max_size=80), number=st.integers(1, 10**9))
def test_any_jsonl_line_is_one_request_or_one_writable_record(value: Any, number: int) -> None:
    item = jsonl_line(RawLine(number, line_of(value)), RequestDefaults())
    check_item(item, number)


@PROPERTIES
@given(data=st.binary(max_size=80) | url_parts.map(lambda u: u.encode("utf-8", "replace")))
def test_any_text_line_is_one_request_one_record_or_skipped(data: bytes) -> None:
    item = text_line(RawLine(7, data), RequestDefaults())
    if item is not None:
        check_item(item, 7)


def check_item(item: Request | InvalidInput, number: int) -> None:
    assert item.line == number
    if isinstance(item, InvalidInput):
        record = invalid_input_result(item).to_record()
        assert record["error"]["kind"] == "invalid_input" and record["line"] == number
        orjson.dumps(record)  # no lone surrogate or other unwritable value
        return
    assert validate_url(item.url) == item.url
    assert item.method.isascii() and item.method.isalpha()
    for name, value in item.headers:
        assert validate_header(name, value) == (name, value)


@PROPERTIES
@given(spec=spec_values)
def test_build_request_raises_only_input_error(spec: dict[str, Any]) -> None:
    request = outcome(lambda: build_request(spec, line=1, defaults=RequestDefaults()), InputError)
    if isinstance(request, InputError):
        assert request.message and request.line == 1
        return
    assert isinstance(request, Request)
    check_item(request, 1)


@PROPERTIES
@given(value=st.none() | st.text(max_size=40) | st.from_regex(r"\s*[0-9]{1,400}\s*"))
def test_retry_after_parser_never_raises(value: str | None) -> None:
    # Retry-After comes from the server: it is input as untrusted as any line of a file.
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0


@PROPERTIES
@given(
    location=url_parts | nasty_text,
    status=st.sampled_from([301, 302, 303, 307, 308]),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
)
def test_redirect_builder_raises_only_redirect_error(
    location: str, status: int, method: str
) -> None:
    request = Request.create(
        "https://127.0.0.1:8443/a/b?c",
        method=method,
        headers={"Authorization": "Bearer t0ken", "Content-Type": "text/plain"},
        body=b"x" if method == "POST" else None,
    )
    response = Response(
        status=status, url=request.url, headers=(("Location", location),), body=b""
    )
    follow = outcome(lambda: next_request(request, response), RedirectError)
    if isinstance(follow, RedirectError):
        assert follow.message
        return
    assert isinstance(follow, Request)
    target = urlsplit(follow.url)
    assert target.scheme.lower() in ("http", "https") and target.hostname
    same_origin = (target.scheme.lower(), target.hostname, target.port) == (
        "https",
        "127.0.0.1",
        8443,
    )
    if not same_origin:
        assert all(name.lower() != "authorization" for name, _ in follow.headers)


# -- every accepted request goes on the wire or fails as one TransportError -------------

printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))
wire_text = st.text(printable, max_size=10)
wire_urls = st.builds(
    "{}://{}{}/{}?{}".format,
    st.sampled_from(["http", "HTTP", "https"]),
    st.sampled_from(["", "u:p@", "%41:%42@"]) | wire_text.map(lambda text: text + "@"),
    st.sampled_from(
        ["127.0.0.1", "localhost", "a..b", "xn--", "ex\u00e4mple.test", "UPPER.test", "1.2.3"]
    )
    | wire_text,
    wire_text,
    wire_text,
)
wire_specs = st.fixed_dictionaries(
    {"url": wire_urls},
    optional={
        "method": st.sampled_from(["GET", "post", "PUT", "DELETE", "PATCH", "PROPFIND"]),
        "headers": st.dictionaries(
            st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True),
            st.text(printable, max_size=12),
            max_size=3,
        ),
        "body": wire_text,
    },
)


@pytest.fixture(scope="module")
def wire_requests() -> list[Request]:
    """Requests the readers accept, drawn from nasty but mostly valid specs."""
    found: list[Request] = []

    @settings(max_examples=400, deadline=None, database=None)
    @given(spec=wire_specs)
    def collect(spec: dict[str, Any]) -> None:
        built = outcome(
            lambda: build_request(spec, line=None, defaults=RequestDefaults()), InputError
        )
        if isinstance(built, Request):
            found.append(built)

    collect()
    return found


async def test_accepted_requests_are_sent_or_fail_as_one_transport_error(
    wire_requests: list[Request], server: RecordingServer
) -> None:
    """Whatever host, userinfo, path or header the readers let through, the aiohttp
    transport sends it to the local server (every name resolves to 127.0.0.1) or maps the
    failure onto one error kind: nothing escapes as an internal error, and a request the
    engine cannot encode is reported once, not retried."""
    assert len(wire_requests) >= 100, "the strategies should mostly produce valid requests"
    policy = RetryPolicy(retries=2, backoff_base=0.0, backoff_cap=0.0)
    settings_ = Settings(timeouts=Timeouts(total=5, connect=2, read=2), retry=policy)
    transport = AiohttpTransport(TransportOptions(), resolver=LoopbackResolver())
    async with transport:
        executor = RequestExecutor(transport, settings_)
        results = await asyncio.gather(
            *(executor.execute(_loopback_only(request, server.port)) for request in wire_requests)
        )
    kinds = Counter(result.error.kind if result.error else "sent" for result in results)
    assert set(kinds) <= {"sent", "tls", "protocol"}, kinds
    assert kinds["sent"] + kinds["tls"] >= len(results) // 2, kinds
    # The readers reject what no engine can send, but aiohttp has corner cases of its own
    # (userinfo outside Latin-1, a soft hyphen or %-escaped Unicode in a host): each is
    # reported once as an unsendable request, never retried.
    for result in results:
        if result.error is not None and result.error.kind == "protocol":
            assert result.error.message.startswith("invalid request"), result.error
            assert result.attempts == 1, result


_AUTHORITY = re.compile(r"([^/?#]*)([/?#]?)(.*)", re.DOTALL)


def _loopback_only(request: Request, port: int) -> Request:
    """The request sent to ``port``; an IP-literal host that is not loopback becomes
    127.0.0.1 (names go to the loopback resolver), so nothing leaves the machine.

    Split by hand, as validate_url does: urlsplit rejects some URLs the readers accept.
    """
    scheme, _, rest = request.url.partition("://")
    authority, slash, tail = _AUTHORITY.match(rest).groups()  # type: ignore[union-attr]
    userinfo, at, host_port = authority.rpartition("@")
    if host_port.startswith("["):
        host = host_port.partition("]")[0] + "]"
    else:
        host = host_port.partition(":")[0]
    try:
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            host = "127.0.0.1"
    except ValueError:
        pass  # a name: the LoopbackResolver answers 127.0.0.1 for it
    url = f"{scheme}://{userinfo}{at}{host}:{port}{slash}{tail}"
    return Request.create(url, method=request.method, headers=request.headers, body=request.body)
