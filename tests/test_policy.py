"""The pure policy decisions, each against expected values written out by hand.

Redaction, redirect rules, retry decisions and the limits are checked here with literal
expectations (never computed by the function under test) and at their boundaries: these
are the cases `make mutation` found the rest of the suite blind to.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from asyncfetch import ConfigError, Request, RetryPolicy
from asyncfetch._api import make_settings
from asyncfetch._errors import (
    ConnectError,
    ErrorKind,
    ProtocolError,
    ReadError,
    RedirectError,
    TimeoutError_,
    TooLargeError,
)
from asyncfetch._models import Response
from asyncfetch._settings import Timeouts
from asyncfetch.policy.limits import GcraRateMeter, PerHostLimiter, Slots
from asyncfetch.policy.redact import redact_headers, redact_text, redact_url
from asyncfetch.policy.retry import (
    GIVE_UP,
    backoff_delay,
    decide_after_error,
    decide_after_response,
    parse_retry_after,
)
from asyncfetch.transport.factory import open_transport
from asyncfetch.transport.redirects import next_request, send_following

from .fake_clock import FakeClock
from .recording_server import RecordingServer
from .tasks import cancel_and_check, ended_cancelled

# -- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://alice:pa55@example.com/p?q=1#f", "https://[redacted]@example.com/p?q=1#f"),
        ("https://alice@example.com/", "https://[redacted]@example.com/"),  # user only
        ("https://:pa55@example.com/", "https://[redacted]@example.com/"),  # password only
        ("http://bob:p@ss@example.com:8080/x", "http://[redacted]@example.com:8080/x"),
        ("https://example.com/mail/a@b.example", "https://example.com/mail/a@b.example"),
        ("https://example.com/?to=a@b.example", "https://example.com/?to=a@b.example"),
        ("https://example.com/", "https://example.com/"),
        ("http://u:p@[::1/", "http://u:p@[::1/"),  # unparseable: left as it came
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_headers_matches_names_in_any_case_and_keeps_the_rest() -> None:
    headers = (
        ("AUTHORIZATION", "Bearer t0ken"),
        ("cookie", "a=1"),
        ("Proxy-Authorization", "Basic eHk="),
        ("SET-COOKIE", "session=s3cr3t; Path=/"),
        ("Set-Cookie2", "kept"),
        ("X-Authorization-Hint", "kept too"),
        ("Content-Type", "text/plain"),
    )
    assert redact_headers(headers) == (
        ("AUTHORIZATION", "[redacted]"),
        ("cookie", "[redacted]"),
        ("Proxy-Authorization", "[redacted]"),
        ("SET-COOKIE", "[redacted]"),
        ("Set-Cookie2", "kept"),
        ("X-Authorization-Hint", "kept too"),
        ("Content-Type", "text/plain"),
    )


def test_redact_text_removes_every_occurrence_of_secrets_of_four_or_more_characters() -> None:
    message = "token abcd sent twice: abcd; short one: xyz; other: s3cr3t"
    assert redact_text(message, ("abcd", "xyz", "s3cr3t")) == (
        "token [redacted] sent twice: [redacted]; short one: xyz; other: [redacted]"
    )
    assert redact_text("nothing here", ()) == "nothing here"


# -- redirects -------------------------------------------------------------------------

FORM = (("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", "3"))


def _redirect(status: int, location: str = "/next") -> Response:
    return Response(
        status=status, url="http://a.example/start", headers=(("Location", location),), body=b""
    )


def _request(method: str, body: bytes | None = b"a=1") -> Request:
    headers = (*FORM, ("Accept", "*/*"), ("Authorization", "Bearer t0ken"))
    return Request("http://a.example/start", method, headers, body)


@pytest.mark.parametrize(
    ("status", "method", "expected_method", "body_kept"),
    [
        (301, "POST", "GET", False),
        (302, "POST", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (303, "HEAD", "HEAD", False),
        (301, "PUT", "PUT", True),
        (302, "DELETE", "DELETE", True),
        (307, "POST", "POST", True),
        (308, "POST", "POST", True),
        (308, "PUT", "PUT", True),
    ],
)
def test_redirect_method_rules(
    status: int, method: str, expected_method: str, body_kept: bool
) -> None:
    follow = next_request(_request(method), _redirect(status))
    assert follow.url == "http://a.example/next"
    assert follow.method == expected_method
    if body_kept:
        assert follow.body == b"a=1"
        assert follow.headers == (
            *FORM,
            ("Accept", "*/*"),
            ("Authorization", "Bearer t0ken"),
        )
    else:
        assert follow.body is None
        # Body headers go with the body; the others stay (same origin: credentials too).
        assert follow.headers == (("Accept", "*/*"), ("Authorization", "Bearer t0ken"))


@pytest.mark.parametrize(
    ("location", "credentials_kept"),
    [
        ("http://a.example:80/x", True),  # the default port is the same origin
        ("HTTP://A.EXAMPLE/x", True),
        ("https://a.example/x", False),  # another scheme
        ("http://a.example:8080/x", False),  # another port
        ("http://b.example/x", False),  # another host
    ],
)
def test_credentials_are_dropped_only_across_origins(
    location: str, credentials_kept: bool
) -> None:
    request = Request(
        "http://a.example/start",
        "GET",
        (("Cookie", "c=1"), ("proxy-authorization", "Basic eHk="), ("Accept", "*/*")),
    )
    follow = next_request(request, _redirect(307, location))
    expected = request.headers if credentials_kept else (("Accept", "*/*"),)
    assert follow.headers == expected


def test_https_default_port_is_the_same_origin() -> None:
    request = Request("https://a.example/start", "GET", (("Authorization", "t"),))
    response = Response(
        307, "https://a.example/start", (("Location", "https://a.example:443/x"),), b""
    )
    assert next_request(request, response).headers == (("Authorization", "t"),)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (None, "302 redirect without a Location header"),
        ("", "302 redirect without a Location header"),
        ("ftp://a.example/file", "refusing redirect to a ftp: URL"),
        ("http://[::1/", "302 redirect to an invalid URL: Invalid IPv6 URL"),
        ("http://a.example:99999/", "302 redirect to an invalid URL: Port out of range 0-65535"),
        ("https:///no-host", "302 redirect to an invalid URL"),
        ("/a path", "302 redirect to an invalid URL"),
    ],
)
def test_redirects_that_cannot_be_followed(location: str | None, message: str) -> None:
    headers = () if location is None else (("Location", location),)
    response = Response(302, "http://a.example/start", headers, b"")
    with pytest.raises(RedirectError) as raised:
        next_request(_request("GET", None), response)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("location", "cause"),
    [("http://[::1/", "Invalid IPv6 URL"), ("http://a.example:9999999/", "Port out of range")],
)
def test_an_unparsable_location_keeps_the_parser_error_as_its_cause(
    location: str, cause: str
) -> None:
    response = Response(302, "http://a.example/start", (("Location", location),), b"")
    with pytest.raises(RedirectError) as raised:
        next_request(_request("GET", None), response)
    assert isinstance(raised.value.__cause__, ValueError)
    assert cause in str(raised.value.__cause__)


def test_a_redirect_from_a_url_without_scheme_is_refused_as_relative() -> None:
    # A Request built by hand may hold a scheme-less URL: a relative Location then stays
    # relative, and it is refused by name rather than sent.
    request = Request("a.example/start", "GET")
    with pytest.raises(RedirectError) as raised:
        next_request(request, _redirect(302, "next"))
    assert str(raised.value) == "refusing redirect to a relative: URL"


# -- retry -----------------------------------------------------------------------------

POLICY = RetryPolicy(retries=3, backoff_base=0.5, backoff_cap=4, retry_after_cap=10)
GET = Request.create("http://h/")
POST = Request.create("http://h/", method="POST", body=b"x")


class MaxRandom(random.Random):
    """uniform(a, b) always gives b: the backoff ceiling itself, as a literal to check."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _response(status: int, retry_after: str | None = None) -> Response:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Response(status=status, url="http://h/", headers=headers, body=b"")


