"""The fault matrix: every broken-server case with what GET and POST must end as.

Settings of the matrix: 3 attempts at most (retries=2), 0.5 s per attempt, 0.4 s to connect
(TLS handshake included), 2 s per read (much longer than the trickle's 0.2 s between
bytes, so only the total deadline ends it), 1 MiB of decoded body.

``Expect.attempts`` follows the retry rules of DESIGN.md: failures before anything was
sent (connect, tls, connect timeout) are retried for any method; failures after the
request may have reached the server (timeout, read, protocol, 5xx, 429) only for GET;
too_large and redirect never. A 429/503 whose Retry-After is beyond the cap is recorded
at once; one that cannot be parsed gets the normal backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asyncfetch import BodyPolicy, RetryPolicy, Timeouts


def available_engines() -> list[str]:
    """aiohttp always; fast when its module imports and provides FastTransport."""
    try:
        from asyncfetch.transport.fast import transport as fast
    except ImportError:
        return ["aiohttp"]
    return ["aiohttp", "fast"] if hasattr(fast, "FastTransport") else ["aiohttp"]


ENGINES = available_engines()
TIMEOUTS = Timeouts(total=0.5, connect=0.4, read=2.0)
UNHURRIED = Timeouts(total=30.0, connect=20.0, read=20.0)
RETRY = RetryPolicy(retries=2, backoff_base=0.01, backoff_cap=0.05)
MAX_BODY = 1024 * 1024
BODY = BodyPolicy(max_body=MAX_BODY)
MAX_ATTEMPTS = RETRY.max_attempts
SECRET = "Bearer s3cr3t-t0ken"


@dataclass(frozen=True)
class Expect:
    """The one record a request must end as."""

    kind: str | None = None  # error.kind; None means a response with ``status``
    status: int | None = None
    attempts: int = 1
    # Requests the server must have read on the case's path; None when not countable.
    hits: int | None = None

    def describe(self) -> str:
        return self.kind or str(self.status)


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    get: Expect
    post: Expect
    listener: str = "plain"  # plain | tls | stall | tls-stall | refused
    options: tuple[str, ...] = ()  # "cacert", "insecure"
    prelude: str | None = None  # fetched first on the same Fetcher (keep-alive cases)
    memory_bound: bool = False  # check the body cap with tracemalloc
    note: str = ""
    # Engine differences that are by design: engine -> method -> Expect, with the reason in
    # ``note``. Empty today: both engines must obey the same record contract.
    by_engine: dict[str, dict[str, Expect]] = field(default_factory=dict)
    # (engine, method) -> the bug, for a failure that is known, reported and not yet fixed.
    # The test runs as a strict xfail: the day the bug is fixed it fails and must go.
    known_bugs: dict[tuple[str, str], str] = field(default_factory=dict)
    # A case whose answer is a success, with nothing slow about it, gets generous deadlines:
    # a TLS handshake on a loaded machine can take longer than the matrix's 0.5 s.
    timeouts: Timeouts = TIMEOUTS

    def expect(self, method: str, engine: str) -> Expect:
        override = self.by_engine.get(engine, {}).get(method)
        if override is not None:
            return override
        return self.get if method == "GET" else self.post


def _sent(kind: str) -> tuple[Expect, Expect]:
    """May have reached the server: GET is retried to the limit, POST is not."""
    return (
        Expect(kind, attempts=MAX_ATTEMPTS, hits=MAX_ATTEMPTS),
        Expect(kind, attempts=1, hits=1),
    )


def _status_storm(status: int) -> tuple[Expect, Expect]:
    return (
        Expect(status=status, attempts=MAX_ATTEMPTS, hits=MAX_ATTEMPTS),
        Expect(status=status, attempts=1, hits=1),
    )


def _once(kind: str | None = None, status: int | None = None, hits: int | None = 1) -> Expect:
    return Expect(kind, status, attempts=1, hits=hits)


def _case(name: str, path: str, pair: tuple[Expect, Expect], **extra: Any) -> Case:
    return Case(name, path, pair[0], pair[1], **extra)


NEVER_SENT = Expect("connect", attempts=MAX_ATTEMPTS)
CASES: list[Case] = [
    Case("connection refused", "/", NEVER_SENT, NEVER_SENT, listener="refused"),
    _case(
        "accept, never read or answer",
        "/",
        (Expect("timeout", attempts=MAX_ATTEMPTS), Expect("timeout", attempts=1)),
        listener="stall",
    ),
    _case("read request, never answer", "/never", _sent("timeout")),
    _case("reset before the status line", "/reset-before-status", _sent("read")),
    _case("reset mid-body", "/reset-mid-body", _sent("read")),
    _case("close after headers", "/close-after-headers", _sent("read")),
    _case("Content-Length longer than body", "/length-longer", _sent("read")),
    _case(
        # Bytes beyond Content-Length that come with the response: both engines refuse the
        # response (its framing is in dispute) and drop the connection. Bytes that come
        # later are the next case.
        "Content-Length shorter than body",
        "/length-shorter",
        _sent("protocol"),
    ),
    Case(
        "excess bytes, then connection reused",
        "/ok",
        _once(status=200),
        _once(status=200),
        prelude="/length-shorter-ka",
        note="a forged response after the declared body must never answer the next request",
    ),
    _case("malformed chunked encoding", "/bad-chunked", _sent("protocol")),
    _case("garbage status line", "/garbage-status", _sent("protocol")),
    _case("header line over 64 KiB", "/huge-header", _sent("protocol")),
    _case("over 500 headers", "/many-headers", _sent("protocol")),
    Case(
        "never-ending body",
        "/endless",
        _once("too_large"),
        _once("too_large"),
        memory_bound=True,
    ),
    _case("body trickling 1 byte / 0.2 s", "/trickle", _sent("timeout")),
    Case(
        "gzip bomb (4 GiB decoded)",
        "/gzip-bomb",
        _once("too_large"),
        _once("too_large"),
        memory_bound=True,
    ),
    Case(
        "429, Retry-After: 1",
        "/429-seconds",
        Expect(status=200, attempts=2, hits=2),
        _once(status=429),
    ),
    Case(
        "503, Retry-After: HTTP-date +2 s",
        "/503-date",
        Expect(status=200, attempts=2, hits=2),
        _once(status=503),
    ),
    Case(
        "429, Retry-After: 999999999 (over the cap)",
        "/429-absurd",
        _once(status=429),
        _once(status=429),
    ),
    _case("503, Retry-After unparseable", "/503-unparseable", _status_storm(503)),
    _case("503, Retry-After: ² (a Unicode digit)", "/503-superscript", _status_storm(503)),
    _case("500 storm", "/500-storm", _status_storm(500)),
    Case(
        "redirect loop",
        "/redirect-loop",
        _once("redirect"),
        Expect("redirect", attempts=1, hits=2),
        note="the 302 turns the POST into a GET, a new request; its repeat is the loop",
    ),
    Case("redirect to file:", "/redirect-file", _once("redirect"), _once("redirect")),
    Case(
        "redirect to another host",
        "/redirect-other-host",
        _once(status=200),
        _once(status=200),
        note="Authorization must reach 127.0.0.1 and never localhost",
    ),
    Case(
        "redirect, Location unparseable",
        "/redirect-bad-location",
        _once("redirect"),
        _once("redirect"),
    ),
    Case(
        "redirect, Location with a space",
        "/redirect-space",
        _once("redirect"),
        _once("redirect"),
    ),
    Case(
        "redirect, Location port 99999",
        "/redirect-bad-port",
        _once("redirect"),
        _once("redirect"),
    ),
    Case(
        "TLS self-signed, default verify",
        "/ok",
        Expect("tls", attempts=1, hits=0),
        Expect("tls", attempts=1, hits=0),
        listener="tls",
        note="a certificate that fails verification fails every retry too: not retried",
    ),
    Case(
        "TLS self-signed, cacert",
        "/ok",
        _once(status=200),
        _once(status=200),
        listener="tls",
        timeouts=UNHURRIED,
        options=("cacert",),
    ),
    Case(
        "TLS self-signed, insecure",
        "/ok",
        _once(status=200),
        _once(status=200),
        listener="tls",
        timeouts=UNHURRIED,
        options=("insecure",),
    ),
    Case(
        "TLS handshake stalls",
        "/",
        Expect("timeout", attempts=MAX_ATTEMPTS),
        Expect("timeout", attempts=MAX_ATTEMPTS),
        listener="tls-stall",
        note="a connect timeout: nothing was sent, so POST is retried too",
    ),
    Case("invalid UTF-8 text body", "/bad-utf8", _once(status=200), _once(status=200)),
    Case("binary body", "/binary", _once(status=200), _once(status=200)),
    Case(
        "keep-alive closed while idle",
        "/ok",
        _once(status=200),
        _once(status=200),
        prelude="/ka/idle-close",
    ),
    Case(
        "keep-alive closed as it is reused",
        "/ok",
        # The idempotent GET may be replayed on a fresh connection (the transport does it
        # within the same attempt); the POST may have been processed, so it is reported.
        Expect(status=200, attempts=1, hits=2),
        _once("read"),
        prelude="/ka/drop-next",
        note="GET replayed once on a new connection; POST not (it may have been processed)",
    ),
]
