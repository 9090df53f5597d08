"""Input filters in front of the work queue: skip finished requests, drop repeated ids.

With ``--resume`` the journal is the index: requests are looked up in batches of what the
source has ready (one SQLite query per batch, on the journal's thread), and a small set
of the ids handed out but not yet committed covers the rest, so memory does not grow with
the input. Without a journal a bounded window of recent ids catches repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from .._models import Item, Request
from ..sources.batching import close_iterator, flatten
from .location import MAX_LOOKUP
from .recent_ids import RECENT_IDS, RecentIds

if TYPE_CHECKING:  # a run without --resume has no journal and need not import sqlite3
    from .journal import Journal

T = TypeVar("T")


class FilterCounts(Protocol):
    """Where the filters count what they hold back (the run's statistics)."""

    skipped: int
    duplicates: int


def item_id(item: Item) -> str:
    """The id its result record will carry."""
    return item.id if isinstance(item, Request) else item.record_id


class _End(Generic[T]):
    """The pumped source's end: the error it raised, or None."""

    # A plain class: as a dataclass it cost about 0.4 ms of every CLI start to build.
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


async def _pump(source: AsyncIterator[T], channel: asyncio.Queue[T | _End[T]]) -> None:
    try:
        async for item in source:
            await channel.put(item)
    except Exception as exc:  # handed to the consumer, which raises it as its own
        await channel.put(_End(exc))
        return
    await channel.put(_End(None))


async def ready_batches(
    source: AsyncIterator[T], limit: int = MAX_LOOKUP
) -> AsyncGenerator[list[T], None]:
    """Lists of the items ``source`` has ready (at most ``limit``), never waiting to fill one.

    A slow producer (a pipe) gets its items through one by one; a fast one (a file)
    yields full batches, so per-batch costs such as a journal lookup are amortised.
    """
    channel: asyncio.Queue[T | _End[T]] = asyncio.Queue(limit)
    pump = asyncio.create_task(_pump(source, channel), name="asyncfetch-input-pump")
    try:
        while True:
            batch: list[T] = []
            item = await channel.get()
            while not isinstance(item, _End):
                batch.append(item)
                if len(batch) >= limit or channel.empty():
                    break
                item = channel.get_nowait()
            if batch:
                yield batch
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
    finally:
        pump.cancel()
        with suppress(asyncio.CancelledError):
            await pump
        await close_iterator(source)


def skip_done(
    source: AsyncIterator[Item],
    journal: Journal,
    in_flight: set[str],
    stats: FilterCounts,
) -> AsyncGenerator[Item, None]:
    """:func:`skip_done_batches` for a source of single items, one item at a time.

    The items are grouped as they are ready (:func:`ready_batches`) for the lookups.
    """
    return flatten(skip_done_batches(ready_batches(source), journal, in_flight, stats))


async def skip_done_batches(
    source_batches: AsyncIterator[list[Item]],
    journal: Journal,
    in_flight: set[str],
    stats: FilterCounts,
) -> AsyncGenerator[list[Item], None]:
    """Each batch without the requests the journal has finished, each id handed out once.

    One journal lookup per batch; batches left empty are not yielded. ``in_flight``
    holds the ids handed out and not yet committed; the store removes an id only after
    its journal commit. Each batch reads it *before* its lookup, so an id committed
    meanwhile is seen by one check or the other. Ids handed out from the current batch
    are tracked apart: they may be committed, and leave ``in_flight``, before the batch
    is through, after a lookup that could not see them.
    """
    try:
        async for batch in source_batches:
            kept = await _unfinished(batch, journal, in_flight, stats)
            if kept:
                yield kept
    finally:
        await close_iterator(source_batches)


async def _unfinished(
    batch: list[Item], journal: Journal, in_flight: set[str], stats: FilterCounts
) -> list[Item]:
    ids = [item_id(item) for item in batch]
    handed_out = {request_id for request_id in ids if request_id in in_flight}
    finished = await journal.lookup(set(ids) - handed_out)
    this_batch: set[str] = set()
    kept: list[Item] = []
    for item, request_id in zip(batch, ids, strict=True):
        if finished.get(request_id, journal.run) != journal.run:
            stats.skipped += 1
        elif request_id in finished or request_id in handed_out or request_id in this_batch:
            stats.duplicates += 1
        else:
            this_batch.add(request_id)
            in_flight.add(request_id)
            kept.append(item)
    return kept


def drop_repeats(
    source: AsyncIterator[Item], stats: FilterCounts, capacity: int = RECENT_IDS
) -> AsyncGenerator[Item, None]:
    """``source`` without items whose id was among the last ``capacity`` ids.

    :func:`drop_repeat_batches` over the items grouped as they are ready.
    """
    return flatten(drop_repeat_batches(ready_batches(source), stats, capacity))


async def drop_repeat_batches(
    source_batches: AsyncIterator[list[Item]],
    stats: FilterCounts,
    capacity: int = RECENT_IDS,
) -> AsyncGenerator[list[Item], None]:
    """:func:`drop_repeats` for batches: each without the repeats; empty ones are dropped."""
    recent = RecentIds(capacity)
    try:
        async for batch in source_batches:
            kept = recent.new_items(batch)
            stats.duplicates += len(batch) - len(kept)
            if kept:
                yield kept
    finally:
        await close_iterator(source_batches)
