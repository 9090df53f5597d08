"""Scrapy with AutoThrottle on the politeness workload: the URLs of a file, default settings.

    python scrapy_autothrottle.py URLS_FILE OUT_FILE

Writes one line per URL that ended 200 to OUT_FILE, and prints ``ok N failed M``.
"""

from __future__ import annotations

import sys

import scrapy
from scrapy.crawler import CrawlerProcess


class UrlsSpider(scrapy.Spider):  # type: ignore[misc]
    name = "urls"

    def __init__(self, urls: list[str], out: list[str]) -> None:
        super().__init__()
        self.urls = urls
        self.out = out

    async def start(self):  # type: ignore[no-untyped-def]
        for url in self.urls:
            yield scrapy.Request(url, dont_filter=True, callback=self.parse)

    def parse(self, response):  # type: ignore[no-untyped-def]
        if response.status == 200:
            self.out.append(response.url)


def main() -> None:
    with open(sys.argv[1]) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    out: list[str] = []
    process = CrawlerProcess(
        settings={
            "AUTOTHROTTLE_ENABLED": True,
            "LOG_LEVEL": "ERROR",
            "ROBOTSTXT_OBEY": False,
            "TELNETCONSOLE_ENABLED": False,
        }
    )
    process.crawl(UrlsSpider, urls=urls, out=out)
    process.start()
    with open(sys.argv[2], "w") as handle:
        handle.writelines(url + "\n" for url in out)
    print(f"ok {len(out)} failed {len(urls) - len(out)}")


if __name__ == "__main__":
    main()
