"""The usual fix of the tutorial pattern: one shared ClientSession and a semaphore.

Still ``gather`` over every URL (one task per request). The connector limit is raised to
CONCURRENCY so that the semaphore, not aiohttp's default of 100 connections, is the bound.
"""

from __future__ import annotations

import asyncio

import aiohttp
from _common import Tally, parse_args, read_urls


async def main() -> None:
    path, concurrency = parse_args()
    urls = read_urls(path)
    tally = Tally()
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(url: str) -> str:
            async with semaphore, session.get(url) as response:
                response.raise_for_status()
                return await response.text()

        results = await asyncio.gather(*(fetch(u) for u in urls), return_exceptions=True)
    for result in results:
        tally.record(None if isinstance(result, BaseException) else 200)
    tally.report()


asyncio.run(main())
