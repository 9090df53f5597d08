"""JSONL input: one request spec (a JSON object) a line; see :mod:`.spec` for the schema."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from .._errors import InputError, caused_by
from .._models import InvalidInput, Request
from .._settings import RequestDefaults
from .batching import parsed_batches
from .reader import MAX_LINE_BYTES, LineBatch, LineStream, RawLine, is_candidate
from .spec import build_request, invalid_input
from .validate import type_name


def parse_jsonl_batches(
    stream: LineStream, defaults: RequestDefaults
) -> AsyncGenerator[list[Request | InvalidInput], None]:
    """Per batch of lines read, a Request or InvalidInput for each line in a list.

    Blank and ``#`` lines are skipped; a batch with nothing else yields nothing.
    """
    return parsed_batches(stream, lambda batch: _jsonl_batch(batch, defaults))


def _jsonl_batch(batch: LineBatch, defaults: RequestDefaults) -> list[Request | InvalidInput]:
    cut = batch.cut
    return [
        _jsonl_item(number, data, number in cut, defaults)
        for number, data in enumerate(batch.lines, batch.first)
        if is_candidate(data) or number in cut
    ]


def jsonl_line(raw_line: RawLine, defaults: RequestDefaults) -> Request | InvalidInput:
    """The request of one JSONL line, or its InvalidInput."""
    return _jsonl_item(raw_line.number, raw_line.data, raw_line.too_long, defaults)


def _jsonl_item(
    number: int, data: bytes, too_long: bool, defaults: RequestDefaults
) -> Request | InvalidInput:
    text = data[:1024].decode("utf-8", "replace")
    if too_long:
        return invalid_input(number, f"line is longer than {MAX_LINE_BYTES} bytes", text)
    try:
        spec = _load(data)
    except InputError as exc:
        return invalid_input(number, exc.message, text)
    try:
        return build_request(spec, line=number, defaults=defaults)
    except InputError as exc:
        return invalid_input(number, exc.message, text, spec)


def _load(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise caused_by(InputError(_decode_error_message(data, exc)), exc)
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object with a url field, not {type_name(value)}")
    return value


def _decode_error_message(data: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson reports bad UTF-8 as a JSON error; say plainly what is wrong instead.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        return f"line is not valid UTF-8 ({utf8_error.reason})"
    return f"line is not valid JSON: {exc.msg} (column {exc.colno})"
