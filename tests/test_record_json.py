"""The C record writer (record_json.c) writes orjson's bytes, or declines and changes nothing.

``encode_lines_into`` hands a record without headers or meta to ``append_record`` first
and to orjson when it declines. So every line it writes must be byte for byte the line
orjson writes for ``Result.to_record()``, a declined record must leave the buffer as it
was, and records of the usual kind must be accepted, or the fast path would never run.
"""

from __future__ import annotations

import math
import os

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncfetch._models import BodyField, ErrorInfo, Result, Timings
from asyncfetch.sinks._records import _append_fields, encode_lines_into

from .native_build import C_MODULES

if os.environ.get("ASYNCFETCH_EXPECT_NATIVE") == "0":
    # The Python fallback the rest of the suite runs with NATIVE=0 is what users without
    # a compiler get; this module compares the C module against it, so needs it built.
    pytest.skip(
        "NATIVE=0 builds no C module; `make test` (NATIVE=1) tests it", allow_module_level=True
    )
# Anywhere else a missing build is a failure: `make native` builds it.
from asyncfetch.sinks.record_json import append_record

assert "asyncfetch.sinks.record_json" in C_MODULES

PREFIX = b'{"earlier":"line"}\n'


def orjson_line(result: Result) -> bytes:
    return orjson.dumps(result.to_record(), option=orjson.OPT_APPEND_NEWLINE)


def written(result: Result) -> bytes | None:
    """What append_record added after PREFIX, or None when it declined (and left it)."""
    buffer = bytearray(PREFIX)
    if _append_fields(append_record, buffer, result):
        assert buffer.startswith(PREFIX)
        return bytes(buffer[len(PREFIX) :])
    assert buffer == PREFIX
    return None


def plain_float(value: float) -> bool:
    """Floats written without an exponent: repr and orjson agree on those."""
    return math.isfinite(value) and "e" not in repr(value)


# Any text: control bytes, quotes, backslashes, non-ASCII, astral, lone surrogates.
texts = st.text(
    alphabet=st.characters() | st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\ud800"]),
    max_size=20,
)
# Timings are whole microseconds in milliseconds (m / 1000), which the writer spells itself.
thousandths = st.integers(-(10**15), 10**15).map(lambda m: m / 1000) | st.integers(0, 10**7).map(
    lambda m: m / 1000
)
floats = (
    st.floats()
    | st.floats(min_value=-1e6, max_value=1e6)
    | thousandths
    | st.sampled_from([0.0, -0.0, 0.001, -0.001, 999999999999.999, 1e12, 0.1, 0.5])
)
optional_floats = st.none() | floats
results = st.builds(
    Result,
    id=texts,
    line=st.none() | st.integers() | st.integers(-(2**63), 2**63 - 1),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    url=texts,
    final_url=st.none() | texts,
    status=st.none() | st.integers(-5, 1200),
    error=st.none() | st.builds(ErrorInfo, st.sampled_from(["dns", "timeout", "http"]), texts),
    attempts=st.integers(0, 5),
    timings=st.builds(
        Timings,
        queued_ms=floats,
        connect_ms=optional_floats,
        ttfb_ms=optional_floats,
        total_ms=floats,
    ),
    bytes=st.integers(0, 2**70),
    sha256=st.none() | st.just("ab" * 32),
    content_type=st.none() | texts,
    started_at=texts,
    body=st.none() | st.builds(BodyField, st.sampled_from(["body", "body_b64", "path"]), texts),
)


@settings(max_examples=1500)
@given(results)
def test_lines_are_orjsons_bytes_or_declined(result: Result) -> None:
    line = written(result)
    if line is not None:
        assert line == orjson_line(result)
    # Declined only where orjson and the writer could differ.
    timings = result.timings
    texts_ok = all(
        not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
        for text in (
            result.id,
            result.url,
            result.final_url or "",
            result.content_type or "",
            result.started_at,
            result.error.message if result.error else "",
            result.body.value if result.body else "",
        )
    )
    ints_ok = all(
        value is None or -(2**63) <= value < 2**63
        for value in (result.line, result.status, result.bytes)
    )
    floats_ok = all(
        value is None or plain_float(value)
        for value in (timings.queued_ms, timings.connect_ms, timings.ttfb_ms, timings.total_ms)
    )
    assert (line is not None) == (texts_ok and ints_ok and floats_ok), result


@settings(max_examples=200)
@given(st.lists(results, max_size=5))
def test_a_batch_is_the_orjson_lines_in_order(batch: list[Result]) -> None:
    buffer = bytearray(PREFIX)
    encode_lines_into(buffer, batch)
    expected = [orjson_line(r) if written(r) is not None else None for r in batch]
    lines = bytes(buffer[len(PREFIX) :]).splitlines(keepends=True)
    assert len(lines) == len(batch)
    for line, wanted in zip(lines, expected, strict=True):
        if wanted is not None:
            assert line == wanted


def typical() -> Result:
    return Result(
        "4777d421123cd54854b89bcc",
        1,
        "GET",
        "http://127.0.0.1:8080/small?i=0",
        "http://127.0.0.1:8080/small?i=0",
        200,
        None,
        1,
        Timings(0.224, None, 0.781, 1.533),
        512,
        "d4" * 32,
        "application/octet-stream",
        "2026-11-24T16:09:18.924Z",
    )


def test_typical_records_take_the_c_writer() -> None:
    result = typical()
    assert written(result) == orjson_line(result)
    failed = typical()
    failed.status, failed.error = None, ErrorInfo("timeout", 'no data for 30 s: "x"\n')
    assert written(failed) == orjson_line(failed)
    with_body = typical()
    with_body.body = BodyField("body", "héllo\tworld \U0001f600")
    assert written(with_body) == orjson_line(with_body)
    over_http2 = typical()
    over_http2.protocol = "HTTP/2"
    assert written(over_http2) == orjson_line(over_http2)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r, "url", "http://x/\udcff"),
        lambda r: setattr(r, "bytes", 2**64),
        lambda r: setattr(r.timings, "queued_ms", 1e-07),
        lambda r: setattr(r.timings, "total_ms", math.inf),
        lambda r: setattr(r.timings, "ttfb_ms", math.nan),
        lambda r: setattr(r, "body", BodyField("body", "late \ud800")),
    ],
    ids=["surrogate", "big int", "exponent", "infinity", "nan", "surrogate at the end"],
)
def test_the_cases_orjson_spells_differently_are_declined(change: object) -> None:
    result = typical()
    change(result)  # type: ignore[operator]
    assert written(result) is None
    buffer = bytearray()
    encode_lines_into(buffer, [result])  # the orjson path writes them
    assert orjson.loads(buffer) is not None


def test_wrong_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError):
        append_record(b"not a bytearray", *([None] * 20))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        append_record(bytearray())  # type: ignore[call-arg]
