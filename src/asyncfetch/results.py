"""Build result records: apply the body policy, hash the body, redact secrets."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from .config import BodyPolicy
from .errors import ErrorKind
from .models import BodyField, ErrorInfo, InvalidInput, Request, Response, Result, Timings
from .redact import redact_headers, redact_url

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")


_second_cache: list[Any] = [-1, ""]


def utc_now_iso() -> str:
    """``2026-11-24T06:47:00.905Z``; the formatted second is cached because this runs for
    every record and strftime was a visible share of the per-request cost."""
    now = time.time()
    second = int(now)
    if second != _second_cache[0]:
        _second_cache[0] = second
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second_cache[1]}.{int((now - second) * 1000):03d}Z"


def _is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith(_TEXT_TYPES) or media.endswith(_TEXT_SUFFIXES)


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
    content_type = response.header("Content-Type")
    body = (
        BodyField("path", saved_path)
        if saved_path is not None
        else body_field(response.body, content_type, policy.mode)
    )
    return Result(
        id=request.id,
        line=request.line,
        method=request.method,
        url=redact_url(request.url),
        final_url=redact_url(response.url),
        status=response.status,
        error=None,
        attempts=attempts,
        timings=timings,
        bytes=len(response.body),
        sha256=hashlib.sha256(response.body).hexdigest(),
        content_type=content_type,
        started_at=started_at,
        headers=redact_headers(response.headers) if policy.include_headers else None,
        body=body,
        meta=request.meta,
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
        id=request.id,
        line=request.line,
        method=request.method,
        url=redact_url(request.url),
        final_url=None,
        status=None,
        error=ErrorInfo(kind, message),
        attempts=attempts,
        timings=timings,
        bytes=0,
        sha256=None,
        content_type=None,
        started_at=started_at,
        meta=request.meta,
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
