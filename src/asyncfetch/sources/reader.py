"""Raw input: physical lines of a file or stdin, read in batches off the event loop.

Reads happen in a worker thread so a slow pipe never blocks the event loop; splitting and
parsing happen in the loop, one batch (about 64 KiB) at a time, so memory stays bounded by
the batch size and the longest line, never by the number of lines.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO, NamedTuple, TypeVar

from .._errors import InputError, caused_by

CHUNK_SIZE = 64 * 1024
# Long enough for a JSONL spec carrying a sizeable body, short enough that one runaway
# line (a binary file given by mistake) cannot exhaust memory.
MAX_LINE_BYTES = 64 * 1024 * 1024
# How much input the format sniffer may hold back while looking for a meaningful line.
MAX_SNIFF_BYTES = 1024 * 1024
BOM = b"\xef\xbb\xbf"
STDIN = "-"
# How much of an input's start decides whether it is binary (grep looks at as much).
BINARY_SNIFF_BYTES = 8192
# Control bytes that text files do hold; any other (NUL above all) is a sign of binary.
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\b\x1b")
_BINARY_SHARE = 0.1

ReadChunk = Callable[[int], bytes]
T = TypeVar("T")


class RawLine(NamedTuple):
    """One physical input line without its line ending; 1-based ``number``.

    When ``too_long`` is set, ``data`` holds only the start of the line.
    """

    number: int
    data: bytes
    too_long: bool = False


class LineBatch(NamedTuple):
    """Consecutive physical lines, numbered from ``first``, without their line endings.

    ``cut`` holds the numbers of lines longer than the cap; ``lines`` has only their
    start. One list of bytes instead of a RawLine per line: parsers that walk lines in a
    tight loop (plain text above all) spend much less per line this way.
    """

    first: int
    lines: list[bytes]
    cut: frozenset[int]

    def raw_lines(self) -> list[RawLine]:
        cut = self.cut
        return [
            RawLine(number, data, number in cut)
            for number, data in enumerate(self.lines, self.first)
        ]


class LineSplitter:
    """Splits a byte stream into RawLines, chunk by chunk, with a cap on line length."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max_line = max_line
        self._pieces: list[bytes] = []
        self._size = 0
        self._too_long = False
        self._next_number = 1

    def feed(self, chunk: bytes) -> list[RawLine]:
        """The lines completed by ``chunk``; its unfinished tail is kept for later."""
        return self.feed_lines(chunk).raw_lines()

    def finish(self) -> list[RawLine]:
        """The last line, if the input did not end with a newline."""
        return self.finish_lines().raw_lines()

    def feed_lines(self, chunk: bytes) -> LineBatch:
        """Like :meth:`feed`, as one LineBatch: no object per line is made here."""
        *lines, tail = chunk.split(b"\n")
        first = self._next_number
        cut: set[int] = set()
        if lines:
            # Only the first line can continue earlier chunks or carry the BOM.
            self._append(lines[0])
            if self._too_long:
                cut.add(first)
            lines[0] = self._take_line()
            self._finish_whole_lines(lines, first, cut, strip_cr=b"\r" in chunk)
        self._append(tail)
        return LineBatch(first, lines, frozenset(cut))

    def finish_lines(self) -> LineBatch:
        """Like :meth:`finish`, as a LineBatch (empty if nothing is left)."""
        first = self._next_number
        if self._size == 0 and not self._too_long:
            return LineBatch(first, [], frozenset())
        cut = frozenset({first}) if self._too_long else frozenset()
        return LineBatch(first, [self._take_line()], cut)

    def _finish_whole_lines(
        self, lines: list[bytes], first: int, cut: set[int], *, strip_cr: bool
    ) -> None:
        """Cap ``lines[1:]``, which lie whole inside one chunk, and strip their CRs."""
        count = len(lines)
        self._next_number = first + count
        # Both loops are rare: max() and the caller's "\r" test run in C.
        if count > 1 and max(map(len, lines)) > self._max_line:
            for index in range(1, count):
                if len(lines[index]) > self._max_line:
                    lines[index] = lines[index][:1024]
                    cut.add(first + index)
        if strip_cr:
            for index in range(1, count):
                if lines[index].endswith(b"\r"):
                    lines[index] = lines[index][:-1]

    def _append(self, piece: bytes) -> None:
        if self._too_long or not piece:
            return
        self._size += len(piece)
        if self._size > self._max_line:
            # Keep only an excerpt of a runaway line; the rest is dropped as it arrives.
            self._pieces = [(b"".join(self._pieces) + piece[:1024])[:1024]]
            self._too_long = True
        else:
            self._pieces.append(piece)

    def _take_line(self) -> bytes:
        """The line gathered so far (the caller notes whether it was cut), then reset."""
        data = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        if data.endswith(b"\r"):
            data = data[:-1]
        if self._next_number == 1 and data.startswith(BOM):
            data = data[len(BOM) :]
        self._next_number += 1
        self._pieces, self._size, self._too_long = [], 0, False
        return data


