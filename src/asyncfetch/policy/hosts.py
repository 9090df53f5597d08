"""The per-host limit's key for a URL: its lower-cased host name."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit


class _LastHost:
    """The "scheme://authority" text of the last URL seen, and its host.

    Runs send most URLs to the host of the one before: a URL that starts with the same
    text, followed by "/", "?", "#" or its end, has that authority and so that host, and
    skips the splitting below (a tenth of the run loop's own cost per request).
    """

    __slots__ = ("entry",)

    def __init__(self) -> None:
        # One tuple, replaced whole: a reader never sees a prefix with another's host.
        self.entry: tuple[str, str] | None = None


_last_host: Final = _LastHost()


def host_of(url: str) -> str:
    """The lower-cased host name of an absolute http(s) URL (the per-host limit's key).

    Hand-parsed because urlsplit was a visible share of the per-request cost; URLs reach
    here already validated, and anything unusual falls back to urlsplit.
    """
    last = _last_host.entry
    if last is not None and url.startswith(last[0]) and authority_ends_at(url, len(last[0])):
        return last[1]
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not sep or "@" in authority or "[" in authority:
        try:
            return (urlsplit(url).hostname or "").lower()
        except ValueError:
            return ""
    host = authority.rsplit(":", 1)[0].lower() if ":" in authority else authority.lower()
    _last_host.entry = (url[: len(scheme) + 3 + len(authority)], host)
    return host


def authority_ends_at(url: str, index: int) -> bool:
    """Whether ``url``'s authority may end at ``index``: its end, or "/", "?" or "#" there.

    Three comparisons rather than ``in "/?#"``: one-character strings are shared objects,
    so each is an identity check in compiled code, where ``in`` is a substring search.
    """
    if index == len(url):
        return True
    char = url[index]
    return char == "/" or char == "?" or char == "#"
