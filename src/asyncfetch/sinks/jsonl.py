"""JSON Lines: one schema v1 record per line, in the stable key order of ``to_record``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from .._models import Result
from ._files import (
    DEFAULT_BATCH_BYTES,
    BufferedFileSink,
    FileWriter,
    open_output,
    stdout_stream,
)
from ._records import encode_lines_into
from .base import SavedRecord


class JsonlSink(BufferedFileSink):
    """Writes records as JSON Lines to a file or to stdout.

    Lines are buffered and written in batches of whole lines; ``flush(durable=True)``
    also fsyncs (a no-op beyond flushing for stdout). Write failures raise OutputError.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        name: str,
        owns_stream: bool,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        self._writer = FileWriter(stream, name, owns_stream=owns_stream, batch_bytes=batch_bytes)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, append: bool = False) -> JsonlSink:
        """A sink writing to ``path``: truncated, or appended to when ``append``."""
        target = Path(path)
        return cls(open_output(target, append=append), name=str(target), owns_stream=True)

    @classmethod
    def stdout(cls) -> JsonlSink:
        """A sink writing to ``sys.stdout.buffer``, which it never closes."""
        return cls(stdout_stream(), name="stdout", owns_stream=False)

    def _encode(self, results: Sequence[Result]) -> bytes:
        buffer = bytearray()
        encode_lines_into(buffer, results)
        return bytes(buffer)

    def _encode_into(self, buffer: bytearray, results: Sequence[Result]) -> None:
        encode_lines_into(buffer, results)

    def _read_records(self, file: BinaryIO) -> Iterator[SavedRecord]:
        for line in file:
            if not line.endswith(b"\n"):
                return  # a torn last line: not a record
            try:
                record = orjson.loads(line)
                yield SavedRecord(str(record["id"]), bool(record["ok"]), line)
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a damaged line in the middle: dropped, so its request is redone