def is_candidate(data: bytes) -> bool:
    """Whether a line carries content: not blank and not a ``#`` comment."""
    stripped = data.strip()
    return bool(stripped) and not stripped.startswith(b"#")


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of an input are those of a binary file.

    Over a tenth of the sample being control bytes or invalid UTF-8 marks a binary file
    (an executable, an image, a compressed list); one bad line in a text file does not,
    and stays an ``invalid_input`` record of its own.
    """
    sample = head[:BINARY_SNIFF_BYTES]
    if not sample:
        return False
    controls = sum(1 for byte in sample if (byte < 0x20 or byte == 0x7F)) - sum(
        sample.count(byte) for byte in _TEXT_CONTROLS
    )
    invalid = sample.decode("utf-8", "replace").count("\ufffd") - sample.count("\ufffd".encode())
    return controls + invalid > _BINARY_SHARE * len(sample)


def binary_input_error(name: str) -> InputError:
    return InputError(
        f"{name} looks like a binary file, not URL lines, JSONL or CSV;"
        " give the list of requests instead"
    )


def check_not_binary(path: str | os.PathLike[str]) -> None:
    """Raise InputError for a file that looks binary (see :func:`looks_binary`)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            head = file.read(BINARY_SNIFF_BYTES)
    except OSError:
        return  # reported, with its reason, when the input is opened for reading
    if looks_binary(head):
        raise binary_input_error(name)


class LineStream:
    """Batches of lines from one binary input; owns (and closes) the file if asked."""

    def __init__(self, file: BinaryIO, *, name: str, close: bool) -> None:
        self.name = name
        self._file = file
        self._close = close
        self._read = _chunk_reader(file)
        self._detached = not _is_regular(file)
        self._splitter = LineSplitter()
        self._held: list[LineBatch] = []
        self._eof = False
        self._first_chunk = True
        # Set by callers that refuse a binary input as a whole (the CLI); the library
        # default keeps the contract that any bytes become requests or invalid_input.
        self.refuse_binary = False

    async def next_batch(self) -> list[RawLine] | None:
        """The next non-empty batch of lines, or None at the end of the input."""
        batch = await self.next_lines()
        return None if batch is None else batch.raw_lines()

    async def next_lines(self) -> LineBatch | None:
        """Like :meth:`next_batch`, as a LineBatch (never an empty one)."""
        if self._held:
            return self._held.pop(0)
        return await self._read_batch()

    async def _read_batch(self) -> LineBatch | None:
        while not self._eof:
            chunk = await self._read_chunk()
            if self._first_chunk:
                self._first_chunk = False
                if self.refuse_binary and looks_binary(chunk):
                    raise binary_input_error(self.name)
            if chunk:
                batch = self._splitter.feed_lines(chunk)
            else:
                self._eof = True
                batch = self._splitter.finish_lines()
            if batch.lines:
                return batch
        return None

    async def first_candidate(self) -> bytes | None:
        """The first non-blank, non-comment line, read ahead without consuming it."""
        held_bytes = 0
        while held_bytes <= MAX_SNIFF_BYTES:
            batch = await self._read_batch()
            if batch is None:
                return None
            self._held.append(batch)
            held_bytes += sum(map(len, batch.lines)) + len(batch.lines)
            for data in batch.lines:
                if is_candidate(data):
                    return data
        return None

    def close(self) -> None:
        """Close the file if this stream opened it (stdin stays open)."""
        if self._close:
            self._file.close()

    async def _read_chunk(self) -> bytes:
        try:
            if self._detached:
                return await run_detached(lambda: self._read(CHUNK_SIZE))
            return await asyncio.to_thread(self._read, CHUNK_SIZE)
        except (OSError, ValueError) as exc:
            raise caused_by(InputError(f"cannot read {self.name}: {exc}"), exc)


