"""The fast engine's routing: a URL gives the same route whatever URL came before it.

``route`` remembers the origin part of the last URL it parsed; a URL that merely starts
with the same text (``http://a.example`` before ``http://a.example.evil``, a port, a
userinfo) must not inherit that origin.
"""

from __future__ import annotations

import pytest

from asyncfetch._errors import ProtocolError
from asyncfetch.transport.fast.transport import Route, route

URLS = [
    "http://a.example/x",
    "http://a.example",
    "http://a.example?q=1",
    "http://a.example#frag",
    "http://a.example/path?q=1#frag",
    "http://a.example.evil/x",
    "http://a.example:8080/x",
    "http://a.example@b.example/x",
    "http://user:pw@a.example/x",
    "http://user@a.example/x",
    "https://a.example/x",
    "HTTP://A.example/x",
    "http://a.exampl/x",
    "http://[::1]:8080/x",
    "http://[::1]/x",
    "http://bücher.example/ä b",
    "http://127.0.0.1:5000",
]

NEUTRAL = "http://neutral.invalid/"


def described(where: Route) -> tuple[object, ...]:
    origin = where.origin
    return (
        origin.scheme,
        origin.host,
        origin.port,
        origin.host_header,
        origin.key,
        origin.limit_key,
        where.target,
        where.authorization,
    )


def cold(url: str) -> tuple[object, ...]:
    """The route of ``url`` right after a URL of an unrelated origin."""
    route(NEUTRAL)
    return described(route(url))


@pytest.mark.parametrize("before", URLS)
def test_a_route_does_not_depend_on_the_url_before(before: str) -> None:
    expected = {url: cold(url) for url in URLS}
    for url in URLS:
        route(before)
        assert described(route(url)) == expected[url], (before, url)


def test_cold_routes_are_what_the_url_says() -> None:
    assert cold("http://a.example.evil/x")[1] == "a.example.evil"
    assert cold("http://a.example@b.example/x")[1] == "b.example"
    assert cold("http://a.example:8080/x")[2:4] == (8080, "a.example:8080")
    assert cold("http://a.example?q=1")[6] == "/?q=1"
    assert cold("http://a.example#frag")[6] == "/"
    assert cold("http://user:pw@a.example/x")[7] == "Basic dXNlcjpwdw=="
    assert cold("http://bücher.example/ä b")[1:2] == ("xn--bcher-kva.example",)
    assert cold("http://bücher.example/ä b")[6] == "/%C3%A4%20b"


def test_an_unsendable_url_after_a_good_one_is_still_refused() -> None:
    route("http://a.example/x")
    with pytest.raises(ProtocolError):
        route("http://a.example:99999/x")
    with pytest.raises(ProtocolError):
        route("ftp://a.example/x")
    with pytest.raises(ProtocolError):
        route("a.example/x")
    assert described(route("http://a.example/y"))[6] == "/y"
