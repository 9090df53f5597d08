"""Workload definitions and their input files (written line by line, never held in memory)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from servers import DELAY_BODY, DELAY_SECONDS, SMALL_BODY_SIZE, NginxServer


@dataclass(frozen=True)
class Job:
    """One workload instance that each contender runs once."""

    workload: str
    label: str
    base_url: str
    requests: int
    concurrency: int
    urls_file: Path
    expected_size: int
    wrk_duration_s: float
    latency_s: float | None = None

    @property
    def ideal_s(self) -> float | None:
        """N × latency / C: the time a perfect client would need."""
        if self.latency_s is None:
            return None
        return self.requests * self.latency_s / self.concurrency


@dataclass(frozen=True)
class Scale:
    throughput_requests: int
    latency_requests: int
    memory_lines: tuple[int, ...]
    wrk_duration_s: float
    startup_runs: int


FULL = Scale(50_000, 10_000, (10_000, 1_000_000), 5.0, 9)
QUICK = Scale(5_000, 3_000, (1_000, 100_000), 2.0, 3)


def write_urls(target: Path, base_url: str, count: int) -> Path:
    """Unique URLs (``?i=N``) so that no client can dedupe or cache them."""
    with target.open("w") as out:
        for start in range(0, count, 10_000):
            stop = min(count, start + 10_000)
            out.write("".join(f"{base_url}?i={i}\n" for i in range(start, stop)))
    return target


def throughput_job(server: NginxServer, scale: Scale, workdir: Path) -> Job:
    n = scale.throughput_requests
    return Job(
        workload="throughput",
        label=f"throughput-{n}",
        base_url=server.url("/small"),
        requests=n,
        concurrency=64,
        urls_file=write_urls(workdir / f"small-{n}.txt", server.url("/small"), n),
        expected_size=SMALL_BODY_SIZE,
        wrk_duration_s=scale.wrk_duration_s,
    )


def latency_job(server: NginxServer, scale: Scale, workdir: Path) -> Job:
    n = scale.latency_requests
    return Job(
        workload="latency",
        label=f"latency-{n}",
        base_url=server.url("/delay"),
        requests=n,
        concurrency=1000,
        urls_file=write_urls(workdir / f"delay-{n}.txt", server.url("/delay"), n),
        expected_size=len(DELAY_BODY),
        wrk_duration_s=scale.wrk_duration_s,
        latency_s=DELAY_SECONDS,
    )


def memory_jobs(server: NginxServer, scale: Scale, workdir: Path) -> list[Job]:
    jobs = []
    for n in scale.memory_lines:
        jobs.append(
            Job(
                workload="memory",
                label=f"memory-{n}",
                base_url=server.url("/small"),
                requests=n,
                concurrency=64,
                urls_file=write_urls(workdir / f"memory-{n}.txt", server.url("/small"), n),
                expected_size=SMALL_BODY_SIZE,
                wrk_duration_s=scale.wrk_duration_s,
            )
        )
    return jobs


def truncated_job(job: Job, requests: int, workdir: Path) -> Job:
    """The first ``requests`` lines of ``job``: for contenders too slow for the full count."""
    target = workdir / f"{job.label}-first-{requests}.txt"
    with job.urls_file.open() as source, target.open("w") as out:
        out.writelines(line for _, line in zip(range(requests), source, strict=False))
    return replace(job, label=f"{job.label}-first-{requests}", requests=requests, urls_file=target)


def empty_job(job: Job, workdir: Path) -> Job:
    """The same job with no input: what a contender costs to start and stop."""
    empty = workdir / "empty.txt"
    empty.touch()
    return Job(
        workload=job.workload,
        label=f"{job.label}-empty",
        base_url=job.base_url,
        requests=0,
        concurrency=job.concurrency,
        urls_file=empty,
        expected_size=job.expected_size,
        wrk_duration_s=job.wrk_duration_s,
        latency_s=job.latency_s,
    )
