"""Property tests: no input bytes make the readers raise anything but InputError."""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncfetch._errors import InputError
from asyncfetch._models import InvalidInput, Request
from asyncfetch._settings import RequestDefaults
from asyncfetch.sources import build_request, iter_requests, open_source, validate_url
from asyncfetch.sources.reader import LineSplitter

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULTS = RequestDefaults(headers=(("X-Default", "1"),))
T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T | InputError:
    """The call's result, or the InputError it raised (any other exception propagates)."""
    try:
        return call()
    except InputError as exc:
        return exc


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
spec_keys = st.sampled_from(
    ["url", "method", "headers", "json", "body", "body_b64", "id", "meta", "header", ""]
)
url_like = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}://{}{}".format,
        st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
        st.text(max_size=15),
        st.text(max_size=15),
    ),
    st.just("http://example.com/"),
)
specs = st.dictionaries(spec_keys, json_values | url_like, max_size=6)
mostly_valid_specs = st.fixed_dictionaries(
    {"url": url_like},
    optional={
        "method": st.sampled_from(["GET", "post", "", "G T", 1]),
        "headers": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2)
        | st.lists(st.lists(st.text(max_size=6), max_size=3), max_size=2),
        "json": json_values,
        "id": st.integers() | st.text(max_size=5) | st.booleans(),
        "meta": json_values,
    },
)


def line_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return (
        json.dumps(value).encode()
        if not isinstance(value, str)
        else value.encode("utf-8", "surrogatepass")
    )


input_lines = st.lists(
    st.one_of(
        st.binary(max_size=60),
        url_like,
        specs,
        mostly_valid_specs,
        st.sampled_from(["url,method,id,body,extra", '"a,"b', "#c", "", "\r", "\ufeff"]),
    ).map(line_bytes),
    max_size=12,
)
separators = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"])


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def read_file(path: Path, input_format: str | None) -> list[Request | InvalidInput]:
    async def collect() -> list[Request | InvalidInput]:
        return [
            item async for item in open_source(path, input_format=input_format, defaults=DEFAULTS)
        ]

    return asyncio.run(collect())


def check_items(items: list[Request | InvalidInput], physical_lines: int) -> None:
    numbers = [item.line or 0 for item in items]
    assert all(isinstance(item, Request | InvalidInput) for item in items)
    assert all(1 <= number <= physical_lines for number in numbers)
    assert numbers == sorted(numbers)
    for item in items:
        if isinstance(item, InvalidInput):
            assert item.message
            assert len(item.raw) <= 200
        else:
            assert validate_url(item.url) == item.url


@pytest.mark.parametrize("input_format", ["text", "jsonl", "csv", None])
@FAST
@given(lines=input_lines, separator=separators, raw=st.binary(max_size=200))
def test_any_bytes_give_requests_or_invalid_input(
    scratch: Path, input_format: str | None, lines: list[bytes], separator: bytes, raw: bytes
) -> None:
    content = separator.join(lines) + (raw if raw.startswith(b"\xef") else b"")
    path = scratch / f"input-{input_format}"
    path.write_bytes(content)
    items = attempt(lambda: read_file(path, input_format))
    if isinstance(items, InputError):
        # Only a CSV without a usable header may stop the whole input.
        assert input_format in ("csv", None)
        assert "CSV" in items.message
        return
    check_items(items, content.count(b"\n") + 1)


@FAST
@given(content=st.binary(max_size=400))
def test_random_binary_input(scratch: Path, content: bytes) -> None:
    path = scratch / "binary"
    path.write_bytes(content)
    for input_format in ("text", "jsonl"):
        check_items(read_file(path, input_format), content.count(b"\n") + 1)


@FAST
@given(spec=specs | mostly_valid_specs)
def test_build_request_raises_only_input_error(spec: dict[str, Any]) -> None:
    request = attempt(lambda: build_request(spec, line=3, defaults=DEFAULTS))
    if isinstance(request, InputError):
        assert request.message
        assert request.line == 3
        return
    assert request.line == 3
    assert request.method.isalpha() and request.method.isupper()
    assert validate_url(request.url) == request.url
    for name, value in request.headers:
        assert name and not any(char in value for char in "\r\n\x00")
    assert sum(name.lower() == "x-default" for name, _ in request.headers) == 1


@FAST
@given(url=url_like | st.text())
def test_validate_url_raises_only_input_error(url: str) -> None:
    checked = attempt(lambda: validate_url(url))
    if isinstance(checked, InputError):
        assert checked.message
        return
    assert checked == url
    assert url.lower().startswith(("http://", "https://"))
    assert len(url) <= 8192
    assert not any(char.isspace() or ord(char) < 32 for char in url)


@FAST
@given(
    items=st.lists(st.one_of(url_like, specs, st.integers(), st.none(), st.binary()), max_size=8)
)
def test_iter_requests_yields_one_result_per_item(items: list[Any]) -> None:
    async def collect() -> list[Request | InvalidInput]:
        return [item async for item in iter_requests(items, defaults=DEFAULTS)]

    results = asyncio.run(collect())
    assert [result.line for result in results] == list(range(1, len(items) + 1))


@FAST
@given(content=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_line_splitter_matches_split_however_the_input_is_chunked(
    content: bytes, cuts: list[int]
) -> None:
    splitter = LineSplitter()
    lines = []
    bounds = [0, *sorted(min(cut, len(content)) for cut in cuts), len(content)]
    for start, end in itertools.pairwise(bounds):
        lines += splitter.feed(content[start:end])
    lines += splitter.finish()
    expected = content.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    expected = [line.removesuffix(b"\r") for line in expected]
    if expected and expected[0].startswith(b"\xef\xbb\xbf"):
        expected[0] = expected[0][3:]
    assert [line.data for line in lines] == expected
    assert [line.number for line in lines] == list(range(1, len(expected) + 1))


def content_lines(content: bytes) -> list[bytes]:
    lines = [line.removesuffix(b"\r") for line in content.split(b"\n")]
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return lines


def is_text_content(line: bytes) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith(b"#"):
        return False  # blank and comment lines are skipped whatever their encoding
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        return True  # an undecodable line still gets its record
    return bool(text) and not text.startswith("#")


@FAST
@given(lines=input_lines, separator=separators)
def test_text_gives_exactly_one_record_per_content_line(
    scratch: Path, lines: list[bytes], separator: bytes
) -> None:
    content = separator.join(lines)
    path = scratch / "one-per-line.txt"
    path.write_bytes(content)
    expected = [
        number for number, line in enumerate(content_lines(content), 1) if is_text_content(line)
    ]
    assert [item.line for item in read_file(path, None)] == expected


@FAST
@given(lines=input_lines, separator=separators)
def test_jsonl_gives_exactly_one_record_per_content_line(
    scratch: Path, lines: list[bytes], separator: bytes
) -> None:
    content = separator.join(lines)
    path = scratch / "one-per-line.jsonl"
    path.write_bytes(content)
    expected = [
        number
        for number, line in enumerate(content_lines(content), 1)
        if line.strip() and not line.strip().startswith(b"#")
    ]
    assert [item.line for item in read_file(path, None)] == expected


@FAST
@given(lines=input_lines, separator=separators)
def test_csv_rows_under_a_valid_header(
    scratch: Path, lines: list[bytes], separator: bytes
) -> None:
    content = b"url,method,id,body,extra\n" + separator.join(lines)
    path = scratch / "rows.csv"
    path.write_bytes(content)
    items = read_file(path, None)
    check_items(items, content.count(b"\n") + 1)
    assert all((item.line or 0) >= 2 for item in items)
