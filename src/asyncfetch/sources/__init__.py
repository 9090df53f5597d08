"""Input readers: turn text, JSONL or CSV lines into Requests (or InvalidInput records).

Every bad line becomes exactly one :class:`~asyncfetch._models.InvalidInput` and reading
goes on; only a problem with the input as a whole (it cannot be opened or read, a CSV
header lacks a url column) raises :class:`~asyncfetch._errors.InputError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .detect import detect_format as detect_format
    from .estimate import estimate_total as estimate_total
    from .items import iter_requests as iter_requests
    from .items import to_request as to_request
    from .source import open_source as open_source
    from .source import open_source_batches as open_source_batches
    from .spec import build_request as build_request
    from .validate import validate_url as validate_url

# Imported on first use (PEP 562): reading a URL list needs neither the CSV reader nor
# the library's in-memory inputs, and the CLI should not import them to start.
_LAZY = {
    "detect_format": ".detect",
    "estimate_total": ".estimate",
    "iter_requests": ".items",
    "to_request": ".items",
    "open_source": ".source",
    "open_source_batches": ".source",
    "build_request": ".spec",
    "validate_url": ".validate",
}

__all__ = [
    "build_request",
    "detect_format",
    "estimate_total",
    "iter_requests",
    "open_source",
    "open_source_batches",
    "to_request",
    "validate_url",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
