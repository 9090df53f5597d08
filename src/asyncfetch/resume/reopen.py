"""Opening a job for ``--resume``: check the journal against the run, repair the output.

Before any request is sent this makes the output and the journal agree: it completes an
interrupted rewrite, cuts a JSONL/CSV output back to the length the journal committed
(dropping a torn line or a batch whose ids never reached the journal), refuses a journal
that belongs to other inputs or options, and, with ``--retry-failed``, forgets the failed
requests and removes their records. Blocking steps run on the journal's thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._errors import InputError, ResumeError
from .journal import JOURNAL_SUFFIX, Journal, JournalState, journal_path, read_state
from .rewrite import drop_failed, finish_pending_rewrite, rebuild

FINGERPRINT_VERSION = 1
SAMPLE_BYTES = 64 * 1024
# Header values and bodies may hold secrets: they are stored only as a salted, slow hash,
# so the journal cannot be used to recover a token by guessing.
_SECRET_ITERATIONS = 100_000
_SECRET_OPTIONS = frozenset({"header", "data", "proxy"})


@dataclass(frozen=True, slots=True)
class ResumeReport:
    """What opening the job did, for the user: nothing of it is needed to run."""

    already_done: int
    already_failed: int
    cut_bytes: int = 0
    rebuilt: int | None = None
    retrying: int = 0
    runs: int = 1


def _hash_secret(value: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", value.encode(), salt, _SECRET_ITERATIONS)
    return digest.hex()


def describe_input(path: str) -> dict[str, Any]:
    if path == "-":
        return {"name": "-"}  # stdin cannot be checked; documented in docs/resume.md
    name = os.path.abspath(path)
    try:
        return _sample(name)
    except OSError as exc:
        raise InputError(f"cannot read input {path!r}: {exc.strerror or exc}") from exc


def _sample(name: str) -> dict[str, Any]:
    with open(name, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(0)
        head = hashlib.sha256(file.read(SAMPLE_BYTES)).hexdigest()
        file.seek(max(size - SAMPLE_BYTES, 0))
        tail = hashlib.sha256(file.read(SAMPLE_BYTES)).hexdigest()
    return {"name": name, "size": size, "head": head, "tail": tail}


def fingerprint(
    inputs: tuple[str, ...], options: dict[str, Any], salt: str | None = None
) -> dict[str, Any]:
    """The identity of a job: its inputs (size and sampled content) and request options.

    Options named in ``_SECRET_OPTIONS`` are kept only as salted hashes. Pass the salt of
    a stored fingerprint to get a comparable one. Blocking (reads the inputs).
    """
    salt = salt or secrets.token_hex(16)
    hidden = {
        key: None
        if value in (None, "", (), [])
        else _hash_secret(repr(value), bytes.fromhex(salt))
        for key, value in options.items()
        if key in _SECRET_OPTIONS
    }
    return {
        "version": FINGERPRINT_VERSION,
        "salt": salt,
        "inputs": [describe_input(path) for path in inputs],
        "options": {**{k: v for k, v in options.items() if k not in _SECRET_OPTIONS}, **hidden},
    }


def fingerprint_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words; empty when they match."""
    if stored.get("version") != current.get("version"):
        return ["the journal was written by another asyncfetch version"]
    problems = _input_differences(stored["inputs"], current["inputs"])
    old_options, new_options = stored["options"], current["options"]
    changed = sorted(
        key
        for key in old_options.keys() | new_options.keys()
        if old_options.get(key) != new_options.get(key)
    )
    if changed:
        problems.append("options changed: " + ", ".join(_option_name(key) for key in changed))
    return problems


