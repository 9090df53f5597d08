"""Which input format a file is in: by its extension, else by its first meaningful line."""

from __future__ import annotations

import os
from pathlib import PurePath

from .._errors import ConfigError
from .reader import BOM

FORMATS = ("text", "jsonl", "csv")
_BY_EXTENSION = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".txt": "text",
    ".lst": "text",
}


def detect_format(path: str | os.PathLike[str], first_line: bytes | None) -> str:
    """Return ``"text"``, ``"jsonl"`` or ``"csv"`` for an input.

    The extension decides (.jsonl/.ndjson, .csv, .txt/.lst); otherwise ``first_line``,
    the first non-blank, non-comment line, is sniffed: ``{`` means JSONL, a CSV header
    with a ``url`` column means CSV, anything else (or no line at all) means text.
    """
    by_extension = _BY_EXTENSION.get(PurePath(os.fspath(path)).suffix.lower())
    if by_extension is not None:
        return by_extension
    if first_line is None:
        return "text"
    line = first_line.removeprefix(BOM).strip()
    if line.startswith(b"{"):
        return "jsonl"
    if _looks_like_csv_header(line):
        return "csv"
    return "text"


def _looks_like_csv_header(line: bytes) -> bool:
    # A URL line can contain commas ("https://x/?a=1,url"); a header never contains "://".
    if b"://" in line or b"url" not in line.lower():
        return False
    import csv  # here: most inputs are decided by extension or first byte, without it

    text = line.decode("utf-8", "replace")
    try:
        header = next(csv.reader([text]), [])
    except csv.Error:
        return False
    return any(column.strip().lower() == "url" for column in header)


def check_format(input_format: str | None) -> str | None:
    """Return ``input_format`` normalised, or raise ConfigError naming the valid ones."""
    if input_format is None:
        return None
    normalised = input_format.strip().lower()
    if normalised not in FORMATS:
        raise ConfigError(
            f"unknown input format {input_format!r}; use one of {', '.join(FORMATS)}"
        )
    return normalised
