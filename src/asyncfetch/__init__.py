"""asyncfetch: run very many HTTP requests concurrently, and trust the results.

The public API is what this module exports; everything else is private and may change.
Names are imported on first use (PEP 562) so that ``asyncfetch --help`` and scripts that
need one name do not pay for importing asyncio, aiohttp and the rest up front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .concurrency import Outcome as Outcome
    from .concurrency import amap as amap
    from .concurrency import amap_unordered as amap_unordered
    from .concurrency import gather_limited as gather_limited
    from .config import BodyPolicy as BodyPolicy
    from .config import Limits as Limits
    from .config import RequestDefaults as RequestDefaults
    from .config import RetryPolicy as RetryPolicy
    from .config import Settings as Settings
    from .config import Timeouts as Timeouts
    from .config import TransportOptions as TransportOptions
    from .errors import AsyncfetchError as AsyncfetchError
    from .errors import ConfigError as ConfigError
    from .errors import ErrorKind as ErrorKind
    from .errors import InputError as InputError
    from .errors import OutputError as OutputError
    from .errors import QueueError as QueueError
    from .errors import ResumeError as ResumeError
    from .errors import TransportError as TransportError
    from .fetcher import Fetcher as Fetcher
    from .fetcher import fetch_all as fetch_all
    from .fetcher import run as run
    from .models import ErrorInfo as ErrorInfo
    from .models import Request as Request
    from .models import Result as Result
    from .models import RunStats as RunStats
    from .models import Timings as Timings

_LAZY = {
    "Outcome": ".concurrency",
    "amap": ".concurrency",
    "amap_unordered": ".concurrency",
    "gather_limited": ".concurrency",
    "BodyPolicy": ".config",
    "Limits": ".config",
    "RequestDefaults": ".config",
    "RetryPolicy": ".config",
    "Settings": ".config",
    "Timeouts": ".config",
    "TransportOptions": ".config",
    "AsyncfetchError": ".errors",
    "ConfigError": ".errors",
    "ErrorKind": ".errors",
    "InputError": ".errors",
    "OutputError": ".errors",
    "QueueError": ".errors",
    "ResumeError": ".errors",
    "TransportError": ".errors",
    "Fetcher": ".fetcher",
    "fetch_all": ".fetcher",
    "run": ".fetcher",
    "ErrorInfo": ".models",
    "Request": ".models",
    "Result": ".models",
    "RunStats": ".models",
    "Timings": ".models",
}

__version__ = "0.1.0"

__all__ = [
    "AsyncfetchError",
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
    "gather_limited",
    "run",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
