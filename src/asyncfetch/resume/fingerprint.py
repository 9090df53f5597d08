"""A job's fingerprint: its inputs and the options that shape its records.

A resumed job must be the same job: the journal stores the fingerprint of the run that
started it, and a resume with other inputs or options is refused (unless forced).
Header values, bodies and proxy URLs are kept only as salted, slow hashes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from typing import Any

from .._errors import InputError

FINGERPRINT_VERSION = 1
SAMPLE_BYTES = 64 * 1024
# Header values and bodies may hold secrets: they are stored only as a salted, slow hash,
# so the journal cannot be used to recover a token by guessing.
_SECRET_ITERATIONS = 100_000
_SECRET_OPTIONS = frozenset({"header", "data", "proxy"})

# make_fingerprint(salt): a run's fingerprint, salted as the stored one to compare.
Fingerprinter = Callable[[str | None], dict[str, Any]]


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
