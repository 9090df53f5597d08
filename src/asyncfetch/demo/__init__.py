"""``asyncfetch demo``: the tutorial's six sections and a bulk run against a local server.

Names are imported on first use (PEP 562): the CLI reads the option defaults from here
without importing aiohttp's server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .messages import LANGUAGES as LANGUAGES
    from .server import DemoServer as DemoServer
    from .walkthrough import DemoReport as DemoReport
    from .walkthrough import DemoRequestError as DemoRequestError
    from .walkthrough import run_demo as run_demo

_LAZY = {
    "LANGUAGES": ".messages",
    "DemoServer": ".server",
    "DemoReport": ".walkthrough",
    "DemoRequestError": ".walkthrough",
    "run_demo": ".walkthrough",
}

__all__ = ["LANGUAGES", "DemoReport", "DemoRequestError", "DemoServer", "run_demo"]


__getattr__ = lazy_exports(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
