"""What llhttp (through httptools) reports for a response: the reference for the fast
transport's own parsing (tests/test_whole_response.py, tests/test_transport_fast.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httptools


def decoded_field(name: bytes, value: bytes) -> tuple[str, str]:
    """A field as the transport decodes it: UTF-8, Latin-1 for anything else."""
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return name.decode("latin-1"), text


@dataclass
class LlhttpReport:
    """What httptools' callbacks say about one response fed to it in one piece. The
    fields are the final response's: those of an interim (1xx) one are dropped."""

    status: int = 0
    keep_alive: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)
    encoding: bytes | None = None
    body: bytes = b""
    begun: int = 0  # messages llhttp started: more than one means bytes were left over
    complete: bool = False
    error: str | None = None


def llhttp_report(data: bytes) -> LlhttpReport:
    report = LlhttpReport()
    parser: httptools.HttpResponseParser

    class Recorder:
        def on_header(self, name: bytes, value: bytes) -> None:
            report.headers.append(decoded_field(name, value))
            if name.lower() == b"content-encoding":
                report.encoding = value

        def on_headers_complete(self) -> None:
            report.status = parser.get_status_code()
            report.keep_alive = parser.should_keep_alive()
            if report.status < 200:
                report.headers.clear()
                report.encoding = None

        def on_body(self, body: bytes) -> None:
            report.body += body

        def on_message_begin(self) -> None:
            report.begun += 1

        def on_message_complete(self) -> None:
            report.complete = True

    parser = httptools.HttpResponseParser(Recorder())
    # One feed, as the transport feeds a response that arrived in one read.
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    return report
