"""A buffered, append-only byte writer shared by the line-oriented sinks (JSONL, CSV).

Callers hand it whole lines; it writes them in batches, off the event loop when a batch
is large or the target may block (a pipe), and never leaves a torn line behind in a
regular file: a failed write is cut back to the last committed length.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

from .._errors import OutputClosed, OutputError, caused_by
from .._models import Result
from .base import KeepRecords, SavedRecord, StagedRewrite

DEFAULT_BATCH_BYTES = 1024 * 1024
# Below this a write to a regular file takes microseconds; a thread hop would cost more.
INLINE_WRITE_BYTES = 64 * 1024
# Every this many bytes written to a regular file, the kernel is asked to start writing
# them to disk (see FileWriter._start_writeback).
WRITEBACK_STEP: Final = 1024 * 1024
# Linux starts an asynchronous write-out of a dirty range for this advice and drops only
# the pages that are already clean; those it has just queued stay cached (fincore shows
# a whole 24 MB output resident after the run). None: no such call.
Fadvise = Callable[[int, int, int, int], None]
_FADVISE: Final[Fadvise | None] = getattr(os, "posix_fadvise", None)
_DONTNEED: Final[int] = getattr(os, "POSIX_FADV_DONTNEED", 0)
# A rewrite of OUT (resume: --retry-failed, rebuilds) is staged in OUT.rewrite.
REWRITE_SUFFIX: Final = ".rewrite"


def describe_os_error(exc: OSError) -> str:
    """The human part of an OSError (``No space left on device``), without the errno."""
    if isinstance(exc, BrokenPipeError):
        return "the reader closed the pipe (broken pipe)"
    return exc.strerror or str(exc) or type(exc).__name__


def open_output(path: Path, *, append: bool) -> BinaryIO:
    """Open ``path`` for writing bytes, unbuffered; OSError becomes OutputError."""
    if not path.parent.is_dir():
        raise OutputError(f"cannot open output file {path}: directory {path.parent} not found")
    try:
        return open(path, "ab" if append else "wb", buffering=0)
    except OSError as exc:
        raise caused_by(
            OutputError(f"cannot open output file {path}: {describe_os_error(exc)}"), exc
        )


def stdout_stream() -> BinaryIO:
    """The process's binary stdout, looked up at call time (tests swap ``sys.stdout``)."""
    return sys.stdout.buffer


