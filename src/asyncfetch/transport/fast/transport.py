"""The ``fast`` transport: lean HTTP/1.1 on asyncio Protocols and llhttp (httptools).

It does one hop per ``send`` (no redirects, no proxies, no cookies) and spends as little
as possible per request: origins and request targets are parsed once and cached, the
request head is one formatted string, and the response is parsed by llhttp in C. It runs
on whatever loop is running, uvloop included, and is fastest there.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from types import TracebackType
from typing import Final
from urllib.parse import unquote, urlsplit

from ..._errors import (
    CancelledRequestError,
    ConfigError,
    ProtocolError,
    ReadError,
    TransportError,
    caused_by,
)
from ..._models import Request, Response
from ..._settings import Timeouts, TransportOptions
from ...policy.hosts import authority_ends_at, host_of
from ..base import Exchange
from ..descriptors import connection_cap, lookups_for
from ..proxy import ProxyRules
from ..resolver import Resolver
from ..targets import normalized_target
from ..tls import ALPN_H2, client_context
from .budget import ConnectionBudget
from .codec import ACCEPT_ENCODING
from .connection import Connection, Outbox, StaleConnection
from .http2_origin import H2Origin, NotH2, request_headers
from .pool import HostPool, open_connection

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COMMON_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# We frame the body ourselves; a caller's framing headers would desync the connection.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})
# From the end of "scheme://" to the first /, ? or #: the authority (always matches).
_authority_end: Final = re.compile(r"[^/?#]*").match
# Origins whose way through the proxies is remembered; past it the memory starts again.
_FORWARD_FORMS_KEPT: Final = 4096


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a connection goes: the pool key. ``host_header`` is what Host: carries;
    ``limit_key`` is the per-host limit's key, :func:`~asyncfetch.policy.hosts.host_of`."""

    scheme: str
    host: str
    port: int
    host_header: str
    key: str  # a str: its hash is cached, so the per-request pool lookup is cheap
    limit_key: str


class Route:
    """Where one URL goes: its origin (shared, cached) and its request target."""

    __slots__ = ("authorization", "origin", "target")

    def __init__(self, origin: Origin, target: str, authorization: str | None) -> None:
        # Not a frozen dataclass: this is built for every request, and frozen costs more.
        self.origin = origin
        self.target = target
        self.authorization = authorization  # from user:password@ in the URL


def _not_sendable(message: str) -> ProtocolError:
    return ProtocolError(message, may_have_been_sent=False)


class _LastOrigin:
    """The origin part of the last URL routed, with what it parsed to.

    Runs send most URLs to the origin of the one before. A URL that starts with the same
    "scheme://authority" text, followed by "/", "?", "#" or its end, has that origin: it
    skips the authority scan, the slice and the cache lookup of :func:`_origin_of`.
    """

    __slots__ = ("entry",)

    def __init__(self) -> None:
        # One tuple, replaced whole: a reader never sees a prefix with another's origin.
        self.entry: tuple[str, Origin, str | None] | None = None


_last_origin: Final = _LastOrigin()


def route(url: str) -> Route:
    """Where ``url`` goes; ProtocolError (not sent) for a URL this transport cannot send.

    Runs use few origins but, often, a new URL for every request: only the origin part is
    parsed (through the caches); the target is cut out of the string directly.
    """
    last = _last_origin.entry
    if last is not None and url.startswith(last[0]) and authority_ends_at(url, len(last[0])):
        end = len(last[0])
        origin, authorization = last[1], last[2]
    else:
        end, origin, authorization = _parse_origin(url)
    target = url[end:]
    if "#" in target:
        target = target.split("#", 1)[0]
    if target[:1] != "/" or "/." in target or not target.isascii() or " " in target:
        target = normalized_target(target)
    return Route(origin, target, authorization)


def _parse_origin(url: str) -> tuple[int, Origin, str | None]:
    """Where ``url``'s authority ends, and its origin; remembered for the next URL."""
    authority_start = url.find("://") + 3
    if authority_start <= 2:
        origin, authorization = _origin_of(url)  # raises: no "//", no host
        return len(url), origin, authorization
    end = _authority_end(url, authority_start).end()  # type: ignore[union-attr]
    prefix = url[:end]
    origin, authorization = _origin_of(prefix)
    _last_origin.entry = (prefix, origin, authorization)
    return end, origin, authorization


