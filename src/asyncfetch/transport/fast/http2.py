"""HTTP/2 for the fast engine (the ``h2`` library): one connection per origin, many streams.

Used only when the run offers h2 (``--http2``) and the server picks it by ALPN; every
other exchange takes the HTTP/1.1 path of ``connection.py`` untouched. Streams in flight
to an origin are bounded by the per-host limit and by the server's
SETTINGS_MAX_CONCURRENT_STREAMS. Received data is acknowledged as it is consumed (window
updates), so bodies larger than the initial 64 KiB window flow; request bodies wait for
the server's window. A stream the server refused (RST_STREAM REFUSED_STREAM) or did not
process (above a GOAWAY's last stream id) was never processed: its error says so, and the
retry rules send it again, on a new connection, whatever its method (RFC 9113 §8.7).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohappyeyeballs
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from ..._errors import (
    CertificateError,
    ConnectError,
    DNSError,
    ProtocolError,
    ReadError,
    TimeoutError_,
    TLSError,
    TooLargeError,
    TransportError,
    caused_by,
)
from ..resolver import Resolver
from .codec import BodyDecoder, make_decoder
from .http2_origin import H2Answer, NotH2
from .pool import HAPPY_EYEBALLS_DELAY


class _GracefulGoaway(h2.connection.H2Connection):
    """h2's connection, except that a GOAWAY leaves the streams it accepted readable.

    RFC 9113 §6.8: streams up to the GOAWAY's last stream id may still complete. h2 moves
    its connection to CLOSED on any GOAWAY and then rejects their frames; nginx sends one
    after ``keepalive_requests`` streams and goes on answering them. New streams are kept
    off the connection by :attr:`H2Session.closed`.
    """

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result


class _Stream:
    __slots__ = (
        "activity",
        "chunks",
        "decoder",
        "done",
        "headers",
        "headers_at",
        "max_body",
        "size",
        "status",
    )

    def __init__(self, done: asyncio.Future[None], max_body: int) -> None:
        self.done = done
        self.max_body = max_body
        self.status = 0
        self.headers: tuple[tuple[str, str], ...] = ()
        self.chunks: list[bytes] = []
        self.size = 0
        self.decoder: BodyDecoder | None = None
        self.headers_at = 0.0
        self.activity = 0  # bumped by every frame of the stream: the read timeout's clock


class H2Session(asyncio.Protocol):
    """One HTTP/2 connection: an asyncio Protocol driving an ``h2`` state machine."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_change: Callable[[], None]) -> None:
        self._loop = loop
        self._h2 = _GracefulGoaway(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._window_waiters: list[asyncio.Future[None]] = []
        self._on_change = on_change  # a stream ended or the server's limits changed
        self.alpn: str | None = None
        self.closed = False  # no new streams: GOAWAY received, or the connection is gone
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- what the origin asks ------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Streams that may still be opened now (the server's concurrency setting)."""
        if self.closed:
            return 0
        limit = self._h2.remote_settings.max_concurrent_streams
        return int(limit) - len(self._streams)

    @property
    def busy(self) -> bool:
        return bool(self._streams)

    def close(self) -> None:
        if self._transport is not None and not self.lost.done():
            self._h2.close_connection()
            self._flush()
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None and not self.lost.done():
            self._transport.abort()

    async def request(
        self,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        max_body: int,
        read_timeout: float | None,
    ) -> H2Answer:
        """Send one request on a new stream and wait for its whole response."""
        stream_id = self._h2.get_next_available_stream_id()
        stream = _Stream(self._loop.create_future(), max_body)
        self._streams[stream_id] = stream
        sent_at = time.perf_counter()
        try:
            try:
                self._h2.send_headers(stream_id, headers, end_stream=body is None)
            except h2.exceptions.ProtocolError as exc:  # e.g. a header h2 will not send
                stream.done.cancel()
                failed = ProtocolError(f"cannot send on HTTP/2: {exc}", may_have_been_sent=False)
                raise failed from exc
            self._flush()
            if body is not None:
                await self._send_body(stream_id, stream, body)
            await self._wait(stream, read_timeout)
        finally:
            self._forget(stream_id, stream)
        body_bytes = b"".join(stream.chunks)
        return stream.status, stream.headers, body_bytes, (stream.headers_at - sent_at) * 1000.0

    async def _send_body(self, stream_id: int, stream: _Stream, body: bytes) -> None:
        view, offset = memoryview(body), 0
        while offset < len(body) and not stream.done.done():
            window = self._h2.local_flow_control_window(stream_id)
            size = min(window, self._h2.max_outbound_frame_size, len(body) - offset)
            if size <= 0:
                waiter = self._loop.create_future()
                self._window_waiters.append(waiter)
                await waiter  # a WINDOW_UPDATE, new settings, or the stream's end
                continue
            self._h2.send_data(stream_id, bytes(view[offset : offset + size]))
            offset += size
            self._flush()
        if not stream.done.done():
            self._h2.end_stream(stream_id)
            self._flush()

    async def _wait(self, stream: _Stream, read_timeout: float | None) -> None:
        # The read timeout bounds a silence, as on HTTP/1.1: any frame of the stream
        # restarts it, so a large body that keeps flowing is never cut.
        while not stream.done.done():
            seen = stream.activity
            await asyncio.wait((stream.done,), timeout=read_timeout)
            if not stream.done.done() and stream.activity == seen:
                raise TimeoutError_(f"no response data for {read_timeout} s (HTTP/2 stream)")
        stream.done.result()  # raises the stream's error

    def _forget(self, stream_id: int, stream: _Stream) -> None:
        if self._streams.pop(stream_id, None) is None:
            return
        if not stream.done.done() and not self.lost.done():
            # Cancelled or timed out: tell the server, which frees the stream on both sides.
            stream.done.cancel()
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._flush()
        self._on_change()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        self.alpn = None if ssl_object is None else ssl_object.selected_alpn_protocol()
        if self.alpn == "h2":
            self._h2.initiate_connection()
            self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(caused_by(ProtocolError(f"HTTP/2 protocol error: {exc}"), exc))
            self.abort()
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_all(ReadError("HTTP/2 connection closed before the response ended"))
        self._wake_senders()
        if not self.lost.done():
            self.lost.set_result(None)
        self._on_change()

    # -- frames --------------------------------------------------------------------------

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self._on_headers(event.stream_id, event.headers)
        elif isinstance(event, h2.events.DataReceived):
            # Acknowledged at once: the body is consumed as it arrives (bounded below).
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self._on_data(event.stream_id, event.data)
        elif isinstance(event, h2.events.StreamEnded):
            self._on_end(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._on_reset(event.stream_id, event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event.last_stream_id or 0, int(event.error_code or 0))
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake_senders()
            self._on_change()

    def _on_headers(self, stream_id: int, raw: list[tuple[bytes, bytes]]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.activity += 1
        stream.headers_at = time.perf_counter()
        fields = []
        for name, value in raw:
            if name == b":status":
                stream.status = int(value)
            elif not name.startswith(b":"):
                fields.append((_text(name), _text(value)))
                if name == b"content-encoding":
                    stream.decoder = make_decoder(value, stream.max_body)
        stream.headers = tuple(fields)

    def _on_data(self, stream_id: int, data: bytes) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.done.done():
            return
        stream.activity += 1
        try:
            chunk = data if stream.decoder is None else stream.decoder.feed(data)
        except TransportError as exc:
            self._end_stream_with(stream_id, stream, exc)
            return
        stream.size += len(chunk)
        if stream.size > stream.max_body:
            too_large = TooLargeError(
                f"response body is larger than max_body ({stream.max_body} bytes)"
            )
            self._end_stream_with(stream_id, stream, too_large)
            return
        stream.chunks.append(chunk)

    def _on_end(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.done.done():
            return
        if stream.decoder is not None:
            try:
                stream.chunks.append(stream.decoder.flush())
            except TransportError as exc:
                stream.done.set_exception(exc)
                return
        stream.done.set_result(None)

    def _on_reset(self, stream_id: int, code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.done.done():
            return
        if code == h2.errors.ErrorCodes.REFUSED_STREAM:
            # RFC 9113 §8.7: refused before any processing, safe to send again.
            error: TransportError = ReadError(
                "the server refused the HTTP/2 stream (REFUSED_STREAM)", may_have_been_sent=False
            )
        else:
            error = ProtocolError(f"the server reset the HTTP/2 stream ({_code_name(code)})")
        stream.done.set_exception(error)
        self._wake_senders()

    def _on_goaway(self, last_stream_id: int, code: int) -> None:
        self.closed = True
        for stream_id, stream in self._streams.items():
            if stream_id > last_stream_id and not stream.done.done():
                stream.done.set_exception(
                    ReadError(
                        f"the server closed the HTTP/2 connection (GOAWAY, {_code_name(code)})"
                        " before processing the stream",
                        may_have_been_sent=False,
                    )
                )
        self._wake_senders()
        self._on_change()

    def _end_stream_with(self, stream_id: int, stream: _Stream, error: TransportError) -> None:
        stream.done.set_exception(error)
        self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)

    def _fail_all(self, error: TransportError) -> None:
        for stream in self._streams.values():
            if not stream.done.done():
                stream.done.set_exception(error)

    def _wake_senders(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


async def open_session(
    loop: asyncio.AbstractEventLoop,
    resolver: Resolver,
    host: str,
    port: int,
    context: ssl.SSLContext,
    connect_timeout: float | None,
    on_change: Callable[[], None],
) -> H2Session:
    """Connect, handshake offering h2; NotH2 when the server picks HTTP/1.1."""
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(connect_timeout):
            addresses = await resolver.resolve(host, port)
            sock = await aiohappyeyeballs.start_connection(
                addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1, loop=loop
            )
            try:
                _, session = await loop.create_connection(
                    lambda: H2Session(loop, on_change),
                    sock=sock,
                    ssl=context,
                    server_hostname=host,
                )
            except BaseException:
                sock.close()
                raise
    except TimeoutError as exc:
        raise caused_by(
            TimeoutError_(f"connecting to {where} timed out", may_have_been_sent=False), exc
        ) from exc
    except socket.gaierror as exc:
        raise caused_by(DNSError(f"cannot resolve {host}: {exc.strerror or exc}"), exc) from exc
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason
        raise CertificateError(f"TLS handshake with {where} failed: {reason}") from exc
    except ssl.SSLError as exc:
        raise TLSError(f"TLS handshake with {where} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        failed = ConnectError(f"cannot connect to {where}: {exc.strerror or exc}")
        raise failed from exc
    if session.alpn != "h2":
        session.abort()
        raise NotH2(where)
    return session


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _code_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error {code}"
