"""``asyncfetch report``: one HTML page of a run, from its records or a Redis job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError, OutputError, QueueError
from .._options import JobOptions, options_of
from .exit_codes import EXIT_FATAL, EXIT_OK, EXIT_USAGE
from .options import with_options

if TYPE_CHECKING:
    from ..report.aggregate import ReportData


@click.command("report")
@click.argument(
    "records", required=False, type=click.Path(dir_okay=False, path_type=Path), metavar="[OUT]"
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (default: OUT with .html, or JOB.html).",
)
@click.option(
    "--format",
    "records_format",
    type=click.Choice(["jsonl", "csv", "sqlite"]),
    help="Format of OUT (default: from its suffix; JSONL otherwise).",
)
# The job's options as enqueue and worker declare them; here either they or OUT.
@with_options(options_of(JobOptions), required=False)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def report_command(
    records: Path | None,
    output: Path | None,
    records_format: str | None,
    redis_url: str | None,
    job: str | None,
    quiet: bool,
) -> None:
    """Write one self-contained HTML page of the run whose records are in OUT.

    OUT is a JSONL, CSV or SQLite output of fetch or collect; with --redis and --job
    the report reads the job's results instead. The page loads nothing from the network.
    """
    try:
        target, source, data = _build(records, output, records_format, redis_url, job)
        from ..report.build import write_report

        write_report(data, target, source=source)
    except ConfigError as error:
        click.echo(f"asyncfetch: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except (OutputError, QueueError) as error:
        click.echo(f"asyncfetch: fatal: {error}", err=True)
        sys.exit(EXIT_FATAL)
    if not quiet:
        click.echo(f"asyncfetch: wrote {target} ({data.requests:,} records)", err=True)
    sys.exit(EXIT_OK)


def _build(
    records: Path | None,
    output: Path | None,
    records_format: str | None,
    redis_url: str | None,
    job: str | None,
) -> tuple[Path, str, ReportData]:
    from ..report.build import report_from_file, report_from_redis

    if records is not None and job is not None:
        raise ConfigError("give either OUT or --job, not both")
    if records is not None:
        return (
            output or records.with_suffix(".html"),
            str(records),
            report_from_file(records, records_format),
        )
    if job is None or redis_url is None:
        raise ConfigError("give OUT (a records file), or --redis URL and --job NAME")
    from ..queues.redis.jobs import redact_redis_url
    from ..runtime.eventloop import run_coroutine

    data = run_coroutine(report_from_redis(redis_url, job))
    return output or Path(f"{job}.html"), f"job {job} on {redact_redis_url(redis_url)}", data
