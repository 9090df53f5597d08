"""The adaptive per-host limits, driven by a fake clock: pure decisions, no network."""

from __future__ import annotations

import asyncio

import pytest

from asyncfetch._errors import ConnectError, DNSError
from asyncfetch._models import Response
from asyncfetch.policy.adaptive import (
    MIN_RATE,
    RATE_DECREASE,
    HostLimit,
    HostTable,
)
from asyncfetch.policy.limits import PerHostLimiter


def ok() -> Response:
    return Response(200, "http://h/", (), b"")


def throttled(status: int = 429, retry_after: str | None = None) -> Response:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Response(status, "http://h/", headers, b"")


def run_at(limit: HostLimit, rate: float, seconds: float, start: float = 0.0) -> float:
    """Healthy 1 ms requests at ``rate`` per second for ``seconds``; returns the end time."""
    now = start
    while now < start + seconds:
        limit.start(now)
        limit.finish()
        limit.observe(ok(), now, now + 0.001)
        now += 1.0 / rate
    return now


def test_a_healthy_host_keeps_the_users_limits() -> None:
    limit = HostLimit(8, None, adapt=True)
    end = run_at(limit, 1000, 2.0)
    assert limit.concurrency == 8
    assert limit.rate(end) is None
    assert not limit.learned


def test_429_cuts_the_rate_to_what_the_host_accepted_and_pauses_it() -> None:
    limit = HostLimit(8, None, adapt=True)
    end = run_at(limit, 50, 3.0)
    limit.observe(throttled(retry_after="2"), end, end + 0.001)
    rate = limit.rate(end + 2.0)
    assert rate is not None
    assert rate == pytest.approx(50 * RATE_DECREASE, rel=0.1)
    assert limit.concurrency < 8
    # Paused: nothing may start before the Retry-After has passed.
    assert not limit.can_start(end + 1.9)
    assert limit.wait_time(end + 1.0) == pytest.approx(1.001)
    assert limit.can_start(end + 2.01)
    assert limit.status_429 == 1


def test_the_rate_grows_back_while_healthy_but_never_above_the_cap() -> None:
    limit = HostLimit(8, 30.0, adapt=True)
    end = run_at(limit, 30, 2.0)
    limit.observe(throttled(), end, end)
    after_cut = limit.rate(end)
    assert after_cut is not None and after_cut < 30
    later = limit.rate(end + 60)
    assert later == 30.0
    assert after_cut < (limit.rate(end + 1) or 0) <= 30.0


def test_signals_from_before_a_cut_do_not_cut_again() -> None:
    limit = HostLimit(8, None, adapt=True)
    end = run_at(limit, 100, 2.0)
    for _ in range(8):  # eight requests that were in flight together all get a 429
        limit.observe(throttled(), end - 0.01, end)
    first = limit.rate(end)
    assert first is not None and first > 100 * RATE_DECREASE * 0.8
    assert limit.concurrency == int(8 * 0.7)


def test_rate_has_a_floor_and_a_second_cut_is_linear_growth() -> None:
    limit = HostLimit(4, None, adapt=True)
    limit.observe(throttled(), 0.0, 0.01)  # the very first request: nothing accepted yet
    assert limit.rate(0.01) == MIN_RATE
    limit.observe(throttled(), 5.0, 5.01)
    second = limit.rate(5.01)
    assert second is not None
    assert limit.rate(6.01) == pytest.approx(second * 1.05)


def test_latency_far_above_the_baseline_cuts_concurrency_and_health_restores_it() -> None:
    limit = HostLimit(8, None, adapt=True)
    now = 0.0
    for _ in range(20):  # baseline: 20 ms
        limit.observe(ok(), now, now + 0.02)
        now += 0.02
    for _ in range(10):  # the host slows to 200 ms
        limit.observe(ok(), now, now + 0.2)
        now += 0.2
    assert limit.concurrency < 8
    for _ in range(200):
        limit.observe(ok(), now, now + 0.02)
        now += 0.02
    assert limit.concurrency == 8


def test_small_latency_noise_is_not_load() -> None:
    limit = HostLimit(8, None, adapt=True)
    now = 0.0
    for n in range(500):  # 0.2 ms to 5 ms: ratios of 25, but only milliseconds
        limit.observe(ok(), now, now + (0.0002 if n % 2 else 0.005))
        now += 0.001
    assert limit.concurrency == 8


