"""Crawl scale: many distinct hosts, each visited once, against one local server.

    python benchmarks/many_hosts.py                      # 10k, 100k and 1M hosts, -c 1000
    python benchmarks/many_hosts.py --hosts 10000,100000 --dns-names 10000

Every 127.x.y.z address reaches the loopback device on Linux; one server listening on the
wildcard address (tests/fault_loadserver.py, in its own process) answers on all of them,
so each URL is a host of its own. Each run is the CLI as a user starts it; the figures:
requests per second, peak RSS (wait4's ru_maxrss), peak open descriptors (sampled from
/proc/<pid>/fd every 20 ms) and, for the runs by name, DNS lookups per second against a
DNS server that answers after 20 ms (tests/dns_server.py, in its own process).

The baseline, in the same invocation: as many requests to one host. Not a test: nothing
here asserts a speed; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from contenders import asyncfetch_bin
from measure import raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.dns_server import loopback_address  # noqa: E402

DNS_DELAY_S = 0.020


@dataclass
class Figures:
    label: str
    requests: int
    ok: int
    wall_s: float
    peak_rss_mb: float
    peak_descriptors: int
    dns_names: int | None = None

    @property
    def per_second(self) -> float:
        return self.requests / self.wall_s

    def row(self, baseline: Figures | None) -> str:
        ratio = f"{self.per_second / baseline.per_second:.2f}" if baseline else "1.00"
        lookups = f"{self.dns_names / self.wall_s:,.0f}" if self.dns_names else "-"
        return (
            f"| {self.label} | {self.requests:,} | {self.ok:,} | {self.wall_s:.1f} "
            f"| {self.per_second:,.0f} | {ratio} | {self.peak_rss_mb:.0f} "
            f"| {self.peak_descriptors:,} | {lookups} |"
        )


class Helper:
    """A helper process (server) that prints one JSON line when ready, and one more at
    exit; it stops when its stdin closes."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        self.ready = json.loads(self.process.stdout.readline())

    def stop(self) -> dict[str, int]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        last = self.process.stdout.readline()
        self.process.wait(timeout=30)
        return json.loads(last) if last.strip() else {}


def run_cli(label: str, urls: Path, concurrency: int, extra: list[str]) -> Figures:
    output = urls.with_suffix(".jsonl")
    argv = [str(asyncfetch_bin()), "fetch", str(urls), "-o", str(output), "-q"]
    argv += ["-c", str(concurrency), "--retries", "0", "--body", "none", *extra]
    peak = [0]
    done = threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    sampler = threading.Thread(target=_sample_fds, args=(process.pid, peak, done), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label}: asyncfetch exited with {os.waitstatus_to_exitcode(status)}")
    requests, ok = _count(output)
    output.unlink()
    return Figures(label, requests, ok, wall, usage.ru_maxrss / 1024, peak[0])


def _sample_fds(pid: int, peak: list[int], done: threading.Event) -> None:
    while not done.wait(0.02):
        try:
            peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            return


def _count(output: Path) -> tuple[int, int]:
    requests = ok = 0
    errors: Counter[str] = Counter()
    with output.open("rb") as handle:
        for line in handle:
            requests += 1
            if b'"ok":true' in line:
                ok += 1
            else:
                errors[str(json.loads(line)["error"])[:100]] += 1
    for error, count in errors.most_common(3):
        print(f"  {count:,} failed: {error}", file=sys.stderr)
    return requests, ok


def write_urls(path: Path, count: int, host_of: object) -> Path:
    with path.open("w") as handle:
        for number in range(count):
            handle.write(f"http://{host_of(number)}/p?n={number}\n")  # type: ignore[operator]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="10000,100000,1000000")
    parser.add_argument("--dns-names", default="10000,100000")
    parser.add_argument("-c", "--concurrency", type=int, default=1000)
    args = parser.parse_args()
    host_counts = [int(n) for n in args.hosts.split(",") if n]
    name_counts = [int(n) for n in args.dns_names.split(",") if n]
    raise_fd_limit()
    rows: list[Figures] = []
    server = Helper("-m", "tests.fault_loadserver", "--every-loopback-address")
    port = int(server.ready["listeners"][0].rsplit(":", 1)[1])
    try:
        with tempfile.TemporaryDirectory(prefix="asyncfetch-hosts-") as tmp:
            work = Path(tmp)
            baseline_count = max(host_counts or [10000])
            one = write_urls(work / "one.txt", baseline_count, lambda _n: f"127.0.0.1:{port}")
            rows.append(run_cli("one host (baseline)", one, args.concurrency, []))
            print(rows[-1].row(None), flush=True)
            for count in host_counts:
                urls = write_urls(
                    work / f"h{count}.txt", count, lambda n: f"{loopback_address(n)}:{port}"
                )
                rows.append(run_cli(f"{count:,} hosts", urls, args.concurrency, []))
                print(rows[-1].row(rows[0]), flush=True)
            for count in name_counts:
                rows.append(run_by_name(work, count, port, args.concurrency))
                print(rows[-1].row(rows[0]), flush=True)
    finally:
        server.stop()
    print_table(rows, args.concurrency)


def run_by_name(work: Path, count: int, port: int, concurrency: int) -> Figures:
    dns = Helper("-m", "tests.dns_server", str(DNS_DELAY_S))
    urls = write_urls(work / f"n{count}.txt", count, lambda n: f"h{n}.crawl.test:{port}")
    extra = ["--dns-server", f"127.0.0.1:{dns.ready['port']}"]
    try:
        figures = run_cli(f"{count:,} host names, DNS 20 ms", urls, concurrency, extra)
    finally:
        asked = dns.stop()
    figures.dns_names = asked.get("names", 0)
    return figures


def print_table(rows: list[Figures], concurrency: int) -> None:
    print(f"\n-c {concurrency}, {os.cpu_count()} CPUs, one server process on the same machine\n")
    print(
        "| run | requests | ok | seconds | req/s | vs one host | peak RSS MB "
        "| peak descriptors | DNS lookups/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row.row(rows[0]))


if __name__ == "__main__":
    main()
