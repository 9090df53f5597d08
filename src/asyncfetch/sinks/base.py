"""The Sink protocol: where final result records go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .._models import Result


class Sink(Protocol):
    """Writes result records in batches.

    ``write`` may buffer; ``flush(durable=True)`` returns only once everything written so
    far is on stable storage (fsync), which the resume journal relies on. Failures to
    write raise :class:`asyncfetch._errors.OutputError`.
    """

    async def write(self, results: Sequence[Result]) -> None: ...

    async def flush(self, *, durable: bool = False) -> None: ...

    async def aclose(self) -> None: ...
