"""How far the CLI is from a bare callback client, and where its CPU time goes.

Starts nginx (one core) and, on the other core, runs in turn: a bare HTTP/1.1 client
written the way the fast lane works (uvloop, httptools, one request written from the
callback that completed the previous one, an orjson JSONL record per response with the
same fields as asyncfetch's) and the asyncfetch CLI on the same URLs, compiled (as
``make`` builds it, tools/native.py) and as plain Python. For each it prints
requests per second and the CPU it spent per request, user and kernel, from the
kernel's accounting of the child (``os.wait4``). The bare client does none of the
validation, de-duplication, limits, timeouts, retries or resume bookkeeping: it is the
ceiling for a Python client on this machine, not a contender.

    .venv/bin/python benchmarks/ceiling.py              # 200,000 requests, concurrency 64
    .venv/bin/python benchmarks/ceiling.py -n 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from measure import Usage, plan_cpus, raise_fd_limit, run_counted
from servers import NginxServer

HERE = Path(__file__).resolve()


def main() -> None:
    args = _parse_args()
    if args.client:
        _bare_client(Path(args.client[0]), Path(args.client[1]), args.concurrency)
        return
    raise_fd_limit()
    cpus = plan_cpus()
    with NginxServer(cpus) as server, tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text("".join(f"{server.url('/small')}?i={i}\n" for i in range(args.n)))
        out = Path(tmp) / "out.jsonl"
        cli = [
            *(sys.executable, "-m", "asyncfetch", "fetch", str(urls), "-o", str(out)),
            *("-c", str(args.concurrency), "--per-host", str(args.concurrency)),
            *("--no-progress", "-q", "--body", "none"),
        ]
        plain = {**os.environ, "PYTHONPATH": str(_plain_copy(Path(tmp) / "plain"))}
        commands = {
            "bare callback client": (
                [sys.executable, str(HERE), "--client", str(urls), str(out)],
                None,
            ),
            "asyncfetch CLI": (cli, None),
            "CLI, plain Python": (cli, plain),
        }
        print(f"{args.n:,} requests, concurrency {args.concurrency}; {cpus.describe()}")
        for label, (argv, env) in commands.items():
            best = min(
                (
                    run_counted(cpus.wrap_client(argv), out, args.n, env)
                    for _ in range(args.repeat)
                ),
                key=lambda usage: usage.wall_s,
            )
            _report(label, best, args.n)


def _plain_copy(where: Path) -> Path:
    """The asyncfetch package without its compiled modules (tools/native.py), for comparison."""
    import asyncfetch

    shutil.copytree(
        Path(asyncfetch.__file__).parent,
        where / "asyncfetch",
        ignore=shutil.ignore_patterns("*.so"),
    )
    return where


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="requests (default 200,000)")
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs")
    parser.add_argument("--client", nargs=2, metavar=("URLS", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _report(label: str, usage: Usage, n: int) -> None:
    per = 1e6 / n
    print(
        f"  {label:22} {n / usage.wall_s:>9,.0f} req/s  {usage.wall_s:6.2f} s wall"
        f"  CPU per request: {usage.user_s * per:5.1f} µs user, {usage.sys_s * per:5.1f} µs kernel"
    )


# ---------------------------------------------------------------- the bare client


def _bare_client(urls: Path, out_path: Path, concurrency: int) -> None:
    import uvloop

    uvloop.run(_bare_run(urls, out_path, concurrency))


async def _bare_run(urls: Path, out_path: Path, concurrency: int) -> None:
    import asyncio
    from urllib.parse import urlsplit

    lines = urls.read_text().splitlines()
    first = urlsplit(lines[0])
    with out_path.open("wb") as out:
        lane = _BareLane(lines, out)
        loop = asyncio.get_running_loop()
        for _ in range(min(concurrency, len(lines))):
            lane.active += 1
            await loop.create_connection(lambda: _BareConnection(lane), first.hostname, first.port)
        await lane.done
        out.write(b"".join(lane.pending))


class _BareLane:
    """Hands out requests in input order and collects one JSONL record per response."""

    def __init__(self, lines: list[str], out: object) -> None:
        import asyncio

        self.lines = iter(enumerate(lines, 1))
        self.out = out
        self.pending: list[bytes] = []
        self.active = 0
        self.done = asyncio.get_running_loop().create_future()

    def next_request(self) -> tuple[int, str, str, bytes, float] | None:
        import hashlib
        import time

        try:
            number, url = next(self.lines)
        except StopIteration:
            return None
        request_id = hashlib.sha256(url.encode()).hexdigest()[:24]
        target = url[url.find("/", 8) :]
        head = (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bare\r\n"
            "Accept-Encoding: gzip, deflate\r\n\r\n"
        ).encode()
        return number, url, request_id, head, time.perf_counter()

    def record(
        self, request: tuple[int, str, str, bytes, float], status: int, headers: list, body: bytes
    ) -> None:
        import hashlib
        import time

        import orjson

        number, url, request_id, _head, started = request
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        timings = {"queued_ms": 0.0, "connect_ms": None, "ttfb_ms": elapsed_ms}
        timings["total_ms"] = elapsed_ms
        record = {
            **{"id": request_id, "line": number, "method": "GET", "url": url},
            **{"final_url": url, "status": status, "ok": status < 400, "error": None},
            **{"attempts": 1, "timings": timings, "bytes": len(body)},
            **{"sha256": hashlib.sha256(body).hexdigest(), "content_type": content_type},
            **{"meta": None, "started_at": "2026-01-01T00:00:00.000Z"},
        }
        self.pending.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        if len(self.pending) >= 512:
            self.out.write(b"".join(self.pending))  # type: ignore[attr-defined]
            self.pending.clear()


class _BareConnection:
    """asyncio.Protocol + httptools callbacks: one exchange at a time, kept alive."""

    def __init__(self, lane: _BareLane) -> None:
        from httptools import HttpResponseParser

        self.lane = lane
        self.parser = HttpResponseParser(self)
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.request: tuple[int, str, str, bytes, float] | None = None

    def connection_made(self, transport: object) -> None:
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        self.request = self.lane.next_request()
        if self.request is None:
            self.transport.close()  # type: ignore[attr-defined]
            self.lane.active -= 1
            if self.lane.active == 0:
                self.lane.done.set_result(None)
            return
        self.headers = []
        self.chunks = []
        self.transport.write(self.request[3])  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.request is not None and not self.lane.done.done():
            self.lane.done.set_exception(ConnectionError(f"connection lost: {exc}"))

    def eof_received(self) -> None:
        return None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode()))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        assert self.request is not None
        status = self.parser.get_status_code()
        self.lane.record(self.request, status, self.headers, b"".join(self.chunks))
        self.send_next()


if __name__ == "__main__":
    main()
