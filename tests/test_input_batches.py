"""The batch form of the input side: the same requests as the item form, in bounded lists.

open_source_batches, drop_repeat_batches and skip_done_batches must give exactly what
their one-item-at-a-time forms give (ids, line numbers, InvalidInput messages, duplicate
counts), and the short paths behind them (known_valid_url, UrlRequests, request_ids, the
RecentIds keys) must agree with the full definitions they stand in for.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncfetch._errors import ConfigError, InputError
from asyncfetch._models import InvalidInput, Request, request_id, request_ids
from asyncfetch._settings import RequestDefaults
from asyncfetch.cli.job import FetchJob
from asyncfetch.cli.run import chain_input_batches, chain_inputs
from asyncfetch.pipeline.stats import StatsCollector
from asyncfetch.resume.filters import drop_repeat_batches, drop_repeats, skip_done_batches
from asyncfetch.resume.journal import Journal
from asyncfetch.resume.recent_ids import RecentIds
from asyncfetch.sources import open_source, open_source_batches, validate_url
from asyncfetch.sources import validate as validate_module
from asyncfetch.sources.reader import CHUNK_SIZE, LineBatch, RawLine
from asyncfetch.sources.spec import UrlRequests, url_request
from asyncfetch.sources.text import text_batch, text_line
from asyncfetch.sources.validate import known_valid_url

Item = Request | InvalidInput
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULTS = RequestDefaults(method="post", headers=(("X-Default", "1"),), data=b"payload")


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


async def items_of(path: Path, **options: object) -> list[Item]:
    return [item async for item in open_source(path, **options)]  # type: ignore[arg-type]


async def batches_of(path: Path, **options: object) -> list[list[Item]]:
    return [batch async for batch in open_source_batches(path, **options)]  # type: ignore[arg-type]


def url_lines(count: int) -> str:
    """URL lines over a few dozen hosts, with comments, blanks and bad lines among them."""
    lines = []
    for number in range(count):
        if number % 97 == 0:
            lines.append("  # a comment")
        elif number % 89 == 0:
            lines.append("")
        elif number % 83 == 0:
            lines.append(f"ftp://h{number % 7}.example/{number}")
        elif number % 79 == 0:
            lines.append(f"http://h{number % 7}.example/a b{number}")
        else:
            scheme = "https" if number % 3 else "http"
            lines.append(f"{scheme}://h{number % 41}.example:80{number % 2}/p?{number}")
    return "\n".join(lines) + "\n"


def jsonl_lines(count: int) -> bytes:
    specs: list[bytes] = []
    for number in range(count):
        spec: dict[str, object] = {"url": f"http://h{number % 5}.example/{number % 700}"}
        if number % 4 == 1:
            spec["json"] = {"n": number}
        if number % 9 == 2:
            spec["method"] = "no such method"
        if number % 11 == 3:
            spec["id"] = f"given-{number % 50}"
        specs.append(orjson.dumps(spec))
    specs.insert(5, b"{not json")
    return b"\n".join(specs) + b"\n"


def csv_lines(count: int) -> str:
    rows = ["# exported", "url,method,id,note"]
    for number in range(count):
        rows.append(
            f"http://h{number % 3}.example/{number},{'' if number % 5 else 'POST'},,n{number}"
        )
    rows.insert(10, '"http://h.example/multi\nline",GET,,spans two lines')
    rows.insert(20, "a,b,c,d,e,f")
    return "\n".join(rows) + "\n"


# --- open_source_batches ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("urls.txt", b"\xef\xbb\xbf" + url_lines(20_000).replace("\n", "\r\n", 300).encode()),
        ("specs.jsonl", jsonl_lines(8_000)),
        ("table.csv", csv_lines(8_000)),
        ("sniffed", url_lines(3_000)),
    ],
)
async def test_batches_hold_exactly_the_items_of_open_source(
    tmp_path: Path, name: str, content: str | bytes
) -> None:
    path = write(tmp_path, name, content)
    items = await items_of(path, defaults=DEFAULTS)
    batches = await batches_of(path, defaults=DEFAULTS)
    assert [item for batch in batches for item in batch] == items
    assert all(batch for batch in batches)
    assert len(batches) > 1 or path.stat().st_size <= CHUNK_SIZE
    # Nothing is dropped or repeated: every line becomes one item or is skipped.
    lines = [item.line for item in items]
    assert lines == sorted(set(lines))


async def test_a_batch_is_at_most_the_lines_of_one_read(tmp_path: Path) -> None:
    path = write(tmp_path, "urls.txt", "".join(f"http://h.example/{i}\n" for i in range(50_000)))
    batches = await batches_of(path)
    longest = max(len(batch) for batch in batches)
    assert sum(len(batch) for batch in batches) == 50_000
    shortest_line = len("http://h.example/0\n")
    assert longest <= CHUNK_SIZE // shortest_line + 1
    for batch in batches:  # consecutive lines, in order
        assert [item.line for item in batch] == list(range(batch[0].line, batch[-1].line + 1))


async def test_batches_keep_bad_lines_as_invalid_input(tmp_path: Path) -> None:
    long_url = "http://h.example/" + "x" * 9000
    content = b"\n".join(
        [b"http://h.example/1", b"\xff\xfe", b"mailto:x@y", long_url.encode(), b"#\xff", b" "]
    )
    path = write(tmp_path, "bad.txt", content)
    (batch,) = await batches_of(path)
    assert [(item.line, type(item).__name__) for item in batch] == [
        (1, "Request"),
        (2, "InvalidInput"),
        (3, "InvalidInput"),
        (4, "InvalidInput"),
    ]
    assert isinstance(batch[1], InvalidInput) and "not valid UTF-8" in batch[1].message
    assert isinstance(batch[3], InvalidInput) and "too long" in batch[3].message


async def test_batches_raise_what_open_source_raises_and_when(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        open_source_batches(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="directory"):
        open_source_batches(tmp_path)
    with pytest.raises(ConfigError, match="unknown input format"):
        open_source_batches(write(tmp_path, "a.txt", ""), input_format="xml")
    # A header without a url column fails the iteration, after the bad records before it.
    path = write(tmp_path, "t.csv", b"\xff\n# c\na,b\nhttp://h/,1\n")
    items = open_source(path)
    assert isinstance(await items.__anext__(), InvalidInput)
    with pytest.raises(InputError, match="url"):
        await items.__anext__()
    batches = open_source_batches(path)
    assert [item.line for item in await batches.__anext__()] == [1]
    with pytest.raises(InputError, match="url"):
        await batches.__anext__()


def _offset(path: Path) -> int | None:
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                return int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("pos:")[1].split()[0])
        except OSError:
            continue
    return None


@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs Linux /proc")
async def test_batches_read_lazily_and_close_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", "".join(f"http://h.example/{i}\n" for i in range(200_000)))
    batches = open_source_batches(path)
    first = await batches.__anext__()
    offset = _offset(path)
    assert first[0].line == 1 and offset is not None and offset <= CHUNK_SIZE
    await batches.aclose()
    assert _offset(path) is None
    items = open_source(path)
    await items.__anext__()
    await items.aclose()
    assert _offset(path) is None


# --- the short paths agree with the full definitions --------------------------------------

SCHEMES = ["http://", "https://", "HTTP://", "http:/", "", "ftp://"]
HOSTS = ["h.example", "h.example:8080", "[::1]:81", "1.2.3.4", "u@h.example", "h.example:0"]
HOSTS += ["a..b", "h.example?q", "h.example#f", "h.example@x", "h.example:99999", ""]
PARTS = ["/", "/a b", "?q=1", "#f", "/\x7f", "/\x85", "/é", "", "?x/y", "/%20", "/\t", "/\x1c"]
hosts = st.sampled_from(HOSTS)
url_parts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(PARTS)
urlish = st.builds(
    "{}{}{}".format,
    st.sampled_from(["http://", "https://", "HTTP://", "http:/", "", "ftp://"]),
    hosts | st.text(max_size=10),
    url_parts,
)
line_data = st.one_of(
    urlish.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=30),
    st.sampled_from([b"", b"  # c", b"\x1c#x", b"\xc2\xa0http://h.example/", b"\xff"]),
)


@FAST
@given(lines=st.lists(line_data, max_size=40), warm=st.booleans())
def test_text_batch_is_text_line_for_each_line(lines: list[bytes], warm: bool) -> None:
    if warm:  # hosts already known valid take the short path
        for host in ("h.example", "h.example:8080", "[::1]:81", "1.2.3.4"):
            validate_url(f"http://{host}/")
    batch = LineBatch(3, lines, frozenset({4}) if len(lines) > 1 else frozenset())
    expected = [
        text_line(RawLine(number, data, number in batch.cut), DEFAULTS)
        for number, data in enumerate(lines, 3)
    ]
    assert text_batch(batch, UrlRequests(DEFAULTS)) == [
        item for item in expected if item is not None
    ]


def _verdict(url: str) -> str:
    try:
        return "ok:" + validate_url(url)
    except InputError as exc:
        return "error:" + exc.message


@FAST
@given(
    scheme=st.sampled_from(["http://", "https://", "HTTP://", "http:/", "", "ftp://"]),
    host=hosts | st.text(max_size=10),
    rest=url_parts,
)
def test_known_valid_urls_are_valid_and_the_verdict_does_not_depend_on_the_cache(
    scheme: str, host: str, rest: str
) -> None:
    url = scheme + host + rest
    validate_module._VALID_HOST_PORTS.clear()
    full_check = _verdict(url)  # no host is known: the whole URL is parsed
    _verdict(f"http://{host}/")  # remembers the host if it is valid
    if known_valid_url(url):
        assert full_check == "ok:" + url
    assert _verdict(url) == full_check
    assert url_request(url, 9, url, DEFAULTS) == UrlRequests(DEFAULTS)(url, 9, url)


def test_known_valid_urls_on_every_mix_of_scheme_host_and_path() -> None:
    urls = [scheme + host + part for scheme in SCHEMES for host in HOSTS for part in PARTS]
    full_checks = []
    for url in urls:  # with no host known, each URL is parsed whole
        validate_module._VALID_HOST_PORTS.clear()
        full_checks.append(_verdict(url))
    for host in HOSTS:
        _verdict(f"http://{host}/")
    assert [_verdict(url) for url in urls] == full_checks  # now many take the short path
    known = [url for url in urls if known_valid_url(url)]
    assert len(known) > 20
    assert all(full_checks[urls.index(url)] == "ok:" + url for url in known)


def _reference_id(method: str, url: str, body: bytes | None) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b" ", url.encode("utf-8", "surrogateescape")):
        digest.update(part)
    digest.update(b"\n")
    digest.update(body or b"")
    return digest.hexdigest()[:24]


@FAST
@given(
    method=st.sampled_from(["GET", "post", "Delete"]),
    url=st.text(st.characters(codec="utf-8")) | st.just("http://h/\udcff"),
    body=st.none() | st.binary(max_size=20),
)
def test_request_ids_are_the_sha256_of_method_url_and_body(
    method: str, url: str, body: bytes | None
) -> None:
    expected = _reference_id(method, url, body)
    assert request_id(method, url, body) == expected
    assert request_ids(method, body)(url) == expected
    created = Request.create(url, method=method, headers={"A": "1"}, body=body, line=4)
    assert (created.id, created.method, created.headers) == (
        expected,
        method.upper(),
        (("A", "1"),),
    )
    assert Request.create(url, headers=[("A", "1")], id="mine").headers == (("A", "1"),)


# --- the filters --------------------------------------------------------------------------


async def _batches(batches: list[list[Item]]) -> AsyncIterator[list[Item]]:
    for batch in batches:
        yield batch


async def _items(batches: list[list[Item]]) -> AsyncIterator[Item]:
    for batch in batches:
        for item in batch:
            yield item


def _requests(names: str, url_id: bool = False) -> list[Item]:
    return [
        Request.create(f"http://h/{name}", id=None if url_id else f"id-{name}") for name in names
    ]


@FAST
@given(
    names=st.lists(st.text("abcdefgh", min_size=1, max_size=2), max_size=60),
    size=st.integers(1, 7),
)
def test_recent_ids_new_items_is_add_for_each_item(names: list[str], size: int) -> None:
    items: list[Item] = [Request.create(f"http://h/{name}") for name in names]
    items += [Request.create("http://h/", id=name.upper()) for name in names]
    items.append(InvalidInput(line=1, message="bad", raw="x"))
    one_by_one, batched = RecentIds(capacity=size), RecentIds(capacity=size)
    expected = [item for item in items if one_by_one.add(item.id or item.record_id)]  # type: ignore[union-attr]
    assert batched.new_items(items[:25]) + batched.new_items(items[25:]) == expected


def test_recent_ids_tell_apart_ids_that_differ_only_in_case() -> None:
    derived = request_id("GET", "http://h/", None)
    lookalikes = [derived, derived.upper(), derived[:-1] + "g", derived + "0", "x" * 24]
    lookalikes.append(" ".join(derived[n : n + 2] for n in range(0, 16, 2)) + " ")
    recent = RecentIds()
    assert all(recent.add(request_id) for request_id in lookalikes)
    assert not any(recent.add(request_id) for request_id in lookalikes)
    batched = RecentIds()
    items: list[Item] = [Request.create("http://h/", id=request_id) for request_id in lookalikes]
    assert batched.new_items(items + items) == items


async def test_drop_repeat_batches_drops_what_drop_repeats_drops() -> None:
    batches = [_requests("abca"), _requests("bb"), _requests("dae", url_id=True)]
    batches.append(_requests("d", url_id=True))
    item_stats, batch_stats = StatsCollector(), StatsCollector()
    kept_items = [item async for item in drop_repeats(_items(batches), item_stats, capacity=3)]
    kept_batches = [
        batch async for batch in drop_repeat_batches(_batches(batches), batch_stats, capacity=3)
    ]
    assert [item for batch in kept_batches for item in batch] == kept_items
    # "d" pushes the first "a" out of the window of 3, so the second "a" is kept again;
    # "bb" and the last "d" are all repeats, and leave no batch behind.
    assert [len(batch) for batch in kept_batches] == [3, 3]
    assert batch_stats.duplicates == item_stats.duplicates == 4


async def test_the_filters_close_their_source_when_closed_early(tmp_path: Path) -> None:
    closed: list[str] = []

    async def source() -> AsyncIterator[list[Item]]:
        try:
            for number in range(10):
                yield _requests(str(number))
        finally:
            closed.append("source")

    filtered = drop_repeat_batches(source(), StatsCollector())
    await filtered.__anext__()
    await filtered.aclose()
    journal = await Journal.open(tmp_path / "out.jsonl.journal")
    try:
        await journal.start_run({})
        resumed = skip_done_batches(source(), journal, set(), StatsCollector())
        await resumed.__anext__()
        await resumed.aclose()
    finally:
        await journal.aclose()
    assert closed == ["source", "source"]


async def test_skip_done_batches_skips_finished_and_repeated_ids(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "out.jsonl.journal")
    try:
        await journal.start_run({})
        journal.run = 1
        await journal.commit([("id-o", True)], position=10)
        journal.run = 2
        in_flight = {"id-c"}
        stats = StatsCollector()
        batches = [_requests("ab"), _requests("a"), _requests("co")]
        batches.append([*_requests("d"), InvalidInput(line=9, message="bad", raw="x")])
        passed = [
            batch
            async for batch in skip_done_batches(_batches(batches), journal, in_flight, stats)
        ]
    finally:
        await journal.aclose()
    assert [[getattr(item, "id", "") for item in batch] for batch in passed] == [
        ["id-a", "id-b"],
        ["id-d", ""],
    ]
    assert (stats.skipped, stats.duplicates) == (1, 2)
    assert {"id-a", "id-b", "id-c", "id-d"} <= in_flight


# --- the CLI's chain of inputs ------------------------------------------------------------


def fetch_job(*inputs: Path) -> FetchJob:
    return FetchJob.from_options(
        {
            "inputs": tuple(str(path) for path in inputs),
            "concurrency": 4,
            "per_host": 2,
            "headers": (("X-Job", "1"),),
            "timeout": 10.0,
            "connect_timeout": 5.0,
            "read_timeout": 5.0,
            "retries": 0,
            "max_redirects": 5,
            "body_mode": "none",
            "max_body": 1024,
            "engine": "aiohttp",
            "progress": False,
            "quiet": True,
        }
    )


async def test_chain_input_batches_reads_every_input_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "a.txt", url_lines(3_000))
    second = write(tmp_path, "b.jsonl", jsonl_lines(500))
    job = fetch_job(first, second)
    batches = [batch async for batch in chain_input_batches(job)]
    expected = await items_of(first, defaults=job.request_defaults())
    expected += await items_of(second, defaults=job.request_defaults())
    assert [item for batch in batches for item in batch] == expected
    assert [item async for item in chain_inputs(job)] == expected
    assert [item for batch in [b async for b in chain_inputs(job).batches] for item in batch] == (
        expected
    )
