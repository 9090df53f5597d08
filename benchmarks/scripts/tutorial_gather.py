"""The tutorial's section 4 pattern, as written: one ClientSession per request, and
``asyncio.gather`` over every URL at once (no concurrency bound, so CONCURRENCY is
ignored). The only change: ``return_exceptions=True`` so failures can be counted instead
of the first one aborting the run.
"""

from __future__ import annotations

import asyncio

import aiohttp
from _common import Tally, parse_args, read_urls


async def fetch(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def main() -> None:
    path, _ = parse_args()
    urls = read_urls(path)
    tally = Tally()
    responses = await asyncio.gather(*(fetch(url) for url in urls), return_exceptions=True)
    for response in responses:
        tally.record(None if isinstance(response, BaseException) else 200)
    tally.report()


asyncio.run(main())
