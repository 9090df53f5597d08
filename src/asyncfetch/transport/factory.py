"""Choose a transport for a run: ``aiohttp``, ``fast`` or ``auto``."""

from __future__ import annotations

from .._errors import ConfigError
from .._settings import Settings
from .base import Transport
from .descriptors import connection_cap, raise_descriptor_limit
from .tls import check_tls_files

ENGINES = ("auto", "aiohttp", "fast")


def _fast_supports(settings: Settings) -> bool:
    try:
        from .fast.transport import FastTransport
    except ImportError:
        return False
    return bool(FastTransport.supports(settings.transport))


def resolve_engine(engine: str, settings: Settings) -> str:
    """The engine a run will use: ``auto`` picks fast when it supports the run's options.

    Also the run's start-up check of its TLS files (CA, client certificate and key).
    """
    check_tls_files(settings.transport)
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if settings.transport.http_version == "2" and engine != "fast":
        if engine == "aiohttp" or not _fast_supports(settings):
            raise ConfigError(
                "--http2 needs the fast engine (aiohttp speaks HTTP/1.1 only, and the fast"
                " engine takes no proxy); drop --http2 or use --engine fast"
            )
        return "fast"
    if engine == "auto":
        return "fast" if _fast_supports(settings) else "aiohttp"
    if engine == "fast" and not _fast_supports(settings):
        raise ConfigError("the fast engine cannot use an https:// proxy; use --engine aiohttp")
    return engine


def open_transport(engine: str, settings: Settings) -> Transport:
    """A new transport for ``engine`` (already resolved), sized by the run's limits.

    Raises the process's file limit to its hard limit first, and caps the connections
    (in use and idle) by ``-c`` and that limit, so that many hosts never exhaust it.
    """
    limits = settings.limits
    max_connections = connection_cap(limits.concurrency, raise_descriptor_limit())
    if engine == "fast":
        from .fast.transport import FastTransport

        return FastTransport(
            settings.transport,
            per_host_connections=limits.per_host,
            max_connections=max_connections,
        )
    from .aiohttp import AiohttpTransport

    return AiohttpTransport(
        settings.transport,
        concurrency=limits.concurrency,
        per_host_connections=limits.per_host,
        max_connections=max_connections,
    )
