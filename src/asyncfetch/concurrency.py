"""The tutorial's ``asyncio.gather``, done right: bounded, ordered, per-item outcomes, lazy.

``asyncio.gather(*coros)`` starts everything at once, needs every coroutine up front, and
one exception loses the rest. ``gather_limited`` and ``amap`` fix all three.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The result of one item: ``value`` when it succeeded, ``error`` when it raised."""

    index: int
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The value, or the item's exception raised again."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _run_one(index: int, func: Callable[[T], Awaitable[R]], item: T) -> Outcome[R]:
    try:
        return Outcome(index, value=await func(item))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return Outcome(index, error=exc)


async def amap_unordered(
    func: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int,
) -> AsyncIterator[Outcome[R]]:
    """Apply ``func`` to each item, at most ``limit`` at once, yielding as they complete.

    Items are pulled from ``items`` only when a slot is free, so an endless generator is
    read just ``limit`` items ahead of the consumer.
    """
    if limit < 1:
        raise ConfigError("limit must be at least 1, e.g. limit=10")
    source = _aiter(items).__aiter__()
    running: set[asyncio.Task[Outcome[R]]] = set()
    index = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) < limit:
                try:
                    item = await source.__anext__()
                except StopAsyncIteration:
                    exhausted = True
                    break
                running.add(asyncio.ensure_future(_run_one(index, func, item)))
                index += 1
            if not running:
                return
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def amap(
    func: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int,
) -> AsyncIterator[Outcome[R]]:
    """Like :func:`amap_unordered` but yields in input order.

    A window of ``limit`` tasks in input order: the next item starts only when the oldest
    has been yielded, so a slow item holds back at most ``limit - 1`` finished results and
    memory stays bounded however long the input is.
    """
    if limit < 1:
        raise ConfigError("limit must be at least 1, e.g. limit=10")
    source = _aiter(items).__aiter__()
    window: deque[asyncio.Task[Outcome[R]]] = deque()
    index = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(window) < limit:
                try:
                    item = await source.__anext__()
                except StopAsyncIteration:
                    exhausted = True
                    break
                window.append(asyncio.ensure_future(_run_one(index, func, item)))
                index += 1
            if not window:
                return
            yield await window[0]
            window.popleft()
    finally:
        for task in window:
            task.cancel()
        if window:
            await asyncio.gather(*window, return_exceptions=True)


async def gather_limited(
    works: Iterable[Awaitable[R] | Callable[[], Awaitable[R]]]
    | AsyncIterable[Awaitable[R] | Callable[[], Awaitable[R]]],
    *,
    limit: int,
) -> list[Outcome[R]]:
    """``asyncio.gather`` with a concurrency bound, results in input order, one outcome each.

    ``works`` may hold coroutines or zero-argument callables returning one; callables are
    better for large inputs because a coroutine object exists only once its turn comes.
    """

    async def start(work: Awaitable[R] | Callable[[], Awaitable[R]]) -> R:
        return await (work() if callable(work) else work)

    return [outcome async for outcome in amap(start, works, limit=limit)]
