"""Run statistics: counters the writer updates and snapshots the progress display reads."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

from .models import Result, RunStats

# Log-spaced latency buckets (5% wide) keep percentiles within ~5% in constant memory,
# whatever the number of requests; an exact sorted list would grow with the run.
_BUCKET_GROWTH = 1.05
_LOG_GROWTH = math.log(_BUCKET_GROWTH)


class LatencyHistogram:
    """Constant-memory latency percentiles (milliseconds)."""

    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self.count = 0

    def add(self, millis: float) -> None:
        bucket = 0 if millis < 1.0 else int(math.log(millis) / _LOG_GROWTH) + 1
        self._buckets[bucket] += 1
        self.count += 1

    def percentile(self, fraction: float) -> float:
        """The upper edge of the bucket holding the given fraction (0..1) of samples."""
        if self.count == 0:
            return 0.0
        wanted = max(1, math.ceil(fraction * self.count))
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= wanted:
                return 1.0 if bucket == 0 else _BUCKET_GROWTH**bucket
        return _BUCKET_GROWTH ** max(self._buckets)


class StatsCollector:
    """Mutable counters owned by the engine; :meth:`snapshot` gives a frozen copy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.total: int | None = None
        self.done = 0
        self.ok = 0
        self.in_flight = 0
        self.retries = 0
        self.skipped = 0
        self.duplicates = 0
        self.by_status_class: Counter[str] = Counter()
        self.by_error_kind: Counter[str] = Counter()
        self.latency = LatencyHistogram()

    def record(self, result: Result) -> None:
        self.done += 1
        if result.ok:
            self.ok += 1
        if result.status is not None:
            self.by_status_class[f"{result.status // 100}xx"] += 1
        if result.error is not None:
            self.by_error_kind[result.error.kind] += 1
        self.retries += max(0, result.attempts - 1)
        if result.attempts > 0:
            self.latency.add(result.timings.total_ms)

    def snapshot(self) -> RunStats:
        return RunStats(
            elapsed_s=self._clock() - self.started,
            total=self.total,
            done=self.done,
            ok=self.ok,
            failed=self.done - self.ok,
            in_flight=self.in_flight,
            retries=self.retries,
            skipped=self.skipped,
            duplicates=self.duplicates,
            by_status_class=dict(self.by_status_class),
            by_error_kind=dict(self.by_error_kind),
            latency_ms={
                "p50": self.latency.percentile(0.50),
                "p90": self.latency.percentile(0.90),
                "p99": self.latency.percentile(0.99),
            },
        )
