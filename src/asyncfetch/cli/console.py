"""The commands' stderr console, created the first time something is printed.

Importing rich and building a Console cost nearly as much as importing asyncio (some 85
million instructions), and a quiet run without a progress bar prints nothing: it should
not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console


class Printer(Protocol):
    """What the run helpers print through: a rich Console or a :class:`LazyConsole`."""

    def print(
        self,
        *objects: Any,
        markup: bool | None = None,
        highlight: bool | None = None,
        soft_wrap: bool | None = None,
    ) -> None: ...


class LazyConsole:
    """``Console(stderr=True)``, made on first use (or a given Console, used as is)."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def print(
        self,
        *objects: Any,
        markup: bool | None = None,
        highlight: bool | None = None,
        soft_wrap: bool | None = None,
    ) -> None:
        # soft_wrap: a message stays one line however narrow the terminal (or the 80
        # columns rich assumes for a file), so logs and grep see it whole.
        wrap = True if soft_wrap is None else soft_wrap
        self.console.print(*objects, markup=markup, highlight=highlight, soft_wrap=wrap)
