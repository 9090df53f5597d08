"""requests with a ThreadPoolExecutor of CONCURRENCY threads, one Session per thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from _common import Tally, parse_args, read_urls

local = threading.local()


def fetch(url: str) -> int | None:
    session = getattr(local, "session", None)
    if session is None:
        session = local.session = requests.Session()
    try:
        return session.get(url, timeout=30).status_code
    except requests.RequestException:
        return None


def main() -> None:
    path, concurrency = parse_args()
    urls = read_urls(path)
    tally = Tally()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for status in pool.map(fetch, urls):
            tally.record(status)
    tally.report()


main()
