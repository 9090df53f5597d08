"""The Transport protocol: send one hop, map every failure onto the error tree."""

from __future__ import annotations

from typing import Protocol

from .._models import Request, Response
from .._settings import Timeouts


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
