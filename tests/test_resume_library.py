"""Resume as a library feature: ``asyncfetch.fetch_to_file`` killed with SIGKILL, resumed.

The same guarantees as ``fetch --resume``, through the Python API, for every resumable
format: after any kill and a resume, exactly one record per request id.
"""

from __future__ import annotations

import asyncio
import random
import sys
import textwrap
from pathlib import Path

import pytest

import asyncfetch
from asyncfetch import ResumeError

from .cli_helpers import cli_env
from .recording_server import RecordingServer
from .resume_checks import (
    assert_exactly_once,
    assert_journal_consistent,
    ids_of,
    journal_contents,
    kill_at_random,
    records,
    write_urls,
)

FORMATS = ["jsonl", "csv", "sqlite"]

# A program that runs one job through the library, as a user's script would.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import asyncfetch

    urls = open(sys.argv[1]).read().split()
    asyncio.run(asyncfetch.fetch_to_file(urls, sys.argv[2], concurrency=40, per_host=40))
    """
)


async def test_a_job_runs_to_a_file_once_and_a_rerun_skips_it(
    server: RecordingServer, tmp_path: Path, engine: str
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(40)]
    out = tmp_path / "out.jsonl"
    stats = await asyncfetch.fetch_to_file([*urls, urls[0]], out, engine=engine)
    assert (stats.done, stats.duplicates) == (40, 1)
    assert_exactly_once(out, ids_of(urls))
    again = await asyncfetch.fetch_to_file(urls, out, engine=engine)
    assert (again.skipped, again.done) == (40, 0)
    assert server.recorder.hits("/ok") == 40
    assert len(records(out)) == 40


@pytest.mark.parametrize("suffix", FORMATS)
async def test_retry_failed_through_the_library(
    server: RecordingServer, tmp_path: Path, suffix: str
) -> None:
    good = [server.url(f"/ok?n={n}") for n in range(10)]
    flaky = [server.url(f"/flaky/lib{suffix}{n}/1/500") for n in range(3)]
    out = tmp_path / f"out.{suffix}"
    async with asyncfetch.Fetcher(retries=0) as fetcher:
        first = await fetcher.fetch_to_file(good + flaky, out)
        assert first.failed == 3
        retried = await fetcher.fetch_to_file(good + flaky, out, retry_failed=True)
    assert (retried.skipped, retried.done, retried.failed) == (10, 3, 0)
    found = assert_exactly_once(out, ids_of(good + flaky))
    assert all(record["ok"] for record in found)
    assert_journal_consistent(out)


async def test_a_plain_run_overwrites_but_never_a_journaled_output(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(5)]
    plain = tmp_path / "plain.csv"
    plain.write_text("left over\n")
    await asyncfetch.fetch_to_file(urls, plain, resume=False)
    assert_exactly_once(plain, ids_of(urls))
    assert not Path(str(plain) + ".journal").exists()
    journaled = tmp_path / "journaled.jsonl"
    await asyncfetch.fetch_to_file(urls, journaled)
    with pytest.raises(ResumeError, match="belongs to a resumable job"):
        await asyncfetch.fetch_to_file(urls, journaled, resume=False)
    assert_exactly_once(journaled, ids_of(urls))


async def test_a_changed_option_is_refused_unless_forced(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(5)]
    out = tmp_path / "out.jsonl"
    await asyncfetch.fetch_to_file(urls, out)
    with pytest.raises(ResumeError, match="--body"):
        await asyncfetch.fetch_to_file(urls, out, body="none")
    forced = await asyncfetch.fetch_to_file(urls, out, body="none", resume_force=True)
    assert forced.skipped == 5


async def _start_and_kill(
    server: RecordingServer, source: Path, out: Path, rng: random.Random
) -> bool:
    """Run the script and SIGKILL it at a random moment; False when it finished first."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SCRIPT,
        str(source),
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=cli_env(),
    )
    killed, _in_flight = await kill_at_random(server, process, rng)
    assert killed or process.returncode == 0, f"the script failed: {process.returncode}"
    return killed


@pytest.mark.parametrize("suffix", FORMATS)
async def test_sigkill_then_resume_through_the_library(
    server: RecordingServer, tmp_path: Path, suffix: str
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    urls = [server.url(f"/delay/{n % 40}?n={n}") for n in range(3000)]
    source = write_urls(tmp_path / "urls.txt", urls + rng.sample(urls, 20))
    out = tmp_path / f"out.{suffix}"
    kills = 0
    while kills < 3 and await _start_and_kill(server, source, out, rng):
        kills += 1
        assert_journal_consistent(out)
    context = f"seed {seed}, {kills} kills"
    assert kills > 0, f"{context}: the job finished before any kill"
    done_before = len(journal_contents(out)[0])
    stats = await asyncfetch.fetch_to_file(source.read_text().split(), out, concurrency=40)
    assert stats.skipped >= done_before, context
    try:
        assert_exactly_once(out, ids_of(urls))
    except AssertionError as error:
        raise AssertionError(f"{context}: {error}") from error
    assert_journal_consistent(out)
