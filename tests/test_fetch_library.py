"""The library API against a real local server: limits, retries, timeouts, redirects."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import orjson
import pytest

import asyncfetch
from asyncfetch import Fetcher, Request, RetryPolicy, Timeouts, fetch_all
from asyncfetch._api import make_settings
from asyncfetch.pipeline.executor import RequestExecutor
from asyncfetch.policy.limits import GcraRateMeter
from asyncfetch.transport.factory import open_transport

from .fake_clock import FakeClock
from .recording_server import RecordingServer

FAST_RETRY = RetryPolicy(retries=2, backoff_base=0.01, backoff_cap=0.05)


async def test_global_concurrency_is_reached_and_never_exceeded(
    server: RecordingServer, engine: str
) -> None:
    urls = [
        server.url("/gate/10", host=host) for host in ("127.0.0.1", "localhost") for _ in range(20)
    ]
    results = await fetch_all(urls, engine=engine, concurrency=10, per_host=8)
    assert all(result.ok for result in results)
    assert server.recorder.peak == 10


async def test_per_host_limit_is_reached_and_never_exceeded(
    server: RecordingServer, engine: str
) -> None:
    urls = [server.url("/gate/4") for _ in range(24)]
    results = await fetch_all(urls, engine=engine, concurrency=50, per_host=4)
    assert all(result.ok for result in results)
    assert server.recorder.peak_by_host["127.0.0.1"] == 4


async def test_global_rate_spaces_requests_out(server: RecordingServer, engine: str) -> None:
    """Each request waits for its turn at the meter: 11 requests at 50/s are 10 waits of
    20 ms, told to the meter's injected sleep (which moves a fake clock, no real time)."""
    clock = FakeClock()
    meter = GcraRateMeter(50, clock=clock, sleep=clock.sleep)
    settings = make_settings(concurrency=11, per_host=11)
    async with open_transport(engine, settings) as transport:
        executor = RequestExecutor(transport, settings, rate_limiter=meter)
        requests = [Request.create(server.url(f"/ok?n={n}")) for n in range(11)]
        results = await asyncio.gather(*(executor.execute(request) for request in requests))
        await executor.aclose()
    assert all(result.ok for result in results)
    assert len(server.recorder.requests) == 11
    assert clock.slept == pytest.approx([0.02] * 10)  # the first goes at once
    assert clock.now == pytest.approx(100.2)


async def test_results_come_back_in_input_order(server: RecordingServer, engine: str) -> None:
    urls = [server.url(f"/delay/{ms}") for ms in (120, 10, 60, 0)]
    results = await fetch_all(urls, engine=engine, concurrency=4, per_host=4)
    assert [result.url for result in results] == urls


async def test_get_is_retried_on_503_until_it_recovers(
    server: RecordingServer, engine: str
) -> None:
    async with Fetcher(engine=engine, retries=FAST_RETRY) as fetcher:
        result = await fetcher.fetch(server.url("/flaky/a/2/503"))
    assert (result.status, result.attempts, result.ok) == (200, 3, True)


async def test_post_is_not_retried_after_it_may_have_been_sent(
    server: RecordingServer, engine: str
) -> None:
    async with Fetcher(engine=engine, retries=FAST_RETRY) as fetcher:
        result = await fetcher.fetch(
            asyncfetch.Request.create(server.url("/flaky/b/2/503"), method="POST", body=b"x")
        )
    assert (result.status, result.attempts) == (503, 1)
    assert server.recorder.counters["b"] == 1


async def test_post_is_retried_when_the_user_opts_in(server: RecordingServer, engine: str) -> None:
    policy = RetryPolicy(retries=2, backoff_base=0.01, retry_non_idempotent=True)
    async with Fetcher(engine=engine, retries=policy) as fetcher:
        result = await fetcher.fetch({"url": server.url("/flaky/c/2/503"), "method": "POST"})
    assert (result.status, result.attempts) == (200, 3)


async def test_post_is_retried_when_it_never_reached_the_server(
    unused_port: int, engine: str
) -> None:
    async with Fetcher(engine=engine, retries=FAST_RETRY) as fetcher:
        result = await fetcher.fetch(
            {"url": f"http://127.0.0.1:{unused_port}/", "method": "POST", "body": "x"}
        )
    assert result.error is not None and result.error.kind == "connect"
    assert result.attempts == 3


async def test_client_errors_are_not_retried(server: RecordingServer, engine: str) -> None:
    async with Fetcher(engine=engine, retries=FAST_RETRY) as fetcher:
        result = await fetcher.fetch(server.url("/status/404"))
    assert (result.status, result.attempts, result.ok) == (404, 1, False)
    assert result.error is None


