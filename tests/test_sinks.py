"""The result writers, against real files: JSONL, CSV, SQLite and saved bodies."""

from __future__ import annotations

import asyncio
import csv
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncfetch._errors import ConfigError, OutputError
from asyncfetch._models import BodyField, ErrorInfo, Result, Timings
from asyncfetch.sinks import BodyStore, CsvSink, JsonlSink, SqliteSink, open_sink
from asyncfetch.sinks._records import flat_columns
from asyncfetch.sinks.bodies import guess_extension, safe_host, safe_stem
from asyncfetch.sinks.sqlite import COLUMNS as SQLITE_COLUMNS

DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")


def make_result(result_id: str = "r1", **changes: Any) -> Result:
    fields: dict[str, Any] = {
        "id": result_id,
        "line": 1,
        "method": "GET",
        "url": "https://example.com/a",
        "final_url": "https://example.com/a",
        "status": 200,
        "error": None,
        "attempts": 1,
        "timings": Timings(queued_ms=1.5, connect_ms=2.0, ttfb_ms=3.25, total_ms=4.0),
        "bytes": 12,
        "sha256": "ab" * 32,
        "content_type": "text/html; charset=utf-8",
        "started_at": "2024-05-01T12:00:00.000Z",
        "protocol": "HTTP/1.1",
    }
    fields.update(changes)
    return Result(**fields)


def sample_results() -> list[Result]:
    """An ok text body, an error, a base64 body, a saved body, unicode and newlines."""
    return [
        make_result(
            "ok-text",
            body=BodyField("body", 'héllo\n世界\r\nsecond "line", with comma'),
            headers=(("Content-Type", "text/html"), ("X-Note", "ünï")),
            meta={"row": 7, "note": "multi\nline", "tags": ["a", "b"]},
        ),
        make_result(
            "err-timeout",
            line=2,
            final_url=None,
            status=None,
            error=ErrorInfo("timeout", "no response in 30 s\nafter 3 attempts"),
            attempts=3,
            timings=Timings(queued_ms=0.0, total_ms=30000.0),
            bytes=0,
            sha256=None,
            content_type=None,
            protocol=None,
        ),
        make_result(
            "b64",
            line=None,
            status=404,
            body=BodyField("body_b64", "AAEC/w=="),
            protocol="HTTP/2",
        ),
        make_result("saved", method="POST", body=BodyField("path", "out/example.com/saved.html")),
    ]


def expected_csv_row(result: Result, *, include_headers: bool) -> dict[str, str]:
    record = result.to_record()

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    timings = record["timings"]
    error = record["error"] or {}
    row = {
        name: text(record.get(name))
        for name in ("id", "line", "method", "url", "final_url", "status", "ok")
    }
    row |= {"error_kind": text(error.get("kind")), "error_message": text(error.get("message"))}
    row["attempts"] = text(record["attempts"])
    row |= {name: text(timings[name]) for name in timings}
    row |= {name: text(record[name]) for name in ("bytes", "sha256", "content_type")}
    if include_headers:
        headers = record.get("headers")
        row["headers"] = "" if headers is None else orjson.dumps(headers).decode()
    row |= {name: text(record.get(name)) for name in ("body", "body_b64", "path")}
    row["meta"] = "" if result.meta is None else orjson.dumps(result.meta).decode()
    row["started_at"] = record["started_at"]
    row["protocol"] = text(record["protocol"])
    return row


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def raw_file(path: Path) -> BinaryIO:
    return open(path, "wb", buffering=0)


def read_jsonl(path: Path) -> list[Any]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


# --- open_sink -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.parquet", "out.jsonl.gz", "out.xlsx"])
async def test_open_sink_refuses_an_extension_it_cannot_write(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="--output-format"):
        open_sink(tmp_path / name)
    assert not (tmp_path / name).exists()  # refused before anything was created
    sink = open_sink(tmp_path / name, output_format="jsonl")  # said explicitly: written
    assert isinstance(sink, JsonlSink)
    await sink.aclose()


