"""Checks shared by the resume tests: read any output format, verify the journal."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import signal
import sqlite3
import sys
from contextlib import suppress
from pathlib import Path

import orjson

from asyncfetch._models import request_id

from .cli_helpers import Completed, cli_env
from .recording_server import RecordingServer


def flat(text: str) -> str:
    """``text`` with line wrapping undone (the console wraps long messages)."""
    return " ".join(text.split())


def ids_of(urls: list[str]) -> set[str]:
    return {request_id("GET", url, None) for url in urls}


def write_urls(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(url + "\n" for url in urls))
    return path


def records(output: Path, limit: int | None = None) -> list[dict[str, object]]:
    """Every record of ``output`` (any format); fails on a torn or malformed record."""
    if output.suffix == ".sqlite":
        # A SQLite output's position is its highest row id: ``limit`` rows ids, not bytes.
        query = "SELECT record FROM results WHERE rowid <= ?"
        with sqlite3.connect(output) as db:
            rows = db.execute(query, (2**62 if limit is None else limit,)).fetchall()
        return [orjson.loads(row[0]) for row in rows]
    data = output.read_bytes()[:limit]
    assert data == b"" or data.endswith(b"\n"), f"torn last record: {data[-80:]!r}"
    if output.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        assert all(None not in row and None not in row.values() for row in rows)
        return [{**row, "ok": row["ok"] == "true"} for row in rows]
    return [orjson.loads(line) for line in data.splitlines()]


def assert_exactly_once(output: Path, expected: set[str]) -> list[dict[str, object]]:
    """The invariant: one well-formed record per expected id, nothing else."""
    found = records(output)
    ids = [str(record["id"]) for record in found]
    duplicates = len(ids) - len(set(ids))
    lost, extra = expected - set(ids), set(ids) - expected
    assert (duplicates, len(lost), len(extra)) == (0, 0, 0), (duplicates, lost, extra)
    return found


def journal_contents(output: Path) -> tuple[dict[str, bool], int]:
    """(id → ok, committed output length) as the journal has them."""
    with sqlite3.connect(str(output) + ".journal") as db:
        done = {row[0]: bool(row[1]) for row in db.execute("SELECT id, ok FROM done")}
        row = db.execute("SELECT value FROM meta WHERE key = 'output_length'").fetchone()
    return done, int(row[0]) if row else 0


def assert_journal_consistent(output: Path) -> None:
    """What a crash may leave: the committed part of the output is exactly the journal."""
    done, length = journal_contents(output)
    committed = records(output, limit=length)
    ids = [str(record["id"]) for record in committed]
    assert len(ids) == len(set(ids)), "a repeated record inside the committed part"
    assert {record["id"]: bool(record["ok"]) for record in committed} == done


async def run_limited(*args: str, max_file_bytes: int | None = None) -> Completed:
    """Run the CLI, optionally with RLIMIT_FSIZE (writes past it fail with EFBIG).

    The limit is set in a small launcher that then execs the CLI, rather than with
    preexec_fn, which is unsafe in a threaded test process.
    """
    launcher = (
        "import os, resource, sys\n"
        "limit = int(sys.argv[1])\n"
        "if limit: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'asyncfetch', *sys.argv[2:]])\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        launcher,
        str(max_file_bytes or 0),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Completed(process.returncode, stdout, stderr.decode())


async def kill_at_random(
    server: RecordingServer, process: asyncio.subprocess.Process, rng: random.Random
) -> tuple[bool, int]:
    """SIGKILL ``process`` at a random moment soon after the server sees its first request.

    Returns (killed, requests in flight at the kill); (False, 0) when it ended first.
    """
    hits_before = len(server.recorder.requests)
    while len(server.recorder.requests) == hits_before and process.returncode is None:
        await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), rng.uniform(0.02, 0.4))
    except TimeoutError:
        in_flight = server.recorder.in_flight
        with suppress(ProcessLookupError):  # it may have ended meanwhile; wait tells
            process.send_signal(signal.SIGKILL)
        await process.communicate()
        return process.returncode == -signal.SIGKILL, in_flight
    await process.communicate()
    return False, 0
