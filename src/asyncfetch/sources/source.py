"""open_source: a file or stdin, in any supported format, as a lazy stream of requests."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from .._models import Item
from .._settings import RequestDefaults
from .batching import flatten
from .detect import check_format, detect_format
from .reader import STDIN, LineStream, check_readable, open_stream

BatchParser = Callable[[LineStream, RequestDefaults], AsyncGenerator[list[Item], None]]
NO_DEFAULTS = RequestDefaults()


def parser_for(input_format: str) -> BatchParser:
    """The batch parser of ``input_format`` ("text", "jsonl" or "csv").

    Imported here, not at the top: an input needs one reader, and the CSV one (with the
    csv module) costs more to import than the text one.
    """
    if input_format == "text":
        from .text import parse_text_batches

        return parse_text_batches
    if input_format == "jsonl":
        from .jsonl import parse_jsonl_batches

        return parse_jsonl_batches
    if input_format == "csv":
        from .csv import parse_csv_batches

        return parse_csv_batches
    raise KeyError(input_format)


def open_source(
    path: str | os.PathLike[str],
    *,
    input_format: str | None = None,
    defaults: RequestDefaults = NO_DEFAULTS,
) -> AsyncGenerator[Item, None]:
    """Read requests from ``path`` (``"-"`` is stdin), lazily, one batch at a time.

    ``input_format`` is ``"text"``, ``"jsonl"``, ``"csv"`` or None to detect it (see
    :func:`detect_format`; stdin is sniffed from its first lines). Each bad line yields one
    :class:`InvalidInput` and reading goes on.

    A missing, unreadable or directory path raises :class:`~asyncfetch._errors.InputError`
    here, at the call; a failure that happens later (the file vanishing before it is
    opened, a read error, a CSV header without a url column) raises InputError from the
    iteration. An unknown ``input_format`` raises :class:`~asyncfetch._errors.ConfigError`.
    Close the generator (``aclose()``, or ``contextlib.aclosing``) when stopping early.

    This is :func:`open_source_batches` one item at a time.
    """
    return flatten(open_source_batches(path, input_format=input_format, defaults=defaults))


def open_source_batches(
    path: str | os.PathLike[str],
    *,
    input_format: str | None = None,
    defaults: RequestDefaults = NO_DEFAULTS,
    refuse_binary: bool = False,
) -> AsyncGenerator[list[Item], None]:
    """:func:`open_source` as lists: the items of each chunk read, in order, in one list.

    Lists are never empty and hold at most the lines of one read (64 KiB), so about a
    thousand items for typical URLs; a slow pipe gives short lists as its lines arrive.
    Errors are raised as open_source raises them, at the call or from the iteration.
    ``refuse_binary``: raise InputError ("looks like a binary file") for an input whose
    start is not text, instead of an ``invalid_input`` item per garbage line.
    """
    checked_format = check_format(input_format)
    if os.fspath(path) != STDIN:
        check_readable(path)
    return _read(path, checked_format, defaults, refuse_binary)


async def _read(
    path: str | os.PathLike[str],
    input_format: str | None,
    defaults: RequestDefaults,
    refuse_binary: bool,
) -> AsyncGenerator[list[Item], None]:
    stream = await open_stream(path)
    stream.refuse_binary = refuse_binary
    try:
        if input_format is None:
            input_format = detect_format(path, await stream.first_candidate())
        async with aclosing(parser_for(input_format)(stream, defaults)) as batches:
            async for batch in batches:
                yield batch
    finally:
        stream.close()