@pytest.mark.parametrize(
    ("name", "sink_type"),
    [
        ("out.jsonl", JsonlSink),
        ("out.NDJSON", JsonlSink),
        ("out.json", JsonlSink),
        ("out.txt", JsonlSink),
        ("out", JsonlSink),
        ("out.csv", CsvSink),
        ("out.sqlite", SqliteSink),
        ("out.sqlite3", SqliteSink),
        ("out.db", SqliteSink),
    ],
)
async def test_open_sink_picks_format_by_extension(
    tmp_path: Path, name: str, sink_type: type[object]
) -> None:
    sink = open_sink(tmp_path / name)
    try:
        assert type(sink) is sink_type
    finally:
        await sink.aclose()


async def test_output_format_overrides_extension(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "out.jsonl"), output_format="csv")
    try:
        assert isinstance(sink, CsvSink)
    finally:
        await sink.aclose()


def test_unknown_output_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown output format 'xml'"):
        open_sink(tmp_path / "out.xml", output_format="xml")
    assert not (tmp_path / "out.xml").exists()


def test_sqlite_to_stdout_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="file path"):
        open_sink("-", output_format="sqlite")


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.db"])
def test_missing_directory_is_an_output_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError, match="not found"):
        open_sink(tmp_path / "missing" / name)


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.db"])
def test_directory_as_output_path_is_an_output_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(OutputError, match=name):
        open_sink(tmp_path / name, append=True)


def test_sqlite_on_a_non_database_file_is_an_output_error(tmp_path: Path) -> None:
    target = tmp_path / "notes.db"
    target.write_text("not a database, just some text that is long enough" * 40)
    with pytest.raises(OutputError, match=r"notes\.db"):
        open_sink(target, append=True)


# --- JSONL -----------------------------------------------------------------------------


async def test_jsonl_round_trips_records_in_key_order(tmp_path: Path) -> None:
    results = sample_results()
    async with JsonlSink.open(tmp_path / "out.jsonl") as sink:
        await sink.write(results)
    lines = read_jsonl(tmp_path / "out.jsonl")
    assert lines == [result.to_record() for result in results]
    for line, result in zip(lines, results, strict=True):
        assert list(line) == list(result.to_record())


