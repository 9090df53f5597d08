"""``asyncfetch collect``: a Redis job's results into any sink, one record per request id.

Into a file, collect keeps the resume journal of ``fetch --resume`` next to it
(``OUT.journal``): the ids written, the output's committed length and the positions
reached in the job's streams move together in one journal transaction, after the records
are fsynced. A collect killed at any moment and run again cuts the output back to what
the journal knows and continues from those positions: no record twice, none missing.
Deduplication asks the journal, so memory does not grow with the job. To stdout there is
no journal: a window of recent ids drops repeats, as ``fetch`` does without ``--resume``.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console

from .._errors import ConfigError
from .._options import RunOptions
from ..resume.recent_ids import RecentIds
from ..sinks.base import Sink
from .distributed import job_option, redis_option, say
from .options import click_option
from .run import run_with_exit_codes

if TYPE_CHECKING:  # imported when collect runs: --help stays fast
    from ..queues.redis.collect import Collected
    from ..resume.output import ResumableOutput

_POSITIONS_KEY = "collect_positions"


@click.command("collect")
@redis_option
@job_option
@click.option("--follow", is_flag=True, help="Keep collecting until the job is complete.")
@click.option(
    "--dead/--no-dead",
    default=True,
    show_default=True,
    help="Write a record (error kind internal) for each dead-lettered request.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def collect_command(
    redis_url: str,
    job: str,
    follow: bool,
    dead: bool,
    quiet: bool,
    output: str | None,
    output_format: str | None,
    resume_force: bool,
) -> None:
    """Write JOB's results to -o OUT (JSONL, CSV or SQLite): one record per request id.

    May run while the job is still going: without --follow it writes what is there now.
    Into a file it keeps OUT.journal: run the same command again to continue where it
    stopped (killed, or to pick up newer results), without repeating a record.
    """
    console = Console(stderr=True)
    target = _Target(output, output_format, resume_force)
    coroutine = _collect(redis_url, job, follow, dead, target, console, quiet)
    sys.exit(run_with_exit_codes(coroutine, console))


collect_command.params.extend(
    click_option(o) for o in (RunOptions.output, RunOptions.output_format)
)
collect_command.params.append(
    click.Option(
        ["--resume-force"],
        is_flag=True,
        help="Adopt an OUT that has no journal (or a stale one): its records are kept,"
        " the job's others are added.",
    )
)


@dataclass(frozen=True, slots=True)
class _Target:
    output: str | None
    output_format: str | None
    resume_force: bool

    @property
    def is_file(self) -> bool:
        return self.output not in (None, "-")


@dataclass
class _Counts:
    written: int = 0
    duplicates: int = 0
    dead_lettered: int = 0

    def count(self, batch: list[Collected], fresh: list[Collected]) -> None:
        self.written += len(fresh)
        self.duplicates += len(batch) - len(fresh)
        self.dead_lettered += sum(1 for item in fresh if item.dead)


async def _collect(
    redis_url: str,
    job: str,
    follow: bool,
    dead: bool,
    target: _Target,
    console: Console,
    quiet: bool,
) -> int:
    from ..queues.redis.collect import ResultReader
    from ..queues.redis.jobs import JobKeys, connected, load_options

    keys = JobKeys(job)
    async with connected(redis_url) as client, AsyncExitStack() as stack:
        stored = await load_options(client, keys)
        if stored is None:
            raise ConfigError(f"no job named {job!r}")
        identity = {
            "job": job,
            "dead": dead,
            "include_headers": bool(stored.get("include_headers")),
        }
        if target.is_file:
            writer: _Writer = await _JournaledWriter.open(target, identity, stack, console, quiet)
        else:
            writer = _PlainWriter(target, identity, stack)
        reader = ResultReader(
            client, keys, follow=follow, include_dead=dead, positions=writer.start
        )
        async for batch in reader.batches():
            await writer.write(batch, reader.positions)
        await writer.finish(reader.complete)
    counts = writer.counts
    if not quiet:
        say(
            console,
            f"collected {counts.written} records ({counts.dead_lettered} dead-lettered,"
            f" {counts.duplicates} duplicates skipped)",
        )
    return 0


class _Writer(ABC):
    """Writes batches of collected records, each request id once."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.counts = _Counts()
        self.start: dict[str, str] = {}

    @abstractmethod
    async def write(self, batch: list[Collected], positions: dict[str, str]) -> None:
        """Write the batch's records not written yet; ``positions``: where it ends."""

    async def finish(self, complete: bool) -> None:
        await self.sink.flush(durable=True)


class _PlainWriter(_Writer):
    """To stdout: no journal, repeats dropped within a bounded window of recent ids."""

    def __init__(self, target: _Target, identity: dict[str, Any], stack: AsyncExitStack) -> None:
        from ..sinks import open_sink

        sink = open_sink(
            target.output,
            output_format=target.output_format,
            include_headers=identity["include_headers"],
        )
        stack.push_async_callback(sink.aclose)
        super().__init__(sink)
        self._recent = RecentIds()

    async def write(self, batch: list[Collected], positions: dict[str, str]) -> None:
        fresh = [item for item in batch if self._recent.add(item.result.id)]
        self.counts.count(batch, fresh)
        if fresh:
            await self.sink.write([item.result for item in fresh])
            await self.sink.flush()


class _JournaledWriter(_Writer):
    """To a file, as the library's resumable output with the journal (see the module doc)."""

    def __init__(self, output: ResumableOutput, start: dict[str, str]) -> None:
        super().__init__(output.sink)
        self._output = output
        self.start = start

    @classmethod
    async def open(
        cls,
        target: _Target,
        identity: dict[str, Any],
        stack: AsyncExitStack,
        console: Console,
        quiet: bool,
    ) -> _JournaledWriter:
        from ..resume.fingerprint import fingerprint
        from ..resume.journal import get_meta
        from ..resume.output import ResumableOutput
        from ..sinks import _resolve_format

        output_format = _resolve_format(str(target.output), target.output_format)
        output = await ResumableOutput.open(
            str(target.output),
            output_format=output_format,
            include_headers=identity["include_headers"],
            make_fingerprint=lambda salt: fingerprint(
                (), {**identity, "output_format": output_format}, salt
            ),
            force=target.resume_force,
        )
        stack.push_async_callback(output.aclose)
        # A rebuilt journal knows the output's ids but not the stream positions: read the
        # streams from the start, and let the journal drop what is already written.
        saved = await output.journal.call(lambda db: get_meta(db, _POSITIONS_KEY))
        report = output.report
        start = {} if saved is None or report.rebuilt is not None else orjson.loads(saved)
        if not quiet and report.runs > 1:
            say(console, f"resuming: {report.already_done} records already in {target.output}")
        return cls(output, start)

    async def write(self, batch: list[Collected], positions: dict[str, str]) -> None:
        done = await self._output.journal.lookup({item.result.id for item in batch})
        fresh: list[Collected] = []
        for item in batch:
            if item.result.id not in done:
                done[item.result.id] = 0
                fresh.append(item)
        self.counts.count(batch, fresh)
        meta = {_POSITIONS_KEY: orjson.dumps(positions).decode()}
        await self._output.write([item.result for item in fresh], meta)

    async def finish(self, complete: bool) -> None:
        await super().finish(complete)
        if complete:
            await self._output.finished()
