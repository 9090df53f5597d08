"""What seeing a run costs: CLI CPU per request and throughput with the summary's host
tables, --report and --metrics-port, as ratios against a quiet run (``-q``) in the same
invocation.

Starts nginx on one core and runs the CLI on the other (as ceiling.py does), alternating
the variants round after round so that a disturbance of the machine hits them alike; the
best round of each is kept. ``--before SRC`` adds the quiet run and the run with a summary
on another source tree (e.g. an older revision, built with ``tools/native.py build``): the
summary run of the older tree had no host tables, so the two summary runs compare them.

    .venv/bin/python benchmarks/seeing_overhead.py                  # 100,000 requests, 5 rounds
    .venv/bin/python benchmarks/seeing_overhead.py -n 200000 --rounds 7 --before /tmp/old/src
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import plan_cpus, raise_fd_limit, run_counted
from servers import NginxServer


def variants(urls: Path, out: Path, scratch: Path, concurrency: int) -> dict[str, list[str]]:
    base = [sys.executable, "-m", "asyncfetch", "fetch", str(urls), "-o", str(out)]
    base += ["-c", str(concurrency), "--per-host", str(concurrency), "--body", "none"]
    return {
        "quiet (-q)": [*base, "--no-progress", "-q"],
        "summary with host tables": [*base, "--no-progress"],
        "--report": [*base, "--no-progress", "-q", "--report", str(scratch / "r.html")],
        "--metrics-port": [*base, "--no-progress", "-q", "--metrics-port", "0"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="requests per run")
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; best kept")
    parser.add_argument("--before", type=Path, help="a source tree to run quietly as 'before'")
    args = parser.parse_args()
    raise_fd_limit()
    cpus = plan_cpus()
    with NginxServer(cpus) as server, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        urls = scratch / "urls.txt"
        urls.write_text("".join(f"{server.url('/small')}?i={i}\n" for i in range(args.n)))
        out = scratch / "out.jsonl"
        runs = {
            name: (argv, None)
            for name, argv in variants(urls, out, scratch, args.concurrency).items()
        }
        if args.before is not None:
            before_env = {**os.environ, "PYTHONPATH": str(args.before)}
            before = {
                "before: quiet (-q)": (runs["quiet (-q)"][0], before_env),
                "before: summary": (runs["summary with host tables"][0], before_env),
            }
            runs = {**before, **runs}
        rates: dict[str, float] = dict.fromkeys(runs, 0.0)
        cpu: dict[str, float] = dict.fromkeys(runs, float("inf"))
        for _ in range(args.rounds):
            for name, (argv, env) in runs.items():
                usage = run_counted(cpus.wrap_client(argv), out, args.n, env, subprocess.DEVNULL)
                micros = 1e6 * (usage.user_s + usage.sys_s) / args.n
                rates[name] = max(rates[name], args.n / usage.wall_s)
                cpu[name] = min(cpu[name], micros)
        rounds = f"best of {args.rounds}"
        print(f"{args.n:,} requests, concurrency {args.concurrency}, {rounds}; {cpus.describe()}")
        # CPU per request is the steadier figure on a shared machine; wall rates are shown too.
        for name in runs:
            print(
                f"  {name:28} {rates[name]:>9,.0f} req/s  {cpu[name]:6.1f} µs CPU/request"
                f"  {cpu[name] / cpu['quiet (-q)']:6.3f} x quiet's CPU"
            )


if __name__ == "__main__":
    main()
