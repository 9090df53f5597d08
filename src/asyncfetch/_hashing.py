"""SHA-256 hex digests for request ids and body digests.

hashlib runs SHA-256 in OpenSSL, on the CPU's SHA instructions where they exist. A C
module of our own once skipped OpenSSL's per-call set-up; measured end to end it saved
under 5 % of the CLI's work per request (docs/benchmarks.md, "Native code: what each
piece earns"), so it went.
"""

from __future__ import annotations

import hashlib


def sha256_hex(data: bytes, digits: int = 64, /) -> str:
    """The first ``digits`` hex digits (all 64 by default) of the SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()[:digits]
