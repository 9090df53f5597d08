"""Validated, keyword-only settings. A bad value raises ConfigError saying how to fix it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._options import DEFAULT_LEASE_S as DEFAULT_LEASE_S
from ._options import DEFAULT_RETRY_STATUSES as DEFAULT_RETRY_STATUSES
from ._options import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
from ._options import RunOptions, options_of
from ._options import is_ip_address as is_ip_address
from ._options import parse_status_list as parse_status_list

# The defaults and choices below are the option table's (_options.py), declared once.
_RUN = RunOptions
BODY_MODES = _RUN.body_mode.choices
# --only: which records reach the output (the journal and the summary count them all).
ONLY_CHOICES = _RUN.only.choices
SAVE_NAMES = _RUN.save_names.choices
PROXY_SCHEMES = ("http://", "https://", "socks5://", "socks5h://")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _positive_or_none(name: str, value: float | None) -> None:
    _require(value is None or value > 0, f"{name} must be a positive number of seconds or None")


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """How hard to push: total in-flight requests, in-flight per host, requests per second
    (overall and per host). These are ceilings: with ``adapt`` each host's own limits are
    learned below them from what it answers (429/503, errors, latency)."""

    concurrency: int = _RUN.concurrency.default
    per_host: int = _RUN.per_host.default
    rate: float | None = _RUN.rate.default
    per_host_rate: float | None = _RUN.per_host_rate.default
    adapt: bool = _RUN.adapt.default

    def __post_init__(self) -> None:
        _require(self.concurrency >= 1, "concurrency must be at least 1, e.g. concurrency=100")
        _require(self.per_host >= 1, "per_host must be at least 1, e.g. per_host=8")
        _require(self.rate is None or self.rate > 0, "rate must be > 0 requests/s, or None")
        _require(
            self.per_host_rate is None or self.per_host_rate > 0,
            "per_host_rate must be > 0 requests/s, or None",
        )

    @property
    def host_rate_cap(self) -> float | None:
        """The most requests per second one host may get: the lower of both rates."""
        rates = [rate for rate in (self.rate, self.per_host_rate) if rate is not None]
        return min(rates) if rates else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeouts:
    """Per attempt: ``total`` bounds the whole attempt, ``connect`` and ``read`` its parts."""

    total: float | None = _RUN.timeout.default
    connect: float | None = _RUN.connect_timeout.default
    read: float | None = _RUN.read_timeout.default

    def __post_init__(self) -> None:
        _positive_or_none("total timeout", self.total)
        _positive_or_none("connect timeout", self.connect)
        _positive_or_none("read timeout", self.read)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """RFC 9110 retries with capped exponential backoff and full jitter."""

    retries: int = _RUN.retries.default
    retry_non_idempotent: bool = _RUN.retry_non_idempotent.default
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0
    statuses: frozenset[int] = DEFAULT_RETRY_STATUSES

    def __post_init__(self) -> None:
        _require(self.retries >= 0, "retries must be 0 or more")
        _require(
            all(100 <= status <= 999 for status in self.statuses),
            "retry statuses must be HTTP status codes (100-999), e.g. {429, 503}",
        )
        _require(self.backoff_base >= 0, "backoff_base must be >= 0 seconds")
        _require(self.backoff_cap >= self.backoff_base, "backoff_cap must be >= backoff_base")
        _require(self.retry_after_cap >= 0, "retry_after_cap must be >= 0 seconds")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


@dataclass(frozen=True, kw_only=True, slots=True)
class BodyPolicy:
    """What to keep of each response body and where."""

    mode: str = _RUN.body_mode.default
    max_body: int = _RUN.max_body.default
    save_dir: Path | None = _RUN.save_dir.default
    include_headers: bool = _RUN.include_headers.default
    # How saved bodies are named: "id" (<host>/<id><ext>) or "url" (the URL's path).
    save_names: str = _RUN.save_names.default

    def __post_init__(self) -> None:
        _require(self.mode in BODY_MODES, f"body mode must be one of {', '.join(BODY_MODES)}")
        _require(
            self.save_names in SAVE_NAMES,
            f"save_names must be one of {', '.join(SAVE_NAMES)}",
        )
        _require(self.max_body >= 0, "max_body must be >= 0 bytes")


@dataclass(frozen=True, kw_only=True, slots=True)
class TransportOptions:
    """Connection-level choices shared by every request of a run."""

    max_redirects: int = _RUN.max_redirects.default
    insecure: bool = _RUN.insecure.default
    cacert: Path | None = _RUN.cacert.default
    # Mutual TLS (curl's --cert/--key): a PEM certificate, and its key unless in the same file.
    cert: Path | None = _RUN.cert.default
    key: Path | None = _RUN.key.default
    # "1.1": HTTP/1.1 only; "2": offer h2 by ALPN over TLS, HTTP/1.1 when the server declines.
    http_version: str = _RUN.http_version.default
    # A proxy URL for every request ("" for none, the environment's ignored too); None:
    # the environment's (https_proxy, http_proxy, all_proxy), as curl. transport/proxy.py.
    proxy: str | None = _RUN.proxy.default
    # curl's --noproxy: hosts that never use a proxy; None: the environment's no_proxy.
    noproxy: str | None = _RUN.noproxy.default
    user_agent: str = DEFAULT_USER_AGENT
    # curl's --resolve: (host, port, address) entries that skip DNS for that host and port.
    resolve: tuple[tuple[str, int, str], ...] = _RUN.resolve.default
    # DNS servers ("ADDR" or "ADDR:PORT", IPv6 as "[ADDR]:PORT"); empty: the system's.
    dns_servers: tuple[str, ...] = _RUN.dns_servers.default

    def __post_init__(self) -> None:
        _require(self.max_redirects >= 0, "max_redirects must be >= 0 (0 = do not follow)")
        _require(self.http_version in ("1.1", "2"), "http_version must be '1.1' or '2'")
        # The files themselves are loaded once at start-up by transport/tls.py.
        _require(
            self.key is None or self.cert is not None, "key needs cert (the client certificate)"
        )
        for host, port, address in self.resolve:
            _require(
                bool(host) and 0 < port < 65536 and is_ip_address(address),
                f"invalid resolve entry {host}:{port}:{address}; use HOST:PORT:ADDRESS,"
                " e.g. example.com:443:127.0.0.1",
            )
        for server in self.dns_servers:
            _require(
                _valid_server(server),
                f"invalid DNS server {server!r}; use an IP address, optionally with"
                " :PORT (e.g. 127.0.0.1:5353 or [::1]:5353)",
            )
        _require(
            bool(self.user_agent.strip())
            and "\r" not in self.user_agent
            and "\n" not in self.user_agent,
            "user_agent must be one non-empty line, e.g. 'mybot/1.0 (+https://example.com)'",
        )
        _require(
            self.proxy is None or "://" not in self.proxy or self.proxy.startswith(PROXY_SCHEMES),
            "proxy must be an http://, https://, socks5:// or socks5h:// URL"
            " (or HOST:PORT for http://)",
        )


def _valid_server(server: str) -> bool:
    """Whether ``server`` is "ADDR", "ADDR:PORT" or "[ADDR]:PORT" (IPv6 in brackets)."""
    if server.startswith("["):
        address, _, rest = server[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None if not rest else "x"
    elif server.count(":") == 1:
        address, _, port = server.partition(":")
    else:
        address, port = server, None
    port_ok = port is None or (port.isdigit() and 0 < int(port) < 65536)
    return port_ok and is_ip_address(address)


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything a run needs besides its input and output."""

    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    body: BodyPolicy = field(default_factory=BodyPolicy)
    transport: TransportOptions = field(default_factory=TransportOptions)
    grace_period: float = 10.0


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestDefaults:
    """Applied to every input request: method and data for bare URL lines, extra headers."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    data: bytes | None = None

    def __post_init__(self) -> None:
        _require(
            self.method.isalpha() and self.method.isascii(),
            f"method must be an HTTP token such as GET or POST, not {self.method!r}",
        )
        for name, value in self.headers:
            _require(
                bool(name) and name.isascii() and ":" not in name and " " not in name,
                f"invalid header name {name!r}; use -H 'Name: value'",
            )
            _require("\r" not in value and "\n" not in value, f"header {name} has a line break")


def _statuses(value: str | Iterable[int] | None) -> frozenset[int]:
    if value is None:
        return DEFAULT_RETRY_STATUSES
    return parse_status_list(value) if isinstance(value, str) else frozenset(value)


# How an option's value becomes its settings field, where the two differ.
_CONVERT: dict[str, Any] = {
    "retry.statuses": _statuses,
    "transport.user_agent": lambda value: DEFAULT_USER_AGENT if value is None else value,
    "transport.cacert": lambda value: None if value is None else Path(value),
}
SECTIONS: dict[str, type] = {
    "limits": Limits,
    "timeouts": Timeouts,
    "retry": RetryPolicy,
    "body": BodyPolicy,
    "transport": TransportOptions,
}


def settings_from(
    values: Mapping[str, Any], sections: Mapping[str, object] | None = None
) -> Settings:
    """Settings from option values by name (the table's ``setting`` of each); an option
    not given keeps its default. ``sections`` are whole sections given as such."""
    fields: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for option in options_of(RunOptions):
        if option.setting is not None and option.name in values:
            section, name = option.setting.split(".")
            convert = _CONVERT.get(option.setting)
            value = values[option.name]
            fields[section][name] = value if convert is None else convert(value)
    given = sections or {}
    built: dict[str, Any] = {
        section: given[section] if section in given else kind(**fields[section])
        for section, kind in SECTIONS.items()
    }
    return Settings(**built)
