"""Per-host figures in bounded memory, whatever the number of hosts.

A run may touch a million hosts, so the table keeps at most ``2 * capacity`` of them: when
it is full it keeps the busiest and the slowest ``capacity`` and forgets the rest. A host
forgotten and seen again starts from zero, so the figures of hosts outside the busiest
and slowest are a lower bound once anything was forgotten (``forgotten`` says how many).

Compiled with mypyc (tools/native.py): the writer feeds it every result of a run.
"""

from __future__ import annotations

from typing import Final

from .._models import Result
from ..pipeline.stats import LatencyHistogram

DEFAULT_CAPACITY: Final = 1000


def _host_end(url: str, start: int) -> int:
    end = len(url)
    for separator in ("/", "?", "#"):
        found = url.find(separator, start)
        if 0 <= found < end:
            end = found
    return end


def _host_start(url: str) -> int:
    start = url.find("://")
    return 0 if start < 0 else start + 3


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``, lower case, without user info (``""`` when none)."""
    start = _host_start(url)
    host = url[start : _host_end(url, start)]
    at = host.rfind("@")
    if at >= 0:
        host = host[at + 1 :]
    return host.lower()


class HostCounters:
    """The running counts of one host."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.requests = 0
        self.ok = 0
        self.retries = 0
        self.too_many_requests = 0
        self.unavailable = 0
        self.latency = LatencyHistogram()

    def add(self, status: int | None, ok: bool, attempts: int, total_ms: float) -> None:
        self.requests += 1
        if ok:
            self.ok += 1
        if attempts > 1:
            self.retries += attempts - 1
        if status == 429:
            self.too_many_requests += 1
        elif status == 503:
            self.unavailable += 1
        if attempts > 0:
            self.latency.add(total_ms)

    @property
    def mean_ms(self) -> float:
        latency = self.latency
        return latency.sum_ms / latency.count if latency.count else 0.0


class HostSummary:
    """One host's figures, as the summary, the report and the metrics show them.

    A plain class rather than a dataclass: compiled, it costs nothing at import, where a
    dataclass is generated (about a millisecond of every fetch's start).
    """

    def __init__(
        self,
        host: str,
        requests: int,
        ok: int,
        retries: int,
        too_many_requests: int,
        unavailable: int,
        mean_ms: float,
        p50_ms: float,
        p99_ms: float,
    ) -> None:
        self.host = host
        self.requests = requests
        self.ok = ok
        self.retries = retries
        self.too_many_requests = too_many_requests
        self.unavailable = unavailable
        self.mean_ms = mean_ms
        self.p50_ms = p50_ms
        self.p99_ms = p99_ms

    @property
    def ok_percent(self) -> float:
        return 100.0 * self.ok / self.requests if self.requests else 0.0

    @property
    def throttled(self) -> int:
        """Answers that asked the client to slow down: 429 and 503."""
        return self.too_many_requests + self.unavailable


def summarize(counters: HostCounters) -> HostSummary:
    return HostSummary(
        counters.host,
        counters.requests,
        counters.ok,
        counters.retries,
        counters.too_many_requests,
        counters.unavailable,
        counters.mean_ms,
        counters.latency.percentile(0.50),
        counters.latency.percentile(0.99),
    )


class HostTable:
    """Counts per host for at most ``2 * capacity`` hosts (see the module's docstring)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.forgotten = 0
        self._hosts: dict[str, HostCounters] = {}
        # The last URL's "scheme://host/" and its counters: a run's URLs mostly come host
        # by host, and a prefix test is cheaper than taking every URL apart.
        self._last_prefix = ""
        self._last: HostCounters | None = None

    def __len__(self) -> int:
        return len(self._hosts)

    def add(self, url: str, status: int | None, ok: bool, attempts: int, total_ms: float) -> None:
        counters = self._last
        if counters is None or not self._last_prefix or not url.startswith(self._last_prefix):
            counters = self._counters_of(url)
        counters.add(status, ok, attempts, total_ms)

    def _counters_of(self, url: str) -> HostCounters:
        host = host_of(url)
        counters = self._hosts.get(host)
        if counters is None:
            if len(self._hosts) >= 2 * self.capacity:
                self._forget()
            counters = self._hosts[host] = HostCounters(host)
        end = _host_end(url, _host_start(url))
        # Only a prefix that ends the host ("/") is safe: "a.test" also starts "a.test.org".
        self._last_prefix = url[: end + 1] if url[end : end + 1] == "/" else ""
        self._last = counters
        return counters

    def add_result(self, result: Result) -> None:
        status = result.status
        ok = result.error is None and status is not None and status < 400
        self.add(result.url, status, ok, result.attempts, result.timings.total_ms)

    def add_results(self, results: list[Result]) -> None:
        for result in results:
            self.add_result(result)

    def busiest(self, count: int) -> list[HostSummary]:
        """The ``count`` hosts with the most requests, busiest first."""
        ranked = sorted(self._hosts.values(), key=_requests_then_name)
        return [summarize(counters) for counters in ranked[:count]]

    def slowest(self, count: int) -> list[HostSummary]:
        """The ``count`` hosts with the highest mean latency, slowest first."""
        ranked = sorted(self._hosts.values(), key=_mean_then_name)
        return [summarize(counters) for counters in ranked[:count]]

    def most_throttled(self, count: int) -> list[HostSummary]:
        """Up to ``count`` hosts that answered 429 or 503, the most such answers first."""
        throttled = [c for c in self._hosts.values() if c.too_many_requests or c.unavailable]
        throttled.sort(key=_throttled_then_name)
        return [summarize(counters) for counters in throttled[:count]]

    def _forget(self) -> None:
        # Keeping the busiest half and the slowest half of ``capacity`` means a host that
        # matters on either count survives however many one-request hosts pass through.
        kept: dict[str, HostCounters] = {}
        half = max(self.capacity // 2, 1)
        for counters in sorted(self._hosts.values(), key=_requests_then_name)[:half]:
            kept[counters.host] = counters
        for counters in sorted(self._hosts.values(), key=_mean_then_name):
            if len(kept) >= self.capacity:
                break
            kept.setdefault(counters.host, counters)
        self.forgotten += len(self._hosts) - len(kept)
        self._hosts = kept
        self._last_prefix, self._last = "", None


def _requests_then_name(counters: HostCounters) -> tuple[int, str]:
    return (-counters.requests, counters.host)


def _mean_then_name(counters: HostCounters) -> tuple[float, str]:
    return (-counters.mean_ms, counters.host)


def _throttled_then_name(counters: HostCounters) -> tuple[int, str]:
    return (-(counters.too_many_requests + counters.unavailable), counters.host)
