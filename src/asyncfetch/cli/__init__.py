"""The ``asyncfetch`` command. Commands import the library lazily so --help stays fast."""

from __future__ import annotations

import click

from .. import __version__
from .fetch import fetch_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="asyncfetch")
def main() -> None:
    """Run very many HTTP requests concurrently and write one result record per request.

    \b
    Examples:
      asyncfetch fetch urls.txt -o results.jsonl
      asyncfetch fetch requests.jsonl -c 200 --per-host 4 --rate 50 -o out.sqlite
      cat urls.txt | asyncfetch fetch - --body none > results.jsonl
      asyncfetch demo
    """


main.add_command(fetch_command)


def _register_optional() -> None:
    # Each command module exposes ``commands``; imported here so a missing optional
    # module (e.g. while a feature is being built) does not break the others.
    from importlib import import_module

    for module_name in ("demo", "distributed", "status"):
        try:
            module = import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{module_name}":
                raise
            continue
        for command in getattr(module, "commands", [getattr(module, "demo_command", None)]):
            if command is not None:
                main.add_command(command)


_register_optional()
