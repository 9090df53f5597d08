"""CSV input: a header row with a ``url`` column, then one request a record.

Optional columns ``method``, ``id`` and ``body`` (matched case-insensitively) fill those
fields; every other column goes into ``meta`` as ``{column: value}``. Quoted fields may
span lines; a record's line number is the line it starts on.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from .._errors import InputError
from .._models import InvalidInput, Request
from .._settings import RequestDefaults
from .reader import MAX_LINE_BYTES, LineStream
from .spec import build_request, invalid_input

# A record may span lines only inside quotes; an unbalanced quote would otherwise swallow
# the rest of the input into one record (re-parsed on every batch: quadratic time).
MAX_RECORD_CHARS = 1024 * 1024
KNOWN_COLUMNS = ("url", "method", "id", "body")


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    text: str  # decoded, with a "\n" for the csv module to end records on
    problem: str | None


@dataclass(frozen=True, slots=True)
class CsvRecord:
    """One CSV record (its fields), or the reason it could not be read."""

    line: int
    fields: list[str]
    raw: str
    problem: str | None = None


class _Feed(Iterator[str]):
    """The lines csv.reader pulls from; it remembers which ones the current record took."""

    def __init__(self) -> None:
        self.lines: deque[_Line] = deque()
        self.taken: list[_Line] = []
        self.starved = False

    def __next__(self) -> str:
        if not self.lines:
            self.starved = True
            raise StopIteration
        line = self.lines.popleft()
        self.taken.append(line)
        return line.text

    def begin_record(self) -> None:
        self.taken, self.starved = [], False

    def put_back(self) -> None:
        self.lines.extendleft(reversed(self.taken))
        self.taken = []

    def taken_chars(self) -> int:
        return sum(len(line.text) for line in self.taken)

    def record(self, fields: list[str], problem: str | None = None) -> CsvRecord:
        raw = "".join(line.text for line in self.taken).rstrip("\n")
        problem = problem or next((ln.problem for ln in self.taken if ln.problem), None)
        number = self.taken[0].number if self.taken else 0
        return CsvRecord(number, fields, raw[:1024], problem)


def _decode(number: int, data: bytes, too_long: bool) -> _Line:
    if too_long:
        return _Line(number, "\n", f"line {number} is longer than {MAX_LINE_BYTES} bytes")
    try:
        return _Line(number, data.decode("utf-8") + "\n", None)
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", "replace") + "\n"
        return _Line(number, text, f"line {number} is not valid UTF-8 ({exc.reason})")


async def csv_record_batches(stream: LineStream) -> AsyncGenerator[list[CsvRecord], None]:
    """The input's records, a non-empty list per batch of lines read.

    A record spanning lines is joined, and comes with the batch that completes it.
    """
    feed = _Feed()
    eof = False
    while not (eof and not feed.lines):
        if not eof:
            batch = await stream.next_lines()
            eof = batch is None
            if batch is not None:
                cut = batch.cut
                feed.lines.extend(
                    _decode(number, data, number in cut)
                    for number, data in enumerate(batch.lines, batch.first)
                )
        reader = csv.reader(feed)
        records: list[CsvRecord] = []
        while (record := _next_record(reader, feed, eof)) is not None:
            records.append(record)
        if records:
            yield records


def _next_record(reader: Iterator[list[str]], feed: _Feed, eof: bool) -> CsvRecord | None:
    """The next complete record, or None when the buffered lines are used up."""
    feed.begin_record()
    try:
        fields = next(reader)
    except StopIteration:
        fields = []
    except csv.Error as exc:
        return feed.record([], f"bad CSV: {exc}")
    if not feed.starved:
        return feed.record(fields)
    if not feed.taken:
        return None
    if eof:
        return feed.record(fields, "bad CSV: unterminated quoted field at end of input")
    if feed.taken_chars() > MAX_RECORD_CHARS:
        return feed.record([], f"CSV record is longer than {MAX_RECORD_CHARS} characters")
    feed.put_back()  # the record continues in the next batch; parse it again then
    return None


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """Where the known columns are, and which other columns go into meta."""

    width: int
    known: dict[str, int]
    meta_columns: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, fields: Sequence[str], line: int) -> CsvHeader:
        """Read a header row; raise InputError if it has no url column or duplicates."""
        names = [field.strip() for field in fields]
        lowered = [name.lower() for name in names]
        duplicates = sorted({name for name in lowered if lowered.count(name) > 1})
        if duplicates:
            raise InputError(f"CSV header repeats column(s) {', '.join(duplicates)}", line)
        if "url" not in lowered:
            raise InputError(
                f"CSV input needs a header row with a 'url' column; line {line} has "
                f"columns {', '.join(names)[:200]}",
                line,
            )
        known = {name: lowered.index(name) for name in KNOWN_COLUMNS if name in lowered}
        meta = tuple((i, names[i]) for i, name in enumerate(lowered) if name not in known)
        return cls(width=len(names), known=known, meta_columns=meta)

    def spec(self, fields: Sequence[str]) -> dict[str, Any]:
        """The request spec of one data row."""
        if len(fields) > self.width:
            raise InputError(f"row has {len(fields)} fields but the header has {self.width}")

        def cell(index: int) -> str:
            return fields[index] if index < len(fields) else ""

        spec: dict[str, Any] = {"url": cell(self.known["url"]).strip()}
        for name in ("method", "id"):
            if name in self.known and cell(self.known[name]).strip():
                spec[name] = cell(self.known[name]).strip()
        if "body" in self.known and cell(self.known["body"]):
            spec["body"] = cell(self.known["body"])
        if self.meta_columns:
            spec["meta"] = {name: cell(index) for index, name in self.meta_columns}
        return spec


async def parse_csv_batches(
    stream: LineStream, defaults: RequestDefaults
) -> AsyncGenerator[list[Request | InvalidInput], None]:
    """Per batch of lines read, a Request or InvalidInput for each data record in a list.

    Raises InputError when the header row has no url column: no record can be read then
    (the InvalidInputs of bad records before it are yielded first).
    """
    rows = _CsvRows(defaults)
    async with aclosing(csv_record_batches(stream)) as batches:
        async for records in batches:
            items, header_error = rows.take(records)
            if items:
                yield items
            if header_error is not None:
                raise header_error


class _CsvRows:
    """Records to items: the first record that is not blank, a comment or bad is the header."""

    def __init__(self, defaults: RequestDefaults) -> None:
        self._defaults = defaults
        self._header: CsvHeader | None = None

    def take(
        self, records: list[CsvRecord]
    ) -> tuple[list[Request | InvalidInput], InputError | None]:
        """The items of ``records``, and the error of a bad header row (reading ends there)."""
        items: list[Request | InvalidInput] = []
        for record in records:
            if record.problem is None and not any(field.strip() for field in record.fields):
                continue  # blank record
            if self._header is not None:
                items.append(csv_row(record, self._header, self._defaults))
            elif record.problem is not None:
                items.append(invalid_input(record.line, record.problem, record.raw))
            elif not record.raw.lstrip().startswith("#"):
                try:
                    self._header = CsvHeader.parse(record.fields, record.line)
                except InputError as exc:
                    return items, exc
        return items, None


def csv_row(
    record: CsvRecord, header: CsvHeader, defaults: RequestDefaults
) -> Request | InvalidInput:
    """The request of one data record, or its InvalidInput."""
    if record.problem is not None:
        return invalid_input(record.line, record.problem, record.raw)
    try:
        spec = header.spec(record.fields)
    except InputError as exc:
        return invalid_input(record.line, exc.message, record.raw)
    try:
        return build_request(spec, line=record.line, defaults=defaults)
    except InputError as exc:
        return invalid_input(record.line, exc.message, record.raw, spec)
