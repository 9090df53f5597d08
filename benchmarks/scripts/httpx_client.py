"""httpx.AsyncClient with CONCURRENCY worker tasks (default asyncio loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
from _common import Tally, iter_urls, parse_args


async def worker(client: httpx.AsyncClient, urls: Iterator[str], tally: Tally) -> None:
    for url in urls:
        try:
            response = await client.get(url)
            tally.record(response.status_code)
        except httpx.HTTPError:
            tally.record(None)


async def main() -> None:
    path, concurrency = parse_args()
    urls = iter_urls(path)
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(worker(client, urls, tally) for _ in range(concurrency)))
    tally.report()


asyncio.run(main())
