"""Redirect following, shared by every transport so both engines obey the same rules.

Rules (as browsers, curl -L and requests do): 303, and 301/302 after a POST, become GET
without a body; 307/308 keep method and body. Only http and https targets are followed.
Credentials (Authorization, Cookie, Proxy-Authorization, URL userinfo) are dropped when
the target is another origin, so a redirect cannot hand a token to another host.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final
from urllib.parse import urljoin, urlsplit

from .._errors import RedirectError, caused_by
from .._models import Request, Response
from .._settings import Timeouts
from ..policy.redact import CREDENTIAL_HEADERS, redact_url
from .base import Transport

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})
# Whitespace and control characters cannot be sent in a request line.
_UNSENDABLE = re.compile(r"[\s\x00-\x1f\x7f]")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def _redirect_target(request: Request, response: Response) -> str:
    """The absolute URL a redirect points to, or RedirectError if it cannot be followed.

    Location is server input: urljoin and urlsplit raise ValueError on a broken IPv6 host
    or an out-of-range port, and a target without a host or with spaces would fail later
    as a transport error that the retry rules would treat as retryable.
    """
    location = response.header("Location")
    if not location:
        raise RedirectError(f"{response.status} redirect without a Location header")
    try:
        target = urljoin(request.url, location.strip())
        parts = urlsplit(target)
        _ = parts.port  # raises ValueError when the port is out of range
    except ValueError as exc:
        raise caused_by(RedirectError(f"{response.status} redirect to an invalid URL: {exc}"), exc)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RedirectError(f"refusing redirect to a {scheme or 'relative'}: URL")
    if not parts.hostname or _UNSENDABLE.search(target):
        raise RedirectError(f"{response.status} redirect to an invalid URL")
    return target


def next_request(request: Request, response: Response) -> Request:
    """The request to send after a redirect response; RedirectError if it must not be."""
    target = _redirect_target(request, response)
    method, body, headers = request.method, request.body, request.headers
    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
        method = "GET" if method != "HEAD" else "HEAD"
        body = None
        headers = tuple(h for h in headers if h[0].lower() not in _BODY_HEADERS)
    if _origin(target) != _origin(request.url):
        headers = tuple(h for h in headers if h[0].lower() not in CREDENTIAL_HEADERS)
    return replace(request, url=target, method=method, body=body, headers=headers)


async def send_following(
    transport: Transport,
    request: Request,
    *,
    timeouts: Timeouts,
    max_body: int,
    max_redirects: int,
    first: Response | None = None,
) -> Response:
    """Send ``request`` and follow up to ``max_redirects`` redirects (0 = none).

    ``first``, when given, is the response ``request`` already got: following starts there.
    """
    seen = {(request.method, request.url)}
    current = request
    for _hop in range(max_redirects + 1):
        if first is not None:
            response, first = first, None
        else:
            response = await transport.send(current, timeouts=timeouts, max_body=max_body)
        if response.status not in REDIRECT_STATUSES or max_redirects == 0:
            return response
        current = next_request(current, response)
        if (current.method, current.url) in seen:
            raise RedirectError(f"redirect loop back to {redact_url(current.url)}")
        seen.add((current.method, current.url))
    raise RedirectError(f"more than {max_redirects} redirects")
