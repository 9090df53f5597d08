"""Validated, keyword-only settings. A bad value raises ConfigError saying how to fix it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ConfigError

BODY_MODES = ("auto", "text", "base64", "none")
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Distributed mode: how long a silent (dead) worker keeps its requests. Live workers renew
# theirs every quarter of it, so it need not cover a slow request: short means fast failover.
DEFAULT_LEASE_S = 12.0
# --only: which records reach the output (the journal and the summary count them all).
ONLY_CHOICES = ("all", "ok", "failed")
SAVE_NAMES = ("id", "url")
DEFAULT_USER_AGENT = "asyncfetch/0.1"


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

    concurrency: int = 100
    per_host: int = 8
    rate: float | None = None
    per_host_rate: float | None = None
    adapt: bool = True

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

    total: float | None = 30.0
    connect: float | None = 10.0
    read: float | None = 30.0

    def __post_init__(self) -> None:
        _positive_or_none("total timeout", self.total)
        _positive_or_none("connect timeout", self.connect)
        _positive_or_none("read timeout", self.read)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """RFC 9110 retries with capped exponential backoff and full jitter."""

    retries: int = 3
    retry_non_idempotent: bool = False
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

    mode: str = "auto"
    max_body: int = 10 * 1024 * 1024
    save_dir: Path | None = None
    include_headers: bool = False
    # How saved bodies are named: "id" (<host>/<id><ext>) or "url" (the URL's path).
    save_names: str = "id"

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

    max_redirects: int = 10
    insecure: bool = False
    cacert: Path | None = None
    proxy: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    # curl's --resolve: (host, port, address) entries that skip DNS for that host and port.
    resolve: tuple[tuple[str, int, str], ...] = ()
    # DNS servers ("ADDR" or "ADDR:PORT", IPv6 as "[ADDR]:PORT"); empty: the system's.
    dns_servers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(self.max_redirects >= 0, "max_redirects must be >= 0 (0 = do not follow)")
        if self.cacert is not None:
            check_ca_file(self.cacert)
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
            self.proxy is None or self.proxy.startswith(("http://", "https://")),
            "proxy must be an http:// or https:// URL",
        )


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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


def check_ca_file(path: Path) -> None:
    """Raise ConfigError unless ``path`` is a file of PEM CA certificates.

    Both engines load it into an SSLContext the same way; loading it here, once, turns a
    wrong file into one message at start-up instead of a failure per https request.
    """
    import ssl  # only a run given a CA file pays for it

    _require(path.is_file(), f"cacert file not found: {path}")
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError as error:
        reason = error.reason or error.strerror or str(error)
        raise ConfigError(
            f"cacert {path} is not a PEM file of CA certificates"
            f" ({str(reason).lower().replace('_', ' ')})"
        ) from error
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read cacert {path}: {error}") from error


def parse_status_list(text: str) -> frozenset[int]:
    """``"429,500-599"`` → the set of those statuses (as ``--retry-on`` takes them)."""
    statuses: set[int] = set()
    for part in (piece.strip() for piece in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(
                f"retry-on: {part!r} is not a status or a range; e.g. 429,500-599"
            ) from None
        _require(
            100 <= first <= last <= 999,
            f"retry-on: {part!r} must be statuses between 100 and 999, low-high",
        )
        statuses.update(range(first, last + 1))
    return frozenset(statuses)


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
