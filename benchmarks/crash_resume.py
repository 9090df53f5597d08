"""Crash-and-resume proof: kill -9 an ``asyncfetch fetch --resume`` run over and over.

Runs a local aiohttp server, writes an input of N URLs (with some repeated lines), then
starts ``asyncfetch fetch INPUT -o OUT --resume`` and kills it with SIGKILL at random
moments, each time while requests are in flight, resuming until K kills have happened;
a last resume runs to completion. Then it checks the output: every input request id has
exactly one well-formed record (lost = 0, duplicates = 0, malformed = 0).

    python benchmarks/crash_resume.py --requests 20000 --kills 25
    python benchmarks/crash_resume.py --format csv --seed 7
    python benchmarks/crash_resume.py --compare      # also time --resume vs no resume

Exit status 0 when the invariant holds, 1 when it does not. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiohttp import web

from asyncfetch._models import request_id


@dataclass
class Server:
    """Answers /r/{n} after a short pseudo-random delay; every 50th request fails (503)."""

    delays: bool = True
    hits: int = 0
    in_flight: int = 0
    runner: web.AppRunner | None = None
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        number = int(request.match_info["n"])
        self.hits += 1
        self.in_flight += 1
        try:
            if self.delays:
                await asyncio.sleep((number * 7919 % 23) / 1000)
            if number % 50 == 13:
                return web.Response(status=503, text="unavailable")
            return web.Response(text=f"record {number} " + "x" * (number % 400))
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/r/{n}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Figures:
    requests: int
    input_lines: int
    output_format: str
    seed: int
    kills: int = 0
    kills_with_requests_in_flight: int = 0
    kills_leaving_unjournaled_output: int = 0
    kills_leaving_torn_line: int = 0
    runs: int = 0
    server_hits: int = 0
    records: int = 0
    lost: int = 0
    duplicates: int = 0
    malformed: int = 0
    unexpected: int = 0
    final_exit_code: int | None = None
    elapsed_s: float = 0.0
    timings_s: dict[str, list[float]] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        problems = self.lost + self.duplicates + self.malformed + self.unexpected
        return problems == 0 and self.final_exit_code == 0


def write_input(path: Path, port: int, requests: int, rng: random.Random) -> list[str]:
    """N distinct URLs plus ~1% repeated lines, shuffled; returns the distinct URLs."""
    urls = [f"http://127.0.0.1:{port}/r/{n}" for n in range(requests)]
    lines = urls + rng.sample(urls, max(1, requests // 100))
    rng.shuffle(lines)
    path.write_text("".join(line + "\n" for line in lines))
    return urls


def fetch_command(source: Path, output: Path, *, resume: bool, concurrency: int) -> list[str]:
    command = [sys.executable, "-m", "asyncfetch", "fetch", str(source), "-o", str(output)]
    command += ["-q", "--retries", "0", "-c", str(concurrency), "--per-host", str(concurrency)]
    return command + (["--resume"] if resume else [])


def journal_figures(output: Path) -> tuple[int, int]:
    """(committed output length, requests done) as the journal records them."""
    journal = Path(str(output) + ".journal")
    if not journal.exists():
        return 0, 0
    with sqlite3.connect(journal) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'output_length'").fetchone()
        done = db.execute("SELECT COUNT(*) FROM done").fetchone()[0]
    return (int(row[0]) if row else 0), int(done)


def leftovers(output: Path) -> tuple[bool, bool]:
    """What a kill left: (records the journal does not know, a torn last line)."""
    if output.suffix == ".sqlite":
        if not output.exists():
            return False, False
        with sqlite3.connect(output) as db:
            rows = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return rows > journal_figures(output)[1], False
    data = output.read_bytes() if output.exists() else b""
    return len(data) > journal_figures(output)[0], bool(data) and not data.endswith(b"\n")


async def kill_once(
    command: list[str], server: Server, delay: float, figures: Figures, output: Path
) -> bool:
    """Start a run and SIGKILL it ``delay`` s after its first request; False if it ended."""
    hits_before = server.hits
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    figures.runs += 1
    while server.hits == hits_before and process.returncode is None:
        await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), delay)
    except TimeoutError:
        in_flight = server.in_flight
        process.send_signal(signal.SIGKILL)
        await process.wait()
        figures.kills += 1
        figures.kills_with_requests_in_flight += in_flight > 0
        unjournaled, torn = leftovers(output)
        figures.kills_leaving_unjournaled_output += unjournaled
        figures.kills_leaving_torn_line += torn
        return True
    stderr = await process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise SystemExit(f"run ended with {process.returncode}: {stderr.decode()}")
    return False


def read_output(output: Path, output_format: str) -> tuple[list[str], int]:
    """(ids of the well-formed records, number of malformed records)."""
    if output_format == "sqlite":
        with sqlite3.connect(output) as db:
            rows = db.execute("SELECT id, record FROM results").fetchall()
        good = [str(row[0]) for row in rows if row[0] and _valid_json(row[1])]
        return good, len(rows) - len(good)
    data = output.read_bytes()
    torn = int(bool(data) and not data.endswith(b"\n"))
    if output_format == "csv":
        rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
        header, body = rows[0], rows[1:]
        good = [row[0] for row in body if len(row) == len(header)]
        return good, len(body) - len(good) + torn
    ids, bad = [], torn
    for line in data.splitlines():
        record = _valid_json(line)
        if isinstance(record, dict) and "id" in record:
            ids.append(str(record["id"]))
        else:
            bad += 1
    return ids, bad


def _valid_json(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def crash_loop(args: argparse.Namespace, workdir: Path, figures: Figures) -> None:
    rng = random.Random(args.seed)
    server = Server(delays=not args.no_delay)
    await server.start()
    try:
        source = workdir / "input.txt"
        urls = write_input(source, server.port, args.requests, rng)
        figures.input_lines = len(source.read_text().splitlines())
        output = workdir / f"out.{args.format}"
        for stale in (output, Path(str(output) + ".journal")):
            stale.unlink(missing_ok=True)
        command = fetch_command(source, output, resume=True, concurrency=args.concurrency)
        rate = 1000.0  # requests/s; re-estimated after each run
        progressed, waited = 0, 0.0
        started = time.monotonic()
        while figures.kills < args.kills:
            # Spread the kills over the work left, so all of them land before the end.
            done_before = journal_figures(output)[1]
            mean = max(args.requests - done_before, 1) / rate / (args.kills - figures.kills + 2)
            delay = rng.uniform(0.02, 1.5 * mean)
            if not await kill_once(command, server, delay, figures, output):
                break
            # Progress per second of fetching (start-up excluded), over all runs so far.
            progressed += journal_figures(output)[1] - done_before
            waited += delay
            rate = max(progressed / waited, 100.0)
        final = await asyncio.create_subprocess_exec(*command)
        figures.final_exit_code = await final.wait()
        figures.runs += 1
        figures.elapsed_s = round(time.monotonic() - started, 1)
        figures.server_hits = server.hits
        check(output, args.format, urls, figures)
        if args.compare:
            await compare(args, workdir, source, figures)
    finally:
        await server.close()


def check(output: Path, output_format: str, urls: list[str], figures: Figures) -> None:
    expected = {request_id("GET", url, None) for url in urls}
    ids, figures.malformed = read_output(output, output_format)
    seen = set(ids)
    figures.records = len(ids)
    figures.duplicates = len(ids) - len(seen)
    figures.lost = len(expected - seen)
    figures.unexpected = len(seen - expected)


async def compare(args: argparse.Namespace, workdir: Path, source: Path, figures: Figures) -> None:
    """Time whole runs with and without --resume, alternating, ``--repeat`` of each."""
    for _ in range(args.repeat):
        for resume in (False, True):
            output = workdir / f"timed.{args.format}"
            for stale in (output, Path(str(output) + ".journal")):
                stale.unlink(missing_ok=True)
            command = fetch_command(source, output, resume=resume, concurrency=args.concurrency)
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(*command)
            if await process.wait() != 0:
                raise SystemExit("timed run failed")
            key = "with_resume" if resume else "without_resume"
            figures.timings_s.setdefault(key, []).append(round(time.monotonic() - started, 2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--format", choices=["jsonl", "csv", "sqlite"], default="jsonl")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    parser.add_argument("--compare", action="store_true", help="time --resume vs not")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each kind")
    parser.add_argument("--no-delay", action="store_true", help="server answers at once")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    return args


def main() -> int:
    args = parse_args()
    figures = Figures(
        requests=args.requests, input_lines=0, output_format=args.format, seed=args.seed
    )
    with tempfile.TemporaryDirectory(prefix="asyncfetch-crash-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(crash_loop(args, workdir, figures))
    print(json.dumps({**asdict(figures), "invariant_holds": figures.holds}, indent=2))
    return 0 if figures.holds else 1


if __name__ == "__main__":
    sys.exit(main())
