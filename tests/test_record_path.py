"""The record path's fast encodings give exactly the bytes of the plain ones.

Results, records, JSONL lines, CSV rows and SQLite rows are built by code tuned for speed
(one-pass dicts, a JSON fast path, CSV rows joined without the csv module). Here each is
compared with a straightforward encoding written in this file: the documented schema v1
record serialized by ``json.dumps`` for hand-picked tricky results, and a copy of the
earlier, unoptimised implementation for results that hypothesis generates.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncfetch._models import (
    BODY_KEYS,
    BodyField,
    ErrorInfo,
    InvalidInput,
    Request,
    Response,
    Result,
    Timings,
)
from asyncfetch._settings import BodyPolicy
from asyncfetch.pipeline.executor import _three_places
from asyncfetch.pipeline.stats import StatsCollector
from asyncfetch.policy.records import (
    failure_result,
    invalid_input_result,
    success_result,
    utc_now_iso,
)
from asyncfetch.policy.redact import redact_headers, redact_url
from asyncfetch.sinks import CsvSink, JsonlSink
from asyncfetch.sinks._files import FileWriter
from asyncfetch.sinks._records import COLUMNS as FLAT_COLUMNS
from asyncfetch.sinks._records import dumps, flat_columns, flat_row, flatten
from asyncfetch.sinks.sqlite import COLUMNS
from asyncfetch.sinks.sqlite import _row as sqlite_row

STARTED_AT = "2026-11-24T06:47:00.905Z"
NGINX_HEADERS = (
    ("Server", "nginx/1.24.0"),
    ("Date", "Tue, 24 Nov 2026 06:47:00 GMT"),
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", "12"),
    ("Last-Modified", "Mon, 23 Nov 2026 10:00:00 GMT"),
    ("Connection", "keep-alive"),
    ("ETag", '"6565e3a0-c"'),
    ("Accept-Ranges", "bytes"),
)


# --- the straightforward reference: schema v1 by the book, through json.dumps ----------


def reference_record(result: Result) -> dict[str, Any]:
    """Schema v1, key by key as DESIGN.md lists them."""
    record: dict[str, Any] = {}
    record["id"] = result.id
    record["line"] = result.line
    record["method"] = result.method
    record["url"] = result.url
    record["final_url"] = result.final_url
    record["status"] = result.status
    record["ok"] = result.error is None and result.status is not None and result.status < 400
    if result.error is None:
        record["error"] = None
    else:
        record["error"] = {"kind": result.error.kind, "message": result.error.message}
    record["attempts"] = result.attempts
    record["timings"] = {
        "queued_ms": result.timings.queued_ms,
        "connect_ms": result.timings.connect_ms,
        "ttfb_ms": result.timings.ttfb_ms,
        "total_ms": result.timings.total_ms,
        "wait_ms": result.timings.wait_ms,
    }
    record["bytes"] = result.bytes
    record["sha256"] = result.sha256
    record["content_type"] = result.content_type
    record["protocol"] = result.protocol
    if result.headers is not None:
        record["headers"] = expected_header_form(result.headers)
    if result.body is not None:
        record[result.body.key] = result.body.value
    record["meta"] = result.meta
    record["started_at"] = result.started_at
    return record


def reference_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {escape_surrogates(key): escape_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_surrogates(item) for item in value]
    return value


def reference_line(result: Result) -> bytes:
    record = escape_surrogates(reference_record(result))
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=reference_default)
    return text.encode("utf-8") + b"\n"


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
        "timings": Timings(
            queued_ms=0.003, connect_ms=0.412, ttfb_ms=1.873, total_ms=2.291, wait_ms=0.25
        ),
        "bytes": 12,
        "sha256": hashlib.sha256(b"hello world\n").hexdigest(),
        "content_type": "text/html; charset=utf-8",
        "started_at": STARTED_AT,
        "protocol": "HTTP/1.1",
    }
    fields.update(changes)
    return Result(**fields)


def make_request(url: str = "https://example.com/a", **changes: Any) -> Request:
    return Request(url=url, id=changes.pop("id", "req-1"), line=changes.pop("line", 3), **changes)


def expected_header_form(headers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The documented record form, written out independently: lower-case names in
    arrival order; a repeated name keeps every value, as a list."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def make_response(**changes: Any) -> Response:
    fields: dict[str, Any] = {
        "status": 200,
        "url": "https://example.com/a",
        "headers": NGINX_HEADERS,
        "body": b"hello world\n",
        "connect_ms": 0.412,
        "ttfb_ms": 1.873,
        "protocol": "HTTP/2",  # not the default: the record must carry it through
    }
    fields.update(changes)
    return Response(**fields)


def tricky_results() -> list[Result]:
    """Every shape a record takes, with the values most likely to trip an encoder."""
    policy_none = BodyPolicy(mode="none")
    with_headers = BodyPolicy(mode="auto", include_headers=True)
    timings = Timings(queued_ms=0.0, connect_ms=None, ttfb_ms=None, total_ms=30000.125)
    return [
        success_result(
            make_request(),
            make_response(),
            attempts=1,
            timings=Timings(),
            started_at=STARTED_AT,
            policy=policy_none,
        ),
        success_result(
            make_request("https://user:secret@example.com/private?token=1"),
            make_response(
                url="https://other:pw@example.com/next",
                headers=(
                    *NGINX_HEADERS,
                    ("Set-Cookie", "session=abc"),
                    ("X-Dup", "first"),
                    ("x-dup", "second"),
                    ("X-Dup", 'third, with "quotes"\nand a newline'),
                ),
            ),
            attempts=3,
            timings=Timings(queued_ms=1.5, connect_ms=2.0, ttfb_ms=3.25, total_ms=4.0),
            started_at=STARTED_AT,
            policy=with_headers,
        ),
        success_result(
            make_request(meta={"row": 7}),
            make_response(
                status=404, headers=(("content-type", "application/octet-stream"),), body=b"\xff"
            ),
            attempts=1,
            timings=Timings(),
            started_at=STARTED_AT,
            policy=BodyPolicy(mode="auto"),
        ),
        success_result(
            make_request(),
            make_response(body='héllo\n世界\r\n"quoted", comma\u2028'.encode()),
            attempts=1,
            timings=Timings(),
            started_at=STARTED_AT,
            policy=BodyPolicy(mode="text"),
        ),
        success_result(
            make_request(method="POST"),
            make_response(status=201),
            attempts=1,
            timings=Timings(),
            started_at=STARTED_AT,
            policy=BodyPolicy(mode="none"),
            saved_path="out/example.com/saved.html",
        ),
        failure_result(
            make_request(line=None),
            "timeout",
            'no complete response within 30.0 s\nafter 3 attempts, "quoted"',
            attempts=3,
            timings=timings,
            started_at=STARTED_AT,
        ),
        invalid_input_result(InvalidInput(line=9, message="bad JSON: {", raw='{"url": nope')),
        invalid_input_result(
            InvalidInput(line=10, message="no scheme", raw="ftp://u:p@h/x", meta=[1, "two"])
        ),
        make_result("surrogates", url="https://example.com/\udcff", final_url="http://\ud800/"),
        make_result("controls", error=ErrorInfo("read", "\x00\x1f\x7f\t\u2028 end"), status=None),
        make_result(
            "odd-meta",
            meta={
                "nested": {"list": [1, 2.5, None, True, False, "x"], "empty": {}},
                "unicode": "ünï 世界 \U0001f600",
                "bytes": b"\xff\x00ok",
                "set": frozenset({"only"}),
                "object": object,
                "tuple": (1, "a"),
            },
        ),
        make_result("int-keys", meta={1: "one", "two": 2, None: "none", False: "no"}),
        make_result("huge", meta={"n": 2**70, "neg": -(2**80), "s": "\udcff"}, line=2**65),
        make_result("status-odd", status=599, content_type=None, sha256=None, bytes=0),
        make_result("weird-body-key", body=BodyField("body", "")),
    ]


async def write_jsonl(path: Path, results: list[Result]) -> bytes:
    async with JsonlSink.open(path) as sink:
        await sink.write(results)
    return path.read_bytes()


async def test_jsonl_lines_equal_the_reference_encoding(tmp_path: Path) -> None:
    results = tricky_results()
    written = await write_jsonl(tmp_path / "out.jsonl", results)
    expected = [reference_line(result) for result in results]
    assert written.splitlines(keepends=True) == expected


def test_to_record_is_the_documented_schema_in_order() -> None:
    for result in tricky_results():
        record = result.to_record()
        assert record == reference_record(result)
        assert list(record) == list(reference_record(result))
        assert record["ok"] is result.ok


def test_dumps_matches_the_reference_without_newline() -> None:
    for result in tricky_results():
        assert dumps(result.to_record()) == reference_line(result)[:-1]


# --- policy/records.py against its plain form ---------------------------------------


def reference_success(
    request: Request,
    response: Response,
    *,
    attempts: int,
    timings: Timings,
    started_at: str,
    policy: BodyPolicy,
    saved_path: str | None = None,
) -> Result:
    content_type = response.header("Content-Type")
    body: BodyField | None
    if saved_path is not None:
        body = BodyField("path", saved_path)
    elif policy.mode == "none":
        body = None
    elif policy.mode == "text":
        body = BodyField("body", response.body.decode("utf-8", errors="replace"))
    else:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        textual = media.startswith(
            ("text/", "application/json", "application/xml", "application/javascript")
        ) or media.endswith(("+json", "+xml"))
        try:
            if policy.mode != "auto" or not (not response.body or textual):
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "not text by policy")
            body = BodyField("body", response.body.decode("utf-8"))
        except UnicodeDecodeError:
            body = BodyField("body_b64", base64.b64encode(response.body).decode("ascii"))
    return Result(
        id=request.id,
        line=request.line,
        method=request.method,
        url=redact_url(request.url),
        final_url=redact_url(response.url),
        status=response.status,
        error=None,
        attempts=attempts,
        timings=timings,
        bytes=len(response.body),
        sha256=hashlib.sha256(response.body).hexdigest(),
        content_type=content_type,
        started_at=started_at,
        headers=redact_headers(response.headers) if policy.include_headers else None,
        body=body,
        meta=request.meta,
        protocol=response.protocol,
    )


header_names = st.sampled_from(
    ["Content-Type", "content-type", "CONTENT-TYPE", "Content-type", "Server", "X-Other"]
)
content_types = st.sampled_from(
    [
        "text/html",
        "TEXT/PLAIN; charset=utf-8",
        " application/json ",
        "application/problem+json",
        "application/octet-stream",
        "image/png",
        "",
    ]
)
urls = st.sampled_from(
    [
        "https://example.com/a",
        "https://user:pw@example.com/a",
        "https://example.com/@home",
        "https://@example.com/",
        "http://[::1/",
        "https://example.com/\udcff",
    ]
)


@settings(max_examples=300)
@given(
    headers=st.lists(st.tuples(header_names, content_types), max_size=5),
    body=st.binary(max_size=40) | st.text(max_size=20).map(str.encode),
    mode=st.sampled_from(["none", "text", "auto", "base64"]),
    include_headers=st.booleans(),
    url=urls,
    final_url=urls,
    saved=st.none() | st.just("out/x.bin"),
    status=st.integers(100, 599),
)
def test_success_result_matches_its_plain_form(
    headers: list[tuple[str, str]],
    body: bytes,
    mode: str,
    include_headers: bool,
    url: str,
    final_url: str,
    saved: str | None,
    status: int,
) -> None:
    request = make_request(url, meta={"m": 1})
    response = make_response(status=status, url=final_url, headers=tuple(headers), body=body)
    policy = BodyPolicy(mode=mode, include_headers=include_headers)
    arguments: dict[str, Any] = {
        "attempts": 2,
        "timings": Timings(total_ms=1.0),
        "started_at": STARTED_AT,
        "policy": policy,
        "saved_path": saved,
    }
    assert success_result(request, response, **arguments) == reference_success(
        request, response, **arguments
    )


def test_failure_result_fields() -> None:
    request = make_request("https://u:p@example.com/x", method="PUT", meta={"k": "v"})
    timings = Timings(total_ms=5.0)
    result = failure_result(
        request, "connect", "refused", attempts=2, timings=timings, started_at=STARTED_AT
    )
    assert result == Result(
        id="req-1",
        line=3,
        method="PUT",
        url="https://[redacted]@example.com/x",
        final_url=None,
        status=None,
        error=ErrorInfo("connect", "refused"),
        attempts=2,
        timings=timings,
        bytes=0,
        sha256=None,
        content_type=None,
        started_at=STARTED_AT,
        meta={"k": "v"},
    )
    assert not result.ok


def test_error_and_body_fields_stay_hashable_values() -> None:
    assert hash(ErrorInfo("dns", "x")) == hash(ErrorInfo("dns", "x"))
    assert {BodyField("body", "a"), BodyField("body", "a")} == {BodyField("body", "a")}


def test_utc_now_iso_is_the_current_millisecond() -> None:
    for _ in range(2000):
        before = time.time_ns() // 1_000_000
        stamp = utc_now_iso()
        after = time.time_ns() // 1_000_000
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before // 1000))
        earliest = f"{seconds}.{before % 1000:03d}Z"
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(after // 1000))
        latest = f"{seconds}.{after % 1000:03d}Z"
        assert earliest <= stamp <= latest


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_timings_are_rounded_to_the_microsecond(duration_ms: float) -> None:
    rounded = _three_places(duration_ms)
    assert abs(rounded - duration_ms) <= 0.0005 + 1e-9 * duration_ms
    # round()'s result, except at a half that the multiplication by 1000 moved.
    scaled = duration_ms * 1000
    if abs(scaled - math.floor(scaled) - 0.5) > 4 * math.ulp(scaled):
        assert rounded == round(duration_ms, 3)


@pytest.mark.parametrize("odd", [-1.23456, math.inf, math.nan, 1e300])
def test_odd_timings_are_rounded_as_round_does(odd: float) -> None:
    rounded = _three_places(odd)
    assert rounded == round(odd, 3) or (math.isnan(odd) and math.isnan(rounded))


# --- hypothesis: the fast encodings against a copy of the earlier implementation -------


def legacy_to_record(result: Result) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": result.id,
        "line": result.line,
        "method": result.method,
        "url": result.url,
        "final_url": result.final_url,
        "status": result.status,
        "ok": result.ok,
        "error": None
        if result.error is None
        else {"kind": result.error.kind, "message": result.error.message},
        "attempts": result.attempts,
        "timings": {
            "queued_ms": result.timings.queued_ms,
            "connect_ms": result.timings.connect_ms,
            "ttfb_ms": result.timings.ttfb_ms,
            "total_ms": result.timings.total_ms,
            "wait_ms": result.timings.wait_ms,
        },
        "bytes": result.bytes,
        "sha256": result.sha256,
        "content_type": result.content_type,
        "protocol": result.protocol,
    }
    if result.headers is not None:
        record["headers"] = expected_header_form(result.headers)
    if result.body is not None:
        record[result.body.key] = result.body.value
    record["meta"] = result.meta
    record["started_at"] = result.started_at
    return record


def legacy_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def legacy_dumps(value: Any, *, newline: bool = False) -> bytes:
    options = orjson.OPT_NON_STR_KEYS | (orjson.OPT_APPEND_NEWLINE if newline else 0)
    try:
        return orjson.dumps(value, default=legacy_default, option=options)
    except orjson.JSONEncodeError:
        scrubbed = escape_surrogates(value)
    try:
        return orjson.dumps(scrubbed, default=legacy_default, option=options)
    except orjson.JSONEncodeError:
        text = json.dumps(
            scrubbed, default=legacy_default, ensure_ascii=False, separators=(",", ":")
        )
        return (text + "\n" if newline else text).encode("utf-8")


def legacy_flat(record: dict[str, Any], *, include_headers: bool) -> list[Any]:
    error = record.get("error") or {}
    timings = record.get("timings") or {}
    row = [record.get(name) for name in ("id", "line", "method", "url", "final_url", "status")]
    row += [bool(record.get("ok")), error.get("kind"), error.get("message")]
    row.append(record.get("attempts"))
    row += [timings.get(name) for name in ("queued_ms", "connect_ms", "ttfb_ms", "total_ms")]
    row += [record.get(name) for name in ("bytes", "sha256", "content_type")]
    if include_headers:
        headers = record.get("headers")
        row.append(None if headers is None else legacy_dumps(headers).decode("utf-8"))
    row += [record.get(name) for name in ("body", "body_b64", "path")]
    meta = record.get("meta")
    row.append(None if meta is None else legacy_dumps(meta).decode("utf-8"))
    row.append(record.get("started_at"))
    row.append(timings.get("wait_ms", 0.0))
    row.append(record.get("protocol"))
    return row


def legacy_csv(results: list[Result], *, include_headers: bool) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    for result in results:
        row = legacy_flat(legacy_to_record(result), include_headers=include_headers)
        writer.writerow(
            [
                ""
                if value is None
                else ("true" if value else "false")
                if isinstance(value, bool)
                else value
                for value in row
            ]
        )
    return text.getvalue().encode("utf-8", "backslashreplace")


awkward_text = st.text(
    alphabet=st.characters() | st.sampled_from([",", '"', "\r", "\n", "\udcff", "\ud800", " "]),
    max_size=12,
)
json_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats() | awkward_text | st.binary(max_size=4)
)
json_keys = awkward_text | st.integers(-5, 5) | st.booleans() | st.none()
metas = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(json_keys, children, max_size=3)
    ),
    max_leaves=8,
)
optional_floats = st.none() | st.floats()
bodies = st.none() | st.builds(
    BodyField, st.sampled_from(["body", "body_b64", "path"]), awkward_text
)
results = st.builds(
    Result,
    id=awkward_text,
    line=st.none() | st.integers(),
    method=st.sampled_from(["GET", "POST", ""]),
    url=awkward_text,
    final_url=st.none() | awkward_text,
    status=st.none() | st.integers(-5, 1200),
    error=st.none() | st.builds(ErrorInfo, st.sampled_from(["dns", "timeout"]), awkward_text),
    attempts=st.integers(0, 5),
    timings=st.builds(
        Timings,
        queued_ms=st.floats(),
        connect_ms=optional_floats,
        ttfb_ms=optional_floats,
        total_ms=st.floats(),
    ),
    bytes=st.integers(0, 2**70),
    sha256=st.none() | st.just("ab" * 32),
    content_type=st.none() | awkward_text,
    started_at=st.just(STARTED_AT),
    headers=st.none() | st.lists(st.tuples(awkward_text, awkward_text), max_size=3).map(tuple),
    body=bodies,
    meta=metas,
)


@settings(max_examples=400)
@given(st.lists(results, max_size=4))
def test_jsonl_encoding_equals_the_earlier_one(batch: list[Result]) -> None:
    sink = JsonlSink(io.BytesIO(), name="memory", owns_stream=False)
    expected = b"".join(legacy_dumps(legacy_to_record(result), newline=True) for result in batch)
    assert sink._encode(batch) == expected
    for result in batch:
        assert dumps(result.to_record()) == legacy_dumps(legacy_to_record(result))


@settings(max_examples=400)
@given(st.lists(results, max_size=4), st.booleans())
def test_csv_rows_equal_the_earlier_ones(batch: list[Result], include_headers: bool) -> None:
    sink = CsvSink(io.BytesIO(), name="memory", owns_stream=False, include_headers=include_headers)
    assert sink._encode(batch) == legacy_csv(batch, include_headers=include_headers)


@settings(max_examples=300)
@given(results)
def test_flat_and_sqlite_rows_equal_the_earlier_ones(result: Result) -> None:
    record = legacy_to_record(result)
    for include_headers in (False, True):
        flat = flat_row(result, include_headers=include_headers)
        assert len(flat) == len(flat_columns(include_headers=include_headers))
        # repr: NaN is not equal to itself, and 0.0 == -0.0 would hide a sign.
        assert repr(flat) == repr(legacy_flat(record, include_headers=include_headers))
        # The fast row is the column table applied to the record.
        unfolded = flatten(result.to_record(), include_headers=include_headers)
        assert repr(flat) == repr(list(unfolded.values()))
    expected = (*legacy_flat(record, include_headers=True), legacy_dumps(record).decode())
    row = sqlite_row(result)
    assert len(row) == len(COLUMNS)
    assert repr(row) == repr(expected)


@pytest.mark.parametrize(
    "cell", ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\rhere", "", " ", "\x00", "\udcff"]
)
def test_csv_quoting_is_the_csv_modules(cell: str) -> None:
    result = make_result("csv", url=cell, content_type=cell, meta=cell)
    sink = CsvSink(io.BytesIO(), name="memory", owns_stream=False)
    assert sink._encode([result]) == legacy_csv([result], include_headers=False)


# --- statistics ------------------------------------------------------------------------


class ReferenceStats:
    """The earlier StatsCollector arithmetic: Counters and a log-bucket Counter."""

    def __init__(self) -> None:
        self.done = self.ok = self.retries = 0
        self.by_status_class: Counter[str] = Counter()
        self.by_error_kind: Counter[str] = Counter()
        self.buckets: Counter[int] = Counter()
        self.count = 0

    def record(self, result: Result) -> None:
        self.done += 1
        self.ok += result.ok
        if result.status is not None:
            self.by_status_class[f"{result.status // 100}xx"] += 1
        if result.error is not None:
            self.by_error_kind[result.error.kind] += 1
        self.retries += max(0, result.attempts - 1)
        if result.attempts > 0:
            millis = result.timings.total_ms
            self.buckets[0 if millis < 1.0 else int(math.log(millis) / math.log(1.05)) + 1] += 1
            self.count += 1

    def percentile(self, fraction: float) -> float:
        if self.count == 0:
            return 0.0
        wanted = max(1, math.ceil(fraction * self.count))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= wanted:
                return 1.0 if bucket == 0 else 1.05**bucket
        return 1.05 ** max(self.buckets)


stats_results = st.builds(
    make_result,
    status=st.none() | st.integers(-150, 1500),
    error=st.none() | st.builds(ErrorInfo, st.sampled_from(["dns", "read"]), st.just("")),
    attempts=st.integers(0, 4),
    timings=st.builds(Timings, total_ms=st.floats(-1.0, 1e9)),
)


@settings(max_examples=200)
@given(st.lists(stats_results, max_size=40))
def test_stats_snapshot_equals_the_reference(batch: list[Result]) -> None:
    stats, reference = StatsCollector(clock=lambda: 0.0), ReferenceStats()
    for result in batch:
        stats.record(result)
        reference.record(result)
    snapshot = stats.snapshot()
    assert (snapshot.done, snapshot.ok, snapshot.retries) == (
        reference.done,
        reference.ok,
        reference.retries,
    )
    assert snapshot.failed == reference.done - reference.ok
    assert snapshot.by_status_class == dict(reference.by_status_class)
    assert snapshot.by_error_kind == dict(reference.by_error_kind)
    assert snapshot.latency_ms == {
        "p50": reference.percentile(0.50),
        "p90": reference.percentile(0.90),
        "p99": reference.percentile(0.99),
    }
    assert stats.latency.percentile(1.5) == reference.percentile(1.5)


# --- the buffered writer ---------------------------------------------------------------


async def test_failed_encoding_leaves_no_partial_batch(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"

    def half_then_fail(buffer: bytearray) -> None:
        buffer += b'{"half":'
        raise ValueError("cannot encode")

    with open(target, "wb", buffering=0) as stream:
        writer = FileWriter(stream, "out", owns_stream=False)
        writer.append(b"whole\n")
        with pytest.raises(ValueError, match="cannot encode"):
            writer.append_with(half_then_fail)
        await writer.aclose()
    assert target.read_bytes() == b"whole\n"


async def test_small_flush_after_a_cancelled_one_keeps_order(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    big = [make_result(f"big-{n}", body=BodyField("body", "y" * 2000)) for n in range(200)]
    sink = JsonlSink.open(target)
    try:
        await sink.write(big)
        flushing = asyncio.create_task(sink.flush())
        await asyncio.sleep(0)  # the batch is now being written in a worker thread
        flushing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flushing
        await sink.write([make_result("small")])
        await sink.flush()  # small: must still wait for the threaded write first
        lines = target.read_bytes().splitlines()
        assert [orjson.loads(line)["id"] for line in lines] == [
            *(f"big-{n}" for n in range(200)),
            "small",
        ]
        assert sink.position == target.stat().st_size
    finally:
        await sink.aclose()


@pytest.mark.parametrize("body_key", BODY_KEYS)
def test_every_value_of_a_record_has_one_flat_column(body_key: str) -> None:
    """A field added to ``to_record`` without a column in ``sinks/_records.COLUMNS``
    (or a column that reads nothing) fails here."""
    result = Result(
        id="r1",
        line=3,
        method="GET",
        url="http://127.0.0.1/a",
        final_url="http://127.0.0.1/b",
        status=200,
        error=ErrorInfo("read", "reset"),
        attempts=2,
        timings=Timings(queued_ms=1.0, connect_ms=2.0, ttfb_ms=3.0, total_ms=4.0, wait_ms=5.0),
        bytes=10,
        sha256="ab" * 32,
        content_type="text/plain",
        started_at=STARTED_AT,
        headers=(("server", "x"),),
        body=BodyField(body_key, "kept"),
        meta={"tag": 1},
        protocol="HTTP/1.1",
    )
    json_columns = {column.path for column in FLAT_COLUMNS if column.as_json}
    leaves = set()
    for key, value in result.to_record().items():
        if isinstance(value, dict) and (key,) not in json_columns:
            leaves |= {(key, inner) for inner in value}
        else:
            leaves.add((key,))
    other_bodies = {(key,) for key in BODY_KEYS if key != body_key}
    assert leaves == {column.path for column in FLAT_COLUMNS} - other_bodies