@lru_cache(maxsize=4096)
def _origin_of(origin_url: str) -> tuple[Origin, str | None]:
    try:
        parts = urlsplit(origin_url)
        port = parts.port
    except ValueError as exc:
        raise caused_by(_not_sendable(f"invalid URL {origin_url!r}: {exc}"), exc)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise _not_sendable(
            f"cannot fetch {origin_url!r}: need an http:// or https:// URL with a host"
        )
    host = _ascii_host(parts.hostname)
    port = port or _DEFAULT_PORTS[scheme]
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == _DEFAULT_PORTS[scheme] else f"{bracketed}:{port}"
    key = f"{scheme}://{host_header}"
    origin = Origin(scheme, host, port, host_header, key, host_of(origin_url))
    return origin, _basic_auth(parts.username, parts.password)


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise caused_by(_not_sendable(f"invalid host name {host!r}"), exc)


def _basic_auth(username: str | None, password: str | None) -> str | None:
    if username is None:
        return None
    credentials = f"{unquote(username)}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def _check_header(name: str, value: str) -> None:
    # CR/LF would let a header value inject headers or a whole second request.
    if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value or "\0" in value:
        raise _not_sendable(
            f"invalid request header {name!r}: names must be tokens, values one line"
        )


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise caused_by(_not_sendable(f"request head cannot be encoded: {exc.reason}"), exc)