def _chunk_reader(file: BinaryIO) -> ReadChunk:
    # read1 returns as soon as some bytes are there, so a slow producer's lines are handled
    # when they arrive instead of once 64 KiB have piled up.
    read1: ReadChunk | None = getattr(file, "read1", None)
    return read1 if read1 is not None else file.read


def _is_regular(file: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):
        return False


async def run_detached(call: Callable[[], T]) -> T:
    """Run one blocking call (a read or open of a pipe) in a daemon thread.

    Reading a pipe or terminal can block forever. In the default executor such a thread
    would make ``asyncio.run`` (and interpreter exit) wait for it after Ctrl-C; a daemon
    thread is simply abandoned.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: tuple[T] | None, error: Exception | None) -> None:
        if future.done():  # the awaiting task was cancelled meanwhile
            return
        if result is not None:
            future.set_result(result[0])
        else:
            future.set_exception(error or RuntimeError("detached call returned nothing"))

    def work() -> None:
        result: tuple[T] | None = None
        error: Exception | None = None
        try:
            result = (call(),)
        except Exception as exc:  # handed over to the awaiting task, which re-raises it
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            return  # the event loop is closed: nobody is waiting for this read any more

    threading.Thread(target=work, name="asyncfetch-input", daemon=True).start()
    return await future


async def open_stream(path: str | os.PathLike[str]) -> LineStream:
    """Open ``path`` (``"-"`` is stdin) as a LineStream; raise InputError if it cannot be."""
    name = os.fspath(path)
    if name == STDIN:
        if sys.stdin is None:
            raise InputError("stdin is not available in this process")
        return _stdin_stream()
    info = check_readable(name)
    try:
        if stat.S_ISREG(info.st_mode):
            file = _open_binary(name)
        else:
            # Opening a FIFO blocks until a writer shows up.
            file = await run_detached(lambda: _open_binary(name))
    except OSError as exc:
        raise caused_by(InputError(f"cannot open input {name!r}: {exc.strerror or exc}"), exc)
    return LineStream(file, name=repr(name), close=True)


def _stdin_stream() -> LineStream:
    """stdin through a file of our own, on a duplicate of its descriptor, unbuffered.

    A pipe or terminal is read in a daemon thread (:func:`run_detached`) that may still
    be blocked in a read when the process exits after Ctrl-C. Reading ``sys.stdin.buffer``
    there left its lock held, and the interpreter's own flush of stdin at exit then
    aborted the process ("Fatal Python error: _enter_buffered_busy", exit 134 for 130).
    A raw file has no such lock, and sys.stdin is never touched.
    """
    try:
        descriptor = os.dup(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        # No descriptor behind sys.stdin (replaced by an in-memory file): read it as is.
        return LineStream(sys.stdin.buffer, name="stdin", close=False)
    return LineStream(open(descriptor, "rb", buffering=0), name="stdin", close=True)


def _open_binary(name: str) -> BinaryIO:
    # Unbuffered: LineSplitter does its own buffering, and a raw read returns what a pipe
    # has instead of waiting to fill a buffer.
    return open(name, "rb", buffering=0)  # the LineStream closes it


def check_readable(path: str | os.PathLike[str]) -> os.stat_result:
    """Raise InputError unless ``path`` names a readable file; return its stat."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except OSError as exc:
        raise caused_by(InputError(f"cannot open input {name!r}: {exc.strerror or exc}"), exc)
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"input {name!r} is a directory, not a file")
    if not os.access(name, os.R_OK):
        raise InputError(f"cannot open input {name!r}: permission denied")
    return info
