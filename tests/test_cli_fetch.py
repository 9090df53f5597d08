"""``asyncfetch fetch`` run as a subprocess against a real local server."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import signal
import sqlite3
import sys
from pathlib import Path

import orjson
import pytest

from .cli_helpers import cli_env, read_jsonl, run_cli, start_cli
from .recording_server import RecordingServer


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


async def test_text_input_to_jsonl_file(server: RecordingServer, tmp_path: Path) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(50)]
    source = write_lines(tmp_path / "urls.txt", ["# a comment", "", *urls])
    out = tmp_path / "out.jsonl"
    done = await run_cli("fetch", str(source), "-o", str(out), "-q")
    assert done.code == 0, done.stderr
    records = read_jsonl(out)
    assert sorted(record["url"] for record in records) == sorted(urls)
    assert all(record["ok"] and record["attempts"] == 1 for record in records)
    assert {record["line"] for record in records} == set(range(3, 53))
    assert done.stderr == ""


async def test_bad_lines_become_records_and_the_run_goes_on(
    server: RecordingServer, tmp_path: Path
) -> None:
    lines = [server.url("/ok"), "file:///etc/passwd", "http://exa mple.com/", server.url("/ok?b")]
    source = write_lines(tmp_path / "urls.txt", lines)
    done = await run_cli("fetch", str(source), "-q")
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert done.code == 0
    kinds = {record["line"]: (record["error"] or {}).get("kind") for record in records}
    assert kinds == {1: None, 2: "invalid_input", 3: "invalid_input", 4: None}


async def test_stdin_and_csv_output(server: RecordingServer, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    urls = "\n".join(server.url(f"/ok?n={n}") for n in range(5)).encode()
    done = await run_cli("fetch", "-", "-o", str(out), "-q", stdin=urls)
    assert done.code == 0, done.stderr
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and {row["status"] for row in rows} == {"200"}


async def test_jsonl_specs_to_sqlite(server: RecordingServer, tmp_path: Path) -> None:
    specs = [
        {"url": server.url("/echo"), "method": "POST", "json": {"n": n}, "id": f"r{n}"}
        for n in range(10)
    ]
    source = tmp_path / "specs.jsonl"
    source.write_bytes(b"".join(orjson.dumps(spec) + b"\n" for spec in specs))
    out = tmp_path / "out.sqlite"
    done = await run_cli("fetch", str(source), "-o", str(out), "-q")
    assert done.code == 0, done.stderr
    with sqlite3.connect(out) as db:
        rows = dict(db.execute("SELECT id, status FROM results").fetchall())
    assert rows == {f"r{n}": 200 for n in range(10)}
    bodies = [orjson.loads(seen.body) for seen in server.recorder.requests]
    assert sorted(body["n"] for body in bodies) == list(range(10))


async def test_save_dir_writes_bodies_and_records_paths(
    server: RecordingServer, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "urls.txt", [server.url("/binary"), server.url("/ok")])
    out = tmp_path / "out.jsonl"
    done = await run_cli(
        "fetch", str(source), "-o", str(out), "--save-dir", str(tmp_path / "bodies"), "-q"
    )
    assert done.code == 0, done.stderr
    for record in read_jsonl(out):
        saved = Path(str(record["path"]))
        assert saved.is_file() and (tmp_path / "bodies") in saved.parents
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == record["sha256"]


async def test_summary_on_stderr_and_as_json(server: RecordingServer, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "u.txt", [server.url("/ok"), server.url("/status/500")])
    summary = tmp_path / "summary.json"
    done = await run_cli(
        "fetch", str(source), "--retries", "0", "--summary-json", str(summary), "--no-progress"
    )
    assert done.code == 0
    assert "2xx: 1" in done.stderr and "5xx: 1" in done.stderr and "p99" in done.stderr
    data = orjson.loads(summary.read_bytes())
    assert (data["done"], data["ok"], data["failed"]) == (2, 1, 1)


async def test_exit_codes(server: RecordingServer, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "u.txt", [server.url("/status/500")])
    failing = await run_cli("fetch", str(source), "--retries", "0", "-q", "--fail-on-error")
    bad_option = await run_cli("fetch", str(source), "--concurrency", "0")
    missing = await run_cli("fetch", str(tmp_path / "nope.txt"))
    unwritable = await run_cli("fetch", str(source), "-o", str(tmp_path / "no" / "dir.jsonl"))
    assert failing.code == 1
    assert bad_option.code == 2 and "Traceback" not in bad_option.stderr
    # The console wraps a long temporary path anywhere, even inside the file name.
    assert missing.code == 2 and "nope.txt" in missing.stderr.replace("\n", "")
    assert unwritable.code == 3 and "Traceback" not in unwritable.stderr


async def test_secrets_are_redacted_in_output(server: RecordingServer, tmp_path: Path) -> None:
    # /redirect/1 lands on /echo, which echoes request headers in its body: bodies are data
    # and are not redacted, so ask for none.
    url = server.url("/redirect/1").replace("http://", "http://bob:hunter22@")
    source = write_lines(tmp_path / "u.txt", [url])
    done = await run_cli(
        "fetch",
        str(source),
        "-H",
        "Authorization: Bearer tok-123456",
        "--include-headers",
        "--body",
        "none",
    )
    assert done.code == 0
    assert b"hunter22" not in done.stdout and b"tok-123456" not in done.stdout
    assert "hunter22" not in done.stderr
    assert server.recorder.requests[-1].headers["Authorization"] == "Bearer tok-123456"


@pytest.mark.parametrize("signals", [1, 2])
async def test_sigint_stops_cleanly_with_valid_output(
    server: RecordingServer, tmp_path: Path, signals: int
) -> None:
    urls = [server.url(f"/delay/300?n={n}") for n in range(400)]
    source = write_lines(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    process = await start_cli("fetch", str(source), "-o", str(out), "-c", "20", "--per-host", "20")
    assert process.stderr is not None
    await asyncio.wait_for(server.recorder.seen(40), 30)
    process.send_signal(signal.SIGINT)
    early = b""
    if signals == 2:
        # The second Ctrl-C must come after the first was handled (two signals sent at
        # once may arrive as one): the CLI says when it is stopping.
        early = await asyncio.wait_for(_read_until(process.stderr, b"asyncfetch: stopping"), 30)
        process.send_signal(signal.SIGINT)
    _stdout, rest = await asyncio.wait_for(process.communicate(), 30)
    stderr = early + rest
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr
    records = read_jsonl(out)
    ids = [record["id"] for record in records]
    assert 0 < len(ids) < 400 and len(ids) == len(set(ids))
    if signals == 1:
        # Drained: every request the server saw got its record, none was dropped.
        assert len(records) == len(server.recorder.requests)
    assert all(record["ok"] for record in records)


def _complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def _read_until(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    """Lines of ``stream`` up to and including the first that holds ``marker``."""
    seen = b""
    while marker not in seen:
        line = await stream.readline()
        if not line:
            break
        seen += line
    return seen


async def test_sigint_while_reading_an_open_stdin_exits_130(
    server: RecordingServer, tmp_path: Path
) -> None:
    # The input thread is blocked reading a pipe nobody closes when Ctrl-C arrives.
    out = tmp_path / "out.jsonl"
    process = await start_cli("fetch", "-", "-o", str(out), "-q", stdin=b"")
    assert process.stdin is not None and process.stderr is not None
    urls = [server.url(f"/ok?n={n}") for n in range(5)]
    process.stdin.write("".join(url + "\n" for url in urls).encode())
    await process.stdin.drain()
    while _complete_lines(out) < len(urls):
        await asyncio.sleep(0.05)  # polls for the records; the reader then waits for more
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.wait(), 30)
    stderr = (await process.stderr.read()).decode()
    process.stdin.close()
    assert process.returncode == 130, stderr
    assert "Fatal Python error" not in stderr and "Traceback" not in stderr
    assert sorted(record["url"] for record in read_jsonl(out)) == sorted(urls)


async def test_a_quiet_run_to_jsonl_leaves_the_heavy_modules_unloaded(
    server: RecordingServer, tmp_path: Path
) -> None:
    # Start-up is a visible share of a short run: rich, the journal's SQLite, the CSV
    # reader and writer and the email package are loaded only by runs that use them.
    source = write_lines(tmp_path / "urls.txt", [server.url("/ok")])
    out = tmp_path / "out.jsonl"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-X", "importtime", "-m", "asyncfetch", "fetch", str(source)),
        *("-o", str(out), "-q", "--no-progress"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in stderr.decode().splitlines()}
    assert "asyncfetch.pipeline.runner" in loaded  # the log is what we think it is
    heavy = {
        "rich",
        "sqlite3",
        "csv",
        "email",
        "asyncfetch.resume.journal",
        "asyncfetch.sinks.csv",
    }
    assert loaded & heavy == set()
    assert read_jsonl(out)[0]["ok"]


@pytest.mark.parametrize("engine", ["fast", "aiohttp"])
async def test_timings_have_sub_millisecond_resolution_and_add_up(
    server: RecordingServer, tmp_path: Path, engine: str
) -> None:
    # uvloop's loop.time() is milliseconds cached per loop turn: timings taken from it came
    # out as whole milliseconds, and a time to first byte longer than the whole request.
    urls = [server.url(f"/delay/2?n={n}") for n in range(100)]
    source = write_lines(tmp_path / "urls.txt", urls)
    out = tmp_path / "out.jsonl"
    done = await run_cli("fetch", str(source), "-o", str(out), "-q", "-c", "8", "--engine", engine)
    assert done.code == 0, done.stderr
    timings = [record["timings"] for record in read_jsonl(out)]
    assert len(timings) == 100
    for t in timings:
        assert isinstance(t, dict)
        assert 2.0 <= t["ttfb_ms"] <= t["total_ms"], t
        assert t["connect_ms"] is None or t["connect_ms"] <= t["ttfb_ms"], t
    assert any(t["ttfb_ms"] != int(t["ttfb_ms"]) for t in timings if isinstance(t, dict))
