"""Pure parts: the GCRA meter with an injected clock, retry decisions, backoff, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import pytest

from asyncfetch import ConfigError, Request, RetryPolicy
from asyncfetch._errors import ConnectError, ReadError, TooLargeError
from asyncfetch._models import Response
from asyncfetch.policy.hosts import host_of
from asyncfetch.policy.limits import GcraRateMeter
from asyncfetch.policy.retry import (
    backoff_delay,
    decide_after_error,
    decide_after_response,
    parse_retry_after,
)

from .fake_clock import FakeClock


async def test_gcra_spaces_requests_at_the_rate() -> None:
    clock = FakeClock()
    meter = GcraRateMeter(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await meter.acquire("h")
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1, 0.1])


async def test_gcra_burst_then_rate_and_idle_refills() -> None:
    clock = FakeClock()
    meter = GcraRateMeter(10, burst=3, clock=clock, sleep=clock.sleep)
    delays = [meter.reserve() for _ in range(5)]
    assert delays == pytest.approx([0, 0, 0, 0.1, 0.2])
    clock.now += 10  # idle: the burst is available again
    assert [meter.reserve() for _ in range(3)] == pytest.approx([0, 0, 0])


def test_gcra_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        GcraRateMeter(0)


POLICY = RetryPolicy(retries=3, backoff_base=0.5, backoff_cap=4)
GET = Request.create("http://h/")
POST = Request.create("http://h/", method="POST", body=b"x")


def response(status: int, retry_after: str | None = None) -> Response:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Response(status=status, url="http://h/", headers=headers, body=b"")


@pytest.mark.parametrize(
    ("request_", "error", "retried"),
    [
        (GET, ReadError("reset"), True),
        (POST, ReadError("reset"), False),
        (POST, ConnectError("refused"), True),
        (GET, TooLargeError("big"), False),
    ],
)
def test_error_retry_rules(request_: Request, error: ReadError, retried: bool) -> None:
    assert decide_after_error(request_, 1, error, POLICY).retry is retried


def test_attempts_are_capped() -> None:
    assert decide_after_error(GET, 3, ReadError("x"), POLICY).retry
    assert not decide_after_error(GET, 4, ReadError("x"), POLICY).retry


@pytest.mark.parametrize(("status", "retried"), [(429, True), (503, True), (404, False)])
def test_status_retry_rules(status: int, retried: bool) -> None:
    assert decide_after_response(GET, 1, response(status), POLICY).retry is retried
    assert not decide_after_response(POST, 1, response(status), POLICY).retry


def test_retry_after_seconds_and_date_and_cap() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert decide_after_response(GET, 1, response(503, "3"), POLICY).delay >= 3
    assert decide_after_response(GET, 1, response(503, date), POLICY, now=now).delay >= 7
    assert not decide_after_response(GET, 1, response(503, "999999"), POLICY).retry
    # Unparseable: fall back to ordinary backoff.
    assert decide_after_response(GET, 1, response(503, "soon"), POLICY).delay <= 0.5


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    past = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(past) == 0


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(POLICY, attempt, rng) for attempt in range(1, 10) for _ in range(50)]
    assert min(delays) >= 0
    assert max(delays) <= POLICY.backoff_cap
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not a fixed ladder


async def test_slots_are_fifo_bounded_and_survive_cancellation() -> None:
    import asyncio

    from asyncfetch.policy.limits import Slots

    slots = Slots(2)
    order: list[int] = []
    running = 0
    peak = 0

    async def use(n: int) -> None:
        nonlocal running, peak
        async with slots:
            running += 1
            peak = max(peak, running)
            order.append(n)
            await asyncio.sleep(0.01)
            running -= 1

    tasks = [asyncio.create_task(use(n)) for n in range(10)]
    await asyncio.sleep(0)
    tasks[5].cancel()  # a waiter cancelled while queued must not leak or steal a slot
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert peak == 2
    await asyncio.wait_for(slots.acquire(), 1)
    await asyncio.wait_for(slots.acquire(), 1)


async def test_deadline_watch_cancels_only_overdue_tasks() -> None:
    import asyncio

    from asyncfetch.policy.deadlines import DeadlineWatch

    watch = DeadlineWatch(resolution=0.01)

    async def attempt(seconds: float, timeout: float) -> str:
        task = asyncio.current_task()
        assert task is not None
        watch.start(task, timeout)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if watch.stop(task):
                task.uncancel()
                return "timeout"
            raise
        watch.stop(task)
        return "done"

    quick = asyncio.create_task(attempt(0.01, 5))
    slow = asyncio.create_task(attempt(5, 0.05))
    stopped = asyncio.create_task(attempt(5, 5))
    await asyncio.sleep(0.1)
    stopped.cancel()  # a cancellation from outside stays a cancellation
    assert await quick == "done"
    assert await slow == "timeout"
    with pytest.raises(asyncio.CancelledError):
        await stopped
    await watch.aclose()


def test_the_per_host_key_is_the_host_of_each_url_even_after_a_similar_one() -> None:
    # host_of remembers the last URL's authority; a URL that merely starts with the same
    # text must still get its own host (each is checked right after the one before it).
    urls = [
        "http://a.test/x",
        "http://a.test",
        "http://a.test?q=1",
        "http://a.test.evil/x",
        "http://a.test:8080/x",
        "http://a.test:80/x",
        "http://a.test:8080#f",
        "https://A.Test/x",
        "http://user:pw@b.test/x",
        "http://b.test/x",
        "http://[::1]:8080/x",
        "http://a.test/x",
    ]
    assert [host_of(url) for url in urls] == [
        (urlsplit(url).hostname or "").lower() for url in urls
    ]
