"""estimate_total: a quick count of the requests in an input, for progress bars."""

from __future__ import annotations

import os
import re
import stat
from typing import BinaryIO

from .detect import check_format, detect_format
from .reader import MAX_SNIFF_BYTES, STDIN, is_candidate

MAX_ESTIMATE_BYTES = 512 * 1024 * 1024
_CHUNK = 1024 * 1024
# Lines that yield nothing: blank, or a "#" comment (for CSV: blank only, but a comment
# line there is rare enough that counting it out is harmless for an estimate).
_SKIPPED_LINE = re.compile(rb"^[ \t\r\f\v]*(?:#|$)", re.MULTILINE)


def estimate_total(path: str | os.PathLike[str], input_format: str | None) -> int | None:
    """Roughly how many requests a regular file holds, or None if that is not cheap.

    None for stdin, pipes, unreadable files and files over 512 MiB. Blank and ``#``
    lines are not counted, nor a CSV header; a CSV record spanning several lines is
    counted once per line. Blocking: run it in a thread.
    """
    name = os.fspath(path)
    if name == STDIN:
        return None
    try:
        info = os.stat(name)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ESTIMATE_BYTES:
            return None
        with open(name, "rb") as file:
            input_format = check_format(input_format) or detect_format(name, _sniff(file))
            file.seek(0)
            count = _count_lines(file)
    except OSError:
        return None  # only an estimate: the reader itself reports the real problem
    return max(count - 1, 0) if input_format == "csv" else count


def _sniff(file: BinaryIO) -> bytes | None:
    while file.tell() < MAX_SNIFF_BYTES and (line := file.readline(MAX_SNIFF_BYTES)):
        if is_candidate(line):
            return line
    return None


def _count_lines(file: BinaryIO) -> int:
    count = 0
    tail = b""
    while chunk := file.read(_CHUNK):
        data = tail + chunk
        end = data.rfind(b"\n")
        # Count whole lines only, so a line cut by the chunk boundary is counted once.
        tail, data = data[end + 1 :], data[:end]
        if end >= 0:
            count += _count_in(data)
    return count + (_count_in(tail) if tail else 0)


def _count_in(lines: bytes) -> int:
    """Request lines in ``lines``: whole lines without the final newline."""
    return lines.count(b"\n") + 1 - len(_SKIPPED_LINE.findall(lines))
