"""A minimal, fast HTTP/1.1 server for load tests, run in its own process.

    python -m tests.fault_loadserver HOSTS

listens on 127.0.0.2 … 127.0.0.(HOSTS+1), each on a free port, prints one JSON line
``{"listeners": ["127.0.0.2:port", ...]}`` and serves until stdin closes.

    python -m tests.fault_loadserver --every-loopback-address

listens once, on a free port of the wildcard address, so that every 127.x.y.z address
(all routed to the loopback device on Linux) reaches it: a million distinct hosts from
one socket. Connections from anywhere but 127.0.0.0/8 are closed unanswered. Every request
(GET, no body) gets the same small keep-alive response: the client is what is measured,
so the server must cost as little as possible.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)
END_OF_HEAD = b"\r\n\r\n"


class FixedResponse(asyncio.Protocol):
    """Answers each request head with RESPONSE; pipelined heads are answered in order."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they only behave like one.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if not peer or not str(peer[0]).startswith("127."):
            transport.abort()  # the wildcard listener serves loopback traffic only
            self._transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self._pending + data
        complete = buffer.count(END_OF_HEAD)
        if complete and self._transport is not None:
            self._transport.write(RESPONSE * complete)
        self._pending = buffer[buffer.rfind(END_OF_HEAD) + 4 :] if complete else buffer


async def serve(hosts: int) -> None:
    loop = asyncio.get_running_loop()
    addresses = ["0.0.0.0"] if hosts == 0 else [f"127.0.0.{2 + i}" for i in range(hosts)]
    servers = [
        await loop.create_server(FixedResponse, address, 0, backlog=4096) for address in addresses
    ]
    listeners = ["{}:{}".format(*server.sockets[0].getsockname()[:2]) for server in servers]
    print(json.dumps({"listeners": listeners}), flush=True)
    # The parent closes our stdin to stop us; a dead parent does the same.
    await loop.run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.close()


@contextmanager
def load_server_process(argument: str) -> Iterator[list[str]]:
    """This server in a process of its own (``argument`` as on the command line); yields
    its ``host:port`` listeners and stops it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fault_loadserver", argument],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())["listeners"]
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the server exits when its stdin closes
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def main() -> None:
    argument = sys.argv[1] if len(sys.argv) > 1 else "25"
    hosts = 0 if argument == "--every-loopback-address" else int(argument)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(hosts))
    else:
        uvloop.run(serve(hosts))


if __name__ == "__main__":
    main()
