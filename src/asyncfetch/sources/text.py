"""Plain-text input: one URL a line; blank lines and ``#`` comments are skipped."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from .._models import InvalidInput, Request
from .._settings import RequestDefaults
from .batching import parsed_batches
from .reader import LineBatch, LineStream, RawLine, is_candidate
from .spec import UrlRequests, invalid_input, url_request
from .validate import MAX_URL_LENGTH, known_valid_url


def parse_text_batches(
    stream: LineStream, defaults: RequestDefaults
) -> AsyncGenerator[list[Request | InvalidInput], None]:
    """Per batch of lines read, a Request or InvalidInput for each URL line in a list.

    Blank and ``#`` lines are skipped; a batch with nothing else yields nothing.
    """
    to_request = UrlRequests(defaults)
    return parsed_batches(stream, lambda batch: text_batch(batch, to_request))


def text_batch(batch: LineBatch, to_request: UrlRequests) -> list[Request | InvalidInput]:
    """:func:`text_line` for each line of ``batch``, less the skipped lines.

    The defaults are ``to_request``'s. The common line (valid UTF-8, not cut, a URL on
    a host already validated) takes a short path written out here, since it runs for
    every line; any other line goes through text_line or ``to_request``, so what a line
    becomes is defined once.
    """
    items: list[Request | InvalidInput] = []
    method, headers, body, url_id = (
        to_request.method,
        to_request.headers,
        to_request.body,
        to_request.url_id,
    )
    cut = batch.cut
    number = batch.first - 1
    for data in batch.lines:
        number += 1
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or (cut and number in cut):
            item = text_line(RawLine(number, data, number in cut), to_request.defaults)
            if item is not None:
                items.append(item)
            continue
        # text_line's candidate test on the bytes adds nothing here: str.strip() removes
        # all the whitespace that bytes.strip() does, and more.
        url = text.strip()
        if not url or url[0] == "#":
            continue
        if known_valid_url(url):
            # UrlRequests.known, inline.
            items.append(Request(url, method, headers, body, url_id(url), number))
        else:
            items.append(to_request(url, number, text))
    return items


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
