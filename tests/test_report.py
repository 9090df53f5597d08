"""``asyncfetch report`` and ``fetch --report``: pages built from real runs, checked
against the records they were built from."""

from __future__ import annotations

import asyncio
import math
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from .cli_helpers import read_jsonl, run_cli, start_cli
from .recording_server import RecordingServer
from .redis_server import RedisServer, running_redis
from .report_page import Page, read_page, records_of, remote_references


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


def mixed_urls(server: RecordingServer, refused_port: int, key: str) -> list[str]:
    """Two hosts, successes, slow answers, 404/429/503, a retried 503 and refused ones."""
    urls = [server.url(f"/ok?n={n}") for n in range(30)]
    urls += [server.url(f"/delay/{100 + 10 * n}?n={n}", host="localhost") for n in range(8)]
    urls += [server.url(f"/status/404?n={n}") for n in range(5)]
    urls += [server.url(f"/status/429?n={n}", host="localhost") for n in range(3)]
    urls += [server.url(f"/status/503?n={n}") for n in range(2)]
    urls += [server.url(f"/flaky/{key}{n}/1/503") for n in range(4)]
    urls += [f"http://127.0.0.1:{refused_port}/gone/{n}" for n in range(2)]
    return urls


async def fetch_run(urls: list[str], tmp_path: Path, output: Path, *extra: str) -> None:
    source = tmp_path / f"{output.stem}.txt"
    source.write_text("".join(url + "\n" for url in urls))
    done = await run_cli(
        "fetch", str(source), "-o", str(output), "--retries", "1", "--no-progress", *extra
    )
    assert done.code == 0, done.stderr


async def build_report(*args: str) -> Path:
    page = Path(args[args.index("-o") + 1])
    done = await run_cli("report", *args)
    assert done.code == 0, done.stderr
    assert "wrote" in done.stderr
    return page


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def assert_close_above(reported: float, true_value: float) -> None:
    """Report percentiles are upper edges of 5%-wide buckets (at least 1 ms)."""
    assert true_value - 0.06 <= reported <= max(true_value * 1.05, 1.0) + 0.06


def check_headline(page: Page, records: list[dict[str, Any]]) -> None:
    ok = sum(record["ok"] for record in records)
    assert page.card("requests") == len(records)
    assert page.card("ok") == ok
    assert page.card("failed") == len(records) - ok
    assert page.card("retries") == sum(record["attempts"] - 1 for record in records)
    classes = Counter(
        "none" if r["status"] is None else f"{r['status'] // 100}xx" for r in records
    )
    kinds = Counter(record["kind"] for record in records if record["kind"])
    assert page.chips == {**classes, **kinds}
    percentiles = {row[0]: float(row[1].replace(",", "")) for row in page.table("percentiles")}
    totals = [record["total_ms"] for record in records]
    for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert_close_above(percentiles[name], nearest_rank(totals, share))


def check_hosts(page: Page, records: list[dict[str, Any]]) -> None:
    by_host: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_host.setdefault(urlsplit(record["url"]).netloc, []).append(record)
    rows = page.table("hosts-busiest")
    assert [row[0] for row in rows] == sorted(by_host, key=lambda h: (-len(by_host[h]), h))
    for host, requests, ok_percent, p50, _p99, too_many, unavailable, retries in rows:
        mine = by_host[host]
        assert int(requests) == len(mine)
        assert float(ok_percent) == pytest.approx(
            100 * sum(r["ok"] for r in mine) / len(mine), abs=0.05
        )
        assert int(too_many) == sum(r["status"] == 429 for r in mine)
        assert int(unavailable) == sum(r["status"] == 503 for r in mine)
        assert int(retries) == sum(r["attempts"] - 1 for r in mine)
        assert_close_above(
            float(p50.replace(",", "")), nearest_rank([r["total_ms"] for r in mine], 0.5)
        )


