"""``asyncfetch demo``: walk the tutorial against an embedded server, then a bulk run."""

from __future__ import annotations

import os

import click

from .._errors import AsyncfetchError, ConfigError
from ..demo.messages import LANGUAGES, default_language, messages
from ..demo.options import DEFAULT_BULK, DEFAULT_BULK_CONCURRENCY, MAX_SCALE
from .exit_codes import EXIT_FATAL, EXIT_INTERRUPTED


@click.command("demo")
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=lambda: default_language(os.environ),
    show_default="Korean where the locale is Korean (LC_ALL, LC_MESSAGES, LANG), else English",
    help="Language of the output: the tutorial's Korean, or English.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True, max=MAX_SCALE),
    default=1.0,
    show_default=True,
    help="Multiply every delay by this (0.05 runs the demo in about a second).",
)
@click.option(
    "--bulk",
    type=click.IntRange(min=1),
    default=DEFAULT_BULK,
    show_default=True,
    help="Number of requests in the final bulk run.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_BULK_CONCURRENCY,
    show_default=True,
    help="Requests in flight at once during the bulk run.",
)
@click.pass_context
def demo_command(ctx: click.Context, lang: str, scale: float, bulk: int, concurrency: int) -> None:
    """Replay the async tutorial with real HTTP on a local server and measure the speed-up.

    Nothing leaves this machine: the server listens on 127.0.0.1 on a free port.
    """
    # Imported here, not at the top: `asyncfetch --help` should not load aiohttp and rich.
    from rich.console import Console

    from ..demo.walkthrough import run_demo
    from ..runtime.eventloop import run_coroutine

    console = Console()
    try:
        run_coroutine(
            run_demo(lang=lang, scale=scale, bulk=bulk, console=console, concurrency=concurrency)
        )
    except KeyboardInterrupt:
        console.print(messages(lang)("interrupted"), markup=False)
        ctx.exit(EXIT_INTERRUPTED)
    except ConfigError as exc:
        raise click.UsageError(str(exc), ctx) from exc
    except AsyncfetchError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_FATAL)
