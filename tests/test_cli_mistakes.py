"""A corpus of the mistakes a new user makes, run as the user runs them.

Each row: the command, the exit code, a phrase of the one-line message, no traceback,
and (for a setting that is checked before the first request) that the server saw no
request and no output file was created. Unwritable paths are made for real: the suite
runs as root, so the row runs as nobody (``setpriv``), in a directory nobody may not
write to.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from .cli_helpers import Completed, cli_env, read_jsonl, run_cli
from .recording_server import RecordingServer

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def flat(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Files:
    """A directory every user can read, with the inputs the rows refer to."""

    root: Path
    urls: Path
    not_a_cert: Path
    binary: Path
    empty: Path
    comments_only: Path
    locked: Path  # owned by root, mode 0755: nobody cannot create anything in it
    shared: Path  # mode 0777: nobody may write its output here
    client_cert: Path  # a client certificate, its key in client_key
    client_key: Path
    other_key: Path  # a key of another certificate

    def path(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture
def files(server: RecordingServer) -> Iterator[Files]:
    root = Path(tempfile.mkdtemp(prefix="asyncfetch-mistakes-"))
    try:
        root.chmod(0o755)
        urls = root / "urls.txt"
        urls.write_text("".join(server.url(f"/ok?n={n}") + "\n" for n in range(5)))
        binary = root / "binary.bin"
        binary.write_bytes(bytes(range(256)) * 16)  # NULs and control bytes, as a binary
        empty = root / "empty.txt"
        empty.write_bytes(b"")
        comments = root / "comments.txt"
        comments.write_text("# nothing to fetch yet\n\n")
        locked = root / "locked"
        locked.mkdir(mode=0o755)
        shared = root / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        client_cert, client_key, other_key = _client_files(root)
        for made in (urls, binary, empty, comments, client_cert, client_key, other_key):
            made.chmod(0o644)
        yield Files(
            root,
            urls,
            urls,
            binary,
            empty,
            comments,
            locked,
            shared,
            client_cert,
            client_key,
            other_key,
        )
    finally:
        shutil.rmtree(root)


def _client_files(root: Path) -> tuple[Path, Path, Path]:
    ca = trustme.CA()
    mine, other = ca.issue_cert("client.example"), ca.issue_cert("other.example")
    paths = root / "client.pem", root / "client.key", root / "other.key"
    mine.cert_chain_pems[0].write_to_path(str(paths[0]))
    mine.private_key_pem.write_to_path(str(paths[1]))
    other.private_key_pem.write_to_path(str(paths[2]))
    return paths


@dataclass
class Mistake:
    name: str
    args: Callable[[Files], list[str]]
    code: int
    phrase: str
    as_nobody: bool = False
    stdin: bytes | None = None
    # Paths (relative to the files' root) that must not exist afterwards.
    not_created: tuple[str, ...] = ()
    sends: bool = False  # whether requests may reach the server
    # click's own usage errors come with its usage lines; ours are one line.
    one_line: bool = True


MISTAKES = [
    Mistake(
        "save-dir not writable",
        lambda f: [str(f.urls), "-o", f.path("shared/o.jsonl"), "--save-dir", f.path("locked/b")],
        3,
        "cannot save bodies in",
        as_nobody=True,
        not_created=("shared/o.jsonl", "locked/b"),
    ),
    Mistake(
        "save-dir not writable, aiohttp engine",
        lambda f: [str(f.urls), "--engine", "aiohttp", "--save-dir", f.path("locked")],
        3,
        "Permission denied",
        as_nobody=True,
    ),
    Mistake(
        "output not writable",
        lambda f: [str(f.urls), "-o", f.path("locked/o.jsonl")],
        3,
        "Permission denied",
        as_nobody=True,
        not_created=("locked/o.jsonl",),
    ),
    Mistake(
        "cacert is not a certificate (fast)",
        lambda f: [str(f.urls), "--cacert", str(f.not_a_cert), "--engine", "fast"],
        2,
        "is not a PEM file of CA certificates",
    ),
    Mistake(
        "cacert is not a certificate (aiohttp)",
        lambda f: [str(f.urls), "--cacert", str(f.not_a_cert), "--engine", "aiohttp"],
        2,
        "urls.txt is not a PEM file of CA certificates",
    ),
    *(
        Mistake(
            f"client cert with another certificate's key ({engine})",
            lambda f, engine=engine: [
                str(f.urls),
                *("--cert", str(f.client_cert), "--key", str(f.other_key)),
                *("--engine", engine),
            ],
            2,
            "other.key: key values mismatch",
        )
        for engine in ("fast", "aiohttp")
    ),
    Mistake(
        "client cert file without its key",
        lambda f: [str(f.urls), "--cert", str(f.client_cert)],
        2,
        "client.pem: no PEM certificate or private key where one was expected",
    ),
    Mistake(
        "client cert that is not a certificate",
        lambda f: [str(f.urls), "--cert", str(f.not_a_cert), "--key", str(f.client_key)],
        2,
        "urls.txt with key",
    ),
    Mistake(
        "--http2 on the aiohttp engine",
        lambda f: [str(f.urls), "--http2", "--engine", "aiohttp"],
        2,
        "--http2 needs the fast engine",
    ),
    Mistake(
        "key without cert",
        lambda f: [str(f.urls), "--key", str(f.client_key)],
        2,
        "key needs cert",
    ),
    Mistake(
        "unknown output extension",
        lambda f: [str(f.urls), "-o", f.path("out.parquet")],
        2,
        "or say which with --output-format",
        not_created=("out.parquet",),
    ),
    Mistake(
        "output without an extension: JSONL, as documented",
        lambda f: [str(f.urls), "-o", f.path("shared/out")],
        0,
        "shared/out (jsonl)",
        sends=True,
    ),
    Mistake(
        "binary input file",
        lambda f: [str(f.binary), "-o", f.path("out.jsonl")],
        2,
        "binary.bin looks like a binary file",
        not_created=("out.jsonl",),
    ),
    Mistake(
        "binary input on stdin",
        lambda f: ["-"],
        2,
        "stdin looks like a binary file",
        stdin=bytes(range(256)) * 16,
    ),
    Mistake("empty input", lambda f: [str(f.empty)], 0, "the input held no requests"),
    Mistake("only comments", lambda f: [str(f.comments_only)], 0, "the input held no requests"),
    Mistake(
        "output is /dev/full",
        lambda f: [str(f.urls), "-o", "/dev/full"],
        3,
        "/dev/full: No space left on device",
        sends=True,
    ),
    Mistake(
        "retry-on is not a status list",
        lambda f: [str(f.urls), "--retry-on", "5xx"],
        2,
        "'5xx' is not a status or a range",
    ),
    Mistake(
        "retry-on range upside down",
        lambda f: [str(f.urls), "--retry-on", "599-500"],
        2,
        "must be statuses between 100 and 999",
    ),
    Mistake(
        "user agent with a line break",
        lambda f: [str(f.urls), "-A", "bot\r\nX-Evil: 1"],
        2,
        "user_agent must be one non-empty line",
    ),
    Mistake(
        "misspelled option",
        lambda f: [str(f.urls), "--concurency", "5"],
        2,
        "Did you mean one of: '--concurrency'",
        one_line=False,
    ),
    Mistake("missing input", lambda f: [f.path("nope.txt")], 2, "input file not found"),
    Mistake(
        "only something else",
        lambda f: [str(f.urls), "--only", "errors"],
        2,
        "Invalid value for '--only'",
        one_line=False,
    ),
    Mistake(
        "resume to stdout",
        lambda f: [str(f.urls), "--resume"],
        2,
        "--resume needs an output file",
    ),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda mistake: mistake.name)
async def test_a_mistake_gets_one_clear_line(
    mistake: Mistake, files: Files, server: RecordingServer
) -> None:
    args = ["fetch", *mistake.args(files), "--no-progress"]
    done = await run_as(args, as_nobody=mistake.as_nobody, stdin=mistake.stdin)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.code == mistake.code, done.stderr
    assert mistake.phrase in flat(done.stderr), done.stderr
    if mistake.code != 0 and mistake.one_line:
        message = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(message) == 1, done.stderr  # one line, not a page
    if not mistake.sends:
        assert server.recorder.requests == []  # refused before the first request
    for name in mistake.not_created:
        assert not (files.root / name).exists(), name


async def run_as(args: list[str], *, as_nobody: bool, stdin: bytes | None) -> Completed:
    if not as_nobody:
        return await run_cli(*args, stdin=stdin)
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed; `make test` installs it")
    return await run_cli(*args, stdin=stdin, prefix=NOBODY)


def test_the_locked_directory_really_refuses_nobody(files: Files) -> None:
    # The rows above rely on it: not faked, the kernel says no.
    info = files.locked.stat()
    assert info.st_uid == 0
    assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


# --- a closed pipe, and a full disk -------------------------------------------------------


async def test_a_closed_stdout_pipe_ends_the_run_quietly(
    server: RecordingServer, tmp_path: Path
) -> None:
    # Much more than a pipe's 64 KiB of records, so that writes go on after head exits.
    source = tmp_path / "urls.txt"
    source.write_text("".join(server.url(f"/ok?n={n}") + "\n" for n in range(3000)))
    read_end, write_end = os.pipe()
    import sys

    fetch = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncfetch",
        "fetch",
        str(source),
        "--body",
        "none",
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    head = await asyncio.create_subprocess_exec(
        "head", "-2", stdin=read_end, stdout=asyncio.subprocess.PIPE
    )
    os.close(read_end)
    os.close(write_end)
    first_two, _ = await asyncio.wait_for(head.communicate(), 60)
    _, stderr = await asyncio.wait_for(fetch.communicate(), 60)
    assert len(first_two.splitlines()) == 2
    assert fetch.returncode == 141  # 128 + SIGPIPE, as a shell reports cat or grep
    assert stderr.decode() == ""  # no "fatal", no traceback, no summary


# --- TLS certificate failures are not retried ----------------------------------------------


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hi")


@pytest.fixture
async def untrusted_https() -> AsyncIterator[str]:
    ca = trustme.CA()  # a CA this machine has never heard of
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    app = web.Application()
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_a_certificate_failure_is_not_retried(
    untrusted_https: str, engine: str, tmp_path: Path
) -> None:
    source = tmp_path / "https.txt"
    source.write_text(untrusted_https + "\n")
    out = tmp_path / "out.jsonl"
    done = await run_cli(
        "fetch", str(source), "-o", str(out), "--engine", engine, "--retries", "3", "-q"
    )
    assert done.code == 0, done.stderr
    [record] = read_jsonl(out)
    assert record["error"]["kind"] == "tls"
    assert "certificate" in record["error"]["message"].lower()
    assert record["attempts"] == 1  # retrying cannot make the certificate valid


async def test_a_body_that_cannot_be_saved_mid_run_is_fatal_not_internal(
    server: RecordingServer, tmp_path: Path
) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    # The directory is writable (the start-up check passes), but where this host's
    # bodies go there is a file: saving fails while the run goes.
    (saved / f"127.0.0.1_{server.port}").write_text("in the way")
    source = tmp_path / "urls.txt"
    source.write_text(server.url("/ok") + "\n")
    out = tmp_path / "out.jsonl"
    done = await run_cli("fetch", str(source), "-o", str(out), "--save-dir", str(saved))
    assert done.code == 3, done.stderr
    assert "fatal: cannot save body to" in flat(done.stderr)
    assert "Traceback" not in done.stderr
    assert all(record["error"] is None for record in read_jsonl(out))  # no `internal`
