"""``fetch --resume`` as a user runs it: interrupt, damage, change, retry, resume."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sqlite3
from pathlib import Path

import orjson
import pytest

from .cli_helpers import run_cli, start_cli
from .recording_server import RecordingServer
from .resume_checks import (
    assert_exactly_once,
    assert_journal_consistent,
    flat,
    ids_of,
    journal_contents,
    records,
    write_urls,
)


@pytest.mark.parametrize(
    ("suffix", "signals"), [("jsonl", 1), ("jsonl", 2), ("csv", 2), ("sqlite", 1)]
)
async def test_sigint_then_resume_completes_exactly_once(
    server: RecordingServer, tmp_path: Path, suffix: str, signals: int
) -> None:
    urls = [server.url(f"/delay/150?n={n}") for n in range(200)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / f"out.{suffix}"
    args = ("fetch", str(source), "-o", str(out), "--resume", "-c", "20", "--per-host", "20")
    process = await start_cli(*args)
    while server.recorder.hits("/delay/150") < 40:
        await asyncio.sleep(0.02)
    for _ in range(signals):
        process.send_signal(signal.SIGINT)
        await asyncio.sleep(0.05)
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, stderr
    # The exact command that resumes, not raw fields such as "journal_run: 1".
    resume_command = "to fetch the rest, run: asyncfetch " + shlex.join(args)
    assert resume_command in stderr.decode()
    assert "journal_run" not in stderr.decode()
    assert_journal_consistent(out)
    first_part = len(journal_contents(out)[0])
    assert 0 < first_part < 200
    resumed = await run_cli(*args, "--no-progress")
    assert resumed.code == 0, resumed.stderr
    assert f"skipped {first_part} requests already done" in flat(resumed.stderr)
    found = assert_exactly_once(out, ids_of(urls))
    if signals == 1:
        # A graceful stop drains in-flight requests, so none is ever sent twice.
        assert server.recorder.hits("/delay/150") == 200
        assert all(record["ok"] for record in found)


async def test_torn_and_unjournaled_tail_is_cut_on_resume(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(30)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    args = ("fetch", str(source), "-o", str(out), "--resume", "--no-progress")
    assert (await run_cli(*args)).code == 0
    complete = out.read_bytes()
    # What a crash can leave: a batch written but never journaled, then half a line.
    stray = orjson.dumps({"id": "stray", "ok": True}) + b"\n"
    out.write_bytes(complete + stray + b'{"id": "torn", "url": "http://exa')
    resumed = await run_cli(*args)
    assert resumed.code == 0, resumed.stderr
    assert "bytes of unrecorded output" in flat(resumed.stderr)
    assert out.read_bytes() == complete
    assert_exactly_once(out, ids_of(urls))
    assert server.recorder.hits("/ok") == 30


async def test_changed_input_or_options_are_refused_unless_forced(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(10)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    args = ("fetch", str(source), "-o", str(out), "--resume", "-q")
    assert (await run_cli(*args)).code == 0
    changed_header = await run_cli(*args, "-H", "Authorization: Bearer s3cret-token")
    assert changed_header.code == 2 and "--header" in flat(changed_header.stderr)
    assert "s3cret" not in Path(str(out) + ".journal").read_bytes().decode("latin-1")
    write_urls(source, [*urls, server.url("/ok?n=new")])
    changed_input = await run_cli(*args)
    assert changed_input.code == 2, changed_input.stderr
    assert "urls.txt" in flat(changed_input.stderr) and "--resume-force" in flat(
        changed_input.stderr
    )
    forced = await run_cli(*args, "--resume-force")
    assert forced.code == 0, forced.stderr
    assert_exactly_once(out, ids_of([*urls, server.url("/ok?n=new")]))
    assert server.recorder.hits("/ok") == 11


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "sqlite"])
async def test_retry_failed_reruns_exactly_the_failures(
    server: RecordingServer, tmp_path: Path, suffix: str
) -> None:
    good = [server.url(f"/ok?n={n}") for n in range(20)]
    flaky = [server.url(f"/flaky/{suffix}{n}/1/500") for n in range(5)]
    source = write_urls(tmp_path / "urls.txt", good + flaky)
    out = tmp_path / f"out.{suffix}"
    args = ("fetch", str(source), "-o", str(out), "--resume", "--retries", "0", "-q")
    assert (await run_cli(*args)).code == 0
    assert sum(not record["ok"] for record in records(out)) == 5
    plain = await run_cli(*args)  # without --retry-failed, failures count as done
    assert plain.code == 0 and server.recorder.counters[f"{suffix}0"] == 1
    retried = await run_cli(*args, "--retry-failed")
    assert retried.code == 0, retried.stderr
    found = assert_exactly_once(out, ids_of(good + flaky))
    assert all(record["ok"] for record in found)
    assert server.recorder.hits("/ok") == 20
    assert all(server.recorder.counters[f"{suffix}{n}"] == 2 for n in range(5))
    assert_journal_consistent(out)


@pytest.mark.parametrize("resume", [True, False])
async def test_duplicate_ids_are_fetched_once_and_counted(
    server: RecordingServer, tmp_path: Path, resume: bool
) -> None:
    specs = [{"url": server.url(f"/ok?n={n}"), "id": f"r{n % 7}"} for n in range(20)]
    specs += [{"url": server.url("/ok?same")}] * 3
    source = tmp_path / "specs.jsonl"
    source.write_bytes(b"".join(orjson.dumps(spec) + b"\n" for spec in specs))
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    extra = ("--resume",) if resume else ()
    done = await run_cli(
        "fetch", str(source), "-o", str(out), "--summary-json", str(summary), "-q", *extra
    )
    assert done.code == 0, done.stderr
    ids = [record["id"] for record in records(out)]
    assert len(ids) == len(set(ids)) == 8
    assert server.recorder.hits("/ok") == 8
    assert orjson.loads(summary.read_bytes())["duplicates"] == 15


async def test_status_reports_progress(server: RecordingServer, tmp_path: Path) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(12)] + [server.url("/status/404")]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.csv"
    assert (await run_cli("fetch", str(source), "-o", str(out), "--resume", "-q")).code == 0
    status = await run_cli("status", str(out), "--json")
    assert status.code == 0, status.stderr
    data = orjson.loads(status.stdout)
    assert (data["done"], data["ok"], data["failed"]) == (13, 12, 1)
    assert data["complete"] is True and data["remaining"] == 0
    human = await run_cli("status", str(out))
    assert b"complete" in human.stdout and b"1 failed" in human.stdout
    missing = await run_cli("status", str(tmp_path / "other.jsonl"))
    assert missing.code == 2 and "no resume journal" in flat(missing.stderr)


async def test_status_of_an_interrupted_job_shows_remaining(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/delay/100?n={n}") for n in range(100)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    process = await start_cli("fetch", str(source), "-o", str(out), "--resume", "-c", "5")
    while server.recorder.hits("/delay/100") < 10:
        await asyncio.sleep(0.02)
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), 30)
    data = orjson.loads((await run_cli("status", str(out), "--json")).stdout)
    assert data["complete"] is False and 0 < data["done"] < 100
    assert data["remaining"] == 100 - data["done"]


async def test_output_without_journal_is_refused_or_adopted(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(10)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    assert (await run_cli("fetch", str(source), "-o", str(out), "-q")).code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    # A plain run's output, damaged: a repeated record and a torn last line.
    out.write_bytes(b"".join(lines[:6]) + lines[0] + lines[6][:20])
    args = ("fetch", str(source), "-o", str(out), "--resume", "-q")
    refused = await run_cli(*args)
    assert refused.code == 2 and "no resume journal" in flat(refused.stderr)
    adopted = await run_cli(*args, "--resume-force")
    assert adopted.code == 0, adopted.stderr
    assert_exactly_once(out, ids_of(urls))
    assert server.recorder.hits("/ok") == 10 + 4


async def test_usage_errors(server: RecordingServer, tmp_path: Path) -> None:
    source = write_urls(tmp_path / "urls.txt", [server.url("/ok")])
    out = tmp_path / "out.sqlite"
    no_output = await run_cli("fetch", str(source), "--resume")
    assert no_output.code == 2 and "needs an output file" in flat(no_output.stderr)
    assert (await run_cli("fetch", str(source), "-o", str(out), "--resume", "-q")).code == 0
    plain = await run_cli("fetch", str(source), "-o", str(out), "-q")
    assert plain.code == 2 and "--resume" in flat(plain.stderr)
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (1,)


async def test_status_of_a_redis_job(server: RecordingServer, tmp_path: Path) -> None:
    from .redis_server import running_redis

    source = write_urls(tmp_path / "urls.txt", [server.url(f"/ok?n={n}") for n in range(7)])
    with running_redis(tmp_path / "redis") as redis:
        enqueued = await run_cli("enqueue", str(source), "--redis", redis.url, "--job", "j")
        assert enqueued.code == 0, enqueued.stderr
        status = await run_cli("status", "--redis", redis.url, "--job", "j", "--json")
        human = await run_cli("status", "--redis", redis.url, "--job", "j")
        unknown = await run_cli("status", "--redis", redis.url, "--job", "nope")
    assert status.code == 0, status.stderr
    assert b"enqueued 7, done 0" in human.stdout
    data = orjson.loads(status.stdout)
    assert (data["enqueued"], data["done"], data["complete"]) == (7, 0, False)
    assert unknown.code == 2 and "no job named" in flat(unknown.stderr)
