"""CSV: one flat row per record, nested parts unfolded, JSON for ``headers`` and ``meta``.

Values holding newlines are quoted (RFC 4180), so they round-trip through any CSV reader
that is opened with ``newline=""``. ``None`` is written as an empty cell, booleans as
``true``/``false``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .._errors import ConfigError, OutputError, caused_by
from .._models import Result
from ._files import (
    DEFAULT_BATCH_BYTES,
    BufferedFileSink,
    FileWriter,
    describe_os_error,
    open_output,
    stdout_stream,
)
from ._records import FlatValue, flat_columns, flat_row
from .base import SavedRecord

# Read back with surrogateescape, and written so again, any byte sequence round-trips.
_READ_BACK_ERRORS = "surrogateescape"


def _cell_text(value: FlatValue) -> str:
    """A cell's text: None is empty, booleans ``true``/``false``, others as csv writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _existing_header(path: Path) -> list[str] | None:
    """The first row of a non-empty CSV file at ``path``, or None when there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as existing:
            return next(csv.reader(existing), None)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise caused_by(
            OutputError(f"cannot read output file {path}: {describe_os_error(exc)}"), exc
        )


def _ends_with_line_break(file: BinaryIO) -> bool:
    size = file.seek(0, os.SEEK_END)
    file.seek(max(size - 2, 0))
    ending = file.read(2)
    file.seek(0)
    return ending == b"\r\n"


def _csv_rows(text: io.TextIOWrapper) -> Iterator[list[str]]:
    try:
        yield from csv.reader(text, strict=True)
    except csv.Error:
        return  # an unterminated quoted field: everything from there on is torn


def _appendable_columns(path: Path, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns the rows appended to ``path`` must have: this run's, or the fewer of a
    file an earlier version wrote (columns are only ever added at the end, and its rows
    go on without the new ones rather than under a header that does not name them)."""
    header = _existing_header(path)
    if header is None or tuple(header) == columns:
        return columns
    if len(header) > columns.index("started_at") and tuple(header) == columns[: len(header)]:
        return tuple(header)
    # Appending rows under a different header would shift every column silently.
    raise ConfigError(
        f"cannot append to {path}: its columns differ from this run's "
        "(was it written with a different include_headers setting?)"
    )


class CsvSink(BufferedFileSink):
    """Writes records as CSV rows to a file or to stdout; the header row is written once."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        name: str,
        owns_stream: bool,
        include_headers: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        columns: tuple[str, ...] | None = None,
    ) -> None:
        self._writer = FileWriter(stream, name, owns_stream=owns_stream, batch_bytes=batch_bytes)
        self._include_headers = include_headers
        every_column = flat_columns(include_headers=include_headers)
        self._columns = every_column if columns is None else columns
        # Cells per row when appending to an earlier version's file; None for all.
        self._width = None if self._columns == every_column else len(self._columns)
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\r\n")
        if self._writer.position == 0:
            self._writer.append(self._encode_rows([self._columns]))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        include_headers: bool = False,
        append: bool = False,
    ) -> CsvSink:
        """A sink writing to ``path``: truncated, or appended to when ``append``."""
        target = Path(path)
        columns = flat_columns(include_headers=include_headers)
        if append:
            columns = _appendable_columns(target, columns)
        stream = open_output(target, append=append)
        return cls(
            stream,
            name=str(target),
            owns_stream=True,
            include_headers=include_headers,
            columns=columns,
        )

    @classmethod
    def stdout(cls, *, include_headers: bool = False) -> CsvSink:
        """A sink writing to ``sys.stdout.buffer``, which it never closes."""
        return cls(
            stdout_stream(), name="stdout", owns_stream=False, include_headers=include_headers
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """The header row, in order."""
        return self._columns

    def _encode(self, results: Sequence[Result]) -> bytes:
        lines = [self._line(result) for result in results]
        # Lone surrogates (from surrogateescape-decoded URLs) are not UTF-8: escape them.
        return "".join(lines).encode("utf-8", "backslashreplace")

    def _line(self, result: Result) -> str:
        """The row as the csv module writes it, joined directly when nothing needs quotes.

        csv.writer costs some 4 µs a row; most rows hold no comma, quote or line break,
        and then the row is exactly its cells joined by commas (QUOTE_MINIMAL). Rows
        that do are left to the csv module, so the quoting rules stay the module's own.
        """
        values = flat_row(result, include_headers=self._include_headers)
        if self._width is not None:
            del values[self._width :]
        cells = [
            "" if value is None else value if isinstance(value, str) else _cell_text(value)
            for value in values
        ]
        line = ",".join(cells)
        if '"' in line or "\n" in line or "\r" in line or line.count(",") != len(cells) - 1:
            self._csv.writerow(cells)
            line = self._text.getvalue()
            self._text.seek(0)
            self._text.truncate()
            return line
        return line + "\r\n"

    def _encode_rows(
        self, rows: Sequence[Sequence[str | int | float]], errors: str = "backslashreplace"
    ) -> bytes:
        self._csv.writerows(rows)
        text = self._text.getvalue()
        self._text.seek(0)
        self._text.truncate()
        # Lone surrogates (from surrogateescape-decoded URLs) are not UTF-8: escape them.
        return text.encode("utf-8", errors)

    def _copy_prefix(self) -> bytes:
        return self._encode_rows([self._columns])

    def _after_truncate(self) -> None:
        if self._writer.position == 0:
            self._writer.append(self._encode_rows([self._columns]))

    def _read_records(self, file: BinaryIO) -> Iterator[SavedRecord]:
        """Rows with as many cells as the header; each held back by one, since only the
        last may be cut short (a complete file ends with a line break)."""
        complete = _ends_with_line_break(file)
        text = io.TextIOWrapper(file, encoding="utf-8", errors=_READ_BACK_ERRORS, newline="")
        try:
            rows = _csv_rows(text)
            header = next(rows, None)
            if header is None or "id" not in header or "ok" not in header:
                return
            previous: list[str] | None = None
            for row in rows:
                if previous is not None and len(previous) == len(header):
                    yield self._saved(header, previous)
                previous = row
            if previous is not None and complete and len(previous) == len(header):
                yield self._saved(header, previous)
        finally:
            text.detach()  # the file is the caller's to close

    def _saved(self, header: list[str], row: list[str]) -> SavedRecord:
        data = self._encode_rows([row], _READ_BACK_ERRORS)
        return SavedRecord(row[header.index("id")], row[header.index("ok")] == "true", data)
