"""Ending a task by cancellation, checked: `gather(..., return_exceptions=True)` alone
would also accept any other error the cancelled code raised on its way out."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_check(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and check that it ended by that cancellation and nothing else."""
    task.cancel()
    await ended_cancelled(task)


async def ended_cancelled(task: asyncio.Task[Any]) -> None:
    """Wait for ``task`` (already cancelled) and check it ended with CancelledError."""
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError), repr(outcome)
