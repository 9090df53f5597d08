"""Counts over time in a bounded number of buckets: throughput, failures, status classes.

Buckets start one second wide; whenever the run spans more than ``max_buckets`` of them,
their width doubles and neighbours merge, so a run of a week costs what a minute does.
Keys are absolute (epoch seconds // width), which is what makes merging a halving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# Columns of every bucket: the five status classes, no status (a transport error), failed.
COLUMNS = ("1xx", "2xx", "3xx", "4xx", "5xx", "error", "failed")
_NO_STATUS = 5
_FAILED = 6


class _SecondCache:
    """The last whole second parsed: records of one second share their first 19 chars."""

    prefix = ""
    epoch = 0.0


_cache = _SecondCache()


def epoch_seconds(stamp: str) -> float | None:
    """``2026-11-24T06:47:00.905Z`` (or any ISO 8601 time) as epoch seconds; None if bad."""
    if len(stamp) == 24 and stamp[19] == "." and stamp[23] == "Z":
        prefix = stamp[:19]
        if prefix != _cache.prefix:
            whole = _parse(prefix)
            if whole is None:
                return None
            _cache.prefix, _cache.epoch = prefix, whole
        millis = stamp[20:23]
        return _cache.epoch + int(millis) / 1000.0 if millis.isdigit() else None
    return _parse(stamp)


def _parse(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class TimelineSeries:
    """Contiguous buckets from ``start_s`` (epoch), each ``width_s`` wide."""

    start_s: float
    width_s: float
    counts: dict[str, list[int]]


class Timeline:
    def __init__(self, max_buckets: int = 600, width_s: float = 1.0) -> None:
        self.max_buckets = max_buckets
        self.width_s = width_s
        self._rows: dict[int, list[int]] = {}
        self._low = 0
        self._high = -1

    def add(self, at_s: float, status: int | None, ok: bool) -> None:
        key = int(at_s // self.width_s)
        row = self._rows.get(key)
        if row is None:
            row = self._new_row(key)
        if status is None:
            row[_NO_STATUS] += 1
        elif 100 <= status < 600:
            row[status // 100 - 1] += 1
        if not ok:
            row[_FAILED] += 1

    def _new_row(self, key: int) -> list[int]:
        if not self._rows:
            self._low = self._high = key
        self._low, self._high = min(self._low, key), max(self._high, key)
        self._rows[key] = [0] * len(COLUMNS)
        while self._high - self._low >= self.max_buckets:
            self._coarsen()
            key //= 2
        return self._rows[key]

    def _coarsen(self) -> None:
        merged: dict[int, list[int]] = {}
        for key, row in self._rows.items():
            into = merged.get(key // 2)
            if into is None:
                merged[key // 2] = row
            else:
                for column, count in enumerate(row):
                    into[column] += count
        self._rows = merged
        self._low //= 2
        self._high //= 2
        self.width_s *= 2

    def series(self) -> TimelineSeries:
        if not self._rows:
            return TimelineSeries(0.0, self.width_s, {name: [] for name in COLUMNS})
        empty = [0] * len(COLUMNS)
        rows = [self._rows.get(key, empty) for key in range(self._low, self._high + 1)]
        counts = {name: [row[column] for row in rows] for column, name in enumerate(COLUMNS)}
        return TimelineSeries(self._low * self.width_s, self.width_s, counts)
