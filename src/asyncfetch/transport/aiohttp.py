"""The aiohttp transport: one pooled ClientSession per run, errors mapped at this boundary.

This is the only module of asyncfetch that imports aiohttp as a client.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import functools
import socket
import ssl
import time
from collections import OrderedDict
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import yarl
from aiohttp.client_proto import ResponseHandler

from .._errors import (
    CancelledRequestError,
    CertificateError,
    ConfigError,
    ConnectError,
    DNSError,
    ProtocolError,
    ProxyError,
    ReadError,
    TimeoutError_,
    TLSError,
    TooLargeError,
    TransportError,
)
from .._models import Request, Response
from .._settings import Timeouts, TransportOptions
from .base import MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS
from .descriptors import connection_cap, lookups_for
from .proxy import ProxyRules
from .resolver import Resolver
from .targets import normalized_target
from .tls import client_context

_CHUNK = 64 * 1024
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})
_DESCRIPTOR_RETRY_S: Final = 0.05


def build_ssl_context(options: TransportOptions) -> ssl.SSLContext | bool:
    """The run's context (``transport/tls.py``), or True for aiohttp's shared verifying
    one when the run changes nothing of it (no second load of the system's CA store)."""
    if options.cacert is None and options.cert is None and not options.insecure:
        return True
    return client_context(options)


# The connect time of the current request, set by the connector when it opens a new
# connection. A context variable instead of aiohttp's TraceConfig: tracing costs every
# request several awaits, while this costs only the requests that open a connection.
_connect_ms: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "asyncfetch_connect_ms", default=None
)


class _HeadResponseHandler(ResponseHandler):
    """aiohttp's protocol, but a body sent after a HEAD response (busybox httpd does) is
    dropped, as the fast engine and curl drop it, instead of failing the response with
    "Data after Connection: close": only the head goes to the parser, and a connection
    that carried such bytes is never reused (RFC 9110 section 9.3.2: HEAD has no body)."""

    _head_done = False
    _head_tail = b""

    def set_response_params(self, **params: Any) -> None:
        self._head_done = False
        self._head_tail = b""
        super().set_response_params(**params)

    def data_received(self, data: bytes) -> None:
        if not self._skip_payload:
            super().data_received(data)
            return
        if self._head_done:
            self._should_close = True  # bytes after the head: the stream is not to be trusted
            return
        seen = self._head_tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._head_tail = seen[-3:]
            super().data_received(data)
            return
        self._head_done = True
        cut = end + 4 - len(self._head_tail)
        if cut < len(data):
            self._should_close = True
        super().data_received(data[:cut])


