"""Run one contender as a child process and measure wall time and peak RSS.

Peak RSS comes from ``os.wait4``: the kernel's rusage for exactly that child (and the
children it waited for), so no ``/usr/bin/time`` and no wrapper process is needed.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessOutcome:
    """What happened to one measured child process."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    timed_out: bool
    rss_capped: bool
    stdout_path: Path
    stderr_tail: str


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the server and the client run on (``None``: not pinned)."""

    server: int | None
    client: int | None

    def wrap_client(self, argv: Sequence[str]) -> list[str]:
        return _pin(argv, self.client)

    def wrap_server(self, argv: Sequence[str]) -> list[str]:
        return _pin(argv, self.server)

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (fewer than 2 CPUs or no taskset)"
        return f"server on CPU {self.server}, client on CPU {self.client} (taskset)"


def _pin(argv: Sequence[str], cpu: int | None) -> list[str]:
    if cpu is None:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def plan_cpus() -> CpuPlan:
    """Pin server and client to different CPUs when there are two or more."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return CpuPlan(server=None, client=None)
    return CpuPlan(server=cpus[0], client=cpus[1])


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else 1_048_576
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _watch_rss(pid: int, cap_mb: float, done: threading.Event, hit: threading.Event) -> None:
    """Kill the child when its resident set passes ``cap_mb`` (polled every 50 ms)."""
    while not done.wait(0.05):
        if _rss_mb(pid) > cap_mb:
            hit.set()
            _kill_group(pid)
            return


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def run_measured(
    argv: Sequence[str],
    workdir: Path,
    label: str,
    timeout_s: float,
    rss_cap_mb: float | None = None,
) -> ProcessOutcome:
    """Run ``argv`` to completion (or ``timeout_s``, or ``rss_cap_mb``) and measure it."""
    stdout_path = workdir / f"{label}.stdout"
    stderr_path = workdir / f"{label}.stderr"
    timed_out, capped, done = threading.Event(), threading.Event(), threading.Event()
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # own process group, so a kill takes the whole tree
        )
        timer = threading.Timer(timeout_s, lambda: (timed_out.set(), _kill_group(proc.pid)))
        timer.start()
        if rss_cap_mb is not None:
            watch = (proc.pid, rss_cap_mb, done, capped)
            threading.Thread(target=_watch_rss, args=watch, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ProcessOutcome(
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,  # Linux reports KiB
        returncode=proc.returncode,
        timed_out=timed_out.is_set(),
        rss_capped=capped.is_set(),
        stdout_path=stdout_path,
        stderr_tail=_tail(stderr_path),
    )


def _tail(path: Path, limit: int = 600) -> str:
    data = path.read_bytes()[-limit:]
    return data.decode("utf-8", "replace").strip()


@dataclass(frozen=True)
class Usage:
    wall_s: float
    user_s: float
    sys_s: float


def run_counted(
    argv: list[str],
    out: Path,
    expected: int,
    env: dict[str, str] | None,
    stderr: int | None = None,
) -> Usage:
    """Run ``argv`` (which writes ``expected`` lines to ``out``); its wall and CPU time."""
    out.unlink(missing_ok=True)
    started = os.times().elapsed
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=stderr, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = os.times().elapsed - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[:3]} failed with exit status {os.waitstatus_to_exitcode(status)}")
    with out.open("rb") as lines:
        written = sum(1 for _ in lines)
    if written != expected:
        sys.exit(f"{argv[:3]} wrote {written} records, expected {expected}")
    return Usage(wall, usage.ru_utime, usage.ru_stime)
