"""The input readers: text, JSONL and CSV files, stdin, format detection, laziness."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncfetch._errors import ConfigError, InputError
from asyncfetch._models import InvalidInput, Request
from asyncfetch._settings import RequestDefaults
from asyncfetch.sources import (
    build_request,
    detect_format,
    estimate_total,
    iter_requests,
    open_source,
    validate_url,
)
from asyncfetch.sources.reader import CHUNK_SIZE, LineSplitter

Item = Request | InvalidInput


async def read_all(path: Path | str, **options: Any) -> list[Item]:
    return [item async for item in open_source(path, **options)]


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def invalid(items: list[Item]) -> list[InvalidInput]:
    return [item for item in items if isinstance(item, InvalidInput)]


def requests(items: list[Item]) -> list[Request]:
    return [item for item in items if isinstance(item, Request)]


# --- plain text ---------------------------------------------------------------------------


async def test_text_skips_blank_and_comment_lines_and_keeps_physical_line_numbers(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "urls.txt",
        "\ufeff# header comment\nhttp://a.example/1\n\n   \n  # indented comment\n"
        "  https://b.example/2  \r\nhttp://c.example/3",
    )
    items = await read_all(path)
    assert [(item.line, item.url) for item in requests(items)] == [
        (2, "http://a.example/1"),
        (6, "https://b.example/2"),
        (7, "http://c.example/3"),
    ]
    assert not invalid(items)


async def test_text_applies_defaults_to_bare_urls(tmp_path: Path) -> None:
    path = write(tmp_path, "urls.txt", "http://a.example/\n")
    defaults = RequestDefaults(method="post", headers=(("X-Token", "t"),), data=b"payload")
    [request] = await read_all(path, defaults=defaults)
    assert isinstance(request, Request)
    assert (request.method, request.headers, request.body) == (
        "POST",
        (("X-Token", "t"),),
        b"payload",
    )
    assert request.id  # derived from method + url + body


async def test_text_id_is_stable_and_depends_on_the_request(tmp_path: Path) -> None:
    path = write(tmp_path, "urls.txt", "http://a.example/\nhttp://a.example/\nhttp://b.example/\n")
    first, second, third = requests(await read_all(path))
    assert first.id == second.id != third.id


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ftp://example.com/file", "'ftp'"),
        ("file:///etc/passwd", "'file'"),
        ("javascript:alert(1)", "'javascript'"),
        ("data:text/plain,hi", "'data'"),
        ("example.com/path", "no scheme"),
        ("localhost:8080/path", "no scheme"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "' '"),
        ("http://example.com/\x00x", "'\\x00'"),
        ("http://example.com/\x1bx", "'\\x1b'"),
        ("http://example.com:99999/", "port"),
        ("http://[::1/", "IPv6"),
    ],
)
async def test_text_bad_lines_become_invalid_input(
    tmp_path: Path, line: str, expected: str
) -> None:
    path = write(tmp_path, "urls.txt", f"http://ok.example/\n{line}\nhttp://ok.example/2\n")
    items = await read_all(path)
    assert [type(item) for item in items] == [Request, InvalidInput, Request]
    bad = items[1]
    assert isinstance(bad, InvalidInput)
    assert bad.line == 2
    assert expected in bad.message
    assert bad.raw == line


async def test_invalid_utf8_line_does_not_affect_other_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path, "urls.txt", b"http://a.example/\nhttp://b.example/\xff\xfe\nhttp://c/\n"
    )
    items = await read_all(path)
    assert [item.line for item in requests(items)] == [1, 3]
    [bad] = invalid(items)
    assert bad.line == 2
    assert "UTF-8" in bad.message


async def test_ten_megabyte_line_is_invalid_not_a_crash(tmp_path: Path) -> None:
    long_url = "http://example.com/" + "a" * 10_000_000
    path = write(tmp_path, "urls.txt", f"{long_url}\nhttp://after.example/\n")
    items = await read_all(path)
    assert isinstance(items[0], InvalidInput)
    assert "too long" in items[0].message
    assert len(items[0].raw) <= 200
    assert isinstance(items[1], Request)
    assert items[1].line == 2


async def test_a_bom_only_counts_at_the_start(tmp_path: Path) -> None:
    path = write(tmp_path, "urls.txt", b"\xef\xbb\xbfhttp://a.example/\n\xef\xbb\xbfhttp://b/\n")
    first, second = await read_all(path)
    assert isinstance(first, Request)
    assert isinstance(second, InvalidInput)  # a BOM mid-file is part of the line


async def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, "urls.txt", b"http://a.example/\r\n\r\nhttp://b.example/\r\n")
    assert [(item.line, item.url) for item in requests(await read_all(path))] == [
        (1, "http://a.example/"),
        (3, "http://b.example/"),
    ]


async def test_empty_input_yields_nothing(tmp_path: Path) -> None:
    assert await read_all(write(tmp_path, "empty", b"")) == []
    assert await read_all(write(tmp_path, "comments", b"# only\n\n")) == []


# --- JSONL ---------------------------------------------------------------------------------


def jsonl(*specs: Any) -> str:
    return "".join(json.dumps(spec) + "\n" for spec in specs)


async def test_jsonl_full_spec(tmp_path: Path) -> None:
    spec = {
        "url": "https://api.example/v1/items",
        "method": "put",
        "headers": {"Authorization": "Bearer x", "X-Trace": "1"},
        "json": {"name": "ü", "n": [1, 2]},
        "id": 42,
        "meta": {"row": 7, "tags": ["a"]},
    }
    [request] = await read_all(write(tmp_path, "specs.jsonl", jsonl(spec)))
    assert isinstance(request, Request)
    assert request.method == "PUT"
    assert request.url == spec["url"]
    assert (
        request.body
        == json.dumps(spec["json"], separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert dict(request.headers) == {
        "Authorization": "Bearer x",
        "X-Trace": "1",
        "Content-Type": "application/json",
    }
    assert request.id == "42"
    assert request.meta == spec["meta"]
    assert request.line == 1


async def test_jsonl_body_kinds_and_header_lists(tmp_path: Path) -> None:
    content = jsonl(
        {"url": "http://a/", "body": "plain ✓", "headers": [["X-A", "1"], ["X-A", "2"]]},
        {"url": "http://a/", "body_b64": base64.b64encode(b"\x00\xff").decode()},
        {"url": "http://a/", "json": [1], "headers": {"content-type": "application/x+json"}},
        {"url": "http://a/", "method": None, "json": None, "id": "abc"},
    )
    text_body, binary_body, typed_json, nulls = requests(
        await read_all(write(tmp_path, "s.jsonl", content))
    )
    assert text_body.body == "plain ✓".encode()
    assert text_body.headers == (("X-A", "1"), ("X-A", "2"))
    assert binary_body.body == b"\x00\xff"
    assert typed_json.headers == (("content-type", "application/x+json"),)
    assert (nulls.method, nulls.body, nulls.id) == ("GET", None, "abc")


async def test_jsonl_defaults_go_under_the_spec(tmp_path: Path) -> None:
    defaults = RequestDefaults(
        method="POST", headers=(("User-Agent", "default"), ("X-Keep", "k")), data=b"ignored"
    )
    content = jsonl({"url": "http://a/", "headers": {"user-agent": "mine"}})
    [request] = await read_all(write(tmp_path, "s.jsonl", content), defaults=defaults)
    assert isinstance(request, Request)
    assert request.method == "POST"
    assert request.headers == (("X-Keep", "k"), ("user-agent", "mine"))
    assert request.body is None  # defaults.data is for bare URL lines only


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"url": "http://a/", "header": {"A": "b"}}', "allowed fields are url, method"),
        ('{"method": "GET"}', '"url" field is required'),
        ('{"url": 5}', '"url" must be a string, not an integer'),
        ('{"url": "http://a/", "headers": "A: b"}', '"headers" must be an object'),
        ('{"url": "http://a/", "headers": {"A": 1}}', "must have a string value"),
        ('{"url": "http://a/", "headers": [["A"]]}', "[name, value] pair"),
        ('{"url": "http://a/", "headers": {"Bad Name": "x"}}', "not a valid HTTP token"),
        ('{"url": "http://a/", "headers": {"A": "x\\r\\nEvil: 1"}}', "CR, LF or NUL"),
        ('{"url": "http://a/", "method": "GE T"}', "HTTP method"),
        ('{"url": "http://a/", "method": 1}', "method must be a string"),
        ('{"url": "http://a/", "id": true}', '"id" must be a string or an integer'),
        ('{"url": "http://a/", "id": 1.5}', '"id" must be a string or an integer'),
        ('{"url": "http://a/", "body": 3}', '"body" must be a string'),
        ('{"url": "http://a/", "body_b64": "***"}', "not valid base64"),
        ('{"url": "http://a/", "body": "x", "json": 1}', "at most one of json, body"),
        ('{"url": "ftp://a/"}', "'ftp'"),
        ("[1, 2]", "JSON object"),
        ('"http://a/"', "JSON object"),
        ("{not json", "not valid JSON"),
        ('{"url": "http://a/"} trailing', "not valid JSON"),
    ],
)
async def test_jsonl_bad_lines(tmp_path: Path, line: str, expected: str) -> None:
    path = write(
        tmp_path, "s.jsonl", f'{{"url": "http://ok/"}}\n{line}\n{{"url": "http://ok/2"}}\n'
    )
    items = await read_all(path)
    assert [type(item) for item in items] == [Request, InvalidInput, Request]
    bad = items[1]
    assert isinstance(bad, InvalidInput)
    assert bad.line == 2
    assert expected in bad.message
    assert bad.raw == line


async def test_jsonl_invalid_record_keeps_id_and_meta(tmp_path: Path) -> None:
    content = jsonl({"url": "nope", "id": 9, "meta": {"k": [1]}})
    [bad] = await read_all(write(tmp_path, "s.jsonl", content))
    assert isinstance(bad, InvalidInput)
    assert (bad.id, bad.meta, bad.record_id) == ("9", {"k": [1]}, "9")


async def test_jsonl_invalid_utf8_and_blank_lines(tmp_path: Path) -> None:
    content = b'{"url": "http://a/"}\n\n{"url": "http://\xff/"}\n# note\n{"url": "http://b/"}\n'
    items = await read_all(write(tmp_path, "s.jsonl", content))
    assert [(type(item), item.line) for item in items] == [
        (Request, 1),
        (InvalidInput, 3),
        (Request, 5),
    ]
    assert "UTF-8" in items[1].message  # type: ignore[union-attr]


async def test_jsonl_ten_megabyte_spec_is_valid(tmp_path: Path) -> None:
    body = "x" * 10_000_000
    path = write(
        tmp_path, "s.jsonl", jsonl({"url": "http://a/", "body": body}, {"url": "http://b/"})
    )
    first, second = requests(await read_all(path))
    assert first.body == body.encode()
    assert second.line == 2


# --- CSV -----------------------------------------------------------------------------------


async def test_csv_columns_meta_and_multiline_records(tmp_path: Path) -> None:
    content = (
        "# exported by a tool\n"
        "URL,Method,id,body,customer,region\r\n"
        'http://a.example/1,post,c-1,"line one\nline two",acme,eu\r\n'
        "\r\n"
        "http://a.example/2,,,,globex,\r\n"
    )
    first, second = await read_all(write(tmp_path, "in.csv", content))
    assert isinstance(first, Request)
    assert isinstance(second, Request)
    assert (first.line, first.method, first.id, first.body) == (
        3,
        "POST",
        "c-1",
        b"line one\nline two",
    )
    assert first.meta == {"customer": "acme", "region": "eu"}
    assert (second.line, second.method, second.body) == (6, "GET", None)
    assert second.meta == {"customer": "globex", "region": ""}


async def test_csv_bad_rows(tmp_path: Path) -> None:
    content = (
        "url,tag\n"
        "javascript:alert(1),x\n"
        "http://ok/,y\n"
        "http://ok/,z,extra\n"
        "http://ok/\xff,w\n"
        '"http://ok/,unterminated\n'
    ).encode("latin-1")
    items = await read_all(write(tmp_path, "in.csv", content))
    assert [(type(item).__name__, item.line) for item in items] == [
        ("InvalidInput", 2),
        ("Request", 3),
        ("InvalidInput", 4),
        ("InvalidInput", 5),
        ("InvalidInput", 6),
    ]
    messages = [item.message for item in invalid(items)]
    assert "'javascript'" in messages[0]
    assert "3 fields but the header has 2" in messages[1]
    assert "UTF-8" in messages[2]
    assert "unterminated" in messages[3]
    assert invalid(items)[0].meta == {"tag": "x"}


async def test_csv_without_url_column_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "link,name\nhttp://a/,x\n")
    with pytest.raises(InputError, match="'url' column"):
        await read_all(path)


async def test_csv_record_spanning_read_batches(tmp_path: Path) -> None:
    filler = "".join(f"http://a.example/{i},x\n" for i in range(4000))
    assert len(filler) > CHUNK_SIZE
    body = "\n".join(f"body line {i}" for i in range(2000))  # about 27 KiB over many lines
    content = f'url,body\n{filler}http://b.example/,"{body}"\nhttp://c.example/,\n'
    items = await read_all(write(tmp_path, "in.csv", content))
    assert not invalid(items)
    *_, spanning, last = requests(items)
    assert spanning.body == body.encode()
    assert spanning.line == 4002
    assert last.line == 4002 + 2000


# --- format detection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "first_line", "expected"),
    [
        ("a.jsonl", b"http://x/", "jsonl"),
        ("a.NDJSON", None, "jsonl"),
        ("a.csv", b"{", "csv"),
        ("a.txt", b"{", "text"),
        ("a.lst", b"url,id", "text"),
        ("-", b'{"url": "http://x/"}', "jsonl"),
        ("data", b"\xef\xbb\xbf  {", "jsonl"),
        ("data", b"id,URL,name", "csv"),
        ("data", b'"url";x', "text"),
        ("data", b"http://x/?a=1,url", "text"),
        ("data", b"http://x/", "text"),
        ("data", None, "text"),
        ("data", b"\xff\xfe", "text"),
    ],
)
def test_detect_format(name: str, first_line: bytes | None, expected: str) -> None:
    assert detect_format(name, first_line) == expected


async def test_open_source_sniffs_files_without_extension(tmp_path: Path) -> None:
    text = write(tmp_path, "t", "# c\n\nhttp://a/\n")
    specs = write(tmp_path, "j", '# c\n{"url": "http://a/", "id": "j"}\n')
    table = write(tmp_path, "c", "\n# c\nurl,id\nhttp://a/,c\n")
    assert [item.line for item in await read_all(text)] == [3]
    assert [item.id for item in await read_all(specs)] == ["j"]
    assert [(item.id, item.line) for item in await read_all(table)] == [("c", 4)]


async def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "urls.csv", "http://a/\n")
    [item] = await read_all(path, input_format="text")
    assert isinstance(item, Request)


async def test_sniffing_looks_past_the_first_batch(tmp_path: Path) -> None:
    comments = "# padding\n" * 20_000
    path = write(tmp_path, "data", comments + '{"url": "http://a/"}\n')
    [item] = await read_all(path)
    assert isinstance(item, Request)
    assert item.line == 20_001


# --- opening problems ----------------------------------------------------------------------


def test_missing_file_raises_input_error_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open input"):
        open_source(tmp_path / "missing.txt")


def test_directory_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        open_source(tmp_path)


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="text, jsonl, csv"):
        open_source(write(tmp_path, "a.txt", ""), input_format="xml")


async def test_file_removed_after_the_call_raises_when_iterating(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "http://a/\n")
    source = open_source(path)
    path.unlink()
    with pytest.raises(InputError, match="cannot open input"):
        await source.__anext__()
    await source.aclose()


# --- stdin and pipes -----------------------------------------------------------------------

STDIN_READER = """
import asyncio, json, sys
from asyncfetch.sources import open_source

