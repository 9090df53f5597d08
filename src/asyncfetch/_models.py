"""Plain data that flows through the pipeline: requests in, results out.

Nothing here does I/O or imports the rest of asyncfetch (but the leaf module hashing), so
every layer can use it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._hashing import sha256_hex

Headers = tuple[tuple[str, str], ...]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def header_record(headers: Headers) -> dict[str, str | list[str]]:
    """The record's form of response headers, the same for both engines and every sink:
    lower-case names (HTTP field names are case-insensitive), in arrival order; a name
    that repeats (Set-Cookie, say) keeps every value, as a list."""
    record: dict[str, str | list[str]] = {}
    for name, value in headers:
        key = name.lower()
        seen = record.get(key)
        if seen is None:
            record[key] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            record[key] = [seen, value]
    return record


def request_id(method: str, url: str, body: bytes | None) -> str:
    """A stable id for a request that has none: the same request always gets the same id."""
    # sha256 of "METHOD url\nbody". One call over the joined bytes is the same digest as
    # feeding the parts one by one, for much less: this runs once per input line.
    head = method.upper().encode()
    data = b"".join((head, b" ", url.encode("utf-8", "surrogateescape"), b"\n", body or b""))
    return sha256_hex(data, 24)


def request_ids(method: str, body: bytes | None) -> Callable[[str], str]:
    """:func:`request_id` with ``method`` and ``body`` fixed: for many URLs sent alike."""
    head = method.upper().encode() + b" "
    tail = b"\n" + (body or b"")

    def url_id(url: str) -> str:
        return sha256_hex(head + url.encode("utf-8", "surrogateescape") + tail, 24)

    return url_id


# Per-request objects below are slotted dataclasses but not ``frozen``: a frozen
# dataclass sets every field through object.__setattr__, which made building the five
# objects of each request a visible share of the hot path. Treat them as immutable.
#
# They also write ``__init__`` out (``init=False``): compiled (tools/native.py), a
# hand-written __init__ is native code, while the one dataclass generates stays
# interpreted; constructing a Result took 440 ns instead of about 100. Each __init__ takes
# exactly the fields, in order, with their defaults (tests/test_native.py checks it).


@dataclass(slots=True, init=False)
class Request:
    """One HTTP request to make. Build it with :meth:`create` to get a stable id."""

    url: str
    method: str = "GET"
    headers: Headers = ()
    body: bytes | None = None
    id: str = ""
    line: int | None = None
    meta: Any = None

    def __init__(
        self,
        url: str,
        method: str = "GET",
        headers: Headers = (),
        body: bytes | None = None,
        id: str = "",
        line: int | None = None,
        meta: Any = None,
    ) -> None:
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.id = id
        self.line = line
        self.meta = meta

    @classmethod
    def create(
        cls,
        url: str,
        *,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes | None = None,
        id: str | None = None,
        line: int | None = None,
        meta: Any = None,
    ) -> Request:
        method = method.upper()
        if type(headers) is not tuple:
            headers = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
        # Positional, in field order: keyword arguments cost a visible share per line.
        return cls(url, method, headers, body, id or request_id(method, url, body), line, meta)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS


@dataclass(frozen=True, slots=True)
class InvalidInput:
    """An input line that could not become a request; it still gets exactly one record."""

    line: int | None
    message: str
    raw: str = ""
    id: str = ""
    meta: Any = None

    @property
    def record_id(self) -> str:
        if self.id:
            return self.id
        return "invalid-" + request_id("INVALID", f"{self.line}:{self.raw}", None)


# What an input source yields, one per request line: a request or the reason it is none.
Item = Request | InvalidInput


@dataclass(slots=True, init=False)
class Response:
    """What a transport returns for one hop (no redirect following)."""

    status: int
    url: str
    headers: Headers
    body: bytes
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    protocol: str = "HTTP/1.1"

    def __init__(
        self,
        status: int,
        url: str,
        headers: Headers,
        body: bytes,
        connect_ms: float | None = None,
        ttfb_ms: float | None = None,
        protocol: str = "HTTP/1.1",
    ) -> None:
        self.status = status
        self.url = url
        self.headers = headers
        self.body = body
        self.connect_ms = connect_ms
        self.ttfb_ms = ttfb_ms
        # The version of the answer as curl's %{http_version} names it, with the prefix:
        # "HTTP/1.1", "HTTP/1.0" or "HTTP/2".
        self.protocol = protocol

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            # Servers mostly send the canonical case: the exact match skips a lower().
            if key == name or key.lower() == wanted:
                return value
        return None


@dataclass(slots=True, init=False)
class Timings:
    """Milliseconds. ``total_ms`` is the request's own time, from its first attempt to its
    result (backoff between attempts included); ``wait_ms``, the time its attempts waited
    for a slot of the run's limits (per host, concurrency, rate), is not part of it.
    ``queued_ms`` is the time in the input queue before any of that."""

    queued_ms: float = 0.0
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    total_ms: float = 0.0
    wait_ms: float = 0.0

    def __init__(
        self,
        queued_ms: float = 0.0,
        connect_ms: float | None = None,
        ttfb_ms: float | None = None,
        total_ms: float = 0.0,
        wait_ms: float = 0.0,
    ) -> None:
        self.queued_ms = queued_ms
        self.connect_ms = connect_ms
        self.ttfb_ms = ttfb_ms
        self.total_ms = total_ms
        self.wait_ms = wait_ms


# ErrorInfo and BodyField are built for records too (every failure, every kept body), so
# they are not ``frozen`` either; ``unsafe_hash`` keeps them hashable as they were.


@dataclass(slots=True, unsafe_hash=True, init=False)
class ErrorInfo:
    kind: str
    message: str

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message


# The record's keys for a kept body: its text, its bytes in base64, or the file it went to.
BODY_KEYS = ("body", "body_b64", "path")


@dataclass(slots=True, unsafe_hash=True, init=False)
class BodyField:
    """How the body appears in the record: key is one of :data:`BODY_KEYS`."""

    key: str
    value: str

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value


@dataclass(slots=True, init=False)
class Result:
    """The one final record of one request (schema v1). Values are already redacted."""

    id: str
    line: int | None
    method: str
    url: str
    final_url: str | None
    status: int | None
    error: ErrorInfo | None
    attempts: int
    timings: Timings
    bytes: int
    sha256: str | None
    content_type: str | None
    started_at: str
    headers: Headers | None = None
    body: BodyField | None = None
    meta: Any = None
    protocol: str | None = None

    def __init__(
        self,
        id: str,
        line: int | None,
        method: str,
        url: str,
        final_url: str | None,
        status: int | None,
        error: ErrorInfo | None,
        attempts: int,
        timings: Timings,
        bytes: int,
        sha256: str | None,
        content_type: str | None,
        started_at: str,
        headers: Headers | None = None,
        body: BodyField | None = None,
        meta: Any = None,
        protocol: str | None = None,
    ) -> None:
        self.id = id
        self.line = line
        self.method = method
        self.url = url
        self.final_url = final_url
        self.status = status
        self.error = error
        self.attempts = attempts
        self.timings = timings
        self.bytes = bytes
        self.sha256 = sha256
        self.content_type = content_type
        self.started_at = started_at
        self.headers = headers
        self.body = body
        self.meta = meta
        # The HTTP version of the final answer (Response.protocol); None without one.
        self.protocol = protocol

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400

    def content(self) -> builtins.bytes:  # ``bytes`` is a field's name in here
        """The body as bytes, as the body policy kept it: text, base64, or a saved file
        (read from disk). Raises :class:`~asyncfetch.errors.BodyNotKept` when the result
        holds no body (the request failed, or ``body="none"``)."""
        body = self.body
        if body is None:
            raise self._no_body()
        if body.key == "body_b64":
            import base64

            return base64.b64decode(body.value)
        if body.key == "path":
            with open(body.value, "rb") as saved:
                return saved.read()
        return body.value.encode("utf-8", "surrogateescape")

    def text(self) -> str:
        """The body as text: as kept for a text body, else decoded with the charset of
        its Content-Type (UTF-8 when none), undecodable bytes replaced."""
        body = self.body
        if body is not None and body.key == "body":
            return body.value
        return self.content().decode(_charset(self.content_type), "replace")

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        import json

        return json.loads(self.content())

    def _no_body(self) -> Exception:
        from ._errors import BodyNotKept

        error = self.error
        if error is not None:
            return BodyNotKept(
                f"{self.url} failed ({error.kind}: {error.message}): there is no body"
            )
        return BodyNotKept(
            f"the body of {self.url} was not kept: the body policy was 'none';"
            " use body='auto' (or 'text', 'base64', or save_dir=...) to keep it"
        )

    def to_record(self) -> dict[str, Any]:
        """The record as a dict in the stable key order of schema v1."""
        # One dict display instead of a dict grown key by key, and ``ok`` computed inline:
        # this runs for every record of a run, so each attribute load and call shows.
        error = self.error
        status = self.status
        timings = self.timings
        record: dict[str, Any] = {
            "id": self.id,
            "line": self.line,
            "method": self.method,
            "url": self.url,
            "final_url": self.final_url,
            "status": status,
            "ok": error is None and status is not None and status < 400,
            "error": None if error is None else {"kind": error.kind, "message": error.message},
            "attempts": self.attempts,
            "timings": {
                "queued_ms": timings.queued_ms,
                "connect_ms": timings.connect_ms,
                "ttfb_ms": timings.ttfb_ms,
                "total_ms": timings.total_ms,
                "wait_ms": timings.wait_ms,
            },
            "bytes": self.bytes,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "protocol": self.protocol,
        }
        if self.headers is not None:
            record["headers"] = header_record(self.headers)
        body = self.body
        if body is not None:
            record[body.key] = body.value
        record["meta"] = self.meta
        record["started_at"] = self.started_at
        return record

    @staticmethod
    def from_record(record: dict[str, Any]) -> Result:
        """The Result a record describes; the inverse of :meth:`to_record` (``ok`` is
        derived, so it is not read; keys of a later version are ignored)."""
        error = record.get("error")
        timings = record.get("timings") or {}
        headers = record.get("headers")
        return Result(
            id=record["id"],
            line=record.get("line"),
            method=record.get("method", ""),
            url=record.get("url", ""),
            final_url=record.get("final_url"),
            status=record.get("status"),
            error=None if error is None else ErrorInfo(error["kind"], error["message"]),
            attempts=record.get("attempts", 0),
            timings=Timings(
                queued_ms=timings.get("queued_ms", 0.0),
                connect_ms=timings.get("connect_ms"),
                ttfb_ms=timings.get("ttfb_ms"),
                total_ms=timings.get("total_ms", 0.0),
                wait_ms=timings.get("wait_ms", 0.0),
            ),
            bytes=record.get("bytes", 0),
            sha256=record.get("sha256"),
            content_type=record.get("content_type"),
            started_at=record.get("started_at", ""),
            headers=None if headers is None else tuple(headers.items()),
            body=next((BodyField(key, record[key]) for key in BODY_KEYS if key in record), None),
            meta=record.get("meta"),
            protocol=record.get("protocol"),
        )


def _charset(content_type: str | None) -> str:
    """The charset parameter of a Content-Type, if Python knows it; else UTF-8."""
    import codecs

    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
            try:
                return codecs.lookup(charset).name
            except LookupError:
                break
    return "utf-8"


@dataclass(frozen=True, slots=True)
class RunStats:
    """A snapshot of a run's progress; cheap to take, safe to hand to another task."""

    elapsed_s: float
    total: int | None
    done: int
    ok: int
    failed: int
    in_flight: int
    retries: int
    skipped: int = 0
    duplicates: int = 0
    by_status_class: dict[str, int] = field(default_factory=dict)
    by_error_kind: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0
