"""SHA-256 hex digests: the C module (sha256_hex.c) gives hashlib's digests, or is absent.

Request ids and body digests go through ``_hashing.sha256_hex``; a wrong digest would
change every record's ``id`` and ``sha256`` and break resuming runs written before. The C
function pads the message itself and runs the rounds on the CPU's SHA instructions, so it
is checked on every length around the block and padding boundaries, on random data, and
against the digests the request ids had before it existed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncfetch import _hashing as hashing
from asyncfetch._models import Request, request_id, request_ids

from .native_build import C_MODULES


def _cpu_has_sha() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(line.startswith("flags") and " sha_ni" in line for line in flags.splitlines())


NATIVE_EXPECTED = os.environ.get("ASYNCFETCH_EXPECT_NATIVE") != "0"


def test_the_c_function_is_there_exactly_where_the_cpu_can_run_it() -> None:
    assert "asyncfetch.sha256_hex" in C_MODULES
    if not NATIVE_EXPECTED:
        assert hashing.sha256_hex is hashing._hashlib_sha256_hex
        return
    from asyncfetch import sha256_hex as module

    assert hasattr(module, "sha256_hex") == _cpu_has_sha()
    assert (hashing.sha256_hex is module.sha256_hex) == _cpu_has_sha()


@pytest.mark.parametrize("digest", [hashing.sha256_hex, hashing._hashlib_sha256_hex])
def test_every_length_across_the_block_and_padding_boundaries(digest: hashing.HexDigest) -> None:
    data = bytes(range(256)) * 3
    for length in range(len(data) + 1):
        assert digest(data[:length]) == hashlib.sha256(data[:length]).hexdigest(), length


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=5000), digits=st.integers(min_value=1, max_value=64))
def test_random_data_and_prefixes(data: bytes, digits: int) -> None:
    assert hashing.sha256_hex(data, digits) == hashlib.sha256(data).hexdigest()[:digits]


def test_large_inputs_and_other_buffers() -> None:
    big = os.urandom((1 << 20) + 13)
    assert hashing.sha256_hex(big) == hashlib.sha256(big).hexdigest()
    view = memoryview(big)[7:100_007]
    assert hashing.sha256_hex(view) == hashlib.sha256(view).hexdigest()  # type: ignore[arg-type]
    assert hashing.sha256_hex(bytearray(b"abc")) == hashlib.sha256(b"abc").hexdigest()  # type: ignore[arg-type]


@pytest.mark.parametrize("digest", [hashing.sha256_hex, hashing._hashlib_sha256_hex])
def test_bad_arguments_are_errors_not_digests(digest: hashing.HexDigest) -> None:
    with pytest.raises(TypeError):
        digest("text")  # type: ignore[arg-type]
    for digits in (0, 65):
        with pytest.raises(ValueError, match="digits must be 1 to 64"):
            digest(b"x", digits)


def test_request_ids_are_the_ones_runs_already_journaled() -> None:
    # Ids that the version before the C module wrote: a resumed run must find them again.
    assert request_id("get", "http://example.com/a", None) == "e3d255ffb52b23cf2d4502a9"
    assert request_ids("GET", None)("http://example.com/a") == "e3d255ffb52b23cf2d4502a9"
    posted = Request.create("http://x/é", method="POST", body=b"body")
    assert posted.id == "e8313ed093aff9d72b092f7b"
    assert request_ids("POST", b"body")("http://x/é") == posted.id
