"""JSONL input: one request spec (a JSON object) a line; see :mod:`.spec` for the schema."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from ..config import RequestDefaults
from ..errors import InputError
from ..models import InvalidInput, Request
from .reader import MAX_LINE_BYTES, LineStream, RawLine, is_candidate
from .spec import build_request, invalid_input
from .validate import type_name


async def parse_jsonl(
    stream: LineStream, defaults: RequestDefaults
) -> AsyncGenerator[Request | InvalidInput, None]:
    """Yield one Request or InvalidInput per line; blank and ``#`` lines are skipped."""
    while (batch := await stream.next_batch()) is not None:
        for raw_line in batch:
            if is_candidate(raw_line.data) or raw_line.too_long:
                yield jsonl_line(raw_line, defaults)


def jsonl_line(raw_line: RawLine, defaults: RequestDefaults) -> Request | InvalidInput:
    """The request of one JSONL line, or its InvalidInput."""
    number, data, too_long = raw_line
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
        raise InputError(_decode_error_message(data, exc)) from exc
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
