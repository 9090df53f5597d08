"""What the demo prints, in the tutorial's Korean and in English.

The Korean lines are the tutorial's own (``작업 1 완료!``, ``메인 작업 실행 중...``, ...), so a
reader can put the demo's output next to the tutorial and recognise every line; the demo
only adds the figures it measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import ConfigError

LANGUAGES = ("ko", "en")
# The locale variables in the order POSIX consults them for messages.
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")


def default_language(environ: Mapping[str, str]) -> str:
    """The user's language: Korean where the locale says so (``ko_KR.UTF-8``), else English.

    The first locale variable that is set and not empty decides, as for any program.
    """
    for name in _LOCALE_VARIABLES:
        value = environ.get(name, "")
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


_KO: dict[str, str] = {
    "intro": "asyncfetch 데모: 로컬 테스트 서버 {url} 에 실제 HTTP 요청을 보냅니다 "
    "(scale={scale:g})",
    "title_1": "1. 비동기 프로그래밍이란? — 동기 vs. 비동기",
    "title_2": "2. async/await 기본 개념",
    "title_3": "3. 여러 개의 작업 동시 실행 (asyncio.gather())",
    "title_4": "4. aiohttp를 사용한 비동기 HTTP 요청",
    "title_5": "5. 비동기 태스크 관리 (asyncio.create_task())",
    "title_6": "6. 비동기 큐 (asyncio.Queue)",
    "title_bulk": "대량 요청: {count:,}개, 요청마다 {latency_ms:g}ms 지연",
    "sync_heading": "동기(Synchronous): 요청을 하나씩 await",
    "async_heading": "비동기(Asynchronous): asyncio.gather()로 동시에",
    "task_name": "작업 {n}",
    "task_done": "{name} 완료! ({elapsed:.2f}초 후)",
    "all_done": "모든 작업 완료! (총 {elapsed:.2f}초)",
    "sync_vs_async": "측정: 순차 {sequential:.2f}초, 동시 {concurrent:.2f}초 → {ratio:.1f}배 빠름",
    "server_peak": "서버가 본 동시 요청 수: 순차 {sequential}개, 동시 {concurrent}개",
    "async_function": "비동기 함수 실행",
    "task_start": "작업 시작",
    "task_finished": "작업 완료! (HTTP {status}, {elapsed:.2f}초)",
    "response_line": "응답 {n}: {data}...",
    "fetched_together": "세 요청을 동시에 보냄: 총 {elapsed:.2f}초 (세션 하나, 연결 재사용)",
    "main_running": "메인 작업 실행 중...",
    "main_done": "메인 작업 완료!",
    "background_done": "백그라운드 작업 완료!",
    "produced": "데이터 {item} 생성",
    "consumed": "데이터 {item} 처리 완료!",
    "queue_closed": "큐가 비었고 컨슈머가 종료됨: {count}개 처리",
    "bulk_sequential": "순차 실행 (표본 {sample}개): {elapsed:.2f}초 → "
    "{count:,}개 예상 {estimate:.1f}초",
    "bulk_progress": "동시 요청",
    "bulk_concurrent": "동시 실행 (동시 최대 {concurrency}개): {elapsed:.2f}초, "
    "성공 {ok:,}/{count:,}",
    "bulk_peak": "서버가 본 최대 동시 요청 수: {peak}개",
    "speedup": "속도 향상: {speedup:.1f}배",
    "interrupted": "중단됨",
}

_EN: dict[str, str] = {
    "intro": "asyncfetch demo: real HTTP requests to a local test server at {url} "
    "(scale={scale:g})",
    "title_1": "1. What is asynchronous programming? — sync vs. async",
    "title_2": "2. async/await basics",
    "title_3": "3. Running several tasks at once (asyncio.gather())",
    "title_4": "4. Asynchronous HTTP requests with aiohttp",
    "title_5": "5. Managing tasks (asyncio.create_task())",
    "title_6": "6. Asynchronous queue (asyncio.Queue)",
    "title_bulk": "Bulk run: {count:,} requests, {latency_ms:g} ms latency each",
    "sync_heading": "Synchronous: await one request after the other",
    "async_heading": "Asynchronous: both at once with asyncio.gather()",
    "task_name": "Task {n}",
    "task_done": "{name} done! (after {elapsed:.2f} s)",
    "all_done": "All tasks done! (total {elapsed:.2f} s)",
    "sync_vs_async": (
        "Measured: sequential {sequential:.2f} s, concurrent {concurrent:.2f} s"
        " → {ratio:.1f}x faster"
    ),
    "server_peak": "Requests in flight seen by the server: sequential {sequential}, "
    "concurrent {concurrent}",
    "async_function": "Running an async function",
    "task_start": "Task started",
    "task_finished": "Task done! (HTTP {status}, {elapsed:.2f} s)",
    "response_line": "Response {n}: {data}...",
    "fetched_together": "Three requests sent at once: {elapsed:.2f} s in total "
    "(one session, connections reused)",
    "main_running": "Main work running...",
    "main_done": "Main work done!",
    "background_done": "Background task done!",
    "produced": "Data {item} produced",
    "consumed": "Data {item} processed!",
    "queue_closed": "Queue drained and the consumer stopped: {count} items processed",
    "bulk_sequential": "Sequential (sample of {sample}): {elapsed:.2f} s → {count:,} requests "
    "would take {estimate:.1f} s",
    "bulk_progress": "Concurrent requests",
    "bulk_concurrent": "Concurrent (up to {concurrency} at once): {elapsed:.2f} s, "
    "{ok:,}/{count:,} ok",
    "bulk_peak": "Peak requests in flight seen by the server: {peak}",
    "speedup": "Speed-up: {speedup:.1f}x",
    "interrupted": "Interrupted",
}

_CATALOGUES: dict[str, dict[str, str]] = {"ko": _KO, "en": _EN}


@dataclass(frozen=True, slots=True)
class Messages:
    """The demo's lines in one language; ``msg("task_done", name=..., elapsed=...)``."""

    lang: str
    catalogue: Mapping[str, str]

    def __call__(self, key: str, /, **values: object) -> str:
        return self.catalogue[key].format(**values)


def messages(lang: str) -> Messages:
    """The catalogue for ``lang``; an unknown language is a configuration error."""
    catalogue = _CATALOGUES.get(lang)
    if catalogue is None:
        raise ConfigError(f"unknown demo language {lang!r}; use one of: {', '.join(LANGUAGES)}")
    return Messages(lang=lang, catalogue=catalogue)