class _TimedConnector(aiohttp.TCPConnector):
    """aiohttp's connector with connect times, a bound on idle connections, and patience
    when the process is out of descriptors.

    aiohttp's ``limit`` counts connections in use only: idle keep-alive connections were
    kept for every host seen until the process ran out of descriptors. Here connections
    in use and idle ones together stay within ``max_connections``: beyond, the least
    recently used host's oldest idle one is closed.
    """

    def __init__(self, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = functools.partial(  # type: ignore[assignment]  # a subclass
            _HeadResponseHandler, loop=self._loop
        )
        self._max_connections = max_connections
        self._idle_count = 0
        # Keys with idle connections, least recently released first.
        self._idle_order: OrderedDict[Any, None] = OrderedDict()

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        connection = await self._create_when_possible(*args, **kwargs)
        sink = _connect_ms.get()
        if sink is not None:
            sink.append((time.perf_counter() - started) * 1000)
        return connection

    async def _create_when_possible(self, *args: Any, **kwargs: Any) -> Any:
        # Out of descriptors is not the request's failure: free an idle one, or wait.
        await self._make_room()
        while True:
            try:
                return await super()._create_connection(*args, **kwargs)
            except aiohttp.ClientConnectorError as exc:
                if exc.os_error.errno not in _OUT_OF_DESCRIPTORS:
                    raise
            if self._close_least_recent() is None:
                await asyncio.sleep(_DESCRIPTOR_RETRY_S)

    async def _make_room(self) -> None:
        """Close idle connections until this new one fits under the cap (it is counted in
        ``_acquired`` already), and wait until their sockets are really closed."""
        closing: list[asyncio.Future[None]] = []
        while self._idle_count + len(self._acquired) > self._max_connections:
            protocol = self._close_least_recent()
            if protocol is None:
                break
            if (closed := protocol.closed) is not None:
                closing.append(closed)
        if closing:
            await asyncio.wait(closing, timeout=1.0)

    async def _get(self, *args: Any, **kwargs: Any) -> Any:
        # aiohttp keeps parsing a pooled connection while it is idle: bytes a server sends
        # then (a forged second response after a short Content-Length) would be handed to
        # the next request as its answer. should_close is true once anything arrived.
        key = args[0] if args else kwargs["key"]
        while True:
            before = self._idle_of(key)
            connection = await super()._get(*args, **kwargs)
            self._count_idle(key, before)
            if connection is None:
                return None
            protocol = connection.protocol
            if protocol is not None and not protocol.should_close:
                return connection
            connection.close()

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        before = self._idle_of(key)
        super()._release(key, protocol, should_close=should_close)
        self._count_idle(key, before)
        in_use = len(self._acquired)
        while self._idle_count + in_use > self._max_connections:
            if self._close_least_recent() is None:
                break

    def _cleanup(self) -> None:
        super()._cleanup()  # closes expired idle connections: count again
        self._idle_count = sum(len(conns) for conns in self._conns.values())
        for key in [key for key in self._idle_order if key not in self._conns]:
            del self._idle_order[key]

    def _idle_of(self, key: Any) -> int:
        conns = self._conns.get(key)
        return 0 if conns is None else len(conns)

    def _count_idle(self, key: Any, before: int) -> None:
        after = self._idle_of(key)
        self._idle_count += after - before
        if after > before:
            self._idle_order[key] = None
            self._idle_order.move_to_end(key)
        elif after == 0:
            self._idle_order.pop(key, None)

    def _close_least_recent(self) -> Any:
        """Close the oldest idle connection of the least recently used host; it, or None."""
        while self._idle_order:
            key = next(iter(self._idle_order))
            conns = self._conns.get(key)
            if not conns:
                del self._idle_order[key]
                continue
            protocol, _released_at = conns.popleft()
            if not conns:
                del self._conns[key]
                del self._idle_order[key]
            self._idle_count -= 1
            protocol.close()
            return protocol
        return None


class _AsyncfetchResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver interface over :class:`~asyncfetch.transport.resolver.Resolver`:
    both engines share its c-ares lookups, bounded cache, ``--resolve`` and DNS servers."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        infos = await self._resolver.resolve(host, port)
        return [
            aiohttp.abc.ResolveResult(
                hostname=host,
                host=str(sockaddr[0]),
                port=port,
                family=address_family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address_family, _type, _proto, _name, sockaddr in infos
            if family in (socket.AF_UNSPEC, address_family)
        ]

    async def close(self) -> None:
        return None  # the transport closes its Resolver, after the session


# Methods whose request content has a meaning (RFC 9110 section 8.6): without a body they
# still say "Content-Length: 0", as the fast engine does; the others say nothing.
_CONTENT_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, framed as curl and the fast engine frame it: no
    ``Content-Length: 0`` on a bodiless DELETE (or any method without content)."""

    def update_body_from_data(self, body: Any, _stacklevel: int = 3) -> None:
        super().update_body_from_data(body, _stacklevel + 1)
        if body is None and self.method not in _CONTENT_METHODS:
            self.headers.pop("Content-Length", None)


class AiohttpTransport:
    """Transport over one shared :class:`aiohttp.ClientSession`."""

    name = "aiohttp"

    def __init__(
        self,
        options: TransportOptions,
        *,
        concurrency: int = 100,
        per_host_connections: int = 8,
        max_connections: int | None = None,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        self._options = options
        self._max_connections = max_connections or connection_cap(concurrency)
        # Connections in use (aiohttp's limit) and idle ones share the cap.
        self._concurrency = min(concurrency, self._max_connections)
        self._per_host = per_host_connections
        # c-ares through our Resolver (or a test's fake), not getaddrinfo in a thread pool;
        # ours caches by itself, in bounded memory, where aiohttp's cache never forgets.
        self._own_resolver = resolver is None
        self._resolver = resolver
        self._dns: Resolver | None = None  # ours, when no resolver was given
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeout_cache: tuple[Timeouts, aiohttp.ClientTimeout] | None = None
        # The one decision of both engines (transport/proxy.py), not aiohttp's trust_env:
        # its no_proxy and its reading of HTTP_PROXY differ from curl's.
        self._proxies = ProxyRules.from_options(options)
        if any(proxy.socks for proxy in self._proxies.proxies):
            raise ConfigError("SOCKS proxies need the fast engine; use --engine fast or auto")

    @property
    def max_connections(self) -> int:
        """The most connections open at once (in use and idle)."""
        return self._max_connections

    def _open(self) -> aiohttp.ClientSession:
        resolver = self._resolver
        if resolver is None:
            options = self._options
            self._dns = Resolver(
                servers=options.dns_servers,
                overrides=options.resolve,
                max_lookups=lookups_for(self._max_connections),
            )
            resolver = _AsyncfetchResolver(self._dns)
        connector = _TimedConnector(
            max_connections=self._max_connections,
            limit=self._concurrency,
            limit_per_host=self._per_host,
            ssl=build_ssl_context(self._options),
            use_dns_cache=not self._own_resolver,
            ttl_dns_cache=300,
            enable_cleanup_closed=False,
            resolver=resolver,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # requests must not leak state into others
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": self._options.user_agent},
            # A body is sent with the type its request gives, or none: never a made-up
            # application/octet-stream.
            skip_auto_headers=("Content-Type",),
            request_class=_Request,
            trust_env=False,
            # aiohttp's 8 KiB default rejects real sites: the limits both engines share.
            max_line_size=MAX_HEADER_FIELD_BYTES,
            max_field_size=MAX_HEADER_FIELD_BYTES,
            max_headers=MAX_HEADER_FIELDS,
        )
        # aiohttp replays a GET once after any reset or disconnect, even on a new
        # connection: a failing server then sees two requests per attempt that no record
        # counts. _send_once replays only on a reused connection (RFC 9112 section 9.3.1).
        session._retry_connection = False
        return session

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(self, request: Request, *, timeouts: Timeouts, max_body: int) -> Response:
        if self._session is None:
            if self._closed:
                raise CancelledRequestError("the transport is closed")
            self._session = self._open()
        try:
            if request.url[:6].lower() == "https:":
                _check_tls_name(urlsplit(request.url).hostname or "")
            return await self._send_once(
                self._session, request, timeouts, max_body, replay_stale=request.idempotent
            )
        except TransportError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise map_error(exc) from exc

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        timeouts: Timeouts,
        max_body: int,
        *,
        replay_stale: bool,
    ) -> Response:
        connect_times: list[float] = []
        _connect_ms.set(connect_times)
        started = time.perf_counter()
        answered = False
        try:
            async with session.request(
                request.method,
                _target_url(request),
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
                proxy=self._proxy_url(request.url),
                timeout=self._client_timeout(timeouts),
            ) as response:
                answered = True
                ttfb_ms = (time.perf_counter() - started) * 1000
                body = await _read_body(response, max_body)
                return Response(
                    status=response.status,
                    url=request.url,
                    headers=tuple((str(name), value) for name, value in response.headers.items()),
                    body=body,
                    connect_ms=connect_times[0] if connect_times else None,
                    ttfb_ms=ttfb_ms,
                    protocol=_protocol(response.version),
                )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # No new connection was made and nothing came back: the server closed a pooled
            # connection as we reused it. An idempotent request goes once more, on a new one.
            opened = bool(connect_times) or isinstance(exc, aiohttp.ClientConnectorError)
            if answered or opened or not replay_stale:
                raise
        return await self._send_once(session, request, timeouts, max_body, replay_stale=False)

    def _proxy_url(self, url: str) -> str | None:
        proxies = self._proxies
        if not proxies.by_scheme:
            return None
        proxy = proxies.for_url(url)
        return None if proxy is None else proxy.url  # aiohttp sends its userinfo as Basic

    def _client_timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        # Built once per distinct Timeouts: a run uses one, and aiohttp copies nothing.
        cached = self._timeout_cache
        if cached is None or cached[0] is not timeouts:
            client_timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
            cached = self._timeout_cache = (timeouts, client_timeout)
        return cached[1]

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._dns is not None:
            await self._dns.aclose()


@functools.lru_cache(maxsize=1024)
def _check_tls_name(host: str) -> None:
    """Raise ValueError for a host name TLS cannot carry (an empty or 64+ character label).

    asyncio fails on such a name only after the TCP connection is made, and that socket is
    then never closed: checked here, a request to ``https://a..b/`` leaks nothing.
    """
    host.encode("idna")  # UnicodeError, a ValueError, says which label is wrong


def _protocol(version: aiohttp.HttpVersion | None) -> str:
    """The record's name of the answer's HTTP version ("HTTP/1.1", "HTTP/1.0")."""
    if version is None:
        return "HTTP/1.1"
    return f"HTTP/{version.major}.{version.minor}"


def _target_url(request: Request) -> yarl.URL:
    """The URL aiohttp sends, with the target as the fast engine and curl send it.

    Marked as already encoded, so that yarl neither decodes reserved characters (``%2F``
    stays ``%2F``) nor re-encodes anything; the origin goes through yarl for IDNA. An
    explicit Authorization header wins over URL userinfo, as with curl: aiohttp refuses
    the combination outright, so the userinfo is dropped.
    """
    parts = urlsplit(request.url)
    origin = yarl.URL(f"{parts.scheme}://{parts.netloc}")
    if parts.username is not None and _has_authorization(request):
        origin = origin.with_user(None)
    # The target as written (an empty query's "?" included), as the fast engine cuts it.
    target = request.url.split("#", 1)[0][len(parts.scheme) + 3 + len(parts.netloc) :]
    return yarl.URL(str(origin) + normalized_target(target), encoded=True)


def _has_authorization(request: Request) -> bool:
    return any(name.lower() == "authorization" for name, _ in request.headers)


async def _read_body(response: aiohttp.ClientResponse, max_body: int) -> bytes:
    """Read the decoded body, refusing more than ``max_body`` bytes.

    The cap applies to decoded bytes, read in chunks, so a gzip bomb stops at the cap
    instead of being inflated in full.
    """
    declared = response.content_length
    encoded = "Content-Encoding" in response.headers
    if declared is not None and not encoded:
        if declared > max_body:
            raise TooLargeError(f"body of {declared} bytes is over the {max_body}-byte limit")
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(_CHUNK):
        size += len(chunk)
        if size > max_body:
            raise TooLargeError(f"body is over the {max_body}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def map_error(exc: BaseException) -> TransportError:
    """Map an aiohttp/OS exception onto asyncfetch's error tree (the only place that does)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy answered CONNECT with an error: 407 and other 4xx cannot change.
        answer = f"{exc.status} {exc.message}".strip()
        return ProxyError(f"the proxy refused CONNECT: {answer}", permanent=exc.status < 500)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ProxyError(f"cannot connect to the proxy: {message}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DNSError(f"name resolution failed: {message}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        return CertificateError(f"TLS failed: {message}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return TLSError(f"TLS failed: {message}")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS failed: {message}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect: {message}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TimeoutError_("connect timed out", may_have_been_sent=False)
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError_("read timed out")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ReadError("server closed the connection before the response was complete")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _map_payload_error(exc, message)
    if isinstance(exc, aiohttp.ClientResponseError):
        return ProtocolError(f"malformed response: {exc.message}")
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return ProtocolError(f"invalid request: {message}", may_have_been_sent=False)
    return ReadError(f"connection failed: {message}")


def _map_payload_error(exc: aiohttp.ClientPayloadError, message: str) -> TransportError:
    cause = exc.__cause__
    if "TransferEncodingError" in type(cause).__name__ or "chunk" in message.lower():
        return ProtocolError(f"malformed chunked body: {message}")
    return ReadError(f"body incomplete: {message}")
