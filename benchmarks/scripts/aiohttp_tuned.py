"""A tuned bare aiohttp client: uvloop, one shared session without a cookie jar, and
CONCURRENCY worker tasks pulling from one URL iterator (no task per request)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import uvloop
from _common import Tally, iter_urls, parse_args

ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def worker(session: aiohttp.ClientSession, urls: Iterator[str], tally: Tally) -> None:
    for url in urls:  # safe: next() on a shared iterator never yields to the loop
        try:
            async with session.get(url) as response:
                await response.read()
                tally.record(response.status)
        except ERRORS:
            tally.record(None)


async def main() -> None:
    path, concurrency = parse_args()
    urls = iter_urls(path)
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        await asyncio.gather(*(worker(session, urls, tally) for _ in range(concurrency)))
    tally.report()


uvloop.run(main())
