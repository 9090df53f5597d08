"""The library API: ``Fetcher``, ``fetch_all``, ``run`` and ``fetch_to_file`` (resumable)."""

from __future__ import annotations

import asyncio
import difflib
import inspect
import os
import textwrap
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError
from ._models import InvalidInput, Request, Result, RunStats
from ._options import RunOptions, keyword_options
from ._settings import SECTIONS, RequestDefaults, Settings, settings_from
from .pipeline.executor import RequestExecutor
from .pipeline.runner import Runner
from .pipeline.stats import StatsCollector
from .pipeline.stores import ChannelStore, SinkStore
from .policy.adaptive import HostReport
from .policy.limits import GcraRateMeter
from .queues.base import Completed, ResultStore
from .queues.memory import MemoryQueue
from .runtime.eventloop import run_coroutine
from .transport.base import Transport
from .transport.factory import open_transport, resolve_engine

if TYPE_CHECKING:  # only a resumable run needs it (and sqlite3 behind it)
    from .resume.output import ResumableOutput

RequestLike = str | Request | Mapping[str, Any]
Requests = Iterable[RequestLike] | AsyncIterable[RequestLike]


# The library's keyword options: those of the option table (_options.py) with a keyword.
_KEYWORDS = {option.keyword: option for option in keyword_options() if option.keyword}
# Fetcher's own (not settings): the engine and the headers added to every request.
_FETCHER_OWN = ("engine", "headers")
SETTING_NAMES = tuple(name for name in _KEYWORDS if name not in _FETCHER_OWN)
_SETTING_PARAMETERS = tuple(
    inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=_KEYWORDS[name].keyword_default,
        annotation=_KEYWORDS[name].keyword_annotation,
    )
    for name in SETTING_NAMES
)


def make_settings(**options: Any) -> Settings:
    """Settings from the keyword options the library functions accept.

    ``retry_on`` is the statuses that are retried (``"429,500-599"`` or a set of ints;
    default 429, 500, 502, 503, 504); ``timeouts`` a Timeouts or the total seconds;
    ``retries`` and ``body`` also take a whole RetryPolicy or BodyPolicy.
    """
    check_option_names(options)
    values: dict[str, Any] = {}
    sections: dict[str, object] = {}
    for name, value in options.items():
        option = _KEYWORDS[name]
        section = str(option.setting).split(".")[0]
        if isinstance(value, SECTIONS[section]):
            sections[section] = value
        elif value is not None or option.default is None:  # None: the default
            values[option.name] = value
    for name in values:
        option = getattr(RunOptions, name)
        section, field = str(option.setting).split(".")
        if section in sections:
            kind = SECTIONS[section].__name__
            raise ConfigError(f"give {option.keyword} inside the {kind} ({field}=...), not both")
    return settings_from(values, sections)


make_settings.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    list(_SETTING_PARAMETERS), return_annotation="Settings"
)


def check_option_names(options: Mapping[str, Any]) -> None:
    """Raise ConfigError for an unknown keyword option, naming the close matches."""
    for name in options:
        if name in SETTING_NAMES:
            continue
        close = difflib.get_close_matches(name, (*SETTING_NAMES, *_FETCHER_OWN, "settings"))
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"unknown option {name!r}{hint} (options: {', '.join(SETTING_NAMES)})")


