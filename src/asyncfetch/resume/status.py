"""How far a resumable job got, from its journal (``asyncfetch status``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from .._errors import InputError
from .fingerprint import describe_input
from .journal import JOURNAL_SUFFIX, read_state


def journal_status(path: Path) -> dict[str, Any]:
    """How far the job of the journal at ``path`` got (blocking; safe during a run)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        state = read_state(connection)
    finally:
        connection.close()
    stored = state.fingerprint or {}
    changed, total = _inputs_now(stored)
    remaining = None if total is None or changed else max(total - state.done, 0)
    return {
        "output": str(path)[: -len(JOURNAL_SUFFIX)],
        "journal": str(path),
        "runs": state.runs,
        "complete": state.complete,
        "done": state.done,
        "ok": state.done - state.failed,
        "failed": state.failed,
        "total": total,
        "remaining": 0 if state.complete else remaining,
        "inputs": [entry.get("name") for entry in stored.get("inputs", [])],
        "input_changed": changed,
    }


def _inputs_now(stored: dict[str, Any]) -> tuple[bool | None, int | None]:
    """(whether the inputs changed, estimated request count); None where unknown."""
    from ..sources import estimate_total

    entries: list[dict[str, Any]] = stored.get("inputs") or []
    input_format = (stored.get("options") or {}).get("input_format")
    total = 0
    for entry in entries:
        name = entry.get("name", "-")
        if name == "-" or not os.path.isfile(name):
            return None, None
        try:
            now = describe_input(name)
        except InputError:
            return None, None
        if any(now.get(key) != entry.get(key) for key in ("size", "head", "tail")):
            return True, None
        count = estimate_total(name, input_format)
        if count is None:
            return False, None
        total += count
    return (False, total) if entries else (None, None)
