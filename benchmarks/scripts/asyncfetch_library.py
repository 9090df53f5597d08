"""The asyncfetch library: ``Fetcher.stream`` over the URL file."""

from __future__ import annotations

import asyncio

from _common import Tally, iter_urls, parse_args

import asyncfetch


async def main() -> None:
    path, concurrency = parse_args()
    tally = Tally()
    async with asyncfetch.Fetcher(
        concurrency=concurrency, per_host=concurrency, body="none"
    ) as fetcher:
        async for result in fetcher.stream(iter_urls(path)):
            tally.record(200 if result.ok else None)
    tally.report()


asyncio.run(main())
