"""Run every contender side by side against a local nginx and report the figures.

    python benchmarks/run.py                   # full run (about 10 minutes)
    python benchmarks/run.py --quick           # 1/10 of every count, for development
    python benchmarks/run.py --only wrk,asyncfetch-cli --workloads throughput
    python benchmarks/run.py --update-docs     # also rewrite docs/benchmarks.md

Nothing is installed here: a missing tool is reported with what to install, and only the
contenders that need it are skipped.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import workloads
from contenders import CONTENDERS, Contender, asyncfetch_bin
from measure import CpuPlan, plan_cpus, raise_fd_limit, run_measured
from report import Row, machine_info, markdown, median, update_docs, write_results
from servers import NginxServer, find_echo_module
from workloads import FULL, QUICK, Job, Scale

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("throughput", "latency", "memory", "startup")
IMPORT = "import asyncfetch"
NGINX_INSTALL = "apt-get install nginx libnginx-mod-http-echo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of every count")
    parser.add_argument("--only", default="", help="comma-separated contender keys")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--update-docs", action="store_true", help="rewrite docs/benchmarks.md")
    parser.add_argument("--timeout", type=float, default=300.0, help="per contender run, s")
    parser.add_argument(
        "--tutorial-rss-cap-mb",
        type=int,
        default=4096,
        help="kill the tutorial pattern in the memory workload when its RSS passes this",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="throughput/latency runs per contender; best kept"
    )
    parser.add_argument("--list", action="store_true", help="list contender keys and exit")
    args = parser.parse_args(argv)
    keys = {c.key for c in CONTENDERS}
    args.only = [k for k in args.only.split(",") if k]
    if unknown := set(args.only) - keys:
        parser.error(f"unknown contender(s) {sorted(unknown)}; choose from {sorted(keys)}")
    args.workloads = [w for w in args.workloads.split(",") if w]
    if unknown := set(args.workloads) - set(WORKLOADS):
        parser.error(f"unknown workload(s) {sorted(unknown)}; choose from {list(WORKLOADS)}")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    """Holds what every measurement needs: CPUs, scratch dir, limits, the rows so far."""

    def __init__(self, args: argparse.Namespace, cpus: CpuPlan, workdir: Path) -> None:
        self.args = args
        self.cpus = cpus
        self.workdir = workdir
        self.rows: list[Row] = []
        self.selected = [c for c in CONTENDERS if not args.only or c.key in args.only]
        self._reasons: dict[str, str | None] = {}

    def unavailable(self, contender: Contender) -> str | None:
        if contender.key not in self._reasons:
            reason = contender.unavailable()
            self._reasons[contender.key] = reason
            if reason:
                say(f"  skip {contender.name}: {reason}")
        return self._reasons[contender.key]

    def measure(self, contender: Contender, job: Job, rss_cap_mb: int | None = None) -> Row:
        """Run one contender on one job and turn what it printed into a row."""
        base = Row(job.workload, job.label, contender.key, contender.name, "skipped")
        base.requests, base.concurrency = job.requests, job.concurrency
        if reason := self.unavailable(contender):
            base.detail = reason
            return base
        job, cut_note = self._cut(contender, job)
        base.requests = job.requests
        prepared = contender.prepare(job, self.workdir)
        argv = self.cpus.wrap_client(prepared.argv)
        timeout = self.args.timeout * (3 if job.workload == "memory" else 1)
        outcome = run_measured(
            argv, self.workdir, f"{job.label}-{contender.key}", timeout, rss_cap_mb
        )
        stopped = outcome.timed_out or outcome.rss_capped
        counts = None if stopped else prepared.count(outcome)
        base.note = "; ".join(n for n in (prepared.note, cut_note) if n)
        base.wall_s = outcome.wall_s
        base.peak_rss_mb = outcome.peak_rss_mb
        if outcome.rss_capped:
            base.status, base.detail = "rss cap", f"killed when its RSS passed {rss_cap_mb} MB"
        elif outcome.timed_out:
            base.status, base.detail = "timeout", f"killed after {timeout:g} s"
        elif outcome.returncode == 2 and contender.usage_error_skips:
            base.status, base.detail = "skipped", outcome.stderr_tail
        elif counts is None:
            base.status, base.detail = "error", f"exit {outcome.returncode}: {outcome.stderr_tail}"
        else:
            base.ok, base.failed = counts.ok, counts.failed
            base.status = "ok" if counts.failed == 0 else "failures"
            base.rate = counts.rate if counts.rate is not None else counts.ok / outcome.wall_s
            if outcome.returncode != 0 and base.status == "ok":
                base.status, base.detail = "error", f"exit {outcome.returncode}"
        return base

    def _cut(self, contender: Contender, job: Job) -> tuple[Job, str]:
        limit = (contender.max_requests or {}).get(job.workload)
        if limit is None or job.requests <= limit:
            return job, ""
        note = f"ran the first {limit:,} of {job.requests:,}: {contender.slow_reason}"
        return workloads.truncated_job(job, limit, self.workdir), note

    def startup_cost(self, contender: Contender, job: Job) -> float | None:
        """Wall time of the same command on an empty input (not for wrk: fixed duration)."""
        if contender.key == "wrk" or self.unavailable(contender):
            return None
        empty = workloads.empty_job(job, self.workdir)
        prepared = contender.prepare(empty, self.workdir)
        argv = self.cpus.wrap_client(prepared.argv)
        outcome = run_measured(argv, self.workdir, f"{empty.label}-{contender.key}", 60)
        return outcome.wall_s

    def compare(self, job: Job) -> None:
        say(f"\n== {job.label}: {job.requests:,} requests, concurrency {job.concurrency}")
        for contender in self.selected:
            if job.workload not in contender.workloads:
                continue
            row = self.best_of(contender, job, self.args.repeat)
            row.startup_s = self.startup_cost(contender, job)
            if job.ideal_s is not None:
                _add_efficiency(row, job)
            self.rows.append(row)
            say(_progress(row))

    def best_of(self, contender: Contender, job: Job, repeat: int) -> Row:
        """The best of ``repeat`` runs: a busy machine only ever makes a client slower."""
        best = self.measure(contender, job)
        for _ in range(repeat - 1):
            if best.status != "ok":
                break
            row = self.measure(contender, job)
            if row.status != "ok" or (row.rate or 0.0) > (best.rate or 0.0):
                best = row
        if repeat > 1 and best.status == "ok":
            best.note = "; ".join(n for n in (best.note, f"best of {repeat}") if n)
        return best

    def memory(self, jobs: list[Job]) -> None:
        for job in jobs:
            say(f"\n== {job.label}: {job.requests:,} input lines")
            for contender in self.selected:
                if "memory" not in contender.workloads:
                    continue
                cap = self.args.tutorial_rss_cap_mb if contender.key == "tutorial" else None
                row = self.measure(contender, job, cap)
                if row.status == "rss cap":
                    row.note = f"killed at {cap} MB RSS ({row.wall_s:.0f} s in)"
                self.rows.append(row)
                say(_progress(row))

    def startup(self, runs: int) -> None:
        say("\n== start-up")
        python = sys.executable
        commands = [
            ("python-baseline", "python -c pass", [python, "-c", "pass"]),
            ("asyncfetch-import", "python -c 'import asyncfetch'", [python, "-c", IMPORT]),
            ("asyncfetch-help", "asyncfetch --help", [str(asyncfetch_bin()), "--help"]),
        ]
        for key, name, argv in commands:
            row = Row("startup", "startup", key, name, "ok")
            if shutil.which(argv[0]) is None:
                row.status, row.detail = "skipped", f"{argv[0]} not found (pip install -e .)"
                self.rows.append(row)
                continue
            walls, rss = [], 0.0
            for i in range(runs):
                outcome = run_measured(self.cpus.wrap_client(argv), self.workdir, f"{key}-{i}", 60)
                if outcome.returncode != 0:
                    row.status, row.detail = "error", outcome.stderr_tail
                walls.append(outcome.wall_s)
                rss = max(rss, outcome.peak_rss_mb)
            row.wall_s, row.startup_s, row.peak_rss_mb = median(walls), min(walls), rss
            row.note = f"{runs} runs"
            self.rows.append(row)
            say(f"  {name:<40} median {row.wall_s * 1000:7.0f} ms  {row.status}")


def _add_efficiency(row: Row, job: Job) -> None:
    if row.status == "skipped" or row.rate is None or job.latency_s is None:
        return
    ideal = row.requests * job.latency_s / job.concurrency
    if row.key == "wrk":  # duration-based: efficiency from its steady rate
        row.efficiency = row.rate * job.latency_s / job.concurrency
        return
    if row.wall_s:
        row.efficiency = ideal / row.wall_s
        if row.startup_s is not None and row.wall_s > row.startup_s:
            row.efficiency_net = ideal / (row.wall_s - row.startup_s)


def _progress(row: Row) -> str:
    if row.status == "skipped":
        return f"  {row.name:<40} skipped"
    rate = f"{row.rate:10,.0f} req/s" if row.rate else " " * 16
    rss = f"{row.peak_rss_mb:6.0f} MB" if row.peak_rss_mb is not None else ""
    wall = f"{row.wall_s:7.2f} s" if row.wall_s is not None else ""
    extra = f"  {row.detail[:200]}" if row.detail else ""
    return f"  {row.name:<40} {rate} {wall} {rss}  {row.status} ({row.failed} failed){extra}"


def run_http(bench: Bench, scale: Scale) -> None:
    if shutil.which("nginx") is None:
        say(f"nginx not found: install it with: {NGINX_INSTALL}; skipping the HTTP workloads")
        return
    wanted = bench.args.workloads
    with NginxServer(bench.cpus) as server:
        say(f"nginx on {server.url('/')}; {bench.cpus.describe()}")
        if "throughput" in wanted:
            bench.compare(workloads.throughput_job(server, scale, bench.workdir))
        if "latency" in wanted:
            if find_echo_module() is None:
                say(f"nginx echo module not found: {NGINX_INSTALL}; skipping the latency workload")
            else:
                bench.compare(workloads.latency_job(server, scale, bench.workdir))
        if "memory" in wanted:
            bench.memory(workloads.memory_jobs(server, scale, bench.workdir))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for c in CONTENDERS:
            print(f"{c.key:<20} {c.name}")
        return 0
    scale = QUICK if args.quick else FULL
    fds = raise_fd_limit()
    cpus = plan_cpus()
    started = datetime.now(UTC)
    command = shlex.join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])])
    say(f"{command}\nopen-files limit {fds}; python {sys.executable}")
    load_at_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    bench = Bench(args, cpus, workdir)
    try:
        run_http(bench, scale)
        if "startup" in args.workloads:
            bench.startup(scale.startup_runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info(cpus.describe())
    machine["load"] = f"{load_at_start} at the start, {machine['load']} at the end"
    md = markdown(bench.rows, machine, command, when)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    json_path, md_path = write_results(args.out, stamp, bench.rows, machine, command, md)
    print(md)
    say(f"wrote {json_path} and {md_path} (took {time.time() - started.timestamp():.0f} s)")
    if args.update_docs:
        update_docs(ROOT / "docs" / "benchmarks.md", md)
        say("updated docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