def check_requests(page: Page, records: list[dict[str, Any]]) -> None:
    failed = [record for record in records if not record["ok"]]
    assert {row[0] for row in page.table("failed")} == {r["url"] for r in failed}
    messages = {row[4] for row in page.table("failed")}
    assert {r["message"] for r in failed if r["message"]} <= messages
    slowest = max(records, key=lambda record: record["total_ms"])
    assert page.table("slowest")[0][0] == slowest["url"]
    errors = {(row[0], row[1]): int(row[2]) for row in page.table("errors")}
    assert sum(errors.values()) == len(failed)


def check_plot_data(page: Page, records: list[dict[str, Any]]) -> None:
    latency, timeline = page.data["latency"], page.data["timeline"]
    assert sum(latency["counts"]) == len(records)
    counts = timeline["counts"]
    answered = sum(sum(counts[name]) for name in ("1xx", "2xx", "3xx", "4xx", "5xx", "error"))
    assert answered == len(records)
    assert sum(counts["failed"]) == sum(not record["ok"] for record in records)


def check_page(page_path: Path, records: list[dict[str, Any]]) -> None:
    assert remote_references(page_path) == []
    page = read_page(page_path)
    check_headline(page, records)
    check_hosts(page, records)
    check_requests(page, records)
    check_plot_data(page, records)


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "sqlite"])
async def test_report_of_each_output_format_matches_its_records(
    server: RecordingServer, unused_port: int, tmp_path: Path, suffix: str
) -> None:
    output = tmp_path / f"out.{suffix}"
    await fetch_run(mixed_urls(server, unused_port, suffix), tmp_path, output)
    page = await build_report(str(output), "-o", str(tmp_path / "page.html"))
    records = records_of(output)
    assert len(records) == 54
    check_page(page, records)


async def test_report_of_a_redis_job_matches_its_collected_records(
    server: RecordingServer, unused_port: int, redis_server: RedisServer, tmp_path: Path
) -> None:
    source = tmp_path / "job.txt"
    source.write_text("".join(u + "\n" for u in mixed_urls(server, unused_port, "redis")))
    job = ("--redis", redis_server.url, "--job", "seen")
    done = await run_cli("enqueue", str(source), *job, "--retries", "1")
    assert done.code == 0, done.stderr
    done = await run_cli("worker", *job, "--no-progress")
    assert done.code == 0, done.stderr
    collected = tmp_path / "collected.jsonl"
    done = await run_cli("collect", *job, "-o", str(collected), "-q")
    assert done.code == 0, done.stderr
    page = await build_report(*job, "-o", str(tmp_path / "job.html"))
    check_page(page, records_of(collected))
    assert "job seen on redis://127.0.0.1" in page.read_text()


async def test_fetch_report_writes_the_page_at_the_end_of_the_run(
    server: RecordingServer, unused_port: int, tmp_path: Path
) -> None:
    output, page = tmp_path / "live.jsonl", tmp_path / "live.html"
    await fetch_run(
        mixed_urls(server, unused_port, "live"), tmp_path, output, "--report", str(page)
    )
    check_page(page, records_of(output))


async def test_fetch_report_is_written_on_ctrl_c_with_what_finished(
    server: RecordingServer, tmp_path: Path
) -> None:
    source, output, page = tmp_path / "slow.txt", tmp_path / "slow.jsonl", tmp_path / "slow.html"
    source.write_text("".join(server.url(f"/delay/400?n={n}") + "\n" for n in range(200)))
    process = await start_cli(
        "fetch", str(source), "-o", str(output), "-c", "4", "--no-progress", "--report", str(page)
    )
    while len(server.recorder.requests) < 10:
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, stderr.decode()
    records = read_jsonl(output)
    assert 0 < len(records) < 200
    check_page(page, records_of(output))
    assert f"report: {page}" in stderr.decode()


