"""Plain-text input: one URL a line; blank lines and ``#`` comments are skipped."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ..config import RequestDefaults
from ..models import InvalidInput, Request
from .reader import LineStream, RawLine, is_candidate
from .spec import invalid_input, url_request
from .validate import MAX_URL_LENGTH


async def parse_text(
    stream: LineStream, defaults: RequestDefaults
) -> AsyncGenerator[Request | InvalidInput, None]:
    """Yield one Request or InvalidInput for every non-blank, non-comment line."""
    while (batch := await stream.next_batch()) is not None:
        for raw_line in batch:
            item = text_line(raw_line, defaults)
            if item is not None:
                yield item


def text_line(raw_line: RawLine, defaults: RequestDefaults) -> Request | InvalidInput | None:
    """The request on one URL line, its InvalidInput, or None for a blank or comment line."""
    number, data, too_long = raw_line
    if too_long:
        return invalid_input(number, f"URL is too long (at most {MAX_URL_LENGTH})", _lossy(data))
    if not is_candidate(data):
        return None  # a blank or comment line is skipped whatever its encoding, as in JSONL
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return invalid_input(number, f"line is not valid UTF-8 ({exc.reason})", _lossy(data))
    url = text.strip()
    if not url or url.startswith("#"):
        return None
    return url_request(url, number, text, defaults)


def _lossy(data: bytes) -> str:
    return data[:1024].decode("utf-8", "replace")
