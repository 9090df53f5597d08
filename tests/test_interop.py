"""Interoperability with real third-party servers, on both engines.

Each case asserts what the server received (the request target byte for byte, header
fields, body) and what the record says. The servers are nginx (HTTP, HTTPS with a private
CA, http2 offered by ALPN), lighttpd, uvicorn (h11 and httptools), hypercorn, gunicorn and
tinyproxy as a forward proxy: Debian packages and PyPI wheels that `make test` installs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from asyncfetch import BodyPolicy, Fetcher, Request, Result, Timeouts, TransportOptions
from asyncfetch.transport.fast.transport import FastTransport

from .cli_helpers import read_jsonl, run_cli
from .interop import servers
from .interop.echo_apps import BIG_HEADER_COUNT
from .interop.h2_server import h2_server
from .interop.raw_server import BODY, raw_server
from .interop.servers import Running

ENGINES = ["aiohttp", "fast"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def nginx(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.nginx(tmp_path_factory.mktemp("nginx"), ca) as running:
        yield running


@pytest.fixture(scope="module")
def lighttpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.lighttpd(tmp_path_factory.mktemp("lighttpd")) as running:
        yield running


@pytest.fixture(scope="module", params=servers.PYTHON_SERVERS)
def python_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    name = str(request.param)
    with servers.python_server(name, tmp_path_factory.mktemp(name)) as running:
        yield running


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.tinyproxy(tmp_path_factory.mktemp("tinyproxy")) as running:
        yield running


async def fetch(engine: str, request: Any, **options: Any) -> Result:
    options.setdefault("retries", 0)
    async with Fetcher(engine=engine, **options) as fetcher:
        result = await fetcher.fetch(request)
    assert result.error is None, result.error
    return result


def echoed(result: Result) -> dict[str, Any]:
    """What a Python server's echo endpoint says it received."""
    assert result.body is not None and result.body.key == "body", result.body
    seen: dict[str, Any] = json.loads(result.body.value)
    seen["body"] = base64.b64decode(seen.pop("body_b64"))
    seen["names"] = [name for name, _ in seen["headers"]]
    return seen


def with_headers() -> BodyPolicy:
    return BodyPolicy(include_headers=True)


# -- the request as the server received it -------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_reserved_percent_encodings_reach_the_server_unchanged(
    python_server: Running, engine: str
) -> None:
    # RFC 3986 2.2: decoding %2F or %3F changes what the URI means.
    target = "/echo/x%2Fy?pct=%2F%3F&sp=%20&plus=a+b&amp=%26"
    seen = echoed(await fetch(engine, python_server.url + target))
    assert seen["target"] == target


@pytest.mark.parametrize("engine", ENGINES)
async def test_dot_segments_are_removed_as_curl_and_browsers_do(
    python_server: Running, engine: str
) -> None:
    # RFC 3986 5.2.4; the query is not a path and keeps its dots.
    seen = echoed(await fetch(engine, python_server.url + "/echo/a/b/../c/./d?q=../x"))
    assert seen["target"] == "/echo/a/c/d?q=../x"


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_body_without_a_type_is_sent_without_one(
    python_server: Running, engine: str
) -> None:
    request = {"url": python_server.url + "/echo/post", "method": "POST", "body": "raw bytes"}
    seen = echoed(await fetch(engine, request))
    assert seen["method"] == "POST" and seen["body"] == b"raw bytes"
    assert "content-type" not in seen["names"]
    assert dict(seen["headers"])["content-length"] == "9"


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_delete_without_a_body_has_no_framing_headers(
    python_server: Running, engine: str
) -> None:
    seen = echoed(await fetch(engine, {"url": python_server.url + "/echo/d", "method": "DELETE"}))
    assert seen["method"] == "DELETE" and seen["body"] == b""
    assert "content-length" not in seen["names"] and "transfer-encoding" not in seen["names"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_request_carries_what_curl_sends(python_server: Running, engine: str) -> None:
    request = {"url": python_server.url + "/echo/h", "headers": {"X-Case": "Kept"}}
    seen = echoed(await fetch(engine, request))
    headers = dict(seen["headers"])
    assert headers["x-case"] == "Kept"
    assert headers["host"] == python_server.url.removeprefix("http://")
    assert headers["user-agent"].startswith("asyncfetch/")


# -- the response as the record shows it ---------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_repeated_response_fields_keep_every_value(
    python_server: Running, engine: str
) -> None:
    result = await fetch(engine, python_server.url + "/multi", body=with_headers())
    headers = result.to_record()["headers"]
    assert headers["x-multi"] == ["one", "two"]
    assert headers["set-cookie"] == ["[redacted]", "[redacted]"]
    assert headers["content-type"] == "text/plain"


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_large_header_block_is_accepted(python_server: Running, engine: str) -> None:
    result = await fetch(engine, python_server.url + "/big-headers", body=with_headers())
    headers = result.to_record()["headers"]
    assert result.status == 200
    assert sum(1 for name in headers if name.startswith("x-big-")) == BIG_HEADER_COUNT


