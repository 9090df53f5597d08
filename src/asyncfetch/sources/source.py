"""open_source: a file or stdin, in any supported format, as a lazy stream of requests."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from ..config import RequestDefaults
from ..models import InvalidInput, Request
from .csv import parse_csv
from .detect import check_format, detect_format
from .jsonl import parse_jsonl
from .reader import STDIN, LineStream, check_readable, open_stream
from .text import parse_text

Parser = Callable[[LineStream, RequestDefaults], AsyncGenerator[Request | InvalidInput, None]]
PARSERS: dict[str, Parser] = {"text": parse_text, "jsonl": parse_jsonl, "csv": parse_csv}
NO_DEFAULTS = RequestDefaults()


def open_source(
    path: str | os.PathLike[str],
    *,
    input_format: str | None = None,
    defaults: RequestDefaults = NO_DEFAULTS,
) -> AsyncGenerator[Request | InvalidInput, None]:
    """Read requests from ``path`` (``"-"`` is stdin), lazily, one batch at a time.

    ``input_format`` is ``"text"``, ``"jsonl"``, ``"csv"`` or None to detect it (see
    :func:`detect_format`; stdin is sniffed from its first lines). Each bad line yields one
    :class:`InvalidInput` and reading goes on.

    A missing, unreadable or directory path raises :class:`~asyncfetch.errors.InputError`
    here, at the call; a failure that happens later (the file vanishing before it is
    opened, a read error, a CSV header without a url column) raises InputError from the
    iteration. An unknown ``input_format`` raises :class:`~asyncfetch.errors.ConfigError`.
    Close the generator (``aclose()``, or ``contextlib.aclosing``) when stopping early.
    """
    checked_format = check_format(input_format)
    if os.fspath(path) != STDIN:
        check_readable(path)
    return _read(path, checked_format, defaults)


async def _read(
    path: str | os.PathLike[str], input_format: str | None, defaults: RequestDefaults
) -> AsyncGenerator[Request | InvalidInput, None]:
    stream = await open_stream(path)
    try:
        if input_format is None:
            input_format = detect_format(path, await stream.first_candidate())
        async with aclosing(PARSERS[input_format](stream, defaults)) as items:
            async for item in items:
                yield item
    finally:
        stream.close()
