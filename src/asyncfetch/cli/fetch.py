"""``asyncfetch fetch``: options in, a FetchJob out; the work happens in cli/run.py."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..runtime.gc_tuning import paused_collections
from .exit_codes import EXIT_USAGE
from .job import FetchJob, parse_header, parse_resolve


def _headers(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple:  # type: ignore[type-arg]
    try:
        return tuple(parse_header(value) for value in values)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _data(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_bytes()
        except OSError as error:
            raise click.BadParameter(f"cannot read {value[1:]}: {error.strerror}") from error
    return value.encode()


def _resolve(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, int, str], ...]:
    try:
        return tuple(parse_resolve(value) for value in values)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@click.command("fetch")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option(
    "--input-format",
    type=click.Choice(["text", "jsonl", "csv"]),
    help="Force the input format (default: detect).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Output file: .jsonl/.ndjson/.json/.txt, .csv, .sqlite/.sqlite3/.db, or no extension"
    " for JSONL (default: JSONL on stdout); another extension needs --output-format.",
)
@click.option(
    "--output-format",
    type=click.Choice(["jsonl", "csv", "sqlite"]),
    help="Force the output format.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--per-host",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight per host.",
)
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="Global requests per second."
)
@click.option(
    "--per-host-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Requests per second per host (with enqueue: shared by all workers).",
)
@click.option(
    "--adapt/--no-adapt",
    default=True,
    show_default=True,
    help="Learn each host's limit from its 429/503s, errors and latency, under -c,"
    " --per-host, --rate and --per-host-rate; --no-adapt keeps them fixed.",
)
@click.option(
    "-A", "--user-agent", help="User-Agent header of every request (default asyncfetch/0.1)."
)
@click.option("-X", "--method", help="Method for URL lines (default GET, or POST with -d).")
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    callback=_headers,
    help="'Name: value', repeatable; added to every request.",
)
@click.option("-d", "--data", callback=_data, help="Body for URL lines; @FILE reads a file.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds per attempt, in total.",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to connect.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each read.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries after the first attempt.",
)
@click.option(
    "--retry-on",
    "retry_on",
    metavar="STATUSES",
    help="Statuses that are retried, e.g. 429,500-599 (default: 429,500,502,503,504).",
)
@click.option(
    "--retry-non-idempotent",
    is_flag=True,
    help="Also retry POST/PATCH that may have reached the server.",
)
@click.option(
    "--max-redirects",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="0 = do not follow redirects.",
)
@click.option(
    "--body",
    "body_mode",
    type=click.Choice(["auto", "text", "base64", "none"]),
    default="auto",
    show_default=True,
    help="How bodies appear in records.",
)
@click.option(
    "--save-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save bodies as files here; records hold the path.",
)
@click.option(
    "--save-names",
    type=click.Choice(["id", "url"]),
    default="id",
    show_default=True,
    help="Name saved bodies by request id (HOST/ID.EXT) or by the URL's path"
    " (HOST/PATH/NAME, as curl -O and aria2).",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=0),
    default=10 * 1024 * 1024,
    show_default=True,
    help="Bytes (decoded) per body; more gives too_large.",
)
@click.option("--include-headers", is_flag=True, help="Add response headers to records.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option(
    "--cacert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trust this CA bundle (PEM).",
)
@click.option("--proxy", help="HTTP proxy URL.")
@click.option(
    "--resolve",
    multiple=True,
    callback=_resolve,
    metavar="HOST:PORT:ADDR",
    help="Connect to ADDR for HOST:PORT without asking DNS (as curl); repeatable.",
)
@click.option(
    "--dns-server",
    "dns_servers",
    multiple=True,
    metavar="ADDR[:PORT]",
    help="Ask this DNS server (default: the system's); repeatable.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "aiohttp", "fast"]),
    default="auto",
    show_default=True,
    help="HTTP engine.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress display (default: a bar when stderr is a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary.")
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the summary as JSON here.",
)
@click.option("--fail-on-error", is_flag=True, help="Exit 1 when any request failed.")
@click.option(
    "--only",
    type=click.Choice(["all", "ok", "failed"]),
    default="all",
    show_default=True,
    help="Which records to write; the summary (and journal) count every request.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep a journal next to -o FILE; run the same command again to fetch only what"
    " has no record yet.",
)
@click.option(
    "--resume-force",
    is_flag=True,
    help="Resume even if the input or options changed, or rebuild a missing or stale"
    " journal from the output (implies --resume).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="On resume, fetch again the requests whose record is a failure (implies --resume).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write an HTML report of the run here when it ends (also on Ctrl-C).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve Prometheus metrics on this port while running (0: any free port).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics server listens on.",
)
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