async def main():
    fmt = sys.argv[1] if len(sys.argv) > 1 else None
    async for item in open_source("-", input_format=fmt):
        print(json.dumps({"kind": type(item).__name__, "line": item.line,
                          "url": getattr(item, "url", None)}), flush=True)

asyncio.run(main())
"""


def run_stdin_reader(data: bytes, *args: str) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-c", STDIN_READER, *args],
        input=data,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in completed.stdout.splitlines()]


def test_stdin_text_from_a_pipe() -> None:
    out = run_stdin_reader(b"\xef\xbb\xbf# urls\nhttp://a/\nnope\n")
    assert out == [
        {"kind": "Request", "line": 2, "url": "http://a/"},
        {"kind": "InvalidInput", "line": 3, "url": None},
    ]


def test_stdin_is_sniffed() -> None:
    out = run_stdin_reader(b'\n{"url": "http://a/"}\n{"url": 1}\n')
    assert [(row["kind"], row["line"]) for row in out] == [("Request", 2), ("InvalidInput", 3)]
    out = run_stdin_reader(b"url,name\nhttp://b/,x\n")
    assert [(row["kind"], row["line"], row["url"]) for row in out] == [("Request", 2, "http://b/")]


def test_stdin_lines_are_handled_as_they_arrive() -> None:
    """A slow producer's lines come out one by one, without waiting for a full batch."""
    with subprocess.Popen(
        [sys.executable, "-c", STDIN_READER, "text"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        for index in range(3):
            process.stdin.write(f"http://a/{index}\n".encode())
            process.stdin.flush()
            row = json.loads(process.stdout.readline())
            assert row == {"kind": "Request", "line": index + 1, "url": f"http://a/{index}"}
        process.stdin.close()
        assert process.wait(timeout=30) == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
async def test_named_pipe_input(tmp_path: Path) -> None:
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)

    def produce() -> None:
        with open(fifo, "wb") as writer:
            writer.write(b"http://a/\nhttp://b/\n")

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        items = await asyncio.wait_for(read_all(fifo), timeout=30)
    finally:
        producer.join(timeout=30)
    assert [item.url for item in requests(items)] == ["http://a/", "http://b/"]
    assert estimate_total(fifo, "text") is None


# --- laziness and bounded memory -------------------------------------------------------------


async def test_iter_requests_pulls_only_what_is_consumed() -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        for index in itertools.count():
            pulled += 1
            yield f"http://host.example/{index}"

    results = iter_requests(endless())
    first_five = [await results.__anext__() for _ in range(5)]
    await results.aclose()
    assert [item.line for item in first_five] == [1, 2, 3, 4, 5]
    assert pulled <= 6


async def test_iter_requests_async_iterable_is_lazy() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[dict[str, Any]]:
        nonlocal pulled
        for index in itertools.count():
            pulled += 1
            yield {"url": f"http://host.example/{index}", "id": index}

    results = iter_requests(endless())
    items = [await results.__anext__() for _ in range(5)]
    await results.aclose()
    assert [item.id for item in items] == ["0", "1", "2", "3", "4"]
    assert pulled <= 6


async def test_iter_requests_mixed_items() -> None:
    passthrough = Request.create("http://p/", id="p")
    mixed: list[Any] = [
        " http://a/ \n",
        {"url": "http://b/", "method": "post"},
        passthrough,
        "",
        7,
        {"x": 1},
    ]
    items = [item async for item in iter_requests(mixed, defaults=RequestDefaults(method="HEAD"))]
    assert isinstance(items[0], Request)
    assert (items[0].url, items[0].method, items[0].line) == ("http://a/", "HEAD", 1)
    assert isinstance(items[1], Request)
    assert items[1].method == "POST"
    assert items[2] is passthrough
    assert [(item.line, type(item)) for item in items[3:]] == [
        (4, InvalidInput),
        (5, InvalidInput),
        (6, InvalidInput),
    ]
    assert "expected a URL string" in items[4].message  # type: ignore[union-attr]


async def test_iter_requests_refuses_a_single_string() -> None:
    with pytest.raises(TypeError, match="not one string"):
        await iter_requests("http://a/").__anext__()


def file_offset(path: Path) -> int | None:
    """The read offset of this process's open descriptor for ``path`` (Linux /proc)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                fdinfo = Path(f"/proc/self/fdinfo/{fd}").read_text()
                return int(fdinfo.split("pos:")[1].split()[0])
        except OSError:
            continue
    return None


@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs Linux /proc")
async def test_open_source_reads_in_batches(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", "".join(f"http://h.example/{i}\n" for i in range(300_000)))
    source = open_source(path)
    first = await source.__anext__()
    assert first.line == 1
    offset = file_offset(path)
    await source.aclose()
    assert offset is not None
    assert 0 < offset <= CHUNK_SIZE < path.stat().st_size


async def test_memory_does_not_grow_with_the_number_of_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "big.jsonl", jsonl(*({"url": f"http://h/{i}"} for i in range(50_000))))
    count = 0
    tracemalloc.start()
    try:
        async for _ in open_source(path):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < 2 * 1024 * 1024  # the file is about 1.4 MiB; a batch is 64 KiB


async def test_stopping_early_closes_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "http://a/\nhttp://b/\n")
    source = open_source(path)
    await source.__anext__()
    await source.aclose()
    assert file_offset(path) is None


# --- building blocks -------------------------------------------------------------------------


def test_build_request_sets_line_on_errors() -> None:
    with pytest.raises(InputError, match="required") as caught:
        build_request({}, line=12, defaults=RequestDefaults())
    assert caught.value.line == 12


def test_build_request_rejects_non_mapping_and_non_string_keys() -> None:
    with pytest.raises(InputError, match="JSON object"):
        build_request([("url", "http://a/")], line=None, defaults=RequestDefaults())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown field"):
        build_request({"url": "http://a/", 1: 2}, line=None, defaults=RequestDefaults())  # type: ignore[dict-item]


def test_build_request_json_that_cannot_be_encoded() -> None:
    with pytest.raises(InputError, match='"json" cannot be encoded'):
        build_request({"url": "http://a/", "json": {1, 2}}, line=1, defaults=RequestDefaults())


@pytest.mark.parametrize(
    "url",
    [
        "http://a",
        "HTTPS://A.example:443/x?y=1#f",
        "http://u:p@h:1/",
        "http://[::1]:8080/",
        "http://h:/",
    ],
)
def test_validate_url_accepts(url: str) -> None:
    assert validate_url(url) == url


def test_validate_url_length_limit() -> None:
    base = "http://a.example/"
    assert validate_url(base + "a" * (8192 - len(base)))
    with pytest.raises(InputError, match="too long"):
        validate_url(base + "a" * (8193 - len(base)))
    with pytest.raises(InputError, match="port"):
        validate_url("http://a:" + "9" * 5000)


def test_line_splitter_caps_runaway_lines() -> None:
    splitter = LineSplitter(max_line=10)
    lines = splitter.feed(b"short\n0123456789abc")
    lines += splitter.feed(b"def\nnext") + splitter.finish()
    assert [(line.number, line.too_long) for line in lines] == [(1, False), (2, True), (3, False)]
    assert lines[1].data.startswith(b"0123456789")
    assert lines[2].data == b"next"


# --- estimate_total ------------------------------------------------------------------------


def test_estimate_total(tmp_path: Path) -> None:
    text = write(tmp_path, "a.txt", "# c\nhttp://a/\n\n  \nhttp://b/\n  # c\nhttp://c/")
    specs = write(tmp_path, "a.jsonl", jsonl({"url": "http://a/"}, {"url": "http://b/"}))
    table = write(tmp_path, "a", "url,id\nhttp://a/,1\n\nhttp://b/,2\n")
    assert estimate_total(text, None) == 3
    assert estimate_total(specs, "jsonl") == 2
    assert estimate_total(table, None) == 2
    assert estimate_total(write(tmp_path, "empty.txt", ""), None) == 0
    assert estimate_total("-", None) is None
    assert estimate_total(tmp_path / "missing", None) is None


def test_estimate_total_counts_across_chunks(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "".join(f"http://h/{i}\n#c\n\n" for i in range(200_000)))
    assert path.stat().st_size > 2 * 1024 * 1024
    assert estimate_total(path, "text") == 200_000


def test_estimate_total_gives_up_on_huge_files(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with open(path, "wb") as file:
        file.truncate(600 * 1024 * 1024)  # sparse: no disk space used
    assert estimate_total(path, "text") is None