def _options_help() -> str:
    """The keyword options as help(Fetcher) shows them: name, type and default."""
    lines = ["Keyword options (also accepted by fetch_all and run):", ""]
    for name in (*_FETCHER_OWN, *SETTING_NAMES):
        option = _KEYWORDS[name]
        line = f"    {name}: {option.keyword_annotation} = {option.keyword_default!r}"
        lines.append(f"{line}   (one of {', '.join(option.choices)})" if option.choices else line)
    lines.append("    settings: Settings | None = None   (instead of the options above)")
    return "\n".join(lines)


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
        engine: str = RunOptions.engine.default,
        headers: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        check_option_names(options)
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
        from .sources import to_request

        [result] = await self._in_order(_one(to_request(request, None, self._defaults)))
        return result

    async def _in_order(self, built: AsyncIterator[Request | InvalidInput]) -> list[Result]:
        """Run ``built`` through the run loop, as :meth:`stream` does; the results in
        input order. An error of the input itself is raised once the rest has run."""
        executor = self._require_open()
        concurrency = self.settings.limits.concurrency
        store = _InputOrder()
        queue = MemoryQueue(store.numbered(built), maxsize=concurrency)
        try:
            await Runner(queue, store, executor, concurrency=concurrency).run()
        finally:
            await queue.aclose()
        error = queue.feeder_error()
        if error is not None:
            raise error
        return store.in_order()

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

    async def fetch_to_file(
        self,
        requests: Requests,
        path: str | os.PathLike[str],
        *,
        resume: bool = True,
        output_format: str | None = None,
        resume_force: bool = False,
        retry_failed: bool = False,
    ) -> RunStats:
        """Fetch every request into the file ``path``: one record per request id.

        The format is ``output_format`` (``jsonl``, ``csv``, ``sqlite``) or the one its
        extension names. With ``resume`` (the default) the run keeps a journal beside
        the output (``path.journal``), as ``fetch --resume`` does: after any crash,
        ``kill -9`` included, calling this again with the same requests fetches only
        those without a record, and the file ends with exactly one record per id.
        ``resume_force`` and ``retry_failed`` are ``--resume-force`` and
        ``--retry-failed``. Without ``resume`` the file is overwritten (a file with a
        journal is refused). Returns the run's statistics (``skipped``: done earlier).
        """
        executor = self._require_open()
        from .resume.filters import drop_repeat_batches, ready_batches
        from .sources import iter_requests

        stats = StatsCollector()
        batches = ready_batches(iter_requests(requests, defaults=self._defaults))
        concurrency = self.settings.limits.concurrency
        async with AsyncExitStack() as stack:
            if resume:
                output = await self._open_resumable(
                    path, output_format, resume_force, retry_failed
                )
                stack.push_async_callback(output.aclose)
                store: ResultStore = output
                filtered = output.unfinished(batches, stats)
            else:
                output, store = None, self._open_plain(path, output_format)
                stack.push_async_callback(store.aclose)
                filtered = drop_repeat_batches(batches, stats)
            queue = MemoryQueue(batches=filtered, maxsize=concurrency * 2)
            stack.push_async_callback(queue.aclose)
            runner = Runner(queue, store, executor, concurrency=concurrency, stats=stats)
            self.last_stats = await runner.run()
            if (error := queue.feeder_error()) is not None:
                raise error
            if output is not None:
                await output.finished()
        return self.last_stats

    async def _open_resumable(
        self, path: str | os.PathLike[str], output_format: str | None, force: bool, retry: bool
    ) -> ResumableOutput:
        from .resume.fingerprint import fingerprint
        from .resume.output import ResumableOutput
        from .sinks import _resolve_format

        chosen = _resolve_format(os.fspath(path), output_format)
        options = self._record_options(chosen)
        return await ResumableOutput.open(
            path,
            output_format=chosen,
            include_headers=self.settings.body.include_headers,
            make_fingerprint=lambda salt: fingerprint((), options, salt),
            force=force,
            retry_failed=retry,
        )

    def _open_plain(self, path: str | os.PathLike[str], output_format: str | None) -> SinkStore:
        from .resume.location import refuse_journaled_output
        from .sinks import open_sink

        refuse_journaled_output(path)
        include_headers = self.settings.body.include_headers
        return SinkStore(
            open_sink(path, output_format=output_format, include_headers=include_headers)
        )

    def _record_options(self, output_format: str) -> dict[str, Any]:
        """The options that shape records, which a resumed job must keep (its fingerprint;
        the requests themselves are the caller's to give again)."""
        body, transport = self.settings.body, self.settings.transport
        return {
            "header": self._defaults.headers,
            "proxy": transport.proxy,
            "output_format": output_format,
            "body": body.mode,
            "include_headers": body.include_headers,
            "max_body": body.max_body,
            "max_redirects": transport.max_redirects,
        }


