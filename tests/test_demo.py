"""`asyncfetch demo`: the embedded server, the messages, the walkthrough and the CLI.

Concurrency is checked by what the demo server observed in flight, never by wall-clock
figures; the demo runs at a small --scale so the whole walkthrough takes about a second.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from asyncfetch._errors import ConfigError
from asyncfetch.demo import DemoReport, DemoServer, run_demo
from asyncfetch.demo.messages import default_language, messages

SCALE = 0.05
BULK = 200
CONCURRENCY = 50

KO_TITLES = (
    "1. 비동기 프로그래밍이란? — 동기 vs. 비동기",
    "2. async/await 기본 개념",
    "3. 여러 개의 작업 동시 실행 (asyncio.gather())",
    "4. aiohttp를 사용한 비동기 HTTP 요청",
    "5. 비동기 태스크 관리 (asyncio.create_task())",
    "6. 비동기 큐 (asyncio.Queue)",
)
EN_TITLES = (
    "1. What is asynchronous programming? — sync vs. async",
    "2. async/await basics",
    "3. Running several tasks at once (asyncio.gather())",
    "4. Asynchronous HTTP requests with aiohttp",
    "5. Managing tasks (asyncio.create_task())",
    "6. Asynchronous queue (asyncio.Queue)",
)


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, color_system=None, force_terminal=False), out


async def _demo(lang: str) -> tuple[DemoReport, str]:
    console, out = _console()
    report = await run_demo(
        lang=lang, scale=SCALE, bulk=BULK, console=console, concurrency=CONCURRENCY
    )
    return report, out.getvalue()


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end)]


def _in_order(text: str, *lines: str) -> bool:
    positions = [text.index(line) for line in lines]
    return positions == sorted(positions)


# --- messages -------------------------------------------------------------------------


def test_unknown_language_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ko, en"):
        messages("fr")


def test_both_catalogues_have_the_same_lines() -> None:
    assert messages("ko").catalogue.keys() == messages("en").catalogue.keys()


def test_korean_lines_are_the_tutorials() -> None:
    msg = messages("ko")
    assert msg("task_done", name=msg("task_name", n=1), elapsed=2).startswith("작업 1 완료!")
    assert msg("all_done", elapsed=4).startswith("모든 작업 완료!")
    assert msg("produced", item=0) == "데이터 0 생성"
    assert msg("consumed", item=0) == "데이터 0 처리 완료!"
    assert msg("main_running") == "메인 작업 실행 중..."


# --- server ---------------------------------------------------------------------------


async def test_server_endpoints() -> None:
    async with DemoServer(scale=SCALE) as server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/delay/1") as response:
            assert await response.json() == {"slept": 1.0, "scaled": SCALE}
        async with session.get(f"{server.url}/posts/2") as response:
            text = await response.text()
        assert text.startswith('{"userId": 1, "id": 2, "title": ')
        async with session.post(f"{server.url}/posts", json={"data": 7}) as response:
            assert response.status == 201
            assert await response.json() == {"data": 7, "id": 101}
        async with session.get(f"{server.url}/delay/soon") as response:
            assert response.status == 400
        async with session.get(f"{server.url}/bulk/9") as response:
            assert await response.json() == {"i": "9"}


async def test_server_counts_requests_in_flight() -> None:
    async with DemoServer(scale=SCALE) as server, aiohttp.ClientSession() as session:

        async def get(path: str) -> None:
            async with session.get(server.url + path) as response:
                response.raise_for_status()

        await get("/delay/0")
        assert server.peak_in_flight == 1
        server.reset_peak()
        await asyncio.gather(*(get("/delay/1") for _ in range(3)))
        assert server.peak_in_flight == 3
        assert server.in_flight == 0


async def test_server_url_needs_a_started_server() -> None:
    server = DemoServer()
    with pytest.raises(RuntimeError, match="async with"):
        _ = server.url
    await server.start()
    assert server.url.startswith("http://127.0.0.1:")
    await server.aclose()
    await server.aclose()  # closing twice is harmless


def test_server_rejects_a_non_positive_scale() -> None:
    with pytest.raises(ConfigError, match="scale"):
        DemoServer(scale=0)


# --- walkthrough ----------------------------------------------------------------------


async def test_demo_in_korean_walks_the_six_sections() -> None:
    report, text = await _demo("ko")
    positions = [text.index(title) for title in KO_TITLES]
    assert positions == sorted(positions)

    assert "모든 작업 완료! (총" in _between(text, KO_TITLES[0], KO_TITLES[1])
    gather = _between(text, KO_TITLES[2], KO_TITLES[3])
    assert _in_order(gather, "작업 3 완료!", "작업 1 완료!", "작업 2 완료!")
    posts = _between(text, KO_TITLES[3], KO_TITLES[4])
    for n in (1, 2, 3):
        assert f'응답 {n}: {{"userId": 1, "id": {n}, "title": ' in posts
    tasks = _between(text, KO_TITLES[4], KO_TITLES[5])
    assert _in_order(tasks, "메인 작업 실행 중...", "메인 작업 완료!", "백그라운드 작업 완료!")
    queue = text[text.index(KO_TITLES[5]) :]
    assert _in_order(queue, "데이터 0 생성", "데이터 4 생성", "데이터 4 처리 완료!")
    assert "컨슈머가 종료됨: 5개 처리" in queue
    assert "속도 향상:" in text
    assert report.gather_order == (3, 1, 2)
    assert report.queue_consumed == (0, 1, 2, 3, 4)


async def test_demo_section_one_runs_the_two_requests_at_once() -> None:
    report, text = await _demo("ko")
    # Observed by the server: one request at a time, then both together.
    assert report.sequential_peak_in_flight == 1
    assert report.concurrent_peak_in_flight == 2
    assert "서버가 본 동시 요청 수: 순차 1개, 동시 2개" in text
    assert report.concurrent_s < report.sequential_s


async def test_demo_bulk_run_is_concurrent_and_bounded() -> None:
    report, text = await _demo("en")
    assert report.bulk_ok == BULK
    assert 1 < report.bulk_peak_in_flight <= CONCURRENCY
    assert report.bulk_sample == 10
    assert f"{BULK}/{BULK}" in text  # the progress bar's final state
    assert f"{BULK}/{BULK} ok" in text
    assert f"Speed-up: {report.speedup:.1f}x" in text


async def test_demo_in_english() -> None:
    report, text = await _demo("en")
    positions = [text.index(title) for title in EN_TITLES]
    assert positions == sorted(positions)
    gather = _between(text, EN_TITLES[2], EN_TITLES[3])
    assert _in_order(gather, "Task 3 done!", "Task 1 done!", "Task 2 done!")
    assert "Background task done!" in text
    assert "Data 4 processed!" in text
    assert "작업" not in text
    assert report.lang == "en"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lang": "fr"}, "language"),
        ({"scale": 0.0}, "scale"),
        ({"bulk": 0}, "bulk"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
async def test_demo_rejects_bad_options(options: dict[str, object], message: str) -> None:
    console, out = _console()
    settings: dict[str, object] = {"lang": "ko", "scale": SCALE, "bulk": 1, "concurrency": 1}
    settings.update(options)
    with pytest.raises(ConfigError, match=message):
        await run_demo(console=console, **settings)  # type: ignore[arg-type]
    assert out.getvalue() == ""


# --- CLI ------------------------------------------------------------------------------


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "asyncfetch", "demo", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args), capture_output=True, text=True, timeout=60, env=_env(), check=False
    )


def test_cli_demo_in_english() -> None:
    done = _cli("--scale", "0.02", "--bulk", "100", "--lang", "en")
    assert done.returncode == 0, done.stderr
    for title in EN_TITLES:
        assert title in done.stdout
    assert "All tasks done!" in done.stdout
    assert "100/100 ok" in done.stdout
    assert "Speed-up:" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize(
    "args",
    [("--scale", "0"), ("--scale", "abc"), ("--bulk", "0"), ("--lang", "fr")],
)
def test_cli_demo_rejects_bad_options(args: tuple[str, ...]) -> None:
    done = _cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert args[0] in done.stderr


def _default_sigint() -> None:
    # A shell that runs this suite in the background ignores SIGINT, and children inherit it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_demo_ctrl_c_exits_130_without_traceback() -> None:
    with subprocess.Popen(
        _command("--lang", "en"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        preexec_fn=_default_sigint,
    ) as process:
        assert process.stdout is not None
        # At scale 1 the first section takes seconds: interrupt it while requests are running.
        for line in process.stdout:
            if "Synchronous" in line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Interrupted" in out
    assert "Traceback" not in err


# --- the user's language by default -------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "ko_KR.UTF-8"}, "ko"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({}, "en"),
        ({"LC_ALL": "C", "LANG": "ko_KR.UTF-8"}, "en"),  # LC_ALL wins, as for any program
        ({"LC_ALL": "", "LC_MESSAGES": "ko_KR", "LANG": "en_GB"}, "ko"),
    ],
)
def test_default_language_follows_the_locale(environ: dict[str, str], expected: str) -> None:
    assert default_language(environ) == expected


@pytest.mark.parametrize(("lang", "title"), [("ko_KR.UTF-8", KO_TITLES[0]), ("C", EN_TITLES[0])])
def test_cli_demo_speaks_the_locale_without_lang(lang: str, title: str) -> None:
    env = {**_env(), "LANG": lang}
    for name in ("LC_ALL", "LC_MESSAGES"):
        env.pop(name, None)
    done = subprocess.run(
        _command("--scale", "0.02", "--bulk", "10"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert title in done.stdout
