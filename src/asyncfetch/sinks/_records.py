"""Turning result records into bytes (JSON) and flat rows (CSV, SQLite).

Shared by every sink so the formats agree on what a record holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .._models import BODY_KEYS, Result, header_record
from .._optional_c import optional_c_function

FlatValue = str | int | float | None


@dataclass(frozen=True, slots=True)
class Column:
    """One flat column (CSV, SQLite) and where its value sits in the record.

    ``path`` is the keys from the record down to the value (``("timings", "total_ms")``);
    an ``as_json`` column holds a nested value as a JSON string.
    """

    name: str
    path: tuple[str, ...]
    sql_type: str = "TEXT"
    as_json: bool = False
    default: FlatValue = None


def _at(name: str, sql_type: str = "TEXT", *, as_json: bool = False) -> Column:
    return Column(name, (name,), sql_type, as_json)


# The one list of the flat columns, in their order. wait_ms and protocol came after the
# others: last, so the columns of earlier versions keep their places (and a CSV file of
# an earlier version can still be appended to). ``headers`` is present only when asked.
COLUMNS: tuple[Column, ...] = (
    _at("id"),
    _at("line", "INTEGER"),
    _at("method"),
    _at("url"),
    _at("final_url"),
    _at("status", "INTEGER"),
    _at("ok", "INTEGER"),
    Column("error_kind", ("error", "kind")),
    Column("error_message", ("error", "message")),
    _at("attempts", "INTEGER"),
    Column("queued_ms", ("timings", "queued_ms"), "REAL"),
    Column("connect_ms", ("timings", "connect_ms"), "REAL"),
    Column("ttfb_ms", ("timings", "ttfb_ms"), "REAL"),
    Column("total_ms", ("timings", "total_ms"), "REAL"),
    _at("bytes", "INTEGER"),
    _at("sha256"),
    _at("content_type"),
    _at("headers", as_json=True),
    *(_at(key) for key in BODY_KEYS),
    _at("meta", as_json=True),
    _at("started_at"),
    # A record of a version before wait_ms waited for nothing.
    Column("wait_ms", ("timings", "wait_ms"), "REAL", default=0.0),
    _at("protocol"),
)
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_NEWLINE_OPTION = orjson.OPT_APPEND_NEWLINE
_orjson_dumps = orjson.dumps

# Appends a record's JSON line from its fields, as orjson would write it (record_json.c);
# False, with the buffer untouched, where it leaves the record to orjson.
_APPEND_RECORD: Final[Callable[..., bool] | None] = optional_c_function(
    "asyncfetch.sinks.record_json", "append_record"
)


def flat_columns(*, include_headers: bool) -> tuple[str, ...]:
    """The flat column names, in order; ``headers`` (a JSON string) only when asked."""
    return tuple(column.name for column in _columns(include_headers))


def _columns(include_headers: bool) -> tuple[Column, ...]:
    return COLUMNS if include_headers else _COLUMNS_WITHOUT_HEADERS


_COLUMNS_WITHOUT_HEADERS = tuple(column for column in COLUMNS if column.name != "headers")


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
    try:
        # Almost every record has only string keys: try without OPT_NON_STR_KEYS, which
        # costs a third of the encoding. When it fails, the slow path's options decide.
        return _orjson_dumps(
            value, default=_json_default, option=_NEWLINE_OPTION if newline else 0
        )
    except orjson.JSONEncodeError:
        return _dumps_slow(value, newline=newline)


def encode_lines_into(buffer: bytearray, results: Iterable[Result]) -> None:
    """Append each result's JSON line to ``buffer`` (the bytes ``dumps`` would give).

    Each line goes into the buffer as soon as it is encoded: holding a batch of line
    objects until a join made the allocator give memory back to the system and take it
    again for every batch, which cost more than the encoding itself.
    """
    append_record = _APPEND_RECORD
    for result in results:
        if (
            append_record is not None
            and result.headers is None
            and result.meta is None
            and _append_fields(append_record, buffer, result)
        ):
            continue
        record = result.to_record()
        try:
            line = _orjson_dumps(record, default=_json_default, option=_NEWLINE_OPTION)
        except orjson.JSONEncodeError:
            line = _dumps_slow(record, newline=True)
        buffer += line


def _append_fields(append_record: Callable[..., bool], buffer: bytearray, result: Result) -> bool:
    """The C writer's arguments: the record's fields in schema order, nested ones spread."""
    error = result.error
    timings = result.timings
    body = result.body
    return append_record(
        buffer,
        result.id,
        result.line,
        result.method,
        result.url,
        result.final_url,
        result.status,
        result.ok,
        None if error is None else error.kind,
        None if error is None else error.message,
        result.attempts,
        timings.queued_ms,
        timings.connect_ms,
        timings.ttfb_ms,
        timings.total_ms,
        timings.wait_ms,
        result.bytes,
        result.sha256,
        result.content_type,
        result.protocol,
        None if body is None else body.key,
        None if body is None else body.value,
        result.started_at,
    )


def _dumps_slow(value: Any, *, newline: bool) -> bytes:
    options = _JSON_OPTIONS | (_NEWLINE_OPTION if newline else 0)
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
    return {column.name: _flat_value(record, column) for column in _columns(include_headers)}


def _flat_value(record: dict[str, Any], column: Column) -> FlatValue:
    value: Any = record
    for key in column.path:
        value = value.get(key) if isinstance(value, dict) else None
    if column.as_json:
        return _json_or_none(value)
    if column.name == "ok":
        return bool(value)
    return column.default if value is None else value


def flat_row(result: Result, *, include_headers: bool) -> list[FlatValue]:
    """``flatten(result.to_record())`` as values in :func:`flat_columns` order.

    Read straight from the Result: building the nested record and unfolding it again was
    two dicts and some twenty lookups per row.
    """
    body = result.body
    body_key = None if body is None else body.key
    if body is not None and body_key not in BODY_KEYS:
        # Not a key of schema v1 (never built by asyncfetch): to_record decides.
        return list(flatten(result.to_record(), include_headers=include_headers).values())
    body_value = None if body is None else body.value
    error = result.error
    timings = result.timings
    row: list[FlatValue] = [
        result.id,
        result.line,
        result.method,
        result.url,
        result.final_url,
        result.status,
        result.ok,
        None if error is None else error.kind,
        None if error is None else error.message,
        result.attempts,
        timings.queued_ms,
        timings.connect_ms,
        timings.ttfb_ms,
        timings.total_ms,
        result.bytes,
        result.sha256,
        result.content_type,
    ]
    if include_headers:
        headers = result.headers
        row.append(None if headers is None else dumps(header_record(headers)).decode("utf-8"))
    row += (
        body_value if body_key == "body" else None,
        body_value if body_key == "body_b64" else None,
        body_value if body_key == "path" else None,
        _json_or_none(result.meta),
        result.started_at,
        timings.wait_ms,
        result.protocol,
    )
    return row
