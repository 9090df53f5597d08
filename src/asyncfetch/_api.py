"""The library API: ``Fetcher``, ``fetch_all`` and ``run``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._models import InvalidInput, Request, Result, RunStats
from ._settings import (
    BodyPolicy,
    Limits,
    RequestDefaults,
    RetryPolicy,
    Settings,
    Timeouts,
    TransportOptions,
)
from .concurrency import amap_unordered
from .pipeline.executor import RequestExecutor
from .pipeline.runner import Runner
from .pipeline.stores import ChannelStore
from .policy.adaptive import HostReport
from .policy.limits import GcraRateMeter
from .policy.records import invalid_input_result
from .queues.memory import MemoryQueue
from .runtime.eventloop import run_coroutine
from .transport.base import Transport
from .transport.factory import open_transport, resolve_engine

RequestLike = str | Request | Mapping[str, Any]


def make_settings(
    *,
    concurrency: int = 100,
    per_host: int = 8,
    rate: float | None = None,
    per_host_rate: float | None = None,
    adapt: bool = True,
    timeouts: Timeouts | float | None = None,
    retries: int | RetryPolicy = 3,
    body: str | BodyPolicy = "auto",
    max_redirects: int = 10,
    insecure: bool = False,
    cacert: str | Path | None = None,
    proxy: str | None = None,
) -> Settings:
    """Settings from the keyword options the library functions accept."""
    if isinstance(timeouts, int | float):
        timeouts = Timeouts(total=float(timeouts))
    return Settings(
        limits=Limits(
            concurrency=concurrency,
            per_host=per_host,
            rate=rate,
            per_host_rate=per_host_rate,
            adapt=adapt,
        ),
        timeouts=timeouts or Timeouts(),
        retry=retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries),
        body=body if isinstance(body, BodyPolicy) else BodyPolicy(mode=body),
        transport=TransportOptions(
            max_redirects=max_redirects,
            insecure=insecure,
            cacert=Path(cacert) if cacert is not None else None,
            proxy=proxy,
        ),
    )


class Fetcher:
    """Fetch many requests over one pooled connection set, within shared limits.

    ::

        async with Fetcher(concurrency=50, per_host=4, rate=20) as f:
            one = await f.fetch("https://example.com/")
            async for result in f.stream(urls):
                ...
    """

    def __init__(
        self,
        *,
        engine: str = "auto",
        headers: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        if settings is not None and options:
            raise ConfigError("pass either settings= or keyword options, not both")
        self.settings = settings or make_settings(**options)
        self.engine = resolve_engine(engine, self.settings)
        self._defaults = RequestDefaults(headers=tuple((headers or {}).items()))
        self._transport: Transport | None = None
        self._executor: RequestExecutor | None = None
        self.last_stats: RunStats | None = None
        self._streams: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Fetcher:
        self._transport = open_transport(self.engine, self.settings)
        rate = self.settings.limits.rate
        self._executor = RequestExecutor(
            self._transport,
            self.settings,
            rate_limiter=GcraRateMeter(rate) if rate is not None else None,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        # A stream abandoned with ``break`` is finalised later by the garbage collector;
        # stop its workers now, before the connections they use go away.
        for task in self._streams:
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        if self._executor is not None:
            await self._executor.aclose()
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.aclose()

    def host_limits(self, top: int = 10) -> list[HostReport]:
        """Each host's limits as learned so far (requests, 429/503 counts, concurrency and
        rate with their ranges): the throttled hosts first, then the busiest."""
        return self._require_open().hosts.reports(top)

    def _require_open(self) -> RequestExecutor:
        if self._executor is None or self._transport is None:
            raise ConfigError("use the Fetcher inside 'async with Fetcher(...) as f:'")
        return self._executor

    async def fetch(self, request: RequestLike) -> Result:
        """Fetch one URL, Request or request spec; always returns a Result, never raises
        for a network failure (the failure is in ``result.error``)."""
        executor = self._require_open()
        from .sources import to_request

        built = to_request(request, None, self._defaults)
        if isinstance(built, InvalidInput):
            return invalid_input_result(built)
        return await executor.execute(built)

    async def stream(
        self, requests: Iterable[RequestLike] | AsyncIterable[RequestLike]
    ) -> AsyncIterator[Result]:
        """Yield a Result per input as each completes. Input is read lazily and memory
        stays bounded, so ``requests`` may be a generator over millions of URLs."""
        from .sources import iter_requests

        executor = self._require_open()
        concurrency = self.settings.limits.concurrency
        store = ChannelStore(maxsize=concurrency)
        queue = MemoryQueue(iter_requests(requests, defaults=self._defaults), maxsize=concurrency)
        runner = Runner(queue, store, executor, concurrency=concurrency)
        task = asyncio.create_task(_run_then_close(runner, store))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        try:
            while (result := await store.channel.get()) is not None:
                yield result
            await task
        finally:
            if not task.done():
                # The consumer left early: nobody will read what is still running.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await queue.aclose()
            self.last_stats = runner.stats.snapshot()


async def _run_then_close(runner: Runner, store: ChannelStore) -> None:
    try:
        await runner.run()
    except asyncio.CancelledError:
        raise  # the consumer is gone; no end marker is needed
    except BaseException:
        await store.aclose()  # wake the consumer, which then sees this error
        raise
    await store.aclose()


async def fetch_all(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike], **options: Any
) -> list[Result]:
    """Fetch everything and return the results in input order."""
    async with Fetcher(**options) as fetcher:
        indexed: dict[int, Result] = {}
        limit = fetcher.settings.limits.concurrency
        async for outcome in amap_unordered(fetcher.fetch, requests, limit=limit):
            indexed[outcome.index] = outcome.unwrap()
        return [indexed[index] for index in range(len(indexed))]


def run(requests: Iterable[RequestLike], **options: Any) -> list[Result]:
    """:func:`fetch_all` for synchronous code (scripts, notebooks without a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_coroutine(fetch_all(requests, **options))
    raise ConfigError("asyncfetch.run() cannot be called from async code; await fetch_all()")
