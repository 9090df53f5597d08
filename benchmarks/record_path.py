"""Micro-benchmark of the output side of a run: from a finished response to a written line.

Times, per record in microseconds, each stage the writer pays for every request:
building the Result (``success_result``, body policy ``none`` and ``auto``), encoding
it (``to_record`` + ``dumps``, and the JSONL sink's own encoder), writing batches of 512
lines to a real temporary file (write + flush, not durable), and counting it
(``StatsCollector.record``). The records look like a real run's: a 512-byte body and the
headers nginx sends.

    .venv/bin/python benchmarks/record_path.py                  # print the figures
    .venv/bin/python benchmarks/record_path.py --save before.json
    .venv/bin/python benchmarks/record_path.py --baseline before.json   # before/after

For "before" figures of an older revision, put its source first on the path, e.g.
``git archive REV src | tar -x -C /tmp/old`` then ``PYTHONPATH=/tmp/old/src``.

Each figure is CPU time (this process's, threads included: the file stage writes in a
thread), the best of several repeats, so other work on the machine disturbs it little;
still, compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from asyncfetch._models import Request, Response, Result, Timings
from asyncfetch._settings import BodyPolicy
from asyncfetch.pipeline.stats import StatsCollector
from asyncfetch.policy.records import failure_result, success_result, utc_now_iso
from asyncfetch.sinks import CsvSink, JsonlSink
from asyncfetch.sinks._records import dumps
from asyncfetch.sinks.sqlite import _row as sqlite_row

BATCH = 512
BODY = (b"<!DOCTYPE html><html><head><title>item</title></head><body>" + b"x" * 512)[:512]
NGINX_HEADERS = (
    ("Server", "nginx/1.24.0"),
    ("Date", "Tue, 24 Nov 2026 06:47:00 GMT"),
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", "512"),
    ("Last-Modified", "Mon, 23 Nov 2026 10:00:00 GMT"),
    ("Connection", "keep-alive"),
    ("ETag", '"6565e3a0-200"'),
    ("Accept-Ranges", "bytes"),
)


def make_request(number: int) -> Request:
    url = f"http://127.0.0.1:8080/items/{number}?page={number % 7}"
    return Request(url=url, id=f"{number:024x}", line=number + 1)


def make_response(request: Request) -> Response:
    return Response(
        status=200,
        url=request.url,
        headers=NGINX_HEADERS,
        body=BODY,
        connect_ms=0.412,
        ttfb_ms=1.873,
    )


def make_timings(number: int) -> Timings:
    return Timings(
        queued_ms=round(0.001 * number, 3), connect_ms=0.412, ttfb_ms=1.873, total_ms=2.291
    )


def make_results(count: int, mode: str) -> list[Result]:
    """Mostly successes, with a failure every 50th record, as a healthy run has."""
    policy = BodyPolicy(mode=mode)
    results = []
    for number in range(count):
        request = make_request(number)
        if number % 50 == 49:
            results.append(
                failure_result(
                    request,
                    "timeout",
                    "no complete response within 30.0 s",
                    attempts=3,
                    timings=make_timings(number),
                    started_at="2026-11-24T06:47:00.905Z",
                )
            )
            continue
        results.append(
            success_result(
                request,
                make_response(request),
                attempts=1,
                timings=make_timings(number),
                started_at="2026-11-24T06:47:00.905Z",
                policy=policy,
            )
        )
    return results


def best_per_item(run: Callable[[], int], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in microseconds per item (``run`` returns items)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time_ns()
        items = run()
        elapsed = time.process_time_ns() - start
        best = min(best, elapsed / 1000 / items)
    return best


def bench_success(mode: str, count: int, repeats: int) -> float:
    policy = BodyPolicy(mode=mode)
    pairs = [(request, make_response(request)) for request in map(make_request, range(count))]
    timings = make_timings(1)

    def run() -> int:
        for request, response in pairs:
            success_result(
                request,
                response,
                attempts=1,
                timings=timings,
                started_at="2026-11-24T06:47:00.905Z",
                policy=policy,
            )
        return len(pairs)

    return best_per_item(run, repeats)


def bench_to_record_dumps(results: list[Result], repeats: int) -> float:
    def run() -> int:
        for result in results:
            dumps(result.to_record(), newline=True)
        return len(results)

    return best_per_item(run, repeats)


def bench_sink_encode(sink: JsonlSink | CsvSink, results: list[Result], repeats: int) -> float:
    batches = [results[start : start + BATCH] for start in range(0, len(results), BATCH)]

    def run() -> int:
        for batch in batches:
            sink._encode(batch)
        return len(results)

    return best_per_item(run, repeats)


def bench_sqlite_rows(results: list[Result], repeats: int) -> float:
    def run() -> int:
        for result in results:
            sqlite_row(result)
        return len(results)

    return best_per_item(run, repeats)


def bench_jsonl_file(
    results: list[Result], repeats: int, directory: Path, batch_size: int = BATCH
) -> float:
    """Encode, buffer, write and flush (not durable) batches to a real file."""
    batches = [results[start : start + batch_size] for start in range(0, len(results), batch_size)]

    async def write_all() -> float:
        best = float("inf")
        for _ in range(repeats):
            async with JsonlSink.open(directory / "out.jsonl") as sink:
                start = time.process_time_ns()
                for batch in batches:
                    await sink.write(batch)
                    await sink.flush()
                best = min(best, (time.process_time_ns() - start) / 1000 / len(results))
        return best

    return asyncio.run(write_all())


def bench_stats(results: list[Result], repeats: int) -> float:
    def run() -> int:
        stats = StatsCollector()
        record = stats.record
        for result in results:
            record(result)
        stats.snapshot()
        return len(results)

    return best_per_item(run, repeats)


def bench_utc_now_iso(count: int, repeats: int) -> float:
    def run() -> int:
        for _ in range(count):
            utc_now_iso()
        return count

    return best_per_item(run, repeats)


def measure(count: int, repeats: int) -> dict[str, float]:
    none_results = make_results(count, "none")
    auto_results = make_results(count, "auto")
    figures: dict[str, float] = {}
    figures["success_result (body none)"] = bench_success("none", count, repeats)
    figures["success_result (body auto)"] = bench_success("auto", count, repeats)
    figures["to_record + dumps"] = bench_to_record_dumps(none_results, repeats)
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        jsonl = JsonlSink.open(directory / "encode.jsonl")
        csv_sink = CsvSink.open(directory / "encode.csv")
        figures["JsonlSink._encode (body none)"] = bench_sink_encode(jsonl, none_results, repeats)
        figures["JsonlSink._encode (body auto)"] = bench_sink_encode(jsonl, auto_results, repeats)
        figures["JSONL file: encode+write+flush/512"] = bench_jsonl_file(
            none_results, repeats, directory
        )
        figures["JSONL file (body auto)/512"] = bench_jsonl_file(auto_results, repeats, directory)
        figures["JSONL file: encode+write+flush/16"] = bench_jsonl_file(
            none_results, repeats, directory, batch_size=16
        )
        figures["CsvSink._encode (body none)"] = bench_sink_encode(csv_sink, none_results, repeats)
        figures["SQLite row (body none)"] = bench_sqlite_rows(none_results, repeats)
        asyncio.run(jsonl.aclose())
        asyncio.run(csv_sink.aclose())
    figures["StatsCollector.record"] = bench_stats(none_results, repeats)
    figures["utc_now_iso"] = bench_utc_now_iso(count, repeats)
    return figures


def report(figures: dict[str, float], baseline: dict[str, float] | None) -> str:
    width = max(map(len, figures)) + 2
    if baseline is None:
        lines = [f"{'stage':<{width}}{'µs/record':>10}"]
        lines += [f"{name:<{width}}{value:>10.3f}" for name, value in figures.items()]
        return "\n".join(lines)
    lines = [f"{'stage':<{width}}{'before':>10}{'after':>10}{'speed-up':>10}"]
    for name, value in figures.items():
        before = baseline.get(name)
        if before is None:
            lines.append(f"{name:<{width}}{'-':>10}{value:>10.3f}{'-':>10}")
        else:
            lines.append(f"{name:<{width}}{before:>10.3f}{value:>10.3f}{before / value:>9.2f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="take the best of this many")
    parser.add_argument("--save", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--baseline", type=Path, help="compare with figures saved earlier")
    args = parser.parse_args()
    figures = measure(args.records, args.repeats)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    print(report(figures, baseline))
    if args.save:
        args.save.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
