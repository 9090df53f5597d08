"""Micro-benchmark of the input side: text URL lines → Requests, per item vs per batch.

Writes N URL lines (default 200,000, over a few hundred hosts, with the odd comment,
blank and invalid line as real lists have) to a temporary file, then times reading it
completely, best of a few rounds, on the event loop the CLI uses (uvloop when installed):

  item        ``open_source``: one Request an iteration
  batch       ``open_source_batches``: one list of Requests an iteration
  item+dedupe ``drop_repeats(open_source(...))``: the one-at-a-time view of the next
  batch+dedupe ``drop_repeat_batches(open_source_batches(...))``: what ``fetch`` reads
               without --resume

Usage: python benchmarks/input_path.py [--lines N] [--rounds R] [--only item,batch,...]
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from asyncfetch.runtime.eventloop import run_coroutine

PATHS = ("/", "/index.html", "/api/v1/items", "/search", "/a/b/c/d.json", "/static/app.js")


def write_urls(path: Path, count: int, seed: int = 1) -> None:
    """``count`` lines: mostly valid URLs, 1% comments or blanks, 0.5% invalid."""
    rng = random.Random(seed)
    hosts = [f"host{index}.example.com" for index in range(300)]
    hosts += [f"10.0.{index}.1:8080" for index in range(20)] + ["[::1]:9000"]
    lines = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.005:
            lines.append("# a comment")
        elif roll < 0.01:
            lines.append("")
        elif roll < 0.015:
            lines.append(f"ftp://{rng.choice(hosts)}/file{number}")
        else:
            scheme = "https" if roll < 0.8 else "http"
            resource = rng.choice(PATHS)
            query = f"id={number}&q=x{number % 97}"
            lines.append(f"{scheme}://{rng.choice(hosts)}{resource}?{query}")
    path.write_text("\n".join(lines) + "\n")


async def read_items(path: Path) -> int:
    from asyncfetch.sources import open_source

    return sum([1 async for _item in open_source(path)])


async def read_batches(path: Path) -> int:
    from asyncfetch.sources import open_source_batches

    return sum([len(batch) async for batch in open_source_batches(path)])


async def read_items_deduped(path: Path) -> int:
    from asyncfetch.pipeline.stats import StatsCollector
    from asyncfetch.resume.filters import drop_repeats
    from asyncfetch.sources import open_source

    return sum([1 async for _item in drop_repeats(open_source(path), StatsCollector())])


async def read_batches_deduped(path: Path) -> int:
    from asyncfetch.pipeline.stats import StatsCollector
    from asyncfetch.resume.filters import drop_repeat_batches
    from asyncfetch.sources import open_source_batches

    batches = drop_repeat_batches(open_source_batches(path), StatsCollector())
    return sum([len(batch) async for batch in batches])


CASES: dict[str, Callable[[Path], Awaitable[int]]] = {
    "item": read_items,
    "batch": read_batches,
    "item+dedupe": read_items_deduped,
    "batch+dedupe": read_batches_deduped,
}


async def _timed(case: Callable[[Path], Awaitable[int]], path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    count = await case(path)
    return time.perf_counter() - started, count


def measure(name: str, path: Path, lines: int, rounds: int) -> None:
    best = float("inf")
    count = 0
    for _ in range(rounds):
        gc.collect()
        elapsed, count = run_coroutine(_timed(CASES[name], path))
        best = min(best, elapsed)
    print(
        f"{name:<13} {best * 1e6 / lines:6.2f} µs/line  "
        f"({best * 1000:7.1f} ms for {lines:,} lines, {count:,} items)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "urls.txt"
        write_urls(path, options.lines)
        for name in options.only.split(","):
            measure(name.strip(), path, options.lines, options.rounds)


if __name__ == "__main__":
    main()
