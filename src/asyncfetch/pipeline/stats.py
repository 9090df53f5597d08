"""Run statistics: counters the writer updates and snapshots the progress display reads."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

from .._models import Result, RunStats

# Log-spaced latency buckets (5% wide) keep percentiles within ~5% in constant memory,
# whatever the number of requests; an exact sorted list would grow with the run.
# Final, and math.log called by name: compiled, both are then C (a static and libm's
# log) instead of two module dictionary lookups and a Python call per request.
_BUCKET_GROWTH: Final = 1.05
_LOG_GROWTH: Final = math.log(_BUCKET_GROWTH)


class LatencyHistogram:
    """Constant-memory latency percentiles (milliseconds)."""

    def __init__(self) -> None:
        # Samples by bucket number, as a list: cheaper to bump than a Counter. 256 buckets
        # reach four minutes; the list grows for slower requests (a day is bucket 375).
        self._counts: list[int] = [0] * 256
        self.count = 0
        self.sum_ms = 0.0

    def add(self, millis: float) -> None:
        bucket = 0 if millis < 1.0 else int(math.log(millis) / _LOG_GROWTH) + 1
        counts = self._counts
        if bucket >= len(counts):
            counts.extend([0] * (bucket + 1 - len(counts)))
        counts[bucket] += 1
        self.count += 1
        self.sum_ms += millis

    def percentile(self, fraction: float) -> float:
        """The upper edge of the bucket holding the given fraction (0..1) of samples."""
        if self.count == 0:
            return 0.0
        wanted = max(1, math.ceil(fraction * self.count))
        seen = 0
        highest = 0
        for bucket, samples in enumerate(self._counts):
            if not samples:
                continue
            seen += samples
            highest = bucket
            if seen >= wanted:
                return 1.0 if bucket == 0 else _BUCKET_GROWTH**bucket
        return _BUCKET_GROWTH**highest

    def buckets(self) -> list[tuple[float, int]]:
        """``(upper edge in ms, samples)`` of every non-empty bucket, fastest first."""
        return [
            (1.0 if bucket == 0 else _BUCKET_GROWTH**bucket, samples)
            for bucket, samples in enumerate(self._counts)
            if samples
        ]


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
        # Status 100..999 counted by its first digit in a list (record runs per request and
        # a Counter keyed by a formatted string cost several times more); others by class.
        self._by_hundreds = [0] * 10
        self._other_status_classes: Counter[str] = Counter()
        self._by_error_kind: dict[str, int] = {}
        self.latency = LatencyHistogram()

    @property
    def by_status_class(self) -> dict[str, int]:
        """Results per status class (``{"2xx": 10, "5xx": 1}``), in class order."""
        counted = {f"{digit}xx": n for digit, n in enumerate(self._by_hundreds) if n}
        counted.update(self._other_status_classes)
        return dict(sorted(counted.items()))

    @property
    def by_error_kind(self) -> dict[str, int]:
        """Results per error kind (``{"timeout": 2}``)."""
        return dict(self._by_error_kind)

    def record(self, result: Result) -> None:
        self.done += 1
        status = result.status
        error = result.error
        if status is not None:
            if 100 <= status < 1000:
                self._by_hundreds[status // 100] += 1
            else:
                self._other_status_classes[f"{status // 100}xx"] += 1
            if error is None and status < 400:
                self.ok += 1
        if error is not None:
            kinds = self._by_error_kind
            kinds[error.kind] = kinds.get(error.kind, 0) + 1
        attempts = result.attempts
        if attempts > 0:
            if attempts > 1:
                self.retries += attempts - 1
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
            by_status_class=self.by_status_class,
            by_error_kind=self.by_error_kind,
            latency_ms={
                "p50": self.latency.percentile(0.50),
                "p90": self.latency.percentile(0.90),
                "p99": self.latency.percentile(0.99),
            },
        )
