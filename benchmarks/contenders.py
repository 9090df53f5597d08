"""The contenders: how to check each is installed, how to run it, how to count its failures."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from measure import ProcessOutcome
from workloads import Job

try:
    from orjson import loads as json_loads
except ImportError:  # the harness also runs on an interpreter without orjson
    from json import loads as json_loads

SCRIPTS = Path(__file__).resolve().parent / "scripts"
CURL_PARALLEL_MAX = 300  # curl refuses more than 300 parallel transfers


@dataclass(frozen=True)
class Counts:
    ok: int
    failed: int
    rate: float | None = None  # set when the tool measures its own rate (wrk)


@dataclass(frozen=True)
class Prepared:
    argv: list[str]
    count: Callable[[ProcessOutcome], Counts | None]
    note: str = ""


@dataclass(frozen=True)
class Contender:
    key: str
    name: str
    unavailable: Callable[[], str | None]  # None, or why not and what to install
    prepare: Callable[[Job, Path], Prepared]
    workloads: frozenset[str] = frozenset({"throughput", "latency"})
    usage_error_skips: bool = False  # exit 2 means "cannot do this here", not a failure
    max_requests: dict[str, int] | None = None  # per workload, for very slow contenders
    slow_reason: str = ""


# ---------------------------------------------------------------- availability checks


def _need_tool(tool: str, install: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if shutil.which(tool) is None:
            return f"`{tool}` not found; install it with: {install}"
        return None

    return check


def _need_modules(*modules: str, install: str) -> Callable[[], str | None]:
    def check() -> str | None:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            return f"Python module(s) {', '.join(missing)} missing; install with: {install}"
        return None

    return check


def asyncfetch_bin() -> Path:
    return Path(sys.executable).parent / "asyncfetch"


@cache
def _fetch_help() -> str | None:
    exe = asyncfetch_bin()
    if not exe.exists():
        return None
    proc = subprocess.run(
        [str(exe), "fetch", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def _cli_unavailable() -> str | None:
    if _fetch_help() is None:
        return f"`{asyncfetch_bin()} fetch --help` failed: CLI not available (pip install -e .)"
    return None


def _engine_option_unavailable() -> str | None:
    reason = _cli_unavailable()
    if reason is None and "--engine" not in (_fetch_help() or ""):
        return "`asyncfetch fetch` does not accept --engine yet"
    return reason


def _library_unavailable() -> str | None:
    probe = "import asyncfetch; asyncfetch.Fetcher"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, timeout=60, check=False
    )
    return None if proc.returncode == 0 else "asyncfetch.Fetcher not available (pip install -e .)"


# ---------------------------------------------------------------- output parsing


def _script_counts(outcome: ProcessOutcome) -> Counts | None:
    lines = outcome.stdout_path.read_text(errors="replace").strip().splitlines()
    if not lines:
        return None
    try:
        summary = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return Counts(ok=int(summary["ok"]), failed=int(summary["failed"]))


def _jsonl_counts(path: Path, expected: int) -> Counts | None:
    if not path.exists():
        return None
    ok = 0
    with path.open("rb") as records:
        for line in records:
            if line.strip() and json_loads(line).get("ok") is True:
                ok += 1
    return Counts(ok=ok, failed=expected - ok)


def _files_counts(directory: Path, expected: int, size: int) -> Counts:
    ok = sum(1 for entry in directory.iterdir() if entry.stat().st_size == size)
    shutil.rmtree(directory, ignore_errors=True)
    return Counts(ok=ok, failed=expected - ok)


WRK_TOTAL = re.compile(r"(\d+) requests in")
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def _wrk_counts(outcome: ProcessOutcome) -> Counts | None:
    text = outcome.stdout_path.read_text(errors="replace")
    total, rate = WRK_TOTAL.search(text), WRK_RATE.search(text)
    if total is None or rate is None:
        return None
    errors = sum(int(n) for n in WRK_SOCKET.search(text).groups()) if "Socket" in text else 0
    non2xx = WRK_NON2XX.search(text)
    failed = errors + (int(non2xx.group(1)) if non2xx else 0)
    return Counts(ok=int(total.group(1)) - failed, failed=failed, rate=float(rate.group(1)))


# ---------------------------------------------------------------- command builders


def _script(name: str) -> Callable[[Job, Path], Prepared]:
    def prepare(job: Job, workdir: Path) -> Prepared:
        argv = [sys.executable, str(SCRIPTS / name), str(job.urls_file), str(job.concurrency)]
        return Prepared(argv=argv, count=_script_counts)

    return prepare


def _tutorial(job: Job, workdir: Path) -> Prepared:
    prepared = _script("tutorial_gather.py")(job, workdir)
    return Prepared(prepared.argv, prepared.count, note="unbounded: ignores C")


def _wrk(job: Job, workdir: Path) -> Prepared:
    argv = ["wrk", "-t1", f"-c{job.concurrency}", f"-d{job.wrk_duration_s:g}s", "--timeout"]
    argv += ["10s", job.base_url]
    return Prepared(argv=argv, count=_wrk_counts, note=f"fixed {job.wrk_duration_s:g} s run")


def _curl(job: Job, workdir: Path) -> Prepared:
    config = workdir / f"{job.label}.curlrc"
    with job.urls_file.open() as urls, config.open("w") as out:
        for url in urls:
            out.write(f'url = "{url.strip()}"\noutput = "/dev/null"\n')
    parallel = min(job.concurrency, CURL_PARALLEL_MAX)
    argv = ["curl", "--parallel", "--parallel-immediate", "--parallel-max", str(parallel)]
    argv += ["-s", "-K", str(config), "-w", "%{http_code}\\n"]

    def count(outcome: ProcessOutcome) -> Counts:
        lines = outcome.stdout_path.read_text().split()
        ok = sum(1 for code in lines if code.startswith(("2", "3")))
        return Counts(ok=ok, failed=job.requests - ok)

    note = f"curl caps --parallel-max at {CURL_PARALLEL_MAX}" if parallel < job.concurrency else ""
    return Prepared(argv=argv, count=count, note=note)


def _aria2(job: Job, workdir: Path) -> Prepared:
    downloads = workdir / f"{job.label}-aria2"
    downloads.mkdir(exist_ok=True)
    inputs = workdir / f"{job.label}.aria2-input"
    with job.urls_file.open() as urls, inputs.open("w") as out:
        for i, url in enumerate(urls):
            out.write(f"{url.strip()}\n  out={i}\n")
    argv = ["aria2c", "-i", str(inputs), "-d", str(downloads), f"-j{job.concurrency}"]
    argv += [
        "--max-connection-per-server=1",
        "--split=1",
        "--file-allocation=none",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        "--max-tries=1",
        "--deferred-input=true",
        "--summary-interval=0",
        "--download-result=hide",
        "--console-log-level=error",
        "--quiet=true",
    ]

    def count(outcome: ProcessOutcome) -> Counts:
        return _files_counts(downloads, job.requests, job.expected_size)

    return Prepared(argv=argv, count=count)


def _cli(extra: list[str]) -> Callable[[Job, Path], Prepared]:
    def prepare(job: Job, workdir: Path) -> Prepared:
        out = workdir / f"{job.label}-{'-'.join(extra) or 'default'}.jsonl"
        out.unlink(missing_ok=True)
        c = str(job.concurrency)
        argv = [str(asyncfetch_bin()), "fetch", str(job.urls_file), "-o", str(out), "-c", c]
        argv += ["--per-host", c, "--no-progress", "-q", "--body", "none", *extra]

        def count(outcome: ProcessOutcome) -> Counts | None:
            counts = _jsonl_counts(out, job.requests)
            out.unlink(missing_ok=True)
            return counts

        return Prepared(argv=argv, count=count)

    return prepare


ASYNCFETCH_CLI = "asyncfetch-cli"
TUTORIAL = "tutorial"
TUNED = "aiohttp-tuned"
WRK = "wrk"

CONTENDERS: tuple[Contender, ...] = (
    Contender(WRK, "wrk (the limit)", _need_tool("wrk", "apt-get install wrk"), _wrk),
    Contender(
        TUTORIAL,
        "tutorial: gather, session per request",
        _need_modules("aiohttp", install="pip install aiohttp"),
        _tutorial,
        frozenset({"throughput", "latency", "memory"}),
    ),
    Contender(
        "aiohttp-semaphore",
        "aiohttp: shared session + semaphore",
        _need_modules("aiohttp", install="pip install aiohttp"),
        _script("aiohttp_semaphore.py"),
    ),
    Contender(
        TUNED,
        "aiohttp tuned worker loop (uvloop)",
        _need_modules("aiohttp", "uvloop", install="pip install aiohttp uvloop"),
        _script("aiohttp_tuned.py"),
    ),
    Contender(
        "httpx",
        "httpx AsyncClient",
        _need_modules("httpx", install="pip install httpx requests"),
        _script("httpx_client.py"),
        max_requests={"throughput": 10_000, "latency": 1_000},
        slow_reason="its pool slows down as concurrency grows (encode/httpx#3215)",
    ),
    Contender(
        "requests",
        "requests + thread pool",
        _need_modules("requests", install="pip install httpx requests"),
        _script("requests_threads.py"),
    ),
    Contender("curl", "curl --parallel", _need_tool("curl", "apt-get install curl"), _curl),
    Contender(
        "aria2",
        "aria2c",
        _need_tool("aria2c", "apt-get install aria2"),
        _aria2,
        max_requests={"throughput": 10_000},
        slow_reason="it writes one file per request",
    ),
    Contender(
        ASYNCFETCH_CLI,
        "asyncfetch CLI (default engine: fast)",
        _cli_unavailable,
        _cli([]),
        frozenset({"throughput", "latency", "memory"}),
    ),
    Contender(
        "asyncfetch-aiohttp",
        "asyncfetch CLI (aiohttp engine)",
        _engine_option_unavailable,
        _cli(["--engine", "aiohttp"]),
        usage_error_skips=True,
    ),
    Contender(
        "asyncfetch-lib",
        "asyncfetch library (Fetcher.stream, uvloop)",
        _library_unavailable,
        _script("asyncfetch_library.py"),
    ),
)
