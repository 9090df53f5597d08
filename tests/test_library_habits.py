"""The library as a newcomer uses it: Result.text()/json(), help(Fetcher), and a
misspelled keyword that names the close matches."""

from __future__ import annotations

import base64
import inspect
import pydoc
from pathlib import Path

import pytest

import asyncfetch
from asyncfetch import BodyNotKept, BodyPolicy, ConfigError, Fetcher, fetch_all
from asyncfetch._api import make_settings

from .recording_server import RecordingServer


async def test_text_and_json_follow_the_body_policy(
    server: RecordingServer, engine: str, tmp_path: Path
) -> None:
    async with Fetcher(engine=engine) as fetcher:
        echoed = await fetcher.fetch(server.url("/echo"))
        plain = await fetcher.fetch(server.url("/ok"))
        binary = await fetcher.fetch(server.url("/binary"))
    assert echoed.json()["method"] == "GET"
    assert plain.text() == "ok"
    assert plain.content() == b"ok"
    assert binary.body is not None and binary.body.key == "body_b64"  # kept as base64
    assert binary.content() == bytes(range(256))
    with pytest.raises(ValueError, match="Expecting value"):
        plain.json()  # "ok" is not JSON: the usual ValueError


async def test_no_body_kept_is_a_clear_error(server: RecordingServer, unused_port: int) -> None:
    [kept_none, failed] = await fetch_all(
        [server.url("/ok"), f"http://127.0.0.1:{unused_port}/"],
        body="none",
        retries=0,
    )
    with pytest.raises(BodyNotKept, match="body policy was 'none'; use body='auto'"):
        kept_none.text()
    with pytest.raises(BodyNotKept, match=r"failed \(connect: "):
        failed.json()


async def test_text_decodes_with_the_charset_of_the_content_type() -> None:
    from asyncfetch._models import BodyField, Result, Timings

    latin = "café".encode("latin-1")
    result = Result(
        "id", 1, "GET", "http://x/", "http://x/", 200, None, 1, Timings(), len(latin), None,
        "application/octet-stream; charset=ISO-8859-1", "2026-01-01T00:00:00.000Z",
        body=BodyField("body_b64", base64.b64encode(latin).decode()),
    )  # fmt: skip
    assert result.text() == "café"


def test_help_lists_every_keyword_with_type_and_default() -> None:
    text = pydoc.render_doc(asyncfetch.Fetcher, renderer=pydoc.plaintext)
    for parameter in inspect.signature(make_settings).parameters.values():
        assert f"{parameter.name}: {parameter.annotation} = {parameter.default!r}" in text
    signature = inspect.signature(Fetcher)
    assert "per_host" in signature.parameters
    assert signature.parameters["per_host"].default == 8


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("concurency", "concurrency"), ("perhost", "per_host"), ("retrys", "retries")],
)
def test_a_misspelled_keyword_names_the_close_matches(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"did you mean {suggestion}[ ?]") as info:
        Fetcher(**{typo: 1})
    assert typo in str(info.value)


def test_retry_on_and_user_agent_are_library_keywords_too() -> None:
    settings = make_settings(retry_on="429,500-599", user_agent="mybot/1")
    assert settings.retry.statuses == frozenset({429, *range(500, 600)})
    assert settings.transport.user_agent == "mybot/1"
    assert make_settings(retry_on={404}).retry.statuses == frozenset({404})
    with pytest.raises(ConfigError, match="retry-on"):
        make_settings(retry_on="oops")


def test_a_cacert_that_is_not_a_certificate_is_refused_at_once(tmp_path: Path) -> None:
    bogus = tmp_path / "urls.txt"
    bogus.write_text("https://example.com/\n")
    with pytest.raises(ConfigError, match=r"urls\.txt is not a PEM file of CA certificates"):
        Fetcher(cacert=bogus)


def test_body_policy_save_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="save_names must be one of id, url"):
        BodyPolicy(save_names="path")