async def test_jsonl_buffers_until_flush_and_durable_flush_writes_all(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    sink = JsonlSink.open(target)
    try:
        await sink.write(sample_results())
        assert target.stat().st_size == 0  # still buffered: one small batch
        await sink.flush(durable=True)
        assert len(read_jsonl(target)) == 4
        assert sink.position == target.stat().st_size == await sink.size()
    finally:
        await sink.aclose()


async def test_jsonl_writes_full_batches_without_flush(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    sink = JsonlSink(raw_file(target), name="out", owns_stream=True, batch_bytes=1)
    try:
        await sink.write(sample_results()[:1])
        assert len(read_jsonl(target)) == 1
        assert sink.position == target.stat().st_size
    finally:
        await sink.aclose()


async def test_jsonl_large_batch_is_written_whole(tmp_path: Path) -> None:
    # Over the inline threshold, so the write happens in a worker thread.
    results = [make_result(f"id-{n}", body=BodyField("body", "x" * 1000)) for n in range(300)]
    async with JsonlSink.open(tmp_path / "out.jsonl") as sink:
        await sink.write(results)
        await sink.flush()
        assert sink.position == (tmp_path / "out.jsonl").stat().st_size > 64 * 1024
    assert [line["id"] for line in read_jsonl(tmp_path / "out.jsonl")] == [
        f"id-{n}" for n in range(300)
    ]


async def test_cancelled_flush_still_writes_whole_lines(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    results = [make_result(f"id-{n}", body=BodyField("body", "y" * 2000)) for n in range(200)]
    sink = JsonlSink.open(target)
    try:
        await sink.write(results)
        flushing = asyncio.create_task(sink.flush())
        await asyncio.sleep(0)  # let it hand the batch to a worker thread
        flushing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flushing
        await sink.write(results[:1])
    finally:
        await sink.aclose()
    assert len(read_jsonl(target)) == 201
    assert sink.position == target.stat().st_size


async def test_jsonl_append_keeps_existing_lines(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    first, second = sample_results()[:2], sample_results()[2:]
    async with JsonlSink.open(target) as sink:
        await sink.write(first)
    size_before = target.stat().st_size
    appending = open_sink(target, append=True)
    assert isinstance(appending, JsonlSink)
    assert appending.position == size_before
    async with appending:
        await appending.write(second)
    assert [line["id"] for line in read_jsonl(target)] == [
        "ok-text",
        "err-timeout",
        "b64",
        "saved",
    ]
    async with JsonlSink.open(target) as sink:  # append=False truncates
        pass
    assert target.read_bytes() == b""


async def test_jsonl_survives_unencodable_values(tmp_path: Path) -> None:
    odd = make_result("odd", url="https://example.com/\udcff", meta={"when": object, 1: b"\xff"})
    async with JsonlSink.open(tmp_path / "out.jsonl") as sink:
        await sink.write([odd])
    (line,) = read_jsonl(tmp_path / "out.jsonl")
    assert line["url"] == "https://example.com/\\udcff"
    assert line["meta"] == {"when": str(object), "1": "\\xff"}


async def test_jsonl_falls_back_for_integers_orjson_refuses(tmp_path: Path) -> None:
    huge = make_result("huge", meta={"n": 2**70, "s": "\udcff"})
    async with JsonlSink.open(tmp_path / "out.jsonl") as sink:
        await sink.write([huge])
    (line,) = read_jsonl(tmp_path / "out.jsonl")
    assert line["meta"] == {"n": 2**70, "s": "\\udcff"}
    assert list(line) == list(huge.to_record())


async def test_dash_means_stdout_in_any_text_format(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    sink = open_sink("-", output_format="csv")
    assert isinstance(sink, CsvSink)
    await sink.aclose()
    assert capsysbinary.readouterr().out.startswith(b"id,line,method,")


async def test_jsonl_to_stdout_does_not_close_it(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    sink = open_sink("-")
    assert isinstance(sink, JsonlSink)
    await sink.write(sample_results()[:2])
    await sink.flush(durable=True)
    await sink.aclose()
    assert not sys.stdout.closed
    out = capsysbinary.readouterr().out
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == ["ok-text", "err-timeout"]


@needs_dev_full
@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
async def test_disk_full_is_an_output_error(output_format: str) -> None:
    sink = open_sink(DEV_FULL, output_format=output_format)
    try:
        await sink.write(sample_results())
        with pytest.raises(OutputError, match=r"/dev/full: No space left on device") as info:
            await sink.flush(durable=True)
        assert isinstance(info.value.__cause__, OSError)
        # Later writes give the first failure's reason again, not a vaguer one.
        with pytest.raises(OutputError, match="No space left on device"):
            await sink.write(sample_results())
    finally:
        await sink.aclose()  # the failure was reported once; closing still succeeds


# Run in a child process: a file-size limit on the test process itself would also stop
# pytest writing its own output when that goes to a file (as in CI logs).
_TORN_LINE_SCRIPT = """
import asyncio, sys
from asyncfetch._errors import OutputError
from asyncfetch._models import BodyField, Result, Timings
from asyncfetch.sinks import JsonlSink

def result(rid, text):
    return Result(id=rid, line=1, method="GET", url="http://h/", final_url="http://h/",
        status=200, error=None, attempts=1, timings=Timings(), bytes=0, sha256=None,
        content_type=None, started_at="t", body=BodyField("body", text))

async def main():
    sink = JsonlSink.open(sys.argv[1])
    try:
        await sink.write([result("first", "a" * 300)])
        await sink.flush()
        print(sink.position)
        await sink.write([result("second", "b" * 900)])
        try:
            await sink.flush()
        except OutputError as error:
            print("OutputError:", error)
    finally:
        await sink.aclose()

asyncio.run(main())
"""


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))


def test_failed_write_leaves_no_torn_line(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    child = subprocess.run(
        [sys.executable, "-c", _TORN_LINE_SCRIPT, str(target)],
        preexec_fn=_limit_file_size,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    committed_text, error_line = child.stdout.splitlines()
    committed = int(committed_text)
    assert 0 < committed < 1000
    assert error_line.startswith("OutputError:") and "out.jsonl" in error_line
    assert target.stat().st_size == committed
    assert [line["id"] for line in read_jsonl(target)] == ["first"]


async def test_closed_sink_refuses_writes(tmp_path: Path) -> None:
    sink = JsonlSink.open(tmp_path / "out.jsonl")
    await sink.aclose()
    await sink.aclose()  # idempotent
    with pytest.raises(OutputError, match="closed"):
        await sink.write(sample_results())


# --- CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize("include_headers", [False, True])
async def test_csv_round_trips_flat_rows(tmp_path: Path, include_headers: bool) -> None:
    results = sample_results()
    target = tmp_path / "out.csv"
    sink = open_sink(target, include_headers=include_headers)
    try:
        await sink.write(results)
    finally:
        await sink.aclose()
    header, *rows = read_csv(target)
    assert ("headers" in header) is include_headers
    assert header[:3] == ["id", "line", "method"]
    # wait_ms and protocol last: they came after the others, and earlier columns keep
    # their places.
    assert header[-7:] == ["body", "body_b64", "path", "meta", "started_at", "wait_ms", "protocol"]
    expected = [expected_csv_row(result, include_headers=include_headers) for result in results]
    assert [dict(zip(header, row, strict=True)) for row in rows] == expected
    assert rows[0][header.index("body")] == 'héllo\n世界\r\nsecond "line", with comma'


async def test_csv_append_does_not_repeat_the_header(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    async with CsvSink.open(target) as sink:
        await sink.write(sample_results()[:2])
    async with CsvSink.open(target, append=True) as sink:
        assert sink.position == target.stat().st_size
        await sink.write(sample_results()[2:])
    rows = read_csv(target)
    assert [row[0] for row in rows] == ["id", "ok-text", "err-timeout", "b64", "saved"]


async def test_csv_append_to_a_new_or_empty_file_writes_the_header(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.touch()
    async with CsvSink.open(target, append=True) as sink:
        await sink.write(sample_results()[:1])
    assert [row[0] for row in read_csv(target)] == ["id", "ok-text"]


async def test_csv_append_with_other_columns_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    async with CsvSink.open(target, include_headers=True) as sink:
        await sink.write(sample_results()[:1])
    with pytest.raises(ConfigError, match="include_headers"):
        CsvSink.open(target, include_headers=False, append=True)


async def test_csv_durable_flush_writes_everything(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    sink = CsvSink.open(target)
    try:
        await sink.write(sample_results())
        assert target.stat().st_size == 0
        await sink.flush(durable=True)
        assert len(read_csv(target)) == 5
        assert await sink.size() == target.stat().st_size
    finally:
        await sink.aclose()


async def test_csv_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    async with CsvSink.stdout() as sink:
        await sink.write(sample_results()[1:2])
    assert not sys.stdout.closed
    out = capsysbinary.readouterr().out.decode()
    assert [row[0] for row in csv.reader(out.splitlines(keepends=True))] == ["id", "err-timeout"]


# --- SQLite ----------------------------------------------------------------------------


def query(path: Path, sql: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


async def test_sqlite_round_trips_rows_and_records(tmp_path: Path) -> None:
    target = tmp_path / "out.db"
    results = sample_results()
    async with SqliteSink(target) as sink:
        await sink.write(results)
        await sink.flush()
        assert await sink.size() == 4
    rows = {row["id"]: row for row in query(target, "SELECT * FROM results")}
    for result in results:
        row = rows[result.id]
        assert orjson.loads(row["record"]) == result.to_record()
        assert row["ok"] == int(result.ok)
        assert row["status"] == result.status
        assert row["total_ms"] == result.timings.total_ms
    assert rows["err-timeout"]["error_kind"] == "timeout"
    assert rows["err-timeout"]["error_message"] == "no response in 30 s\nafter 3 attempts"
    assert rows["ok-text"]["body"] == 'héllo\n世界\r\nsecond "line", with comma'
    assert orjson.loads(rows["ok-text"]["headers"]) == {
        "content-type": "text/html",
        "x-note": "ünï",
    }
    assert rows["b64"]["headers"] is None
    assert rows["saved"]["path"] == "out/example.com/saved.html"
    assert orjson.loads(rows["ok-text"]["meta"])["note"] == "multi\nline"


async def test_sqlite_replaces_records_by_id(tmp_path: Path) -> None:
    target = tmp_path / "out.db"
    failed = make_result("same", status=None, error=ErrorInfo("connect", "refused"))
    async with SqliteSink(target) as sink:
        await sink.write([failed, make_result("other")])
    async with SqliteSink(target, append=True) as sink:
        await sink.write([make_result("same", status=201)])
        await sink.flush()
        assert await sink.size() == 2
    rows = query(target, "SELECT id, status, ok, error_kind FROM results ORDER BY id")
    assert [tuple(row) for row in rows] == [("other", 200, 1, None), ("same", 201, 1, None)]


async def test_sqlite_without_append_starts_empty(tmp_path: Path) -> None:
    target = tmp_path / "out.db"
    async with SqliteSink(target) as sink:
        await sink.write(sample_results())
    async with SqliteSink(target) as sink:
        assert await sink.size() == 0


async def test_sqlite_durable_flush_is_visible_to_other_connections(tmp_path: Path) -> None:
    target = tmp_path / "out.db"
    async with SqliteSink(target, batch_rows=2) as sink:
        await sink.write(sample_results()[:3])  # commits a batch on its own
        assert len(query(target, "SELECT id FROM results")) == 3
        await sink.flush(durable=True)  # nothing pending: checkpoints instead
        await sink.write(sample_results()[3:])
        await sink.flush(durable=True)
        assert len(query(target, "SELECT id FROM results")) == 4
        assert query(target, "PRAGMA journal_mode")[0][0] == "wal"


async def test_sqlite_closed_sink_refuses_writes(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "out.db")
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(OutputError, match="closed"):
        await sink.write(sample_results())


# --- BodyStore -------------------------------------------------------------------------

HOSTILE_IDS = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a\x00b\nc\x1b[31m",
    "x" * 5000,
    "日本語のid",
    "-rf",
    "CON",
    "\udcff",
]
HOSTILE_URLS = [
    "http://../../x",
    "http://example.com/../../etc/passwd",
    "file:///etc/passwd",
    "http://user:secret@host:99999/",
    "http://[::1]:8080/a.html",
    "http://例え.テスト/page",
    "http://" + "h" * 300 + ".com/" + "p" * 2000 + ".html",
    "not a url at all",
    "http://.../",
    "http://%2e%2e/x",
    "http://-.-rf/x",
]


def assert_safe(path: Path, save_dir: Path) -> None:
    relative = path.relative_to(save_dir)
    assert len(relative.parts) == 2
    assert path.resolve().is_relative_to(save_dir.resolve())
    for part in relative.parts:
        assert part.isascii(), part
        assert part.isprintable(), part
        assert not part.startswith((".", "-")), part
        assert 0 < len(part) <= 200, part


@pytest.mark.parametrize("url", HOSTILE_URLS)
async def test_body_names_are_safe_for_hostile_input(tmp_path: Path, url: str) -> None:
    store = BodyStore(tmp_path)
    paths = set()
    for number, result_id in enumerate(HOSTILE_IDS):
        body = f"body {number}".encode()
        saved = Path(await store.save(result_id, url, None, body))
        assert_safe(saved, tmp_path)
        assert read_bytes(saved) == body
        paths.add(saved)
    assert len(paths) == len(HOSTILE_IDS)
    assert files_under(tmp_path) == paths  # no temporary files left behind


async def test_body_names_do_not_collide(tmp_path: Path) -> None:
    store = BodyStore(tmp_path)
    ids = ["a/b", "a_b", "a:b", "A_B", "a b", "a_b.html", "a\\b", "a_b." + "0" * 20, "a" * 90]
    ids += ["a" * 91, "x" * 5000, "x" * 5001]
    url = "https://example.com/index.html"
    paths = [
        await store.save(result_id, url, "text/html", result_id.encode()) for result_id in ids
    ]
    assert len(set(paths)) == len(ids)
    assert [read_bytes(Path(path)) for path in paths] == [result_id.encode() for result_id in ids]


async def test_same_id_rewrites_the_same_file(tmp_path: Path) -> None:
    store = BodyStore(tmp_path, durable=True)
    url = "https://example.com:8443/report"
    first = await store.save("job-1", url, "application/json", b'{"v": 1}')
    second = await store.save("job-1", url, "application/json", b'{"v": 2}')
    assert first == second == str(tmp_path / "example.com_8443" / "job-1.json")
    assert read_bytes(Path(second)) == b'{"v": 2}'
    assert files_under(tmp_path) == {Path(second)}


async def test_body_store_unwritable_dir_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "bodies"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OutputError, match="cannot save body"):
        await BodyStore(blocker).save("id1", "https://example.com/", None, b"x")


@pytest.mark.parametrize(
    ("url", "content_type", "extension"),
    [
        ("https://e.com/", "text/html; charset=utf-8", ".html"),
        ("https://e.com/x.bin", "Application/JSON", ".json"),
        ("https://e.com/img/photo.PNG?size=2", None, ".png"),
        ("https://e.com/archive.tar.gz", "", ".gz"),
        ("https://e.com/no-extension", None, ".bin"),
        ("https://e.com/weird.ext/../..", None, ".bin"),
        ("https://e.com/a.verylongextension", None, ".bin"),
        ("https://e.com/a.txt", "application/x-unknown-thing", ".txt"),
    ],
)
def test_extension_guess(url: str, content_type: str | None, extension: str) -> None:
    assert guess_extension(url, content_type) == extension


def test_host_directory_names() -> None:
    assert safe_host("https://Example.COM/a") == "example.com"
    assert safe_host("http://例え.テスト/") == "xn--r8jz45g.xn--zckzah"
    assert safe_host("http://127.0.0.1:8080/") == "127.0.0.1_8080"
    assert safe_host("no host") == "_nohost"
    assert safe_host("http://../") == "_nohost"


@given(st.lists(st.text(max_size=120), min_size=2, max_size=20, unique=True))
def test_stems_are_safe_and_distinct(ids: list[str]) -> None:
    stems = [safe_stem(result_id) for result_id in ids]
    assert len(set(stems)) == len(ids)
    for stem in stems:
        assert stem.isascii()
        assert stem.isprintable()
        assert stem not in {".", ".."}
        assert not {"/", "\\"} & set(stem)
        assert not stem.startswith((".", "-"))
        assert len(stem) <= 80


def test_stems_keep_safe_ids_readable() -> None:
    assert safe_stem("3f2a9c0d1e2b4a5c6d7e8f90") == "3f2a9c0d1e2b4a5c6d7e8f90"
    assert safe_stem("../../etc/passwd").startswith("_")
    assert "etc_passwd." in safe_stem("../../etc/passwd")


async def test_sqlite_written_before_wait_ms_and_protocol_is_appended_to(tmp_path: Path) -> None:
    # An output of an earlier version, resumed: its table lacks the newer columns.
    target = tmp_path / "old.sqlite"
    old_columns = [name for name in SQLITE_COLUMNS if name not in ("wait_ms", "protocol")]
    with sqlite3.connect(target) as db:
        db.execute(f"CREATE TABLE results ({', '.join(old_columns)})")
        db.execute("INSERT INTO results (id, ok) VALUES ('earlier', 1)")
    db.close()
    results = sample_results()
    results[0].timings.wait_ms = 12.5
    async with SqliteSink(target, append=True) as sink:
        await sink.write(results[:1])
    with sqlite3.connect(target) as db:
        rows = {row[0]: row[1:] for row in db.execute("SELECT id, wait_ms, protocol FROM results")}
    db.close()
    assert rows == {"earlier": (None, None), "ok-text": (12.5, "HTTP/1.1")}


async def test_csv_written_by_an_earlier_version_is_appended_to_in_its_columns(
    tmp_path: Path,
) -> None:
    # Resumed with a newer asyncfetch: the file's header lacks the columns added since
    # (protocol); the new rows keep to the file's columns instead of being refused.
    target = tmp_path / "old.csv"
    old_header = [name for name in flat_columns(include_headers=False) if name != "protocol"]
    earlier = ["earlier", "1", "GET", "http://h/", *[""] * (len(old_header) - 4)]
    earlier[old_header.index("ok")] = "true"
    with open(target, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows([old_header, earlier])
    sink = open_sink(target, append=True)
    try:
        await sink.write(sample_results()[:1])
    finally:
        await sink.aclose()
    header, *rows = read_csv(target)
    assert header == old_header
    assert [row[0] for row in rows] == ["earlier", "ok-text"]
    assert all(len(row) == len(old_header) for row in rows)
