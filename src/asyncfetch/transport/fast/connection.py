"""One HTTP/1.1 client connection: an asyncio Protocol fed straight into llhttp (httptools).

The hot path is one ``transport.write`` per request, parser callbacks as bytes arrive and
one callback per response: no StreamReader, no task wake-up per chunk, no timer per
request (the timer is re-armed lazily, see ``_on_timer``). :meth:`Connection.start` takes
that callback directly, so a caller can send its next request from inside the event that
completed the last one; :meth:`Connection.exchange` wraps it in a future for coroutines.

Requests are written at the end of the event loop's turn, together (:class:`Outbox`).
Written one by one as each response completed, each write found the server asleep again
(it answers in a few microseconds, our Python takes several more per response) and paid
for waking it; written back to back, the first wakes it and the others find it running.
Measured on the benchmark's 50,000 requests against nginx: 8% less kernel time, 4% less
wall time. A request waits at most for the rest of the turn that started it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Final, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from ..._errors import (
    ProtocolError,
    ReadError,
    TimeoutError_,
    TooLargeError,
    TransportError,
    caused_by,
)
from ..._optional_c import optional_c_function
from ...policy.deadlines import overdue_error
from ..base import MAX_HEADER_BLOCK_BYTES, MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS
from .codec import BodyDecoder, make_decoder

WholeResponse = Callable[
    [bytes, int, int, int], tuple[int, bool, list[tuple[str, str]], bytes | None, bytes] | None
]
# The one-pass parse of a simple, complete response (whole_response.c). Without it (a
# pure-Python install) llhttp parses every response, as it parses the unusual ones anyway.
_WHOLE_RESPONSE: Final[WholeResponse | None] = optional_c_function(
    "asyncfetch.transport.fast.whole_response", "whole_response"
)

# Above this a body is written separately rather than copied onto the request head.
_COPY_BODY_LIMIT: Final = 64 * 1024
# Bound once: compiled, ``time.perf_counter`` is a module attribute lookup on every call.
_perf_counter: Final = time.perf_counter
_NEVER: Final = math.inf  # a deadline not set

_INTERESTING_NAME_LENGTHS: Final = frozenset({len(b"content-encoding"), len(b"content-length")})

# Connection states. DONE: response complete, the owner has not released it yet.
_IDLE: Final = 0
_ACTIVE: Final = 1
_DONE: Final = 2


class StaleConnection(Exception):
    """The server had already closed this pooled connection; retrying once is safe."""

    def __init__(self, written: bool) -> None:
        super().__init__("connection closed by the server before it answered")
        self.written = written


ExchangeDone = Callable[["Connection", BaseException | None], None]


class _NoProtocol:
    """What the parser of a closed connection reports to: nothing (it is never fed)."""


# Given to a connection once closed in place of its own parser. The parser refers back to
# its connection and the pool refers to it too: left as they were, every closed connection
# would be a reference cycle, freed only by the garbage collector's rare full passes (the
# CLI makes them rarer still), and a crawl over many hosts closes connections by the
# hundred thousand: memory grew with the hosts seen.
_CLOSED_PARSER: Final = HttpResponseParser(_NoProtocol())


class _StopParsing(Exception):
    """Raised in a parser callback to make llhttp stop; the reason is already recorded."""


class Outbox:
    """The requests started during this turn of the event loop, written at its end.

    One per transport (so per event loop): :meth:`Connection.start` posts the connection,
    and the first post of a turn schedules :meth:`flush` with ``call_soon``, which runs
    after the I/O callbacks that the loop is dispatching.
    """

    __slots__ = ("_loop", "_posted", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._posted: list[Connection] = []
        self._scheduled = False

    def post(self, conn: Connection) -> None:
        self._posted.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        posted, self._posted = self._posted, []
        now = _perf_counter()
        for conn in posted:
            conn.send_unsent(now)


class Connection(asyncio.Protocol):
    """A keep-alive connection that carries one request at a time (no pipelining)."""

    __slots__ = (
        "_chunks",
        "_closed_waiter",
        "_content_length",
        "_deadline",
        "_decoder",
        "_encoding",
        "_error",
        "_feeding",
        "_got_bytes",
        "_head_bytes_seen",
        "_header_bytes",
        "_headers",
        "_headers_done",
        "_is_head",
        "_live",
        "_loop",
        "_max_body",
        "_on_done",
        "_outbox",
        "_parser",
        "_raw_size",
        "_read_timeout",
        "_reset_parser",
        "_state",
        "_timer",
        "_timer_when",
        "_total_deadline",
        "_total_timeout",
        "_transport",
        "_unsent_body",
        "_unsent_head",
        "_until_close",
        "budget_entries",
        "closed",
        "context",
        "headers_at",
        "idle",
        "idle_since",
        "keep_alive",
        "on_idle_lost",
        "on_lost",
        "pool",
        "protocol",
        "sent_at",
        "served",
        "status",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, live: set[Connection], outbox: Outbox
    ) -> None:
        self._loop = loop
        self._live = live
        self._outbox = outbox
        self._unsent_head: bytes | None = None  # posted to the outbox, not yet written
        self._unsent_body: bytes | None = None
        self._parser = HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._state = _IDLE
        self._on_done: ExchangeDone | None = None
        self._feeding = False
        self._closed_waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._deadline = _NEVER
        self._read_timeout: float | None = None
        self._total_deadline = _NEVER
        self._total_timeout: float | None = None
        self.sent_at = 0.0
        self._reset_parser = False
        self.closed = False
        self.idle = False  # owned by the pool: True while in its idle list
        self.idle_since = 0.0
        self.budget_entries = 0  # owned by the budget: its entries for this connection
        self.on_idle_lost: Callable[[Connection], None] | None = None  # set by the pool
        # Told when the socket is closed, so the connection budget counts descriptors.
        self.on_lost: Callable[[Connection], None] | None = None
        self.pool: Any = None  # the HostPool that owns this connection (set by the pool)
        self.context: Any = None  # the caller's state for the exchange in progress
        self.served = 0
        self.protocol = "HTTP/1.1"  # of the response being read (Response.protocol)
        self._headers: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._begin(False, 0)

    # -- pool-facing API ---------------------------------------------------------------

    def reusable(self) -> bool:
        """True when the last exchange ended cleanly and the server keeps the connection."""
        transport = self._transport
        return (
            self.keep_alive
            and self._state == _DONE
            and transport is not None
            and not transport.is_closing()
        )

    def usable(self) -> bool:
        transport = self._transport
        return not self.closed and transport is not None and not transport.is_closing()

    def park(self) -> None:
        """Mark the connection idle between requests."""
        self._state = _IDLE
        self._chunks.clear()  # the Response owns the body now; do not pin it while idle

    def abort(self) -> None:
        """Close at once: used for errors, cancellation and expiry (never half-read reuse)."""
        self.keep_alive = False
        self._cancel_timer()
        if self._transport is not None and not self.closed:
            self._transport.abort()

    async def wait_closed(self) -> None:
        if self.closed or self._transport is None:
            return
        if self._closed_waiter is None:
            self._closed_waiter = self._loop.create_future()
        await self._closed_waiter

    def body(self) -> bytes:
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    # -- one request/response exchange ---------------------------------------------------

    def start(
        self,
        head: bytes,
        body: bytes | None,
        *,
        is_head: bool,
        max_body: int,
        read_timeout: float | None,
        total_timeout: float | None,
        on_done: ExchangeDone,
    ) -> None:
        """Send one request (at the end of this loop turn, see :class:`Outbox`);
        ``on_done(self, error)`` is called once when the exchange has ended.

        ``error`` is None for a complete response (``status``, :meth:`headers`, :meth:`body`),
        else the TransportError or StaleConnection that ended it. ``on_done`` never runs
        inside ``start`` itself, nor while llhttp is still parsing, so it may start the
        next exchange on this very connection.
        """
        transport = self._transport
        if self._state != _IDLE or transport is None or transport.is_closing() or self.closed:
            raise StaleConnection(written=False)
        self._begin(is_head, max_body)
        self._state = _ACTIVE
        self._on_done = on_done
        self._arm_timer(self._loop.time(), read_timeout, total_timeout)
        self._unsent_head = head
        self._unsent_body = body
        self._outbox.post(self)

    def send_unsent(self, now: float) -> None:
        """Write the request that :meth:`start` posted, unless the exchange ended meanwhile."""
        head = self._unsent_head
        transport = self._transport
        if head is None or self._state != _ACTIVE or transport is None or transport.is_closing():
            return  # ended meanwhile; if it was closed, connection_lost reports "unwritten"
        body = self._unsent_body
        self._unsent_head = self._unsent_body = None
        # Timings come from perf_counter: uvloop's loop.time() is whole milliseconds,
        # cached per loop turn, fine for deadlines but not for a record's ttfb_ms.
        self.sent_at = now
        self._write(transport, head, body)

    async def exchange(
        self,
        head: bytes,
        body: bytes | None,
        *,
        is_head: bool,
        max_body: int,
        read_timeout: float | None,
    ) -> None:
        """Write one request and wait for the complete response (or raise)."""
        waiter: asyncio.Future[BaseException | None] = self._loop.create_future()
        self.start(
            head,
            body,
            is_head=is_head,
            max_body=max_body,
            read_timeout=read_timeout,
            total_timeout=None,
            on_done=future_waker(waiter),
        )
        try:
            error = await waiter
        except asyncio.CancelledError:
            self._on_done = None
            self.abort()  # half-read: this connection must never serve another request
            raise
        if error is not None:
            raise error

    def _write(self, transport: asyncio.Transport, head: bytes, body: bytes | None) -> None:
        if not body:
            transport.write(head)
        elif len(body) <= _COPY_BODY_LIMIT:
            transport.write(head + body)  # one segment on the wire for small bodies
        else:
            transport.write(head)
            transport.write(body)

    def _begin(self, is_head: bool, max_body: int) -> None:
        if self._reset_parser:
            # llhttp cannot skip a HEAD response's body, so we stopped it mid-message.
            self._parser = HttpResponseParser(self)
            self._reset_parser = False
        self._is_head = is_head
        self._max_body = max_body
        self._error = None
        self.status = 0
        self._headers.clear()  # the previous Response holds a tuple copy
        self.headers_at = 0.0
        self.keep_alive = False
        self._chunks.clear()
        self._head_bytes_seen = 0
        self._header_bytes = 0
        self._headers_done = False
        self._got_bytes = False
        self._raw_size = 0
        self._encoding: bytes | None = None
        self._content_length: bytes | None = None
        self._until_close = False
        self._decoder: BodyDecoder | None = None

    def _finish(self, error: BaseException | None) -> None:
        """End the exchange, successfully or not, and tell its owner (after parsing)."""
        if self._state != _ACTIVE:
            return
        self._state = _DONE
        if error is not None:
            self._error = error
            self.keep_alive = False
        else:
            self.served += 1
        if not self._feeding:
            self._notify()

    def _notify(self) -> None:
        on_done = self._on_done
        if on_done is None:
            return
        self._on_done = None
        error, self._error = self._error, None
        on_done(self, error)

    def _fail(self, error: BaseException) -> _StopParsing:
        self._finish(error)
        return _StopParsing()

    # -- asyncio.Protocol callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._live.add(self)

    def data_received(self, data: bytes) -> None:
        if self._state != _ACTIVE or self._unsent_head is not None:
            # Bytes nobody asked for (late body, stray response, a 408 sent just before
            # our request was written): the stream is desynced. An unwritten request is
            # reported as such when the connection has gone (see _finish_on_close).
            self.abort()
            return
        parse_whole = _WHOLE_RESPONSE
        if parse_whole is not None and not self._got_bytes and not self._is_head:
            # Heads up to one field's limit only: anything larger goes to llhttp, whose
            # per-field check is the rule, so the C parse stays a strict subset of it.
            whole = parse_whole(data, self._max_body, MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS)
            if whole is not None:
                self._got_bytes = True
                self._take_whole(*whole)
                return
        self._got_bytes = True
        if self._read_timeout is not None:
            self._deadline = self._loop.time() + self._read_timeout
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            self.keep_alive = False  # 101: we never speak the new protocol
        except HttpParserError as exc:
            self._on_parser_error(exc)
        finally:
            self._feeding = False
        if not self._headers_done and self._state == _ACTIVE:
            self._check_header_bytes(len(data))
        if self._state == _DONE:
            self._notify()

    def _take_whole(
        self,
        status: int,
        keep_alive: bool,
        headers: list[tuple[str, str]],
        encoding: bytes | None,
        body: bytes,
    ) -> None:
        """A whole response parsed in one pass: what llhttp's callbacks would have done."""
        self._headers = headers
        self._encoding = encoding
        self.protocol = "HTTP/1.1"  # parse_whole leaves HTTP/1.0 answers to llhttp
        self._headers_complete(status, keep_alive)
        # Its Content-Length is within max_body and framed the body exactly (checked in C).
        self._choose_decoder()
        try:
            if body:
                self.on_body(body)
        except _StopParsing:
            return  # on_body failed the exchange (a decoding error, say), as under llhttp
        # llhttp is not feeding, so _finish tells the owner at once; it may start its next
        # request on this very connection from inside that call.
        self._finish_message()

    def _check_header_bytes(self, size: int) -> None:
        # llhttp buffers nothing itself, but httptools accumulates an unfinished header
        # line: count raw bytes so an endless header section cannot grow memory.
        self._head_bytes_seen += size
        if self._head_bytes_seen > MAX_HEADER_BLOCK_BYTES:
            self._finish(ProtocolError(f"response headers exceed {MAX_HEADER_BLOCK_BYTES} bytes"))

    def _on_parser_error(self, exc: HttpParserError) -> None:
        if self._state == _ACTIVE:
            error = ProtocolError(f"malformed HTTP response: {exc}")
            error.__cause__ = exc
            self._finish(error)
        elif self._is_head and self._error is None:
            self._reset_parser = True  # expected: we stopped llhttp after HEAD headers
        elif self._feeding and self._error is None and self._on_done is not None:
            # Bytes beyond the declared length came with the response: its framing is in
            # dispute (a sign of response splitting), so it is not trusted, as aiohttp's
            # parser does not trust it either. Bytes that come later, once the response
            # was handed over, only cost the connection (the branch below).
            self.served -= 1
            self._error = ProtocolError(
                "the response has more bytes than its Content-Length declares"
            )
            self.keep_alive = False
        else:
            self.keep_alive = False  # garbage after a complete response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._live.discard(self)
        self._cancel_timer()
        if self._state == _ACTIVE:
            self._finish_on_close(exc)
        elif self.idle and self.on_idle_lost is not None:
            self.on_idle_lost(self)
        closed_waiter = self._closed_waiter
        if closed_waiter is not None and not closed_waiter.done():
            closed_waiter.set_result(None)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost(self)
        self._forget_references()

    def _forget_references(self) -> None:
        # Closed for good: break the cycles through the parser and the pool (see
        # _CLOSED_PARSER), so reference counting frees this connection at once.
        self._parser = _CLOSED_PARSER
        self.pool = None
        self.on_idle_lost = None
        self._transport = None

    def _finish_on_close(self, exc: Exception | None) -> None:
        if self._unsent_head is not None:
            self._unsent_head = self._unsent_body = None
            self._finish(StaleConnection(written=False))  # it closed before we wrote
            return
        if self._headers_done and self._until_close:
            self._finish_message()  # a body delimited by the end of the connection
            return
        if not self._got_bytes and self.served > 0:
            self._finish(StaleConnection(written=True))
            return
        what = "reset" if isinstance(exc, ConnectionResetError) else "closed"
        where = "in the response body" if self._headers_done else "before a complete response"
        error = ReadError(f"connection {what} by the server {where}")
        error.__cause__ = exc
        self._finish(error)

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._state != _ACTIVE:
            self.keep_alive = False  # a second response to one request: desynced
            raise _StopParsing()

    def on_header(self, name: bytes, value: bytes) -> None:
        # The hottest Python code per response (called once per header): keep it lean.
        if self._headers_done:
            return  # chunked trailers are not part of the response headers
        field_bytes = len(name) + len(value)
        self._header_bytes += field_bytes + 4
        headers = self._headers
        if (
            field_bytes > MAX_HEADER_FIELD_BYTES
            or self._header_bytes > MAX_HEADER_BLOCK_BYTES
            or len(headers) >= MAX_HEADER_FIELDS
        ):
            raise self._fail(
                ProtocolError(
                    f"response headers exceed {MAX_HEADER_FIELDS} fields,"
                    f" {MAX_HEADER_FIELD_BYTES} bytes in one field"
                    f" or {MAX_HEADER_BLOCK_BYTES} bytes in all"
                )
            )
        if len(name) in _INTERESTING_NAME_LENGTHS:  # skips lower() for most headers
            self._note_framing_header(name.lower(), value)
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = value.decode("latin-1")  # lossless for the odd legacy byte
        headers.append((name.decode("latin-1"), text))

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The response's header fields, decoded: UTF-8, or Latin-1 for legacy bytes."""
        return tuple(self._headers)

    def _note_framing_header(self, lowered: bytes, value: bytes) -> None:
        if lowered == b"content-encoding":
            self._encoding = value
        elif lowered == b"content-length":
            self._content_length = value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200 and status != 101:
            self._reset_headers()  # 1xx informational: the real response follows
            return
        self._headers_complete(status, self._parser.should_keep_alive())
        self.protocol = "HTTP/" + self._parser.get_http_version()
        if self._is_head:
            self._finish(None)
            raise _StopParsing()  # llhttp would wait for a body a HEAD response never has
        self._prepare_body(status)

    def _headers_complete(self, status: int, keep_alive: bool) -> None:
        self.status = status
        self._headers_done = True
        self.headers_at = _perf_counter()
        self.keep_alive = keep_alive

    def _reset_headers(self) -> None:
        self._headers.clear()
        self._encoding = None
        self._content_length = None

    def _prepare_body(self, status: int) -> None:
        if status in (204, 304):
            return
        length = self._content_length
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise self._fail(
                TooLargeError(f"Content-Length {int(length)} exceeds max_body ({self._max_body})")
            )
        # Neither Content-Length nor chunked: the body runs until the server closes.
        self._until_close = length is None and not self._parser_is_chunked()
        self._choose_decoder()

    def _choose_decoder(self) -> None:
        if self._encoding is not None:
            self._decoder = make_decoder(self._encoding, self._max_body)

    def _parser_is_chunked(self) -> bool:
        for name, value in self._headers:
            if name.lower() == "transfer-encoding":
                return "chunked" in value.lower()
        return False

    def on_body(self, body: bytes) -> None:
        if self._state != _ACTIVE:
            return
        self._raw_size += len(body)
        if self._raw_size > self._max_body:
            raise self._fail(
                TooLargeError(f"response body is larger than max_body ({self._max_body} bytes)")
            )
        decoder = self._decoder
        if decoder is not None:
            try:
                body = decoder.feed(body)
            except TransportError as exc:
                raise caused_by(self._fail(exc), None)
            if not body:
                return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done and self._state == _ACTIVE:
            self._finish_message()

    def _finish_message(self) -> None:
        decoder = self._decoder
        if decoder is not None:
            try:
                tail = decoder.flush()
            except TransportError as exc:
                self._finish(exc)
                return
            if tail:
                self._chunks.append(tail)
        self._finish(None)

    # -- timeouts ----------------------------------------------------------------------------

    def _arm_timer(self, now: float, read: float | None, total: float | None) -> None:
        # Two deadlines share one timer: the read deadline moves with every chunk that
        # arrives, the total one (set only by callers that enforce no deadline of their
        # own) does not.
        self._read_timeout = read
        self._total_timeout = total
        self._deadline = _NEVER if read is None else now + read
        self._total_deadline = _NEVER if total is None else now + total
        when = min(self._deadline, self._total_deadline)
        if when == _NEVER:
            return
        timer = self._timer
        # An armed timer that fires no later than the deadline re-arms itself when it
        # fires: most exchanges finish well before, so most need no new timer at all.
        if timer is not None and self._timer_when <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._state != _ACTIVE:
            return
        now = self._loop.time() + 0.001
        if self._total_timeout is not None and now >= self._total_deadline:
            self._finish(overdue_error(self._total_timeout))
        elif self._read_timeout is not None and now >= self._deadline:
            self._finish(TimeoutError_(f"no data from the server for {self._read_timeout:g} s"))
        else:
            self._timer_when = when = min(self._deadline, self._total_deadline)
            self._timer = self._loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def future_waker(
    waiter: asyncio.Future[BaseException | None],
) -> ExchangeDone:
    """An ``on_done`` that resolves ``waiter`` with the exchange's error (None: success)."""

    def wake(_conn: Connection, error: BaseException | None) -> None:
        if not waiter.done():
            waiter.set_result(error)

    return wake