def _option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def _input_differences(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    if len(old) != len(new):
        return [f"the job had {len(old)} input(s), this run has {len(new)}"]
    problems = []
    for before, after in zip(old, new, strict=True):
        content = ("size", "head", "tail")
        if any(before.get(key) != after.get(key) for key in content):
            sizes = f"{before.get('size', '?')} → {after.get('size', '?')} bytes"
            problems.append(f"input {after['name']} is not the input of the job ({sizes})")
    return problems


Fingerprinter = Callable[[str | None], dict[str, Any]]


async def open_for_resume(
    output: Path,
    output_format: str,
    make_fingerprint: Fingerprinter,
    *,
    force: bool = False,
    retry_failed: bool = False,
) -> tuple[Journal, ResumeReport]:
    """Open ``output``'s journal and make output and journal agree; see the module doc.

    ``make_fingerprint(salt)`` gives this run's fingerprint (see :func:`fingerprint`);
    it is called with the stored salt so the two compare. Raises ResumeError when the
    journal belongs to something else, unless ``force``; OutputError when the files
    cannot be used.
    """
    path = journal_path(output)
    had_journal = path.exists()
    if not had_journal and not force:
        _refuse_output_without_journal(output, path)
    journal = await Journal.open(path)
    try:
        await journal.call(lambda db: finish_pending_rewrite(db, output))
        state = await journal.state()
        salt = None if state.fingerprint is None else state.fingerprint.get("salt")
        current = await asyncio.to_thread(make_fingerprint, salt)
        report = await _prepare(journal, state, output, output_format, current, had_journal, force)
        if retry_failed:
            retrying = await journal.call(lambda db: drop_failed(db, output, output_format))
            report = replace(report, retrying=retrying)
        runs = await journal.start_run(current)
    except BaseException:
        await journal.aclose()
        raise
    return journal, replace(report, runs=runs)


def _refuse_output_without_journal(output: Path, path: Path) -> None:
    if _output_has_data(output):
        raise ResumeError(
            f"{output} already exists and has no resume journal ({path.name}), so it was"
            " not written with --resume. Use --resume-force to keep its records and resume"
            " (damaged or repeated ones are dropped), or choose another output."
        )


def _output_has_data(output: Path) -> bool:
    return output.exists() and output.stat().st_size > 0


async def _prepare(
    journal: Journal,
    state: JournalState,
    output: Path,
    output_format: str,
    current: dict[str, Any],
    had_journal: bool,
    force: bool,
) -> ResumeReport:
    if state.fingerprint is not None and not force:
        problems = fingerprint_differences(state.fingerprint, current)
        if problems:
            raise ResumeError(
                f"cannot resume {output}: " + "; ".join(problems) + ". Use --resume-force"
                " to continue the job anyway, or choose another output."
            )
    mismatch = _mismatch(state, output, output_format, had_journal)
    if mismatch is not None:
        if not force:
            raise ResumeError(
                f"cannot resume {output}: {mismatch}. Use --resume-force to rebuild the"
                f" journal from {output.name} as it is now (its requests that have no"
                " record are fetched again)."
            )
        kept = await journal.call(lambda db: rebuild(db, output, output_format))
        state = await journal.state()
        return ResumeReport(state.done, state.failed, rebuilt=kept)
    cut = 0
    if output_format != "sqlite":
        cut = await journal.call(lambda _db: _cut_back(output, state.output_length))
    return ResumeReport(state.done, state.failed, cut_bytes=cut)


def _mismatch(
    state: JournalState, output: Path, output_format: str, had_journal: bool
) -> str | None:
    """Why the journal cannot describe ``output``, or None when it can."""
    if not had_journal:
        return "its journal is missing" if _output_has_data(output) else None
    if output_format == "sqlite":
        if state.done and not output.exists():
            return f"the journal lists {state.done} finished requests but the output is gone"
        return None
    size = output.stat().st_size if output.exists() else 0
    if size < state.output_length:
        return (
            f"it is shorter ({size} bytes) than the journal recorded ({state.output_length}"
            " bytes): it was edited, replaced or truncated"
        )
    return None


def _cut_back(output: Path, length: int) -> int:
    """Truncate ``output`` to the committed ``length``; returns the bytes dropped."""
    if not output.exists():
        return 0
    size = output.stat().st_size
    if size <= length:
        return 0
    with open(output, "r+b") as file:
        file.truncate(length)
        os.fsync(file.fileno())
    return size - length


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
