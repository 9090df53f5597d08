"""Checks for the parts of a request that come from untrusted input: URL, method, headers.

Each check raises :class:`~asyncfetch._errors.InputError` with a message that says what is
wrong and how to fix it, so a bad line becomes one readable ``invalid_input`` record.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from .._errors import InputError, caused_by

MAX_URL_LENGTH: Final = 8192
MAX_METHOD_LENGTH = 32
ALLOWED_SCHEMES = frozenset({"http", "https"})

# Unicode whitespace plus the C0 and C1 control ranges: none of them may appear in a URL
# we send, and some (CR, LF, NUL) would let one input line smuggle another request.
_FORBIDDEN_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_AUTHORITY_END = re.compile(r"[/?#]")
_FORBIDDEN_IN_HEADER_VALUE = re.compile(r"[\r\n\x00]")
# RFC 3986 section 3.2: userinfo and host hold unreserved characters, sub-delims, ":",
# %-escapes and (as IRIs) non-ASCII. The rest ('"', "<", "[", "\\", "^", "|"...) no HTTP
# client sends, and a line that has them must become invalid_input here, not a transport
# failure later. Spelled as the ASCII characters left out (controls, space, '"#/<>?[\]^`{|}'
# and DEL): the same set as the complement [^A-Za-z0-9\-._~!$&'()*+,;=%:@\x80-\U0010ffff],
# which took re about 5 ms to compile, on every start of every run.
_BAD_IN_AUTHORITY = re.compile(r"[\x00-\x20\"#/<>?\[-^`{-}\x7f]")


def validate_url(url: str) -> str:
    """Return ``url`` unchanged if it is an absolute http(s) URL we are willing to send.

    Raises :class:`InputError` for another scheme or none, a missing host, a bad port,
    whitespace or control characters anywhere, or more than 8192 characters.
    """
    if not isinstance(url, str):
        raise InputError(f"url must be a string, not {type_name(url)}")
    if known_valid_url(url):
        return url
    if not url:
        raise InputError("url is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InputError(f"URL is too long ({len(url)} characters; at most {MAX_URL_LENGTH})")
    forbidden = _FORBIDDEN_IN_URL.search(url)
    if forbidden:
        raise InputError(
            f"URL contains {forbidden.group()!r} at position {forbidden.start()}; "
            "percent-encode spaces and control characters"
        )
    _check_parts(url)
    return url


def known_valid_url(url: str) -> bool:
    """Whether ``url`` passes :func:`validate_url`, by a cheap test that most lines meet.

    False means "not known": check it with validate_url. True is exact: a lower-case
    http(s) scheme, printable ASCII without spaces (so no forbidden character), and a
    host (and port) already found valid that ends at a "/" or at the end; hosts in the
    cache never contain "@", "?" or "#", so there is no userinfo and the authority ends
    where validate_url's parse ends it.
    """
    if url.startswith("https://"):
        start = 8
    elif url.startswith("http://"):
        start = 7
    else:
        return False
    end = url.find("/", start)
    host_port = url[start:] if end < 0 else url[start:end]
    return (
        host_port in _VALID_HOST_PORTS
        and len(url) <= MAX_URL_LENGTH
        and url.isascii()
        and url.isprintable()
        and " " not in url
    )


def _check_parts(url: str) -> None:
    # Hand-rolled rather than urlsplit(): this runs once per input line and urlsplit was
    # most of the reader's time. The rules are RFC 3986's, restricted to http(s).
    scheme_match = _SCHEME.match(url)
    rest = url[scheme_match.end() :] if scheme_match else ""
    # "localhost:8080/x" looks like scheme "localhost"; that is a missing scheme.
    if scheme_match is None or rest[:1].isdigit():
        raise InputError(f"URL has no scheme: {excerpt(url)}; write https://... or http://...")
    scheme = scheme_match.group(1).lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InputError(f"unsupported URL scheme {scheme!r}; only http and https are allowed")
    if not rest.startswith("//"):
        raise InputError(f"URL has no host: {excerpt(url)}; write {scheme}://host/path")
    authority = _AUTHORITY_END.split(rest[2:], maxsplit=1)[0]
    userinfo, _, host_port = authority.rpartition("@")
    if _BAD_IN_AUTHORITY.search(userinfo):
        raise InputError(f"URL has a character not allowed before its host: {excerpt(url)}")
    if host_port not in _VALID_HOST_PORTS:
        _check_host_port(host_port, url)
        if len(_VALID_HOST_PORTS) >= 4096:
            _VALID_HOST_PORTS.clear()  # bounded: a run over millions of hosts stays small
        _VALID_HOST_PORTS.add(host_port)


# Hosts already found valid: inputs repeat a few hosts over and over, and the host checks
# (IP address parsing above all) were the largest part of validating a line. Final, as
# MAX_URL_LENGTH: compiled, a Final is a C static, a plain global a dict lookup per line.
_VALID_HOST_PORTS: Final[set[str]] = set()


def _check_host_port(host_port: str, url: str) -> None:
    if host_port.startswith("["):
        host, bracket, port = host_port[1:].partition("]")
        if not bracket or not host or (port and not port.startswith(":")):
            raise InputError(f"URL has a malformed [IPv6] host: {excerpt(url)}")
        port = port[1:]
        _check_ipv6(host, url)
    else:
        host, _, port = host_port.partition(":")
        _check_host_name(host, url)
    if not host:
        raise InputError(f"URL has no host: {excerpt(url)}")
    if port and not (
        len(port) <= 5 and port.isascii() and port.isdigit() and 0 < int(port) < 65536
    ):
        raise InputError(f"URL port must be a number from 1 to 65535, not {excerpt(port)!r}")


def _check_host_name(host: str, url: str) -> None:
    if _BAD_IN_AUTHORITY.search(host):
        raise InputError(f"URL host has a character not allowed in a host name: {excerpt(url)}")
    last_label = host.rstrip(".").rpartition(".")[2]
    if last_label.isascii() and last_label.isdigit():
        # A name ending in a number is an IPv4 address to URL parsers (WHATWG), which read
        # "1.2.3" or "0x7f.1" as some address; only the plain dotted quad is unambiguous.
        try:
            ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise caused_by(
                InputError(f"URL host is not a valid IPv4 address: {excerpt(url)}"), exc
            )
    if not host.isascii() or ".." in host or host.startswith(".") or len(host) > 63:
        # Empty or over-long labels can never resolve, and TLS cannot carry them.
        try:
            host.encode("idna")  # what both transports do to an international name
        except UnicodeError as exc:
            raise caused_by(InputError(f"URL host is not a valid host name: {excerpt(url)}"), exc)


def _check_ipv6(host: str, url: str) -> None:
    try:
        ipaddress.IPv6Address(host.replace("%25", "%", 1))  # "%25" introduces a zone id
    except ValueError as exc:
        raise caused_by(InputError(f"URL has a malformed [IPv6] host: {excerpt(url)}"), exc)


def validate_method(method: object) -> str:
    """Return ``method`` upper-cased if it is an HTTP method token made of letters."""
    if not isinstance(method, str):
        raise InputError(f"method must be a string such as GET, not {type_name(method)}")
    if not (method.isascii() and method.isalpha() and len(method) <= MAX_METHOD_LENGTH):
        raise InputError(f"method must be an HTTP method such as GET or POST, not {method!r}")
    return method.upper()


def validate_header(name: object, value: object) -> tuple[str, str]:
    """Return ``(name, value)`` if the name is an HTTP token and the value is one line."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InputError(f"header name {excerpt(repr(name))} is not a valid HTTP token")
    if not isinstance(value, str):
        raise InputError(f"header {name!r} must have a string value, not {type_name(value)}")
    if _FORBIDDEN_IN_HEADER_VALUE.search(value):
        raise InputError(f"header {name!r} value contains CR, LF or NUL")
    return name, value


def type_name(value: object) -> str:
    """The JSON name of a value's type, since most input is JSON."""
    json_names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return json_names.get(type(value), type(value).__name__)


def excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