def _is_regular_file(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        # Captured or in-memory streams have no descriptor: treat them like a pipe.
        return False


def _write_all(stream: BinaryIO, data: bytes | bytearray) -> None:
    # Unbuffered files may accept part of the data; loop until all of it is written.
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if written is None:  # a non-blocking stream that would block: not ours to spin on
            raise BlockingIOError("output stream would block")
        view = view[written:]
    stream.flush()


class FileWriter:
    """Buffers whole lines and writes them to one stream in order."""

    def __init__(
        self,
        stream: BinaryIO,
        name: str,
        *,
        owns_stream: bool,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        writeback: Fadvise | None = _FADVISE,
    ) -> None:
        """``writeback`` is ``os.posix_fadvise`` (or None not to start write-outs early)."""
        self._stream = stream
        self._name = name
        self._owns_stream = owns_stream
        self._batch_bytes = batch_bytes
        self._regular = _is_regular_file(stream)
        self._position = os.fstat(stream.fileno()).st_size if self._regular else 0
        self._written_back = self._position  # write-out started up to here
        self._fadvise = writeback if self._regular else None
        self._buffer = bytearray()
        self._lock = asyncio.Lock()
        self._failure: OutputError | None = None
        self._closed = False
        self._threaded_write: asyncio.Future[None] | None = None

    @property
    def position(self) -> int:
        """Bytes of the file known to be written (the size after the last flush)."""
        return self._position

    @property
    def name(self) -> str:
        """The file's path, or ``stdout``."""
        return self._name

    def truncate(self, position: int) -> int:
        """Cut the file back to ``position`` and fsync it (blocking); returns bytes dropped.

        What is buffered is dropped too: it would have been written after ``position``.
        """
        self._check_usable()
        self._buffer = bytearray()
        size = os.fstat(self._stream.fileno()).st_size
        if size <= position:
            return 0
        try:
            os.ftruncate(self._stream.fileno(), position)
            os.fsync(self._stream.fileno())
        except OSError as exc:
            raise caused_by(
                OutputError(f"cannot truncate {self._name}: {describe_os_error(exc)}"), exc
            )
        self._position = self._written_back = position
        return size - position

    def append(self, data: bytes) -> bool:
        """Buffer whole lines; True when the buffer is large enough to be written out."""
        self._check_usable()
        self._buffer += data
        return len(self._buffer) >= self._batch_bytes

    def append_with(self, fill: Callable[[bytearray], None]) -> bool:
        """Let ``fill`` append whole lines to the buffer in place; like :meth:`append`.

        Encoders write straight into the buffer rather than handing over a joined copy.
        If ``fill`` raises, what it appended is removed, so no partial batch is kept.
        """
        self._check_usable()
        buffer = self._buffer
        start = len(buffer)
        try:
            fill(buffer)
        except BaseException:
            del buffer[start:]
            raise
        return len(buffer) >= self._batch_bytes

    async def flush(self, *, durable: bool = False) -> None:
        """Write the buffer; with ``durable``, fsync before returning."""
        self._check_usable()
        if (
            not durable
            and self._regular
            and len(self._buffer) <= INLINE_WRITE_BYTES
            and not self._lock.locked()
            and self._threaded_write is None
        ):
            # The common small flush, with no other flush under way and no threaded
            # write left by a cancelled one: write at once, without awaiting, so nothing
            # can come in between and the lock is not needed.
            data, self._buffer = self._buffer, bytearray()
            if data:
                self._commit(data, durable=False)
            return
        async with self._lock:
            await self._settle()
            self._check_usable()
            # Hand the filled buffer over instead of copying it; new lines go to a new one.
            data, self._buffer = self._buffer, bytearray()
            if not data and not (durable and self._regular):
                return
            if self._regular and len(data) <= INLINE_WRITE_BYTES and not durable:
                self._commit(data, durable=False)
                return
            # Shielded: if our caller is cancelled the thread still finishes the write,
            # and the next flush or close waits for it instead of writing alongside it.
            self._threaded_write = asyncio.ensure_future(
                asyncio.to_thread(self._commit, data, durable=durable)
            )
            await asyncio.shield(self._threaded_write)
            self._threaded_write = None

    async def aclose(self) -> None:
        """Flush what is buffered and close the stream if it is ours (never stdout)."""
        if self._closed:
            return
        try:
            if self._failure is None:
                await self.flush()
        finally:
            await self._settle()
            self._closed = True
            if self._owns_stream:
                self._stream.close()

    async def _settle(self) -> None:
        """Wait for a threaded write left running by a cancelled flush."""
        pending, self._threaded_write = self._threaded_write, None
        if pending is None:
            return
        await asyncio.wait({pending})
        if not pending.cancelled():
            # Its OutputError, if any, is already kept in self._failure; this only marks
            # the exception as retrieved so asyncio does not log it a second time.
            pending.exception()

    def _check_usable(self) -> None:
        if self._closed:
            raise OutputError(f"cannot write to {self._name}: the sink is closed")
        failure = self._failure
        if failure is not None:
            # The first failure's reason ("No space left on device"), not a vaguer one.
            raise type(failure)(str(failure))

    def _commit(self, data: bytes | bytearray, *, durable: bool) -> None:
        try:
            _write_all(self._stream, data)
            if durable and self._regular:
                os.fsync(self._stream.fileno())
        except OSError as exc:
            message = f"cannot write results to {self._name}: {describe_os_error(exc)}"
            kind = OutputClosed if isinstance(exc, BrokenPipeError) else OutputError
            failure = kind(message + self._cut_back())
            self._failure = failure
            raise caused_by(failure, exc)
        self._position += len(data)
        fadvise = self._fadvise
        if fadvise is not None and self._position - self._written_back >= WRITEBACK_STEP:
            self._start_writeback(fadvise)

    def _start_writeback(self, fadvise: Fadvise) -> None:
        """Ask the kernel to start writing out what was written since the last call.

        Without it the whole output waited for the final fsync: 16 ms at the end of the
        benchmark's 50,000 records, 70 ms for 24 MB written in one go, time in which
        nothing else happens. Started every MiB, the write-out runs alongside the
        requests and the fsync finds only the tail (PostgreSQL's ``*_flush_after``
        settings do the same). The call returns at once; it changes no byte of the file.
        """
        start = self._written_back
        try:
            fadvise(self._stream.fileno(), start, self._position - start, _DONTNEED)
        except OSError:
            # Only advice: a file system that refuses it leaves the work to the fsync.
            self._fadvise = None
            return
        self._written_back = self._position

    def _cut_back(self) -> str:
        """Truncate to the committed length; returns a note for the error message."""
        # A partial write leaves half a line; remove it so the file ends on a record
        # boundary. Pipes and devices cannot be truncated, and what they got is gone.
        if not self._regular:
            return ""
        try:
            self._stream.truncate(self._position)
        except OSError as exc:
            return f" (and it may end with a partial line: {describe_os_error(exc)})"
        return ""


class BufferedFileSink:
    """What the JSONL and CSV sinks share: whole-line batches through one FileWriter.

    Subclasses say how results become bytes (:meth:`_encode`); writing, flushing,
    durability and the committed length live here once.
    """

    _writer: FileWriter

    @property
    def position(self) -> int:
        """The committed byte length of the output after the last flush."""
        return self._writer.position

    async def size(self) -> int:
        """Same as :attr:`position`; an async method shared with the SQLite sink."""
        return self._writer.position

    # -- ResumableSink (sinks/base.py): what the resume journal asks of the output --

    @property
    def path(self) -> Path:
        """The output file (``stdout`` for a sink writing to stdout, which cannot resume)."""
        return Path(self._writer.name)

    @property
    def position_unit(self) -> str:
        return "bytes"

    async def committed_position(self) -> int:
        """The committed byte length of the output after the last flush."""
        return self._writer.position

    async def truncate(self, position: int) -> int:
        """Cut the output back to ``position`` bytes, durably; returns the bytes dropped."""
        dropped = await asyncio.to_thread(self._writer.truncate, position)
        self._after_truncate()
        return dropped

    def read_back(self) -> Iterator[SavedRecord]:
        """The output's whole, well-formed records, in order (blocking)."""
        with open(self.path, "rb") as file:
            yield from self._read_records(file)

    def stage_rewrite(self, keep: KeepRecords, batch_size: int) -> StagedRewrite:
        """Write the records ``keep`` keeps to ``OUT.rewrite`` and fsync it (blocking)."""
        copy = self.path.with_name(self.path.name + REWRITE_SUFFIX)
        with open(copy, "wb") as out:
            out.write(self._copy_prefix())
            batch: list[SavedRecord] = []
            for record in self.read_back():
                batch.append(record)
                if len(batch) >= batch_size:
                    out.write(b"".join(kept.data for kept in keep(batch)))
                    batch = []
            out.write(b"".join(kept.data for kept in keep(batch)) if batch else b"")
            out.flush()
            os.fsync(out.fileno())
            return StagedRewrite(out.tell(), copy)

    async def write(self, results: Sequence[Result]) -> None:
        """Buffer the records; write them out once a batch has accumulated."""
        if self._writer.append_with(lambda buffer: self._encode_into(buffer, results)):
            await self._writer.flush()

    async def flush(self, *, durable: bool = False) -> None:
        """Write everything buffered; with ``durable``, fsync before returning."""
        await self._writer.flush(durable=durable)

    async def aclose(self) -> None:
        """Flush and close (stdout is flushed but left open)."""
        await self._writer.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _encode(self, results: Sequence[Result]) -> bytes:
        raise NotImplementedError

    def _read_records(self, file: BinaryIO) -> Iterator[SavedRecord]:
        """Parse ``file`` back into records; a format's own reader (see read_back)."""
        raise NotImplementedError

    def _copy_prefix(self) -> bytes:
        """What a rewritten copy starts with before its records (CSV: the header row)."""
        return b""

    def _after_truncate(self) -> None:
        """Restore what an empty output must start with (CSV: the header row)."""

    def _encode_into(self, buffer: bytearray, results: Sequence[Result]) -> None:
        """Append the encoded records to ``buffer``; override to skip the extra copy."""
        buffer += self._encode(results)
