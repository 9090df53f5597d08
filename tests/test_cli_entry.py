"""The console script ends with a quick exit, and loses nothing doing so.

``asyncfetch.cli.entry.run`` skips CPython's teardown after a command. Output in the
standard streams' buffers, exit handlers and exit statuses must come through as with the
usual exit; and where the quick exit could lose something (another thread, a stream
that cannot be flushed) it must leave the exit to Python.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
from pathlib import Path

import orjson
import pytest

from asyncfetch.cli import entry

from .cli_helpers import Completed
from .recording_server import RecordingServer


async def _console(code: str) -> Completed:
    """Run ``code`` then the console script's ``run()`` in a fresh interpreter, its
    standard streams block-buffered pipes (PYTHONUNBUFFERED unset)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    script = f"{code}\nfrom asyncfetch.cli.entry import run\nrun()\n"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", script),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Completed(process.returncode, stdout, stderr.decode())


async def test_buffered_records_on_stdout_all_arrive(
    server: RecordingServer, tmp_path: Path
) -> None:
    # The last records sit in stdout's buffer when the command returns.
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/ok?n={n}") + "\n" for n in range(300)))
    done = await _console(f"import sys; sys.argv = ['asyncfetch', 'fetch', {str(urls)!r}, '-q']")
    assert done.code == 0, done.stderr
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 300 and all(record["ok"] for record in records)
    assert done.stdout.endswith(b"\n")


async def test_exit_handlers_run_and_statuses_pass_through() -> None:
    handler = "import atexit; atexit.register(print, 'handler ran', flush=False)"
    version = await _console(f"{handler}; import sys; sys.argv = ['asyncfetch', '--version']")
    assert version.code == 0
    assert version.stdout.decode().splitlines() == [
        f"asyncfetch, version {__import__('asyncfetch').__version__}",
        "handler ran",
    ]
    usage = await _console(f"{handler}; import sys; sys.argv = ['asyncfetch', 'fetch', '-c', '0']")
    assert usage.code == 2 and "Invalid value" in usage.stderr
    assert usage.stdout == b"handler ran\n"


async def test_a_message_as_exit_value_takes_the_usual_exit() -> None:
    done = await _console(
        "import sys, asyncfetch.cli.entry as entry\n"
        "def stop(): sys.exit('asyncfetch: stopped with a message')\n"
        "entry.main = stop"
    )
    assert done.code == 1
    assert done.stderr.strip() == "asyncfetch: stopped with a message"


_REAL_ACTIVE_COUNT = threading.active_count


class Exited(Exception):
    """Raised instead of ending the test process, if quick_exit decided to exit."""


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The statuses os._exit was called with; the call raises Exited instead of exiting."""
    called: list[int] = []

    def exit_now(status: int) -> None:
        called.append(status)
        raise Exited(status)

    monkeypatch.setattr(os, "_exit", exit_now)
    # As in the console script's process: this is the only thread (pytest's process may
    # hold others, an executor's say, left by earlier tests), and the exit handlers are
    # the command's, not pytest's own (which must not run in the middle of a session).
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr("atexit._run_exitfuncs", lambda: None)
    return called


def test_no_quick_exit_while_another_thread_runs(
    monkeypatch: pytest.MonkeyPatch, exits: list[int]
) -> None:
    monkeypatch.setattr(threading, "active_count", _REAL_ACTIVE_COUNT)
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        entry.quick_exit(0)  # returns: the usual exit will wait for the thread
    finally:
        release.set()
        worker.join()
    assert exits == []


def test_no_quick_exit_when_a_stream_cannot_be_flushed(
    monkeypatch: pytest.MonkeyPatch, exits: list[int]
) -> None:
    class Broken(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            Broken.flushes += 1
            raise BrokenPipeError("the reader went away")

    monkeypatch.setattr(sys, "stdout", Broken())
    entry.quick_exit(0)  # returns: Python's own exit reports the broken pipe
    assert (Broken.flushes, exits) == (1, [])


def test_otherwise_the_exit_is_quick_and_keeps_the_status(exits: list[int]) -> None:
    with pytest.raises(Exited):
        entry.quick_exit(3)
    assert exits == [3]
