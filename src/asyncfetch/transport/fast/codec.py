"""Incremental Content-Encoding decoders for the fast transport, bounded by ``max_body``.

Every decoder is told how many decoded bytes it may produce and never inflates more than
one byte past that budget, so a gzip bomb costs at most ``max_body`` bytes of memory: zlib's
``max_length`` stops the inflation and we fail instead of asking for the rest.
"""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType
from typing import Any, Protocol

from ..._errors import ProtocolError, TooLargeError, caused_by


def _import_brotli() -> ModuleType | None:
    # brotli is optional: we only advertise "br" when we can decode it.
    try:
        return importlib.import_module("brotli")
    except ImportError:
        return None


_brotli = _import_brotli()

ACCEPT_ENCODING = "gzip, deflate, br" if _brotli is not None else "gzip, deflate"

# wbits: 32 + MAX_WBITS auto-detects a gzip or zlib header (servers mislabel both ways);
# -MAX_WBITS is raw deflate without a header, which some servers send as "deflate".
_GZIP_WBITS = 32 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS

# Raw-deflate fallback is only decided at the start of a stream; keep that little input.
_FALLBACK_WINDOW = 1024


class BodyDecoder(Protocol):
    """Turns encoded body bytes into decoded bytes, raising TooLargeError past the budget."""

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(f"decoded response body is larger than max_body ({limit} bytes)")


class ZlibDecoder:
    """gzip or deflate, with the raw-deflate fallback for servers that omit the header."""

    __slots__ = ("_head", "_inflater", "_limit", "_may_fall_back", "_remaining")

    def __init__(self, wbits: int, limit: int) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._limit = limit
        self._remaining = limit
        self._may_fall_back = wbits == _ZLIB_WBITS
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._inflater.decompress(data, self._remaining + 1)
        except zlib.error as exc:
            out = self._fall_back(data, exc)
        if self._may_fall_back:
            self._remember_head(data, out)
        return self._account(out)

    def flush(self) -> bytes:
        try:
            out = self._inflater.flush()
        except zlib.error as exc:
            raise caused_by(ProtocolError(f"invalid compressed response body: {exc}"), exc)
        return self._account(out)

    def _account(self, out: bytes) -> bytes:
        # Asking for remaining + 1 bytes tells "exactly at the limit" from "over it".
        self._remaining -= len(out)
        if self._remaining < 0:
            raise _too_large(self._limit)
        return out

    def _remember_head(self, data: bytes, out: bytes) -> None:
        self._head += data
        if out or len(self._head) > _FALLBACK_WINDOW:
            self._may_fall_back = False
            self._head = b""

    def _fall_back(self, data: bytes, exc: zlib.error) -> bytes:
        if not self._may_fall_back:
            raise caused_by(ProtocolError(f"invalid compressed response body: {exc}"), exc)
        self._may_fall_back = False
        head, self._head = self._head + data, b""
        self._inflater = zlib.decompressobj(_RAW_WBITS)
        try:
            return self._inflater.decompress(head, self._remaining + 1)
        except zlib.error as raw_exc:
            raise caused_by(ProtocolError(f"invalid deflate response body: {raw_exc}"), raw_exc)


class BrotliDecoder:
    """br via the optional ``brotli`` module; the budget is checked after each chunk."""

    __slots__ = ("_decompressor", "_limit", "_remaining")

    def __init__(self, module: ModuleType, limit: int) -> None:
        self._decompressor: Any = module.Decompressor()
        self._limit = limit
        self._remaining = limit

    def feed(self, data: bytes) -> bytes:
        try:
            out = bytes(self._decompressor.process(data))
        except Exception as exc:  # brotli.error is not importable without brotli
            raise caused_by(ProtocolError(f"invalid brotli response body: {exc}"), exc)
        self._remaining -= len(out)
        if self._remaining < 0:
            raise _too_large(self._limit)
        return out

    def flush(self) -> bytes:
        return b""


def make_decoder(content_encoding: bytes, limit: int) -> BodyDecoder | None:
    """The decoder for a Content-Encoding value, or None to keep the body as received."""
    encoding = content_encoding.strip().lower()
    if encoding in (b"gzip", b"x-gzip"):
        return ZlibDecoder(_GZIP_WBITS, limit)
    if encoding == b"deflate":
        return ZlibDecoder(_ZLIB_WBITS, limit)
    if encoding == b"br" and _brotli is not None:
        return BrotliDecoder(_brotli, limit)
    # identity, or an encoding we never asked for: hand the bytes over untouched.
    return None
