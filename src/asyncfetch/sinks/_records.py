"""Turning result records into bytes (JSON) and flat rows (CSV, SQLite).

Shared by every sink so the formats agree on what a record holds.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

FlatValue = str | int | float | None

_LEADING_COLUMNS = (
    "id",
    "line",
    "method",
    "url",
    "final_url",
    "status",
    "ok",
    "error_kind",
    "error_message",
    "attempts",
    "queued_ms",
    "connect_ms",
    "ttfb_ms",
    "total_ms",
    "bytes",
    "sha256",
    "content_type",
)
_TRAILING_COLUMNS = ("body", "body_b64", "path", "meta", "started_at")
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def flat_columns(*, include_headers: bool) -> tuple[str, ...]:
    """The flat column names, in order; ``headers`` (a JSON string) only when asked."""
    middle = ("headers",) if include_headers else ()
    return _LEADING_COLUMNS + middle + _TRAILING_COLUMNS


def _json_default(value: object) -> object:
    # Records are plain JSON data, but Python API users may put anything in ``meta``;
    # one odd value must not stop a run of a million requests, so it becomes text.
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def _scrub(value: Any) -> Any:
    """A copy of ``value`` whose strings are valid UTF-8 (lone surrogates escaped)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def dumps(value: Any, *, newline: bool = False) -> bytes:
    """Serialize ``value`` as compact JSON, with a trailing newline when ``newline``."""
    options = _JSON_OPTIONS | (orjson.OPT_APPEND_NEWLINE if newline else 0)
    try:
        return orjson.dumps(value, default=_json_default, option=options)
    except orjson.JSONEncodeError:
        # URLs decoded with surrogateescape can hold lone surrogates, which are not
        # UTF-8; escape them rather than lose the record (the slow paths are rare).
        scrubbed = _scrub(value)
    try:
        return orjson.dumps(scrubbed, default=_json_default, option=options)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits; the stdlib encoder does not.
        text = json.dumps(
            scrubbed, default=_json_default, ensure_ascii=False, separators=(",", ":")
        )
        return (text + "\n" if newline else text).encode("utf-8")


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value).decode("utf-8")


def flatten(record: dict[str, Any], *, include_headers: bool) -> dict[str, FlatValue]:
    """The record as one flat row keyed by :func:`flat_columns` (nested parts unfolded)."""
    error = record.get("error") or {}
    timings = record.get("timings") or {}
    row: dict[str, FlatValue] = {
        name: record.get(name) for name in ("id", "line", "method", "url", "final_url", "status")
    }
    row["ok"] = bool(record.get("ok"))
    row["error_kind"] = error.get("kind")
    row["error_message"] = error.get("message")
    row["attempts"] = record.get("attempts")
    for name in ("queued_ms", "connect_ms", "ttfb_ms", "total_ms"):
        row[name] = timings.get(name)
    for name in ("bytes", "sha256", "content_type"):
        row[name] = record.get(name)
    if include_headers:
        row["headers"] = _json_or_none(record.get("headers"))
    for name in ("body", "body_b64", "path"):
        row[name] = record.get(name)
    row["meta"] = _json_or_none(record.get("meta"))
    row["started_at"] = record.get("started_at")
    return row
