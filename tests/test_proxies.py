"""Proxies with real proxy servers: tinyproxy (HTTP, CONNECT, Basic credentials) and
microsocks (SOCKS5, username/password, remote DNS), on both engines where they apply.

Each case asserts what the origin received, what the proxy saw (tinyproxy's log) and
what the record says. The environment cases run the CLI as a subprocess, as curl is run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from asyncfetch import Fetcher, Result
from asyncfetch._errors import ConfigError
from asyncfetch._settings import TransportOptions
from asyncfetch.transport.proxy import NoProxy, ProxyRules, parse_proxy, proxy_for

from .interop import servers
from .interop.servers import Running
from .test_interop import echoed

ENGINES = ["aiohttp", "fast"]
CREDENTIALS = "agent:s3cret-pw"
ONLY_THE_PROXY_KNOWS = "origin.proxied.test"  # RFC 6761: never in any real DNS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def nginx(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.nginx(tmp_path_factory.mktemp("nginx"), ca) as running:
        yield running


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.python_server("uvicorn-h11", tmp_path_factory.mktemp("origin")) as running:
        yield running


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with servers.tinyproxy(tmp_path_factory.mktemp("tinyproxy")) as running:
        yield running


@pytest.fixture(scope="module")
def guarded_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("guarded")
    with servers.tinyproxy(directory, credentials=CREDENTIALS) as running:
        yield running


@pytest.fixture(scope="module")
def socks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("socks")
    hosts = {ONLY_THE_PROXY_KNOWS: "127.0.0.1"}
    with servers.microsocks(directory, credentials=CREDENTIALS, hosts=hosts) as running:
        yield running


def with_credentials(url: str, credentials: str = CREDENTIALS) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{credentials}@{rest}"


async def fetch_one(engine: str, url: str, **options: Any) -> Result:
    options.setdefault("retries", 0)
    async with Fetcher(engine=engine, **options) as fetcher:
        return await fetcher.fetch(url)


# -- HTTP proxies ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_http_url_goes_to_the_proxy_in_absolute_form(
    tinyproxy: Running, origin: Running, engine: str
) -> None:
    target = f"/echo/forward-{engine}?pct=%2F%3F"
    result = await fetch_one(engine, origin.url + target, proxy=tinyproxy.url)
    assert result.error is None and result.status == 200
    seen = echoed(result)
    assert seen["target"] == target and seen["method"] == "GET"
    assert "via" in seen["names"]  # tinyproxy's: it really went through the proxy
    assert f"GET {origin.url}{target} HTTP/1.1" in servers.proxy_log(tinyproxy)


@pytest.mark.parametrize("engine", ENGINES)
async def test_https_url_goes_through_a_connect_tunnel(
    tinyproxy: Running, nginx: Running, bundle: Path, engine: str
) -> None:
    assert nginx.tls_url is not None
    result = await fetch_one(
        engine, nginx.tls_url + f"/echo/tunnel-{engine}", proxy=tinyproxy.url, cacert=bundle
    )
    assert result.error is None, result.error
    assert result.body is not None
    assert result.body.value == f"GET /echo/tunnel-{engine} HTTP/1.1\n"  # TLS to nginx itself
    authority = nginx.tls_url.removeprefix("https://")
    assert f"CONNECT {authority} HTTP/1.1" in servers.proxy_log(tinyproxy)


@pytest.mark.parametrize("engine", ENGINES)
async def test_proxy_credentials_are_sent_and_never_recorded(
    guarded_proxy: Running, origin: Running, engine: str
) -> None:
    proxy = with_credentials(guarded_proxy.url)
    result = await fetch_one(engine, origin.url + "/echo/guarded", proxy=proxy)
    assert result.status == 200
    seen = echoed(result)
    assert "proxy-authorization" not in seen["names"]  # the proxy's, not the origin's
    assert "s3cret" not in json.dumps(result.to_record())


@pytest.mark.parametrize("engine", ENGINES)
async def test_missing_proxy_credentials_give_a_clear_record(
    guarded_proxy: Running, origin: Running, nginx: Running, bundle: Path, engine: str
) -> None:
    # Plain http: the proxy answers the request itself with 407, as curl shows it.
    refused = await fetch_one(engine, origin.url + "/echo/x", proxy=guarded_proxy.url)
    assert refused.status == 407 and not refused.ok
    # https: CONNECT is refused; asking again cannot help, so no retry is spent on it.
    assert nginx.tls_url is not None
    tunnel = await fetch_one(
        engine, nginx.tls_url + "/echo/x", proxy=guarded_proxy.url, cacert=bundle, retries=3
    )
    assert tunnel.error is not None and tunnel.error.kind == "connect"
    assert "407" in tunnel.error.message and tunnel.attempts == 1


async def test_an_unreachable_proxy_is_a_connect_error(origin: Running) -> None:
    dead = f"http://127.0.0.1:{servers.free_port()}"
    result = await fetch_one("fast", origin.url + "/echo/x", proxy=dead)
    assert result.error is not None and result.error.kind == "connect"
    assert "proxy 127.0.0.1:" in result.error.message


# -- SOCKS5 ------------------------------------------------------------------------------


async def test_socks5h_lets_the_proxy_resolve_the_name(socks: Running, origin: Running) -> None:
    port = origin.url.rsplit(":", 1)[1]
    url = f"http://{ONLY_THE_PROXY_KNOWS}:{port}/echo/remote-dns?q=1"
    proxy = with_credentials(socks.url.replace("socks5://", "socks5h://"))
    result = await fetch_one("fast", url, proxy=proxy)
    assert result.error is None and result.status == 200
    seen = echoed(result)
    assert seen["target"] == "/echo/remote-dns?q=1"
    assert dict(seen["headers"])["host"] == f"{ONLY_THE_PROXY_KNOWS}:{port}"
    # socks5:// resolves here, where the name does not exist.
    local = await fetch_one("fast", url, proxy=with_credentials(socks.url))
    assert local.error is not None and local.error.kind == "dns"


async def test_socks5_tunnels_tls_to_the_origin(
    socks: Running, nginx: Running, bundle: Path
) -> None:
    assert nginx.tls_url is not None
    url = nginx.tls_url + "/static/file.txt"
    result = await fetch_one("fast", url, proxy=with_credentials(socks.url), cacert=bundle)
    assert result.error is None, result.error
    assert result.body is not None and result.body.value == servers.STATIC_TEXT


async def test_socks5_credentials_refused_are_not_retried(socks: Running, origin: Running) -> None:
    for proxy in (socks.url, with_credentials(socks.url, "agent:wrong")):
        result = await fetch_one("fast", origin.url + "/echo/x", proxy=proxy, retries=3)
        assert result.error is not None and result.error.kind == "connect", proxy
        assert "SOCKS5 proxy" in result.error.message and result.attempts == 1
        assert "wrong" not in result.error.message


async def test_the_aiohttp_engine_refuses_socks_with_a_clear_message() -> None:
    with pytest.raises(ConfigError, match="SOCKS proxies need the fast engine"):
        async with Fetcher(engine="aiohttp", proxy="socks5://127.0.0.1:1080"):
            pass


# -- the environment, as curl reads it (the CLI as a subprocess) ----------------------------


def run_fetch(
    tmp_path: Path, urls: list[str], env: dict[str, str], *options: str
) -> list[dict[str, Any]]:
    inputs = tmp_path / "urls.txt"
    inputs.write_text("\n".join(urls) + "\n")
    output = tmp_path / "out.jsonl"
    clean = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    command = [sys.executable, "-m", "asyncfetch", "fetch", str(inputs), "-o", str(output)]
    completed = subprocess.run(
        [*command, "-q", "--retries", "0", *options],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    return sorted(records, key=lambda record: str(record["url"]))


@pytest.mark.parametrize("engine", ENGINES)
def test_environment_proxies_and_no_proxy_as_curl(
    tinyproxy: Running, origin: Running, tmp_path: Path, engine: str
) -> None:
    port = origin.url.rsplit(":", 1)[1]
    proxied = f"http://127.0.0.1:{port}/echo/env-proxied-{engine}"
    exempt = f"http://localhost:{port}/echo/env-exempt-{engine}"
    env = {"http_proxy": tinyproxy.url, "NO_PROXY": "example.com,localhost"}
    records = run_fetch(tmp_path, [proxied, exempt], env, "--engine", engine)
    assert [r["status"] for r in records] == [200, 200]
    log = servers.proxy_log(tinyproxy)
    assert f"env-proxied-{engine}" in log and f"env-exempt-{engine}" not in log
    # --noproxy overrides no_proxy; --proxy "" turns the environment's proxy off.
    again = f"http://127.0.0.1:{port}/echo/env-noproxy-{engine}"
    run_fetch(tmp_path, [again], env, "--engine", engine, "--noproxy", "127.0.0.1")
    off = f"http://127.0.0.1:{port}/echo/env-off-{engine}"
    run_fetch(tmp_path, [off], env, "--engine", engine, "--proxy", "")
    log = servers.proxy_log(tinyproxy)
    assert f"env-noproxy-{engine}" not in log and f"env-off-{engine}" not in log


def test_uppercase_http_proxy_is_ignored_as_curl_ignores_it(
    tinyproxy: Running, origin: Running, tmp_path: Path
) -> None:
    # A CGI server sets HTTP_PROXY from a request's "Proxy:" header (httpoxy).
    url = origin.url + "/echo/env-upper"
    records = run_fetch(tmp_path, [url], {"HTTP_PROXY": tinyproxy.url})
    assert records[0]["status"] == 200
    assert "env-upper" not in servers.proxy_log(tinyproxy)
    records = run_fetch(tmp_path, [url + "-all"], {"ALL_PROXY": tinyproxy.url})
    assert "env-upper-all" in servers.proxy_log(tinyproxy)


# -- the decision itself ---------------------------------------------------------------------


def test_no_proxy_matches_as_curl() -> None:
    rules = NoProxy.parse(".example.com, 10.0.0.0/8 [::1] intranet:8080")
    assert rules.matches("example.com", 80) and rules.matches("a.b.example.com", 443)
    assert not rules.matches("badexample.com", 80)
    assert rules.matches("10.1.2.3", 80) and not rules.matches("11.1.2.3", 80)
    assert rules.matches("[::1]", 80)
    assert rules.matches("intranet", 8080) and not rules.matches("intranet", 80)
    assert NoProxy.parse("*").matches("anything", 1)
    assert not NoProxy.parse("").matches("example.com", 80)


def test_environment_precedence_as_curl() -> None:
    env = {
        "https_proxy": "http://tls-proxy:3128",
        "HTTPS_PROXY": "http://ignored:1",
        "ALL_PROXY": "socks5h://fallback",
        "no_proxy": "skip.example",
    }
    options = TransportOptions()
    tls = proxy_for("https://a.example/", options, env)
    assert tls is not None and (tls.host, tls.port) == ("tls-proxy", 3128)
    plain = proxy_for("http://a.example/", options, env)
    assert plain is not None and (plain.scheme, plain.port) == ("socks5h", 1080)
    assert proxy_for("https://www.skip.example/", options, env) is None
    given = TransportOptions(proxy="proxy.local:8080", noproxy="")
    chosen = proxy_for("https://www.skip.example/", given, env)
    assert chosen is not None and chosen.url == "http://proxy.local:8080"
    assert ProxyRules.from_options(TransportOptions(proxy=""), env).proxies == ()


def test_bad_proxy_urls_are_refused_with_a_message_that_hides_the_password() -> None:
    with pytest.raises(ConfigError, match="socks4") as refused:
        parse_proxy("socks4://user:hunter22@proxy:1080", "https_proxy")
    assert "hunter22" not in str(refused.value)
    assert "hunter22" not in repr(parse_proxy("http://user:hunter22@proxy:1"))
    with pytest.raises(ConfigError, match="https_proxy"):
        ProxyRules.from_options(TransportOptions(), {"https_proxy": "ftp://x"})
