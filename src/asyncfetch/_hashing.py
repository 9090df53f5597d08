"""SHA-256 hex digests, on the CPU's SHA instructions where the C module can use them.

Every request takes two: its id and its body's digest. Through hashlib each call pays
OpenSSL's per-call set-up, more than the hashing of a short input itself; the optional C
module ``sha256_hex`` (sha256_hex.c) skips it where the CPU has the SHA extensions, and
hashlib gives the same digests everywhere else.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from ._optional_c import optional_c_function


class HexDigest(Protocol):
    def __call__(self, data: bytes, digits: int = 64, /) -> str: ...


def _hashlib_sha256_hex(data: bytes, digits: int = 64, /) -> str:
    if not 1 <= digits <= 64:
        raise ValueError("digits must be 1 to 64")
    return hashlib.sha256(data).hexdigest()[:digits]


_native: HexDigest | None = optional_c_function("asyncfetch.sha256_hex", "sha256_hex")

# The first ``digits`` hex digits (all 64 by default) of the SHA-256 of ``data``.
sha256_hex: Final[HexDigest] = _native or _hashlib_sha256_hex
