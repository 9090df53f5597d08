"""The ``asyncfetch`` command.

Subcommands are imported only when they run: ``asyncfetch --help`` and every command's
start-up then pay only for click, not for asyncio, aiohttp, redis and rich.
"""

from __future__ import annotations

from importlib import import_module

import click

from .. import __version__
from ..runtime.gc_tuning import paused_collections

# name → (module, attribute, one-line help shown by ``asyncfetch --help``)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "fetch": ("fetch", "fetch_command", "Fetch every request of the inputs; one record each."),
    "status": ("status", "status_command", "How far a journaled run or a Redis job got."),
    "enqueue": ("distributed", "enqueue_command", "Put requests into a Redis job."),
    "worker": ("distributed", "worker_command", "Fetch a Redis job's requests."),
    "collect": ("collect", "collect_command", "Write a Redis job's results to a file."),
    "report": ("report", "report_command", "Write an HTML report of a run: plots, hosts, errors."),
    "demo": ("demo", "demo_command", "The async tutorial, live, on an embedded server."),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        with paused_collections():
            module = import_module(f"{__name__}.{entry[0]}")
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in _COMMANDS.items()])


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="asyncfetch")
def main() -> None:
    """Run very many HTTP requests concurrently and write one result record per request.

    \b
    Examples:
      asyncfetch fetch urls.txt -o results.jsonl
      asyncfetch fetch requests.jsonl -c 200 --per-host 4 --rate 50 -o out.sqlite
      cat urls.txt | asyncfetch fetch - --body none > results.jsonl
      asyncfetch fetch urls.txt -o out.jsonl --resume
      asyncfetch demo
    """