def test_backoff_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    ceilings = [backoff_delay(POLICY, attempt, MaxRandom()) for attempt in range(0, 7)]
    assert ceilings == [0.5, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_draws_from_zero_to_the_ceiling_with_the_given_random() -> None:
    draws = [backoff_delay(POLICY, 3, random.Random(11)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]  # the injected generator, not the global one
    expected = random.Random(11).uniform(0.0, 2.0)
    assert draws[0] == expected
    rng = random.Random(1)
    many = [backoff_delay(POLICY, 3, rng) for _ in range(400)]
    assert 0.0 <= min(many) < 0.1 and 1.9 < max(many) <= 2.0


def test_retry_after_exactly_at_the_cap_is_honoured() -> None:
    at_cap = decide_after_response(GET, 1, _response(429, "10"), POLICY, MaxRandom())
    assert (at_cap.retry, at_cap.delay) == (True, 10.0)
    beyond = decide_after_response(GET, 1, _response(429, "11"), POLICY, MaxRandom())
    assert beyond == GIVE_UP


def test_retry_after_raises_the_delay_but_never_lowers_it() -> None:
    assert decide_after_response(GET, 3, _response(503, "1"), POLICY, MaxRandom()).delay == 2.0
    assert decide_after_response(GET, 1, _response(503, "3"), POLICY, MaxRandom()).delay == 3.0
    # Unparseable: the ordinary backoff.
    assert decide_after_response(GET, 2, _response(503, "soon"), POLICY, MaxRandom()).delay == 1.0


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    decision = decide_after_response(GET, 1, _response(503, date), POLICY, MaxRandom(), now)
    assert (decision.retry, decision.delay) == (True, 7.0)
    assert parse_retry_after(date, now=now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05", now=now) == 5.0  # no zone: UTC
    assert parse_retry_after(format_datetime(now - timedelta(hours=1)), now=now) == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), (" 12 ", 12.0), ("²", None), ("1.5", None), ("-1", None), ("", None)],
)
def test_parse_retry_after_accepts_only_ascii_delta_seconds(
    value: str, seconds: float | None
) -> None:
    assert parse_retry_after(value) == seconds


