"""A crawl: 20,000 distinct hosts, each visited once, at -c 500, under a file limit lower
than the number of hosts.

Every 127.x.y.z address reaches the loopback device on Linux, and one server listening on
the wildcard address answers on all of them (tests/fault_loadserver.py), so each URL is
its own host. Before connections had a global cap, a keep-alive connection stayed idle for
every host seen: the run reached its descriptor limit and recorded thousands of
``connect: Too many open files`` failures. The test samples the CLI's /proc/<pid>/fd.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_helpers import cli_env
from .dns_server import loopback_address as host_address
from .fault_cases import ENGINES
from .test_load_resources import FORBIDDEN_ON_STDERR, Watch, check_one_record_per_line

HOSTS = int(os.environ.get("ASYNCFETCH_MANY_HOSTS", "20000"))
CONCURRENCY = 500
# Lower than the number of hosts: one descriptor kept per host would run out.
FD_LIMIT = 4096
PEAK_DESCRIPTORS = 2 * CONCURRENCY + 100


@pytest.fixture(scope="module")
def every_loopback_address() -> Iterator[int]:
    """A server process answering on every 127.x.y.z address; yields its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fault_loadserver", "--every-loopback-address"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert process.stdout is not None
        listener = json.loads(process.stdout.readline())["listeners"][0]
        yield int(listener.rsplit(":", 1)[1])
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()  # the server exits when its stdin closes
        process.wait(timeout=10)
        process.stdout.close()


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine", ENGINES)
async def test_a_crawl_over_many_hosts_stays_within_its_descriptors(
    every_loopback_address: int, tmp_path: Path, engine: str
) -> None:
    urls = tmp_path / "urls.txt"
    port = every_loopback_address
    urls.write_text("".join(f"http://{host_address(n)}:{port}/p\n" for n in range(HOSTS)))
    output = tmp_path / "out.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",
        "-m",
        "asyncfetch",
        "fetch",
        str(urls),
        "-o",
        str(output),
        "-c",
        str(CONCURRENCY),
        "-q",
        "--retries",
        "0",
        "--body",
        "none",
        "--engine",
        engine,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        preexec_fn=limit_descriptors,
    )
    watch = Watch(process.pid, output, HOSTS)
    stderr_task = asyncio.ensure_future(process.stderr.read())  # type: ignore[union-attr]
    while process.returncode is None:
        watch.sample()
        try:
            await asyncio.wait_for(process.wait(), 0.05)
        except TimeoutError:
            continue
    stderr = (await stderr_task).decode(errors="replace")
    assert process.returncode == 0, stderr[-2000:]
    for text in FORBIDDEN_ON_STDERR:
        assert text not in stderr, stderr[-2000:]
    # Every request answered (no "Too many open files" record), one record each.
    check_one_record_per_line(output, HOSTS)
    peak = max(sample.descriptors for sample in watch.samples)
    assert len(watch.samples) >= 10, "too few samples to judge"
    assert peak <= PEAK_DESCRIPTORS, f"peak {peak} descriptors > {PEAK_DESCRIPTORS}"
    print(f"\n{engine}: {HOSTS} hosts, peak {peak} descriptors ({len(watch.samples)} samples)")
