"""Time and peak memory of ``asyncfetch report`` over a large synthetic run.

Writes N records (default 1,000,000) that look like a real crawl's: 20,000 hosts with a
Zipf-like share of the traffic (a few very busy, most seen a handful of times), log-normal
latencies per host, mostly 200s with some 404s, 429s and 503s, timeouts and refused
connections with their messages, retries, and start times spread over 30 minutes. Then
runs ``asyncfetch report`` on them as a child process and reports its wall time and peak
RSS (``ru_maxrss`` of that child), next to the same figures for ``asyncfetch --version``
as the baseline of an interpreter that imports asyncfetch and does nothing.

    .venv/bin/python benchmarks/report_build.py                   # 1,000,000 JSONL records
    .venv/bin/python benchmarks/report_build.py --records 100000 --format csv
    .venv/bin/python benchmarks/report_build.py --write-only out.jsonl --records 5000
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from asyncfetch.sinks._records import flat_columns, flatten
from asyncfetch.sinks.sqlite import _CREATE, _INSERT
from asyncfetch.sinks.sqlite import COLUMNS as SQLITE_COLUMNS

HOSTS = 20_000
START = 1_796_000_000.0  # 2026-11-30 UTC, any fixed moment will do
SPAN_S = 30 * 60
ERRORS = (
    ("timeout", "no response within 30.0 s (total timeout)"),
    ("connect", "connection refused by {host}"),
    ("dns", "cannot resolve {host}: name or service not known"),
)


def _stamp(epoch: float) -> str:
    whole = int(epoch)
    millis = int((epoch - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _host(rng: random.Random) -> int:
    # Pareto-distributed ranks: rank 0 gets a large share, the tail a request or two.
    return min(int(rng.paretovariate(1.1)) - 1, HOSTS - 1)


def _outcome(rng: random.Random, host: str) -> tuple[int | None, dict[str, str] | None]:
    roll = rng.random()
    if roll < 0.90:
        return 200, None
    if roll < 0.94:
        return 404, None
    if roll < 0.96:
        return 429, None
    if roll < 0.975:
        return 503, None
    kind, message = ERRORS[int(roll * 1000) % len(ERRORS)]
    return None, {"kind": kind, "message": message.format(host=host)}


def synthetic_records(count: int, seed: int = 20) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for number in range(count):
        rank = _host(rng)
        host = f"site{rank}.example.org"
        status, error = _outcome(rng, host)
        total_ms = rng.lognormvariate(3.5 + (rank % 7) * 0.25, 0.6)
        started = START + SPAN_S * number / count + rng.random()
        attempts = 1 if status in (200, 404) or rng.random() < 0.5 else 2 + rng.randrange(3)
        ok = error is None and status is not None and status < 400
        yield {
            "id": f"{number:024x}",
            "line": number + 1,
            "method": "GET",
            "url": f"https://{host}/items/{number}?page={number % 9}",
            "final_url": None if status is None else f"https://{host}/items/{number}",
            "status": status,
            "ok": ok,
            "error": error,
            "attempts": attempts,
            "timings": {
                "queued_ms": 0.2,
                "connect_ms": 3.1,
                "ttfb_ms": total_ms * 0.8,
                "total_ms": round(total_ms, 3),
            },
            "bytes": 0 if status is None else 512 + number % 2048,
            "sha256": None,
            "content_type": None if status is None else "text/html",
            "meta": None,
            "started_at": _stamp(started),
        }


def write_records(path: Path, fmt: str, count: int) -> None:
    records = synthetic_records(count)
    if fmt == "jsonl":
        with open(path, "wb") as file:
            for record in records:
                file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    elif fmt == "csv":
        columns = flat_columns(include_headers=False)
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, lineterminator="\r\n")
            writer.writerow(columns)
            for record in records:
                row = flatten(record, include_headers=False)
                writer.writerow(_csv_cell(row[name]) for name in columns)
    else:
        _write_sqlite(path, records)


def _csv_cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def _write_sqlite(path: Path, records: Iterator[dict[str, Any]]) -> None:
    connection = sqlite3.connect(path)
    connection.execute(_CREATE)
    rows = (
        (*flatten(record, include_headers=True).values(), orjson.dumps(record).decode())
        for record in records
    )
    assert len(SQLITE_COLUMNS) == len(flatten({}, include_headers=True)) + 1
    connection.executemany(_INSERT, rows)
    connection.commit()
    connection.close()


def measured(*args: str) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of ``asyncfetch ARGS`` as a child."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "asyncfetch", *args]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"asyncfetch {' '.join(args)} failed with status {status}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("jsonl", "csv", "sqlite"), default="jsonl")
    parser.add_argument("--write-only", type=Path, help="only write the records here")
    args = parser.parse_args()
    if args.write_only is not None:
        write_records(args.write_only, args.format, args.records)
        return
    with tempfile.TemporaryDirectory() as scratch:
        records = Path(scratch) / f"records.{args.format}"
        write_records(records, args.format, args.records)
        size_mb = records.stat().st_size / 2**20
        base_s, base_cpu, base_mb = measured("--version")
        build_s, build_cpu, build_mb = measured(
            "report", str(records), "-o", f"{scratch}/r.html", "-q"
        )
        page_kb = Path(scratch, "r.html").stat().st_size / 1024
    print(f"records: {args.records:,} {args.format} ({size_mb:,.0f} MiB)")
    print(
        f"report:  {build_s:.1f} s wall, {build_cpu:.1f} s CPU, peak RSS {build_mb:.0f} MiB,"
        f" page {page_kb:.0f} KiB"
    )
    print(
        f"baseline (asyncfetch --version): {base_s:.2f} s wall, {base_cpu:.2f} s CPU,"
        f" peak RSS {base_mb:.0f} MiB"
    )
    print(f"CPU per record: {1e6 * (build_cpu - base_cpu) / args.records:.1f} µs")


if __name__ == "__main__":
    main()