# -- nginx -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_receives_the_request_line_as_curl_sends_it(
    nginx: Running, engine: str
) -> None:
    result = await fetch(engine, nginx.url + "/echo/a/b/../c?pct=%2F%3F")
    assert result.body is not None
    assert result.body.value == "GET /echo/a/c?pct=%2F%3F HTTP/1.1\n"


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_redirect_keeps_reserved_encodings_in_location(
    nginx: Running, engine: str
) -> None:
    result = await fetch(engine, nginx.url + "/redirect-pct")
    assert result.body is not None
    assert result.body.value == "GET /echo/next?pct=%2F%3F HTTP/1.1\n"


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_repeated_fields_and_large_header_block(nginx: Running, engine: str) -> None:
    multi = (await fetch(engine, nginx.url + "/multi", body=with_headers())).to_record()
    assert multi["headers"]["x-multi"] == ["one", "two"]
    big = (await fetch(engine, nginx.url + "/big-headers", body=with_headers())).to_record()
    assert big["status"] == 200
    assert sum(1 for name in big["headers"] if name.startswith("x-big-")) == BIG_HEADER_COUNT


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_gzip_static_file_over_tls_with_a_private_ca(
    nginx: Running, ca: trustme.CA, tmp_path: Path, engine: str
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    assert nginx.tls_url is not None
    result = await fetch(engine, nginx.tls_url + "/static/file.txt", cacert=bundle)
    assert result.body is not None and result.body.value == servers.STATIC_TEXT
    assert result.bytes == len(servers.STATIC_TEXT)


@pytest.fixture(scope="module")
def client_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A client certificate of the private CA: in one file, and as certificate + key."""
    directory = tmp_path_factory.mktemp("client")
    issued = ca.issue_cert("client.example", common_name="client.example")
    paths = {name: directory / name for name in ("both.pem", "cert.pem", "key.pem", "ca.pem")}
    issued.private_key_and_cert_chain_pem.write_to_path(str(paths["both.pem"]))
    issued.cert_chain_pems[0].write_to_path(str(paths["cert.pem"]))
    issued.private_key_pem.write_to_path(str(paths["key.pem"]))
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    return paths


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("form", ["one file", "cert and key"])
async def test_nginx_mutual_tls_with_a_client_certificate(
    nginx: Running, client_files: dict[str, Path], engine: str, form: str
) -> None:
    assert nginx.mtls_url is not None
    if form == "one file":
        given = {"cert": client_files["both.pem"]}
    else:
        given = {"cert": client_files["cert.pem"], "key": client_files["key.pem"]}
    result = await fetch(engine, nginx.mtls_url + "/who", cacert=client_files["ca.pem"], **given)
    assert result.status == 200
    assert result.body is not None
    # nginx verified the certificate we presented: the CA's, for client.example.
    assert result.body.value.startswith("SUCCESS "), result.body.value
    assert "CN=client.example" in result.body.value


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_mutual_tls_without_a_client_certificate(
    nginx: Running, client_files: dict[str, Path], engine: str
) -> None:
    # nginx completes the handshake and answers 400 itself (curl sees the same page).
    assert nginx.mtls_url is not None
    result = await fetch(engine, nginx.mtls_url + "/who", cacert=client_files["ca.pem"])
    assert result.status == 400
    assert result.body is not None
    assert "No required SSL certificate was sent" in result.body.value


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_keep_alive_limit_closes_connections_without_failures(
    nginx: Running, engine: str
) -> None:
    # keepalive_requests 3: nginx closes every third response's connection.
    urls = [f"{nginx.url}/conn/{n}" for n in range(12)]
    async with Fetcher(engine=engine, per_host=1, retries=0) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    assert [r.status for r in results] == [200] * 12
    assert all(r.attempts == 1 for r in results)
    # What nginx says of each: its connection number and that connection's request count.
    seen = [tuple(map(int, r.body.value.split())) for r in results if r.body is not None]
    assert max(count for _, count in seen) == 3  # reused up to nginx's limit, never past it
    assert len({connection for connection, _ in seen}) == 4  # and then a new one each time


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_head_has_no_body_and_the_connection_stays_usable(
    nginx: Running, engine: str
) -> None:
    urls = [{"url": nginx.url + "/static/file.txt", "method": "HEAD"}, nginx.url + "/echo/after"]
    async with Fetcher(engine=engine, per_host=1, retries=0) as fetcher:
        head = await fetcher.fetch(urls[0])
        after = await fetcher.fetch(urls[1])
    assert head.status == 200 and head.bytes == 0
    assert after.body is not None and after.body.value == "GET /echo/after HTTP/1.1\n"


# -- HTTP/2 (fast engine, --http2) ---------------------------------------------------------


async def test_nginx_http2_many_requests_share_one_connection(
    nginx: Running, client_files: dict[str, Path]
) -> None:
    assert nginx.h2_url is not None
    urls = [nginx.h2_url + "/conn"] * 30
    options = {"cacert": client_files["ca.pem"], "http_version": "2", "per_host": 8}
    async with Fetcher(engine="fast", retries=0, **options) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    seen = [r.body.value.split() for r in results if r.body is not None and r.status == 200]
    assert len(seen) == 30
    assert {protocol for protocol, _, _ in seen} == {"HTTP/2.0"}
    assert {result.protocol for result in results} == {"HTTP/2"}  # the record says so too
    assert len({connection for _, connection, _ in seen}) == 1  # nginx's connection serial
    assert sorted(int(count) for _, _, count in seen) == list(range(1, 31))


async def test_http2_idle_connection_is_closed_and_its_origin_forgotten(
    nginx: Running, client_files: dict[str, Path]
) -> None:
    assert nginx.h2_url is not None
    options = TransportOptions(cacert=client_files["ca.pem"], http_version="2")
    timeouts = Timeouts(total=10.0)
    async with FastTransport(options, idle_timeout=0.2) as fast:
        request = Request(url=nginx.h2_url + "/conn")
        first = await fast.send(request, timeouts=timeouts, max_body=1024)
        assert fast.h2_origin_count == 1
        for _ in range(100):  # the sweeper runs every 0.1 s here
            if fast.h2_origin_count == 0:
                break
            await asyncio.sleep(0.05)
        assert fast.h2_origin_count == 0  # memory does not grow with the hosts seen
        second = await fast.send(request, timeouts=timeouts, max_body=1024)
    # nginx saw two connections: the idle one was closed, a new one was opened.
    assert first.body.split()[:2] != second.body.split()[:2]
    assert first.body.startswith(b"HTTP/2.0 ") and second.body.startswith(b"HTTP/2.0 ")


async def test_nginx_http2_goaway_streams_it_did_not_process_are_sent_again(
    nginx: Running, client_files: dict[str, Path]
) -> None:
    # keepalive_requests 3: nginx sends GOAWAY after three streams and answers those; the
    # streams above its last stream id were not processed, so even a POST goes again.
    assert nginx.tls_url is not None
    requests = [{"url": nginx.tls_url + "/conn", "method": "POST", "body": "x"}] * 12
    options = {"cacert": client_files["ca.pem"], "http_version": "2", "per_host": 6}
    async with Fetcher(engine="fast", retries=3, **options) as fetcher:
        results = [result async for result in fetcher.stream(requests)]
    assert [r.status for r in results] == [200] * 12
    assert any(r.attempts > 1 for r in results)  # some met the GOAWAY and were retried
    seen = [r.body.value.split() for r in results if r.body is not None]
    assert all(int(count) <= 3 for _, _, count in seen)  # no connection served more than 3
    assert len({connection for _, connection, _ in seen}) >= 4


async def test_nginx_http2_target_arrives_as_written(
    nginx: Running, client_files: dict[str, Path]
) -> None:
    assert nginx.tls_url is not None
    target = "/echo/x%2Fy/a/../b?pct=%2F%3F&sp=%20"
    result = await fetch(
        "fast", nginx.tls_url + target, cacert=client_files["ca.pem"], http_version="2"
    )
    assert result.body is not None
    assert result.body.value == "GET /echo/x%2Fy/b?pct=%2F%3F&sp=%20 HTTP/2.0\n"


async def test_nginx_http2_large_body_flows_past_the_window(
    nginx: Running, client_files: dict[str, Path]
) -> None:
    assert nginx.tls_url is not None
    options = {"cacert": client_files["ca.pem"], "http_version": "2", "body": "base64"}
    result = await fetch("fast", nginx.tls_url + "/static/big.bin", **options)
    assert result.body is not None
    assert base64.b64decode(result.body.value) == servers.BIG_FILE
    too_big = {**options, "body": BodyPolicy(mode="base64", max_body=1024 * 1024)}
    async with Fetcher(engine="fast", retries=0, **too_big) as fetcher:
        capped = await fetcher.fetch(nginx.tls_url + "/static/big.bin")
    assert capped.error is not None and capped.error.kind == "too_large"


async def test_http2_falls_back_to_http11_when_the_server_declines(
    nginx: Running, client_files: dict[str, Path]
) -> None:
    # The mutual-TLS server has no http2: ALPN picks http/1.1 and the request goes there.
    assert nginx.mtls_url is not None
    options = {"cacert": client_files["ca.pem"], "cert": client_files["both.pem"]}
    result = await fetch("fast", nginx.mtls_url + "/who", http_version="2", **options)
    assert result.status == 200
    assert result.to_record()["protocol"] == "HTTP/1.1"


@pytest.fixture(scope="module")
def hypercorn_tls(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.hypercorn_tls(tmp_path_factory.mktemp("hypercorn-tls"), ca) as running:
        yield running


async def test_hypercorn_http2_post_arrives_as_sent(
    hypercorn_tls: Running, client_files: dict[str, Path]
) -> None:
    target = "/echo/x%2Fy?pct=%2F%3F&sp=%20&plus=a+b"
    request = {
        "url": hypercorn_tls.url + target,
        "method": "POST",
        "body": "h2 body \u00e9",
        "headers": {"X-Caller": "kept", "Content-Type": "text/plain"},
    }
    options = {"cacert": client_files["ca.pem"], "http_version": "2", "body": with_headers()}
    result = await fetch("fast", request, **options)
    record = result.to_record()
    assert record["headers"]["x-http-version"] == "2"
    seen = echoed(result)
    assert seen["method"] == "POST"
    assert seen["target"] == target
    assert seen["body"] == "h2 body \u00e9".encode()
    fields = dict(seen["headers"])
    assert fields["x-caller"] == "kept" and fields["content-type"] == "text/plain"
    assert fields["content-length"] == str(len(seen["body"]))
    assert fields["user-agent"].startswith("asyncfetch/")


@pytest.mark.parametrize("per_host", [2, 4])
async def test_hypercorn_http2_streams_in_flight_stay_within_per_host(
    hypercorn_tls: Running, client_files: dict[str, Path], per_host: int
) -> None:
    # The server holds each request until per_host are in flight and reports the peak: a
    # client that sent more at once would show a higher one.
    urls = [f"{hypercorn_tls.url}/in-flight?gate={per_host}"] * 12
    options = {"cacert": client_files["ca.pem"], "http_version": "2", "per_host": per_host}
    async with Fetcher(engine="fast", retries=0, **options) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    peaks = [int(r.body.value) for r in results if r.body is not None and r.status == 200]
    assert len(peaks) == 12
    assert max(peaks) == per_host


async def test_http2_refused_stream_is_sent_again_even_for_a_post(
    ca: trustme.CA, client_files: dict[str, Path]
) -> None:
    with h2_server(ca) as server:
        request = {"url": server.url + "/refuse-first", "method": "POST", "body": "once"}
        options = {"cacert": client_files["ca.pem"], "http_version": "2", "retries": 1}
        async with Fetcher(engine="fast", **options) as fetcher:
            result = await fetcher.fetch(request)
    assert result.status == 200 and result.attempts == 2
    assert result.body is not None
    assert result.body.value.startswith("POST /refuse-first once connection ")
    assert [(method, body, what) for _, method, _, body, what in server.seen.streams] == [
        ("POST", b"once", "refused"),
        ("POST", b"once", "answered"),
    ]


async def test_http2_reset_stream_is_a_protocol_error_and_a_post_is_not_repeated(
    ca: trustme.CA, client_files: dict[str, Path]
) -> None:
    with h2_server(ca) as server:
        options = {"cacert": client_files["ca.pem"], "http_version": "2", "retries": 2}
        async with Fetcher(engine="fast", **options) as fetcher:
            post = await fetcher.fetch({"url": server.url + "/reset", "method": "POST"})
            after = await fetcher.fetch(server.url + "/fine?q=%2F")
    assert post.error is not None and post.error.kind == "protocol"
    assert "INTERNAL_ERROR" in post.error.message
    assert post.attempts == 1  # it may have been processed: never sent twice
    assert after.status == 200 and after.body is not None
    assert after.body.value == "GET /fine?q=%2F  connection 1"  # the same connection
    assert [what for *_, what in server.seen.streams] == ["reset", "answered"]


async def test_cli_http2_and_client_certificate_options(
    nginx: Running, client_files: dict[str, Path], tmp_path: Path
) -> None:
    assert nginx.h2_url is not None and nginx.mtls_url is not None
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{nginx.h2_url}/conn\n{nginx.mtls_url}/who\n")
    out = tmp_path / "out.jsonl"
    done = await run_cli(
        *("fetch", str(urls), "-o", str(out), "-q", "--http2"),
        *("--cacert", str(client_files["ca.pem"]), "--cert", str(client_files["both.pem"])),
    )
    assert done.code == 0, done.stderr
    records = sorted(read_jsonl(out), key=lambda record: str(record["body"]))
    bodies = [str(record["body"]) for record in records]
    assert bodies[0].startswith("HTTP/2.0 ")  # nginx's h2 server, by ALPN
    assert bodies[1].startswith("SUCCESS ")  # the mutual-TLS one, over HTTP/1.1
    assert [record["protocol"] for record in records] == ["HTTP/2", "HTTP/1.1"]


# -- lighttpd ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_lighttpd_static_files_past_its_keep_alive_limit(
    lighttpd: Running, engine: str
) -> None:
    urls = [lighttpd.url + "/file.txt", lighttpd.url + "/empty.txt", lighttpd.url + "/nope"] * 3
    async with Fetcher(engine=engine, per_host=1, retries=0) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    by_url: dict[str, list[int | None]] = {}
    for result in results:
        by_url.setdefault(result.url.rsplit("/", 1)[1], []).append(result.status)
    assert by_url == {"file.txt": [200] * 3, "empty.txt": [200] * 3, "nope": [404] * 3}
    sizes = {r.url.rsplit("/", 1)[1]: r.bytes for r in results if r.status == 200}
    assert sizes == {"file.txt": len(servers.STATIC_TEXT), "empty.txt": 0}


# -- busybox httpd ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_busybox_body_after_a_head_response_is_dropped(
    tmp_path_factory: pytest.TempPathFactory, engine: str
) -> None:
    # busybox httpd sends the file after a HEAD response's head (RFC 9110 9.3.2: it must
    # not); the head is the answer, the bytes after it are dropped with the connection.
    with servers.busybox_httpd(tmp_path_factory.mktemp("busybox")) as busybox:
        url = busybox.url + "/file.txt"
        heads = [{"url": url, "method": "HEAD", "id": f"head-{n}"} for n in range(100)]
        async with Fetcher(engine=engine, per_host=4, retries=0) as fetcher:
            results = [result async for result in fetcher.stream([*heads, url])]
    failures = [result.error for result in results if result.error is not None]
    assert failures == []
    assert all(r.status == 200 and r.bytes == 0 for r in results if r.method == "HEAD")
    get = next(r for r in results if r.method == "GET")
    assert get.body is not None and get.body.value == servers.STATIC_TEXT


# -- framing edge cases (a raw-socket server) ------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "path", ["/informational", "/trailers", "/chunk-extensions", "/close-delimited"]
)
async def test_framing_edge_cases_give_the_body_and_the_final_head(engine: str, path: str) -> None:
    with raw_server() as server:
        result = await fetch(engine, server.url + path, body=with_headers())
    record = result.to_record()
    assert record["status"] == 200 and record["bytes"] == len(BODY)
    assert record["protocol"] == "HTTP/1.1"
    assert record["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert result.body is not None and result.body.value == BODY.decode()
    headers = record["headers"]
    assert "link" not in headers  # 103's fields are not the answer's
    assert "x-checksum" not in headers  # trailers are not header fields
    if path == "/informational":
        assert headers["x-final"] == "yes"
    assert [(seen.method, seen.target) for seen in server.seen] == [("GET", path)]


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_http10_response_is_not_kept_alive(engine: str) -> None:
    # The server keeps the connection open but reads no more: reusing it would time out.
    with raw_server() as server:
        urls = [f"{server.url}/http10" for _ in range(3)]
        async with Fetcher(engine=engine, per_host=1, retries=0, timeouts=10.0) as fetcher:
            results = [result async for result in fetcher.stream(urls)]
    assert [(r.status, r.bytes, r.error) for r in results] == [(200, len(BODY), None)] * 3
    assert [r.protocol for r in results] == ["HTTP/1.0"] * 3  # the record names the version
    assert sorted(seen.connection for seen in server.seen) == [1, 2, 3]


# -- a forward proxy -------------------------------------------------------------------------


async def test_tinyproxy_forwards_the_target_unchanged(
    tinyproxy: Running, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with servers.python_server("uvicorn-h11", tmp_path_factory.mktemp("origin")) as origin:
        target = "/echo/p?pct=%2F%3F"
        seen = echoed(await fetch("auto", origin.url + target, proxy=tinyproxy.url))
    assert seen["target"] == target
    assert "via" in seen["names"]  # it really went through the proxy
