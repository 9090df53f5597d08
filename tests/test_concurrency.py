"""gather_limited / amap: the tutorial's gather with a bound, order, per-item outcomes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

import asyncfetch
from asyncfetch import amap, amap_unordered, gather_limited


class Tracker:
    def __init__(self) -> None:
        self.running = 0
        self.peak = 0

    async def work(self, value: int) -> int:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(value / 1000)
            if value == 13:
                raise ValueError("unlucky")
            return value * 2
        finally:
            self.running -= 1


async def test_gather_limited_keeps_order_bound_and_per_item_errors() -> None:
    tracker = Tracker()
    delays = [30, 5, 13, 20, 1, 8, 2, 25]
    outcomes = await gather_limited([tracker.work(d) for d in delays], limit=3)
    assert [o.index for o in outcomes] == list(range(len(delays)))
    assert [o.value for o in outcomes if o.ok] == [d * 2 for d in delays if d != 13]
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1 and isinstance(failed[0].error, ValueError)
    assert tracker.peak == 3
    with pytest.raises(ValueError, match="unlucky"):
        failed[0].unwrap()


async def test_gather_limited_accepts_factories() -> None:
    started: list[int] = []

    def factory(n: int):  # type: ignore[no-untyped-def]
        async def run() -> int:
            started.append(n)
            return n

        return run

    outcomes = await gather_limited((factory(n) for n in range(5)), limit=2)
    assert [o.unwrap() for o in outcomes] == [0, 1, 2, 3, 4]
    assert started == [0, 1, 2, 3, 4]


async def test_amap_reads_an_endless_generator_only_as_far_as_needed() -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for n in itertools.count():
            pulled += 1
            yield n

    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    results = []
    async for outcome in amap(double, endless(), limit=4):
        results.append(outcome.unwrap())
        if len(results) == 10:
            break
    assert results == [n * 2 for n in range(10)]
    assert pulled <= 10 + 4


async def test_amap_holds_back_at_most_the_window() -> None:
    tracker = Tracker()
    # One slow first item must not let the rest run ahead without bound.
    items = [200] + [1] * 50
    order = [o.index async for o in amap(tracker.work, items, limit=5)]
    assert order == list(range(51))
    assert tracker.peak <= 5


async def test_amap_unordered_yields_as_completed() -> None:
    # Each task finishes when the test says so (events, not sleeps): 1, then 2, then 3.
    finish = {n: asyncio.Event() for n in (1, 2, 3)}

    async def wait_then(n: int) -> int:
        await finish[n].wait()
        return n

    results = amap_unordered(wait_then, [3, 1, 2], limit=3)
    values = []
    for n in (1, 2, 3):
        finish[n].set()
        values.append((await anext(results)).unwrap())
    assert values == [1, 2, 3]
    assert [outcome async for outcome in results] == []  # and then it ends


async def test_async_iterables_are_accepted() -> None:
    async def numbers():  # type: ignore[no-untyped-def]
        for n in range(6):
            yield n

    async def square(n: int) -> int:
        return n * n

    assert [o.unwrap() async for o in amap(square, numbers(), limit=2)] == [0, 1, 4, 9, 16, 25]


async def test_a_bad_limit_says_how_to_fix_it() -> None:
    with pytest.raises(asyncfetch.ConfigError, match="limit must be at least 1"):
        await gather_limited([], limit=0)


def test_public_api_is_sorted_and_complete() -> None:
    assert asyncfetch.__all__ == sorted(asyncfetch.__all__)
    for name in asyncfetch.__all__:
        assert getattr(asyncfetch, name) is not None
    assert "Fetcher" in dir(asyncfetch)
