"""The Transport protocol: send one hop, map every failure onto the error tree."""

from __future__ import annotations

from typing import Final, Protocol

from .._models import Request, Response
from .._settings import Timeouts

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
    whole attempt with ``timeouts.total``.
    """

    name: str

    async def send(self, request: Request, *, timeouts: Timeouts, max_body: int) -> Response:
        """Send ``request`` once and return the response with its (decoded) body."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...
