"""Result writers: JSONL, CSV and SQLite records, and response bodies saved to files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .._lazy import lazy_exports
from .base import ResumableSink, Sink
from .jsonl import JsonlSink

if TYPE_CHECKING:
    from .bodies import BodyStore
    from .csv import CsvSink
    from .sqlite import SqliteSink

# JSONL is the default output; the others (and sqlite3, csv, mimetypes behind them) are
# imported on first use, as the package asyncfetch does with its own exports (PEP 562).
_LAZY = {"BodyStore": ".bodies", "CsvSink": ".csv", "SqliteSink": ".sqlite"}

__all__ = [
    "OUTPUT_FORMATS",
    "BodyStore",
    "CsvSink",
    "JsonlSink",
    "ResumableSink",
    "Sink",
    "SqliteSink",
    "open_resumable_sink",
    "open_sink",
]

OUTPUT_FORMATS = ("jsonl", "csv", "sqlite")
_FORMAT_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "jsonl",  # JSON lines are text lines
    ".csv": "csv",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
    ".db": "sqlite",
}


__getattr__ = lazy_exports(__name__, _LAZY, globals())


def _resolve_format(path: str | None, output_format: str | None) -> str:
    if output_format is not None:
        if output_format not in OUTPUT_FORMATS:
            raise ConfigError(
                f"unknown output format {output_format!r}; use one of {', '.join(OUTPUT_FORMATS)}"
            )
        return output_format
    suffix = "" if path is None else Path(path).suffix.lower()
    if not suffix:  # stdout, or a file named without an extension: JSONL, as documented
        return "jsonl"
    known = _FORMAT_BY_SUFFIX.get(suffix)
    if known is None:
        # Writing JSONL into "out.parquet" would surprise whoever opens it later.
        raise ConfigError(
            f"cannot tell the output format of {path} from its extension {suffix!r}:"
            " use .jsonl, .csv or .sqlite (or .ndjson, .json, .txt, .sqlite3, .db),"
            " or say which with --output-format"
        )
    return known


def open_sink(
    path: str | os.PathLike[str] | None,
    *,
    output_format: str | None = None,
    include_headers: bool = False,
    append: bool = False,
) -> Sink:
    """Open the sink for ``path``; None or ``"-"`` means stdout (JSONL unless told).

    The format is ``output_format`` when given, else taken from the extension
    (``.jsonl``/``.ndjson``/``.json``/``.txt``, ``.csv``, ``.sqlite``/``.sqlite3``/``.db``; no
    extension is JSONL; another extension raises ConfigError). ``append=False``
    truncates an existing file, ``append=True`` adds to it (resume). Raises ConfigError
    for an unknown format and OutputError when the file cannot be opened.
    """
    target = None if path is None or os.fspath(path) == "-" else os.fspath(path)
    chosen = _resolve_format(target, output_format)
    if target is None:
        if chosen == "sqlite":
            raise ConfigError("sqlite output needs a file path, not stdout; e.g. -o results.db")
        if chosen == "csv":
            from .csv import CsvSink

            return CsvSink.stdout(include_headers=include_headers)
        return JsonlSink.stdout()
    return _open_file(target, chosen, include_headers=include_headers, append=append)


def open_resumable_sink(
    path: str | os.PathLike[str],
    *,
    output_format: str | None = None,
    include_headers: bool = False,
) -> ResumableSink:
    """Open ``path`` to append to it as a :class:`ResumableSink` (JSONL, CSV or SQLite).

    The format is chosen as by :func:`open_sink`; stdout cannot be resumed.
    """
    target = os.fspath(path)
    chosen = _resolve_format(target, output_format)
    return _open_file(target, chosen, include_headers=include_headers, append=True)


def _open_file(
    target: str, chosen: str, *, include_headers: bool, append: bool
) -> JsonlSink | CsvSink | SqliteSink:
    if chosen == "csv":
        from .csv import CsvSink

        return CsvSink.open(target, include_headers=include_headers, append=append)
    if chosen == "sqlite":
        from .sqlite import SqliteSink

        return SqliteSink(target, append=append)
    return JsonlSink.open(target, append=append)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
