"""Prometheus metrics of a running fetch or worker, with prometheus-client.

The HTTP server runs in prometheus-client's thread; each scrape asks the event loop for a
snapshot of the run's counters (``call_soon_threadsafe``), so nothing is read while the
writer changes it and the request path does no extra work at all. Per-host series are
limited to the busiest and the most throttled hosts, so label cardinality stays bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .._models import RunStats
from ..pipeline.stats import StatsCollector
from .hosts import HostSummary, HostTable

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

# Histogram bounds in seconds; the log buckets behind them are 5% wide, so a request
# near a bound may be counted in the next one.
LATENCY_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HOST_SERIES = 20
_SNAPSHOT_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    stats: RunStats
    latency_buckets: list[tuple[float, int]]
    latency_count: int
    latency_sum_ms: float
    busiest: list[HostSummary]
    throttled: list[HostSummary]


def take_snapshot(stats: StatsCollector, hosts: HostTable) -> MetricsSnapshot:
    return MetricsSnapshot(
        stats.snapshot(),
        stats.latency.buckets(),
        stats.latency.count,
        stats.latency.sum_ms,
        hosts.busiest(HOST_SERIES),
        hosts.most_throttled(HOST_SERIES),
    )


def _cumulative(buckets: list[tuple[float, int]], count: int) -> list[tuple[str, float]]:
    """Prometheus ``le`` buckets (seconds) from log buckets (upper edges in ms)."""
    result: list[tuple[str, float]] = []
    seen, index = 0, 0
    for bound in LATENCY_BOUNDS_S:
        while index < len(buckets) and buckets[index][0] <= bound * 1000.0:
            seen += buckets[index][1]
            index += 1
        result.append((repr(bound), float(seen)))
    result.append(("+Inf", float(count)))
    return result


def metric_families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    stats = snapshot.stats
    requests = CounterMetricFamily(
        "asyncfetch_requests", "Finished requests by status class", labels=["status_class"]
    )
    with_status = 0
    for status_class, count in stats.by_status_class.items():
        requests.add_metric([status_class], count)
        with_status += count
    requests.add_metric(["none"], stats.done - with_status)
    yield requests
    errors = CounterMetricFamily("asyncfetch_errors", "Failed requests by kind", labels=["kind"])
    for kind, count in stats.by_error_kind.items():
        errors.add_metric([kind], count)
    yield errors
    outcomes = CounterMetricFamily("asyncfetch_results", "Results by outcome", labels=["outcome"])
    outcomes.add_metric(["ok"], stats.ok)
    outcomes.add_metric(["failed"], stats.failed)
    yield outcomes
    yield CounterMetricFamily("asyncfetch_retries", "Retries made", value=stats.retries)
    yield GaugeMetricFamily("asyncfetch_in_flight", "Requests in flight", value=stats.in_flight)
    yield GaugeMetricFamily("asyncfetch_elapsed_seconds", "Run time", value=stats.elapsed_s)
    yield HistogramMetricFamily(
        "asyncfetch_request_duration_seconds",
        "Time per request, all attempts included",
        buckets=_cumulative(snapshot.latency_buckets, snapshot.latency_count),
        sum_value=snapshot.latency_sum_ms / 1000.0,
    )
    yield from _host_families(snapshot)


def _host_families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    busiest = CounterMetricFamily(
        "asyncfetch_host_requests",
        f"Finished requests of the {HOST_SERIES} busiest hosts",
        labels=["host"],
    )
    for host in snapshot.busiest:
        busiest.add_metric([host.host], host.requests)
    yield busiest
    throttled = CounterMetricFamily(
        "asyncfetch_host_throttled",
        f"429 and 503 answers of the {HOST_SERIES} most throttled hosts",
        labels=["host", "status"],
    )
    for host in snapshot.throttled:
        throttled.add_metric([host.host, "429"], host.too_many_requests)
        throttled.add_metric([host.host, "503"], host.unavailable)
    yield throttled


class _Collector:
    """A prometheus-client collector that reads a fresh snapshot on each scrape."""

    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(self._snapshot())


class MetricsServer:
    """``/metrics`` on ``host:port`` while the run goes (an async context manager)."""

    def __init__(self, stats: StatsCollector, hosts: HostTable, port: int, host: str) -> None:
        self._stats = stats
        self._hosts = hosts
        self._address = (host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last: MetricsSnapshot | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self._address[0]}:{self._server.server_port}/metrics"

    async def __aenter__(self) -> MetricsServer:
        from prometheus_client import CollectorRegistry, start_http_server

        self._loop = asyncio.get_running_loop()
        self._last = self._take()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._from_loop))
        host, port = self._address
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {error.strerror}"
            ) from error
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._server is None or self._thread is None:
            return
        server, thread = self._server, self._thread
        self._server = self._thread = None
        # shutdown() waits for the serving thread, which may be waiting for the loop.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()

    def _take(self) -> MetricsSnapshot:
        self._last = take_snapshot(self._stats, self._hosts)
        return self._last

    def _from_loop(self) -> MetricsSnapshot:
        """Called on the server's thread: the loop takes the snapshot."""
        future: concurrent.futures.Future[MetricsSnapshot] = concurrent.futures.Future()

        def take() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._take())
            except BaseException as error:  # handed to the scraping thread, which reports it
                future.set_exception(error)

        assert self._loop is not None
        assert self._last is not None
        try:
            self._loop.call_soon_threadsafe(take)
            return future.result(timeout=_SNAPSHOT_WAIT_S)
        except (RuntimeError, concurrent.futures.TimeoutError):
            future.cancel()  # the loop is closed or stuck: the last snapshot will do
            return self._last
