"""Every broken server in ``fault_cases`` × GET/POST × engine: one clear record each.

Each case checks: exactly one record; the expected error kind (or status); attempts as
the retry rules say, and as many requests seen by the server; the body cap (decoded bytes,
by tracemalloc, for the endless body and the gzip bomb); that the Authorization header
never leaks into a record or to another host. Deadlines show as the ``timeout`` kind, not
as a time measured here (a busy machine would make that flaky); a hang is caught by the
per-test timeout. The module writes a table of the cases to ``fault-matrix.txt`` in
pytest's base temporary directory, and prints it with ``-v``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import trustme

from asyncfetch import Fetcher, Request, Result
from asyncfetch._api import make_settings

from .cli_helpers import read_jsonl, run_cli
from .fault_behaviours import BAD_UTF8_BODY, BEHAVIOURS, BINARY_BODY, OK_BODY
from .fault_cases import (
    BODY,
    CASES,
    ENGINES,
    MAX_BODY,
    RETRY,
    SECRET,
    Case,
    Expect,
)
from .faultserver import FaultServer

OK_SHA256 = hashlib.sha256(OK_BODY).hexdigest()
METHODS = ["GET", "POST"]


@dataclass
class Row:
    case: str
    method: str
    engine: str
    expected: str
    observed: str
    attempts: int
    seconds: float
    passed: bool
    known_bug: bool = False

    @property
    def verdict(self) -> str:
        if self.known_bug:
            return "known bug (strict xfail)" if not self.passed else "FIXED? (xpass)"
        return "pass" if self.passed else "FAIL"


ROWS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def print_case_table(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    yield
    if not ROWS:
        return
    lines = [
        f"{'case':44} {'method':6} {'engine':7} {'expected':>9} {'observed':>9} "
        f"{'att':>3} {'secs':>5}  result",
    ]
    for row in ROWS:
        lines.append(
            f"{row.case:44} {row.method:6} {row.engine:7} {row.expected:>9} {row.observed:>9} "
            f"{row.attempts:>3} {row.seconds:5.2f}  {row.verdict}"
        )
    passed = sum(row.passed for row in ROWS)
    known = sum(row.known_bug and not row.passed for row in ROWS)
    lines.append(f"{passed}/{len(ROWS)} fault cases passed, {known} known bug(s)")
    table = "Fault matrix\n" + "\n".join(lines) + "\n"
    # Kept in a file, and shown with -v: between the progress dots of a quiet run it
    # would bury the one line that matters (passed or not).
    path = tmp_path_factory.getbasetemp() / "fault-matrix.txt"
    path.write_text(table)
    if request.config.get_verbosity() > 0:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n\n{table}(also in {path})")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def faults(ca: trustme.CA) -> AsyncIterator[FaultServer]:
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ssl)
    server = FaultServer(BEHAVIOURS, server_ssl=server_ssl)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def case_url(case: Case, faults: FaultServer, refused_port: int) -> str:
    if case.listener == "refused":
        return f"http://127.0.0.1:{refused_port}{case.path}"
    return faults.url(case.path, listener=case.listener)


def make_request(url: str, method: str) -> Request:
    headers = {"Authorization": SECRET}
    if method == "GET":
        return Request.create(url, headers=headers)
    return Request.create(
        url,
        method="POST",
        headers={**headers, "Content-Type": "application/json"},
        body=b'{"order": 1}',
    )


async def fetch_case(
    case: Case, url: str, method: str, engine: str, ca_file: Path, faults: FaultServer
) -> tuple[list[Result], float, int]:
    """Run the case; return its records, the seconds the request took (for the table,
    never asserted), peak traced bytes."""
    settings = make_settings(
        timeouts=case.timeouts,
        retries=RETRY,
        body=BODY,
        insecure="insecure" in case.options,
        cacert=ca_file if "cacert" in case.options else None,
    )
    async with Fetcher(engine=engine, settings=settings) as fetcher:
        if case.prelude is not None:
            # The prelude only sets the connection up; its own record is not the point.
            await fetcher.fetch(url.replace(case.path, case.prelude))
            await asyncio.wait_for(faults.settled[case.prelude].wait(), 30)
            # The server has closed or written to the pooled connection; a few turns of
            # the loop let the client's side read that before the next request.
            for _ in range(3):
                await asyncio.sleep(0)
        if case.memory_bound:
            tracemalloc.start()
        started = time.perf_counter()
        try:
            records = [result async for result in fetcher.stream([make_request(url, method)])]
            seconds = time.perf_counter() - started
        finally:
            peak = tracemalloc.get_traced_memory()[1] if case.memory_bound else 0
            if case.memory_bound:
                tracemalloc.stop()
    return records, seconds, peak


def problems(
    case: Case,
    expect: Expect,
    records: list[Result],
    peak: int,
    faults: FaultServer,
) -> list[str]:
    """Every way the outcome differs from the case's contract (empty: it passed)."""
    if len(records) != 1:
        return [f"{len(records)} records instead of exactly one"]
    record = records[0]
    found: list[str] = []
    kind = record.error.kind if record.error is not None else None
    if kind != expect.kind:
        found.append(f"kind {kind!r}, expected {expect.kind!r} ({record.error})")
    if expect.kind is None and record.status != expect.status:
        found.append(f"status {record.status}, expected {expect.status}")
    if record.attempts != expect.attempts:
        found.append(f"{record.attempts} attempts, expected {expect.attempts}")
    if expect.hits is not None and faults.hits(case.path) != expect.hits:
        found.append(f"server read {faults.hits(case.path)} requests, expected {expect.hits}")
    if record.bytes > MAX_BODY:
        found.append(f"{record.bytes} body bytes kept, over the {MAX_BODY} cap")
    if case.memory_bound and peak > 4 * MAX_BODY + 4 * 1024 * 1024:
        found.append(f"peak traced memory {peak} bytes for a {MAX_BODY}-byte cap")
    if SECRET.split()[1].encode() in orjson.dumps(record.to_record()):
        found.append("the Authorization value leaked into the record")
    found += case_specific(case, record, faults)
    return found


