"""Interoperability with real third-party servers, on both engines.

Each case asserts what the server received (the request target byte for byte, header
fields, body) and what the record says. The servers are nginx (HTTP, HTTPS with a private
CA, http2 offered by ALPN), lighttpd, uvicorn (h11 and httptools), hypercorn, gunicorn and
tinyproxy as a forward proxy: Debian packages and PyPI wheels that `make test` installs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from asyncfetch import BodyPolicy, Fetcher, Result

from .interop import servers
from .interop.echo_apps import BIG_HEADER_COUNT
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
    with servers.tinyproxy(tmp_path_factory.mktemp("tinyproxy"), connect_port=443) as running:
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


@pytest.mark.parametrize("engine", ENGINES)
async def test_nginx_keep_alive_limit_closes_connections_without_failures(
    nginx: Running, engine: str
) -> None:
    # keepalive_requests 3: nginx closes every third response's connection.
    urls = [f"{nginx.url}/echo/{n}" for n in range(12)]
    async with Fetcher(engine=engine, per_host=1, retries=0) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    assert [r.status for r in results] == [200] * 12
    assert all(r.attempts == 1 for r in results)


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


# -- a forward proxy -------------------------------------------------------------------------


async def test_tinyproxy_forwards_the_target_unchanged(
    tinyproxy: Running, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with servers.python_server("uvicorn-h11", tmp_path_factory.mktemp("origin")) as origin:
        target = "/echo/p?pct=%2F%3F"
        seen = echoed(await fetch("auto", origin.url + target, proxy=tinyproxy.url))
    assert seen["target"] == target
    assert "via" in seen["names"]  # it really went through the proxy
