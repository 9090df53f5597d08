"""``asyncfetch demo``: the tutorial's six sections and a bulk run against a local server.

Names are imported on first use (PEP 562): the CLI reads the option defaults from here
without importing aiohttp's server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
