"""The adaptive per-host limits, driven by a fake clock: pure decisions, no network."""

from __future__ import annotations

import asyncio

import pytest

from asyncfetch._errors import ConfigError, ConnectError, DNSError
from asyncfetch._models import Response
from asyncfetch.policy.adaptive import (
    MIN_RATE,
    RATE_DECREASE,
    HostLimit,
    HostTable,
)
from asyncfetch.policy.limits import ClientLoad, LimitWaits, PerHostLimiter

from . import fake_clock
from .tasks import cancel_and_check, ended_cancelled


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


class FakeClock(fake_clock.FakeClock):
    """The shared fake clock, whose sleep also lets other tasks run (as a real one does)."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
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


# -- ClientLoad: the client's own load, read from clocks the test sets -------------------


class LoadClocks:
    """The CPU and wall clocks a ClientLoad reads, set by the test; each tick (a read of
    the CPU clock after ``watch``) is counted and announced."""

    def __init__(self) -> None:
        self.cpu = 5.0
        self.wall = 100.0
        self.reads = 0
        self.ticked = asyncio.Event()

    def cpu_clock(self) -> float:
        self.reads += 1
        if self.reads > 1:  # the first read is watch's own
            self.ticked.set()
        return self.cpu

    def wall_clock(self) -> float:
        return self.wall

    def load(self, interval: float = 0.01) -> ClientLoad:
        return ClientLoad(interval, cpu_clock=self.cpu_clock, wall_clock=self.wall_clock)

    async def tick(self, cpu_s: float, wall_s: float) -> None:
        """Let the next timer run after ``cpu_s`` of CPU in ``wall_s`` of wall time."""
        self.cpu += cpu_s
        self.wall += wall_s
        self.ticked.clear()
        await asyncio.wait_for(self.ticked.wait(), 5)


async def test_client_load_is_unknown_until_an_interval_was_measured() -> None:
    clocks = LoadClocks()
    load = clocks.load()
    assert load.idle_enough is False
    load.watch()
    assert load.idle_enough is False and clocks.reads == 1
    await clocks.tick(cpu_s=0.001, wall_s=0.01)  # 10 % of a CPU, on time
    assert load.idle_enough is True
    load.stop()


async def test_client_load_sees_a_busy_cpu_and_a_late_loop_interval_by_interval() -> None:
    clocks = LoadClocks()
    load = clocks.load(interval=0.01)
    load.watch()
    await clocks.tick(cpu_s=0.007, wall_s=0.01)  # 70 % of a CPU: the client is the limit
    assert load.idle_enough is False
    # Measured from the last tick, not from the start: this interval is idle again.
    await clocks.tick(cpu_s=0.001, wall_s=0.01)
    assert load.idle_enough is True
    await clocks.tick(cpu_s=0.005, wall_s=0.01)  # half a CPU: below the line
    assert load.idle_enough is True
    await clocks.tick(cpu_s=0.0, wall_s=0.01 + 0.02)  # no CPU, but the timer ran 20 ms late
    assert load.idle_enough is False
    # Late is measured against when this timer was due (the last tick + the interval).
    await clocks.tick(cpu_s=0.0, wall_s=0.01 + 0.005)
    assert load.idle_enough is True
    await clocks.tick(cpu_s=0.0, wall_s=0.0)  # early: never negative lateness, no interval
    assert load.idle_enough is True
    load.stop()


async def test_client_load_default_interval_is_a_tenth_of_a_second() -> None:
    clocks = LoadClocks()
    load = ClientLoad(cpu_clock=clocks.cpu_clock, wall_clock=clocks.wall_clock)
    load.watch()
    # 0.12 s after watch, the timer was due at 0.1 s: 20 ms late, so the loop was busy.
    await clocks.tick(cpu_s=0.0, wall_s=0.12)
    assert load.idle_enough is False
    load.stop()


async def test_client_load_watches_once_and_stops_for_good() -> None:
    clocks = LoadClocks()
    load = clocks.load(interval=0.005)
    load.watch()
    load.watch()  # a second call starts no second timer
    await clocks.tick(cpu_s=0.0, wall_s=0.005)
    assert clocks.reads == 2
    load.stop()
    load.stop()  # twice is harmless
    reads = clocks.reads
    clocks.cpu += 1.0  # a tick now would see a full CPU
    await asyncio.sleep(0.05)  # ten intervals: a timer left running would have read
    assert clocks.reads == reads and load.idle_enough is True
    load.watch()  # watching again starts afresh
    assert clocks.reads == reads + 1


# -- PerHostLimiter.hold: queueing, handing on, cancelling (events, no timing) -----------


async def _settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_hold_admits_up_to_the_limit_and_hands_each_freed_slot_to_the_oldest() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(2, adapt=False, clock=clock, sleep=clock.sleep)
    inside: list[int] = []
    done = {n: asyncio.Event() for n in range(4)}

    async def attempt(n: int) -> None:
        async with limiter.hold("h"):
            inside.append(n)
            await done[n].wait()

    tasks = [asyncio.create_task(attempt(n)) for n in range(4)]
    await _settle()
    assert inside == [0, 1]
    assert limiter.table.hosts["h"].in_flight == 2
    done[1].set()
    await _settle()
    assert inside == [0, 1, 2]
    done[0].set()
    await _settle()
    assert inside == [0, 1, 2, 3]
    assert limiter.table.hosts["h"].in_flight == 2
    done[2].set()
    done[3].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert limiter.table.hosts["h"].in_flight == 0
    # Nobody queued any more: exactly two fit again, without waiting.
    assert limiter.try_hold("h") and limiter.try_hold("h") and not limiter.try_hold("h")


async def test_a_waiter_cancelled_in_the_queue_is_skipped_and_the_next_one_served() -> None:
    limiter = PerHostLimiter(1, adapt=False)
    entered: list[str] = []
    leave = asyncio.Event()

    async def attempt(name: str) -> None:
        async with limiter.hold("h"):
            entered.append(name)
            await leave.wait()

    first = asyncio.create_task(attempt("first"))
    await _settle()
    cancelled = asyncio.create_task(attempt("cancelled"))
    last = asyncio.create_task(attempt("last"))
    await _settle()
    await cancel_and_check(cancelled)  # it leaves the queue, and only by its cancellation
    leave.set()
    await asyncio.wait_for(asyncio.gather(first, last), 5)
    assert entered == ["first", "last"]
    assert limiter.table.hosts["h"].in_flight == 0
    assert limiter.try_hold("h") and not limiter.try_hold("h")


async def test_a_holder_cancelled_while_waiting_out_a_pause_gives_its_slot_back() -> None:
    never = asyncio.Event()
    waits: list[float] = []

    async def sleep_forever(seconds: float) -> None:
        waits.append(seconds)
        await never.wait()

    clock = FakeClock()
    limiter = PerHostLimiter(1, adapt=False, clock=clock, sleep=sleep_forever)
    assert limiter.try_hold("h")
    limiter.release("h", throttled(retry_after="5"), clock.now)

    async def attempt() -> None:
        async with limiter.hold("h"):
            pass

    waiting = asyncio.create_task(attempt())
    await _settle()
    assert waits == [5.0]  # it waits out the pause holding the host's one slot
    await cancel_and_check(waiting)
    assert limiter.table.hosts["h"].in_flight == 0
    clock.now += 5
    assert limiter.try_hold("h")


async def test_shared_rates_hear_of_every_throttle_and_are_not_learned_locally() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(8, clock=clock, sleep=clock.sleep)
    heard: list[tuple[str, float | None, float]] = []
    limiter.share_rates(lambda *throttle: heard.append(throttle))
    assert limiter.try_hold("h")
    started = clock.now
    clock.now += 0.25
    limiter.observe("h", ok(), started)
    assert heard == []  # a healthy answer is not a throttle
    limiter.observe("h", throttled(retry_after="3"), started)
    limiter.release("h", throttled(503), started)
    assert heard == [("h", 3.0, 0.25), ("h", None, 0.25)]
    limit = limiter.table.hosts["h"]
    assert limit.concurrency < 8  # concurrency is still learned here...
    assert limit.rate(clock.now + 10) is None  # ...but not the rate


async def test_a_per_host_rate_spaces_try_hold_and_adaptation_is_on_by_default() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(4, rate=0.5, clock=clock)
    assert limiter.try_hold("h")
    limiter.release("h")
    assert not limiter.try_hold("h")  # the next slot is 2 s away
    clock.now += 2
    assert limiter.try_hold("h")
    limiter.release("h", ConnectError("refused"), clock.now)
    assert limiter.table.hosts["h"].concurrency < 4


def test_per_host_rate_must_be_positive_and_small_rates_are_fine() -> None:
    with pytest.raises(ConfigError) as raised:
        PerHostLimiter(1, rate=0)
    assert str(raised.value) == "per-host rate must be > 0 requests per second"
    assert PerHostLimiter(1, rate=0.5).table.cap_rate == 0.5


async def test_throttled_hosts_and_reports_name_the_throttled_host_first() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(4, clock=clock, sleep=clock.sleep)
    for host in ("busy", "busy", "busy", "slow"):
        assert limiter.try_hold(host)
        limiter.release(host, ok() if host == "busy" else throttled(retry_after="9"), clock.now)
    assert limiter.throttled_hosts() == 1
    reports = limiter.reports()
    assert [(r.host, r.requests, r.throttled_429) for r in reports] == [
        ("slow", 1, 1),
        ("busy", 3, 0),
    ]
    assert [r.host for r in limiter.reports(top=1)] == ["slow"]


def test_limit_waits_start_at_zero_and_report_each_limit() -> None:
    waits = LimitWaits()
    assert waits.as_dict() == {"per_host": 0.0, "concurrency": 0.0, "rate": 0.0}
    waits.per_host, waits.concurrency, waits.rate = 1.5, 2.5, 3.5
    assert waits.as_dict() == {"per_host": 1.5, "concurrency": 2.5, "rate": 3.5}


# -- the limiter's queue, pauses, rate and wake-ups at their edges -----------------------


async def test_waiters_cancelled_as_the_queue_moves_end_by_their_cancellation_only() -> None:
    limiter = PerHostLimiter(1, adapt=False)
    entered: list[str] = []
    leave = {name: asyncio.Event() for name in "bcde"}

    async def attempt(name: str) -> None:
        async with limiter.hold("h"):
            entered.append(name)
            await leave[name].wait()

    assert limiter.try_hold("h")  # the holder, released by hand below
    tasks = {name: asyncio.create_task(attempt(name)) for name in "bcde"}
    await _settle()  # all four queue
    tasks["b"].cancel()
    limiter.release("h")  # in the same step: the queue drops b and hands the slot to c
    tasks["c"].cancel()  # ...and c is cancelled before it runs: it passes the slot on
    await ended_cancelled(tasks["b"])
    await ended_cancelled(tasks["c"])
    await _settle()
    assert entered == ["d"]
    leave["d"].set()
    await _settle()
    assert entered == ["d", "e"]
    leave["e"].set()
    await asyncio.wait_for(asyncio.gather(tasks["d"], tasks["e"]), 5)
    assert limiter.table.hosts["h"].in_flight == 0
    assert limiter.try_hold("h") and not limiter.try_hold("h")


async def test_an_outcome_observed_with_callers_queued_leaves_them_queued() -> None:
    limiter = PerHostLimiter(1, adapt=False)
    assert limiter.try_hold("h")

    async def attempt() -> None:
        async with limiter.hold("h"):
            pass

    waiting = asyncio.create_task(attempt())
    await _settle()
    limiter.observe("h", ok(), limiter.now())  # the slot is still held: nobody enters
    await _settle()
    assert not waiting.done()
    limiter.release("h")
    await asyncio.wait_for(waiting, 5)


async def test_without_adaptation_an_overloaded_host_keeps_the_users_concurrency() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(4, adapt=False, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert limiter.try_hold("h")
        limiter.release("h", ConnectError("refused"), clock.now)
    assert limiter.table.hosts["h"].concurrency == 4  # adapting, it would be 1


async def test_rate_slots_are_waited_for_exactly_and_taken_again_after_a_pause() -> None:
    clock = FakeClock()
    limiter = PerHostLimiter(8, rate=1.0, adapt=False, clock=clock, sleep=clock.sleep)
    async with limiter.hold("h"):
        pass
    assert clock.slept == []  # the first slot is free: no sleep at all
    async with limiter.hold("h"):
        pass
    async with limiter.hold("h"):
        limiter.observe("h", throttled(retry_after="5"), clock.now)
    async with limiter.hold("h"):  # waits out the pause, then takes a rate slot
        pass
    async with limiter.hold("h"):  # so the next one waits a full interval after it
        pass
    assert clock.slept == [1.0, 1.0, 5.0, 1.0]


async def test_each_pause_that_ends_wakes_the_caller_again() -> None:
    limiter = PerHostLimiter(8, adapt=False)
    woken = asyncio.Event()
    limiter.add_ready_callback(woken.set)
    removed: list[str] = []

    def gone() -> None:
        removed.append("called")

    limiter.add_ready_callback(gone)
    limiter.remove_ready_callback(gone)
    limiter.remove_ready_callback(gone)  # not there any more: nothing to do
    for _ in range(2):
        woken.clear()
        assert limiter.try_hold("h")
        limiter.release("h", throttled(retry_after="1"), limiter.now())
        assert not limiter.try_hold("h")  # refused: a wake-up is set for the pause's end
        assert not limiter.try_hold("h")  # asked again: the same wake-up serves
        await asyncio.wait_for(woken.wait(), 5)
        assert limiter.try_hold("h")
        limiter.release("h")
    assert removed == []


async def test_reports_name_the_ten_busiest_hosts_by_default() -> None:
    limiter = PerHostLimiter(4)
    for n in range(12):
        assert limiter.try_hold(f"h{n}")
        limiter.release(f"h{n}", ok(), limiter.now())
    assert len(limiter.reports()) == 10
    assert len(limiter.reports(top=12)) == 12


async def test_latency_is_not_held_against_a_host_before_the_clients_load_is_known() -> None:
    # The client's load is measured over its first interval (0.1 s); until then slow
    # answers may be the client's own doing, and must not cut the host's concurrency.
    clock = FakeClock()
    limiter = PerHostLimiter(8, clock=clock, sleep=clock.sleep)

    def attempt(latency: float) -> None:
        assert limiter.try_hold("h")
        started = clock.now
        clock.now += latency
        limiter.release("h", ok(), started)

    for _ in range(20):
        attempt(0.02)
    for _ in range(10):
        attempt(0.2)  # ten times the baseline: a cut, were the client known to be idle
    assert limiter.table.hosts["h"].concurrency == 8
