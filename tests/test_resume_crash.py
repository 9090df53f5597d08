"""Crash safety: kill -9 at random moments, full disks; the invariant survives them all.

The long version of the kill test is benchmarks/crash_resume.py (20,000 requests, 25
kills); this one is short enough for the suite. Its seed is in every failure message.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_helpers import run_cli, start_cli
from .recording_server import RecordingServer
from .resume_checks import (
    assert_exactly_once,
    assert_journal_consistent,
    flat,
    ids_of,
    kill_at_random,
    run_limited,
    write_urls,
)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
async def test_kill_9_at_random_moments_then_resume(
    server: RecordingServer, tmp_path: Path, suffix: str
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    urls = [server.url(f"/delay/{n % 7}?n={n}") for n in range(3000)]
    source = write_urls(tmp_path / "urls.txt", urls + rng.sample(urls, 30))
    out = tmp_path / f"out.{suffix}"
    args = ("fetch", str(source), "-o", str(out), "--resume", "-q", "-c", "50")
    args += ("--per-host", "50")
    kills = in_flight_kills = 0
    while kills < 6:
        killed, in_flight = await kill_at_random(server, await start_cli(*args), rng)
        if not killed:
            break
        kills += 1
        in_flight_kills += in_flight > 0
        assert_journal_consistent(out)
    final = await run_cli(*args)
    context = f"seed {seed}, {kills} kills ({in_flight_kills} with requests in flight)"
    assert final.code == 0, f"{context}: {final.stderr}"
    try:
        assert_exactly_once(out, ids_of(urls))
    except AssertionError as error:
        raise AssertionError(f"{context}: {error}") from error


@pytest.mark.parametrize(
    ("path", "limit"), [("/bytes/3000", 150_000), ("/ok", 48_000)], ids=["output", "journal"]
)
async def test_file_size_limit_stops_with_exit_3_then_resume_completes(
    server: RecordingServer, tmp_path: Path, path: str, limit: int
) -> None:
    # RLIMIT_FSIZE makes writes past the limit fail (EFBIG), like a full disk. With big
    # records the output hits it first; with small ones the journal's WAL does.
    urls = [server.url(f"{path}?n={n}") for n in range(300)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    args = ("fetch", str(source), "-o", str(out), "--resume", "-q", "--body", "text")
    stopped = await run_limited(*args, max_file_bytes=limit)
    assert stopped.code == 3, stopped.stderr
    message = flat(stopped.stderr)
    assert "fatal" in message and "Traceback" not in message
    assert "run the same command to resume" in message
    assert_journal_consistent(out)
    resumed = await run_limited(*args)
    assert resumed.code == 0, resumed.stderr
    assert_exactly_once(out, ids_of(urls))


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_full_disk_then_freeing_space_resumes(
    server: RecordingServer, tmp_path: Path, tiny_filesystem: Path
) -> None:
    urls = [server.url(f"/bytes/3000?n={n}") for n in range(200)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tiny_filesystem / "out.jsonl"
    args = ("fetch", str(source), "-o", str(out), "--resume", "-q", "--body", "text")
    stopped = await run_cli(*args)
    assert stopped.code == 3, stopped.stderr
    # Whichever fills the disk first, output or journal, the message says so.
    message = flat(stopped.stderr)
    assert "No space left on device" in message or "disk is full" in message, message
    assert_journal_consistent(out)
    # "Free some space": grow the file system, then run the same command again.
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_filesystem)], check=True)
    resumed = await run_cli(*args)
    assert resumed.code == 0, resumed.stderr
    assert_exactly_once(out, ids_of(urls))