@pytest.mark.parametrize("value", ["1", "HTTP_DATE"])
async def test_retry_after_is_honoured(server: RecordingServer, value: str, engine: str) -> None:
    """The wait before the retry is the server's Retry-After, seen through an injected
    sleep (which does not sleep): no clock is read to check it."""
    if value == "HTTP_DATE":
        from datetime import UTC, datetime, timedelta
        from email.utils import format_datetime

        value = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
        value = value.replace(" ", "_")
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    settings = make_settings(retries=FAST_RETRY)
    async with open_transport(engine, settings) as transport:
        executor = RequestExecutor(transport, settings, sleep=record_wait)
        result = await executor.execute(Request.create(server.url(f"/retry-after/k/{value}")))
        await executor.aclose()
    assert (result.status, result.attempts) == (200, 2)
    assert server.recorder.hits("/retry-after/k/" + value) == 2
    if value == "1":
        assert waits == [1.0]  # not the 0.01 s backoff: the server asked for one second
    else:
        # An HTTP-date is a whole second from now; the test may run up to 5 s late.
        assert len(waits) == 1 and 55 < waits[0] <= 60


async def test_retry_after_beyond_the_cap_gives_up(server: RecordingServer, engine: str) -> None:
    policy = RetryPolicy(retries=2, backoff_base=0.01, retry_after_cap=5)
    async with Fetcher(engine=engine, retries=policy) as fetcher:
        result = await fetcher.fetch(server.url("/retry-after/k/86400"))
    assert (result.status, result.attempts) == (429, 1)


async def test_a_handler_that_never_answers_times_out(
    server: RecordingServer, engine: str
) -> None:
    async with Fetcher(engine=engine, timeouts=Timeouts(total=0.3), retries=FAST_RETRY) as fetcher:
        result = await fetcher.fetch(server.url("/never"))
    assert result.error is not None and result.error.kind == "timeout"
    assert result.attempts == 3
    assert server.recorder.hits("/never") == 3


async def test_read_timeout_applies_to_each_read(server: RecordingServer, engine: str) -> None:
    timeouts = Timeouts(total=30, read=0.2)
    async with Fetcher(engine=engine, timeouts=timeouts, retries=0) as fetcher:
        result = await fetcher.fetch(server.url("/never"))
    assert result.error is not None and result.error.kind == "timeout"


async def test_redirects_are_followed_and_recorded(server: RecordingServer, engine: str) -> None:
    async with Fetcher(engine=engine) as fetcher:
        result = await fetcher.fetch(server.url("/redirect/3"))
    assert result.status == 200
    assert result.final_url == server.url("/redirect/0")


async def test_redirect_limit(server: RecordingServer, engine: str) -> None:
    async with Fetcher(engine=engine, max_redirects=2) as fetcher:
        too_many = await fetcher.fetch(server.url("/redirect/3"))
    async with Fetcher(engine=engine, max_redirects=0) as fetcher:
        not_followed = await fetcher.fetch(server.url("/redirect/3"))
    assert too_many.error is not None and too_many.error.kind == "redirect"
    assert too_many.attempts == 1
    assert not_followed.status == 302 and not_followed.error is None


async def test_redirect_loop_and_unsafe_targets_are_refused(
    server: RecordingServer, engine: str
) -> None:
    async with Fetcher(engine=engine) as fetcher:
        loop = await fetcher.fetch(server.url("/loop"))
        to_file = await fetcher.fetch(server.url("/redirect-to?url=file:///etc/passwd"))
    assert loop.error is not None and loop.error.kind == "redirect"
    assert to_file.error is not None and to_file.error.kind == "redirect"
    assert "file" in to_file.error.message


async def test_authorization_is_not_sent_to_another_host(
    server: RecordingServer, engine: str
) -> None:
    other_host = server.url("/echo", host="localhost")
    same_host = server.url("/echo")
    headers = {"Authorization": "Bearer s3cret-token"}
    async with Fetcher(engine=engine, headers=headers) as fetcher:
        cross = await fetcher.fetch(server.url(f"/redirect-to?url={other_host}"))
        same = await fetcher.fetch(server.url(f"/redirect-to?url={same_host}"))
    echoed = [seen for seen in server.recorder.requests if seen.path == "/echo"]
    assert cross.status == same.status == 200
    assert "Authorization" not in echoed[0].headers
    assert echoed[1].headers["Authorization"] == "Bearer s3cret-token"