def test_refused_connections_cut_concurrency_to_one_but_dns_failures_do_not() -> None:
    limit = HostLimit(8, None, adapt=True)
    for n in range(10):
        limit.observe(DNSError("no such host"), float(n), n + 0.5)
    assert limit.concurrency == 8
    for n in range(10):
        limit.observe(ConnectError("refused"), float(n), n + 0.5)
    assert limit.concurrency == 1
    assert limit.rate(10.0) is None  # refusals say nothing about a rate


def test_fixed_mode_learns_nothing_but_still_honours_retry_after() -> None:
    limit = HostLimit(8, 20.0, adapt=False)
    end = run_at(limit, 20, 1.0)
    limit.observe(throttled(503, retry_after="3"), end, end)
    assert limit.concurrency == 8
    assert limit.rate(end + 10) == 20.0
    assert not limit.can_start(end + 2.9)
    assert limit.status_503 == 1


def test_the_rate_spaces_starts() -> None:
    limit = HostLimit(8, 10.0, adapt=True)
    assert limit.can_start(0.0)
    limit.start(0.0)
    assert not limit.can_start(0.05)
    assert limit.wait_time(0.05) == pytest.approx(0.05)
    assert limit.can_start(0.1)


def test_host_table_is_bounded_and_keeps_busy_and_learned_hosts() -> None:
    table = HostTable(8, None, capacity=4)
    busy = table.get("busy")
    busy.start(0.0)
    learned = table.get("learned")
    learned.observe(throttled(), 0.0, 0.0)
    for n in range(10):
        table.get(f"idle-{n}")
        assert len(table.hosts) <= 4
    assert "busy" in table.hosts
    assert "learned" in table.hosts


def test_reports_put_throttled_hosts_first() -> None:
    table = HostTable(8, None)
    run_at(table.get("busy"), 100, 1.0)
    table.get("throttled").observe(throttled(), 0.0, 0.0)
    reports = table.reports(1.0, top=1)
    assert [report.host for report in reports] == ["throttled"]
    assert reports[0].throttled_429 == 1
    assert reports[0].rate is not None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_pause_holds_back_every_request_for_the_host() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(8, clock=clock, sleep=clock.sleep)
    started: list[float] = []

    async def attempt() -> None:
        async with limiter.hold("h"):
            started.append(clock.now)

    async with limiter.hold("h"):
        limiter.observe("h", throttled(retry_after="5"), clock.now)
    paused_at = clock.now
    await asyncio.gather(*(attempt() for _ in range(5)))
    assert started and min(started) >= paused_at + 5
    assert not limiter.try_hold("other") or limiter.release("other") is None


async def test_try_hold_refuses_a_paused_host_and_wakes_the_caller_when_it_may_go() -> None:
    limiter = PerHostLimiter(8)
    woken = asyncio.Event()
    limiter.add_ready_callback(woken.set)
    assert limiter.try_hold("h")
    limiter.observe("h", throttled(retry_after="1"), limiter.now())
    limiter.release("h")
    assert not limiter.try_hold("h")
    await asyncio.wait_for(woken.wait(), 5)
    assert limiter.try_hold("h")


def test_latency_is_not_held_against_the_host_while_the_client_is_the_bottleneck() -> None:
    from asyncfetch.policy.adaptive import client_is_bottleneck

    assert client_is_bottleneck(cpu_s=0.09, wall_s=0.1, loop_late_s=0.0)  # our CPU is full
    assert client_is_bottleneck(cpu_s=0.01, wall_s=0.1, loop_late_s=0.05)  # our loop is late
    assert not client_is_bottleneck(cpu_s=0.01, wall_s=0.1, loop_late_s=0.001)
    limit = HostLimit(8, None, adapt=True)
    now = 0.0
    for _ in range(20):
        limit.observe(ok(), now, now + 0.02)
        now += 0.02
    for _ in range(50):  # slow, but while the client itself was saturated
        limit.observe(ok(), now, now + 0.3, latency_is_the_hosts=False)
        now += 0.3
    assert limit.concurrency == 8
