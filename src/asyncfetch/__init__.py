"""asyncfetch: run very many HTTP requests concurrently, and trust the results.

The public API is what this module exports; everything else is private and may change.
Names are imported on first use (PEP 562) so that ``asyncfetch --help`` and scripts that
need one name do not pay for importing asyncio, aiohttp and the rest up front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from ._api import Fetcher as Fetcher
    from ._api import fetch_all as fetch_all
    from ._api import fetch_to_file as fetch_to_file
    from ._api import run as run
    from ._errors import AsyncfetchError as AsyncfetchError
    from ._errors import BodyNotKept as BodyNotKept
    from ._errors import ConfigError as ConfigError
    from ._errors import ErrorKind as ErrorKind
    from ._errors import InputError as InputError
    from ._errors import OutputError as OutputError
    from ._errors import QueueError as QueueError
    from ._errors import ResumeError as ResumeError
    from ._errors import TransportError as TransportError
    from ._models import ErrorInfo as ErrorInfo
    from ._models import Request as Request
    from ._models import Result as Result
    from ._models import RunStats as RunStats
    from ._models import Timings as Timings
    from ._settings import BodyPolicy as BodyPolicy
    from ._settings import Limits as Limits
    from ._settings import RequestDefaults as RequestDefaults
    from ._settings import RetryPolicy as RetryPolicy
    from ._settings import Settings as Settings
    from ._settings import Timeouts as Timeouts
    from ._settings import TransportOptions as TransportOptions
    from .concurrency import Outcome as Outcome
    from .concurrency import amap as amap
    from .concurrency import amap_unordered as amap_unordered
    from .concurrency import gather_limited as gather_limited

_LAZY = {
    "Outcome": ".concurrency",
    "amap": ".concurrency",
    "amap_unordered": ".concurrency",
    "gather_limited": ".concurrency",
    "BodyPolicy": "._settings",
    "Limits": "._settings",
    "RequestDefaults": "._settings",
    "RetryPolicy": "._settings",
    "Settings": "._settings",
    "Timeouts": "._settings",
    "TransportOptions": "._settings",
    "AsyncfetchError": "._errors",
    "BodyNotKept": "._errors",
    "ConfigError": "._errors",
    "ErrorKind": "._errors",
    "InputError": "._errors",
    "OutputError": "._errors",
    "QueueError": "._errors",
    "ResumeError": "._errors",
    "TransportError": "._errors",
    "Fetcher": "._api",
    "fetch_all": "._api",
    "fetch_to_file": "._api",
    "run": "._api",
    "ErrorInfo": "._models",
    "Request": "._models",
    "Result": "._models",
    "RunStats": "._models",
    "Timings": "._models",
}

__version__ = "0.1.0"

__all__ = [
    "AsyncfetchError",
    "BodyNotKept",
    "BodyPolicy",
    "ConfigError",
    "ErrorInfo",
    "ErrorKind",
    "Fetcher",
    "InputError",
    "Limits",
    "Outcome",
    "OutputError",
    "QueueError",
    "Request",
    "RequestDefaults",
    "Result",
    "ResumeError",
    "RetryPolicy",
    "RunStats",
    "Settings",
    "Timeouts",
    "Timings",
    "TransportError",
    "TransportOptions",
    "__version__",
    "amap",
    "amap_unordered",
    "fetch_all",
    "fetch_to_file",
    "gather_limited",
    "run",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
