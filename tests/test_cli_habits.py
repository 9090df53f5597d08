"""The habits people bring from curl, aria2 and httpx, run as a user runs them:
-A, --retry-on, --only, --save-names url, and an end-of-run summary that says where the
records went, how to list the failures, and which limit held the run back."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from .cli_helpers import read_jsonl, run_cli, start_cli
from .recording_server import RecordingServer


def flat(text: str) -> str:
    return " ".join(text.split())


def write_urls(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(url + "\n" for url in urls))
    return path


async def test_user_agent_reaches_the_server(
    server: RecordingServer, tmp_path: Path, engine: str
) -> None:
    source = write_urls(tmp_path / "urls.txt", [server.url("/ok")])
    done = await run_cli(
        "fetch", str(source), "-A", "mybot/2.0 (+https://example.com/bot)", "--engine", engine
    )
    assert done.code == 0, done.stderr
    [seen] = server.recorder.requests
    assert seen.headers["User-Agent"] == "mybot/2.0 (+https://example.com/bot)"


@pytest.mark.parametrize(
    ("retry_on", "hits"), [(None, 1), ("404", 3), ("400-499,503", 3), ("500-599", 1)]
)
async def test_retry_on_chooses_the_statuses_that_are_retried(
    server: RecordingServer, tmp_path: Path, retry_on: str | None, hits: int
) -> None:
    source = write_urls(tmp_path / "urls.txt", [server.url("/status/404")])
    options = [] if retry_on is None else ["--retry-on", retry_on]
    done = await run_cli("fetch", str(source), "--retries", "2", "-q", *options)
    assert done.code == 0, done.stderr
    [record] = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert record["status"] == 404
    assert record["attempts"] == hits
    assert server.recorder.hits("/status/404") == hits


@pytest.mark.parametrize(("only", "kept"), [("failed", {"/status/500"}), ("ok", {"/ok"})])
async def test_only_keeps_the_records_asked_for_and_counts_all(
    server: RecordingServer, tmp_path: Path, only: str, kept: set[str]
) -> None:
    source = write_urls(tmp_path / "urls.txt", [server.url("/ok"), server.url("/status/500")])
    out = tmp_path / "out.jsonl"
    done = await run_cli(
        "fetch", str(source), "-o", str(out), "--only", only, "--retries", "0", "--no-progress"
    )
    assert done.code == 0, done.stderr
    assert {record["url"].split(str(server.port))[1] for record in read_jsonl(out)} == kept
    assert "done 2: 1 ok, 1 failed" in flat(done.stderr)  # the summary counts both
    assert f"records: {out} (jsonl, only {only} requests)" in flat(done.stderr)


async def test_only_failed_with_resume_does_not_fetch_the_left_out_again(
    server: RecordingServer, tmp_path: Path
) -> None:
    source = write_urls(tmp_path / "urls.txt", [server.url("/ok"), server.url("/status/500")])
    out = tmp_path / "out.jsonl"
    args = ("fetch", str(source), "-o", str(out), "--only", "failed", "--retries", "0", "-q")
    first = await run_cli(*args, "--resume")
    again = await run_cli(*args, "--resume")
    assert (first.code, again.code) == (0, 0), again.stderr
    assert len(read_jsonl(out)) == 1  # the failure, once
    assert len(server.recorder.requests) == 2  # the journal answered for the ok one


async def test_save_names_url_keeps_the_path_and_never_collides(
    server: RecordingServer, tmp_path: Path
) -> None:
    urls = [
        server.url("/bytes/10"),  # kept as it is: <host>/bytes/10.txt
        server.url("/ok?n=1"),  # a query: the same name twice, told apart by a hash
        server.url("/ok?n=2"),
        server.url("/binary"),
    ]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    saved = tmp_path / "saved"
    done = await run_cli(
        "fetch", str(source), "-o", str(out), "--save-dir", str(saved), "--save-names", "url"
    )
    assert done.code == 0, done.stderr
    paths = {record["url"]: Path(str(record["path"])) for record in read_jsonl(out)}
    host = saved / f"127.0.0.1_{server.port}"
    assert paths[urls[0]] == host / "bytes" / "10.txt"
    assert paths[urls[0]].read_bytes() == b"x" * 10
    assert paths[urls[3]] == host / "binary.bin"
    assert paths[urls[3]].read_bytes() == bytes(range(256))
    first, second = paths[urls[1]], paths[urls[2]]
    assert first != second
    assert first.parent == second.parent == host
    assert first.name.startswith("ok~") and second.name.startswith("ok~")
    assert first.read_bytes() == second.read_bytes() == b"ok"


@pytest.mark.parametrize("suffix", ["jsonl", "sqlite", "csv"])
async def test_the_summary_says_where_and_gives_a_command_that_lists_the_failures(
    server: RecordingServer, tmp_path: Path, suffix: str
) -> None:
    urls = [server.url("/ok"), server.url("/status/503"), server.url("/ok?n=2")]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / f"out.{suffix}"
    done = await run_cli("fetch", str(source), "-o", str(out), "--retries", "0", "--no-progress")
    assert done.code == 0, done.stderr
    assert f"records: {out} ({suffix})" in done.stderr
    [command] = [
        line.split("list the failures: ", 1)[1]
        for line in done.stderr.splitlines()
        if "list the failures: " in line
    ]
    listed = await asyncio.to_thread(
        subprocess.run, command, shell=True, capture_output=True, text=True, check=True
    )
    assert "/status/503" in listed.stdout
    assert "/ok" not in listed.stdout


async def test_a_clean_run_offers_no_failure_command(
    server: RecordingServer, tmp_path: Path
) -> None:
    source = write_urls(tmp_path / "urls.txt", [server.url("/ok")])
    done = await run_cli("fetch", str(source), "-o", str(tmp_path / "o.jsonl"), "--no-progress")
    assert "list the failures" not in done.stderr
    assert "limits:" not in done.stderr


async def test_the_wait_for_a_host_is_its_own_field_and_the_summary_names_the_limit(
    server: RecordingServer, tmp_path: Path, engine: str
) -> None:
    urls = [server.url(f"/delay/200?n={n}") for n in range(24)]
    source = write_urls(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    done = await run_cli(
        "fetch", str(source), "-o", str(out), "-c", "50", "--per-host", "4",
        "--engine", engine, "--no-progress",
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert server.recorder.peak_by_host["127.0.0.1"] == 4
    records = read_jsonl(out)
    waits = sorted(float(record["timings"]["wait_ms"]) for record in records)  # type: ignore[index]
    # 24 requests, 4 at a time, each held 200 ms by the server: the last four cannot
    # start before five rounds ended, so they waited at least 5 x 200 ms for the host.
    assert waits[-4] >= 1000
    for record in records:
        timings = record["timings"]
        assert timings["total_ms"] >= 200  # type: ignore[index]
    # The longest wait is not counted in that request's own time (it used to be).
    longest = max(records, key=lambda record: record["timings"]["wait_ms"])  # type: ignore[index]
    assert longest["timings"]["total_ms"] < longest["timings"]["wait_ms"]  # type: ignore[index]
    assert "for a per-host slot (--per-host 4); raise --per-host" in flat(done.stderr)


async def test_ctrl_c_without_a_journal_says_a_new_run_starts_over(
    server: RecordingServer, tmp_path: Path
) -> None:
    source = write_urls(
        tmp_path / "urls.txt", [server.url(f"/delay/300?n={n}") for n in range(60)]
    )
    process = await start_cli("fetch", str(source), "-o", str(tmp_path / "o.jsonl"), "-c", "4")
    while server.recorder.hits("/delay/300") < 4:
        await asyncio.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130
    text = flat(stderr.decode())
    assert "interrupted: no journal was kept, so running again starts over" in text
    assert "asyncfetch fetch" not in text  # no command that would not resume anything
    assert "Traceback" not in text
