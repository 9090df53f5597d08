"""Build result records: apply the body policy, hash the body, redact secrets."""

from __future__ import annotations

import base64
import time
from typing import Final

from .._errors import ErrorKind
from .._hashing import sha256_hex
from .._models import (
    BodyField,
    ErrorInfo,
    InvalidInput,
    Request,
    Response,
    Result,
    Timings,
)
from .._settings import BodyPolicy
from .redact import redact_headers, redact_url

_TEXT_TYPES: Final = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES: Final = ("+json", "+xml")
_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
_MILLIS_SUFFIXES: Final = tuple(f".{millis:03d}Z" for millis in range(1000))
# A run sees a handful of distinct Content-Type values; bounded in case a server varies it.
_TEXTUAL_CACHE_SIZE: Final = 256

_textual_by_content_type: Final[dict[str, bool]] = {}
# Bound once: compiled, a module attribute read on every call is a dictionary lookup.
_time_ns: Final = time.time_ns


class _StampCache:
    """(second, its text) and (millisecond, its full timestamp), each swapped in whole, so
    a call from another thread never pairs one millisecond with another's text. Attributes
    of one object rather than module globals: compiled, those are dictionary lookups."""

    def __init__(self) -> None:
        self.second: tuple[int, str] = (-1, "")
        self.stamp: tuple[int, str] = (-1, "")


_STAMPS: Final = _StampCache()


def utc_now_iso() -> str:
    """``2026-11-24T06:47:00.905Z``; runs for every record, so the formatted second and
    the last millisecond's text are cached (strftime was a visible share of the cost)."""
    cache = _STAMPS
    millis = _time_ns() // 1_000_000
    cached = cache.stamp
    if cached[0] == millis:
        return cached[1]
    second, milli = divmod(millis, 1000)
    second_text = cache.second
    if second_text[0] != second:
        second_text = cache.second = (second, time.strftime(_FORMAT, time.gmtime(second)))
    stamp = second_text[1] + _MILLIS_SUFFIXES[milli]
    cache.stamp = (millis, stamp)
    return stamp


def _is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    known = _textual_by_content_type.get(content_type)
    if known is None:
        media = content_type.split(";", 1)[0].strip().lower()
        known = media.startswith(_TEXT_TYPES) or media.endswith(_TEXT_SUFFIXES)
        if len(_textual_by_content_type) >= _TEXTUAL_CACHE_SIZE:
            _textual_by_content_type.clear()
        _textual_by_content_type[content_type] = known
    return known


def body_field(body: bytes, content_type: str | None, mode: str) -> BodyField | None:
    """The body as the record carries it, by policy: text, base64, auto or none."""
    if mode == "none":
        return None
    if mode == "text":
        return BodyField("body", body.decode("utf-8", errors="replace"))
    if mode == "auto" and (not body or _is_textual(content_type)):
        try:
            return BodyField("body", body.decode("utf-8"))
        except UnicodeDecodeError:
            pass  # not valid UTF-8 after all: fall through to base64, which is lossless
    return BodyField("body_b64", base64.b64encode(body).decode("ascii"))


def success_result(
    request: Request,
    response: Response,
    *,
    attempts: int,
    timings: Timings,
    started_at: str,
    policy: BodyPolicy,
    saved_path: str | None = None,
) -> Result:
    body = response.body
    content_type = response.header("Content-Type")
    if saved_path is not None:
        kept: BodyField | None = BodyField("path", saved_path)
    elif policy.mode == "none":
        kept = None
    else:
        kept = body_field(body, content_type, policy.mode)
    # Positional: keyword arguments made building the Result cost three times as much.
    return Result(
        request.id,
        request.line,
        request.method,
        redact_url(request.url),
        redact_url(response.url),
        response.status,
        None,  # error
        attempts,
        timings,
        len(body),
        sha256_hex(body),
        content_type,
        started_at,
        redact_headers(response.headers) if policy.include_headers else None,
        kept,
        request.meta,
        response.protocol,
    )


def failure_result(
    request: Request,
    kind: str,
    message: str,
    *,
    attempts: int,
    timings: Timings,
    started_at: str,
) -> Result:
    return Result(
        request.id,
        request.line,
        request.method,
        redact_url(request.url),
        None,  # final_url
        None,  # status
        ErrorInfo(kind, message),
        attempts,
        timings,
        0,  # bytes
        None,  # sha256
        None,  # content_type
        started_at,
        None,  # headers
        None,  # body
        request.meta,
    )


def invalid_input_result(bad: InvalidInput) -> Result:
    return Result(
        id=bad.record_id,
        line=bad.line,
        method="",
        url=redact_url(bad.raw),
        final_url=None,
        status=None,
        error=ErrorInfo(ErrorKind.INVALID_INPUT.value, bad.message),
        attempts=0,
        timings=Timings(),
        bytes=0,
        sha256=None,
        content_type=None,
        started_at=utc_now_iso(),
        meta=bad.meta,
    )
