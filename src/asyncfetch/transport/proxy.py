"""Which proxy a URL goes through, as curl decides it: the one function both engines use.

``--proxy URL`` (or ``proxy=``) applies to every URL; without it the environment is
read as curl reads it: ``http_proxy`` (lower case only: a CGI server sets
``HTTP_PROXY`` from a request's ``Proxy:`` header, the "httpoxy" hole), ``https_proxy``
then ``HTTPS_PROXY``, then ``all_proxy`` / ``ALL_PROXY``. ``--proxy ""`` turns proxies
off, environment included. ``--noproxy LIST`` (else ``no_proxy`` / ``NO_PROXY``) names
hosts that never use one, whichever way the proxy was given.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from .._errors import ConfigError
from .._settings import TransportOptions
from ..policy.redact import redact_url

# curl's default proxy port whatever the scheme, but 443 for an https:// proxy.
_DEFAULT_PORTS: Final = {"http": 1080, "https": 443, "socks5": 1080, "socks5h": 1080}
SCHEMES: Final = tuple(_DEFAULT_PORTS)


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy: ``socks5`` resolves names here, ``socks5h`` at the proxy (remote DNS)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        """``host:port``, the proxy as messages name it (never with credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The full URL, credentials included: only for handing to an HTTP library."""
        auth = ""
        if self.username is not None:
            auth = f"{_quote(self.username)}:{_quote(self.password or '')}@"
        return f"{self.scheme}://{auth}{self.address}"

    @property
    def socks(self) -> bool:
        return self.scheme.startswith("socks")

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for an HTTP proxy with credentials."""
        if self.username is None:
            return None
        credentials = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(credentials).decode("ascii")

    def __repr__(self) -> str:
        return f"Proxy({redact_url(self.url)!r})"


def _quote(text: str) -> str:
    return quote(text, safe="")


def parse_proxy(text: str, source: str = "proxy") -> Proxy:
    """A proxy URL as curl takes it (``host:port`` alone means ``http://``)."""
    given = text.strip()
    if "://" not in given:
        given = "http://" + given
    try:
        parts = urlsplit(given)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid proxy URL {redact_url(given)!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(
            f"{source}: unsupported proxy scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
        )
    if not parts.hostname:
        raise ConfigError(f"{source}: the proxy URL {redact_url(given)!r} has no host")
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return Proxy(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], username, password)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ``no_proxy`` entry: a name (and its subdomains), an address or network, and
    optionally a port (an extension: curl ignores ports; urllib and Go honour them)."""

    name: str | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None

    def matches(
        self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: int
    ) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address in self.network
        name = self.name or ""
        return host == name or host.endswith("." + name)


def _parse_entry(token: str) -> _Entry | None:
    entry = token.strip().lower()
    port: int | None = None
    if entry.startswith("["):  # [v6]:port or [v6]
        host, _, rest = entry[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        entry = host
    elif entry.count(":") == 1:
        host, _, text = entry.partition(":")
        if text.isdigit():
            entry, port = host, int(text)
    entry = entry.removeprefix("*.").lstrip(".").rstrip(".")
    if not entry:
        return None
    try:
        return _Entry(None, ipaddress.ip_network(entry, strict=False), port)
    except ValueError:
        return _Entry(entry, None, port)


@dataclass(frozen=True, slots=True)
class NoProxy:
    """Hosts that never use a proxy: curl's ``no_proxy`` (commas or spaces between
    entries, ``*`` alone for every host, a leading dot optional, IPs and CIDR ranges)."""

    everything: bool = False
    entries: tuple[_Entry, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> NoProxy:
        if text is None or not text.strip():
            return cls()
        if text.strip() == "*":
            return cls(everything=True)
        tokens = text.replace(",", " ").split()
        return cls(entries=tuple(e for e in map(_parse_entry, tokens) if e is not None))

    def matches(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        if not self.entries:
            return False
        host = host.lower().strip("[]").rstrip(".")
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        return any(entry.matches(host, address, port) for entry in self.entries)


def _env(environ: Mapping[str, str], name: str, *, upper: bool = True) -> str | None:
    value = environ.get(name)
    if value is None and upper:
        value = environ.get(name.upper())
    return value


@dataclass(frozen=True, slots=True)
class ProxyRules:
    """The proxies of a run and the hosts that skip them, decided once at start-up."""

    by_scheme: Mapping[str, Proxy | None] = field(default_factory=dict)
    no_proxy: NoProxy = field(default_factory=NoProxy)

    @classmethod
    def from_options(
        cls, options: TransportOptions, environ: Mapping[str, str] | None = None
    ) -> ProxyRules:
        """The rules of ``options`` and, where they are silent, of ``environ``
        (``os.environ`` by default); ConfigError for a proxy URL that cannot be used."""
        env = os.environ if environ is None else environ
        noproxy = options.noproxy if options.noproxy is not None else _env(env, "no_proxy")
        if options.proxy is not None:
            if not options.proxy.strip():
                return cls()  # --proxy "": no proxy at all, as curl
            proxy = parse_proxy(options.proxy, "--proxy")
            return cls({"http": proxy, "https": proxy}, NoProxy.parse(noproxy))
        fallback = _env(env, "all_proxy")
        chosen: dict[str, Proxy | None] = {}
        for scheme, name in (("http", "http_proxy"), ("https", "https_proxy")):
            value = _env(env, name, upper=scheme != "http")
            value = fallback if value is None else value
            source = name if value is not fallback else "all_proxy"
            chosen[scheme] = parse_proxy(value, source) if value and value.strip() else None
        if not any(chosen.values()):
            return cls()
        return cls(chosen, NoProxy.parse(noproxy))

    @property
    def proxies(self) -> tuple[Proxy, ...]:
        return tuple(proxy for proxy in self.by_scheme.values() if proxy is not None)

    def for_origin(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for requests to ``scheme://host:port``, or None to go direct."""
        proxy = self.by_scheme.get(scheme)
        if proxy is None or self.no_proxy.matches(host, port):
            return None
        return proxy

    def for_url(self, url: str) -> Proxy | None:
        """The proxy for ``url`` (None: direct, or a URL without a host)."""
        if not self.by_scheme:
            return None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if not parts.hostname or scheme not in ("http", "https"):
            return None
        return self.for_origin(scheme, parts.hostname, port or (443 if scheme == "https" else 80))


def proxy_for(
    url: str, options: TransportOptions, environ: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy ``url`` goes through under ``options`` and ``environ``, or None."""
    return ProxyRules.from_options(options, environ).for_url(url)
