"""The Transport protocol: send one hop, map every failure onto the error tree.

A transport may also offer :class:`StartsNow`, the fast path: a request started from a
callback on a connection that is ready, with no task and nothing awaited. The run loop
looks for it by protocol and uses :meth:`Transport.send` otherwise, so a transport without
it needs nothing more.
"""

from __future__ import annotations

from typing import Final, Protocol, TypeGuard

from .._errors import TransportError
from .._models import Request, Response
from .._settings import Timeouts

# How an exchange started with StartsNow.start_now ends: the response (one hop, redirects
# are the caller's), the error, or None when the connection turned out to be closed by the
# server before it answered and the request may be sent again with ``send`` (that try
# does not count as an attempt; the transport has already decided it is safe to repeat).
Landing = Response | TransportError | None

# Response header limits, the same on both engines: one field line (name and value) and
# the number of fields. Servers in the wild send long cookies and CSP headers, and nginx
# happily sends 80 fields of 1 KiB; curl takes 100 KiB per field and 300 KiB in all.
MAX_HEADER_FIELD_BYTES: Final = 64 * 1024
MAX_HEADER_FIELDS: Final = 500
# The fast engine also bounds the whole section (an endless header line grows llhttp's
# buffer until then); aiohttp's parser bounds each field as it reads it.
MAX_HEADER_BLOCK_BYTES: Final = 1024 * 1024


class Transport(Protocol):
    """Sends one request without following redirects.

    Implementations must raise only :class:`asyncfetch._errors.TransportError` subclasses
    for request failures, read at most ``max_body`` decoded bytes (raising TooLargeError
    beyond), and honour ``timeouts.connect`` and ``timeouts.read``. The caller bounds the
    whole attempt with ``timeouts.total``. A transport that caps its open connections
    may say so with a ``max_connections`` attribute: the executor then runs no more
    attempts at once than that (it would only have them wait for a connection).
    """

    name: str

    async def send(self, request: Request, *, timeouts: Timeouts, max_body: int) -> Response:
        """Send ``request`` once and return the response with its (decoded) body."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...


class Exchange(Protocol):
    """The caller's side of a request started with :meth:`StartsNow.start_now`."""

    @property
    def request(self) -> Request: ...

    def landed(self, outcome: Landing) -> None:
        """The exchange ended (called once, from the transport's callbacks)."""
        ...


class StartsNow(Protocol):
    """A transport capability: send on a connection that is ready now, or say it cannot."""

    def start_now(self, exchange: Exchange, timeouts: Timeouts, max_body: int, /) -> bool:
        """Start ``exchange.request`` now, without awaiting anything.

        False when that is not possible right now (no idle connection, a request this
        transport would refuse): nothing was sent and the caller uses ``send``, which
        waits, connects and reports errors. True: ``exchange.landed`` is called once,
        later. The exchange is bounded by ``timeouts.read`` and ``timeouts.total``.
        """
        ...


def starts_now(transport: Transport) -> TypeGuard[StartsNow]:
    """Whether ``transport`` offers :class:`StartsNow` (checked by its method, as
    ``runtime_checkable`` would; a compiled Protocol cannot be made runtime-checkable)."""
    return callable(getattr(transport, "start_now", None))
