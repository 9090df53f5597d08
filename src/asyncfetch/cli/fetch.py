"""``asyncfetch fetch``: options in, a FetchJob out; the work happens in cli/run.py."""

from __future__ import annotations

import sys

import click

from .._options import run_options_for
from ..runtime.gc_tuning import paused_collections
from .exit_codes import EXIT_USAGE
from .job import FetchJob
from .options import with_options


@click.command("fetch")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@with_options(run_options_for("fetch"))
def fetch_command(**options: object) -> None:
    """Fetch every request in INPUT (URL lines, JSONL specs or CSV; '-' = stdin).

    Writes exactly one JSON record per input request; repeated request ids are fetched
    once (without --resume, among the last 50,000 ids). Exit codes: 0 done, 1 some
    requests failed (with --fail-on-error), 2 usage error, 3 fatal error, 130 interrupted,
    141 stdout's reader closed the pipe (quietly, as any Unix filter).
    """
    job = FetchJob.from_options(options)
    if not job.inputs:
        if sys.stdin.isatty():
            click.echo("asyncfetch: no INPUT given and stdin is a terminal; try --help", err=True)
            sys.exit(EXIT_USAGE)
        job = job.with_inputs(("-",))
    with paused_collections():
        from .run import run_fetch_job

    sys.exit(run_fetch_job(job))