async def test_summary_shows_the_busiest_and_slowest_hosts(
    server: RecordingServer, tmp_path: Path
) -> None:
    # Seven hosts (host:port): the busiest five are shown; the two slow ones come next.
    others = [RecordingServer() for _ in range(6)]
    for other in others:
        await other.start()
    try:
        urls = [server.url(f"/ok?n={n}") for n in range(20)]
        for number, other in enumerate(others[:4]):
            urls += [other.url(f"/ok?n={n}") for n in range(10 - number)]
        urls += [others[4].url("/delay/300"), others[5].url("/delay/200")]
        summary = tmp_path / "summary.json"
        done = await fetch_summary(urls, tmp_path, summary)
    finally:
        for other in others:
            await other.close()
    lines = done.splitlines()
    busiest = lines[lines.index("asyncfetch: busiest hosts:") + 2 :][:5]
    hosts = [f"127.0.0.1:{one.port}" for one in (server, *others)]
    assert [line.split()[1] for line in busiest] == hosts[:5]
    assert busiest[0].split()[2:] == ["20", "100.0", *busiest[0].split()[4:6], "0", "0", "0"]
    slowest = lines[lines.index("asyncfetch: slowest hosts (mean latency):") + 2 :][:2]
    assert [line.split()[1] for line in slowest] == [hosts[5], hosts[6]]
    shown = orjson.loads(summary.read_bytes())["hosts"]
    assert [host["host"] for host in shown["busiest"]] == hosts[:5]
    assert (shown["busiest"][0]["requests"], shown["busiest"][0]["ok"]) == (20, 20)
    assert [host["host"] for host in shown["slowest"][:2]] == [hosts[5], hosts[6]]


async def fetch_summary(urls: list[str], tmp_path: Path, summary: Path) -> str:
    source = tmp_path / "hosts.txt"
    source.write_text("".join(url + "\n" for url in urls))
    output = tmp_path / "hosts.jsonl"
    done = await run_cli(
        "fetch", str(source), "-o", str(output), "--no-progress", "--summary-json", str(summary)
    )
    assert done.code == 0, done.stderr
    return done.stderr


async def test_report_escapes_what_records_hold(server: RecordingServer, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    await fetch_run([server.url("/status/500"), server.url("/ok")], tmp_path, output)
    records = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    record = next(record for record in records if record["status"] == 500)
    record["url"] = "http://evil.test/<script>alert(1)</script>"
    record["error"] = {"kind": "read", "message": "<img src=x onerror=alert(2)></script>"}
    output.write_bytes(b"".join(orjson.dumps(one) + b"\n" for one in records))
    page = await build_report(str(output), "-o", str(tmp_path / "page.html"))
    text = page.read_text()
    assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(2)&gt;" in text
    assert remote_references(page) == []
    assert read_page(page).table("failed")[0][0] == record["url"]


async def test_report_counts_damaged_lines_and_reports_the_rest(
    server: RecordingServer, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    await fetch_run([server.url(f"/ok?n={n}") for n in range(5)], tmp_path, output)
    with output.open("ab") as file:
        file.write(b'{"id": "torn", "url": "http://127.0.0.1/')
    page = await build_report(str(output), "-o", str(tmp_path / "page.html"))
    assert read_page(page).card("requests") == 5
    assert "1 lines were not records" in page.read_text()


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["missing.jsonl"], "no such records file: missing.jsonl", 2),
        (["bad.sqlite"], "is not an asyncfetch SQLite output", 2),
        (["good.jsonl", "--job", "x"], "give either OUT or --job, not both", 2),
        ([], "give OUT (a records file), or --redis URL and --job NAME", 2),
        (["good.jsonl", "-o", "no/such/dir/page.html"], "fatal: cannot write report", 3),
    ],
)
async def test_report_mistakes_get_one_line_and_an_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str, code: int
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.sqlite").write_bytes(b"not a database, only some text" * 100)
    (tmp_path / "good.jsonl").write_bytes(b"")
    done = await run_cli("report", *args)
    assert done.code == code
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