def case_specific(case: Case, record: Result, faults: FaultServer) -> list[str]:
    found: list[str] = []
    if case.path == "/redirect-other-host":
        first = [seen for seen in faults.requests if seen.path == case.path]
        other = [seen for seen in faults.requests if seen.host == "localhost"]
        if not first or first[0].headers.get("authorization") != SECRET:
            found.append("Authorization did not reach the original host")
        if not other:
            found.append("the redirect to localhost was not followed")
        if any("authorization" in seen.headers for seen in other):
            found.append("Authorization was sent to another host after a redirect")
    if case.path == "/length-shorter" and record.error is None and record.bytes != 10:
        found.append(f"{record.bytes} bytes, expected the declared 10")
    if case.prelude is not None and record.error is None and record.sha256 != OK_SHA256:
        found.append(f"the answer is not the server's response to this request: {record.body}")
    if case.path in ("/bad-utf8", "/binary") and record.error is None:
        sent = BAD_UTF8_BODY if case.path == "/bad-utf8" else BINARY_BODY
        if record.body is None or record.body.key != "body_b64" or record.bytes != len(sent):
            found.append(f"body not kept losslessly as base64: {record.body}")
    return found


def matrix() -> Iterator[object]:
    for case in CASES:
        for method in METHODS:
            for engine in ENGINES:
                bug = case.known_bugs.get((engine, method))
                marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
                yield pytest.param(
                    case, method, engine, marks=marks, id=f"{case.name}-{method}-{engine}"
                )


@pytest.mark.parametrize(("case", "method", "engine"), list(matrix()))
async def test_fault_case(
    case: Case,
    method: str,
    engine: str,
    faults: FaultServer,
    ca_file: Path,
    unused_port: int,
) -> None:
    expect = case.expect(method, engine)
    url = case_url(case, faults, unused_port)
    records, seconds, peak = await fetch_case(case, url, method, engine, ca_file, faults)
    found = problems(case, expect, records, peak, faults)
    observed = "?"
    attempts = 0
    if len(records) == 1:
        record = records[0]
        observed = record.error.kind if record.error is not None else str(record.status)
        attempts = record.attempts
    known_bug = (engine, method) in case.known_bugs
    ROWS.append(
        Row(
            case.name,
            method,
            engine,
            expect.describe(),
            observed,
            attempts,
            seconds,
            not found,
            known_bug,
        )
    )
    assert not found, f"{case.name} {method} on {engine}: " + "; ".join(found)


# -- the CLI, as a user runs it ----------------------------------------------------------


def write_urls(path: Path, urls: list[str]) -> Path:
    path.write_text("".join(url + "\n" for url in urls))
    return path


FAST_CLI = ("--retries", "0", "--timeout", "2", "--connect-timeout", "1", "-q")


async def test_cli_fault_records_and_exit_codes(faults: FaultServer, tmp_path: Path) -> None:
    paths = ["/ok", "/reset-before-status", "/garbage-status", "/redirect-loop", "/bad-utf8"]
    source = write_urls(tmp_path / "urls.txt", [faults.url(path) for path in paths])
    out = tmp_path / "out.jsonl"
    plain = await run_cli("fetch", str(source), "-o", str(out), *FAST_CLI)
    failing = await run_cli("fetch", str(source), "-o", str(out), *FAST_CLI, "--fail-on-error")
    assert (plain.code, failing.code) == (0, 1), plain.stderr + failing.stderr
    assert "Traceback" not in plain.stderr + failing.stderr
    kinds = {
        record["line"]: (record["error"] or {}).get("kind", record["status"])  # type: ignore[union-attr]
        for record in read_jsonl(out)
    }
    assert kinds == {1: 200, 2: "read", 3: "protocol", 4: "redirect", 5: 200}


async def test_cli_tls_verification_cacert_and_insecure(
    faults: FaultServer, tmp_path: Path, ca_file: Path
) -> None:
    source = write_urls(tmp_path / "urls.txt", [faults.url("/ok", listener="tls")])
    outcomes = {}
    for name, flags in {
        "default": (),
        "cacert": ("--cacert", str(ca_file)),
        "insecure": ("--insecure",),
    }.items():
        out = tmp_path / f"{name}.jsonl"
        done = await run_cli("fetch", str(source), "-o", str(out), *FAST_CLI, *flags)
        assert done.code == 0, done.stderr
        [record] = read_jsonl(out)
        outcomes[name] = (record["error"] or {}).get("kind", record["status"])  # type: ignore[union-attr]
    assert outcomes == {"default": "tls", "cacert": 200, "insecure": 200}


async def test_cli_max_body_caps_the_gzip_bomb(faults: FaultServer, tmp_path: Path) -> None:
    source = write_urls(tmp_path / "urls.txt", [faults.url("/gzip-bomb"), faults.url("/ok")])
    out = tmp_path / "out.jsonl"
    done = await run_cli("fetch", str(source), "-o", str(out), *FAST_CLI, "--max-body", "65536")
    assert done.code == 0, done.stderr
    records = {record["line"]: record for record in read_jsonl(out)}
    assert records[1]["error"] == {
        "kind": "too_large",
        "message": records[1]["error"]["message"],  # type: ignore[index]
    }
    assert records[2]["ok"] is True
