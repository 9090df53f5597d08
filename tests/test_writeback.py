"""The buffered writer starts the kernel's write-out of its file every MiB.

The real ``os.posix_fadvise`` does the work; the tests wrap it to see which ranges were
handed over, and check the file's bytes, which the advice must never change.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from asyncfetch.sinks._files import WRITEBACK_STEP, FileWriter

LINE = b"x" * 1023 + b"\n"  # 1 KiB


class Recorder:
    def __init__(self, fail_with: int | None = None) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.fail_with = fail_with

    def __call__(self, fd: int, offset: int, length: int, advice: int) -> None:
        self.ranges.append((offset, length))
        if self.fail_with is not None:
            raise OSError(self.fail_with, os.strerror(self.fail_with))
        os.posix_fadvise(fd, offset, length, advice)


async def write_lines(writer: FileWriter, count: int) -> None:
    for n in range(count):
        writer.append(LINE)
        if n % 64 == 63:
            await writer.flush()  # 64 KiB flushes, as a run's writer makes them
    await writer.flush(durable=True)
    await writer.aclose()


async def test_write_out_is_started_every_mib_over_contiguous_ranges(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    recorder = Recorder()
    lines = 3 * 1024 + 500  # 3.5 MiB
    with open(target, "wb", buffering=0) as stream:
        await write_lines(FileWriter(stream, "out", owns_stream=False, writeback=recorder), lines)
    assert target.read_bytes() == LINE * lines
    assert len(recorder.ranges) == 3
    covered = 0
    for offset, length in recorder.ranges:
        assert offset == covered and length >= WRITEBACK_STEP
        covered += length
    assert covered <= target.stat().st_size


async def test_appending_starts_after_what_the_file_had(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")
    recorder = Recorder()
    with open(target, "ab", buffering=0) as stream:
        await write_lines(FileWriter(stream, "out", owns_stream=False, writeback=recorder), 1100)
    assert target.read_bytes() == b"old\n" + LINE * 1100
    assert recorder.ranges[0][0] == len(b"old\n")


async def test_a_refused_hint_is_not_asked_again_and_loses_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    recorder = Recorder(fail_with=errno.EINVAL)
    lines = 3 * 1024
    with open(target, "wb", buffering=0) as stream:
        await write_lines(FileWriter(stream, "out", owns_stream=False, writeback=recorder), lines)
    assert target.read_bytes() == LINE * lines
    assert len(recorder.ranges) == 1


async def test_no_hint_for_a_pipe() -> None:
    recorder = Recorder()
    read_end, write_end = os.pipe()
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with open(write_end, "wb", buffering=0) as stream:
        writer = FileWriter(stream, "pipe", owns_stream=False, writeback=recorder)
        await write_lines(writer, 2048)
    reader.join(timeout=10)
    os.close(read_end)
    assert bytes(received) == LINE * 2048
    assert recorder.ranges == []
