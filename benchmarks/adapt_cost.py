"""What adaptive politeness costs a healthy host: ``fetch`` with and without ``--no-adapt``.

One host (the local nginx's 512-byte file, server on one core, client on the other) that
never throttles, so the adaptive limit should only grow and never hold a request back.
Rounds alternate the two variants in a rotated order; each run reports the client's CPU
time per request (user + kernel, ``os.wait4``: what limits a CPU-bound client, and far
less moved by the machine's other load than wall time) and its requests per second.

    .venv/bin/python benchmarks/adapt_cost.py --rounds 5 -n 30000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from contenders import asyncfetch_bin
from measure import CpuPlan, Usage, plan_cpus, raise_fd_limit, run_counted
from servers import NginxServer
from workloads import write_urls

VARIANTS = {"adaptive (default)": [], "--no-adapt": ["--no-adapt"]}


def run_once(urls: Path, out: Path, extra: list[str], requests: int, cpus: CpuPlan) -> Usage:
    argv = [str(asyncfetch_bin()), "fetch", str(urls), "-o", str(out), "-c", "64", "-q"]
    return run_counted(cpus.wrap_client([*argv, *extra]), out, requests, env=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", "--requests", type=int, default=30_000)
    args = parser.parse_args()
    raise_fd_limit()
    cpus = plan_cpus()
    server = NginxServer(cpus=cpus)
    server.start()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    try:
        with tempfile.TemporaryDirectory(prefix="adapt-cost-") as scratch:
            work = Path(scratch)
            urls = write_urls(work / "urls.txt", server.url("/small"), args.requests)
            names = list(VARIANTS)
            for round_no in range(args.rounds):
                for name in names[round_no % 2 :] + names[: round_no % 2]:
                    usage = run_once(urls, work / "out.jsonl", VARIANTS[name], args.requests, cpus)
                    cpu_us = (usage.user_s + usage.sys_s) / args.requests * 1e6
                    figures[name].append((cpu_us, args.requests / usage.wall_s))
    finally:
        server.stop()
    print(f"{args.requests} requests, -c 64, {args.rounds} rounds alternating")
    print("| variant | CPU µs/request median (min–max) | requests/s median (min–max) |")
    print("|---|---:|---:|")
    for name, runs in figures.items():
        cpu = [c for c, _ in runs]
        rate = [r for _, r in runs]
        print(
            f"| {name} | {statistics.median(cpu):.1f} ({min(cpu):.1f}–{max(cpu):.1f})"
            f" | {statistics.median(rate):.0f} ({min(rate):.0f}–{max(rate):.0f}) |"
        )
    base = statistics.median(c for c, _ in figures["--no-adapt"])
    adaptive = statistics.median(c for c, _ in figures["adaptive (default)"])
    print(f"adaptive costs {100 * (adaptive / base - 1):+.1f} % CPU per request")


if __name__ == "__main__":
    sys.exit(main())
