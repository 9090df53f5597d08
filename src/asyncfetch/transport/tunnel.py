"""Sockets through a proxy: to the proxy itself, or tunnelled to the origin by HTTP
``CONNECT`` or SOCKS5. Each function returns a connected socket that the caller wraps
(TLS, its protocol); failures are mapped onto ProxyError and DNSError here.

SOCKS5 is python-socks' (it reads every reply field by its exact size). ``CONNECT`` is
our own, a dozen lines: python-socks reads the proxy's answer with one ``recv``, which
can stop inside its header block (and leave the rest in the tunnel, in front of the
origin's TLS) and it sends a User-Agent of its own.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Final

import aiohappyeyeballs
from python_socks import ProxyConnectionError, ProxyType
from python_socks import ProxyError as SocksError
from python_socks.async_.asyncio import Proxy as SocksClient

from .._errors import ProxyError
from .._settings import is_ip_address
from .proxy import Proxy
from .resolver import Resolver

_HAPPY_EYEBALLS_DELAY: Final = 0.25
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})
_MAX_REPLY_HEAD: Final = 64 * 1024
# python-socks bounds its own handshake by this when given none; the caller's connect
# timeout (an asyncio.timeout around the whole opening) is the one that counts.
_SOCKS_TIMEOUT_S: Final = 3600.0


async def connect_to_proxy(resolver: Resolver, proxy: Proxy) -> socket.socket:
    """A TCP socket to the proxy (names resolved as the origin's are: --resolve, c-ares)."""
    addresses = await resolver.resolve(proxy.host, proxy.port)
    try:
        return await aiohappyeyeballs.start_connection(
            addresses, happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY, interleave=1
        )
    except OSError as exc:
        if exc.errno in _OUT_OF_DESCRIPTORS:
            raise  # the pool waits for a descriptor
        reason = exc.strerror or str(exc)
        raise ProxyError(f"cannot connect to proxy {proxy.address}: {reason}") from exc


async def open_tunnel(
    resolver: Resolver, proxy: Proxy, host: str, port: int, user_agent: str
) -> socket.socket:
    """A socket on which bytes reach ``host:port`` through ``proxy``."""
    if proxy.socks:
        return await _socks5_tunnel(resolver, proxy, host, port)
    sock = await connect_to_proxy(resolver, proxy)
    try:
        await _http_connect(sock, proxy, host, port, user_agent)
    except BaseException:
        sock.close()
        raise
    return sock


# -- HTTP CONNECT (RFC 9110 section 9.3.6) ----------------------------------------------


async def _http_connect(
    sock: socket.socket, proxy: Proxy, host: str, port: int, user_agent: str
) -> None:
    loop = asyncio.get_running_loop()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {user_agent}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head, extra = await _read_reply_head(loop, sock, proxy)
    status, reason = _status_of(head, proxy)
    if not 200 <= status < 300:
        raise _connect_refused(proxy, authority, status, reason)
    if extra:
        raise ProxyError(f"proxy {proxy.address} sent bytes after its CONNECT answer")


async def _read_reply_head(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: Proxy
) -> tuple[bytes, bytes]:
    # The origin says nothing before our TLS ClientHello: whatever follows the blank
    # line now is the proxy's (a 407 page, say), never the origin's.
    received = b""
    while b"\r\n\r\n" not in received:
        if len(received) > _MAX_REPLY_HEAD:
            raise ProxyError(f"proxy {proxy.address} answered CONNECT with an endless head")
        chunk = await loop.sock_recv(sock, 16 * 1024)
        if not chunk:
            raise ProxyError(f"proxy {proxy.address} closed the connection during CONNECT")
        received += chunk
    head, _, extra = received.partition(b"\r\n\r\n")
    return head, extra


def _status_of(head: bytes, proxy: Proxy) -> tuple[int, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProxyError(f"proxy {proxy.address} answered CONNECT with {line[:80]!r}")
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


def _connect_refused(proxy: Proxy, authority: str, status: int, reason: str) -> ProxyError:
    answer = f"{status} {reason}".strip()
    if status == 407:
        what = "refused the credentials" if proxy.username is not None else "needs credentials"
        return ProxyError(f"proxy {proxy.address} {what} ({answer})", permanent=True)
    # 4xx: the proxy will not go there (a forbidden port, say); 5xx may pass.
    return ProxyError(
        f"proxy {proxy.address} refused CONNECT to {authority}: {answer}",
        permanent=400 <= status < 500,
    )


# -- SOCKS5 (RFC 1928, username/password RFC 1929) --------------------------------------


async def _socks5_tunnel(resolver: Resolver, proxy: Proxy, host: str, port: int) -> socket.socket:
    proxy_ip = str((await resolver.resolve(proxy.host, proxy.port))[0][4][0])
    targets = [host]
    if proxy.scheme == "socks5" and not is_ip_address(host):
        # socks5://: the name is resolved here, as curl does; socks5h:// leaves it to the
        # proxy. Each address in turn, as a direct connection would try them.
        targets = [str(info[4][0]) for info in await resolver.resolve(host, port)]
    for index, target in enumerate(targets):
        try:
            return await _socks5_connect(proxy, proxy_ip, target, port)
        except SocksError as exc:
            if exc.error_code not in _SOCKS_UNREACHABLE or index == len(targets) - 1:
                raise _socks_refused(proxy, host, port, exc) from exc
    raise AssertionError("unreachable: the last target raises")


async def _socks5_connect(proxy: Proxy, proxy_ip: str, target: str, port: int) -> socket.socket:
    client = SocksClient(
        ProxyType.SOCKS5,
        proxy_ip,
        proxy.port,
        username=proxy.username,
        password=None if proxy.username is None else proxy.password or "",
        rdns=True,
        loop=asyncio.get_running_loop(),
    )
    try:
        return await client.connect(target, port, timeout=_SOCKS_TIMEOUT_S)
    except ProxyConnectionError as exc:
        if exc.errno in _OUT_OF_DESCRIPTORS:
            raise OSError(exc.errno, str(exc)) from exc
        raise ProxyError(f"cannot connect to SOCKS5 proxy {proxy.address}: {exc}") from exc


def _socks_refused(proxy: Proxy, host: str, port: int, exc: SocksError) -> ProxyError:
    reason = str(exc)
    lowered = reason.lower()
    if "authentication" in lowered:
        what = "refused the credentials" if proxy.username is not None else "needs credentials"
        return ProxyError(f"SOCKS5 proxy {proxy.address} {what} ({reason})", permanent=True)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # A reply code (refused, unreachable, ...) is the proxy's view of the origin now.
    return ProxyError(
        f"SOCKS5 proxy {proxy.address} could not connect to {where}: {reason}",
        permanent=exc.error_code in _SOCKS_NOT_ALLOWED,
    )


# RFC 1928 reply codes for an address that cannot be reached: the next one may be.
_SOCKS_UNREACHABLE: Final = frozenset({3, 4, 5})
# RFC 1928 reply codes that asking again cannot change: not allowed by the ruleset,
# command or address type not supported.
_SOCKS_NOT_ALLOWED: Final = frozenset({2, 7, 8})
