"""The fast engine's connections through a proxy: a socket from ``transport/tunnel.py``
(to the proxy, or tunnelled to the origin), then the same wrapping as a direct one."""

from __future__ import annotations

import asyncio
import ssl

from ..proxy import Proxy
from ..resolver import Resolver
from ..tunnel import connect_to_proxy, open_tunnel
from .connection import Connection, Outbox
from .pool import connect_error, wrap_socket


async def open_proxied_connection(
    loop: asyncio.AbstractEventLoop,
    resolver: Resolver,
    proxy: Proxy,
    user_agent: str,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float | None,
    live: set[Connection],
    outbox: Outbox,
) -> Connection:
    """A connection for ``host:port`` through ``proxy``: tunnelled (SOCKS5, or CONNECT
    for https) and then wrapped in TLS for https, or plain to an HTTP proxy, which takes
    http requests in absolute form. Failures are mapped as :func:`open_connection`'s."""
    tunnelled = proxy.socks or ssl_context is not None
    try:
        async with asyncio.timeout(connect_timeout):
            if tunnelled:
                sock = await open_tunnel(resolver, proxy, host, port, user_agent)
            else:
                sock = await connect_to_proxy(resolver, proxy)
            return await wrap_socket(loop, sock, host, ssl_context, live, outbox)
    except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors too
        raise connect_error(exc, host, f"{host}:{port} through proxy {proxy.address}") from exc