# Indented as the docstring's own lines are, so help() shows one even block.
Fetcher.__doc__ = f"{Fetcher.__doc__}\n{textwrap.indent(_options_help(), '    ')}\n"
Fetcher.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        *list(inspect.signature(Fetcher.__init__).parameters.values())[:-1],
        *_SETTING_PARAMETERS,
    ]
)


async def _run_then_close(runner: Runner, store: ChannelStore) -> None:
    try:
        await runner.run()
    except asyncio.CancelledError:
        raise  # the consumer is gone; no end marker is needed
    except BaseException:
        await store.aclose()  # wake the consumer, which then sees this error
        raise
    await store.aclose()


class _InputOrder:
    """A ResultStore that puts each result back at its input's position."""

    def __init__(self) -> None:
        # Positions of the requests in flight, by identity: the same Request object may
        # come twice, and ids of finished ones may be reused.
        self._positions: dict[int, deque[int]] = {}
        self._results: dict[int, Result] = {}

    async def numbered(
        self, built: AsyncIterator[Request | InvalidInput]
    ) -> AsyncIterator[Request | InvalidInput]:
        position = 0
        async for request in built:
            self._positions.setdefault(id(request), deque()).append(position)
            position += 1
            yield request

    async def commit(self, batch: Sequence[Completed]) -> None:
        for item, result in batch:
            positions = self._positions[id(item.request)]
            self._results[positions.popleft()] = result
            if not positions:
                del self._positions[id(item.request)]

    def in_order(self) -> list[Result]:
        return [self._results[position] for position in range(len(self._results))]

    async def aclose(self) -> None:
        return None


async def _one(request: Request | InvalidInput) -> AsyncIterator[Request | InvalidInput]:
    yield request


async def _built(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike], fetcher: Fetcher
) -> AsyncIterator[Request | InvalidInput]:
    """Each input as :meth:`Fetcher.fetch` takes it (no line numbers)."""
    from .sources import to_request

    if isinstance(requests, AsyncIterable):
        async for request in requests:
            yield to_request(request, None, fetcher._defaults)
    else:
        for request in requests:
            yield to_request(request, None, fetcher._defaults)


async def fetch_all(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike], **options: Any
) -> list[Result]:
    """Fetch everything and return the results in input order."""
    async with Fetcher(**options) as fetcher:
        return await fetcher._in_order(_built(requests, fetcher))


async def fetch_to_file(
    requests: Requests, path: str | os.PathLike[str], **options: Any
) -> RunStats:
    """:meth:`Fetcher.fetch_to_file` with a Fetcher made from ``options`` for the run:
    the method's own keywords go to it, the rest to the Fetcher."""
    run_options = {name: options.pop(name) for name in _FILE_RUN_KEYWORDS if name in options}
    async with Fetcher(**options) as fetcher:
        return await fetcher.fetch_to_file(requests, path, **run_options)


# The method's keywords (resume, output_format, ...), declared there once.
_FILE_RUN_KEYWORDS = tuple(
    parameter.name
    for parameter in inspect.signature(Fetcher.fetch_to_file).parameters.values()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)
fetch_to_file.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        *list(inspect.signature(Fetcher.fetch_to_file).parameters.values())[1:],
        *_SETTING_PARAMETERS,
    ],
    return_annotation="RunStats",
)


def run(requests: Iterable[RequestLike], **options: Any) -> list[Result]:
    """:func:`fetch_all` for synchronous code (scripts, notebooks without a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_coroutine(fetch_all(requests, **options))
    raise ConfigError("asyncfetch.run() cannot be called from async code; await fetch_all()")