def test_the_last_attempt_is_never_retried() -> None:
    error = ReadError("reset")
    assert decide_after_error(GET, 3, error, POLICY, MaxRandom()).retry
    assert decide_after_error(GET, 4, error, POLICY, MaxRandom()) == GIVE_UP
    assert decide_after_response(GET, 3, _response(503), POLICY, MaxRandom()).retry
    assert decide_after_response(GET, 4, _response(503), POLICY, MaxRandom()) == GIVE_UP


def test_a_retried_error_waits_the_backoff_of_its_attempt() -> None:
    decision = decide_after_error(GET, 2, ReadError("reset"), POLICY, MaxRandom())
    assert (decision.retry, decision.delay) == (True, 1.0)


@pytest.mark.parametrize(
    ("error", "get_retried", "post_retried"),
    [
        (ConnectError("refused"), True, True),  # never sent: any method
        (ReadError("reset"), True, False),
        (TimeoutError_("slow"), True, False),
        (TooLargeError("big"), False, False),
        (RedirectError("loop"), False, False),
        # Could not even be built: every attempt would fail the same way before sending.
        (ProtocolError("cannot encode", may_have_been_sent=False), False, False),
    ],
)
def test_error_retry_rules(error: Exception, get_retried: bool, post_retried: bool) -> None:
    assert decide_after_error(GET, 1, error, POLICY).retry is get_retried  # type: ignore[arg-type]
    assert decide_after_error(POST, 1, error, POLICY).retry is post_retried  # type: ignore[arg-type]


