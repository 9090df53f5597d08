"""A crawl: 20,000 distinct hosts, each visited once, at -c 500, under a file limit lower
than the number of hosts.

Every 127.x.y.z address reaches the loopback device on Linux, and one server listening on
the wildcard address answers on all of them (tests/fault_loadserver.py), so each URL is
its own host. Before connections had a global cap, a keep-alive connection stayed idle for
every host seen: the run reached its descriptor limit and recorded thousands of
``connect: Too many open files`` failures. The test samples the CLI's /proc/<pid>/fd.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from .dns_server import loopback_address as host_address
from .fault_cases import ENGINES
from .fault_loadserver import load_server_process
from .test_load_resources import check_one_record_per_line, run_watched

HOSTS = int(os.environ.get("ASYNCFETCH_MANY_HOSTS", "20000"))
CONCURRENCY = 500
# Lower than the number of hosts: one descriptor kept per host would run out.
FD_LIMIT = 4096
PEAK_DESCRIPTORS = 2 * CONCURRENCY + 100


@pytest.fixture(scope="module")
def every_loopback_address() -> Iterator[int]:
    """A server process answering on every 127.x.y.z address; yields its port."""
    with load_server_process("--every-loopback-address") as listeners:
        yield int(listeners[0].rsplit(":", 1)[1])


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
    args = ["fetch", str(urls), "-o", str(output), "-c", str(CONCURRENCY), "-q"]
    args += ["--retries", "0", "--body", "none", "--engine", engine]
    watch = await run_watched(args, output, HOSTS, limit_descriptors, every=0.05)
    # Every request answered (no "Too many open files" record), one record each.
    check_one_record_per_line(output, HOSTS)
    peak = max(sample.descriptors for sample in watch.samples)
    assert len(watch.samples) >= 10, "too few samples to judge"
    assert peak <= PEAK_DESCRIPTORS, f"peak {peak} descriptors > {PEAK_DESCRIPTORS}"
    print(f"\n{engine}: {HOSTS} hosts, peak {peak} descriptors ({len(watch.samples)} samples)")