async def test_a_body_over_the_limit_is_too_large(server: RecordingServer, engine: str) -> None:
    body = asyncfetch.BodyPolicy(max_body=1000)
    async with Fetcher(engine=engine, body=body, retries=FAST_RETRY) as fetcher:
        small = await fetcher.fetch(server.url("/bytes/1000"))
        large = await fetcher.fetch(server.url("/bytes/1001"))
    assert small.ok and small.bytes == 1000
    assert large.error is not None and large.error.kind == "too_large"
    assert large.attempts == 1


async def test_secrets_never_reach_the_record(server: RecordingServer, engine: str) -> None:
    """The URL's password and a Set-Cookie the server sends back (with its headers kept
    in the record) are replaced; the server did receive them, so there was something to
    hide."""
    body = asyncfetch.BodyPolicy(include_headers=True, mode="text")
    url = server.url("/set-cookie").replace("http://", "http://alice:pa55word@")
    async with Fetcher(
        engine=engine, headers={"Cookie": "session=abcdef123"}, body=body
    ) as fetcher:
        result = await fetcher.fetch(url)
    seen = server.recorder.requests[0].headers
    assert seen["Cookie"] == "session=abcdef123"
    assert seen["Authorization"] == "Basic YWxpY2U6cGE1NXdvcmQ="  # alice:pa55word
    record = result.to_record()
    assert result.ok
    assert record["url"] == f"http://[redacted]@127.0.0.1:{server.port}/set-cookie"
    assert record["headers"]["set-cookie"] == "[redacted]"  # record names are lower-case
    assert record["body"] == "cookie set"
    text = orjson.dumps(record).decode()
    assert "pa55word" not in text and "abcdef123" not in text and "YWxpY2U6" not in text


async def test_body_policies(server: RecordingServer, engine: str) -> None:
    async with Fetcher(engine=engine, body="auto") as fetcher:
        text = await fetcher.fetch(server.url("/ok"))
        binary = await fetcher.fetch(server.url("/binary"))
    assert text.body is not None and (text.body.key, text.body.value) == ("body", "ok")
    assert binary.body is not None and binary.body.key == "body_b64"


async def test_invalid_input_is_a_record_not_an_exception(engine: str) -> None:
    async with Fetcher(engine=engine) as fetcher:
        result = await fetcher.fetch("javascript:alert(1)")
    assert result.error is not None and result.error.kind == "invalid_input"


async def test_stream_reads_input_lazily(server: RecordingServer, engine: str) -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        for n in itertools.count():
            pulled += 1
            yield server.url(f"/ok?n={n}")

    async with Fetcher(engine=engine, concurrency=4, per_host=4) as fetcher:
        seen = 0
        async for result in fetcher.stream(endless()):
            assert result.ok
            seen += 1
            if seen == 20:
                break
    # Bounded read-ahead: the queue (2 × concurrency), the workers and the writer's hand.
    assert pulled < 20 + 4 * 6


async def test_stream_yields_one_result_per_input(server: RecordingServer, engine: str) -> None:
    urls = [server.url(f"/delay/{n % 5}") for n in range(300)] + ["not a url"]
    async with Fetcher(engine=engine, concurrency=32, per_host=32) as fetcher:
        results = [result async for result in fetcher.stream(urls)]
    assert len(results) == 301
    assert sum(result.ok for result in results) == 300
    assert fetcher.last_stats is not None and fetcher.last_stats.done == 301


def test_run_works_from_synchronous_code() -> None:
    results = asyncfetch.run(["ftp://example.invalid/"])
    assert results[0].error is not None and results[0].error.kind == "invalid_input"


async def test_a_busy_host_does_not_block_other_hosts(
    server: RecordingServer, engine: str
) -> None:
    # Input grouped by host, as lists often are: 20 slow requests to one host, then 10 to
    # another. The second host must not wait behind the first one's per-host limit.
    slow = [server.url(f"/delay/300?n={n}") for n in range(20)]
    other = [server.url(f"/ok?n={n}", host="localhost") for n in range(10)]
    async with Fetcher(engine=engine, concurrency=10, per_host=2) as fetcher:
        results = [result async for result in fetcher.stream(slow + other)]
    assert all(result.ok for result in results)
    paths = [seen.path for seen in server.recorder.requests]
    last_other = max(index for index, path in enumerate(paths) if path == "/ok")
    assert last_other < 15, paths
    assert server.recorder.peak_by_host["127.0.0.1"] == 2