class FastTransport:
    """HTTP/1.1 transport with bounded keep-alive pools per origin, built for throughput.

    ``per_host_connections`` bounds the connections to each (scheme, host, port);
    ``max_connections`` bounds them all together, idle ones included (default: from the
    file limit, see :func:`~asyncfetch.transport.descriptors.connection_cap`);
    ``idle_timeout`` closes connections unused for that many seconds. Names are resolved
    by ``resolver`` (default: one made from the options' DNS servers and overrides).
    Proxies (``http://``, ``socks5://``, ``socks5h://``; from the options or the
    environment, see ``transport/proxy.py``) are used only for the origins they apply
    to; an ``https://`` proxy is not supported: check :meth:`supports`.
    """

    name = "fast"

    def __init__(
        self,
        options: TransportOptions,
        *,
        per_host_connections: int = 8,
        idle_timeout: float = 30.0,
        max_connections: int | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        if per_host_connections < 1:
            raise ConfigError("per_host_connections must be at least 1, e.g. 8")
        if max_connections is not None and max_connections < 1:
            raise ConfigError("max_connections must be at least 1, e.g. 200")
        if idle_timeout <= 0:
            raise ConfigError("idle_timeout must be a positive number of seconds, e.g. 30")
        self._proxies = ProxyRules.from_options(options)
        if not _serves(self._proxies):
            raise ConfigError("the fast engine cannot use an https:// proxy; use --engine aiohttp")
        self._proxied = bool(self._proxies.proxies)
        # Per origin: how an http request goes to its HTTP proxy (absolute-form prefix,
        # Proxy-Authorization line), or None (direct, or tunnelled).
        self._forward_forms: dict[str, tuple[bytes, bytes] | None] = {}
        self._options = options
        self._per_host = per_host_connections
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections or connection_cap(100)
        self._budget: ConnectionBudget | None = None  # made with the first pool
        self._owns_resolver = resolver is None
        self.resolver = resolver or Resolver(
            servers=options.dns_servers,
            overrides=options.resolve,
            max_lookups=lookups_for(self._max_connections),
        )
        self._pools: dict[str, HostPool] = {}
        self._live: set[Connection] = set()
        self._outbox: Outbox | None = None  # made with the first pool, on the running loop
        self._ssl_context: ssl.SSLContext | None = None
        # --http2: https origins go to HTTP/2 connections first (http2.py); those whose
        # server picked HTTP/1.1 by ALPN are remembered and take the HTTP/1.1 path.
        self._http2 = options.http_version == "2"
        self._h2_origins: dict[str, H2Origin] = {}
        self._timeouts_seen: Timeouts | None = None  # start_now's, and its two fields
        self._read_timeout: float | None = None
        self._total_timeout: float | None = None
        self._h1_only: set[str] = set()
        self._h2_context: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._default_lines = (
            f"User-Agent: {options.user_agent}\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n"
        )
        if "\r" in options.user_agent or "\n" in options.user_agent:
            raise ConfigError("user_agent must be a single line")

    @classmethod
    def supports(cls, options: TransportOptions) -> bool:
        """Whether this transport can serve a run with ``options`` (not an https:// proxy)."""
        return _serves(ProxyRules.from_options(options))

    async def __aenter__(self) -> FastTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, request: Request, *, timeouts: Timeouts, max_body: int) -> Response:
        """Send ``request`` once (no redirects) and return the response with its decoded body."""
        if self._closed:
            raise CancelledRequestError("the transport is closed")
        loop = asyncio.get_running_loop()
        start = time.perf_counter()  # the clock of Connection.headers_at
        where = route(request.url)
        if (
            self._http2
            and where.origin.scheme == "https"
            and where.origin.key not in self._h1_only
        ):
            response = await self._send_h2(request, where, timeouts, max_body, loop)
            if response is not None:
                return response
        head = self._encode_head(request, where)
        if self._proxied:
            head = self._through_proxy(head, where.origin)
        pool = self._pools.get(where.origin.key) or self._add_pool(where.origin, loop)
        conn, connect_ms = await self._exchange(pool, request, head, timeouts, max_body)
        response = Response(
            status=conn.status,
            url=request.url,
            headers=conn.headers(),
            body=conn.body(),
            connect_ms=connect_ms,
            protocol=conn.protocol,
            ttfb_ms=(conn.headers_at - start) * 1000.0,
        )
        pool.release(conn)
        return response

    def start_now(self, exchange: Exchange, timeouts: Timeouts, max_body: int, /) -> bool:
        """Start ``exchange.request`` on an idle kept-alive connection, without awaiting
        anything (the ``StartsNow`` capability of ``transport/base.py``).

        False when that is not possible right now (no idle connection, callers queued for
        one, a request this transport would refuse): the caller then uses :meth:`send`,
        which waits, connects and reports errors. Otherwise ``exchange.landed`` is called
        once, later, with the Response (one hop: redirects are the caller's), the
        TransportError, or None when a stale connection means it may be sent again.
        """
        if self._closed:
            return False
        request = exchange.request
        try:
            where = route(request.url)
            head = self._encode_head(request, where)
            if self._proxied:
                head = self._through_proxy(head, where.origin)
        except TransportError:
            return False  # send() raises it again, where errors are reported
        pool = self._pools.get(where.origin.key)
        conn = None if pool is None else pool.take_idle()
        if conn is None:
            return False
        conn.context = exchange
        if timeouts is not self._timeouts_seen:
            # Timeouts is an interpreted class: its fields are read once per object rather
            # than twice per request (each read is a dictionary look-up in compiled code).
            self._timeouts_seen = timeouts
            self._read_timeout, self._total_timeout = timeouts.read, timeouts.total
        conn.start(
            head,
            request.body,
            is_head=request.method == "HEAD",
            max_body=max_body,
            read_timeout=self._read_timeout,
            total_timeout=self._total_timeout,
            on_done=self._landed,
        )
        return True

    def _landed(self, conn: Connection, error: BaseException | None) -> None:
        exchange: Exchange = conn.context
        conn.context = None
        pool: HostPool = conn.pool
        if error is not None:
            pool.discard(conn)
            if isinstance(error, StaleConnection):
                request = exchange.request
                exchange.landed(None if stale_may_retry(error, request) else stale_error(error))
            elif isinstance(error, TransportError):
                exchange.landed(error)
            else:
                raise error  # a bug: let the loop's exception handler report it
            return
        response = Response(
            status=conn.status,
            url=exchange.request.url,
            headers=conn.headers(),
            body=conn.body(),
            connect_ms=None,
            ttfb_ms=(conn.headers_at - conn.sent_at) * 1000.0,
            protocol=conn.protocol,
        )
        pool.release(conn)
        exchange.landed(response)

    async def _exchange(
        self,
        pool: HostPool,
        request: Request,
        head: bytes,
        timeouts: Timeouts,
        max_body: int,
    ) -> tuple[Connection, float | None]:
        conn, connect_ms = await pool.acquire(timeouts.connect)
        retried = False
        while True:
            try:
                await conn.exchange(
                    head,
                    request.body,
                    is_head=request.method == "HEAD",
                    max_body=max_body,
                    read_timeout=timeouts.read,
                )
                return conn, connect_ms
            except StaleConnection as exc:
                if retried or not stale_may_retry(exc, request):
                    pool.discard(conn)
                    raise caused_by(stale_error(exc), exc)
                # The server closed a kept-alive connection before answering: once, on a
                # fresh connection, when stale_may_retry allows it.
                retried = True
                conn, connect_ms = await pool.replace(conn, timeouts.connect)
            except BaseException:
                pool.discard(conn)
                raise

    async def _send_h2(
        self,
        request: Request,
        where: Route,
        timeouts: Timeouts,
        max_body: int,
        loop: asyncio.AbstractEventLoop,
    ) -> Response | None:
        """``request`` on the origin's HTTP/2 connection; None when the server speaks
        HTTP/1.1 only (ALPN), which the caller then uses."""
        key = where.origin.key
        origin = self._h2_origins.get(key) or self._add_h2_origin(where.origin, loop)
        headers = request_headers(
            self._checked_method(request),
            where.origin.host_header,
            where.target,
            self._h2_fields(request, where),
            request.body,
        )
        try:
            (status, fields, body, ttfb_ms), connect_ms = await origin.request(
                headers,
                request.body,
                connect_timeout=timeouts.connect,
                read_timeout=timeouts.read,
                max_body=max_body,
            )
        except NotH2:
            self._h1_only.add(key)
            if self._h2_origins.get(key) is origin:
                del self._h2_origins[key]
            return None
        return Response(status, request.url, fields, body, connect_ms, ttfb_ms, "HTTP/2")

    def _h2_fields(self, request: Request, where: Route) -> list[tuple[str, str]]:
        caller: list[tuple[str, str]] = []
        for name, value in request.headers:
            _check_header(name, value)
            caller.append((name, value))
        given = {name.lower() for name, _ in caller}
        defaults = [("user-agent", self._options.user_agent), ("accept-encoding", ACCEPT_ENCODING)]
        if where.authorization is not None:
            defaults.append(("authorization", where.authorization))
        return [field for field in defaults if field[0] not in given] + caller

    def _add_h2_origin(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> H2Origin:
        from .http2 import open_session  # h2 is imported by runs that offer it only

        if self._h2_context is None:
            self._h2_context = client_context(self._options, ALPN_H2)
        connect = partial(open_session, loop, self.resolver, origin.host, origin.port)
        context = self._h2_context
        h2_origin = H2Origin(
            lambda timeout, on_change: connect(context, timeout, on_change),
            limit=self._per_host,
            loop=loop,
        )
        self._h2_origins[origin.key] = h2_origin
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        return h2_origin

    @property
    def h2_origin_count(self) -> int:
        """Origins with HTTP/2 state now (idle ones are forgotten by the sweeper)."""
        return len(self._h2_origins)

    @staticmethod
    def _checked_method(request: Request) -> str:
        method = request.method
        if method not in _COMMON_METHODS and not _TOKEN.fullmatch(method):
            raise _not_sendable(f"invalid request method {method!r}")
        return method

    def _encode_head(self, request: Request, where: Route) -> bytes:
        method = request.method
        if method not in _COMMON_METHODS and not _TOKEN.fullmatch(method):
            raise _not_sendable(f"invalid request method {method!r}")
        host = where.origin.host_header
        body = request.body
        framing = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        if body is None and method in ("POST", "PUT", "PATCH"):
            framing = "Content-Length: 0\r\n"  # some servers answer 411 without it
        if not request.headers and where.authorization is None:
            text = f"{method} {where.target} HTTP/1.1\r\nHost: {host}\r\n{self._default_lines}"
            return _encode(f"{text}{framing}\r\n")
        lines = [f"{method} {where.target} HTTP/1.1\r\n"]
        given = self._add_caller_headers(lines, request.headers)
        if "host" not in given:
            lines.insert(1, f"Host: {host}\r\n")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {self._options.user_agent}\r\n")
        if "accept-encoding" not in given:
            lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}\r\n")
        if "authorization" not in given and where.authorization is not None:
            lines.append(f"Authorization: {where.authorization}\r\n")
        lines.append(f"{framing}\r\n")
        return _encode("".join(lines))

    def _through_proxy(self, head: bytes, origin: Origin) -> bytes:
        """``head`` as an HTTP proxy takes it: the target in absolute form (RFC 9112
        section 3.2.2) and the proxy's credentials; unchanged for any other way."""
        form = self._forward_form(origin)
        if form is None:
            return head
        prefix, authorization = form
        target_at = head.index(b" ") + 1
        line_end = head.index(b"\r\n") + 2
        return b"".join(
            (head[:target_at], prefix, head[target_at:line_end], authorization, head[line_end:])
        )

    def _forward_form(self, origin: Origin) -> tuple[bytes, bytes] | None:
        forms = self._forward_forms
        key = origin.key
        if key in forms:
            return forms[key]
        proxy = self._proxies.for_origin(origin.scheme, origin.host, origin.port)
        form = None
        if proxy is not None and not proxy.socks and origin.scheme == "http":
            auth = proxy.authorization
            line = b"" if auth is None else f"Proxy-Authorization: {auth}\r\n".encode()
            form = (key.encode(), line)
        if len(forms) >= _FORWARD_FORMS_KEPT:
            forms.clear()  # memory must not grow with the hosts seen
        forms[key] = form
        return form

    @staticmethod
    def _add_caller_headers(lines: list[str], headers: tuple[tuple[str, str], ...]) -> set[str]:
        given: set[str] = set()
        for name, value in headers:
            _check_header(name, value)
            lowered = name.lower()
            if lowered in _FRAMING_HEADERS:
                continue
            given.add(lowered)
            lines.append(f"{name}: {value}\r\n")
        return given

    @property
    def max_connections(self) -> int:
        """The most connections open at once (in use, idle or opening)."""
        return self._max_connections

    @property
    def budget(self) -> ConnectionBudget | None:
        """The cap on open connections and their count (None until the first request)."""
        return self._budget

    @property
    def pool_count(self) -> int:
        """Origins with a pool now (busy or with idle connections)."""
        return len(self._pools)

    def _add_pool(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> HostPool:
        ssl_context = self._tls_context() if origin.scheme == "https" else None
        proxy = None
        if self._proxied:
            proxy = self._proxies.for_origin(origin.scheme, origin.host, origin.port)
        if proxy is None:
            connect = partial(
                open_connection, loop, self.resolver, origin.host, origin.port, ssl_context
            )
        else:
            from .proxied import open_proxied_connection  # python-socks: proxied runs only

            user_agent = self._options.user_agent
            connect = partial(
                open_proxied_connection,
                loop,
                self.resolver,
                proxy,
                user_agent,
                origin.host,
                origin.port,
                ssl_context,
            )
        if self._outbox is None:
            self._outbox = Outbox(loop)
        if self._budget is None:
            self._budget = ConnectionBudget(self._max_connections, loop)
        outbox = self._outbox
        key = origin.key
        pool = HostPool(
            lambda timeout: connect(timeout, self._live, outbox),
            limit=self._per_host,
            idle_timeout=self._idle_timeout,
            loop=loop,
            budget=self._budget,
            on_unused=lambda unused: self._forget_pool(key, unused),
        )
        self._pools[key] = pool
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        return pool

    def _forget_pool(self, key: str, pool: HostPool) -> None:
        if self._pools.get(key) is pool:
            del self._pools[key]

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = client_context(self._options)
        return self._ssl_context

    def _sweep_interval(self) -> float:
        return min(max(self._idle_timeout / 2, 0.05), 5.0)

    def _sweep(self) -> None:
        # One timer per transport, not one per idle connection: expiry is not hot.
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for key, pool in list(self._pools.items()):
            pool.expire(now)  # may forget the pool itself (HostPool's on_unused)
            if pool.unused:
                self._forget_pool(key, pool)  # memory must not grow with the hosts seen
        for key, h2_origin in list(self._h2_origins.items()):
            if h2_origin.expire(now, self._idle_timeout):
                del self._h2_origins[key]
        if (self._pools or self._h2_origins) and not self._closed:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    async def aclose(self) -> None:
        """Close every connection, idle or busy, and wait until their sockets are closed."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        h2_lost = [lost for origin in self._h2_origins.values() for lost in origin.close()]
        self._h2_origins.clear()
        live = list(self._live)
        for conn in live:
            conn.abort()
        if live:
            await _wait_all_closed(live)
        if h2_lost:
            await asyncio.wait(h2_lost, timeout=5.0)
        if self._owns_resolver:
            await self.resolver.aclose()


def _serves(rules: ProxyRules) -> bool:
    # TLS to the proxy itself (TLS inside TLS for https origins) is the aiohttp engine's.
    return all(proxy.scheme != "https" for proxy in rules.proxies)


def stale_may_retry(stale: StaleConnection, request: Request) -> bool:
    """Whether a request that met a stale connection may be sent again on a fresh one.

    Unwritten, the request never reached the server; written, it may have, so only an
    idempotent request is sent again (RFC 9110 §9.2.2) - a POST is reported instead.
    """
    return not stale.written or request.idempotent


def stale_error(stale: StaleConnection) -> ReadError:
    """The error recorded for a stale connection that may not be retried."""
    return ReadError(str(stale), may_have_been_sent=stale.written)


async def _wait_all_closed(conns: list[Connection]) -> None:
    # Return only once sockets are really closed, so nothing leaks past the event loop.
    tasks = [asyncio.ensure_future(conn.wait_closed()) for conn in conns]
    _, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
