"""Run the asyncfetch CLI as a user does: a subprocess with real files and exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass
class Completed:
    code: int
    stdout: bytes
    stderr: str


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def start_cli(
    *args: str, stdin: bytes | None = None, prefix: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    """Start the CLI; ``prefix`` runs it through another command (``setpriv ...``)."""
    return await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "asyncfetch",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )


async def run_cli(
    *args: str, stdin: bytes | None = None, timeout: float = 60, prefix: tuple[str, ...] = ()
) -> Completed:
    """Run the CLI to completion; the test's event loop keeps serving meanwhile."""
    process = await start_cli(*args, stdin=stdin, prefix=prefix)
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return Completed(process.returncode, stdout, stderr.decode())


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """Every line must be one complete JSON object: a torn line fails here."""
    text = path.read_bytes()
    assert text == b"" or text.endswith(b"\n"), "the last line is torn"
    return [orjson.loads(line) for line in text.splitlines()]