def test_a_protocol_error_after_sending_is_retried_for_idempotent_methods() -> None:
    error = ProtocolError("bad status line")
    assert error.kind is ErrorKind.PROTOCOL
    assert decide_after_error(GET, 1, error, POLICY).retry
    assert not decide_after_error(POST, 1, error, POLICY).retry


def test_non_idempotent_retries_are_opt_in() -> None:
    opted_in = RetryPolicy(retries=1, retry_non_idempotent=True)
    assert decide_after_error(POST, 1, ReadError("reset"), opted_in).retry
    assert decide_after_response(POST, 1, _response(503), opted_in).retry


# -- limits ----------------------------------------------------------------------------


async def test_gcra_with_a_burst_of_one_spaces_every_request() -> None:
    clock = FakeClock()
    meter = GcraRateMeter(4, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await meter.acquire()
    assert clock.slept == [0.25, 0.25]  # the first goes at once; no sleep(0) either
    clock.now += 0.1  # part of an interval idle: only the rest is waited
    assert meter.reserve() == pytest.approx(0.15)


def test_gcra_on_a_clock_that_starts_at_zero() -> None:
    clock = FakeClock()
    clock.now = 0.0  # time.monotonic() soon after boot
    meter = GcraRateMeter(1, clock=clock, sleep=clock.sleep)
    assert [meter.reserve(), meter.reserve()] == [0.0, 1.0]


def test_gcra_burst_boundary() -> None:
    clock = FakeClock()
    meter = GcraRateMeter(2, burst=2, clock=clock, sleep=clock.sleep)
    assert [meter.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0, 1, "rate must be > 0 requests per second"),
        (-1, 1, "rate must be > 0 requests per second"),
        (1, 0, "burst must be at least 1"),
    ],
)
def test_gcra_rejects_nonsense(rate: float, burst: int, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GcraRateMeter(rate, burst=burst)
    assert str(raised.value) == message
    GcraRateMeter(0.001, burst=1)  # the smallest sensible values are accepted


def test_per_host_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError) as raised:
        PerHostLimiter(0)
    assert str(raised.value) == "per-host limit must be at least 1"
    PerHostLimiter(1)


@pytest.mark.parametrize("cancelled_first", [False, True])
async def test_a_waiter_cancelled_around_a_release_ends_cancelled_and_the_slot_goes_on(
    cancelled_first: bool,
) -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)  # both queue
    if cancelled_first:
        first.cancel()
        slots.release()  # in the same step: the cancelled waiter is dropped
    else:
        slots.release()  # the slot goes to `first`...
        first.cancel()  # ...which is cancelled before it runs, and passes it on
    await ended_cancelled(first)
    await asyncio.wait_for(second, 1)  # the slot went on to the next waiter, not lost
    assert not slots.free
    slots.release()
    assert slots.free


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    await cancel_and_check(waiter)
    slots.release()
    assert slots.free  # the slot came back: nobody stale was queued for it
    assert slots.try_acquire() and not slots.try_acquire()


async def test_per_host_slots_are_released_when_a_holder_is_cancelled_while_waiting() -> None:
    limiter = PerHostLimiter(1)
    assert limiter.try_hold("a")
    assert not limiter.try_hold("a")  # full: refused without waiting

    async def hold() -> None:
        async with limiter.hold("a"):
            pass

    waiting = asyncio.create_task(hold())
    await asyncio.sleep(0)
    await cancel_and_check(waiting)
    limiter.release("a")
    # Nobody in flight or queued: the host's one slot is free again, not leaked to the
    # cancelled waiter, and taken once more it is full.
    assert limiter.try_hold("a")
    assert not limiter.try_hold("a")
    assert limiter.try_hold("b")  # another host has its own slot


