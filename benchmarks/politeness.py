"""Politeness: a host that allows 40 requests per second, 600 requests, default options.

    python benchmarks/politeness.py                  # asyncfetch default, --no-adapt, Scrapy
    python benchmarks/politeness.py --rate 40 --burst 40 --requests 600 --repeat 3

The host (tests/limited_server.py) is a token bucket: ``--rate`` tokens a second, up to
``--burst`` saved; a request that finds it empty gets 429 with ``Retry-After: 1``. Each
contender is a child process over the same URLs, against a fresh server. Reported: the
share of requests the host answered 429 (its own count), the records that ended ok (the
contender's output), and the wall time against the ideal ``requests / rate``.

Scrapy runs with AutoThrottle when it can be imported by ``--scrapy-python`` (default:
this interpreter; ``pip install scrapy``); otherwise its row says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.limited_server import LimitedServer  # noqa: E402


@dataclass
class Row:
    contender: str
    requests: int
    ok: int
    status_429: int
    wall_s: float
    ideal_s: float
    note: str = ""

    @property
    def share_429(self) -> float:
        return self.status_429 / self.requests

    def markdown(self) -> str:
        return (
            f"| {self.contender} | {self.requests} | {self.ok} | {self.status_429}"
            f" | {self.share_429:.1%} | {self.wall_s:.2f} | {self.wall_s / self.ideal_s:.2f}×"
            f" | {self.note} |"
        )


class ServerThread:
    """The limited server on its own event loop in a thread, so children can reach it."""

    def __init__(self, rate: float, burst: float) -> None:
        self.server = LimitedServer(rate=rate, burst=burst, retry_after=1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> LimitedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self.server

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def asyncfetch_argv(urls: Path, out: Path, *extra: str) -> list[str]:
    binary = Path(sys.executable).parent / "asyncfetch"
    return [str(binary), "fetch", str(urls), "-o", str(out), "-q", *extra]


def count_ok_jsonl(out: Path) -> int:
    return sum(1 for line in out.read_text().splitlines() if json.loads(line)["ok"])


def run_one(name: str, argv: list[str], args: argparse.Namespace, workdir: Path) -> Row:
    urls = workdir / "urls.txt"
    with ServerThread(args.rate, args.burst) as server:
        urls.write_text("".join(server.url(f"/bucket/{n}") + "\n" for n in range(args.requests)))
        is_jsonl = name.startswith("asyncfetch")
        out = workdir / ("out.jsonl" if is_jsonl else "out.txt")
        out.unlink(missing_ok=True)
        argv = [part.replace("{URLS}", str(urls)).replace("{OUT}", str(out)) for part in argv]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
        ok = count_ok_jsonl(out) if is_jsonl else len(out.read_text().split())
        ideal = args.requests / args.rate
        return Row(name, args.requests, ok, server.bucket.rejected, wall, ideal)


def contenders(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    chosen = [
        ("asyncfetch (default: adaptive)", asyncfetch_argv(Path("{URLS}"), Path("{OUT}"))),
        (
            "asyncfetch --no-adapt (fixed limits)",
            asyncfetch_argv(Path("{URLS}"), Path("{OUT}"), "--no-adapt"),
        ),
    ]
    if args.compare_bin:
        before = [args.compare_bin, "fetch", "{URLS}", "-o", "{OUT}", "-q"]
        chosen.append((f"asyncfetch {args.compare_label}", before))
    script = ROOT / "benchmarks" / "scripts" / "scrapy_autothrottle.py"
    try:
        probe = subprocess.run([args.scrapy_python, "-c", "import scrapy"], capture_output=True)
        importable = probe.returncode == 0
    except OSError:
        importable = False
    if importable:
        chosen.append(
            ("Scrapy, AutoThrottle", [args.scrapy_python, str(script), "{URLS}", "{OUT}"])
        )
    else:
        print(
            "skip Scrapy: not importable by --scrapy-python (pip install scrapy)", file=sys.stderr
        )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--burst", type=float, default=40.0)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender, alternated")
    parser.add_argument("--scrapy-python", default=sys.executable)
    parser.add_argument(
        "--compare-bin", help="another asyncfetch executable (e.g. a checkout of main) to add"
    )
    parser.add_argument("--compare-label", default="(other build)", help="its row's name")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeat):
            for name, argv in contenders(args):
                row = run_one(name, argv, args, Path(scratch))
                print(row.markdown(), file=sys.stderr, flush=True)
                rows.append(row)
    print(
        f"\nHost: {args.rate:g} req/s, burst {args.burst:g}, 429 with Retry-After: 1;"
        f" {args.requests} requests; ideal time {args.requests / args.rate:.2f} s"
        " (requests / rate)\n"
    )
    print("| contender | requests | ok | 429s | share 429 | time s | vs ideal | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(row.markdown())


if __name__ == "__main__":
    main()
