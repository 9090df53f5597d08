"""Secret redaction for records and log lines: credentials never leave the process."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .._models import Headers

REDACTED = "[redacted]"
# Request headers that carry credentials: dropped across origins, never in a record.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Response headers too: a Set-Cookie is a credential the server hands out.
SECRET_HEADERS = CREDENTIAL_HEADERS | {"set-cookie"}


def redact_url(url: str) -> str:
    """``https://user:pw@host/`` becomes ``https://[redacted]@host/``; others unchanged."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def redact_headers(headers: Headers) -> Headers:
    """The same headers with the values of credential-bearing ones replaced."""
    return tuple(
        (name, REDACTED if name.lower() in SECRET_HEADERS else value) for name, value in headers
    )


def redact_text(text: str, secrets: tuple[str, ...]) -> str:
    """Remove known secret strings (header values, passwords) from a message."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