async def test_try_hold_on_a_busy_host_keeps_its_state() -> None:
    limiter = PerHostLimiter(2)
    assert limiter.try_hold("a") and limiter.try_hold("a")
    assert not limiter.try_hold("a")
    assert limiter.tracked_hosts == 1
    limiter.release("a")
    assert limiter.try_hold("a")  # the freed slot is there, for this host only
    limiter.release("a")
    limiter.release("a")
    # Both slots are back: exactly two holders fit again.
    assert limiter.try_hold("a") and limiter.try_hold("a")
    assert not limiter.try_hold("a")


# -- following redirects against a real server -------------------------------------------


async def _follow(
    server: RecordingServer, engine: str, url: str, hops: int, **request: Any
) -> Response:
    settings = make_settings()
    async with open_transport(engine, settings) as transport:
        return await send_following(
            transport,
            Request.create(url, **request),
            timeouts=Timeouts(total=10),
            max_body=1 << 20,
            max_redirects=hops,
        )


async def test_redirects_are_followed_up_to_the_limit(
    server: RecordingServer, engine: str
) -> None:
    final = await _follow(server, engine, server.url("/redirect/3"), 3)
    assert (final.status, final.url) == (200, server.url("/redirect/0"))
    assert server.recorder.hits("/redirect/0") == 1 and len(server.recorder.requests) == 4
    with pytest.raises(RedirectError) as raised:
        await _follow(server, engine, server.url("/redirect/3"), 2)
    assert str(raised.value) == "more than 2 redirects"
    assert len(server.recorder.requests) == 4 + 3


async def test_no_redirects_means_the_redirect_is_the_answer(
    server: RecordingServer, engine: str
) -> None:
    first = await _follow(server, engine, server.url("/redirect/1"), 0)
    assert (first.status, first.header("Location")) == (302, "/redirect/0")
    assert len(server.recorder.requests) == 1


async def test_a_redirect_loop_is_reported_with_the_url_redacted(
    server: RecordingServer, engine: str
) -> None:
    url = server.url("/loop").replace("http://", "http://alice:pa55word@")
    with pytest.raises(RedirectError) as raised:
        await _follow(server, engine, url, 5)
    assert str(raised.value) == (
        f"redirect loop back to http://[redacted]@127.0.0.1:{server.port}/loop"
    )
    assert len(server.recorder.requests) == 1


@pytest.mark.parametrize(("code", "method", "body"), [(302, "GET", ""), (307, "POST", "a=1")])
async def test_a_post_redirected(
    server: RecordingServer, engine: str, code: int, method: str, body: str
) -> None:
    url = server.url(f"/redirect-to?code={code}&url=/echo")
    final = await _follow(server, engine, url, 1, method="POST", body=b"a=1")
    echoed = orjson.loads(final.body)
    assert (echoed["method"], echoed["body"]) == (method, body)
    assert [seen.method for seen in server.recorder.requests] == ["POST", method]


async def test_a_loop_back_to_a_later_hop_is_reported_as_a_loop(
    server: RecordingServer, engine: str
) -> None:
    # /redirect-to sends to /loop, which redirects to itself: the loop closes on the
    # second hop, not on the URL the run started with.
    with pytest.raises(RedirectError) as raised:
        await _follow(server, engine, server.url("/redirect-to?url=/loop"), 5)
    assert str(raised.value) == f"redirect loop back to http://127.0.0.1:{server.port}/loop"
    assert [seen.path for seen in server.recorder.requests] == ["/redirect-to", "/loop"]


async def test_following_starts_at_a_response_already_received(
    server: RecordingServer, engine: str
) -> None:
    start = server.url("/start")
    first = Response(302, start, (("Location", "/redirect/1"),), b"")
    async with open_transport(engine, make_settings()) as transport:
        final = await send_following(
            transport,
            Request.create(start),
            timeouts=Timeouts(total=10),
            max_body=1 << 20,
            max_redirects=3,
            first=first,
        )
    assert (final.status, final.url) == (200, server.url("/redirect/0"))
    # The start URL was not asked again: its answer was given.
    assert [seen.path for seen in server.recorder.requests] == ["/redirect/1", "/redirect/0"]
