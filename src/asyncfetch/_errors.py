"""The asyncfetch error tree and the error kinds written into result records.

    AsyncfetchError
    ├── ConfigError         invalid settings or options (CLI exit 2)
    ├── InputError          one bad input line; becomes an ``invalid_input`` record
    ├── OutputError         results cannot be written (CLI exit 3)
    │   └── OutputClosed    the reader closed the pipe (CLI exit 141, quietly)
    ├── BodyNotKept         Result.text()/json() on a result without a body (also a ValueError)
    ├── ResumeError         a journal that does not match the run being resumed (CLI exit 2)
    ├── QueueError          the shared work queue failed (CLI exit 3)
    └── TransportError      one attempt of one request failed; carries an ErrorKind
        ├── DNSError, ConnectError, TLSError          never reached the server
        │   └── ProxyError (a ConnectError)           the proxy failed or refused the tunnel
        │   └── CertificateError (a TLSError)         the certificate failed verification
        ├── TimeoutError_, ReadError, ProtocolError   may have reached the server
        ├── TooLargeError                             body over the configured cap
        ├── RedirectError                             loop, limit or unsafe target
        └── CancelledRequestError                     the client was closed first

Transports map their library's exceptions onto this tree once, at their boundary, with
``raise ... from exc``; nothing above them sees aiohttp or socket exceptions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class ErrorKind(StrEnum):
    """The ``error.kind`` of a result record. Every failure maps to exactly one."""

    INVALID_INPUT = "invalid_input"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    READ = "read"
    PROTOCOL = "protocol"
    TOO_LARGE = "too_large"
    REDIRECT = "redirect"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


class AsyncfetchError(Exception):
    """Base of every error asyncfetch raises on purpose."""


class ConfigError(AsyncfetchError, ValueError):
    """A setting or option is invalid; the message says how to fix it."""


class InputError(AsyncfetchError, ValueError):
    """One input line cannot be turned into a request."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class OutputError(AsyncfetchError):
    """Results cannot be written (disk full, permission denied, closed pipe...)."""


class OutputClosed(OutputError):
    """The reader of the output went away (``| head`` read enough): not a failure of the
    run's own, so the CLI ends quietly, as a Unix filter does on a closed pipe."""


class BodyNotKept(AsyncfetchError, ValueError):
    """``Result.text()``/``json()``/``content()`` on a result that holds no body: the
    request failed, or the body policy kept none (``body="none"``)."""


class ResumeError(AsyncfetchError):
    """The journal on disk does not belong to the run being resumed."""


class QueueError(AsyncfetchError):
    """The shared work queue is unreachable or inconsistent."""


class TransportError(AsyncfetchError):
    """One attempt failed. ``may_have_been_sent`` drives the retry rules of RFC 9110."""

    kind: ErrorKind = ErrorKind.INTERNAL
    may_have_been_sent: bool = True
    # True where no retry can succeed (the same request meets the same refusal).
    permanent: bool = False

    def __init__(self, message: str, *, may_have_been_sent: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if may_have_been_sent is not None:
            self.may_have_been_sent = may_have_been_sent


class DNSError(TransportError):
    kind = ErrorKind.DNS
    may_have_been_sent = False


class ConnectError(TransportError):
    kind = ErrorKind.CONNECT
    may_have_been_sent = False


class ProxyError(ConnectError):
    """The proxy could not be reached, or refused or failed the way to the origin: the
    request never reached the origin. ``permanent`` where asking again cannot help
    (credentials refused, a port the proxy forbids)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class TLSError(TransportError):
    kind = ErrorKind.TLS
    may_have_been_sent = False


class CertificateError(TLSError):
    """The server's certificate failed verification: every retry would fail the same
    way (curl does not retry it either), so it is never retried."""

    permanent = True


class TimeoutError_(TransportError):
    kind = ErrorKind.TIMEOUT


class ReadError(TransportError):
    kind = ErrorKind.READ


class ProtocolError(TransportError):
    kind = ErrorKind.PROTOCOL


class TooLargeError(TransportError):
    kind = ErrorKind.TOO_LARGE


class RedirectError(TransportError):
    kind = ErrorKind.REDIRECT


class CancelledRequestError(TransportError):
    """The run or client was shut down before the request could be sent."""

    kind = ErrorKind.CANCELLED
    may_have_been_sent = False


ErrorT = TypeVar("ErrorT", bound=BaseException)


def caused_by(error: ErrorT, cause: BaseException | None) -> ErrorT:
    """``error`` chained to ``cause``, as ``raise error from cause`` chains it.

    The modules that ``make`` compiles with mypyc (tools/native.py) raise
    ``caused_by(...)`` instead of using ``from``: mypyc drops a ``from`` clause, and
    the cause is what a traceback and a library user's handler see.
    """
    error.__cause__ = cause  # also sets __suppress_context__, exactly as `from` does
    return error
