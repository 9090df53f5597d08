"""``asyncfetch status``: how far a job got, from its resume journal or its Redis job."""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

import click
import orjson

from .._options import JobOptions
from .exit_codes import EXIT_FATAL, EXIT_OK, EXIT_USAGE
from .options import with_options


@click.command("status")
@click.argument("output", required=False, type=click.Path(dir_okay=False))
# The job's options as enqueue and worker declare them; here either they or OUTPUT, so
# $ASYNCFETCH_REDIS does not count (it would turn `status OUTPUT` into a mistake).
@with_options(
    [JobOptions.redis_url],
    required=False,
    envvar=None,
    help="Redis URL of a distributed job (with --job).",
)
@with_options([JobOptions.job], required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(
    output: str | None, redis_url: str | None, job: str | None, as_json: bool
) -> None:
    """Show how far a job got: done, failed and remaining requests.

    OUTPUT is the -o file of a run started with --resume (its journal is OUTPUT.journal);
    or give --redis URL --job NAME for a distributed job. Safe while the job is running.
    """
    if (redis_url is None) != (job is None) or (redis_url is None) == (output is None):
        click.echo("asyncfetch: give either OUTPUT, or both --redis URL and --job NAME", err=True)
        sys.exit(EXIT_USAGE)
    try:
        data = _redis_status(redis_url, job) if redis_url and job else _local_status(output)
    except _StatusError as error:
        click.echo(f"asyncfetch: {error.message}", err=True)
        sys.exit(error.code)
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        for line in _describe_redis(data) if redis_url else _describe_local(data):
            click.echo(line)
    sys.exit(EXIT_OK)


class _StatusError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _local_status(output: str | None) -> dict[str, Any]:
    from ..resume.journal import journal_path
    from ..resume.status import journal_status

    path = journal_path(output or "")
    if not path.is_file():
        raise _StatusError(f"no resume journal at {path} (was the run started with --resume?)", 2)
    try:
        return journal_status(path)
    except sqlite3.Error as exc:
        raise _StatusError(f"cannot read the journal {path}: {exc}", EXIT_FATAL) from exc


def _redis_status(redis_url: str, job: str) -> dict[str, Any]:
    from .._errors import ConfigError, QueueError
    from ..queues.redis.jobs import job_status
    from ..runtime.eventloop import run_coroutine

    try:
        return run_coroutine(job_status(redis_url, job))
    except ConfigError as error:
        raise _StatusError(str(error), EXIT_USAGE) from error
    except QueueError as error:
        raise _StatusError(f"fatal: {error}", EXIT_FATAL) from error


def _describe_local(data: dict[str, Any]) -> list[str]:
    state = "complete" if data["complete"] else "incomplete"
    lines = [f"{data['output']}: {state} after {data['runs']} run(s) (journal {data['journal']})"]
    done = f"done {data['done']}: {data['ok']} ok, {data['failed']} failed"
    if data["remaining"] is not None:
        done += f"; remaining about {data['remaining']} of about {data['total']}"
    lines.append(done)
    if data["input_changed"]:
        lines.append("the input has changed since the job started (resume will refuse it)")
    elif data["remaining"] is None and not data["complete"]:
        lines.append("remaining: unknown (the input is stdin or no longer readable)")
    return lines


def _describe_redis(data: dict[str, Any]) -> list[str]:
    state = "complete" if data.get("complete") else "incomplete"
    lines = [
        f"job {data.get('job')}: {state}",
        f"enqueued {data.get('enqueued')}, done {data.get('done')}, pending"
        f" {data.get('pending')}, dead-lettered {data.get('dead_lettered')}",
        f"rate {data.get('rate')} requests/s",
    ]
    for consumer, pending in sorted((data.get("pending_by_consumer") or {}).items()):
        lines.append(f"  {consumer}: {pending} pending")
    return lines


commands = [status_command]
