"""Batches to items: the one-at-a-time view of an async iterator of lists.

The input side works in lists (one per read chunk) because each hop through an async
generator costs about a microsecond per item; callers that want single items flatten
at the end, paying that once instead of at every layer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from .reader import LineBatch, LineStream

T = TypeVar("T")


async def parsed_batches(
    stream: LineStream, parse: Callable[[LineBatch], list[T]]
) -> AsyncGenerator[list[T], None]:
    """``parse`` of each batch of lines read from ``stream``; empty results are left out."""
    while (batch := await stream.next_lines()) is not None:
        items = parse(batch)
        if items:
            yield items


async def flatten(batches: AsyncIterator[list[T]]) -> AsyncGenerator[T, None]:
    """Each item of each batch, in order; closing this closes ``batches``."""
    try:
        async for batch in batches:
            for item in batch:
                yield item
    finally:
        await close_iterator(batches)


class Flattened(AsyncIterator[T]):
    """:func:`flatten` that keeps its batch form at hand, as :attr:`batches`.

    A consumer that can take lists iterates ``batches`` instead of this object (one or the
    other, never both).
    """

    def __init__(self, batches: AsyncIterator[list[T]]) -> None:
        self.batches = batches
        self._items = flatten(batches)

    def __aiter__(self) -> Flattened[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        return self._items.__anext__()

    async def aclose(self) -> None:
        await self._items.aclose()
        await close_iterator(self.batches)  # in case the items were never started


async def close_iterator(iterator: object) -> None:
    """``aclose()`` an async iterator that has one (async generators do)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
