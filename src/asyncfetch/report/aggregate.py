"""One pass over a run's records into bounded-memory figures for a report.

Everything kept is bounded: a log-bucket latency histogram (percentiles within 5%), a
timeline of at most ``max_buckets`` buckets, per-host counters for the busiest and
slowest hosts (hosts.py), the slowest requests (a heap), the first failed requests and
the most frequent error messages. A million records cost what a thousand do, in memory.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from .._models import Result
from ..pipeline.stats import LatencyHistogram
from .hosts import HostSummary, HostTable
from .records import Observation, from_result
from .timeline import Timeline, TimelineSeries, epoch_seconds

PERCENTILES: Final = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))
SHOWN_HOSTS: Final = 20


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Failures that share a kind (or status) and a message."""

    what: str
    message: str
    count: int


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows, computed once at the end of the pass."""

    requests: int
    ok: int
    retries: int
    bytes: int
    wall_s: float
    started_s: float | None
    ended_s: float | None
    by_status_class: dict[str, int]
    by_error_kind: dict[str, int]
    latency_ms: dict[str, float]
    latency_buckets: list[tuple[float, int]]
    timeline: TimelineSeries
    busiest_hosts: list[HostSummary]
    slowest_hosts: list[HostSummary]
    hosts_forgotten: int
    slowest: list[Observation]
    failed: list[Observation]
    error_groups: list[ErrorGroup]
    notes: list[str] = field(default_factory=list)

    @property
    def failed_count(self) -> int:
        return self.requests - self.ok

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0


class _Span:
    """The first start and the last end seen, in epoch seconds."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def add(self, started: float, ended: float) -> None:
        if self.first is None or started < self.first:
            self.first = started
        if self.last is None or ended > self.last:
            self.last = ended

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return max(self.last - self.first, 0.0)


class _ErrorGroups:
    """Counts per (kind, message) for at most ``2 * limit`` distinct pairs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, what: str, message: str) -> None:
        self.counts[(what, message)] += 1
        if len(self.counts) > 2 * self.limit:
            self.counts = Counter(dict(self.counts.most_common(self.limit)))

    def top(self, count: int) -> list[ErrorGroup]:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return [ErrorGroup(what, message, n) for (what, message), n in ranked[:count]]


class RunAggregate:
    """Feed it observations (``add``/``add_batch``) or live Results; ``data()`` at the end."""

    def __init__(
        self, *, host_capacity: int = 1000, keep_slowest: int = 50, keep_failed: int = 100
    ) -> None:
        self.requests = 0
        self.ok = 0
        self.retries = 0
        self.bytes = 0
        self.by_status_class: Counter[str] = Counter()
        self.by_error_kind: Counter[str] = Counter()
        self.latency = LatencyHistogram()
        self.hosts = HostTable(host_capacity)
        self.timeline = Timeline()
        self._span = _Span()
        self._keep_slowest = keep_slowest
        self._slowest: list[tuple[float, int, Observation]] = []
        self._keep_failed = keep_failed
        self._failed: list[Observation] = []
        self._errors = _ErrorGroups(limit=1000)

    def add_batch(self, observations: list[Observation]) -> None:
        for observation in observations:
            self.add(observation)

    def add_result(self, result: Result) -> None:
        self.add(from_result(result))

    def add(self, seen: Observation) -> None:
        self.requests += 1
        status, attempts = seen.status, seen.attempts
        self.by_status_class["none" if status is None else f"{status // 100}xx"] += 1
        if seen.ok:
            self.ok += 1
        else:
            self._add_failure(seen)
        if attempts > 1:
            self.retries += attempts - 1
        self.bytes += seen.bytes
        self.hosts.add(seen.url, status, seen.ok, attempts, seen.total_ms)
        if attempts > 0:
            self.latency.add(seen.total_ms)
            self._add_slow(seen)
        started = epoch_seconds(seen.started_at)
        if started is not None:
            ended = started + seen.total_ms / 1000.0
            self._span.add(started, ended)
            self.timeline.add(ended, status, seen.ok)

    def _add_failure(self, seen: Observation) -> None:
        if seen.error_kind is not None:
            self.by_error_kind[seen.error_kind] += 1
            self._errors.add(seen.error_kind, seen.error_message or "")
        else:
            self._errors.add(f"HTTP {seen.status}", "")
        if len(self._failed) < self._keep_failed:
            self._failed.append(seen)

    def _add_slow(self, seen: Observation) -> None:
        entry = (seen.total_ms, self.requests, seen)
        if len(self._slowest) < self._keep_slowest:
            heapq.heappush(self._slowest, entry)
        elif seen.total_ms > self._slowest[0][0]:
            heapq.heapreplace(self._slowest, entry)

    def data(self, notes: list[str] | None = None) -> ReportData:
        return ReportData(
            requests=self.requests,
            ok=self.ok,
            retries=self.retries,
            bytes=self.bytes,
            wall_s=self._span.seconds,
            started_s=self._span.first,
            ended_s=self._span.last,
            by_status_class=dict(sorted(self.by_status_class.items())),
            by_error_kind=dict(sorted(self.by_error_kind.items())),
            latency_ms=self._percentiles(),
            latency_buckets=self.latency.buckets(),
            timeline=self.timeline.series(),
            busiest_hosts=self.hosts.busiest(SHOWN_HOSTS),
            slowest_hosts=self.hosts.slowest(SHOWN_HOSTS),
            hosts_forgotten=self.hosts.forgotten,
            slowest=[entry[2] for entry in sorted(self._slowest, reverse=True)],
            failed=list(self._failed),
            error_groups=self._errors.top(20),
            notes=list(notes or []),
        )

    def _percentiles(self) -> dict[str, float]:
        figures = {name: self.latency.percentile(share) for name, share in PERCENTILES}
        figures["max"] = self.latency.percentile(1.0)
        return figures
